package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// mlflowClient is a small MLflow REST client: the calls the Python client makes, with its transport
// rules (GET fields as a query, everything else as JSON).
type mlflowClient struct {
	t      *testing.T
	base   string            // tracking URI
	header map[string]string // sent with every request (a token)
	// next, when set, picks the tracking URI of each request instead of base: the replicas tests
	// alternate it between servers, as a load balancer would.
	next func() string
}

// uri is the tracking URI of the next request.
func (c *mlflowClient) uri() string {
	if c.next != nil {
		return c.next()
	}
	return c.base
}

// call sends one RPC and decodes the answer into out; it returns the HTTP status and the error_code.
func (c *mlflowClient) call(method, rpc string, in map[string]any, out any) (int, string) {
	c.t.Helper()
	u := c.uri() + "/api/2.0/mlflow/" + rpc
	var body io.Reader
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range in {
			switch x := v.(type) {
			case []string:
				q[k] = x
			default:
				q.Set(k, fmt.Sprint(x))
			}
		}
		u += "?" + q.Encode()
	} else {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var e struct {
			ErrorCode string `json:"error_code"`
		}
		if json.Unmarshal(data, &e) != nil || e.ErrorCode == "" {
			c.t.Fatalf("%s %s: %d with a non-MLflow error body: %s", method, rpc, resp.StatusCode, data)
		}
		return resp.StatusCode, e.ErrorCode
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		c.t.Fatalf("%s %s: 200 whose body is not a JSON object: %s", method, rpc, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v: %s", method, rpc, err, data)
		}
	}
	return http.StatusOK, ""
}

func (c *mlflowClient) ok(method, rpc string, in map[string]any, out any) {
	c.t.Helper()
	if status, code := c.call(method, rpc, in, out); status != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, rpc, status, code)
	}
}

func (c *mlflowClient) fails(method, rpc string, in map[string]any, status int, code string) {
	c.t.Helper()
	if gotStatus, gotCode := c.call(method, rpc, in, nil); gotStatus != status || gotCode != code {
		c.t.Fatalf("%s %s: %d %s, want %d %s", method, rpc, gotStatus, gotCode, status, code)
	}
}

// artifactURL turns an mlflow-artifacts: URI into the proxy URL the client would use.
func (c *mlflowClient) artifactURL(uri, path string) string {
	rest := strings.TrimPrefix(uri, "mlflow-artifacts:/")
	if path != "" {
		rest += "/" + path
	}
	return c.uri() + "/api/2.0/mlflow-artifacts/artifacts/" + rest
}

