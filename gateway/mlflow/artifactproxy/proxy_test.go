package artifactproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/artifactproxy"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
)

// artifactRun is a run created through the store, with the proxy URLs of its artifacts.
type artifactRun struct {
	env    *gatewaytest.Env
	prefix string // .../api/2.0/mlflow-artifacts
	root   string // <iid>/<eid>/artifacts
	model  *metadata.Model
	cand   *metadata.Candidate
}

// newArtifactRun creates a model (experiment) and a candidate (run) in project and addresses them
// through prefix, the server-relative mlflow-artifacts prefix.
func newArtifactRun(t *testing.T, env *gatewaytest.Env, project, experiment, prefix string) *artifactRun {
	t.Helper()
	ctx := context.Background()
	p, err := env.Store.EnsureProject(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.Store.Model(ctx, metadata.ModelRef{Project: p.ID, DisplayName: experiment})
	if errors.Is(err, metadata.ErrNotFound) {
		m = &metadata.Model{Project: p.ID, DisplayName: experiment}
		err = env.Store.CreateModel(ctx, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &metadata.Candidate{ModelID: m.ID}
	if err := env.Store.CreateCandidate(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	return &artifactRun{env: env, prefix: env.Srv.URL + prefix, root: fmt.Sprintf("%d/%s/artifacts", m.IID, c.EID), model: m, cand: c}
}

func (a *artifactRun) url(p string) string { return a.prefix + "/artifacts/" + a.root + "/" + p }

// list calls the listing the client uses and returns the decoded body.
func (a *artifactRun) list(t *testing.T, sub string) map[string]any {
	t.Helper()
	p := a.root
	if sub != "" {
		p += "/" + sub
	}
	r := a.env.Get(a.prefix + "/artifacts?path=" + url.QueryEscape(p))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out map[string]any
	r.JSON(t, &out)
	return out
}

func wantMLflowError(t *testing.T, r gatewaytest.Response, status int, code string) {
	t.Helper()
	gatewaytest.WantStatus(t, r, status)
	if got := r.MLflowError(t); got != code {
		t.Fatalf("error_code %s, want %s: %s", got, code, r.Body)
	}
}

func wantEmptyObject(t *testing.T, r gatewaytest.Response) {
	t.Helper()
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("body %s, want {}", r.Body)
	}
}

// listing builds the JSON the reference server answers: files as [name, size], directories as [name].
func listing(entries ...[]any) map[string]any {
	files := []any{}
	for _, e := range entries {
		f := map[string]any{"path": e[0], "is_dir": len(e) == 1}
		if len(e) == 2 {
			f["file_size"] = float64(e[1].(int))
		}
		files = append(files, f)
	}
	return map[string]any{"files": files}
}

// TestMLflowArtifactsWorkflow replays the artifact part of the 2.17.2 trace: nested uploads, one-level
// listings (a file or a missing path lists as {}), downloads, Range, and the package API view.
func TestMLflowArtifactsWorkflow(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	run := newArtifactRun(t, env, rpc.DefaultProject, "My Experiment", "/api/2.0/mlflow-artifacts")
	big := gatewaytest.Payload(20 << 20)
	files := map[string][]byte{
		"hello.txt":          []byte("hello from the mlflow workflow\n"),
		"big/big-20mb.bin":   big,
		"data/a.txt":         bytes.Repeat([]byte("a"), 100),
		"data/sub/b.json":    []byte(`{"b": 1}`),
		"model/MLmodel":      bytes.Repeat([]byte("m"), 73),
		"model/model.pkl":    gatewaytest.Payload(1000),
		"config/params.json": []byte(`{"alpha": 1}`),
		"notes.txt":          []byte("some note"),
	}
	for p, data := range files {
		r := env.Do(http.MethodPut, run.url(p), bytes.NewReader(data), map[string]string{"Content-Type": "text/plain"})
		wantEmptyObject(t, r)
	}

	for _, tc := range []struct {
		sub  string
		want map[string]any
	}{
		{"", listing([]any{"big"}, []any{"config"}, []any{"data"}, []any{"hello.txt", 31}, []any{"model"}, []any{"notes.txt", 9})},
		{"data", listing([]any{"a.txt", 100}, []any{"sub"})},
		{"data/", listing([]any{"a.txt", 100}, []any{"sub"})},
		{"data/sub", listing([]any{"b.json", 8})},
		{"big", listing([]any{"big-20mb.bin", 20 << 20})},
		{"model", listing([]any{"MLmodel", 73}, []any{"model.pkl", 1000})},
		{"does-not-exist-5f1b44611b", map[string]any{}},
		{"hello.txt", map[string]any{}},
		{"big/big-20mb.bin", map[string]any{}},
	} {
		if got := run.list(t, tc.sub); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("list %q:\n got %v\nwant %v", tc.sub, got, tc.want)
		}
	}

	for p, data := range files {
		r := env.Get(run.url(p))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.Body, data) {
			t.Fatalf("download %s: %d bytes differ from the %d uploaded", p, len(r.Body), len(data))
		}
	}
	r := env.Do(http.MethodGet, run.url("big/big-20mb.bin"), nil, map[string]string{"Range": "bytes=1000-1999"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.Body, big[1000:2000]) {
		t.Fatal("range download returned the wrong bytes")
	}
	r = env.Do(http.MethodHead, run.url("hello.txt"), nil, nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("Content-Length") != "31" {
		t.Fatalf("HEAD Content-Length %q", r.Header.Get("Content-Length"))
	}
	// A directory or a missing file is not downloadable.
	wantMLflowError(t, env.Get(run.url("data")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	wantMLflowError(t, env.Get(run.url("nope.txt")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")

	// The run's artifacts are the candidate's files.
	r = env.Get(fmt.Sprintf("%s/api/v4/projects/%s/packages/ml_models/candidate:%d/files/data/sub/b.json",
		env.Srv.URL, rpc.DefaultProject, run.cand.IID))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if string(r.Body) != `{"b": 1}` {
		t.Fatalf("package API download: %s", r.Body)
	}

	// Same bytes again: no new blob; other bytes: replaced, the old blob is gone.
	blobs := len(env.BlobKeys())
	wantEmptyObject(t, env.Put(run.url("notes.txt"), []byte("some note")))
	if n := len(env.BlobKeys()); n != blobs {
		t.Fatalf("identical re-upload: %d blobs, want %d", n, blobs)
	}
	wantEmptyObject(t, env.Put(run.url("notes.txt"), []byte("another note")))
	if n := len(env.BlobKeys()); n != blobs {
		t.Fatalf("replacement: %d blobs, want %d", n, blobs)
	}
	if r := env.Get(run.url("notes.txt")); string(r.Body) != "another note" {
		t.Fatalf("after replacement: %q", r.Body)
	}
	// A file where a directory is, or below a file: 400, not 409 or 500.
	wantMLflowError(t, env.Put(run.url("data"), []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	wantMLflowError(t, env.Put(run.url("hello.txt/x"), []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
}

func TestMLflowArtifactsProjectPrefix(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	run := newArtifactRun(t, env, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	wantEmptyObject(t, env.Put(run.url("model/weights.bin"), []byte("w")))
	if got, want := run.list(t, ""), listing([]any{"model"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("list: %v", got)
	}
	if r := env.Get(run.url("model/weights.bin")); string(r.Body) != "w" {
		t.Fatalf("download: %d %q", r.Status, r.Body)
	}
	// The same run is not in the default project.
	other := *run
	other.prefix = env.Srv.URL + "/api/2.0/mlflow-artifacts"
	wantMLflowError(t, env.Get(other.url("model/weights.bin")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
}

func TestMLflowArtifactsDefaultExperiment(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	ctx := context.Background()
	p, err := env.Store.EnsureProject(ctx, rpc.DefaultProject)
	if err != nil {
		t.Fatal(err)
	}
	m, err := env.Store.EnsureDefaultModel(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	c := &metadata.Candidate{ModelID: m.ID}
	if err := env.Store.CreateCandidate(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	u := fmt.Sprintf("%s/api/2.0/mlflow-artifacts/artifacts/0/%s/artifacts/x.txt", env.Srv.URL, c.EID)
	wantEmptyObject(t, env.Put(u, []byte("x")))
	if r := env.Get(u); string(r.Body) != "x" {
		t.Fatalf("download: %d %q", r.Status, r.Body)
	}
}

func TestMLflowArtifactsDelete(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	run := newArtifactRun(t, env, rpc.DefaultProject, "exp", "/api/2.0/mlflow-artifacts")
	for _, p := range []string{"a.txt", "dir/b.txt", "dir/sub/c.txt", "dir2/d.txt"} {
		wantEmptyObject(t, env.Put(run.url(p), []byte(p)))
	}
	wantEmptyObject(t, env.Do(http.MethodDelete, run.url("a.txt"), nil, nil))
	wantMLflowError(t, env.Get(run.url("a.txt")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	wantEmptyObject(t, env.Do(http.MethodDelete, run.url("a.txt"), nil, nil)) // retried: same answer

	wantEmptyObject(t, env.Do(http.MethodDelete, run.url("dir"), nil, nil))
	if got, want := run.list(t, ""), listing([]any{"dir2"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("after deleting dir: %v", got)
	}
	if n := len(env.BlobKeys()); n != 1 {
		t.Fatalf("%d blobs left, want 1: deleted files must take their blobs", n)
	}
	// delete_artifacts() without a path: the run root, with a trailing slash.
	wantEmptyObject(t, env.Do(http.MethodDelete, run.prefix+"/artifacts/"+run.root+"/", nil, nil))
	if got := run.list(t, ""); len(got) != 0 {
		t.Fatalf("after deleting everything: %v", got)
	}
	if n := len(env.BlobKeys()); n != 0 {
		t.Fatalf("%d blobs left, want 0", n)
	}
}

func TestMLflowArtifactsBadRequests(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{MaxFileSize: 1000})
	run := newArtifactRun(t, env, rpc.DefaultProject, "exp", "/api/2.0/mlflow-artifacts")
	other := newArtifactRun(t, env, rpc.DefaultProject, "other exp", "/api/2.0/mlflow-artifacts")
	wantEmptyObject(t, env.Put(run.url("ok.txt"), []byte("ok")))

	for _, p := range []string{"../escape.txt", "a/../../escape.txt", "%2e%2e/escape.txt", "a%2Fb.txt", "a//b.txt", "./a.txt", "a%00b"} {
		wantMLflowError(t, env.Put(run.url(p), []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	wantMLflowError(t, env.Get(run.url("..%2Fok.txt")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	for _, p := range []string{run.root + "/../x", run.root + "/a//b", "1/" + run.cand.EID.String() + "/files/x", "x/" + run.cand.EID.String() + "/artifacts", "1"} {
		r := env.Get(run.prefix + "/artifacts?path=" + url.QueryEscape(p))
		wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	wantMLflowError(t, env.Get(run.prefix+"/artifacts"), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	wantMLflowError(t, env.Put(run.prefix+"/artifacts/"+run.root+"/", []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	// Unknown experiment or run, a run of another experiment: 404.
	eid := run.cand.EID.String()
	for _, p := range []string{
		"99/" + eid + "/artifacts/ok.txt",
		fmt.Sprintf("%d/%s/artifacts/ok.txt", run.model.IID, strings.Repeat("ab", 16)),
		fmt.Sprintf("%d/not-a-run/artifacts/ok.txt", run.model.IID),
		fmt.Sprintf("%d/%s/artifacts/ok.txt", other.model.IID, eid),
	} {
		wantMLflowError(t, env.Get(run.prefix+"/artifacts/"+p), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
		wantMLflowError(t, env.Put(run.prefix+"/artifacts/"+p, []byte("x")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	}
	r := env.Get(run.prefix + "/artifacts?path=" + url.QueryEscape(fmt.Sprintf("%d/%s/artifacts", other.model.IID, eid)))
	wantMLflowError(t, r, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")

	// Oversize bodies are refused before they are stored, declared or not.
	wantMLflowError(t, env.Put(run.url("big.bin"), gatewaytest.Payload(1001)), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	r = env.Do(http.MethodPut, run.url("big.bin"), io.MultiReader(bytes.NewReader(gatewaytest.Payload(1001))), nil)
	wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	wantMLflowError(t, env.Get(run.url("big.bin")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")

	// Unknown routes and methods are ENDPOINT_NOT_FOUND.
	wantMLflowError(t, env.Get(run.prefix+"/nothing-here"), http.StatusNotFound, "ENDPOINT_NOT_FOUND")
	wantMLflowError(t, env.Do(http.MethodPost, run.url("ok.txt"), nil, nil), http.StatusNotFound, "ENDPOINT_NOT_FOUND")
	wantMLflowError(t, env.Get(run.prefix+"/mpu/create/"+run.root), http.StatusNotFound, "ENDPOINT_NOT_FOUND")

	// A deleted run takes no new artifacts; reading them still works.
	deleted := metadata.Deleted
	if _, err := env.Store.UpdateCandidate(context.Background(), run.cand.ID, metadata.CandidateUpdate{Lifecycle: &deleted}); err != nil {
		t.Fatal(err)
	}
	wantMLflowError(t, env.Put(run.url("late.txt"), []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	gatewaytest.WantStatus(t, env.Get(run.url("ok.txt")), http.StatusOK)
}

// mpuCreateResponse is what mpu/create answers.
type mpuCreateResponse struct {
	UploadID    string `json:"upload_id"`
	Credentials []struct {
		URL        string            `json:"url"`
		PartNumber int               `json:"part_number"`
		Headers    map[string]string `json:"headers"`
	} `json:"credentials"`
}

func (a *artifactRun) mpu(t *testing.T, op, dir string, body any) gatewaytest.Response {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	u := a.prefix + "/mpu/" + op + "/" + a.root
	if dir != "" {
		u += "/" + dir
	}
	return a.env.Do(http.MethodPost, u, bytes.NewReader(b), map[string]string{"Content-Type": "application/json"})
}

func (a *artifactRun) mpuCreate(t *testing.T, dir, local string, parts int) mpuCreateResponse {
	t.Helper()
	r := a.mpu(t, "create", dir, map[string]any{"path": local, "num_parts": parts})
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out mpuCreateResponse
	r.JSON(t, &out)
	if out.UploadID == "" || len(out.Credentials) != parts {
		t.Fatalf("create: %s", r.Body)
	}
	return out
}

type mpuPart struct {
	PartNumber int    `json:"part_number"`
	ETag       string `json:"etag"`
	URL        string `json:"url,omitempty"`
}

// putParts uploads data in parts of partSize to the create response's URLs, as the client does:
// without any Authorization header, keeping each ETag header.
func putParts(t *testing.T, env *gatewaytest.Env, created mpuCreateResponse, data []byte, partSize int) []mpuPart {
	t.Helper()
	var parts []mpuPart
	for i, c := range created.Credentials {
		chunk := data[min(i*partSize, len(data)):min((i+1)*partSize, len(data))]
		r := env.Do(http.MethodPut, c.URL, bytes.NewReader(chunk), c.Headers)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		etag := r.Header.Get("ETag")
		if etag == "" {
			t.Fatalf("part %d: no ETag", c.PartNumber)
		}
		parts = append(parts, mpuPart{PartNumber: c.PartNumber, ETag: etag, URL: c.URL})
	}
	return parts
}

func TestMLflowArtifactsMultipart(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	run := newArtifactRun(t, env, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	const partSize = 5 << 20 // the memory backend's minimum, like S3's
	data := gatewaytest.Payload(2*partSize + 1000)

	created := run.mpuCreate(t, "big", "/home/me/huge.bin", 3)
	for i, c := range created.Credentials {
		want := run.prefix + "/mpu/part/" + created.UploadID + "/" + strconv.Itoa(i+1) + "?"
		if c.PartNumber != i+1 || !strings.HasPrefix(c.URL, want) || c.Headers == nil {
			t.Fatalf("credential %d: %+v, want a URL starting %s", i, c, want)
		}
	}
	if strings.Contains(created.UploadID, "c/") || strings.Contains(created.UploadID, "huge") {
		t.Fatalf("upload id leaks its content: %s", created.UploadID)
	}
	// Nothing is visible before complete.
	if got := run.list(t, "big"); len(got) != 0 {
		t.Fatalf("listing during the upload: %v", got)
	}
	parts := putParts(t, env, created, data, partSize)
	done := map[string]any{"path": "/home/me/huge.bin", "upload_id": created.UploadID, "parts": parts}
	wantEmptyObject(t, run.mpu(t, "complete", "big", done))
	r := env.Get(run.url("big/huge.bin"))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatalf("multipart download: %d bytes differ from the %d uploaded", len(r.Body), len(data))
	}
	if got, want := run.list(t, "big"), listing([]any{"huge.bin", len(data)}); !reflect.DeepEqual(got, want) {
		t.Fatalf("list: %v", got)
	}
	if n := len(env.BlobKeys()); n != 1 {
		t.Fatalf("%d blobs, want 1", n)
	}
	// A retried complete answers the same; an abort after it changes nothing.
	wantEmptyObject(t, run.mpu(t, "complete", "big", done))
	wantEmptyObject(t, run.mpu(t, "abort", "big", map[string]any{"path": "/home/me/huge.bin", "upload_id": created.UploadID}))
	if r := env.Get(run.url("big/huge.bin")); !bytes.Equal(r.Body, data) {
		t.Fatal("the file changed after a retried complete or a late abort")
	}
	// The file is the candidate's, for the package API too.
	r = env.Get(fmt.Sprintf("%s/api/v4/projects/team%%2Fvision/packages/ml_models/candidate:%d/files/big/huge.bin", env.Srv.URL, run.cand.IID))
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, data) {
		t.Fatalf("package API download: %d, %d bytes", r.Status, len(r.Body))
	}

	// A second upload to the root, of one short part: replaces nothing, lands at the root.
	one := run.mpuCreate(t, "", `C:\Users\me\small.bin`, 1)
	parts = putParts(t, env, one, []byte("small"), partSize)
	wantEmptyObject(t, run.mpu(t, "complete", "", map[string]any{"path": `C:\Users\me\small.bin`, "upload_id": one.UploadID, "parts": parts}))
	if r := env.Get(run.url("small.bin")); string(r.Body) != "small" {
		t.Fatalf("root upload: %d %q", r.Status, r.Body)
	}
}

func TestMLflowArtifactsMultipartRefusals(t *testing.T) {
	secret := signing.Random()
	env := gatewaytest.New(t, gateway.Config{Signing: secret})
	run := newArtifactRun(t, env, rpc.DefaultProject, "exp", "/api/2.0/mlflow-artifacts")
	other := newArtifactRun(t, env, rpc.DefaultProject, "exp", "/api/2.0/mlflow-artifacts")
	const partSize = 5 << 20
	data := gatewaytest.Payload(partSize + 10)
	created := run.mpuCreate(t, "m", "model.bin", 2)
	tokKey, tokUpload, err := artifactproxy.OpenMPUToken(secret, created.UploadID)
	if err != nil {
		t.Fatal(err)
	}
	partURL := func(n int, exp int64, sig string) string {
		return fmt.Sprintf("%s/mpu/part/%s/%d?exp=%d&sig=%s", run.prefix, created.UploadID, n, exp, sig)
	}

	// Signatures: tampered, for another part, expired; none of them stores a byte.
	u, _ := url.Parse(created.Credentials[0].URL)
	exp, _ := strconv.ParseInt(u.Query().Get("exp"), 10, 64)
	sig := u.Query().Get("sig")
	// Tampering must change the value whatever it was (a fixed replacement can equal the original).
	flip := func(s string) string {
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	flipTail := func(s string) string {
		if strings.HasSuffix(s, "AA") {
			return s[:len(s)-2] + "BB"
		}
		return s[:len(s)-2] + "AA"
	}
	for _, bad := range []string{
		partURL(1, exp, flip(sig)),
		partURL(2, exp, sig),
		partURL(1, exp+1, sig),
		partURL(1, time.Now().Add(-time.Minute).Unix(), artifactproxy.MPUPartSig(secret, created.UploadID, 1, time.Now().Add(-time.Minute).Unix())),
		strings.Replace(created.Credentials[0].URL, created.UploadID, flipTail(created.UploadID), 1),
	} {
		wantMLflowError(t, env.Put(bad, []byte("x")), http.StatusForbidden, "PERMISSION_DENIED")
	}
	// A part number the upload was not created with, even if signed.
	wantMLflowError(t, env.Put(partURL(3, exp, artifactproxy.MPUPartSig(secret, created.UploadID, 3, exp)), []byte("x")), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	// No Content-Length.
	r := env.Do(http.MethodPut, created.Credentials[0].URL, io.MultiReader(bytes.NewReader([]byte("x"))), nil)
	wantMLflowError(t, r, http.StatusLengthRequired, "INVALID_PARAMETER_VALUE")
	if parts, err := env.Backend.ListParts(context.Background(), tokKey, tokUpload); err != nil || len(parts) != 0 {
		t.Fatalf("refused parts were stored: %v, %v", parts, err)
	}

	parts := putParts(t, env, created, data, partSize)
	// The upload id only completes the artifact it was created for.
	for _, tc := range []struct {
		run  *artifactRun
		dir  string
		path string
	}{{run, "m", "other.bin"}, {run, "", "model.bin"}, {other, "m", "model.bin"}} {
		r := tc.run.mpu(t, "complete", tc.dir, map[string]any{"path": tc.path, "upload_id": created.UploadID, "parts": parts})
		wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	// Upload ids this server did not issue.
	for _, id := range []string{"", "not-a-token", created.UploadID[:len(created.UploadID)-4] + "AAAA"} {
		r := run.mpu(t, "complete", "m", map[string]any{"path": "model.bin", "upload_id": id, "parts": parts})
		wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	// A wrong ETag, a missing part: 400, and the upload stays for a retry or an abort.
	wrong := []mpuPart{parts[0], {PartNumber: 2, ETag: `"0123456789abcdef0123456789abcdef"`}}
	r = run.mpu(t, "complete", "m", map[string]any{"path": "model.bin", "upload_id": created.UploadID, "parts": wrong})
	wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	r = run.mpu(t, "complete", "m", map[string]any{"path": "model.bin", "upload_id": created.UploadID, "parts": parts[1:]})
	wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	r = run.mpu(t, "complete", "m", map[string]any{"path": "model.bin", "upload_id": created.UploadID, "parts": []mpuPart{}})
	wantMLflowError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	// Abort leaves nothing: no file, no blob, no upload.
	wantEmptyObject(t, run.mpu(t, "abort", "m", map[string]any{"path": "model.bin", "upload_id": created.UploadID}))
	wantMLflowError(t, env.Get(run.url("m/model.bin")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("blobs after abort: %v", keys)
	}
	if _, err := env.Backend.ListParts(context.Background(), tokKey, tokUpload); !errors.Is(err, backends.ErrUploadNotFound) {
		t.Fatalf("upload after abort: %v", err)
	}
	// Parts and complete after the abort fail cleanly.
	wantMLflowError(t, env.Put(created.Credentials[0].URL, []byte("x")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	r = run.mpu(t, "complete", "m", map[string]any{"path": "model.bin", "upload_id": created.UploadID, "parts": parts})
	wantMLflowError(t, r, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")

	// Create: bad bodies and targets.
	for _, body := range []map[string]any{
		{"num_parts": 1},
		{"path": "x.bin"},
		{"path": "x.bin", "num_parts": 0},
		{"path": "x.bin", "num_parts": 10001},
		{"path": "dir/", "num_parts": 1},
		{"path": "..", "num_parts": 1},
		{"path": "x.bin", "num_parts": "many"},
	} {
		wantMLflowError(t, run.mpu(t, "create", "m", body), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	wantMLflowError(t, run.mpu(t, "create", "..", map[string]any{"path": "x.bin", "num_parts": 1}), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	bogus := *run
	bogus.root = fmt.Sprintf("%d/%s/artifacts", run.model.IID, strings.Repeat("0", 32))
	wantMLflowError(t, bogus.mpu(t, "create", "", map[string]any{"path": "x.bin", "num_parts": 1}), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
}

// newLoggedModelArtifacts creates a logged model in run's experiment, from run, and addresses its files
// (<iid>/models/<model id>/artifacts) with run's helpers.
func newLoggedModelArtifacts(t *testing.T, run *artifactRun) (*artifactRun, *metadata.LoggedModel) {
	t.Helper()
	lm := &metadata.LoggedModel{ModelID: run.model.ID, Name: "model", SourceRunID: run.cand.ID}
	if err := run.env.Store.CreateLoggedModel(context.Background(), lm); err != nil {
		t.Fatal(err)
	}
	out := *run
	out.root = fmt.Sprintf("%d/models/%s/artifacts", run.model.IID, lm.LMID)
	return &out, lm
}

// A logged model's artifact location works as a run's does — PUT, GET with Range, listings, multipart,
// delete — and holds files of its own, apart from its source run's.
func TestLoggedModelArtifacts(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	run := newArtifactRun(t, env, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	lmRun, lm := newLoggedModelArtifacts(t, run)

	wantEmptyObject(t, env.Put(lmRun.url("MLmodel"), []byte("flavors: {}\n")))
	wantEmptyObject(t, env.Put(lmRun.url("data/model.pkl"), gatewaytest.Payload(3000)))
	wantEmptyObject(t, env.Put(run.url("metrics.json"), []byte(`{}`)))
	if got, want := lmRun.list(t, ""), listing([]any{"MLmodel", 12}, []any{"data"}); !reflect.DeepEqual(got, want) {
		t.Fatalf("logged model root: %v", got)
	}
	if got, want := run.list(t, ""), listing([]any{"metrics.json", 2}); !reflect.DeepEqual(got, want) {
		t.Fatalf("the run's root lists the logged model's files: %v", got)
	}
	r := env.Do(http.MethodGet, lmRun.url("data/model.pkl"), nil, map[string]string{"Range": "bytes=1000-1009"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.Body, gatewaytest.Payload(3000)[1000:1010]) {
		t.Fatalf("range: %q", r.Body)
	}

	const partSize = 5 << 20
	data := gatewaytest.Payload(partSize + 123)
	created := lmRun.mpuCreate(t, "weights", "/tmp/w.bin", 2)
	parts := putParts(t, env, created, data, partSize)
	wantEmptyObject(t, lmRun.mpu(t, "complete", "weights", map[string]any{"path": "/tmp/w.bin", "upload_id": created.UploadID, "parts": parts}))
	r = env.Get(lmRun.url("weights/w.bin"))
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, data) {
		t.Fatalf("multipart download: %d, %d bytes", r.Status, len(r.Body))
	}
	// The package API reaches the same files by the logged model's id.
	r = env.Get(env.Srv.URL + "/api/v4/projects/team%2Fvision/packages/ml_models/" + lm.LMID.String() + "/files/weights/w.bin")
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, data) {
		t.Fatalf("package API download: %d, %d bytes", r.Status, len(r.Body))
	}

	wantEmptyObject(t, env.Do(http.MethodDelete, lmRun.url("data"), nil, nil))
	wantMLflowError(t, env.Get(lmRun.url("data/model.pkl")), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	gatewaytest.WantStatus(t, env.Get(lmRun.url("MLmodel")), http.StatusOK)

	// Unknown, malformed and misplaced ids are 404; a path that fits neither form is 400.
	other := newArtifactRun(t, env, "team/vision", "other-exp", run.prefix[len(env.Srv.URL):])
	for _, u := range []string{
		fmt.Sprintf("%s/artifacts/%d/models/m-00000000000000000000000000000001/artifacts/MLmodel", run.prefix, run.model.IID),
		fmt.Sprintf("%s/artifacts/%d/models/m-xyz/artifacts/MLmodel", run.prefix, run.model.IID),
		fmt.Sprintf("%s/artifacts/%d/models/%s/artifacts/MLmodel", run.prefix, other.model.IID, lm.LMID),
		fmt.Sprintf("%s/api/2.0/mlflow-artifacts/artifacts/%d/models/%s/artifacts/MLmodel", env.Srv.URL, run.model.IID, lm.LMID), // another project
	} {
		gatewaytest.WantStatus(t, env.Get(u), http.StatusNotFound)
	}
	wantMLflowError(t, env.Get(fmt.Sprintf("%s/artifacts/%d/models/%s/files/MLmodel", run.prefix, run.model.IID, lm.LMID)),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
}
