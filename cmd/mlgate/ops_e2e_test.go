package main

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// readyAnswer is GET /ready's status and decoded body.
func readyAnswer(base string) (int, map[string]any, error) {
	resp, err := http.Get(base + "/ready")
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("/ready body: %w", err)
	}
	return resp.StatusCode, body, nil
}

// TestReadyFollowsMinIO runs mlgate on a MinIO of its own: /ready is 200 while MinIO serves, 503
// naming the backend once MinIO is killed (while /health stays 200: liveness only), and 200 again
// once MinIO is back on the same address, without restarting mlgate.
func TestReadyFollowsMinIO(t *testing.T) {
	m, dir, cfg := ownMinioConfig(t)
	p, _ := startServeWatched(t, filepath.Join(dir, "data"), "--config", cfg)

	waitReady := func(want int, what string) map[string]any {
		var body map[string]any
		poll.UntilOK(t, 60*time.Second, what, func() error {
			code, b, err := readyAnswer(p.base)
			if err != nil {
				return err
			}
			body = b
			if code != want {
				return fmt.Errorf("/ready answered %d %v", code, b)
			}
			return nil
		})
		return body
	}
	waitReady(http.StatusOK, "/ready to answer 200 with MinIO up")
	m.kill()
	body := waitReady(http.StatusServiceUnavailable, "/ready to answer 503 with MinIO down")
	failed, _ := body["failed"].(map[string]any)
	if body["status"] != "unavailable" || failed["backend objects"] == nil || failed["store"] != nil {
		t.Fatalf("/ready with MinIO down: %v; want status unavailable naming backend objects and not the store", body)
	}
	if code, _ := get(t, p.base+"/health"); code != http.StatusOK {
		t.Fatalf("/health with MinIO down: %d, want 200 (liveness only)", code)
	}
	m.start()
	waitReady(http.StatusOK, "/ready to answer 200 once MinIO is back")
}

// metricSamples returns the sample lines of the exposition at base+/metrics, by family name.
func metricSamples(t *testing.T, base string, header map[string]string) map[string][]string {
	t.Helper()
	resp, body := do(t, http.MethodGet, base+"/metrics", nil, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	out := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasPrefix(base, "mlgate_") {
				name = base
			}
		}
		out[name] = append(out[name], line)
	}
	return out
}

// wantSample fails unless family has a sample line matching re.
func wantSample(t *testing.T, samples map[string][]string, family, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	for _, l := range samples[family] {
		if rx.MatchString(l) {
			return
		}
	}
	t.Errorf("/metrics: no %s sample matching %s; have:\n%s", family, re, strings.Join(samples[family], "\n"))
}

