package packages_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// The first model's version 1.0.0 is backed by candidate iid 1, so every naming reaches the same bytes.
func TestEveryNamingReachesTheSameCandidateFiles(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	data := gatewaytest.Payload(100_000)
	r := env.Put(env.PkgURL("fraud%2Fxgb/1.0.0/files/model/weights.bin"), data)
	gatewaytest.WantStatus(t, r, http.StatusCreated)
	var up fileJSON
	r.JSON(t, &up)
	if up.Path != "model/weights.bin" || up.Size != int64(len(data)) || up.SHA256 != gatewaytest.SHA256(data) {
		t.Fatalf("upload answer %+v", up)
	}

	project := env.Srv.URL + "/api/v4/projects/team%2Fvision"
	for _, url := range []string{
		env.PkgURL("fraud%2Fxgb/1.0.0/files/model/weights.bin"),
		env.PkgURL("ml_experiment_1/1/files/model/weights.bin"),
		env.PkgURL("ml_experiment_1/candidate_1/files/model/weights.bin"),
		env.PkgURL("fraud%2Fxgb/candidate_1/files/model/weights.bin"),
		env.PkgURL("candidate:1/files/model/weights.bin"),
		env.PkgURL("candidate%3A1/files/model/weights.bin"),
		env.PkgURL("1/files/model/weights.bin"), // the version's project-unique id
		project + "/packages/generic/ml_experiment_1/1/model/weights.bin",
		env.Srv.URL + "/api/v4/projects/1/packages/ml_models/ml_experiment_1/1/files/model/weights.bin",
	} {
		r := env.Get(url)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.Body, data) {
			t.Fatalf("%s: got %d bytes that differ", url, len(r.Body))
		}
		if r.Header.Get("ETag") != `"`+gatewaytest.SHA256(data)+`"` {
			t.Fatalf("%s: ETag %q", url, r.Header.Get("ETag"))
		}
		if cd := r.Header.Get("Content-Disposition"); cd != `attachment; filename=weights.bin` {
			t.Fatalf("%s: Content-Disposition %q", url, cd)
		}
	}

	// Uploads through the legacy and candidate names land in the same candidate.
	gatewaytest.WantStatus(t, env.Put(project+"/packages/generic/ml_experiment_1/1/metrics.json", []byte(`{"acc":1}`)), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("candidate:1/files/notes/readme.txt"), []byte("hello")), http.StatusCreated)
	r = env.Get(env.PkgURL("fraud%2Fxgb/1.0.0/files"))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var list []fileJSON
	r.JSON(t, &list)
	var paths []string
	for _, f := range list {
		paths = append(paths, f.Path)
		if f.CreatedAt.IsZero() || f.SHA256 == "" {
			t.Fatalf("listing entry lacks fields: %+v", f)
		}
	}
	if got := strings.Join(paths, ","); got != "metrics.json,model/weights.bin,notes/readme.txt" {
		t.Fatalf("listing %s", got)
	}
}

func TestCandidateKindsRequireAnExistingCandidateOfThatModel(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("first/1.0.0/files/a.txt"), []byte("a")), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("second/1.0.0/files/b.txt"), []byte("b")), http.StatusCreated)
	for _, rest := range []string{
		"ml_experiment_1/99/files/x.txt", // no such candidate
		"ml_experiment_9/1/files/x.txt",  // no such model
		"ml_experiment_2/1/files/x.txt",  // candidate 1 belongs to model 1
		"second/candidate_1/files/x.txt", // same, by name
		"candidate:99/files/x.txt",
		"99/files/x.txt",
		"nosuch/candidate_1/files/x.txt",
	} {
		r := env.Put(env.PkgURL(rest), []byte("x"))
		gatewaytest.WantStatus(t, r, http.StatusNotFound)
		if r.ErrorCode(t) != "not_found" {
			t.Fatalf("%s: %s", rest, r.Body)
		}
	}
	gatewaytest.WantStatus(t, env.Get(env.PkgURL("ml_experiment_2/2/files/b.txt")), http.StatusOK)
	gatewaytest.WantStatus(t, env.Get(env.PkgURL("first/2.0.0/files/a.txt")), http.StatusNotFound)
	if keys := env.BlobKeys(); len(keys) != 2 {
		t.Fatalf("failed uploads left blobs: %v", keys)
	}
}

