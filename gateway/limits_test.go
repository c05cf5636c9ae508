package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// createRun creates a run in experiment 0 of the default project and returns its id.
func createRun(t *testing.T, env *gatewaytest.Env) string {
	t.Helper()
	r := env.MLflowPost(env.Srv.URL, "runs/create", `{"experiment_id": "0"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &created)
	return created.Run.Info.RunID
}

// gatedEnv is a gateway over a backend whose Puts wait for its gate.
func gatedEnv(t *testing.T, cfg gateway.Config) (*gatewaytest.Env, *gatedBackend) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	b := &gatedBackend{Backend: memory.New(), gate: make(chan struct{})}
	close(b.gate)
	srv := httptest.NewServer(gateway.New(cfg, store, backends.Checked("gated", b), gatewaytest.Logger()).Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = store.Close()
	})
	return &gatewaytest.Env{T: t, Srv: srv, Store: store}, b
}

// TestUploadLimit: beyond MaxConcurrentUploads an upload is refused before its body is read, with 429
// and Retry-After on package routes and MLflow's RESOURCE_EXHAUSTED (429) on mlflow-artifacts;
// downloads and JSON calls are not uploads and pass.
func TestUploadLimit(t *testing.T) {
	env, b := gatedEnv(t, gateway.Config{MaxConcurrentUploads: 1})
	runID := createRun(t, env)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/small.bin"), []byte("small")), http.StatusCreated)

	b.gate = make(chan struct{})
	done := make(chan gatewaytest.Response, 1)
	go func() { done <- env.Put(env.PkgURL("m/1.0.0/files/held.bin"), []byte("held")) }()
	poll.Until(t, 10*time.Second, "the first upload to reach the backend", func() bool { return b.running.Load() == 1 })

	refused := env.Put(env.PkgURL("m/1.0.0/files/second.bin"), []byte("second"))
	gatewaytest.WantStatus(t, refused, http.StatusTooManyRequests)
	if code := refused.ErrorCode(t); code != "too_many_requests" || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("refused upload: %q, Retry-After %q", code, refused.Header.Get("Retry-After"))
	}
	art := env.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/0/" + runID + "/artifacts/a.bin"
	r := env.Do(http.MethodPut, art, bytes.NewReader([]byte("a")), nil)
	gatewaytest.WantStatus(t, r, http.StatusTooManyRequests)
	if code := r.MLflowError(t); code != "RESOURCE_EXHAUSTED" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("refused artifact upload: %q, Retry-After %q", code, r.Header.Get("Retry-After"))
	}
	gatewaytest.WantStatus(t, env.Get(env.PkgURL("m/1.0.0/files/small.bin")), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "experiments/create", `{"name": "not an upload"}`), http.StatusOK)

	close(b.gate)
	gatewaytest.WantStatus(t, <-done, http.StatusCreated)
	gatewaytest.WantStatus(t, env.Do(http.MethodPut, art, bytes.NewReader([]byte("a")), nil), http.StatusOK)
}

// rawStalled sends the headers of a request with a body of size bytes and the first bytes of it, then
// waits for the answer without sending more.
func rawStalled(t *testing.T, addr, method, target, contentType string, size int, first string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		method, target, addr, contentType, size, first)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s with a stalled body: no answer: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestStalledBodyTimesOut: a body that stops arriving fails with 408 once BodyReadTimeout passes
// without a byte, on every kind of route, and stores nothing; a slow body that keeps coming is never
// cut, however long it takes in all.
func TestStalledBodyTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := gatewaytest.New(t, gateway.Config{BodyReadTimeout: timeout})
	runID := createRun(t, env)
	addr := env.Srv.Listener.Addr().String()

	start := time.Now()
	const pkg = "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files/"
	resp, body := rawStalled(t, addr, http.MethodPut, pkg+"stalled.bin", "application/octet-stream", 1<<20, "0123456789")
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"request_timeout"`) {
		t.Fatalf("stalled package upload: %s %s", resp.Status, body)
	}
	if elapsed := time.Since(start); elapsed > 10*timeout {
		t.Fatalf("the stalled upload was answered after %s, with a timeout of %s", elapsed, timeout)
	}
	resp, body = rawStalled(t, addr, http.MethodPut, pkg+"stalled-form.bin", "multipart/form-data; boundary=XyZ", 1<<20, "--XyZ\r\n")
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"request_timeout"`) {
		t.Fatalf("stalled multipart package upload: %s %s", resp.Status, body)
	}
	resp, body = rawStalled(t, addr, http.MethodPut, "/api/2.0/mlflow-artifacts/artifacts/0/"+runID+"/artifacts/stalled.bin",
		"application/octet-stream", 1<<20, "0123456789")
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"DEADLINE_EXCEEDED"`) {
		t.Fatalf("stalled artifact upload: %s %s", resp.Status, body)
	}
	resp, body = rawStalled(t, addr, http.MethodPost, "/api/2.0/mlflow/runs/log-batch", "application/json", 1000, `{"run_id": "`)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"DEADLINE_EXCEEDED"`) {
		t.Fatalf("stalled log-batch: %s %s", resp.Status, body)
	}
	if keys := env.BlobKeys(); len(keys) != 0 {
		t.Fatalf("stalled uploads left blobs: %v", keys)
	}

	// Ten pauses of a third of the timeout: three times the timeout in all, and never cut.
	pr, pw := io.Pipe()
	go func() {
		tick := time.NewTicker(timeout / 3)
		defer tick.Stop()
		for range 10 {
			<-tick.C
			if _, err := pw.Write([]byte("x")); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPut, env.PkgURL("m/1.0.0/files/slow.bin"), pr)
	req.ContentLength = 10
	slow, err := env.Srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	slow.Body.Close()
	if slow.StatusCode != http.StatusCreated {
		t.Fatalf("slow but steady upload: %s", slow.Status)
	}
}

// fullBackend is a backend on a full disk: every upload fails with ErrInsufficientStorage.
type fullBackend struct{ *memory.Backend }

func (fullBackend) Put(context.Context, string, io.Reader, int64, backends.PutOptions) (backends.Info, error) {
	return backends.Info{}, fmt.Errorf("memory put: write: no space left on device: %w", backends.ErrInsufficientStorage)
}

// guard is a SpaceGuard whose refusal the test switches.
type guard struct {
	full     atomic.Int32
	refusing atomic.Bool
}

func (g *guard) Full() { g.full.Add(1); g.refusing.Store(true) }
func (g *guard) Refusing() error {
	if g.refusing.Load() {
		return fmt.Errorf("the disk is full: %w", metadata.ErrInsufficientStorage)
	}
	return nil
}

// TestFullStorage: a full disk is 507 on every route family, with MLflow's RESOURCE_EXHAUSTED on MLflow
// routes and no Retry-After (it does not pass by waiting); the space guard hears of it, and while it
// refuses, writes that need space are 507 before they start, while reads and deletes go on.
func TestFullStorage(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	g := &guard{}
	srv := httptest.NewServer(gateway.New(gateway.Config{Space: g}, store, backends.Checked("full", fullBackend{memory.New()}), gatewaytest.Logger()).Handler())
	defer func() {
		srv.Close()
		_ = store.Close()
	}()
	env := &gatewaytest.Env{T: t, Srv: srv, Store: store}
	runID := createRun(t, env)

	r := env.Put(env.PkgURL("m/1.0.0/files/a.bin"), []byte("abc"))
	gatewaytest.WantStatus(t, r, http.StatusInsufficientStorage)
	if code := r.ErrorCode(t); code != "insufficient_storage" || r.Header.Get("Retry-After") != "" {
		t.Fatalf("package upload on a full disk: %q, Retry-After %q", code, r.Header.Get("Retry-After"))
	}
	if strings.Contains(string(r.Body), "device") || strings.Contains(string(r.Body), "memory put") {
		t.Fatalf("message: %s", r.Body)
	}
	if g.full.Load() != 1 {
		t.Fatalf("the guard heard of %d full disks, want 1", g.full.Load())
	}

	art := env.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/0/" + runID + "/artifacts/a.bin"
	for _, r := range []gatewaytest.Response{
		env.Do(http.MethodPut, art, bytes.NewReader([]byte("a")), nil),
		env.MLflowPost(env.Srv.URL, "runs/create", `{"experiment_id": "0"}`),
		env.MLflowPost(env.Srv.URL, "experiments/create", `{"name": "e"}`),
	} {
		gatewaytest.WantStatus(t, r, http.StatusInsufficientStorage)
		if code := r.MLflowError(t); code != "RESOURCE_EXHAUSTED" || r.Header.Get("Retry-After") != "" {
			t.Fatalf("MLflow write on a full disk: %q, Retry-After %q", code, r.Header.Get("Retry-After"))
		}
	}
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/b.bin"), []byte("abc")), http.StatusInsufficientStorage)

	// Reads and deletes are not refused.
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/2.0/mlflow/experiments/get?experiment_id=0"), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "runs/search", `{"experiment_ids": ["0"]}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.Do(http.MethodDelete, env.PkgURL("m/1.0.0/files/none.bin"), nil, nil), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Do(http.MethodDelete, art, nil, nil), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "runs/delete", `{"run_id": "`+runID+`"}`), http.StatusOK)

	g.refusing.Store(false)
	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "experiments/create", `{"name": "e"}`), http.StatusOK)
}

