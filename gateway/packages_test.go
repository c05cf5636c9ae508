package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

func TestHealth(t *testing.T) {
	env := newTestEnv(t, Config{})
	r := env.get(env.srv.URL + "/health")
	wantStatus(t, r, http.StatusOK)
	var body map[string]string
	r.json(t, &body)
	if body["status"] != "ok" {
		t.Fatalf("health body %v", body)
	}
	r = env.get(env.srv.URL + "/nothing/here")
	wantStatus(t, r, http.StatusNotFound)
	if code := r.errorCode(t); code != "not_found" {
		t.Fatalf("unknown route code %q", code)
	}
}

// The first model's version 1.0.0 is backed by candidate iid 1, so every naming reaches the same bytes.
func TestEveryNamingReachesTheSameCandidateFiles(t *testing.T) {
	env := newTestEnv(t, Config{})
	data := payload(100_000)
	r := env.put(env.pkgURL("fraud%2Fxgb/1.0.0/files/model/weights.bin"), data)
	wantStatus(t, r, http.StatusCreated)
	var up fileJSON
	r.json(t, &up)
	if up.Path != "model/weights.bin" || up.Size != int64(len(data)) || up.SHA256 != sha(data) {
		t.Fatalf("upload answer %+v", up)
	}

	project := env.srv.URL + "/api/v4/projects/team%2Fvision"
	for _, url := range []string{
		env.pkgURL("fraud%2Fxgb/1.0.0/files/model/weights.bin"),
		env.pkgURL("ml_experiment_1/1/files/model/weights.bin"),
		env.pkgURL("ml_experiment_1/candidate_1/files/model/weights.bin"),
		env.pkgURL("fraud%2Fxgb/candidate_1/files/model/weights.bin"),
		env.pkgURL("candidate:1/files/model/weights.bin"),
		env.pkgURL("candidate%3A1/files/model/weights.bin"),
		env.pkgURL("1/files/model/weights.bin"), // the version's project-unique id
		project + "/packages/generic/ml_experiment_1/1/model/weights.bin",
		env.srv.URL + "/api/v4/projects/1/packages/ml_models/ml_experiment_1/1/files/model/weights.bin",
	} {
		r := env.get(url)
		wantStatus(t, r, http.StatusOK)
		if !bytes.Equal(r.body, data) {
			t.Fatalf("%s: got %d bytes that differ", url, len(r.body))
		}
		if r.header.Get("ETag") != `"`+sha(data)+`"` {
			t.Fatalf("%s: ETag %q", url, r.header.Get("ETag"))
		}
		if cd := r.header.Get("Content-Disposition"); cd != `attachment; filename=weights.bin` {
			t.Fatalf("%s: Content-Disposition %q", url, cd)
		}
	}

	// Uploads through the legacy and candidate names land in the same candidate.
	wantStatus(t, env.put(project+"/packages/generic/ml_experiment_1/1/metrics.json", []byte(`{"acc":1}`)), http.StatusCreated)
	wantStatus(t, env.put(env.pkgURL("candidate:1/files/notes/readme.txt"), []byte("hello")), http.StatusCreated)
	r = env.get(env.pkgURL("fraud%2Fxgb/1.0.0/files"))
	wantStatus(t, r, http.StatusOK)
	var list []fileJSON
	r.json(t, &list)
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
	env := newTestEnv(t, Config{})
	wantStatus(t, env.put(env.pkgURL("first/1.0.0/files/a.txt"), []byte("a")), http.StatusCreated)
	wantStatus(t, env.put(env.pkgURL("second/1.0.0/files/b.txt"), []byte("b")), http.StatusCreated)
	for _, rest := range []string{
		"ml_experiment_1/99/files/x.txt", // no such candidate
		"ml_experiment_9/1/files/x.txt",  // no such model
		"ml_experiment_2/1/files/x.txt",  // candidate 1 belongs to model 1
		"second/candidate_1/files/x.txt", // same, by name
		"candidate:99/files/x.txt",
		"99/files/x.txt",
		"nosuch/candidate_1/files/x.txt",
	} {
		r := env.put(env.pkgURL(rest), []byte("x"))
		wantStatus(t, r, http.StatusNotFound)
		if r.errorCode(t) != "not_found" {
			t.Fatalf("%s: %s", rest, r.body)
		}
	}
	wantStatus(t, env.get(env.pkgURL("ml_experiment_2/2/files/b.txt")), http.StatusOK)
	wantStatus(t, env.get(env.pkgURL("first/2.0.0/files/a.txt")), http.StatusNotFound)
	if keys := env.blobKeys(); len(keys) != 2 {
		t.Fatalf("failed uploads left blobs: %v", keys)
	}
}