type runInfo struct {
	RunID          string `json:"run_id"`
	ExperimentID   string `json:"experiment_id"`
	Status         string `json:"status"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
	RunName        string `json:"run_name"`
}

type kv struct{ Key, Value string }

type runResp struct {
	Run struct {
		Info runInfo `json:"info"`
		Data struct {
			Metrics []struct {
				Key   string
				Value any // a number, or "NaN" / "Infinity" / "-Infinity"
				Step  int64
			}
			Params []kv
			Tags   []kv
		} `json:"data"`
	} `json:"run"`
}

func (c *mlflowClient) createRun(expID, name string, tags ...kv) runInfo {
	c.t.Helper()
	var r runResp
	c.ok(http.MethodPost, "runs/create", map[string]any{"experiment_id": expID, "run_name": name,
		"start_time": time.Now().UnixMilli(), "user_id": "e2e", "tags": tags}, &r)
	return r.Run.Info
}

func (c *mlflowClient) putArtifact(run runInfo, path string, body io.Reader, size int64) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, c.artifactURL(run.ArtifactURI, path), body)
	req.ContentLength = size
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("PUT artifact %s: %d", path, resp.StatusCode)
	}
}

type fileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize int64  `json:"file_size"`
}

func (c *mlflowClient) listArtifacts(uri, path string) []fileInfo {
	c.t.Helper()
	p := strings.TrimPrefix(uri, "mlflow-artifacts:/")
	if path != "" {
		p += "/" + path
	}
	resp, err := http.Get(c.uri() + "/api/2.0/mlflow-artifacts/artifacts?path=" + url.QueryEscape(p))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Files []fileInfo }
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&out) != nil {
		c.t.Fatalf("list %s: %d", p, resp.StatusCode)
	}
	return out.Files
}

func names(files []fileInfo) string {
	var s []string
	for _, f := range files {
		if f.IsDir {
			s = append(s, f.Path+"/")
		} else {
			s = append(s, fmt.Sprintf("%s(%d)", f.Path, f.FileSize))
		}
	}
	sort.Strings(s)
	return strings.Join(s, " ")
}

// The MLflow workflow of the 2.17.2 trace, run with a small Go client against a real mlgate process:
// experiments, runs with params, metrics and tags, nested artifacts and a 20 MB file, search with filter,
// order and paging, the registry with versions and aliases, models:/ downloads, delete and restore, and
// a restart in the middle.
func TestMLflowWorkflowAgainstRealProcess(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	c := &mlflowClient{t: t, base: p.base}
	mlflowWorkflow(t, c, func() {
		if err := p.stop(15); err != nil {
			t.Fatal(err)
		}
		p = startServe(t, dataDir)
		c.base = p.base
	})
}

// mlflowWorkflow runs the workflow of TestMLflowWorkflowAgainstRealProcess through c, checking every
// answer; restart is called in the middle and must leave c reaching the same registry (a restarted
// server, or replicas of which one restarted).
func mlflowWorkflow(t *testing.T, c *mlflowClient, restart func()) {

	// set_experiment: get-by-name answers RESOURCE_DOES_NOT_EXIST, then create.
	c.fails(http.MethodGet, "experiments/get-by-name", map[string]any{"experiment_name": "Workflow Exp"}, 404, "RESOURCE_DOES_NOT_EXIST")
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "Workflow Exp"}, &exp)
	c.fails(http.MethodPost, "experiments/create", map[string]any{"name": "Workflow Exp"}, 400, "RESOURCE_ALREADY_EXISTS")

	run := c.createRun(exp.ExperimentID, "main", kv{"mlflow.user", "e2e"})
	if run.Status != "RUNNING" || !strings.HasPrefix(run.ArtifactURI, "mlflow-artifacts:/"+exp.ExperimentID+"/"+run.RunID) {
		t.Fatalf("run %+v", run)
	}
	c.ok(http.MethodPost, "runs/log-parameter", map[string]any{"run_id": run.RunID, "key": "alpha", "value": "0.5"}, nil)
	c.ok(http.MethodPost, "runs/log-parameter", map[string]any{"run_id": run.RunID, "key": "alpha", "value": "0.5"}, nil)
	c.fails(http.MethodPost, "runs/log-parameter", map[string]any{"run_id": run.RunID, "key": "alpha", "value": "0.7"}, 400, "INVALID_PARAMETER_VALUE")
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": run.RunID,
		"params": []kv{{"layers", "3"}}, "tags": []kv{{"team", "vision"}}}, nil)
	now := time.Now().UnixMilli()
	for step := range 5 {
		c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.RunID, "key": "loss",
			"value": 1.0 / float64(step+1), "timestamp": now + int64(step), "step": step}, nil)
	}
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.RunID, "key": "weird", "value": "NaN", "timestamp": now}, nil)
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.RunID, "key": "acc", "value": 0.91, "timestamp": now}, nil)
	c.ok(http.MethodPost, "runs/set-tag", map[string]any{"run_id": run.RunID, "key": "wf", "value": "e2e"}, nil)

	// Artifacts at several depths, and a 20 MB file streamed both ways.
	c.putArtifact(run, "hello.txt", strings.NewReader("hello, mlgate"), 13)
	c.putArtifact(run, "data/a.txt", strings.NewReader("a"), 1)
	c.putArtifact(run, "data/sub/b.json", strings.NewReader(`{"b":1}`), 7)
	c.putArtifact(run, "model/MLmodel", strings.NewReader("flavors: {}\n"), 12)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	c.putArtifact(run, "big/big-20mb.bin", bytes.NewReader(big), int64(len(big)))
	if got := names(c.listArtifacts(run.ArtifactURI, "")); got != "big/ data/ hello.txt(13) model/" {
		t.Fatalf("run root lists %q", got)
	}
	if got := names(c.listArtifacts(run.ArtifactURI, "data")); got != "a.txt(1) sub/" {
		t.Fatalf("data/ lists %q", got)
	}
	if got := names(c.listArtifacts(run.ArtifactURI, "hello.txt")); got != "" {
		t.Fatalf("a file lists as %q, want nothing", got)
	}
	resp, err := http.Get(c.artifactURL(run.ArtifactURI, "big/big-20mb.bin"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, _ := io.Copy(h, resp.Body)
	resp.Body.Close()
	if n != int64(len(big)) || !bytes.Equal(h.Sum(nil), sha256Of(big)) {
		t.Fatalf("20 MB download: %d bytes", n)
	}
	c.ok(http.MethodPost, "runs/update", map[string]any{"run_id": run.RunID, "status": "FINISHED", "end_time": time.Now().UnixMilli()}, nil)

	// The restart changes nothing the client can see.
	restart()

	var got runResp
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &got)
	metrics := map[string]any{}
	for _, m := range got.Run.Data.Metrics {
		metrics[m.Key] = m.Value
	}
	params := map[string]string{}
	for _, p := range got.Run.Data.Params {
		params[p.Key] = p.Value
	}
	if got.Run.Info.Status != "FINISHED" || metrics["loss"] != 0.2 || metrics["acc"] != 0.91 || metrics["weird"] != "NaN" || params["alpha"] != "0.5" || params["layers"] != "3" {
		t.Fatalf("run after restart: %+v", got.Run)
	}
	var hist struct {
		Metrics []struct {
			Step  int64
			Value float64
		}
	}
	c.ok(http.MethodGet, "metrics/get-history", map[string]any{"run_id": run.RunID, "metric_key": "loss"}, &hist)
	if len(hist.Metrics) != 5 || hist.Metrics[4].Step != 4 {
		t.Fatalf("history %+v", hist)
	}

	// Search with a filter, an order and pages of one.
	for i, acc := range []float64{0.55, 0.99, 0.3} {
		r := c.createRun(exp.ExperimentID, fmt.Sprintf("sweep-%d", i))
		c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": r.RunID, "key": "acc", "value": acc, "timestamp": now}, nil)
		c.ok(http.MethodPost, "runs/set-tag", map[string]any{"run_id": r.RunID, "key": "wf", "value": "e2e"}, nil)
	}
	var order []float64
	token := ""
	for range 10 {
		var raw struct {
			Runs []json.RawMessage `json:"runs"`
			Next string            `json:"next_page_token"`
		}
		c.ok(http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{exp.ExperimentID},
			"filter": "tags.wf = 'e2e' and metrics.acc > 0.5", "order_by": []string{"metrics.acc DESC"},
			"max_results": 1, "page_token": token}, &raw)
		for _, r := range raw.Runs {
			var one struct {
				Data struct {
					Metrics []struct {
						Key   string
						Value float64
					}
				}
			}
			_ = json.Unmarshal(r, &one)
			for _, m := range one.Data.Metrics {
				if m.Key == "acc" {
					order = append(order, m.Value)
				}
			}
		}
		if token = raw.Next; token == "" {
			break
		}
	}
	if fmt.Sprint(order) != "[0.99 0.91 0.55]" {
		t.Fatalf("search pages gave acc %v", order)
	}

	// Registry: a version promoted from the run, with zero bytes copied; aliases; models:/ downloads.
	c.ok(http.MethodPost, "registered-models/create", map[string]any{"name": "wf-model"}, nil)
	c.fails(http.MethodPost, "registered-models/create", map[string]any{"name": "wf-model"}, 400, "RESOURCE_ALREADY_EXISTS")
	var mv struct {
		ModelVersion struct {
			Version string `json:"version"`
			RunID   string `json:"run_id"`
			Status  string `json:"status"`
		} `json:"model_version"`
	}
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "wf-model", "source": "runs:/" + run.RunID + "/model", "run_id": run.RunID}, &mv)
	if mv.ModelVersion.Version != "1" || mv.ModelVersion.RunID != run.RunID || mv.ModelVersion.Status != "READY" {
		t.Fatalf("version %+v", mv)
	}
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "wf-model", "source": "runs:/" + run.RunID + "/model",
		"run_id": run.RunID, "tags": []kv{{"mlgate.version", "2.0.0"}}}, &mv)
	if mv.ModelVersion.Version != "2" {
		t.Fatalf("second version %+v", mv)
	}
	c.ok(http.MethodPost, "registered-models/alias", map[string]any{"name": "wf-model", "alias": "champion", "version": "1"}, nil)
	c.ok(http.MethodGet, "registered-models/alias", map[string]any{"name": "wf-model", "alias": "champion"}, &mv)
	if mv.ModelVersion.Version != "1" {
		t.Fatalf("alias champion → %+v", mv)
	}
	c.fails(http.MethodGet, "registered-models/alias", map[string]any{"name": "wf-model", "alias": "nope"}, 400, "INVALID_PARAMETER_VALUE")
	c.ok(http.MethodGet, "model-versions/get", map[string]any{"name": "wf-model", "version": "2.0.0"}, &mv)
	if mv.ModelVersion.Version != "2" {
		t.Fatalf("get by semver → %+v", mv)
	}
	var dl struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	c.ok(http.MethodGet, "model-versions/get-download-uri", map[string]any{"name": "wf-model", "version": "1"}, &dl)
	if got := names(c.listArtifacts(dl.ArtifactURI, "")); got != "MLmodel(12)" {
		t.Fatalf("models:/wf-model/1 lists %q (uri %s)", got, dl.ArtifactURI)
	}
	// The same files through the package API, under the model's slug and the version's semver.
	code, body := get(t, c.uri()+"/api/v4/projects/default/packages/ml_models/wf-model/1.0.0/files/MLmodel")
	if code != http.StatusOK || string(body) != "flavors: {}\n" {
		t.Fatalf("package download of version 1.0.0: %d %q", code, body)
	}

	// Delete and restore.
	c.ok(http.MethodPost, "runs/delete", map[string]any{"run_id": run.RunID}, nil)
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &got)
	if got.Run.Info.LifecycleStage != "deleted" {
		t.Fatalf("deleted run: %+v", got.Run.Info)
	}
	c.ok(http.MethodPost, "runs/restore", map[string]any{"run_id": run.RunID}, nil)
	c.ok(http.MethodPost, "experiments/delete", map[string]any{"experiment_id": exp.ExperimentID}, nil)
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &got)
	if got.Run.Info.LifecycleStage != "deleted" {
		t.Fatalf("run of a deleted experiment: %+v", got.Run.Info)
	}
	c.ok(http.MethodPost, "experiments/restore", map[string]any{"experiment_id": exp.ExperimentID}, nil)
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &got)
	if got.Run.Info.LifecycleStage != "active" {
		t.Fatalf("run after experiment restore: %+v", got.Run.Info)
	}
	c.ok(http.MethodDelete, "registered-models/delete", map[string]any{"name": "wf-model"}, nil)
	c.fails(http.MethodGet, "registered-models/get", map[string]any{"name": "wf-model"}, 404, "RESOURCE_DOES_NOT_EXIST")
	// The run that backed the deleted versions keeps its files.
	if got := names(c.listArtifacts(run.ArtifactURI, "model")); got != "MLmodel(12)" {
		t.Fatalf("run files after registry delete: %q", got)
	}
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// mlflowErrorCode is the error_code of an MLflow error body, "" for anything else.
func mlflowErrorCode(body []byte) string {
	var e struct {
		ErrorCode string `json:"error_code"`
	}
	_ = json.Unmarshal(body, &e)
	return e.ErrorCode
}

// fileSum is a downloaded file as a test checks it: its length and sha256 (hex).
type fileSum struct {
	Size   int64
	SHA256 string
}

// fetch GETs url with the given header lines ("Name: value") and hashes the body as it streams, so a
// big download is never held in memory. It returns the status, the body's length and sha256, and the
// response headers.
func fetch(t *testing.T, url string, header ...string) (int, fileSum, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body after %d bytes: %v", url, n, err)
	}
	return resp.StatusCode, fileSum{n, fmt.Sprintf("%x", h.Sum(nil))}, resp.Header
}

// downloadTree downloads every file under an mlflow-artifacts: URI as the client's download_artifacts
// does: it lists one level, descends into directories and GETs each file. It returns the files by path
// relative to uri; any status but 200 fails the test.
func (c *mlflowClient) downloadTree(uri string) map[string]fileSum {
	c.t.Helper()
	out := map[string]fileSum{}
	var walk func(dir string)
	walk = func(dir string) {
		for _, f := range c.listArtifacts(uri, dir) {
			// The proxy lists names relative to the listed directory, as MLflow's server does; the
			// client joins them.
			p := f.Path
			if dir != "" {
				p = dir + "/" + f.Path
			}
			if f.IsDir {
				walk(p)
				continue
			}
			code, sum, _ := fetch(c.t, c.artifactURL(uri, p))
			if code != http.StatusOK {
				c.t.Fatalf("GET %s of %s: %d", p, uri, code)
			}
			if sum.Size != f.FileSize {
				c.t.Fatalf("%s of %s: listed with %d bytes, downloaded %d", p, uri, f.FileSize, sum.Size)
			}
			out[p] = sum
		}
	}
	walk("")
	return out
}

// mpuCreated is the answer of mpu/create: the upload id and one signed part URL per part.
type mpuCreated struct {
	UploadID    string `json:"upload_id"`
	Credentials []struct {
		URL        string            `json:"url"`
		PartNumber int               `json:"part_number"`
		Headers    map[string]string `json:"headers"`
	} `json:"credentials"`
}

// mpuPart is one uploaded part as mpu/complete lists it.
type mpuPart struct {
	PartNumber int    `json:"part_number"`
	ETag       string `json:"etag"`
}

// mpuCall POSTs body to mlflow-artifacts/mpu/<op>/<root>[/<dir>] of an mlflow-artifacts: URI, as the
// client's HttpArtifactRepository does, and returns the status and the body.
func (c *mlflowClient) mpuCall(op, uri, dir string, body any) (int, []byte) {
	c.t.Helper()
	u := c.uri() + "/api/2.0/mlflow-artifacts/mpu/" + op + "/" + strings.TrimPrefix(uri, "mlflow-artifacts:/")
	if dir != "" {
		u += "/" + dir
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// mpuCreate starts a multipart upload of <dir>/<base name of localPath> (the client sends its local
// path; the server keeps the base name) with numParts parts.
func (c *mlflowClient) mpuCreate(uri, dir, localPath string, numParts int) mpuCreated {
	c.t.Helper()
	code, body := c.mpuCall("create", uri, dir, map[string]any{"path": localPath, "num_parts": numParts})
	var out mpuCreated
	if code != http.StatusOK || json.Unmarshal(body, &out) != nil || out.UploadID == "" || len(out.Credentials) != numParts {
		c.t.Fatalf("mpu/create of %s in %s/%s with %d parts: %d %s", localPath, uri, dir, numParts, code, body)
	}
	return out
}

// putPart PUTs one part to a URL that mpu/create handed out, with the headers it gave, and returns the
// status and the part's ETag. It reports failures instead of failing the test, so that parts can be
// sent from several goroutines as the client's thread pool sends them.
func putPart(url string, headers map[string]string, body io.Reader, size int64) (int, string, error) {
	req, err := http.NewRequest(http.MethodPut, url, body)
	if err != nil {
		return 0, "", err
	}
	req.ContentLength = size
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag"), nil
}

// multipartUpload uploads size bytes, which open(off, n) reads part by part, to <dir>/<base name of
// localPath> under an mlflow-artifacts: URI the way the MLflow client does with
// MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: mpu/create with ceil(size/partSize) parts, the parts PUT
// concurrently (out of order, as from the client's thread pool) to the signed URLs, then mpu/complete
// with every part's ETag. Any failure fails the test.
func (c *mlflowClient) multipartUpload(uri, dir, localPath string, size, partSize int64, open func(off, n int64) io.Reader) {
	c.t.Helper()
	numParts := int((size + partSize - 1) / partSize)
	created := c.mpuCreate(uri, dir, localPath, numParts)
	parts := make([]mpuPart, numParts)
	errs := make([]error, numParts)
	next := make(chan int, numParts)
	for i := range numParts {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(3, numParts) {
		wg.Go(func() {
			for i := range next {
				cred := created.Credentials[i]
				off := int64(cred.PartNumber-1) * partSize
				n := min(partSize, size-off)
				code, etag, err := putPart(cred.URL, cred.Headers, open(off, n), n)
				if err == nil && (code != http.StatusOK || etag == "") {
					err = fmt.Errorf("answered %d with ETag %q", code, etag)
				}
				if err != nil {
					errs[i] = fmt.Errorf("part %d (%d bytes at %d): %w", cred.PartNumber, n, off, err)
				}
				parts[i] = mpuPart{cred.PartNumber, etag}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			c.t.Fatalf("multipart upload of %s: %v", localPath, err)
		}
	}
	code, body := c.mpuCall("complete", uri, dir, map[string]any{"path": localPath, "upload_id": created.UploadID, "parts": parts})
	if code != http.StatusOK {
		c.t.Fatalf("mpu/complete of %s: %d %s", localPath, code, body)
	}
}
