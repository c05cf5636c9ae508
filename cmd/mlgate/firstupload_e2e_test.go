package main

import (
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// TestStalledAndKilledFirstUploadShowsNoVersion covers issue 11's defect 4 against a real process: while
// the first upload of a new version stalls half way, neither the package listing nor MLflow's registry
// shows the version (it appears with its first committed file); killing mlgate then leaves nothing
// visible after a restart, and what the upload left behind is found and removed by fsck --repair.
func TestStalledAndKilledFirstUploadShowsNoVersion(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	if code := put(t, p.url("real/1.0.0/files/keep.txt"), []byte("keep me")); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	registry := func() string {
		return p.base + "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow/registered-models/search?max_results=100"
	}
	wantNoGhost := func(when string) {
		t.Helper()
		if code, body := get(t, p.url("ghost/2.0.0/files")); code != http.StatusNotFound {
			t.Fatalf("%s: the version lists with %d: %s", when, code, body)
		}
		code, body := get(t, registry())
		if code != http.StatusOK || strings.Contains(string(body), "ghost") || !strings.Contains(string(body), "real") {
			t.Fatalf("%s: registered models %d %s", when, code, body)
		}
	}

	const size = 64 << 20
	up := startUpload(t, p.url("ghost/2.0.0/files/big.bin"), size)
	up.write(t, 32<<20)
	waitForStagedBytes(t, dataDir, 16<<20) // the server is half way through the body, and waits for more
	wantNoGhost("during the stalled first upload")

	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL did not kill")
	}
	up.pw.CloseWithError(errors.New("server gone"))
	select {
	case resp := <-up.resp:
		resp.Body.Close()
		t.Fatalf("killed upload got an answer: %d", resp.StatusCode)
	case <-up.err:
	}
	p = startServe(t, dataDir)
	wantNoGhost("after the kill and a restart")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 1 || !strings.Contains(out, "staging_leftover") {
		t.Fatalf("fsck after the kill: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, "fsck", "--repair", "--data-dir", dataDir); code != 0 {
		t.Fatalf("fsck --repair: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck after repair: exit %d\n%s", code, out)
	}
	// The version appears with its first file.
	p = startServe(t, dataDir)
	if code := put(t, p.url("ghost/2.0.0/files/small.bin"), []byte("small")); code != http.StatusCreated {
		t.Fatalf("first upload after the restart: %d", code)
	}
	if code, body := get(t, registry()); code != http.StatusOK || !strings.Contains(string(body), "ghost") {
		t.Fatalf("registered models after the first file: %d %s", code, body)
	}
}