// gatedBackend holds every Put until the gate opens, counting the Puts running at once.
type gatedBackend struct {
	*memory.Backend
	gate          chan struct{}
	running, peak atomic.Int32
}

func (g *gatedBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	n := g.running.Add(1)
	defer g.running.Add(-1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	<-g.gate
	return g.Backend.Put(ctx, key, r, size, opts)
}

// TestConcurrentUploadsNeverExceedTheLimit: of a burst of uploads, exactly the limit run at once and
// the others are refused at once; each slot is held until its upload is answered.
func TestConcurrentUploadsNeverExceedTheLimit(t *testing.T) {
	const limit, burst = 3, 12
	env, b := gatedEnv(t, gateway.Config{MaxConcurrentUploads: limit})
	// The model and version exist before the burst, so that the uploads contend only for slots.
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/first.bin"), []byte("x")), http.StatusCreated)
	b.gate = make(chan struct{})
	b.peak.Store(0)

	var wg sync.WaitGroup
	var created, refused atomic.Int32
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.Put(env.PkgURL(fmt.Sprintf("m/1.0.0/files/c%d.bin", i)), []byte("payload"))
			switch r.Status {
			case http.StatusCreated:
				created.Add(1)
			case http.StatusTooManyRequests:
				refused.Add(1)
			default:
				t.Errorf("upload %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	poll.Until(t, 10*time.Second, "the uploads beyond the limit to be refused", func() bool {
		return refused.Load() == burst-limit && b.running.Load() == limit
	})
	close(b.gate)
	wg.Wait()
	if created.Load() != limit || b.peak.Load() != limit {
		t.Fatalf("%d uploads stored, at most %d at once; want %d", created.Load(), b.peak.Load(), limit)
	}
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/after.bin"), []byte("x")), http.StatusCreated)
}

// TestRefusedUploadIsAnsweredToAClientThatSendsItsBodyFirst: a client that writes its whole body before
// it reads the answer, as urllib3 does under MLflow's client, gets the 429 (and can back off) instead of
// a broken pipe: the refused body is read and discarded.
func TestRefusedUploadIsAnsweredToAClientThatSendsItsBodyFirst(t *testing.T) {
	env, b := gatedEnv(t, gateway.Config{MaxConcurrentUploads: 1})
	b.gate = make(chan struct{})
	release := sync.OnceFunc(func() { close(b.gate) })
	t.Cleanup(release) // before the server's own cleanup, which waits for the held upload
	done := make(chan gatewaytest.Response, 1)
	go func() { done <- env.Put(env.PkgURL("m/1.0.0/files/held.bin"), []byte("held")) }()
	poll.Until(t, 10*time.Second, "the first upload to reach the backend", func() bool { return b.running.Load() == 1 })

	addr := env.Srv.Listener.Addr().String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	const size = 16 << 20 // far more than the socket buffers hold, and net/http's own 256 KiB drain
	fmt.Fprintf(conn, "PUT /api/v4/projects/team%%2Fvision/packages/ml_models/m/1.0.0/files/refused.bin HTTP/1.1\r\n"+
		"Host: %s\r\nContent-Length: %d\r\n\r\n", addr, size)
	if _, err := io.CopyN(conn, zeros{}, size); err != nil {
		t.Fatalf("sending the whole body of the refused upload: %v (the server hung up instead of answering)", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer after the whole body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("refused upload: %s, Retry-After %q", resp.Status, resp.Header.Get("Retry-After"))
	}
	release()
	gatewaytest.WantStatus(t, <-done, http.StatusCreated)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
