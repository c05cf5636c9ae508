package artifact_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// redirectEnv is a gateway whose one backend, "s3", redirects downloads through a fake S3.
func redirectEnv(t *testing.T) (*gatewaytest.Env, *gatewaytest.FakeS3) {
	return gatewaytest.NewRedirecting(t, gateway.Config{}, backends.RedirectPolicy{Expiry: 5 * time.Minute, Grace: time.Hour})
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
	if err != nil || !strings.HasPrefix(loc.String(), p.Server.URL+"/bucket/") {
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
	if got := p.Expiry(loc.Query().Get("X-Amz-Signature")); got != 5*time.Minute {
		t.Errorf("presigned for %v, want the configured 5m", got)
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
