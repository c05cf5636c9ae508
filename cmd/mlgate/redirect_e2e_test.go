package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/s3test"
)

// TestRedirectDownloadsMinio runs mlgate under --auth with two backends on the real MinIO that
// .ci/s3-servers.sh starts, one of each S3 type, both with redirect_downloads: a whole-file GET of a
// package file or an MLflow artifact answers 307 to a presigned URL that names nothing the client chose,
// which Python requests' way of following (the MLflow client) and a real `curl -L` both download with
// the right sha256; HEAD, Range and X-Mlgate-No-Redirect are served by mlgate; a file replaced and
// deleted after its download was redirected keeps its old blob for the presigned URL.
func TestRedirectDownloadsMinio(t *testing.T) {
	mio := s3test.Lookup(t, "minio")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	prefix := fmt.Sprintf("redirect-e2e-%x/", randBytes(6))
	cfg := filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf(`backends:
  - name: mio
    type: minio
    config: {endpoint: %[1]q, bucket: %[2]s, prefix: %[3]s, path_style: true, access_key_env: %[4]s, secret_key_env: %[5]s,
             redirect_downloads: true, redirect_expiry: 2m}
  - name: aws
    type: s3
    config: {endpoint: %[1]q, bucket: %[2]s, prefix: %[3]s, path_style: true, access_key_env: %[4]s, secret_key_env: %[5]s,
             redirect_downloads: true}
default_backend: mio
routes:
  - {project: "team/aws", backend: aws}
`, mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, project := range []string{"team/mio", "team/aws", "default"} {
		tokens[project], _ = createToken(t, dataDir, "--project", project, "--scope", "write")
	}
	p := startServe(t, dataDir, "--config", cfg, "--auth")
	curl, _ := exec.LookPath("curl")
	if curl == "" {
		t.Log("curl is not installed: its part of the test is skipped")
	}

	for _, project := range []string{"team/mio", "team/aws"} {
		token := tokens[project]
		auth := map[string]string{"Authorization": "Bearer " + token}
		const name = "secret-weights.bin"
		u := p.base + "/api/v4/projects/" + url.PathEscape(project) + "/packages/ml_models/hidden%2Fmodel/1.0.0/files/sub/" + name
		data := randBytes(5<<20 + 123)
		if resp, _ := doReq(t, noRedirects, http.MethodPut, u, data, auth); resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: upload: %d", project, resp.StatusCode)
		}
		// Auth is checked before anything is redirected.
		if resp, _ := doReq(t, noRedirects, http.MethodGet, u, nil, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s: GET without a token: %d, want 401", project, resp.StatusCode)
		}
		resp, _ := doReq(t, noRedirects, http.MethodGet, u, nil, auth)
		if resp.StatusCode != http.StatusTemporaryRedirect {
			t.Fatalf("%s: GET: %d, want 307", project, resp.StatusCode)
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(loc.String(), mio.Endpoint+"/") {
			t.Fatalf("%s: Location %q is not on MinIO", project, resp.Header.Get("Location"))
		}
		for _, user := range []string{"secret", "weights", "hidden", "model", "sub", "team"} {
			if strings.Contains(loc.Path, user) {
				t.Errorf("%s: the presigned URL's path %s names %q, which the client chose", project, loc.Path, user)
			}
		}
		if cd := loc.Query().Get("response-content-disposition"); cd != "attachment; filename="+name {
			t.Errorf("%s: response-content-disposition %q", project, cd)
		}

		// The MLflow client's way (requests, stream=True, follows the 307, leaves the token behind).
		resp, got := doReq(t, requestsRedirects, http.MethodGet, u, nil, auth)
		if resp.StatusCode != http.StatusOK || sha(got) != sha(data) || resp.Request.URL.Host == strings.TrimPrefix(p.base, "http://") {
			t.Fatalf("%s: following the redirect: %d, %d bytes from %s", project, resp.StatusCode, len(got), resp.Request.URL.Host)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != "attachment; filename="+name {
			t.Errorf("%s: Content-Disposition from MinIO %q", project, cd)
		}
		if curl != "" {
			out := filepath.Join(dir, "curl.out")
			cmd := exec.Command(curl, "-sS", "-f", "-L", "-o", out, "-H", "Authorization: Bearer "+token, u)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s: curl -L: %v\n%s", project, err, msg)
			}
			if b, err := os.ReadFile(out); err != nil || sha(b) != sha(data) {
				t.Fatalf("%s: curl -L got %d bytes with another sha256 (%v)", project, len(b), err)
			}
		}

		// Served by mlgate itself.
		for _, c := range []struct {
			method string
			header map[string]string
			status int
			want   []byte
		}{
			{http.MethodHead, map[string]string{}, http.StatusOK, nil},
			{http.MethodGet, map[string]string{"Range": "bytes=100-1099"}, http.StatusPartialContent, data[100:1100]},
			{http.MethodGet, map[string]string{"X-Mlgate-No-Redirect": "1"}, http.StatusOK, data},
		} {
			c.header["Authorization"] = auth["Authorization"]
			resp, got := doReq(t, noRedirects, c.method, u, nil, c.header)
			if resp.StatusCode != c.status || (c.want != nil && sha(got) != sha(c.want)) {
				t.Errorf("%s: %s %v: %d with %d bytes, want %d from mlgate", project, c.method, c.header, resp.StatusCode, len(got), c.status)
			}
		}

		// Replaced and deleted after the redirect: the presigned URL still gives the old bytes.
		resp, _ = doReq(t, noRedirects, http.MethodGet, u, nil, auth)
		pending := resp.Header.Get("Location")
		if resp, _ := doReq(t, noRedirects, http.MethodPut, u, []byte("newer"), auth); resp.StatusCode != http.StatusCreated {
			t.Fatalf("%s: replace: %d", project, resp.StatusCode)
		}
		if resp, _ := doReq(t, noRedirects, http.MethodDelete, u, nil, auth); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: delete: %d", project, resp.StatusCode)
		}
		if resp, got := doReq(t, requestsRedirects, http.MethodGet, pending, nil, nil); resp.StatusCode != http.StatusOK || sha(got) != sha(data) {
			t.Fatalf("%s: a redirect issued before the replacement: %d, %d bytes", project, resp.StatusCode, len(got))
		}
	}

	// mlgate pull follows the redirect too, and keeps its token from MinIO (net/http alone would send it
	// to MinIO's port on the same host, which MinIO refuses alongside a presigned query).
	pulled := randBytes(1 << 20)
	u := p.base + "/api/v4/projects/team%2Fmio/packages/ml_models/pulled/1.0.0/files/w.bin"
	if resp, _ := doReq(t, noRedirects, http.MethodPut, u, pulled, map[string]string{"Authorization": "Bearer " + tokens["team/mio"]}); resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload for pull: %d", resp.StatusCode)
	}
	outDir := filepath.Join(dir, "pulled")
	if code, out := runCmd(t, "pull", "--url", p.base, "--project", "team/mio", "--token", tokens["team/mio"], "pulled@1.0.0", outDir); code != 0 {
		t.Fatalf("pull: exit %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(outDir, "w.bin")); err != nil || sha(b) != sha(pulled) {
		t.Fatalf("pull: %d bytes with another sha256 (%v)", len(b), err)
	}

	// The MLflow artifact proxy, in the default project (backend mio).
	token := tokens["default"]
	auth := map[string]string{"Authorization": "Bearer " + token}
	resp, body := doReq(t, noRedirects, http.MethodPost, p.base+"/api/2.0/mlflow/runs/create", []byte(`{"experiment_id":"0"}`),
		map[string]string{"Authorization": auth["Authorization"], "Content-Type": "application/json"})
	var run struct {
		Run struct {
			Info struct {
				ArtifactURI string `json:"artifact_uri"`
			} `json:"info"`
		} `json:"run"`
	}
	if err := json.Unmarshal(body, &run); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("runs/create: %d %s", resp.StatusCode, body)
	}
	au := p.base + "/api/2.0/mlflow-artifacts/artifacts" + strings.TrimPrefix(run.Run.Info.ArtifactURI, "mlflow-artifacts:") + "/model/model.pkl"
	data := randBytes(2 << 20)
	if resp, _ := doReq(t, noRedirects, http.MethodPut, au, data, auth); resp.StatusCode != http.StatusOK {
		t.Fatalf("artifact upload: %d", resp.StatusCode)
	}
	if resp, _ := doReq(t, noRedirects, http.MethodGet, au, nil, auth); resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("artifact GET: %d, want 307", resp.StatusCode)
	}
	if resp, got := doReq(t, requestsRedirects, http.MethodGet, au, nil, auth); resp.StatusCode != http.StatusOK || sha(got) != sha(data) {
		t.Fatalf("artifact GET through the redirect: %d, %d bytes", resp.StatusCode, len(got))
	}
	if curl != "" {
		out := filepath.Join(dir, "curl-artifact.out")
		if msg, err := exec.Command(curl, "-sS", "-f", "-L", "-o", out, "-H", "Authorization: Bearer "+token, au).CombinedOutput(); err != nil {
			t.Fatalf("curl -L artifact: %v\n%s", err, msg)
		}
		if b, err := os.ReadFile(out); err != nil || sha(b) != sha(data) {
			t.Fatalf("curl -L artifact: %d bytes with another sha256 (%v)", len(b), err)
		}
	}
}