// TestMetricsAfterTraffic sends uploads, downloads, a 404 and MLflow calls, and checks that every
// family /metrics documents is there with its labels: routes as templates, never raw paths.
func TestMetricsAfterTraffic(t *testing.T) {
	p := startServe(t, t.TempDir())
	body := bytes.Repeat([]byte("metrics "), 4096)
	if code := put(t, p.url("fraud%2Fxgb/1.0.0/files/model.bin"), body); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	if code, got := get(t, p.url("fraud%2Fxgb/1.0.0/files/model.bin")); code != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("download: %d, %d bytes", code, len(got))
	}
	if code, _ := get(t, p.url("fraud%2Fxgb/1.0.0/files/missing.bin")); code != http.StatusNotFound {
		t.Fatalf("download of a missing file: %d", code)
	}
	if code, _ := get(t, p.base+"/no/such/route"); code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", code)
	}
	c := &mlflowClient{t: t, base: p.base}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "metrics"}, nil)

	s := metricSamples(t, p.base, nil)
	const pkgRoute = `/api/v4/projects/:project/packages/ml_models/\*rest`
	wantSample(t, s, "mlgate_http_requests_total", `^mlgate_http_requests_total\{method="PUT",route="`+pkgRoute+`",status="201"\} 1$`)
	wantSample(t, s, "mlgate_http_requests_total", `^mlgate_http_requests_total\{method="GET",route="`+pkgRoute+`",status="404"\} 1$`)
	wantSample(t, s, "mlgate_http_requests_total", `^mlgate_http_requests_total\{method="GET",route="unmatched",status="404"\} 1$`)
	wantSample(t, s, "mlgate_http_requests_total", `^mlgate_http_requests_total\{method="POST",route="/api/2.0/mlflow/\*rpc",status="200"\} 1$`)
	wantSample(t, s, "mlgate_http_request_duration_seconds", `^mlgate_http_request_duration_seconds_count\{method="GET",route="`+pkgRoute+`"\} 2$`)
	wantSample(t, s, "mlgate_http_request_duration_seconds", `^mlgate_http_request_duration_seconds_bucket\{method="PUT",route="`+pkgRoute+`",le="\+Inf"\} 1$`)
	wantSample(t, s, "mlgate_uploads_in_flight", `^mlgate_uploads_in_flight 0$`)
	wantSample(t, s, "mlgate_backend_bytes_total", fmt.Sprintf(`^mlgate_backend_bytes_total\{backend="local",direction="in"\} %d$`, len(body)))
	wantSample(t, s, "mlgate_backend_bytes_total", fmt.Sprintf(`^mlgate_backend_bytes_total\{backend="local",direction="out"\} %d$`, len(body)))
	wantSample(t, s, "mlgate_backend_errors_total", `^mlgate_backend_errors_total\{backend="local",op="put"\} 0$`)
	for family := range s {
		if strings.HasPrefix(family, "mlgate_store_pg_") {
			t.Errorf("/metrics on bbolt shows the PostgreSQL store's %s", family)
		}
	}
	wantSample(t, s, "mlgate_store_commit_duration_seconds", `^mlgate_store_commit_duration_seconds_count [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_commit_writes", `^mlgate_store_commit_writes_bucket\{le="64"\} [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_commit_failures_total", `^mlgate_store_commit_failures_total 0$`)
	wantSample(t, s, "mlgate_sweeper_removed_total", `^mlgate_sweeper_removed_total\{backend="local",kind="staging_leftover"\} 0$`)
	wantSample(t, s, "process_open_fds", `^process_open_fds [0-9]+$`)
	wantSample(t, s, "go_goroutines", `^go_goroutines [0-9]+$`)
	for _, lines := range s {
		for _, l := range lines {
			if strings.Contains(l, "fraud") || strings.Contains(l, "team%2Fvision") || strings.Contains(l, "/no/such") {
				t.Errorf("/metrics names a raw path: %s", l)
			}
		}
	}
}

// TestAccessLogKeepsSecretsOut makes requests with a token in every header form mlgate reads and a
// multipart part upload to its signed URL, then checks that every request has its access log line,
// with the route template, request id and token id, and that no log line holds the secret or the
// signature.
func TestAccessLogKeepsSecretsOut(t *testing.T) {
	dataDir := t.TempDir()
	secret, tokenID := createToken(t, dataDir, "--project", "default", "--scope", "write")
	p, logs := startServeWatched(t, dataDir, "--auth", "--log-format", "json", "--log-level", "debug")
	bearer := map[string]string{"Authorization": "Bearer " + secret}

	c := &mlflowClient{t: t, base: p.base, header: bearer}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "secrets"}, &exp)
	run := c.createRun(exp.ExperimentID, "r")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secret))
	for _, h := range []map[string]string{{"Authorization": basic}, {"PRIVATE-TOKEN": secret}, {"Authorization": "Bearer " + secret + "x"}} {
		resp, _ := do(t, http.MethodGet, p.base+"/api/2.0/mlflow/experiments/get?experiment_id="+exp.ExperimentID, nil, h)
		resp.Body.Close()
	}

	u := p.base + "/api/2.0/mlflow-artifacts/mpu/create/" + strings.TrimPrefix(run.ArtifactURI, "mlflow-artifacts:/")
	resp, body := do(t, http.MethodPost, u, []byte(`{"path":"big.bin","num_parts":1}`), map[string]string{
		"Authorization": "Bearer " + secret, "Content-Type": "application/json"})
	var created mpuCreated
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &created) != nil || len(created.Credentials) != 1 {
		t.Fatalf("mpu/create: %d %s", resp.StatusCode, body)
	}
	partURL, err := url.Parse(created.Credentials[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	sig := partURL.Query().Get("sig")
	if len(sig) < 16 {
		t.Fatalf("part URL %s has no signature", partURL)
	}
	code, _, err := putPart(partURL.String(), created.Credentials[0].Headers, strings.NewReader("part one"), 8)
	if err != nil || code != http.StatusOK {
		t.Fatalf("part upload: %d %v", code, err)
	}
	waitForLog(t, logs, `"method":"PUT","path":"/api/2.0/mlflow-artifacts/mpu/part/`)

	sawToken, sawPart := false, false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(line, secret) || strings.Contains(line, sig) || strings.Contains(line, url.QueryEscape(sig)) {
			t.Errorf("a log line holds a secret or a signature: %s", line)
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] != "request" {
			continue
		}
		if rec["request_id"] == nil || rec["route"] == nil || rec["status"] == nil || rec["ms"] == nil || rec["bytes_out"] == nil {
			t.Errorf("access log line lacks a field: %s", line)
		}
		if rec["token_id"] == tokenID && rec["route"] == "/api/2.0/mlflow/*rpc" {
			sawToken = true
		}
		if path, _ := rec["path"].(string); strings.Contains(path, "/mpu/part/") && rec["status"] == float64(200) {
			sawPart = true
		}
	}
	if !sawToken || !sawPart {
		t.Fatalf("the access log lacks the token's requests with token_id %s (%v) or the part upload (%v):\n%s", tokenID, sawToken, sawPart, logs)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir and returns their paths and
// a pool that trusts the certificate.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mlgate test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS serves HTTPS with a self-signed certificate: a client trusting it gets 200 on /health,
// and a plain-HTTP request to the same port gets no 200.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	addr := "127.0.0.1:" + freePort(t)
	logs := &syncBuffer{}
	cmd := exec.Command(mlgateBin, "serve", "--data-dir", filepath.Join(dir, "data"), "--addr", addr, "--tls-cert", certFile)
	cmd.Env = append(os.Environ(), "MLGATE_TLS_KEY="+keyFile) // the key from its variable, the cert from its flag
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("mlgate logs:\n%s", logs)
		}
	})
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	poll.UntilOK(t, 20*time.Second, "mlgate to answer /health over https", func() error {
		select {
		case err := <-done:
			t.Fatalf("mlgate exited: %v\n%s", err, logs)
		default:
		}
		resp, err := client.Get("https://" + addr + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.TLS == nil {
			return fmt.Errorf("/health over https: %s", resp.Status)
		}
		return nil
	})
	if resp, err := http.Get("http://" + addr + "/health"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP to the TLS port answered 200")
		}
	}
	if !strings.Contains(logs.String(), "scheme=https") {
		t.Fatalf("the start line does not say https:\n%s", logs)
	}
}

// TestClearTextTokenWarning: --auth on an address other machines reach, without TLS, warns at start;
// on loopback it does not.
func TestClearTextTokenWarning(t *testing.T) {
	const warning = "tokens would cross the network in clear"
	logs := &syncBuffer{}
	cmd := exec.Command(mlgateBin, "serve", "--data-dir", t.TempDir(), "--auth", "--addr", "0.0.0.0:"+freePort(t))
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	waitForLog(t, logs, "mlgate listening")
	if !strings.Contains(logs.String(), warning) {
		t.Fatalf("--auth on 0.0.0.0 without TLS did not warn:\n%s", logs)
	}
	_, quiet := startServeWatched(t, t.TempDir(), "--auth")
	waitForLog(t, quiet, "mlgate listening")
	if strings.Contains(quiet.String(), warning) {
		t.Fatalf("--auth on loopback warned of clear-text tokens:\n%s", quiet)
	}
}
