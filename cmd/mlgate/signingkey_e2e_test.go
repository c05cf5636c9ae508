package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// newKeyText draws a signing key in the form MLGATE_SIGNING_KEY takes.
func newKeyText() string {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	return base64.StdEncoding.EncodeToString(raw)
}

var signingKeyIDPattern = regexp.MustCompile(`signing_key_id=([0-9a-f]{16})`)

// signingKeyID is the key fingerprint a stopped server logged when it started.
func signingKeyID(t *testing.T, p *proc) string {
	t.Helper()
	m := signingKeyIDPattern.FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("no signing_key_id in the logs:\n%s", p.logs)
	}
	return m[1]
}

// multipartUpload is one upload in flight through a server's mlflow-artifacts proxy.
type multipartUpload struct {
	c       *mlflowClient
	uri     string
	created mpuCreated
	data    []byte
	parts   []mpuPart
}

const restartPartSize = 5 << 20 // localfs's smallest middle part

// startMultipart creates a run and a two-part upload of 5 MiB + 1000 bytes into it.
func startMultipart(t *testing.T, p *proc) *multipartUpload {
	t.Helper()
	c := &mlflowClient{t: t, base: p.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "restart"}, &exp)
	run := c.createRun(exp.ExperimentID, "r")
	data := make([]byte, restartPartSize+1000)
	_, _ = rand.Read(data)
	return &multipartUpload{c: c, uri: run.ArtifactURI, created: c.mpuCreate(run.ArtifactURI, "model", "/tmp/weights.bin", 2), data: data}
}

// putPart sends part n (1-based) to the URL create handed out, with its origin replaced by p's, as a
// load balancer in front of replicas (or of a restarted server) would route it; it returns the status.
func (u *multipartUpload) putPart(t *testing.T, p *proc, n int) int {
	t.Helper()
	cred := u.created.Credentials[n-1]
	rest, ok := strings.CutPrefix(cred.URL, "http://")
	_, path, found := strings.Cut(rest, "/")
	if !ok || !found {
		t.Fatalf("part URL %q", cred.URL)
	}
	body := u.data[(n-1)*restartPartSize : min(n*restartPartSize, len(u.data))]
	code, etag, err := putPart(p.base+"/"+path, cred.Headers, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if code == http.StatusOK {
		u.parts = append(u.parts, mpuPart{n, etag})
	}
	return code
}

// complete completes the upload through p and returns the status and body.
func (u *multipartUpload) complete(p *proc) (int, []byte) {
	u.c.base = p.base
	return u.c.mpuCall("complete", u.uri, "model", map[string]any{"path": "/tmp/weights.bin", "upload_id": u.created.UploadID, "parts": u.parts})
}

// TestMultipartUploadSurvivesRestart: an upload created before a restart is finished after it with the
// part URLs and upload id handed out before, whether the signing key is the one mlgate keeps in its
// store or MLGATE_SIGNING_KEY; the key never appears in the logs, and both starts log one fingerprint.
func TestMultipartUploadSurvivesRestart(t *testing.T) {
	key := newKeyText()
	for _, tc := range []struct {
		name, source string
		env          []string
	}{
		// An empty variable counts as unset, whatever the test's own environment holds.
		{"key kept in the store", "signing_key=store", []string{signingKeyEnv + "="}},
		{"MLGATE_SIGNING_KEY", "signing_key=" + signingKeyEnv, []string{signingKeyEnv + "=" + key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			p := startServeEnv(t, dataDir, tc.env)
			up := startMultipart(t, p)
			if code := up.putPart(t, p, 1); code != http.StatusOK {
				t.Fatalf("part 1 before the restart: %d", code)
			}
			if err := p.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("graceful stop: %v\n%s", err, p.logs)
			}

			q := startServeEnv(t, dataDir, tc.env)
			if code := up.putPart(t, q, 2); code != http.StatusOK {
				t.Fatalf("part 2 after the restart, to the URL signed before it: %d", code)
			}
			if code, body := up.complete(q); code != http.StatusOK {
				t.Fatalf("complete after the restart with the upload id from before it: %d %s", code, body)
			}
			code, got := get(t, up.c.artifactURL(up.uri, "model/weights.bin"))
			if code != http.StatusOK || !bytes.Equal(got, up.data) {
				t.Fatalf("download of the upload finished after the restart: %d, %d bytes", code, len(got))
			}
			if err := q.stop(syscall.SIGTERM); err != nil {
				t.Fatalf("graceful stop: %v\n%s", err, q.logs)
			}
			for _, s := range []*proc{p, q} {
				if !strings.Contains(s.logs.String(), tc.source) {
					t.Errorf("the log does not say %s:\n%s", tc.source, s.logs)
				}
				if strings.Contains(s.logs.String(), key) {
					t.Errorf("the signing key is in the log")
				}
			}
			if a, b := signingKeyID(t, p), signingKeyID(t, q); a != b {
				t.Errorf("the key changed across the restart: %s, then %s", a, b)
			}
		})
	}
}