func TestProjects(t *testing.T) {
	env := newTestEnv(t, Config{})
	// Reads never create projects.
	wantStatus(t, env.get(env.pkgURL("m/1.0.0/files/a")), http.StatusNotFound)
	wantStatus(t, env.put(env.pkgURL("m/1.0.0/files/a"), []byte("a")), http.StatusCreated)
	wantStatus(t, env.get(env.srv.URL+"/api/v4/projects/1/packages/ml_models/m/1.0.0/files/a"), http.StatusOK)
	// An unknown numeric id is 404, even for a write.
	r := env.put(env.srv.URL+"/api/v4/projects/42/packages/ml_models/m/1.0.0/files/a", []byte("a"))
	wantStatus(t, r, http.StatusNotFound)
	// Another project has its own iids: its first model is ml_experiment_1 too.
	other := env.srv.URL + "/api/v4/projects/other/packages/ml_models/"
	wantStatus(t, env.put(other+"n/1.0.0/files/b", []byte("b")), http.StatusCreated)
	r = env.get(other + "ml_experiment_1/1/files/b")
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "b" {
		t.Fatalf("project isolation broken: %q", r.body)
	}
	wantStatus(t, env.get(other+"ml_experiment_1/1/files/a"), http.StatusNotFound)
	wantStatus(t, env.put(env.srv.URL+"/api/v4/projects/bad%20path!/packages/ml_models/n/1.0.0/files/b", []byte("b")), http.StatusBadRequest)
}

func TestRanges(t *testing.T) {
	env := newTestEnv(t, Config{})
	data := payload(10_000)
	url := env.pkgURL("m/1.0.0/files/data.bin")
	wantStatus(t, env.put(url, data), http.StatusCreated)
	etag := `"` + sha(data) + `"`

	r := env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=100-199"})
	wantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.body, data[100:200]) || r.header.Get("Content-Range") != "bytes 100-199/10000" {
		t.Fatalf("range: %d bytes, Content-Range %q", len(r.body), r.header.Get("Content-Range"))
	}
	r = env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=-10"})
	wantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.body, data[9990:]) {
		t.Fatal("suffix range differs")
	}
	r = env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=9000-"})
	wantStatus(t, r, http.StatusPartialContent)
	if !bytes.Equal(r.body, data[9000:]) {
		t.Fatal("open range differs")
	}
	r = env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9,20-29"})
	wantStatus(t, r, http.StatusPartialContent)
	if !strings.HasPrefix(r.header.Get("Content-Type"), "multipart/byteranges") ||
		!bytes.Contains(r.body, data[0:10]) || !bytes.Contains(r.body, data[20:30]) {
		t.Fatal("multi-range answer wrong")
	}
	wantStatus(t, env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=20000-"}), http.StatusRequestedRangeNotSatisfiable)
	// If-Range with the current ETag honours the range; with a stale one it sends everything.
	r = env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9", "If-Range": etag})
	wantStatus(t, r, http.StatusPartialContent)
	r = env.do(http.MethodGet, url, nil, map[string]string{"Range": "bytes=0-9", "If-Range": `"stale"`})
	wantStatus(t, r, http.StatusOK)
	if len(r.body) != len(data) {
		t.Fatal("stale If-Range did not send the whole file")
	}
	r = env.do(http.MethodGet, url, nil, map[string]string{"If-None-Match": etag})
	wantStatus(t, r, http.StatusNotModified)
	r = env.do(http.MethodHead, url, nil, nil)
	wantStatus(t, r, http.StatusOK)
	if r.header.Get("Content-Length") != "10000" || len(r.body) != 0 {
		t.Fatalf("HEAD: Content-Length %q, %d body bytes", r.header.Get("Content-Length"), len(r.body))
	}
}

