package hf_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// With redirect_downloads, hf_hub_download's HEAD is answered by mlgate with everything the client
// reads, and its GET with a 307 to the presigned URL that still carries X-Repo-Commit and the linked
// headers; a client that drops Authorization on the way to the other host (httpx does) gets the bytes.
// The real client was run against MinIO this way (see the README).
func TestRedirectedDownload(t *testing.T) {
	env, p := gatewaytest.NewRedirecting(t, gateway.Config{}, backends.RedirectPolicy{Expiry: time.Minute, Grace: time.Minute})
	data := gatewaytest.Payload(1 << 20)
	gatewaytest.WantStatus(t, env.Put(env.PkgURL("m/1.0.0/files/sub/w.bin"), data), http.StatusCreated)
	url := env.Srv.URL + "/hf/team/vision/m/resolve/main/sub/w.bin"
	sum := `"` + gatewaytest.SHA256(data) + `"`

	head := env.Do(http.MethodHead, url, nil, nil)
	gatewaytest.WantStatus(t, head, http.StatusOK)
	if head.Header.Get("X-Linked-Size") != "1048576" || head.Header.Get("Content-Length") != "1048576" ||
		head.Header.Get("X-Linked-Etag") != sum || len(head.Header.Get("X-Repo-Commit")) != 40 || head.Header.Get("Location") != "" {
		t.Fatalf("HEAD: %v", head.Header)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || !strings.HasPrefix(resp.Header.Get("Location"), p.Server.URL+"/bucket/") ||
		resp.Header.Get("X-Repo-Commit") != head.Header.Get("X-Repo-Commit") || resp.Header.Get("X-Linked-Etag") != sum {
		t.Fatalf("GET: %d %v", resp.StatusCode, resp.Header)
	}
	// httpx drops Authorization when a redirect changes the origin (here the port); Go's client would
	// keep it for the same host name, so the check does what httpx does.
	httpxLike := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
		}
		return nil
	}}
	req, _ = http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer whatever")
	resp, err = httpxLike.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("redirected download: %d %v", resp.StatusCode, err)
	}
	got := gatewaytest.Response{Status: resp.StatusCode, Body: body}
	if gatewaytest.SHA256(got.Body) != gatewaytest.SHA256(data) {
		t.Fatal("redirected download: other bytes")
	}
}