func TestProjects(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	// Reads never create projects.
	gatewaytest.WantStatus(t, env.Get(env.PkgURL("m/1.0.0/files/a")), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/a"), []byte("a")), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/v4/projects/1/packages/ml_models/m/1.0.0/files/a"), http.StatusOK)
	// An unknown numeric id is 404, even for a write.
	r := env.Put(env.Srv.URL+"/api/v4/projects/42/packages/ml_models/m/1.0.0/files/a", []byte("a"))
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	// Another project has its own iids: its first model is ml_experiment_1 too.
	other := env.Srv.URL + "/api/v4/projects/other/packages/ml_models/"
	gatewaytest.WantStatus(t, env.Put(other+"n/1.0.0/files/b", []byte("b")), http.StatusCreated)
	r = env.Get(other + "ml_experiment_1/1/files/b")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if string(r.Body) != "b" {
		t.Fatalf("project isolation broken: %q", r.Body)
	}
	gatewaytest.WantStatus(t, env.Get(other+"ml_experiment_1/1/files/a"), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Put(env.Srv.URL+"/api/v4/projects/bad%20path!/packages/ml_models/n/1.0.0/files/b", []byte("b")), http.StatusBadRequest)
}

// TestProjectReferences checks how a URL names a project (issue 11, defect 9): a positive int64
// without leading zeros is an id (404 when unknown, never created); "0", leading zeros, overflowing
// numbers and references starting with "-" are neither an id nor a path a project may have, and are
// 400 on every surface instead of being created on first write.
func TestProjectReferences(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/a"), []byte("a")), http.StatusCreated)
	project := func(ref string) string { return env.Srv.URL + "/api/v4/projects/" + ref }
	for _, ref := range []string{"0", "00", "007", "01", "99999999999999999999", "9223372036854775808", "-1", "-x", "%2Dx", "-team%2Fvision"} {
		r := env.Put(project(ref)+"/packages/ml_models/m/1.0.0/files/a", []byte("a"))
		if r.Status != http.StatusBadRequest || r.ErrorCode(t) != "invalid_argument" {
			t.Errorf("package upload to project %s: %d %s, want 400", ref, r.Status, r.Body)
		}
		r = env.MLflowPost(project(ref)+"/ml/mlflow", "experiments/create", `{"name": "e"}`)
		if r.Status != http.StatusBadRequest || r.MLflowError(t) != "INVALID_PARAMETER_VALUE" {
			t.Errorf("experiments/create in project %s: %d %s, want 400", ref, r.Status, r.Body)
		}
		r = env.Do(http.MethodPut, project(ref)+"/ml/mlflow/api/2.0/mlflow-artifacts/artifacts/0/"+strings.Repeat("a", 32)+"/artifacts/x",
			strings.NewReader("x"), nil)
		if r.Status != http.StatusBadRequest {
			t.Errorf("artifact upload to project %s: %d %s, want 400", ref, r.Status, r.Body)
		}
		if r := env.Get(env.Srv.URL + "/ui/projects/" + ref + "/models"); r.Status != http.StatusBadRequest {
			t.Errorf("UI page of project %s: %d, want 400", ref, r.Status)
		}
	}
	// Ids: known ones reach the project, unknown ones are 404 even for writes, which never create.
	gatewaytest.WantStatus(t, env.Get(project("1")+"/packages/ml_models/m/1.0.0/files/a"), http.StatusOK)
	gatewaytest.WantStatus(t, env.Put(project("5")+"/packages/ml_models/m/1.0.0/files/a", []byte("a")), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Put(project("9223372036854775807")+"/packages/ml_models/m/1.0.0/files/a", []byte("a")), http.StatusNotFound)
	// Paths that merely contain digits or a "-" are paths.
	for _, ref := range []string{"team%2F0", "0a", "team%2F-x", "team%2Fvision"} {
		gatewaytest.WantStatus(t, env.Put(project(ref)+"/packages/ml_models/m/1.0.0/files/a", []byte("a")), http.StatusCreated)
	}
	ps, err := env.Store.ListProjects(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, p := range ps {
		paths = append(paths, p.Path)
	}
	if strings.Join(paths, " ") != "team/vision team/0 0a team/-x" {
		t.Fatalf("projects %q", paths)
	}
}

func TestRanges(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	data := gatewaytest.Payload(10_000)
	url := env.PkgURL("m/1.0.0/files/data.bin")
	gatewaytest.WantStatus(t, env.Put(url, data), http.StatusCreated)
	etag := `"` + gatewaytest.SHA256(data) + `"`

	r := env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=100-199"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.Body, data[100:200]) || r.Header.Get("Content-Range") != "bytes 100-199/10000" {
		t.Fatalf("range: %d bytes, Content-Range %q", len(r.Body), r.Header.Get("Content-Range"))
	}
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-10"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.Body, data[9990:]) {
		t.Fatal("suffix range differs")
	}
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=9000-"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.Body, data[9000:]) {
		t.Fatal("open range differs")
	}
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9,20-29"})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(r.Body, data[0:10]) || !bytes.Contains(r.Body, data[20:30]) {
		t.Fatal("multi-range answer wrong")
	}
	gatewaytest.WantStatus(t, env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=20000-"}), http.StatusRequestedRangeNotSatisfiable)
	// If-Range with the current ETag honours the range; with a stale one it sends everything.
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9", "If-Range": etag})
	gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	r = env.Do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`})
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if len(r.Body) != len(data) {
		t.Fatal("stale If-Range did not send the whole file")
	}
	r = env.Do(http.MethodGet, url, nil, map[string]string{"If-None-Match": etag})
	gatewaytest.WantStatus(t, r, http.StatusNotModified)
	r = env.Do(http.MethodHead, url, nil, nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if r.Header.Get("Content-Length") != "10000" || len(r.Body) != 0 {
		t.Fatalf("HEAD: Content-Length %q, %d body bytes", r.Header.Get("Content-Length"), len(r.Body))
	}
}

func TestChecksumHeader(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	data := gatewaytest.Payload(5000)
	url := env.PkgURL("m/1.0.0/files/a.bin")
	r := env.Do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": gatewaytest.SHA256([]byte("other"))})
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
	if r.ErrorCode(t) != "checksum_mismatch" {
		t.Fatalf("mismatch code: %s", r.Body)
	}
	gatewaytest.WantStatus(t, env.Get(url), http.StatusNotFound)
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("a rejected upload left blobs: %v", keys)
	}
	gatewaytest.WantStatus(t, env.Do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": "nothex"}), http.StatusBadRequest)
	r = env.Do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": strings.ToUpper(gatewaytest.SHA256(data))})
	gatewaytest.WantStatus(t, r, http.StatusCreated)
}

func TestReuploadReplacesAndIdenticalBytesChangeNothing(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	url := env.PkgURL("m/1.0.0/files/a.bin")
	gatewaytest.WantStatus(t, env.Put(url, []byte("first")), http.StatusCreated)
	keys := env.BlobKeys()
	before, err := env.Store.File(context.Background(), 1, "a.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Identical bytes: same row, same blob, no extra blob.
	gatewaytest.WantStatus(t, env.Put(url, []byte("first")), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Do(http.MethodPut, url, bytes.NewReader([]byte("first")), map[string]string{"X-Checksum-SHA256": gatewaytest.SHA256([]byte("first"))}), http.StatusCreated)
	same, err := env.Store.File(context.Background(), 1, "a.bin")
	if err != nil {
		t.Fatal(err)
	}
	if same.BlobKey != before.BlobKey || !same.CreatedAt.Equal(before.CreatedAt) || fmt.Sprint(env.BlobKeys()) != fmt.Sprint(keys) {
		t.Fatalf("identical re-upload changed something: %+v vs %+v", same, before)
	}
	// Different bytes: replaced, and the old blob is gone.
	gatewaytest.WantStatus(t, env.Put(url, []byte("second")), http.StatusCreated)
	r := env.Get(url)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if string(r.Body) != "second" {
		t.Fatalf("after replace: %q", r.Body)
	}
	if now := env.BlobKeys(); len(now) != 1 || now[0] == keys[0] {
		t.Fatalf("old blob not removed: before %v, now %v", keys, now)
	}
}

func TestDelete(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	url := env.PkgURL("m/1.0.0/files/dir/a.bin")
	gatewaytest.WantStatus(t, env.Put(url, []byte("x")), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Do(http.MethodDelete, url, nil, nil), http.StatusNoContent)
	gatewaytest.WantStatus(t, env.Get(url), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Do(http.MethodDelete, url, nil, nil), http.StatusNotFound)
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("delete left blobs: %v", keys)
	}
}

func TestMultipartUpload(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	data := gatewaytest.Payload(300_000)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("status", "default")
	fw, _ := mw.CreateFormFile("file", "model.onnx")
	_, _ = fw.Write(data)
	_ = mw.Close()
	url := env.PkgURL("m/2.1.0-rc.1/files/model.onnx")
	r := env.Do(http.MethodPut, url, bytes.NewReader(body.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
	gatewaytest.WantStatus(t, r, http.StatusCreated)
	var up fileJSON
	r.JSON(t, &up)
	if up.Size != int64(len(data)) || up.SHA256 != gatewaytest.SHA256(data) {
		t.Fatalf("multipart upload stored %+v", up)
	}
	r = env.Get(url)
	if !bytes.Equal(r.Body, data) {
		t.Fatal("multipart download differs")
	}
	// A form without a file field is a client error.
	body.Reset()
	mw = multipart.NewWriter(&body)
	_ = mw.WriteField("status", "default")
	_ = mw.Close()
	r = env.Do(http.MethodPut, url, bytes.NewReader(body.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
}

// TestMultipartFramingIsBounded checks that what precedes the file in a multipart upload (part headers,
// other fields), which is parsed into memory, is held to a small allowance: 413, never megabytes of
// headers held per upload.
func TestMultipartFramingIsBounded(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	url := env.PkgURL("m/1.0.0/files/model.onnx")
	for name, write := range map[string]func(mw *multipart.Writer){
		"a 2 MiB part header": func(mw *multipart.Writer) {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", `form-data; name="status"`)
			h.Set("X-Padding", strings.Repeat("h", 2<<20))
			w, _ := mw.CreatePart(h)
			_, _ = w.Write([]byte("default"))
		},
		"a 2 MiB field": func(mw *multipart.Writer) { _ = mw.WriteField("status", strings.Repeat("s", 2<<20)) },
	} {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		write(mw)
		fw, _ := mw.CreateFormFile("file", "model.onnx")
		_, _ = fw.Write([]byte("weights"))
		_ = mw.Close()
		r := env.Do(http.MethodPut, url, bytes.NewReader(body.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
		if r.Status != http.StatusRequestEntityTooLarge || r.ErrorCode(t) != "too_large" {
			t.Errorf("%s before the file: %d %s, want 413 too_large", name, r.Status, r.Body)
		}
	}
	if r := env.Get(url); r.Status != http.StatusNotFound {
		t.Fatalf("a refused upload stored a file: %d", r.Status)
	}
}

func TestSizeLimit(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{MaxFileSize: 1000})
	url := env.PkgURL("m/1.0.0/files/big.bin")
	r := env.Put(url, gatewaytest.Payload(1001))
	gatewaytest.WantStatus(t, r, http.StatusRequestEntityTooLarge)
	if r.ErrorCode(t) != "too_large" {
		t.Fatalf("code: %s", r.Body)
	}
	// A chunked body has no Content-Length: it is counted and cut off.
	r = env.Do(http.MethodPut, url, io.MultiReader(bytes.NewReader(gatewaytest.Payload(600)), bytes.NewReader(gatewaytest.Payload(600))), nil)
	gatewaytest.WantStatus(t, r, http.StatusRequestEntityTooLarge)
	gatewaytest.WantStatus(t, env.Get(url), http.StatusNotFound)
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("oversize uploads left blobs: %v", keys)
	}
	gatewaytest.WantStatus(t, env.Put(url, gatewaytest.Payload(1000)), http.StatusCreated)
}

func TestBadNamesAndPathTraversal(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	for _, rest := range []string{
		"m/1.0.0/files/../x",
		"m/1.0.0/files/a/../../x",
		"m/1.0.0/files/%2e%2e/x",
		"m/1.0.0/files/a%2F..%2F..%2Fx",
		"m/1.0.0/files/a//b",
		"m/1.0.0/files/./a",
		"m/1.0.0/files/a%5Cb",
		"m/1.0.0/files/a%00b",
		"m/1.0.0/files/%2Fetc%2Fpasswd",
		"m/1.0.0/files/" + strings.Repeat("a", 300),
		"m/v1.0.0/files/a",
		"m/1.0/files/a",
		"fr@ud/1.0.0/files/a",
		"team/fraud/1.0.0/files/a",
		"ml_experiment_1/1.0.0/files/a",
		"m/candidate_01/files/a",
		"m/1.0.0/files",
		"m/1.0.0/a/b",
		"-/1.0.0/files/a",
	} {
		r := env.Put(env.PkgURL(rest), []byte("x"))
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", rest, r.Status, r.Body)
			continue
		}
		r.ErrorCode(t)
	}
	// Raw ".." that a client did not normalise never escapes: it is a 400 or a 404, never a file.
	req, _ := http.NewRequest(http.MethodGet, env.PkgURL("m/1.0.0/files/x"), nil)
	req.URL.Opaque = "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files/../../../../etc/passwd"
	resp, err := env.Srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("raw traversal: %d", resp.StatusCode)
	}
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("bad requests stored blobs: %v", keys)
	}
	// Good uploads never put user-supplied names into blob keys.
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("evil..name/1.0.0/files/a%20b+c/..d.bin"), []byte("x")), http.StatusCreated)
	keyShape := regexp.MustCompile(`^c/[0-9a-f]{16}/[0-9a-f]{32}$`)
	for _, k := range env.BlobKeys() {
		if !keyShape.MatchString(k) {
			t.Fatalf("blob key %q", k)
		}
	}
}

// unavailableBackend fails every operation the way a dead plugin or an unreachable S3 does.
type unavailableBackend struct{ backends.Backend }

func (unavailableBackend) Put(context.Context, string, io.Reader, int64, backends.PutOptions) (backends.Info, error) {
	return backends.Info{}, fmt.Errorf("dial tcp: %w", backends.ErrUnavailable)
}

func TestBackendUnavailableIs503(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	srv := gateway.New(gateway.Config{}, env.Store, backends.Checked("unavailable", unavailableBackend{env.Backend}), nil)
	req, _ := http.NewRequest(http.MethodPut, "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

// fileJSON is a file as the package API shows it.
type fileJSON struct {
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// mlflowCall posts an MLflow RPC to the team/vision tracking URI and decodes a 200 answer into out.
func mlflowCall(t *testing.T, env *gatewaytest.Env, rpc, body string, out any) {
	t.Helper()
	r := env.MLflowPost(env.Srv.URL+"/api/v4/projects/team%2Fvision/ml/mlflow", rpc, body)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if out != nil {
		r.JSON(t, out)
	}
}

// An MLflow 3 logged model's files have their own package address, m-<id>/files/<path>; a version
// registered from the logged model lists exactly those files, while its source run keeps its own.
func TestLoggedModelFilesAndTheVersionsTheyBack(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	mlflowCall(t, env, "experiments/create", `{"name":"lm-test"}`, &exp)
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mlflowCall(t, env, "runs/create", `{"experiment_id":"`+exp.ExperimentID+`"}`, &run)
	var created struct {
		Model struct {
			Info struct {
				ModelID string `json:"model_id"`
			} `json:"info"`
		} `json:"model"`
	}
	mlflowCall(t, env, "logged-models", fmt.Sprintf(`{"experiment_id":%q,"name":"model","source_run_id":%q}`,
		exp.ExperimentID, run.Run.Info.RunID), &created)
	lmid := created.Model.Info.ModelID
	if !regexp.MustCompile(`^m-[0-9a-f]{32}$`).MatchString(lmid) {
		t.Fatalf("model_id %q", lmid)
	}

	weights := gatewaytest.Payload(50_000)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL(lmid+"/files/model.pkl"), weights), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL(lmid+"/files/MLmodel"), []byte("flavors: {}\n")), http.StatusCreated)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("candidate:1/files/metrics.json"), []byte(`{}`)), http.StatusCreated)

	mlflowCall(t, env, "registered-models/create", `{"name":"lm-reg"}`, nil)
	var mv struct {
		ModelVersion struct {
			Version string `json:"version"`
			ModelID string `json:"model_id"`
		} `json:"model_version"`
	}
	mlflowCall(t, env, "model-versions/create", fmt.Sprintf(`{"name":"lm-reg","source":"models:/%s","model_id":%q,"run_id":%q}`,
		lmid, lmid, run.Run.Info.RunID), &mv)
	if mv.ModelVersion.ModelID != lmid {
		t.Fatalf("version answer %+v", mv)
	}

	listing := func(rest string) string {
		t.Helper()
		r := env.Get(env.PkgURL(rest))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var files []fileJSON
		r.JSON(t, &files)
		var paths []string
		for _, f := range files {
			paths = append(paths, f.Path)
		}
		return strings.Join(paths, ",")
	}
	for _, rest := range []string{lmid + "/files", "lm-reg/1.0.0/files"} {
		if got := listing(rest); got != "MLmodel,model.pkl" {
			t.Fatalf("%s lists %q, want the logged model's files", rest, got)
		}
	}
	for _, rest := range []string{"candidate:1/files", "lm-test/candidate_1/files", "ml_experiment_1/1/files"} {
		if got := listing(rest); got != "metrics.json" {
			t.Fatalf("%s lists %q, want only the run's own files", rest, got)
		}
	}
	for _, rest := range []string{lmid + "/files/model.pkl", "lm-reg/1.0.0/files/model.pkl"} {
		r := env.Get(env.PkgURL(rest))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.Body, weights) {
			t.Fatalf("%s: %d bytes that differ", rest, len(r.Body))
		}
	}
	// Registering copied nothing: one blob per stored file.
	if keys := env.BlobKeys(); len(keys) != 3 {
		t.Fatalf("blobs %v, want 3", keys)
	}

	// The version's model is not the logged model's: writing through the version is refused, since it
	// would change another model's files.
	r := env.Put(env.PkgURL("lm-reg/1.0.0/files/extra.txt"), []byte("x"))
	gatewaytest.WantStatus(t, r, http.StatusConflict)

	// Unknown and malformed ids.
	gatewaytest.WantStatus(t, env.Get(env.PkgURL("m-00000000000000000000000000000001/files/model.pkl")), http.StatusNotFound)
	r = env.Get(env.PkgURL("m-0123/files/model.pkl"))
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
	if r.ErrorCode(t) == "" {
		t.Fatal("no error code")
	}
	// Another project does not see the logged model.
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/v4/projects/other/packages/ml_models/"+lmid+"/files/model.pkl"), http.StatusNotFound)
}

// failingBody yields n bytes, then fails: a client whose body breaks off.
type failingBody struct{ n int }

func (b *failingBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, fmt.Errorf("client gave up")
	}
	n := min(len(p), b.n)
	for i := range p[:n] {
		p[i] = 'x'
	}
	b.n -= n
	return n, nil
}

// observedBackend reports the outcome of every Put, so that a test knows when the server is done with
// an upload whose client could not see the answer.
type observedBackend struct {
	*memory.Backend
	puts chan error
}

func (b observedBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	info, err := b.Backend.Put(ctx, key, r, size, opts)
	b.puts <- err
	return info, err
}

// TestFailedFirstUploadCreatesNoVersion checks issue 11's defect 4: a PUT to a version that does not
// exist yet creates it only with its first committed file. A checksum mismatch, a broken multipart body
// or a body that breaks off leaves no model, version or candidate anywhere (package listings, MLflow's
// registry and experiments, the UI), so "latest" never points at an empty version; the next good upload
// creates the version with its file, and concurrent first uploads of one version share it.
func TestFailedFirstUploadCreatesNoVersion(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := observedBackend{Backend: memory.New(), puts: make(chan error, 100)}
	env := &gatewaytest.Env{T: t, Store: store, Blobs: blobs.Backend, Backend: backends.Checked("memory", blobs)}
	env.Srv = httptest.NewServer(gateway.New(gateway.Config{}, store, env.Backend, gatewaytest.Logger()).Handler())
	t.Cleanup(func() {
		env.Srv.Close()
		_ = store.Close()
	})
	url := env.PkgURL("ghost/2.0.0/files/x.bin")
	// Another model in the project, so that listings are not empty by accident.
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("real/1.0.0/files/a"), []byte("a")), http.StatusCreated)
	// nextPut takes the outcome of the backend's next Put.
	nextPut := func(ok bool, what string) {
		t.Helper()
		select {
		case err := <-blobs.puts:
			if (err == nil) != ok {
				t.Fatalf("%s: the backend's Put returned %v", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the server did not store or fail its blob", what)
		}
	}
	nextPut(true, "the other model's upload")
	mlflow := env.Srv.URL + "/api/v4/projects/team%2Fvision/ml/mlflow"
	wantNoGhost := func(after string) {
		t.Helper()
		if r := env.Get(env.PkgURL("ghost/2.0.0/files")); r.Status != http.StatusNotFound {
			t.Errorf("after %s: the version lists with %d: %s", after, r.Status, r.Body)
		}
		for _, call := range []string{"registered-models/search?max_results=100", "experiments/search?max_results=100"} {
			r := env.Get(mlflow + "/api/2.0/mlflow/" + call)
			if r.Status != http.StatusOK || strings.Contains(string(r.Body), "ghost") {
				t.Errorf("after %s: %s shows the model: %d %s", after, call, r.Status, r.Body)
			}
		}
		if r := env.Get(mlflow + "/api/2.0/mlflow/registered-models/get-latest-versions?name=ghost"); r.Status != http.StatusNotFound {
			t.Errorf("after %s: the latest versions of the model: %d %s", after, r.Status, r.Body)
		}
		if r := env.Get(env.Srv.URL + "/ui/projects/team%2Fvision/models"); r.Status != http.StatusOK || strings.Contains(string(r.Body), "ghost") {
			t.Errorf("after %s: the UI lists the model (%d)", after, r.Status)
		}
		if n := len(env.BlobKeys()); n != 1 {
			t.Errorf("after %s: %d blobs, want only the other model's", after, n)
		}
	}

	r := env.Do(http.MethodPut, url, bytes.NewReader([]byte("weights")), map[string]string{"X-Checksum-SHA256": strings.Repeat("0", 64)})
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
	nextPut(false, "the upload with a checksum mismatch")
	wantNoGhost("a checksum mismatch")

	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "x.bin")
	_, _ = fw.Write([]byte("weights"))
	broken := form.Bytes() // no closing boundary
	r = env.Do(http.MethodPut, url, bytes.NewReader(broken), map[string]string{"Content-Type": mw.FormDataContentType()})
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
	nextPut(false, "the upload of a broken multipart body")
	wantNoGhost("a broken multipart body")

	req, _ := http.NewRequest(http.MethodPut, url, &failingBody{n: 1 << 20})
	req.ContentLength = 4 << 20
	if resp, err := env.Srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a body that broke off: %d", resp.StatusCode)
	}
	// The server notices the broken body on its own time: wait until its upload has failed.
	nextPut(false, "the upload whose body broke off")
	wantNoGhost("a body that broke off")

	// Concurrent first uploads of one version: one version, one candidate, every file in it.
	const n = 8
	errs := make(chan error, n)
	go func() {
		for range n {
			<-blobs.puts
		}
	}()
	for i := range n {
		go func() {
			r := env.Put(env.PkgURL(fmt.Sprintf("ghost/2.0.0/files/part-%d.bin", i)), []byte{byte(i)})
			if r.Status != http.StatusCreated {
				errs <- fmt.Errorf("upload %d: %d %s", i, r.Status, r.Body)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var files []fileJSON
	r = env.Get(env.PkgURL("ghost/2.0.0/files"))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	r.JSON(t, &files)
	if len(files) != n {
		t.Fatalf("the new version lists %d files, want %d: %s", len(files), n, r.Body)
	}
	r = env.Get(mlflow + "/api/2.0/mlflow/registered-models/get-latest-versions?name=ghost")
	if r.Status != http.StatusOK || strings.Count(string(r.Body), `"version"`) != 1 {
		t.Fatalf("latest versions of ghost: %d %s", r.Status, r.Body)
	}
	// Its one candidate is iid 2 (after the other model's 1): the failed uploads created none.
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/v4/projects/team%2Fvision/packages/ml_models/candidate:2/files/part-0.bin"), http.StatusOK)
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/v4/projects/team%2Fvision/packages/ml_models/candidate:3/files"), http.StatusNotFound)
}
