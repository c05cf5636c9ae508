package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

func checkedMemory(name string) backends.Backend { return backends.Checked(name, memory.New()) }

func TestStaticStorageRouting(t *testing.T) {
	bs := map[string]backends.Backend{"local": checkedMemory("local"), "fast": checkedMemory("fast"), "cold": checkedMemory("cold")}
	st, err := NewStaticStorage(bs, "local", []Route{
		{Project: "team/vision", Model: "big-*", Backend: "cold"}, // more specific first: order decides
		{Project: "team/*", Backend: "fast"},
		{Model: "archive", Backend: "cold"},
		{Project: "*", Model: "scratch?", Backend: "fast"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ project, model, want string }{
		{"team/vision", "big-llm", "cold"},
		{"team/vision", "small", "fast"},
		{"team/a/b", "small", "local"}, // "*" stops at "/"
		{"other", "archive", "cold"},
		{"deep/group/proj", "scratch1", "fast"}, // a lone "*" matches any path
		{"deep/group/proj", "scratch12", "local"},
		{"other", "model", "local"},
	} {
		name, b := st.ForUpload(tc.project, tc.model)
		if name != tc.want || b != bs[tc.want] {
			t.Errorf("ForUpload(%q, %q) = %q, want %q", tc.project, tc.model, name, tc.want)
		}
	}
	for _, name := range []string{"local", "fast", "cold"} {
		if b, err := st.Get(name); err != nil || b != bs[name] {
			t.Errorf("Get(%q) = %v, %v", name, b, err)
		}
	}
	if b, err := st.Get(""); err != nil || b != bs["local"] {
		t.Errorf(`Get("") = %v, %v; want the default backend`, b, err)
	}
	_, err = st.Get("gone")
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("Get(unknown) = %v; want ErrUnavailable naming the backend", err)
	}
}

func TestStaticStorageRejectsBadConfig(t *testing.T) {
	bs := map[string]backends.Backend{"a": checkedMemory("a")}
	for name, tc := range map[string]struct {
		def    string
		routes []Route
		want   string
	}{
		"unknown default":       {"b", nil, `default backend "b"`},
		"empty default":         {"", nil, `default backend ""`},
		"route to unknown":      {"a", []Route{{Project: "x", Backend: "nope"}}, `names backend "nope"`},
		"malformed pattern":     {"a", []Route{{Project: "[", Backend: "a"}}, `pattern "["`},
		"malformed model glob":  {"a", []Route{{Model: "a[", Backend: "a"}}, `pattern "a["`},
		"route without backend": {"a", []Route{{Project: "x"}}, `names backend ""`},
	} {
		_, err := NewStaticStorage(bs, tc.def, tc.routes)
		if !errors.Is(err, ErrStorageConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrStorageConfig mentioning %s", name, err, tc.want)
		}
	}
}

// routedEnv is a gateway over two memory backends, "a" and "b".
type routedEnv struct {
	*testEnv
	gw   *Server
	a, b *memory.Backend
	bs   map[string]backends.Backend
}

func newRoutedEnv(t *testing.T, def string, routes []Route) *routedEnv {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &routedEnv{a: memory.New(), b: memory.New()}
	e.bs = map[string]backends.Backend{"a": backends.Checked("a", e.a), "b": backends.Checked("b", e.b)}
	st, err := NewStaticStorage(e.bs, def, routes)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = NewWithStorage(Config{}, store, st, nil)
	e.testEnv = &testEnv{t: t, store: store, srv: httptest.NewServer(e.gw.Handler())}
	t.Cleanup(func() {
		e.srv.Close()
		_ = store.Close()
	})
	return e
}

func (e *routedEnv) projectURL(project, rest string) string {
	return e.srv.URL + "/api/v4/projects/" + strings.ReplaceAll(project, "/", "%2F") + "/packages/ml_models/" + rest
}

func blobCount(t *testing.T, b *memory.Backend) int {
	t.Helper()
	items, _, err := b.List(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

func TestRoutedUploadsAndRouteChange(t *testing.T) {
	e := newRoutedEnv(t, "a", []Route{{Project: "team/vision", Backend: "b"}})
	vision, other := []byte("vision weights"), []byte("other weights")
	wantStatus(t, e.put(e.projectURL("team/vision", "m/1.0.0/files/w.bin"), vision), http.StatusCreated)
	wantStatus(t, e.put(e.projectURL("team/other", "m/1.0.0/files/w.bin"), other), http.StatusCreated)
	if blobCount(t, e.a) != 1 || blobCount(t, e.b) != 1 {
		t.Fatalf("blobs: a=%d b=%d, want 1 each", blobCount(t, e.a), blobCount(t, e.b))
	}
	// The rows record where the bytes went.
	for project, want := range map[string]string{"team/vision": "b", "team/other": "a"} {
		p, err := e.store.Project(context.Background(), metadata.ProjectRef{Path: project})
		if err != nil {
			t.Fatal(err)
		}
		pv, err := e.store.EnsurePackageVersion(context.Background(), p.ID, "m", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.store.File(context.Background(), pv.Candidate.ID, "w.bin")
		if err != nil || f.Backend != want {
			t.Errorf("%s: row %+v, %v; want backend %q", project, f, err, want)
		}
	}

	// Swap the routes around: old files stay on (and are served from) the backend their rows name.
	st, err := NewStaticStorage(e.bs, "b", []Route{{Project: "team/other", Backend: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	drained := e.gw.SwapStorage(st)
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("old storage not drained though no request runs")
	}
	for project, want := range map[string][]byte{"team/vision": vision, "team/other": other} {
		r := e.get(e.projectURL(project, "m/1.0.0/files/w.bin"))
		wantStatus(t, r, http.StatusOK)
		if string(r.body) != string(want) {
			t.Errorf("%s: got %q", project, r.body)
		}
		// A range read goes through the recorded backend too.
		r = e.do(http.MethodGet, e.projectURL(project, "m/1.0.0/files/w.bin"), nil, map[string]string{"Range": "bytes=0-4"})
		wantStatus(t, r, http.StatusPartialContent)
	}
	// New uploads follow the new routes: vision now goes to the default "b", a new project too.
	wantStatus(t, e.put(e.projectURL("team/vision", "m/1.0.0/files/new.bin"), []byte("n")), http.StatusCreated)
	wantStatus(t, e.put(e.projectURL("team/third", "m/1.0.0/files/x.bin"), []byte("x")), http.StatusCreated)
	if blobCount(t, e.a) != 1 || blobCount(t, e.b) != 3 {
		t.Fatalf("after swap: a=%d b=%d, want 1 and 3", blobCount(t, e.a), blobCount(t, e.b))
	}
	// Replacing a file on "a" with a new upload routed to "b" deletes the old blob from "a".
	st2, _ := NewStaticStorage(e.bs, "b", nil)
	e.gw.SwapStorage(st2)
	wantStatus(t, e.put(e.projectURL("team/other", "m/1.0.0/files/w.bin"), []byte("replaced")), http.StatusCreated)
	if blobCount(t, e.a) != 0 || blobCount(t, e.b) != 4 {
		t.Fatalf("after replace: a=%d b=%d, want 0 and 4", blobCount(t, e.a), blobCount(t, e.b))
	}
	// Delete removes the blob from the recorded backend.
	wantStatus(t, e.do(http.MethodDelete, e.projectURL("team/vision", "m/1.0.0/files/w.bin"), nil, nil), http.StatusNoContent)
	if blobCount(t, e.b) != 3 {
		t.Fatalf("after delete: b=%d, want 3", blobCount(t, e.b))
	}
}

func TestFileOnUnconfiguredBackendIs503(t *testing.T) {
	e := newRoutedEnv(t, "a", []Route{{Project: "team/vision", Backend: "b"}})
	wantStatus(t, e.put(e.projectURL("team/vision", "m/1.0.0/files/w.bin"), []byte("x")), http.StatusCreated)
	only, err := NewStaticStorage(map[string]backends.Backend{"a": e.bs["a"]}, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.gw.SwapStorage(only)
	r := e.get(e.projectURL("team/vision", "m/1.0.0/files/w.bin"))
	wantStatus(t, r, http.StatusServiceUnavailable)
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// blockingBackend holds Get readers open until release is closed, to keep a download in flight.
type blockingBackend struct {
	backends.Backend
	started chan struct{}
	release chan struct{}
}

func (b *blockingBackend) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	rc, info, err := b.Backend.Get(ctx, key, rng)
	if err != nil {
		return nil, info, err
	}
	close(b.started)
	<-b.release
	return rc, info, err
}

func TestSwapStorageWaitsForInFlightRequests(t *testing.T) {
	e := newRoutedEnv(t, "a", nil)
	wantStatus(t, e.put(e.projectURL("team/vision", "m/1.0.0/files/w.bin"), []byte("payload")), http.StatusCreated)
	blocking := &blockingBackend{Backend: e.bs["a"], started: make(chan struct{}), release: make(chan struct{})}
	st, _ := NewStaticStorage(map[string]backends.Backend{"a": blocking}, "a", nil)
	e.gw.SwapStorage(st)

	got := make(chan response, 1)
	go func() { got <- e.get(e.projectURL("team/vision", "m/1.0.0/files/w.bin")) }()
	<-blocking.started
	next, _ := NewStaticStorage(map[string]backends.Backend{"a": e.bs["a"]}, "a", nil)
	drained := e.gw.SwapStorage(next)
	select {
	case <-drained:
		t.Fatal("storage reported drained while a download still uses it")
	case <-time.After(100 * time.Millisecond):
	}
	// New requests already use the new generation while the old download runs.
	wantStatus(t, e.get(e.projectURL("team/vision", "m/1.0.0/files/w.bin")), http.StatusOK)
	close(blocking.release)
	if r := <-got; r.status != http.StatusOK || string(r.body) != "payload" {
		t.Fatalf("in-flight download: %d %q", r.status, r.body)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("old storage not drained after its last request ended")
	}
}

// A multipart upload stays on the backend it was created on, even when the routes change before it
// completes: the upload id carries the backend's name.
func TestMultipartUploadKeepsItsBackendAcrossRouteChange(t *testing.T) {
	e := newRoutedEnv(t, "a", []Route{{Project: "team/vision", Backend: "b"}})
	run := newArtifactRun(t, e.testEnv, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	created := run.mpuCreate(t, "", "/tmp/m.bin", 1)
	swapped, err := NewStaticStorage(e.bs, "a", []Route{{Project: "team/vision", Backend: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	e.gw.SwapStorage(swapped)
	parts := putParts(t, e.testEnv, created, []byte("multipart bytes"), 5<<20)
	wantEmptyObject(t, run.mpu(t, "complete", "", map[string]any{"path": "/tmp/m.bin", "upload_id": created.UploadID, "parts": parts}))
	if blobCount(t, e.a) != 0 || blobCount(t, e.b) != 1 {
		t.Fatalf("blobs a=%d b=%d; want the upload on b, where it started", blobCount(t, e.a), blobCount(t, e.b))
	}
	f, err := e.store.File(context.Background(), run.cand.ID, "m.bin")
	if err != nil || f.Backend != "b" {
		t.Fatalf("row %+v, %v; want backend b", f, err)
	}
	if r := e.get(run.url("m.bin")); r.status != http.StatusOK || string(r.body) != "multipart bytes" {
		t.Fatalf("download: %d %q", r.status, r.body)
	}
}
