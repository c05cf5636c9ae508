package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// presigning is a memory backend that presigns like S3: its URLs point at fakeS3, which serves a blob
// to whoever holds a URL signed for it and not expired, and refuses a request that also carries an
// Authorization header (as S3 does).
type presigning struct {
	*memory.Backend
	s3 *httptest.Server

	mu      sync.Mutex
	signed  map[string]string // token -> key
	expires map[string]time.Duration
}

func (p *presigning) PresignGet(_ context.Context, key string, expiry time.Duration, disposition string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok := hex.EncodeToString(sha256.New().Sum([]byte(key + time.Now().String())))[:32]
	p.signed[tok] = key
	p.expires[tok] = expiry
	q := url.Values{"X-Amz-Signature": {tok}, "response-content-disposition": {disposition}}
	return p.s3.URL + "/bucket/" + key + "?" + q.Encode(), nil
}

func (p *presigning) serveS3(w http.ResponseWriter, r *http.Request) {
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
	w.Header().Set("Content-Disposition", r.URL.Query().Get("response-content-disposition"))
	_, _ = io.Copy(w, rc)
}

// redirectEnv is a gateway whose one backend, "s3", redirects downloads through presigning.
func redirectEnv(t *testing.T) (*gatewaytest.Env, *presigning) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := memory.New()
	p := &presigning{Backend: blobs, signed: map[string]string{}, expires: map[string]time.Duration{}}
	p.s3 = httptest.NewServer(http.HandlerFunc(p.serveS3))
	cb := backends.Checked("s3", p, backends.WithDownloadRedirect(backends.RedirectPolicy{Expiry: 5 * time.Minute, Grace: time.Hour}))
	st, err := artifact.NewStaticStorage(map[string]*backends.CheckedBackend{"s3": cb}, "s3", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.NewWithStorage(gateway.Config{}, store, st, gatewaytest.Logger())
	env := &gatewaytest.Env{T: t, Store: store, Blobs: blobs, Backend: cb, Gateway: srv, Srv: httptest.NewServer(srv.Handler())}
	t.Cleanup(func() {
		env.Srv.Close()
		p.s3.Close()
		_ = store.Close()
	})
	return env, p
}

// noFollow answers redirects instead of following them.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// requestsLike follows redirects as Python's requests (the MLflow client) does: the Authorization
// header stays behind when the host or port changes.
var requestsLike = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}}

func do(t *testing.T, c *http.Client, method, u string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestDownloadRedirect(t *testing.T) {
	env, p := redirectEnv(t)
	const name = "weights-secret.bin"
	u := env.PkgURL("fraud%2Fsecretmodel/1.0.0/files/dir/" + name)
	data := gatewaytest.Payload(3 << 20)
	gatewaytest.WantStatus(t, env.Put(u, data), http.StatusCreated)

	resp, _ := do(t, noFollow, http.MethodGet, u, nil)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("whole-file GET: status %d, want 307", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), p.s3.URL+"/bucket/") {
		t.Fatalf("Location %q", resp.Header.Get("Location"))
	}
	for _, user := range []string{"weights", "secret", "fraud", "dir"} {
		if strings.Contains(loc.Path, user) {
			t.Errorf("the presigned URL's path %q names %q, which the client chose", loc.Path, user)
		}
	}
	if got := loc.Query().Get("response-content-disposition"); got != "attachment; filename="+name {
		t.Errorf("response-content-disposition %q", got)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("Cache-Control %q: a cache could keep the presigned URL", cc)
	}
	if p.expires[loc.Query().Get("X-Amz-Signature")] != 5*time.Minute {
		t.Errorf("presigned for %v, want the configured 5m", p.expires)
	}

	// A client following the redirect as MLflow's does gets the bytes from "S3", with its token left behind.
	resp, body := do(t, requestsLike, http.MethodGet, u, map[string]string{"Authorization": "Bearer x"})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) || resp.Request.URL.Host == strings.TrimPrefix(env.Srv.URL, "http://") {
		t.Fatalf("following the redirect: status %d, %d bytes from %s", resp.StatusCode, len(body), resp.Request.URL.Host)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != "attachment; filename="+name {
		t.Errorf("Content-Disposition from storage %q", cd)
	}

	// HEAD, ranges, conditional requests and X-Mlgate-No-Redirect are answered by mlgate itself.
	for _, c := range []struct {
		method string
		header map[string]string
		status int
		body   []byte
	}{
		{http.MethodHead, nil, http.StatusOK, nil},
		{http.MethodGet, map[string]string{"Range": "bytes=10-19"}, http.StatusPartialContent, data[10:20]},
		{http.MethodGet, map[string]string{"If-None-Match": `"` + gatewaytest.SHA256(data) + `"`}, http.StatusNotModified, nil},
		{http.MethodGet, map[string]string{artifact.NoRedirectHeader: "1"}, http.StatusOK, data},
	} {
		resp, body := do(t, noFollow, c.method, u, c.header)
		if resp.StatusCode != c.status || !bytes.Equal(body, c.body) && c.body != nil {
			t.Errorf("%s %v: status %d with %d bytes, want %d from mlgate", c.method, c.header, resp.StatusCode, len(body), c.status)
		}
	}

	// The MLflow artifact proxy redirects too.
	r := env.MLflowPost(env.Srv.URL, "runs/create", `{"experiment_id":"0"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var run struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &run)
	au := env.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts" + strings.TrimPrefix(run.Run.Info.ArtifactURI, "mlflow-artifacts:") + "/model/w.bin"
	gatewaytest.WantStatus(t, env.Put(au, data[:1000]), http.StatusOK)
	if resp, _ := do(t, noFollow, http.MethodGet, au, nil); resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("MLflow artifact GET: status %d, want 307", resp.StatusCode)
	}
	if resp, body := do(t, requestsLike, http.MethodGet, au, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(body, data[:1000]) {
		t.Fatalf("MLflow artifact GET through the redirect: status %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestRedirectedBlobOutlivesReplacement: a file replaced (or deleted) after its download was redirected
// keeps its old blob, so the presigned URL still gives the old bytes; the blob is no longer in use only
// when the hold ends (readers_test.go checks that with a clock).
func TestRedirectedBlobOutlivesReplacement(t *testing.T) {
	env, _ := redirectEnv(t)
	u := env.PkgURL("m/1.0.0/files/a.bin")
	old := gatewaytest.Payload(1 << 20)
	gatewaytest.WantStatus(t, env.Put(u, old), http.StatusCreated)
	resp, _ := do(t, noFollow, http.MethodGet, u, nil)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("status %d", resp.StatusCode)
	}
	gatewaytest.WantStatus(t, env.Put(u, []byte("new")), http.StatusCreated)
	if r := env.Do(http.MethodDelete, u, nil, nil); r.Status != http.StatusNoContent {
		t.Fatalf("delete: %d", r.Status)
	}
	if n := len(env.BlobKeys()); n != 1 {
		t.Fatalf("%d blobs after the replacement and delete, want the redirected old one", n)
	}
	resp, body := do(t, requestsLike, http.MethodGet, resp.Header.Get("Location"), nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, old) {
		t.Fatalf("the presigned URL after the replacement: status %d, %d bytes", resp.StatusCode, len(body))
	}
}
