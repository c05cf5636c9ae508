// Package gatewaytest runs a whole gateway for tests: a real bbolt store in a temporary directory, the
// memory backend behind backends.Checked, and an httptest server, with helpers for requests and the two
// error bodies. The tests of every HTTP surface use it, so that each surface is tested through the
// same routes, middleware and error table that serve it in production.
package gatewaytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// Env is a gateway over a real bbolt store in a temp dir and the memory backend.
type Env struct {
	T       testing.TB
	Srv     *httptest.Server
	Store   metadata.Store
	Blobs   *memory.Backend
	Backend *backends.CheckedBackend // Blobs behind backends.Checked, as the gateway sees it
	Gateway *gateway.Server
}

// New starts a gateway with cfg over a store opened with opts (and boltstore.WithRehearsal); it stops when
// the test ends. With -v it logs to stderr.
func New(t testing.TB, cfg gateway.Config, opts ...boltstore.Option) *Env {
	t.Helper()
	// A group commit runs a write again when another write of its group fails, so every write runs twice
	// here, the first time rolled back: the gateway's Store.Update functions must be safe to run again.
	opts = append([]boltstore.Option{boltstore.WithRehearsal()}, opts...)
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	blobs := memory.New()
	env := &Env{T: t, Store: store, Blobs: blobs, Backend: backends.Checked("memory", blobs)}
	env.Gateway = gateway.New(cfg, store, env.Backend, Logger())
	env.Srv = httptest.NewServer(env.Gateway.Handler())
	t.Cleanup(func() {
		env.Srv.Close()
		_ = store.Close()
	})
	return env
}

// TickingClock is a store clock (boltstore.WithClock) that starts at start and moves one millisecond
// on every reading, so that records a test creates one after another get distinct, ordered times
// without the test sleeping.
func TickingClock(start time.Time) metadata.Clock {
	var mu sync.Mutex
	now := start
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
}

// Logger logs to stderr under -v and discards otherwise (nil).
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return nil
}

// PkgURL builds a package API URL for project "team/vision" (URL-encoded) and an escaped rest.
func (e *Env) PkgURL(rest string) string {
	return e.Srv.URL + "/api/v4/projects/team%2Fvision/packages/ml_models/" + rest
}

// Response is a response read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", r.Status, err, r.Body)
	}
}

// ErrorField decodes an error body, checks that codeField and "message" are both set, and returns the code.
func (r Response) ErrorField(t testing.TB, codeField string) string {
	t.Helper()
	var e map[string]string
	r.JSON(t, &e)
	if e[codeField] == "" || e["message"] == "" {
		t.Fatalf("error body lacks %s or message: %s", codeField, r.Body)
	}
	return e[codeField]
}

// ErrorCode decodes a package-API error body {"error","message"}.
func (r Response) ErrorCode(t testing.TB) string {
	t.Helper()
	return r.ErrorField(t, "error")
}

// MLflowError decodes an MLflow error body {"error_code","message"}.
func (r Response) MLflowError(t testing.TB) string {
	t.Helper()
	return r.ErrorField(t, "error_code")
}

// Do sends a request and reads the whole response; a *bytes.Reader body sets Content-Length.
func (e *Env) Do(method, url string, body io.Reader, header map[string]string) Response {
	e.T.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.T.Fatal(err)
	}
	if b, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(b.Len())
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.Srv.Client().Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatal(err)
	}
	return Response{resp.StatusCode, resp.Header, b}
}

// Put uploads data.
func (e *Env) Put(url string, data []byte) Response {
	e.T.Helper()
	return e.Do(http.MethodPut, url, bytes.NewReader(data), nil)
}

// Get downloads url.
func (e *Env) Get(url string) Response {
	e.T.Helper()
	return e.Do(http.MethodGet, url, nil, nil)
}

// MLflowPost calls an MLflow RPC under base (the server's URL or a project's tracking URI) with a JSON body.
func (e *Env) MLflowPost(base, rpc, body string) Response {
	e.T.Helper()
	return e.Do(http.MethodPost, base+"/api/2.0/mlflow/"+rpc, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// BlobKeys lists every blob the backend holds.
func (e *Env) BlobKeys() []string {
	e.T.Helper()
	items, _, err := e.Blobs.List(context.Background(), "", "", 10000)
	if err != nil {
		e.T.Fatal(err)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}

// SHA256 is the lowercase hex sha256 of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// WantStatus fails the test unless r has status.
func WantStatus(t testing.TB, r Response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, strings.TrimSpace(string(r.Body)))
	}
}

// Payload returns n deterministic, non-repeating-looking bytes.
func Payload(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// Routed is a gateway over two memory backends, "a" and "b", with routes, and the Server itself so that
// a test can swap its storage as a config reload does.
type Routed struct {
	*Env
	Server   *gateway.Server
	A, B     *memory.Backend
	Backends map[string]*backends.CheckedBackend // A and B behind backends.Checked
}

// NewRouted starts a gateway whose new files go where routes say, else to def ("a" or "b").
func NewRouted(t testing.TB, def string, routes []artifact.Route) *Routed {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Routed{A: memory.New(), B: memory.New()}
	e.Backends = map[string]*backends.CheckedBackend{"a": backends.Checked("a", e.A), "b": backends.Checked("b", e.B)}
	st, err := artifact.NewStaticStorage(e.Backends, def, routes)
	if err != nil {
		t.Fatal(err)
	}
	e.Server = gateway.NewWithStorage(gateway.Config{}, store, st, Logger())
	e.Env = &Env{T: t, Store: store, Srv: httptest.NewServer(e.Server.Handler())}
	t.Cleanup(func() {
		e.Srv.Close()
		_ = store.Close()
	})
	return e
}

// ProjectURL is a package API URL in project (a path, encoded here).
func (e *Routed) ProjectURL(project, rest string) string {
	return e.Srv.URL + "/api/v4/projects/" + strings.ReplaceAll(project, "/", "%2F") + "/packages/ml_models/" + rest
}

// BlobCount is the number of blobs b holds.
func BlobCount(t testing.TB, b *memory.Backend) int {
	t.Helper()
	items, _, err := b.List(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}
