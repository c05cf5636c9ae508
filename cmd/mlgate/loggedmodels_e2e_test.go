package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// The big model file of the logged-model workflow: 50 MB sent as MLflow's client sends a file that
// size, in parts of its default MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE. The size is not a multiple of the
// part size, so the last part is a short one.
const (
	bigModelSize = 50_000_000
	mpuPartSize  = 10 << 20
)

// genBlockSize is the unit in which genFile content is generated.
const genBlockSize = 1 << 20

// genFile is deterministic content that a test regenerates at any offset instead of keeping it: block
// i is the ChaCha8 stream keyed by (seed, i). The bytes are random, so no layer can compress them or
// find them equal to another file's.
type genFile struct {
	seed byte
	size int64
}

// reader reads the n bytes at off (off+n must not pass the end of the file). It holds one block.
func (g genFile) reader(off, n int64) io.Reader {
	return &genReader{seed: g.seed, off: off, end: off + n, block: -1}
}

// sum is the sha256 (hex) of the whole file, hashed as it is generated.
func (g genFile) sum() string {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, g.reader(0, g.size), make([]byte, genBlockSize)); err != nil {
		panic(err) // a genReader never fails
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

type genReader struct {
	seed     byte
	off, end int64
	block    int64 // index of the block in buf, -1 before the first
	buf      []byte
}

func (r *genReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if i := r.off / genBlockSize; i != r.block {
		if r.buf == nil {
			r.buf = make([]byte, genBlockSize)
		}
		var key [32]byte
		key[0] = r.seed
		binary.LittleEndian.PutUint64(key[8:], uint64(i))
		_, _ = rand.NewChaCha8(key).Read(r.buf) // always fills buf
		r.block = i
	}
	n := copy(p[:min(int64(len(p)), r.end-r.off)], r.buf[r.off-r.block*genBlockSize:])
	r.off += int64(n)
	return n, nil
}

// bigModel is the test's 50 MB model file; bigModelSum is its sha256, computed once per test binary.
var (
	bigModel    = genFile{seed: 'M', size: bigModelSize}
	bigModelSum = sync.OnceValue(bigModel.sum)
)

// loggedModelMsg is the part of MLflow 3's LoggedModel message the test checks.
type loggedModelMsg struct {
	Info struct {
		ModelID      string `json:"model_id"`
		ExperimentID string `json:"experiment_id"`
		Name         string `json:"name"`
		ArtifactURI  string `json:"artifact_uri"`
		Status       string `json:"status"`
		ModelType    string `json:"model_type"`
		SourceRunID  string `json:"source_run_id"`
		Tags         []kv   `json:"tags"`
	} `json:"info"`
	Data struct {
		Params  []kv `json:"params"`
		Metrics []struct {
			Key           string  `json:"key"`
			Value         float64 `json:"value"`
			Step          int64   `json:"step"`
			ModelID       string  `json:"model_id"`
			RunID         string  `json:"run_id"`
			DatasetName   string  `json:"dataset_name"`
			DatasetDigest string  `json:"dataset_digest"`
		} `json:"metrics"`
	} `json:"data"`
}

// metricsString lists the logged model's metric points as key=value[@dataset]/run, sorted.
func (m *loggedModelMsg) metricsString(runNames map[string]string) string {
	var s []string
	for _, p := range m.Data.Metrics {
		e := fmt.Sprintf("%s=%g", p.Key, p.Value)
		if p.DatasetName != "" {
			e += "@" + p.DatasetName + ":" + p.DatasetDigest
		}
		if p.ModelID != m.Info.ModelID {
			e += " model_id=" + p.ModelID
		}
		s = append(s, e+"/"+runNames[p.RunID])
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func kvString(tags []kv) string {
	var s []string
	for _, t := range tags {
		s = append(s, t.Key+"="+t.Value)
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

// runIO is the inputs and outputs part of runs/get.
type runIO struct {
	Run struct {
		Inputs struct {
			DatasetInputs []struct {
				Tags    []kv `json:"tags"`
				Dataset struct {
					Name    string `json:"name"`
					Digest  string `json:"digest"`
					Profile string `json:"profile"`
				} `json:"dataset"`
			} `json:"dataset_inputs"`
			ModelInputs []struct {
				ModelID string `json:"model_id"`
			} `json:"model_inputs"`
		} `json:"inputs"`
		Outputs struct {
			ModelOutputs []struct {
				ModelID string `json:"model_id"`
				Step    int64  `json:"step"`
			} `json:"model_outputs"`
		} `json:"outputs"`
	} `json:"run"`
}

func (r *runIO) String() string {
	var s []string
	for _, d := range r.Run.Inputs.DatasetInputs {
		s = append(s, fmt.Sprintf("dataset %s:%s %s [%s]", d.Dataset.Name, d.Dataset.Digest, d.Dataset.Profile, kvString(d.Tags)))
	}
	for _, m := range r.Run.Inputs.ModelInputs {
		s = append(s, "input "+m.ModelID)
	}
	for _, m := range r.Run.Outputs.ModelOutputs {
		s = append(s, fmt.Sprintf("output %s@%d", m.ModelID, m.Step))
	}
	return strings.Join(s, "; ")
}

// modelVersionMsg is the part of a ModelVersion the test checks.
type modelVersionMsg struct {
	ModelVersion struct {
		Name    string   `json:"name"`
		Version string   `json:"version"`
		Source  string   `json:"source"`
		RunID   string   `json:"run_id"`
		ModelID string   `json:"model_id"`
		Status  string   `json:"status"`
		Aliases []string `json:"aliases"`
	} `json:"model_version"`
}

// packageFile is one entry of a package API listing.
type packageFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// committedBlobBytes sums the committed blobs of a data dir: every file under blobs/ outside the
// backend's dot-directories (staging and multipart uploads in progress).
func committedBlobBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	root := filepath.Join(dataDir, "blobs")
	var n int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return n
}

// The MLflow 3 model workflow of the 3.6 models trace, driven by a Go client against a real mlgate
// process: a run with dataset inputs, a logged model with params, tags and metrics linked to it and to a
// dataset, its files uploaded to the logged model's own artifact location (small files with PUT, a 50 MB
// file with the client's multipart protocol), a restart before finalize, registration of a version
// backed by the logged model with an alias, and downloads through every URI form the client resolves
// (models:/m-<id>, models:/<name>/<version>, models:/<name>@<alias>, runs:/<run_id>/<model name>), the
// package API and a range, each checked by sha256; then search by metric, the run's inputs and outputs,
// and deletion, which is refused while a version is backed by the logged model and afterwards removes
// its files.
//
// It runs once with the plain tracking URI (project "default") and once with a project's tracking URI,
// whose artifact URIs and part URLs carry the project prefix.
func TestLoggedModelWorkflowAgainstRealProcess(t *testing.T) {
	t.Run("default project", func(t *testing.T) { loggedModelWorkflow(t, "", "default") })
	t.Run("project prefix", func(t *testing.T) {
		loggedModelWorkflow(t, "/api/v4/projects/team%2Fvision/ml/mlflow", "team%2Fvision")
	})
}

// loggedModelWorkflow runs the workflow with the tracking URI <server><prefix>, whose package API
// project is project (escaped).
func loggedModelWorkflow(t *testing.T, prefix, project string) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	c := &mlflowClient{t: t, base: p.base + prefix}
	wantBig := fileSum{bigModelSize, bigModelSum()}

	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "LM E2E"}, &exp)
	run := c.createRun(exp.ExperimentID, "train")
	run2 := c.createRun(exp.ExperimentID, "retrain")
	runNames := map[string]string{run.RunID: "train", run2.RunID: "retrain"}

	// mlflow.log_input for the training and the evaluation sets, as the trace logs them.
	dataset := func(name, digest, profile string) map[string]any {
		return map[string]any{"name": name, "digest": digest, "source_type": "code",
			"source": `{"tags": {"mlflow.user": "e2e"}}`,
			"schema": `{"mlflow_colspec": [{"type": "double", "name": "x1", "required": true}]}`, "profile": profile}
	}
	train := dataset("train", "f9e2bbb5", `{"num_rows": 6}`)
	eval := dataset("eval", "e35a3a61", `{"num_rows": 3}`)
	for _, in := range []struct {
		ds      map[string]any
		context string
	}{{train, "training"}, {eval, "eval"}} {
		c.ok(http.MethodPost, "runs/log-inputs", map[string]any{"run_id": run.RunID, "datasets": []map[string]any{
			{"tags": []kv{{"mlflow.data.context", in.context}}, "dataset": in.ds}}}, nil)
	}

	// log_model: create the logged model from the run, record it as the run's output, log its metrics.
	var created struct{ Model loggedModelMsg }
	c.ok(http.MethodPost, "logged-models", map[string]any{"experiment_id": exp.ExperimentID, "name": "model",
		"model_type": "regressor", "source_run_id": run.RunID,
		"params": []kv{{"factor", "2.0"}, {"optimizer", "none"}},
		"tags":   []kv{{"mlflow.user", "e2e"}, {"family", "linear"}}}, &created)
	lm := created.Model.Info
	if !strings.HasPrefix(lm.ModelID, "m-") || len(lm.ModelID) != 34 || lm.Status != "LOGGED_MODEL_PENDING" ||
		lm.SourceRunID != run.RunID || lm.ModelType != "regressor" || lm.ExperimentID != exp.ExperimentID ||
		lm.ArtifactURI != "mlflow-artifacts:/"+exp.ExperimentID+"/models/"+lm.ModelID+"/artifacts" {
		t.Fatalf("logged-models create answered %+v", created.Model)
	}
	c.ok(http.MethodPost, "runs/outputs", map[string]any{"run_id": run.RunID,
		"models": []map[string]any{{"model_id": lm.ModelID, "step": 0}}}, nil)
	now := time.Now().UnixMilli()
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": run.RunID, "metrics": []map[string]any{
		{"key": "loss", "value": 0.25, "timestamp": now, "step": 0, "model_id": lm.ModelID}}}, nil)
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.RunID, "key": "acc", "value": 0.9,
		"timestamp": now, "step": 0, "model_id": lm.ModelID, "dataset_name": "eval", "dataset_digest": "e35a3a61"}, nil)

	// The model's files, under the logged model's own artifact location: small ones with a plain PUT,
	// the 50 MB one with the multipart protocol, streamed from the generator.
	small := map[string]string{
		"MLmodel":          "artifact_path: null\nflavors:\n  python_function: {}\nmodel_id: " + lm.ModelID + "\n",
		"requirements.txt": "mlflow==3.6.0\nnumpy\n",
	}
	for path, body := range small {
		c.putArtifact(runInfo{ArtifactURI: lm.ArtifactURI}, path, strings.NewReader(body), int64(len(body)))
	}
	c.multipartUpload(lm.ArtifactURI, "data", "/tmp/job/model.bin", bigModelSize, mpuPartSize, bigModel.reader)
	wantFiles := map[string]fileSum{"data/model.bin": wantBig}
	for path, body := range small {
		wantFiles[path] = fileSum{int64(len(body)), fmt.Sprintf("%x", sha256.Sum256([]byte(body)))}
	}
	checkFiles := func(what string, got map[string]fileSum) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(wantFiles) {
			t.Fatalf("%s: files\n%v\nwant\n%v", what, got, wantFiles)
		}
	}
	checkFiles("logged model before the restart", c.downloadTree(lm.ArtifactURI))

	// A second multipart upload is in flight across the restart: one part sent, the rest after it.
	stale := c.mpuCreate(lm.ArtifactURI, "data", "/tmp/job/partial.bin", 2)
	if code, etag, err := putPart(stale.Credentials[0].URL, stale.Credentials[0].Headers, bigModel.reader(0, 1<<20), 1<<20); err != nil || code != http.StatusOK || etag == "" {
		t.Fatalf("first part of the upload interrupted by the restart: %d %q %v", code, etag, err)
	}

	var beforeRestart struct{ Model loggedModelMsg }
	c.ok(http.MethodGet, "logged-models/"+lm.ModelID, nil, &beforeRestart)
	if got, want := beforeRestart.Model.metricsString(runNames), "acc=0.9@eval:e35a3a61/train loss=0.25/train"; got != want {
		t.Fatalf("logged model metrics %q, want %q", got, want)
	}

	oldBase := p.base
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}
	p = startServe(t, dataDir)
	c.base = p.base + prefix

	// Everything the client wrote before the restart is still there, unchanged.
	var afterRestart struct{ Model loggedModelMsg }
	c.ok(http.MethodGet, "logged-models/"+lm.ModelID, nil, &afterRestart)
	if a, b := fmt.Sprintf("%+v", afterRestart.Model), fmt.Sprintf("%+v", beforeRestart.Model); a != b {
		t.Fatalf("logged model after the restart:\n%s\nbefore:\n%s", a, b)
	}
	if got := kvString(afterRestart.Model.Data.Params); got != "factor=2.0 optimizer=none" {
		t.Fatalf("logged model params after the restart: %s", got)
	}
	if got := kvString(afterRestart.Model.Info.Tags); got != "family=linear mlflow.user=e2e" {
		t.Fatalf("logged model tags after the restart: %s", got)
	}
	checkFiles("logged model after the restart", c.downloadTree(lm.ArtifactURI))
	wantIO := "dataset train:f9e2bbb5 {\"num_rows\": 6} [mlflow.data.context=training]; " +
		"dataset eval:e35a3a61 {\"num_rows\": 3} [mlflow.data.context=eval]; output " + lm.ModelID + "@0"
	var io1 runIO
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &io1)
	if got := io1.String(); got != wantIO {
		t.Fatalf("run inputs and outputs after the restart:\n%s\nwant\n%s", got, wantIO)
	}
	// The upload in flight outlived the old process: the signing key is kept in the store, so its part
	// URLs and upload id are still valid (the key's own tests are in signingkey_e2e_test.go). It is
	// aborted here, and nothing of it is visible.
	lateURL := strings.Replace(stale.Credentials[1].URL, oldBase, p.base, 1)
	if code, _, err := putPart(lateURL, nil, bigModel.reader(0, 1<<20), 1<<20); err != nil || code != http.StatusOK {
		t.Fatalf("part URL from before the restart: %d %v, want 200", code, err)
	}
	code, body := c.mpuCall("abort", lm.ArtifactURI, "data", map[string]any{"path": "/tmp/job/partial.bin", "upload_id": stale.UploadID})
	if code != http.StatusOK {
		t.Fatalf("aborting an upload from before the restart: %d %s, want 200", code, body)
	}
	if got := names(c.listArtifacts(lm.ArtifactURI, "data")); got != fmt.Sprintf("model.bin(%d)", bigModelSize) {
		t.Fatalf("data/ lists %q after the interrupted upload", got)
	}

	// Finalize, register a version backed by the logged model, and point an alias at it.
	var final struct{ Model loggedModelMsg }
	c.ok(http.MethodPatch, "logged-models/"+lm.ModelID, map[string]any{"model_id": lm.ModelID, "status": "LOGGED_MODEL_READY"}, &final)
	if final.Model.Info.Status != "LOGGED_MODEL_READY" {
		t.Fatalf("finalize answered status %q", final.Model.Info.Status)
	}
	c.ok(http.MethodPost, "registered-models/create", map[string]any{"name": "lm-e2e"}, nil)
	var mv modelVersionMsg
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "lm-e2e", "source": "models:/" + lm.ModelID, "model_id": lm.ModelID}, &mv)
	if v := mv.ModelVersion; v.Version != "1" || v.ModelID != lm.ModelID || v.RunID != run.RunID || v.Status != "READY" || v.Source != "models:/"+lm.ModelID {
		t.Fatalf("model-versions/create answered %+v", v)
	}
	c.ok(http.MethodPost, "registered-models/alias", map[string]any{"name": "lm-e2e", "alias": "champion", "version": "1"}, nil)

	// models:/m-<id>: the client gets the logged model and downloads its artifact_uri.
	var got struct{ Model loggedModelMsg }
	c.ok(http.MethodGet, "logged-models/"+lm.ModelID, nil, &got)
	checkFiles("models:/"+lm.ModelID, c.downloadTree(got.Model.Info.ArtifactURI))
	// models:/<name>/<version>: get-download-uri.
	var dl struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	c.ok(http.MethodGet, "model-versions/get-download-uri", map[string]any{"name": "lm-e2e", "version": "1"}, &dl)
	if dl.ArtifactURI != lm.ArtifactURI {
		t.Fatalf("models:/lm-e2e/1 resolves to %s, want the logged model's %s", dl.ArtifactURI, lm.ArtifactURI)
	}
	checkFiles("models:/lm-e2e/1", c.downloadTree(dl.ArtifactURI))
	// models:/<name>@<alias>: the alias names a version, whose download URI is the logged model's.
	c.ok(http.MethodGet, "registered-models/alias", map[string]any{"name": "lm-e2e", "alias": "champion"}, &mv)
	if mv.ModelVersion.Version != "1" || mv.ModelVersion.ModelID != lm.ModelID || !slices.Contains(mv.ModelVersion.Aliases, "champion") {
		t.Fatalf("alias champion answered %+v", mv.ModelVersion)
	}
	dl.ArtifactURI = ""
	c.ok(http.MethodGet, "model-versions/get-download-uri", map[string]any{"name": "lm-e2e", "version": mv.ModelVersion.Version}, &dl)
	checkFiles("models:/lm-e2e@champion", c.downloadTree(dl.ArtifactURI))

	// A second logged model named "model" too, from the second run, with a lower accuracy: runs:/ must
	// pick by run, and search has two models to order.
	var created2 struct{ Model loggedModelMsg }
	c.ok(http.MethodPost, "logged-models", map[string]any{"experiment_id": exp.ExperimentID, "name": "model",
		"model_type": "regressor", "source_run_id": run2.RunID, "params": []kv{{"factor", "3.0"}}}, &created2)
	lm2 := created2.Model.Info
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run2.RunID, "key": "acc", "value": 0.4,
		"timestamp": now, "step": 0, "model_id": lm2.ModelID, "dataset_name": "eval", "dataset_digest": "e35a3a61"}, nil)
	c.ok(http.MethodPatch, "logged-models/"+lm2.ModelID, map[string]any{"model_id": lm2.ModelID, "status": "LOGGED_MODEL_READY"}, nil)

	// runs:/<run_id>/model: the 3.x client finds no run artifact "model", then searches the run's
	// experiment for logged models of that name and takes the one from this run.
	var r runResp
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &r)
	if files := c.listArtifacts(r.Run.Info.ArtifactURI, "model"); len(files) != 0 {
		t.Fatalf("run %s lists run artifacts under model/: %s", run.RunID, names(files))
	}
	if code, _, _ := fetch(t, c.artifactURL(r.Run.Info.ArtifactURI, "model")); code != http.StatusNotFound {
		t.Fatalf("GET of the missing run artifact model: %d, want 404", code)
	}
	var found struct {
		Models []loggedModelMsg `json:"models"`
	}
	c.ok(http.MethodPost, "logged-models/search", map[string]any{"experiment_ids": []string{r.Run.Info.ExperimentID},
		"filter": "name = 'model'"}, &found)
	var fromRun []loggedModelMsg
	for _, m := range found.Models {
		if m.Info.SourceRunID == run.RunID {
			fromRun = append(fromRun, m)
		}
	}
	if len(found.Models) != 2 || len(fromRun) != 1 || fromRun[0].Info.ModelID != lm.ModelID {
		t.Fatalf("search for logged models named \"model\" found %d, %d of run %s: %+v", len(found.Models), len(fromRun), run.RunID, found.Models)
	}
	checkFiles("runs:/"+run.RunID+"/model", c.downloadTree(fromRun[0].Info.ArtifactURI))

	// The package API: the logged model's own address, and the version's semver (the first version of a
	// model is 1.0.0).
	pkg := p.base + "/api/v4/projects/" + project + "/packages/ml_models/"
	for _, prefix := range []string{lm.ModelID, "lm-e2e/1.0.0"} {
		code, body := get(t, pkg+prefix+"/files")
		var list []packageFile
		if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil {
			t.Fatalf("package listing %s: %d %s", prefix, code, body)
		}
		listed := map[string]fileSum{}
		for _, f := range list {
			listed[f.Path] = fileSum{f.Size, f.SHA256}
		}
		checkFiles("package listing "+prefix, listed)
		downloaded := map[string]fileSum{}
		for path := range wantFiles {
			code, sum, _ := fetch(t, pkg+prefix+"/files/"+path)
			if code != http.StatusOK {
				t.Fatalf("package download %s/files/%s: %d", prefix, path, code)
			}
			downloaded[path] = sum
		}
		checkFiles("package downloads "+prefix, downloaded)
	}

	// Ranges: one across the boundary between the first two parts through the proxy, a suffix through
	// the package API.
	for _, rg := range []struct {
		url, header  string
		off, n       int64
		contentRange string
	}{
		{c.artifactURL(lm.ArtifactURI, "data/model.bin"), "bytes=10485000-10486999", 10485000, 2000, "bytes 10485000-10486999/50000000"},
		{pkg + "lm-e2e/1.0.0/files/data/model.bin", "bytes=-1000", bigModelSize - 1000, 1000, "bytes 49999000-49999999/50000000"},
	} {
		code, sum, h := fetch(t, rg.url, "Range: "+rg.header)
		want := sha256.New()
		_, _ = io.Copy(want, bigModel.reader(rg.off, rg.n))
		if code != http.StatusPartialContent || h.Get("Content-Range") != rg.contentRange ||
			sum != (fileSum{rg.n, fmt.Sprintf("%x", want.Sum(nil))}) {
			t.Fatalf("GET %s with Range %s: %d, Content-Range %q, %d bytes (sha256 match: %v)", rg.url, rg.header, code,
				h.Get("Content-Range"), sum.Size, sum.SHA256 == fmt.Sprintf("%x", want.Sum(nil)))
		}
	}

	// A plain run artifact, 2.x style: PUT under the run's artifact_uri, and runs:/<run_id>/<path> reads
	// it back from there.
	report := `{"rmse": 0.25}`
	c.putArtifact(run, "eval/report.json", strings.NewReader(report), int64(len(report)))
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &r)
	if code, body := get(t, c.artifactURL(r.Run.Info.ArtifactURI, "eval/report.json")); code != http.StatusOK || string(body) != report {
		t.Fatalf("runs:/%s/eval/report.json: %d %q", run.RunID, code, body)
	}
	if got, want := names(c.listArtifacts(lm.ArtifactURI, "")), fmt.Sprintf("MLmodel(%d) data/ requirements.txt(%d)",
		len(small["MLmodel"]), len(small["requirements.txt"])); got != want {
		t.Fatalf("the run artifact changed the logged model's files: %q, want %q", got, want)
	}

	// The logged model's listing RPC, which MLflow's UI uses: paths from the artifact root, as MLflow's
	// server lists them.
	var dir struct {
		RootURI string     `json:"root_uri"`
		Files   []fileInfo `json:"files"`
	}
	c.ok(http.MethodGet, "logged-models/"+lm.ModelID+"/artifacts/directories", map[string]any{"artifact_directory_path": "data"}, &dir)
	if dir.RootURI != lm.ArtifactURI || names(dir.Files) != fmt.Sprintf("data/model.bin(%d)", bigModelSize) {
		t.Fatalf("artifacts/directories of data: %+v", dir)
	}

	// search_logged_models by a metric: filtered, ordered both ways, in pages of one, and restricted to
	// the dataset the metric was measured on.
	search := func(req map[string]any) ([]string, string) {
		t.Helper()
		req["experiment_ids"] = []string{exp.ExperimentID}
		var out struct {
			Models []loggedModelMsg `json:"models"`
			Next   string           `json:"next_page_token"`
		}
		c.ok(http.MethodPost, "logged-models/search", req, &out)
		var ids []string
		for _, m := range out.Models {
			ids = append(ids, m.Info.ModelID)
		}
		return ids, out.Next
	}
	desc := []map[string]any{{"field_name": "metrics.acc", "ascending": false}}
	if ids, _ := search(map[string]any{"filter": "metrics.acc > 0.5", "order_by": desc}); !slices.Equal(ids, []string{lm.ModelID}) {
		t.Fatalf("metrics.acc > 0.5 found %v, want [%s]", ids, lm.ModelID)
	}
	if ids, _ := search(map[string]any{"filter": "metrics.acc > 0.1", "order_by": []map[string]any{{"field_name": "metrics.acc", "ascending": true}}}); !slices.Equal(ids, []string{lm2.ModelID, lm.ModelID}) {
		t.Fatalf("metrics.acc ascending gave %v, want [%s %s]", ids, lm2.ModelID, lm.ModelID)
	}
	var paged []string
	token := ""
	for range 3 {
		ids, next := search(map[string]any{"filter": "metrics.acc > 0.1", "order_by": desc, "max_results": 1, "page_token": token})
		paged = append(paged, ids...)
		if token = next; token == "" {
			break
		}
	}
	if !slices.Equal(paged, []string{lm.ModelID, lm2.ModelID}) {
		t.Fatalf("metrics.acc descending in pages of one gave %v, want [%s %s]", paged, lm.ModelID, lm2.ModelID)
	}
	evalSet := []map[string]any{{"dataset_name": "eval", "dataset_digest": "e35a3a61"}}
	if ids, _ := search(map[string]any{"filter": "metrics.acc >= 0.4", "datasets": evalSet, "order_by": desc}); !slices.Equal(ids, []string{lm.ModelID, lm2.ModelID}) {
		t.Fatalf("acc on the eval set found %v, want [%s %s]", ids, lm.ModelID, lm2.ModelID)
	}
	if ids, _ := search(map[string]any{"filter": "metrics.acc >= 0.4", "datasets": []map[string]any{{"dataset_name": "train", "dataset_digest": "f9e2bbb5"}}}); len(ids) != 0 {
		t.Fatalf("acc on the train set found %v, want nothing: it was measured on eval", ids)
	}

	// runs/get shows what the run read and produced, with the model input an evaluation logs.
	c.ok(http.MethodPost, "runs/log-inputs", map[string]any{"run_id": run.RunID, "datasets": []map[string]any{{"dataset": eval}},
		"models": []map[string]any{{"model_id": lm.ModelID}}}, nil)
	var io2 runIO
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &io2)
	if want := strings.Replace(wantIO, "; output", "; input "+lm.ModelID+"; output", 1); io2.String() != want {
		t.Fatalf("run inputs and outputs:\n%s\nwant\n%s", io2.String(), want)
	}

	// Deletion: refused while version 1 is backed by the logged model; once the version is gone, the
	// logged model goes and its files with it, after a download already under way has finished.
	c.fails(http.MethodDelete, "logged-models/"+lm.ModelID, map[string]any{"model_id": lm.ModelID}, 400, "INVALID_PARAMETER_VALUE")
	checkFiles("logged model after a refused delete", c.downloadTree(lm.ArtifactURI))
	c.ok(http.MethodDelete, "model-versions/delete", map[string]any{"name": "lm-e2e", "version": "1"}, nil)
	inFlight, err := http.Get(c.artifactURL(lm.ArtifactURI, "data/model.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer inFlight.Body.Close()
	inFlightSum := sha256.New()
	// 1 MiB read is far less than the 50 MB response, so the server is still sending it.
	if n, err := io.CopyN(inFlightSum, inFlight.Body, 1<<20); inFlight.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("download before the delete: %d, %d bytes read: %v", inFlight.StatusCode, n, err)
	}
	c.ok(http.MethodDelete, "logged-models/"+lm.ModelID, map[string]any{"model_id": lm.ModelID}, nil)
	if n, err := io.Copy(inFlightSum, inFlight.Body); err != nil || n != bigModelSize-1<<20 ||
		fmt.Sprintf("%x", inFlightSum.Sum(nil)) != wantBig.SHA256 {
		t.Fatalf("download under way across the delete: %d more bytes (%v), sha256 match %v", n, err,
			fmt.Sprintf("%x", inFlightSum.Sum(nil)) == wantBig.SHA256)
	}
	inFlight.Body.Close()
	c.fails(http.MethodGet, "logged-models/"+lm.ModelID, nil, 404, "RESOURCE_DOES_NOT_EXIST")
	for _, url := range []string{c.artifactURL(lm.ArtifactURI, "data/model.bin"), c.artifactURL(lm.ArtifactURI, "MLmodel"),
		pkg + lm.ModelID + "/files/data/model.bin"} {
		if code, _, _ := fetch(t, url); code != http.StatusNotFound {
			t.Fatalf("GET %s after deleting the logged model: %d, want 404", url, code)
		}
	}
	if ids, _ := search(map[string]any{"filter": "name = 'model'"}); !slices.Equal(ids, []string{lm2.ModelID}) {
		t.Fatalf("search after the delete found %v, want [%s]", ids, lm2.ModelID)
	}
	// The run keeps its own artifact.
	if code, body := get(t, c.artifactURL(run.ArtifactURI, "eval/report.json")); code != http.StatusOK || string(body) != report {
		t.Fatalf("run artifact after deleting the logged model: %d %q", code, body)
	}
	// The blobs go once no download reads them: none does, so the 50 MB leave the disk.
	poll.UntilOK(t, 20*time.Second, "the deleted logged model's blobs to leave the disk", func() error {
		if n := committedBlobBytes(t, dataDir); n >= bigModelSize {
			return fmt.Errorf("%d committed blob bytes", n)
		}
		return nil
	})
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}
	// Offline, fsck finds nothing: no orphan or missing blob, and no parts of the upload the restart
	// interrupted, which was aborted after it.
	_, out := runCmd(t, "fsck", "--data-dir", dataDir)
	if strings.Contains(out, "found\t") || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck after the workflow found something:\n%s", out)
	}
}
