package gatewaytest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// FakeS3 is a memory backend that presigns like S3: its URLs point at Server, which serves a blob to
// whoever holds a URL signed for it (the signature names the key; the path must match), and refuses a
// request that also carries an Authorization header (400, as S3 answers two auth mechanisms). The tests of
// download redirects use it where a real S3 server is not needed (the e2e tests use MinIO).
type FakeS3 struct {
	*memory.Backend
	Server *httptest.Server

	mu      sync.Mutex
	signed  map[string]string        // signature -> key
	expires map[string]time.Duration // signature -> the expiry it was presigned for
	hits    atomic.Int64
}

// PresignGet implements backends.Presigner.
func (p *FakeS3) PresignGet(_ context.Context, key string, expiry time.Duration, disposition string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sig := "sig" + strconv.Itoa(len(p.signed)+1)
	p.signed[sig] = key
	p.expires[sig] = expiry
	q := url.Values{"X-Amz-Signature": {sig}, "response-content-disposition": {disposition}}
	return p.Server.URL + "/bucket/" + key + "?" + q.Encode(), nil
}

// Expiry returns the expiry the URL with signature sig was presigned for (0 for none).
func (p *FakeS3) Expiry(sig string) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.expires[sig]
}

// Hits counts the blobs served.
func (p *FakeS3) Hits() int64 { return p.hits.Load() }

func (p *FakeS3) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "only one auth mechanism allowed", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	key, ok := p.signed[r.URL.Query().Get("X-Amz-Signature")]
	p.mu.Unlock()
	if !ok || "/bucket/"+key != r.URL.Path {
		http.Error(w, "signature does not match", http.StatusForbidden)
		return
	}
	rc, _, err := p.Backend.Get(r.Context(), key, backends.All)
	if err != nil {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	}
	defer rc.Close()
	p.hits.Add(1)
	w.Header().Set("Content-Disposition", r.URL.Query().Get("response-content-disposition"))
	_, _ = io.Copy(w, rc)
}

// NewRedirecting starts a gateway with cfg whose one backend, "s3", is a FakeS3 that redirects downloads
// as policy says; both stop when the test ends.
func NewRedirecting(t testing.TB, cfg gateway.Config, policy backends.RedirectPolicy) (*Env, *FakeS3) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	p := &FakeS3{Backend: memory.New(), signed: map[string]string{}, expires: map[string]time.Duration{}}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	cb := backends.Checked("s3", p, backends.WithDownloadRedirect(policy))
	st, err := artifact.NewStaticStorage(map[string]*backends.CheckedBackend{"s3": cb}, "s3", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewWithStorage(cfg, store, st, Logger())
	env := &Env{T: t, Store: store, Blobs: p.Backend, Backend: cb, Gateway: srv, Srv: httptest.NewServer(srv.Handler())}
	t.Cleanup(func() {
		env.Srv.Close()
		p.Server.Close()
		_ = store.Close()
	})
	return env, p
}
