package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// createToken runs `mlgate token create` and returns the secret (stdout) and the id (from the stderr note).
func createToken(t *testing.T, dataDir string, args ...string) (secret, id string) {
	t.Helper()
	cmd := exec.Command(mlgateBin, append([]string{"token", "create", "--data-dir", dataDir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, stderr.String())
	}
	secret = strings.TrimSpace(string(out))
	if strings.Contains(secret, "\n") || !strings.HasPrefix(secret, "mlg_") {
		t.Fatalf("token create printed %q on stdout, want the secret alone", out)
	}
	m := regexp.MustCompile(`created token ([0-9a-f]{16}) `).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("token create note lacks the id: %s", stderr.String())
	}
	return secret, m[1]
}

func do(t *testing.T, method, url string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

func TestAuthEndToEnd(t *testing.T) {
	dataDir := t.TempDir()
	write, writeID := createToken(t, dataDir, "--project", "team/vision", "--scope", "write", "--name", "ci")
	read, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "read", "--expires", "30d")
	if code, out := runCmd(t, "token", "create", "--data-dir", dataDir, "--project", "p", "--scope", "root"); code == 0 {
		t.Fatalf("a bad scope was accepted: %s", out)
	}

	code, out := runCmd(t, "token", "list", "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, writeID) || !strings.Contains(out, "team/vision") || !strings.Contains(out, "ci") {
		t.Fatalf("token list: exit %d\n%s", code, out)
	}
	for _, secret := range []string{write, read} {
		if strings.Contains(out, secret) || strings.Contains(out, secret[4:20]) {
			t.Fatalf("token list shows a secret:\n%s", out)
		}
	}

	p := startServe(t, dataDir, "--auth")
	data := []byte("weights")
	resp, body := do(t, http.MethodPut, p.url("resnet/1.0.0/files/model.pt"), data, map[string]string{"Authorization": "Bearer " + write})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload with a write token: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, http.MethodPut, p.url("resnet/1.0.0/files/other.pt"), data, nil)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" ||
		!strings.Contains(string(body), `"unauthenticated"`) {
		t.Fatalf("upload without a token: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("mlflow-user:"+read))
	resp, body = do(t, http.MethodGet, p.url("resnet/1.0.0/files/model.pt"), nil, map[string]string{"Authorization": basic})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("download with a read token as Basic password: %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, http.MethodPut, p.url("resnet/1.0.0/files/x"), data, map[string]string{"PRIVATE-TOKEN": read})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upload with a read token: %d %s", resp.StatusCode, body)
	}
	resp, body = do(t, http.MethodPost, p.base+"/api/2.0/mlflow/experiments/create", []byte(`{"name":"x"}`), nil)
	var mlErr struct {
		ErrorCode string `json:"error_code"`
	}
	if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &mlErr) != nil || mlErr.ErrorCode != "UNAUTHENTICATED" {
		t.Fatalf("MLflow without a token: %d %s", resp.StatusCode, body)
	}
	if code, _ := get(t, p.base+"/health"); code != http.StatusOK {
		t.Fatalf("health with auth on: %d", code)
	}

	// The database is locked while serving: token commands must say so rather than hang or corrupt.
	if code, out := runCmd(t, "token", "list", "--data-dir", dataDir); code == 0 || !strings.Contains(strings.ToLower(out), "lock") {
		t.Fatalf("token list beside a running server: exit %d\n%s", code, out)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	if code, out := runCmd(t, "token", "revoke", writeID, "--data-dir", dataDir); code != 0 || !strings.Contains(out, writeID) {
		t.Fatalf("token revoke: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, "token", "list", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("token list after revoke: exit %d\n%s", code, out)
	}
	if code, _ := runCmd(t, "token", "revoke", "0000000000000000", "--data-dir", dataDir); code == 0 {
		t.Fatal("revoking an unknown token succeeded")
	}
	t.Setenv("MLGATE_AUTH", "1") // the environment turns auth on too
	p = startServe(t, dataDir)
	resp, body = do(t, http.MethodGet, p.url("resnet/1.0.0/files/model.pt"), nil, map[string]string{"Authorization": "Bearer " + write})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "revoked") {
		t.Fatalf("revoked token after restart: %d %s", resp.StatusCode, body)
	}
	if code, _ := get(t, p.url("resnet/1.0.0/files/model.pt")); code != http.StatusUnauthorized {
		t.Fatalf("MLGATE_AUTH=1 did not turn auth on: %d", code)
	}
}

func TestServeRefusesNonLoopbackWithoutAuth(t *testing.T) {
	dataDir := t.TempDir()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		code, out := runCmd(t, "serve", "--data-dir", dataDir, "--addr", addr)
		if code == 0 || !strings.Contains(out, "refusing to listen") || !strings.Contains(out, "--auth") ||
			!strings.Contains(out, "--insecure-listen-any") {
			t.Fatalf("serve --addr %s without auth: exit %d\n%s", addr, code, out)
		}
	}
	// Either flag lifts the refusal; the test reaches the server through loopback, which 0.0.0.0 includes.
	for _, flag := range []string{"--auth", "--insecure-listen-any"} {
		t.Run(flag, func(t *testing.T) {
			port := freePort(t)
			cmd := exec.Command(mlgateBin, "serve", "--data-dir", dataDir, "--addr", "0.0.0.0:"+port, flag)
			logs := &syncBuffer{}
			cmd.Stderr = logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() }) // the server of a failed wait; a no-op after an exit
			waitHealthy(t, "http://127.0.0.1:"+port, done, logs)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := <-done; err != nil {
				t.Fatalf("serve 0.0.0.0 %s: exit %v\n%s", flag, err, logs)
			}
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
