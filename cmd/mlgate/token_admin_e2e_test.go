package main

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// runCmdOut runs an mlgate command and returns its exit code, stdout and stderr apart.
func runCmdOut(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(mlgateBin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if err != nil {
		exit, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = exit.ExitCode()
	}
	return code, string(out), stderr.String()
}

// Tokens are created, listed and revoked on a running server with --url and an instance token; a
// project token, even an admin one, cannot; the secret is printed once and never logged.
func TestTokenCommandsThroughTheServer(t *testing.T) {
	dataDir := t.TempDir()
	inst, instID := createToken(t, dataDir, "--instance", "--name", "ops")
	projAdmin, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "admin")
	if code, _, errOut := runCmdOut(t, "token", "create", "--data-dir", dataDir, "--instance", "--project", "p"); code == 0 || !strings.Contains(errOut, "not both") {
		t.Fatalf("--instance with --project: %d %s", code, errOut)
	}
	p, logs := startServeWatched(t, dataDir, "--auth")

	code, secret, errOut := runCmdOut(t, "token", "create", "--url", p.base, "--token", inst, "--project", "team/vision", "--scope", "write", "--name", "ci")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "mlg_") || !strings.Contains(errOut, "for project team/vision, scope write") {
		t.Fatalf("token create --url: %d %q %s", code, secret, errOut)
	}
	if status := putWith(t, p.url("m/1.0.0/files/a.txt"), "a", secret); status != http.StatusCreated {
		t.Fatalf("upload with the new token: %d", status)
	}

	code, list, errOut := runCmdOut(t, "token", "list", "--url", p.base, "--token", inst)
	if code != 0 || !strings.Contains(list, "(instance)") || !strings.Contains(list, instID) || !strings.Contains(list, "ci ") || strings.Contains(list, "mlg_") {
		t.Fatalf("token list --url: %d\n%s%s", code, list, errOut)
	}
	var ciID string
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "ci" {
			ciID = f[0]
		}
	}
	if code, out, errOut := runCmdOut(t, "token", "revoke", "--url", p.base, "--token", inst, ciID); code != 0 || !strings.Contains(out, "revoked token "+ciID) {
		t.Fatalf("token revoke --url: %d %s %s", code, out, errOut)
	}
	if status := putWith(t, p.url("m/1.0.0/files/b.txt"), "b", secret); status != http.StatusUnauthorized {
		t.Fatalf("upload with the revoked token: %d", status)
	}

	// A project token, admin scope included, is refused; no token at all is told what to send.
	if code, _, errOut := runCmdOut(t, "token", "list", "--url", p.base, "--token", projAdmin); code == 0 || !strings.Contains(errOut, "403") || !strings.Contains(errOut, "instance token") {
		t.Fatalf("token list with a project token: %d %s", code, errOut)
	}
	if code, _, errOut := runCmdOut(t, "token", "list", "--url", p.base, "--token", ""); code == 0 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "MLGATE_TOKEN") {
		t.Fatalf("token list without a token: %d %s", code, errOut)
	}
	if code, _, errOut := runCmdOut(t, "token", "list", "--url", p.base, "--data-dir", dataDir); code == 0 || !strings.Contains(errOut, "not both") {
		t.Fatalf("--url with --data-dir: %d %s", code, errOut)
	}
	// The offline form still sees the store a server holds as locked.
	if code, _, errOut := runCmdOut(t, "token", "list", "--data-dir", dataDir); code == 0 || !strings.Contains(errOut, "locked") {
		t.Fatalf("offline token list while serving: %d %s", code, errOut)
	}
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), inst) {
		t.Fatal("a secret reached the server's log")
	}
	if !strings.Contains(logs.String(), "token created") {
		t.Fatalf("no log line for the created token:\n%s", logs)
	}
}

func putWith(t *testing.T, url, body, secret string) int {
	t.Helper()
	resp, _ := do(t, http.MethodPut, url, []byte(body), map[string]string{"Authorization": "Bearer " + secret})
	return resp.StatusCode
}
