package gateway_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
)

func TestRoutedUploadsAndRouteChange(t *testing.T) {
	e := gatewaytest.NewRouted(t, "a", []artifact.Route{{Project: "team/vision", Backend: "b"}})
	vision, other := []byte("vision weights"), []byte("other weights")
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin"), vision), http.StatusCreated)
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/other", "m/1.0.0/files/w.bin"), other), http.StatusCreated)
	if gatewaytest.BlobCount(t, e.A) != 1 || gatewaytest.BlobCount(t, e.B) != 1 {
		t.Fatalf("blobs: a=%d b=%d, want 1 each", gatewaytest.BlobCount(t, e.A), gatewaytest.BlobCount(t, e.B))
	}
	// The rows record where the bytes went.
	for project, want := range map[string]string{"team/vision": "b", "team/other": "a"} {
		p, err := e.Store.Project(context.Background(), metadata.ProjectRef{Path: project})
		if err != nil {
			t.Fatal(err)
		}
		pv, err := e.Store.EnsurePackageVersion(context.Background(), p.ID, "m", "1.0.0", 0)
		if err != nil {
			t.Fatal(err)
		}
		f, err := e.Store.File(context.Background(), pv.Candidate.ID, "w.bin")
		if err != nil || f.Backend != want {
			t.Errorf("%s: row %+v, %v; want backend %q", project, f, err, want)
		}
	}

	// Swap the routes around: old files stay on (and are served from) the backend their rows name.
	st, err := artifact.NewStaticStorage(e.Backends, "b", []artifact.Route{{Project: "team/other", Backend: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	drained := e.Server.SwapStorage(st)
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("old storage not drained though no request runs")
	}
	for project, want := range map[string][]byte{"team/vision": vision, "team/other": other} {
		r := e.Get(e.ProjectURL(project, "m/1.0.0/files/w.bin"))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if string(r.Body) != string(want) {
			t.Errorf("%s: got %q", project, r.Body)
		}
		// A range read goes through the recorded backend too.
		r = e.Do(http.MethodGet, e.ProjectURL(project, "m/1.0.0/files/w.bin"), nil, map[string]string{"Range": "bytes=0-4"})
		gatewaytest.WantStatus(t, r, http.StatusPartialContent)
	}
	// New uploads follow the new routes: vision now goes to the default "b", a new project too.
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/vision", "m/1.0.0/files/new.bin"), []byte("n")), http.StatusCreated)
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/third", "m/1.0.0/files/x.bin"), []byte("x")), http.StatusCreated)
	if gatewaytest.BlobCount(t, e.A) != 1 || gatewaytest.BlobCount(t, e.B) != 3 {
		t.Fatalf("after swap: a=%d b=%d, want 1 and 3", gatewaytest.BlobCount(t, e.A), gatewaytest.BlobCount(t, e.B))
	}
	// Replacing a file on "a" with a new upload routed to "b" deletes the old blob from "a".
	st2, _ := artifact.NewStaticStorage(e.Backends, "b", nil)
	e.Server.SwapStorage(st2)
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/other", "m/1.0.0/files/w.bin"), []byte("replaced")), http.StatusCreated)
	if gatewaytest.BlobCount(t, e.A) != 0 || gatewaytest.BlobCount(t, e.B) != 4 {
		t.Fatalf("after replace: a=%d b=%d, want 0 and 4", gatewaytest.BlobCount(t, e.A), gatewaytest.BlobCount(t, e.B))
	}
	// Delete removes the blob from the recorded backend.
	gatewaytest.WantStatus(t, e.Do(http.MethodDelete, e.ProjectURL("team/vision", "m/1.0.0/files/w.bin"), nil, nil), http.StatusNoContent)
	if gatewaytest.BlobCount(t, e.B) != 3 {
		t.Fatalf("after delete: b=%d, want 3", gatewaytest.BlobCount(t, e.B))
	}
}

func TestFileOnUnconfiguredBackendIs503(t *testing.T) {
	e := gatewaytest.NewRouted(t, "a", []artifact.Route{{Project: "team/vision", Backend: "b"}})
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin"), []byte("x")), http.StatusCreated)
	only, err := artifact.NewStaticStorage(map[string]*backends.CheckedBackend{"a": e.Backends["a"]}, "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Server.SwapStorage(only)
	r := e.Get(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin"))
	gatewaytest.WantStatus(t, r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
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
	e := gatewaytest.NewRouted(t, "a", nil)
	gatewaytest.WantStatus(t, e.Put(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin"), []byte("payload")), http.StatusCreated)
	blocking := &blockingBackend{Backend: e.Backends["a"], started: make(chan struct{}), release: make(chan struct{})}
	st, _ := artifact.NewStaticStorage(map[string]*backends.CheckedBackend{"a": backends.Checked("a", blocking)}, "a", nil)
	e.Server.SwapStorage(st)

	got := make(chan gatewaytest.Response, 1)
	go func() { got <- e.Get(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin")) }()
	<-blocking.started
	next, _ := artifact.NewStaticStorage(map[string]*backends.CheckedBackend{"a": e.Backends["a"]}, "a", nil)
	drained := e.Server.SwapStorage(next)
	// The download holds the old generation until release is closed, so drained cannot be closed yet:
	// a look without waiting is enough.
	select {
	case <-drained:
		t.Fatal("storage reported drained while a download still uses it")
	default:
	}
	// New requests already use the new generation while the old download runs.
	gatewaytest.WantStatus(t, e.Get(e.ProjectURL("team/vision", "m/1.0.0/files/w.bin")), http.StatusOK)
	close(blocking.release)
	if r := <-got; r.Status != http.StatusOK || string(r.Body) != "payload" {
		t.Fatalf("in-flight download: %d %q", r.Status, r.Body)
	}
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("old storage not drained after its last request ended")
	}
}