func TestChecksumHeader(t *testing.T) {
	env := newTestEnv(t, Config{})
	data := payload(5000)
	url := env.pkgURL("m/1.0.0/files/a.bin")
	r := env.do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": sha([]byte("other"))})
	wantStatus(t, r, http.StatusBadRequest)
	if r.errorCode(t) != "checksum_mismatch" {
		t.Fatalf("mismatch code: %s", r.body)
	}
	wantStatus(t, env.get(url), http.StatusNotFound)
	if keys := env.blobKeys(); len(keys) != 0 {
		t.Fatalf("a rejected upload left blobs: %v", keys)
	}
	wantStatus(t, env.do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": "nothex"}), http.StatusBadRequest)
	r = env.do(http.MethodPut, url, bytes.NewReader(data), map[string]string{"X-Checksum-SHA256": strings.ToUpper(sha(data))})
	wantStatus(t, r, http.StatusCreated)
}

func TestReuploadReplacesAndIdenticalBytesChangeNothing(t *testing.T) {
	env := newTestEnv(t, Config{})
	url := env.pkgURL("m/1.0.0/files/a.bin")
	wantStatus(t, env.put(url, []byte("first")), http.StatusCreated)
	keys := env.blobKeys()
	before, err := env.store.File(context.Background(), 1, "a.bin")
	if err != nil {
		t.Fatal(err)
	}
	// Identical bytes: same row, same blob, no extra blob.
	wantStatus(t, env.put(url, []byte("first")), http.StatusCreated)
	wantStatus(t, env.do(http.MethodPut, url, bytes.NewReader([]byte("first")), map[string]string{"X-Checksum-SHA256": sha([]byte("first"))}), http.StatusCreated)
	same, err := env.store.File(context.Background(), 1, "a.bin")
	if err != nil {
		t.Fatal(err)
	}
	if same.BlobKey != before.BlobKey || !same.CreatedAt.Equal(before.CreatedAt) || fmt.Sprint(env.blobKeys()) != fmt.Sprint(keys) {
		t.Fatalf("identical re-upload changed something: %+v vs %+v", same, before)
	}
	// Different bytes: replaced, and the old blob is gone.
	wantStatus(t, env.put(url, []byte("second")), http.StatusCreated)
	r := env.get(url)
	wantStatus(t, r, http.StatusOK)
	if string(r.body) != "second" {
		t.Fatalf("after replace: %q", r.body)
	}
	if now := env.blobKeys(); len(now) != 1 || now[0] == keys[0] {
		t.Fatalf("old blob not removed: before %v, now %v", keys, now)
	}
}

func TestDelete(t *testing.T) {
	env := newTestEnv(t, Config{})
	url := env.pkgURL("m/1.0.0/files/dir/a.bin")
	wantStatus(t, env.put(url, []byte("x")), http.StatusCreated)
	wantStatus(t, env.do(http.MethodDelete, url, nil, nil), http.StatusNoContent)
	wantStatus(t, env.get(url), http.StatusNotFound)
	wantStatus(t, env.do(http.MethodDelete, url, nil, nil), http.StatusNotFound)
	if keys := env.blobKeys(); len(keys) != 0 {
		t.Fatalf("delete left blobs: %v", keys)
	}
}

func TestMultipartUpload(t *testing.T) {
	env := newTestEnv(t, Config{})
	data := payload(300_000)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("status", "default")
	fw, _ := mw.CreateFormFile("file", "model.onnx")
	_, _ = fw.Write(data)
	_ = mw.Close()
	url := env.pkgURL("m/2.1.0-rc.1/files/model.onnx")
	r := env.do(http.MethodPut, url, bytes.NewReader(body.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
	wantStatus(t, r, http.StatusCreated)
	var up fileJSON
	r.json(t, &up)
	if up.Size != int64(len(data)) || up.SHA256 != sha(data) {
		t.Fatalf("multipart upload stored %+v", up)
	}
	r = env.get(url)
	if !bytes.Equal(r.body, data) {
		t.Fatal("multipart download differs")
	}
	// A form without a file field is a client error.
	body.Reset()
	mw = multipart.NewWriter(&body)
	_ = mw.WriteField("status", "default")
	_ = mw.Close()
	r = env.do(http.MethodPut, url, bytes.NewReader(body.Bytes()), map[string]string{"Content-Type": mw.FormDataContentType()})
	wantStatus(t, r, http.StatusBadRequest)
}

func TestSizeLimit(t *testing.T) {
	env := newTestEnv(t, Config{MaxFileSize: 1000})
	url := env.pkgURL("m/1.0.0/files/big.bin")
	r := env.put(url, payload(1001))
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	if r.errorCode(t) != "too_large" {
		t.Fatalf("code: %s", r.body)
	}
	// A chunked body has no Content-Length: it is counted and cut off.
	r = env.do(http.MethodPut, url, io.MultiReader(bytes.NewReader(payload(600)), bytes.NewReader(payload(600))), nil)
	wantStatus(t, r, http.StatusRequestEntityTooLarge)
	wantStatus(t, env.get(url), http.StatusNotFound)
	if keys := env.blobKeys(); len(keys) != 0 {
		t.Fatalf("oversize uploads left blobs: %v", keys)
	}
	wantStatus(t, env.put(url, payload(1000)), http.StatusCreated)
}

func TestBadNamesAndPathTraversal(t *testing.T) {
	env := newTestEnv(t, Config{})
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
		r := env.put(env.pkgURL(rest), []byte("x"))
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", rest, r.status, r.body)
			continue
		}
		r.errorCode(t)
	}
	// Raw ".." that a client did not normalise never escapes: it is a 400 or a 404, never a file.
	req, _ := http.NewRequest(http.MethodGet, env.pkgURL("m/1.0.0/files/x"), nil)
	req.URL.Opaque = "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files/../../../../etc/passwd"
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
		t.Fatalf("raw traversal: %d", resp.StatusCode)
	}
	if keys := env.blobKeys(); len(keys) != 0 {
		t.Fatalf("bad requests stored blobs: %v", keys)
	}
	// Good uploads never put user-supplied names into blob keys.
	wantStatus(t, env.put(env.pkgURL("evil..name/1.0.0/files/a%20b+c/..d.bin"), []byte("x")), http.StatusCreated)
	keyShape := regexp.MustCompile(`^c/[0-9a-f]{16}/[0-9a-f]{32}$`)
	for _, k := range env.blobKeys() {
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
	env := newTestEnv(t, Config{})
	srv := New(Config{}, env.store, unavailableBackend{env.backend}, nil)
	req, _ := http.NewRequest(http.MethodPut, "/api/v4/projects/p/packages/ml_models/m/1.0.0/files/a", strings.NewReader("x"))
	rec := newRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}

func TestErrorTable(t *testing.T) {
	cases := []struct {
		err    error
		status int
	}{
		{fmt.Errorf("x: %w", metadata.ErrNotFound), 404},
		{fmt.Errorf("x: %w", backends.ErrNotFound), 404},
		{fmt.Errorf("x: %w", metadata.ErrExists), 409},
		{fmt.Errorf("x: %w", metadata.ErrConflict), 409},
		{fmt.Errorf("x: %w", metadata.ErrInvalid), 400},
		{fmt.Errorf("x: %w", backends.ErrChecksum), 400},
		{fmt.Errorf("x: %w", ErrTooLarge), 413},
		{fmt.Errorf("x: %w", backends.ErrInvalidRange), 416},
		{fmt.Errorf("x: %w", backends.ErrUnavailable), 503},
		{fmt.Errorf("x: %w", backends.ErrInvalidKey), 500},
		{errors.New("boom"), 500},
	}
	for _, c := range cases {
		if got, _ := classify(c.err); got.status != c.status {
			t.Errorf("%v: %d, want %d", c.err, got.status, c.status)
		}
	}
}