// noRedirects shows a redirect instead of following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// requestsRedirects follows redirects as Python's requests does: Authorization is dropped when the
// host or the port changes (net/http alone would keep it for another port of the same host).
var requestsRedirects = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		req.Header.Del("Authorization")
	}
	return nil
}}

func doReq(t *testing.T, c *http.Client, method, u string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
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

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestRedirectDownloadFigure measures, for the README, a 1 GiB download through mlgate (proxied) and by
// redirect from the MinIO that .ci/s3-servers.sh starts: throughput and the serve process's CPU seconds
// (utime+stime from /proc) per GiB. It is a measurement, not a check, so it runs only with
// MLGATE_BENCH_REDIRECT=1: go test -run TestRedirectDownloadFigure -v ./cmd/mlgate/
func TestRedirectDownloadFigure(t *testing.T) {
	if os.Getenv("MLGATE_BENCH_REDIRECT") != "1" {
		t.Skip("a measurement: set MLGATE_BENCH_REDIRECT=1 to run it")
	}
	mio := s3test.Lookup(t, "minio")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf(`backends:
  - name: mio
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: redirect-bench-%x/, path_style: true, access_key_env: %s, secret_key_env: %s, redirect_downloads: true}
default_backend: mio
`, mio.Endpoint, mio.Bucket, randBytes(6), s3test.AccessKeyEnv, s3test.SecretKeyEnv)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startServe(t, filepath.Join(dir, "data"), "--config", cfg)
	const size = 1 << 30
	u := p.url("bench/1.0.0/files/big.bin")
	chunk := randBytes(1 << 20)
	h := sha256.New()
	body := io.TeeReader(io.LimitReader(repeatReader(chunk), size), h)
	req, _ := http.NewRequest(http.MethodPut, u, body)
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	want := hex.EncodeToString(h.Sum(nil))
	for _, c := range []struct {
		name   string
		header map[string]string
	}{{"proxied", map[string]string{"X-Mlgate-No-Redirect": "1"}}, {"redirect", nil}, {"proxied", map[string]string{"X-Mlgate-No-Redirect": "1"}}, {"redirect", nil}} {
		cpu0 := procCPU(t, p.cmd.Process.Pid)
		start := time.Now()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := requestsRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
		resp.Body.Close()
		el := time.Since(start)
		cpu := procCPU(t, p.cmd.Process.Pid) - cpu0
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != want {
			t.Fatalf("%s: %d bytes, %v", c.name, n, err)
		}
		t.Logf("%-8s 1 GiB in %6.2fs = %7.1f MiB/s; mlgate CPU %.2f s/GiB (served by %s)",
			c.name, el.Seconds(), float64(size)/(1<<20)/el.Seconds(), cpu, resp.Request.URL.Host)
	}
}

// repeatReader yields chunk over and over.
func repeatReader(chunk []byte) io.Reader {
	return readerFunc(func(b []byte) (int, error) { return copy(b, chunk), nil })
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(b []byte) (int, error) { return f(b) }

// procCPU is the user+system CPU seconds process pid has used (Linux /proc; clock ticks of 100 Hz,
// the value on every Linux architecture Go supports).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	// Fields after the parenthesised command name, which may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	var utime, stime float64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return (utime + stime) / 100
}