// TestMultipartUploadAfterKeyChange: what the README says of a changed key. The uploads in flight are
// refused (403 for their part URLs, 400 for complete), and every file stored before is served as before.
func TestMultipartUploadAfterKeyChange(t *testing.T) {
	dataDir := t.TempDir()
	p := startServeEnv(t, dataDir, []string{signingKeyEnv + "=" + newKeyText()})
	up := startMultipart(t, p)
	if code := up.putPart(t, p, 1); code != http.StatusOK {
		t.Fatalf("part 1: %d", code)
	}
	stored := up.c.artifactURL(up.uri, "kept.txt")
	up.c.putArtifact(runInfo{ArtifactURI: up.uri}, "kept.txt", strings.NewReader("kept"), 4)
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}

	q := startServeEnv(t, dataDir, []string{signingKeyEnv + "=" + newKeyText()})
	if code := up.putPart(t, q, 2); code != http.StatusForbidden {
		t.Fatalf("part URL signed with the old key: %d, want 403", code)
	}
	code, body := up.complete(q)
	if code != http.StatusBadRequest || mlflowErrorCode(body) != "INVALID_PARAMETER_VALUE" {
		t.Fatalf("complete with an upload id sealed with the old key: %d %s", code, body)
	}
	stored = strings.Replace(stored, p.base, q.base, 1)
	if code, got := get(t, stored); code != http.StatusOK || string(got) != "kept" {
		t.Fatalf("a file stored before the key changed: %d %q", code, got)
	}
}

// A signing_key_file that cannot be used stops serve at start with a message naming the file.
func TestServeRefusesBadSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.key")
	const content = "0123456789abcdef" // 8 bytes as hex: too short
	cfgFile := filepath.Join(dir, "mlgate.yaml")
	for name, data := range map[string]string{keyFile: content + "\n", cfgFile: "signing_key_file: " + keyFile + "\n"} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := []string{"serve", "--config", cfgFile, "--data-dir", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0"}
	code, out := runCmdEnv(t, []string{signingKeyEnv + "="}, cmd...)
	if code == 0 || !strings.Contains(out, "signing_key_file "+keyFile) || !strings.Contains(out, "at least 32") {
		t.Fatalf("serve with a short key file: exit %d: %s", code, out)
	}
	if strings.Contains(out, content) {
		t.Fatalf("the message shows the key: %s", out)
	}
	// The variable wins over the file: with a good one, the file is not read.
	good := []string{signingKeyEnv + "=" + newKeyText()}
	p := startServeEnv(t, filepath.Join(dir, "data"), good, "--config", cfgFile)
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}
	if !strings.Contains(p.logs.String(), "signing_key="+signingKeyEnv) {
		t.Fatalf("the log does not name the variable as the key's source:\n%s", p.logs)
	}
}

// runCmdEnv is runCmd with env ("NAME=value") added to the test's environment.
func runCmdEnv(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(mlgateBin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}
