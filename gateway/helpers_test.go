package gateway

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
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// testEnv is a gateway over a real bbolt store in a temp dir and the memory backend.
type testEnv struct {
	t       *testing.T
	srv     *httptest.Server
	store   metadata.Store
	blobs   *memory.Backend
	backend backends.Backend
}

func newTestEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := memory.New()
	env := &testEnv{t: t, store: store, blobs: blobs, backend: backends.Checked("memory", blobs)}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	env.srv = httptest.NewServer(New(cfg, store, env.backend, log).Handler())
	t.Cleanup(func() {
		env.srv.Close()
		_ = store.Close()
	})
	return env
}

// pkgURL builds a package API URL for project "team/vision" (URL-encoded) and an escaped rest.
func (e *testEnv) pkgURL(rest string) string {
	return e.srv.URL + "/api/v4/projects/team%2Fvision/packages/ml_models/" + rest
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", r.status, err, r.body)
	}
}

// errorField decodes an error body, checks that codeField and "message" are both set, and returns the code.
func (r response) errorField(t *testing.T, codeField string) string {
	t.Helper()
	var e map[string]string
	r.json(t, &e)
	if e[codeField] == "" || e["message"] == "" {
		t.Fatalf("error body lacks %s or message: %s", codeField, r.body)
	}
	return e[codeField]
}

// errorCode decodes a package-API error body {"error","message"}.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	return r.errorField(t, "error")
}

// mlflowError decodes an MLflow error body {"error_code","message"}.
func (r response) mlflowError(t *testing.T) string {
	t.Helper()
	return r.errorField(t, "error_code")
}

func (e *testEnv) do(method, url string, body io.Reader, header map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if b, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(b.Len())
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (e *testEnv) put(url string, data []byte) response {
	e.t.Helper()
	return e.do(http.MethodPut, url, bytes.NewReader(data), nil)
}

func (e *testEnv) get(url string) response {
	e.t.Helper()
	return e.do(http.MethodGet, url, nil, nil)
}

// blobKeys lists every blob the backend holds.
func (e *testEnv) blobKeys() []string {
	e.t.Helper()
	items, _, err := e.blobs.List(context.Background(), "", "", 10000)
	if err != nil {
		e.t.Fatal(err)
	}
	keys := make([]string, len(items))
	for i, it := range items {
		keys[i] = it.Key
	}
	return keys
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, strings.TrimSpace(string(r.body)))
	}
}

// payload returns n deterministic, non-repeating-looking bytes.
func payload(n int) []byte {
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

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
