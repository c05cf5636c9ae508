package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPluginBackendFromConfig declares the example plugin (built here, a real child process) as a backend
// next to localfs, routes a project to it, and migrates its files back to localfs.
func TestPluginBackendFromConfig(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "example-plugin")
	build := exec.Command("go", "build", "-o", bin, "../../plugins/example")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example plugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	writeCfg := func(sha string) string {
		cfg := filepath.Join(dir, "mlgate.yaml")
		yaml := fmt.Sprintf(`backends:
  - {name: local, type: localfs, config: {root: %s}}
  - name: ext
    plugin: {path: %s, sha256: %s}
    config: {root: %s}
default_backend: local
routes:
  - {project: team/ext, backend: ext}
`, filepath.Join(dir, "local"), bin, sha, filepath.Join(dir, "ext"))
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	dataDir := filepath.Join(dir, "data")

	// A binary that does not hash to the configured sha256 is refused at startup.
	cfg := writeCfg(strings.Repeat("0", 64))
	if code, out := runCmd(t, "serve", "--config", cfg, "--data-dir", dataDir, "--addr", "127.0.0.1:0"); code == 0 ||
		!strings.Contains(out, `backend "ext": plugin `) {
		t.Fatalf("serve with a wrong plugin checksum: exit %d\n%s", code, out)
	}

	cfg = writeCfg(hex.EncodeToString(sum[:]))
	code, out := runCmd(t, "backends", "list", "--config", cfg, "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "plugin:example-plugin") || !strings.Contains(out, " plugin ") || strings.Count(out, " ok ") != 2 {
		t.Fatalf("backends list: exit %d\n%s", code, out)
	}
	t.Logf("backends list:\n%s", out)
	if code, out := runCmd(t, "backends", "check", "--config", cfg, "--data-dir", dataDir, "ext"); code != 0 {
		t.Fatalf("backends check ext: exit %d\n%s", code, out)
	}

	body := payloadBytes(1<<20, 7)
	p := startServe(t, dataDir, "--config", cfg)
	if code := put(t, projectFileURL(p, "team/ext", "w.bin"), body); code != http.StatusCreated {
		t.Fatalf("upload through the plugin: %d", code)
	}
	if n := blobsIn(t, filepath.Join(dir, "ext")); n != 1 {
		t.Fatalf("%d blobs in the plugin's root, want 1", n)
	}
	if code, got := get(t, projectFileURL(p, "team/ext", "w.bin")); code != http.StatusOK || string(got) != string(body) {
		t.Fatalf("download through the plugin: %d, %d bytes", code, len(got))
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out := runCmd(t, "backends", "migrate", "--config", cfg, "--data-dir", dataDir, "--from", "ext", "--to", "local"); code != 0 ||
		!strings.Contains(out, "migrated 1 files") {
		t.Fatalf("migrate ext → local: exit %d\n%s", code, out)
	}
	if a, b := blobsIn(t, filepath.Join(dir, "ext")), blobsIn(t, filepath.Join(dir, "local")); a != 0 || b != 1 {
		t.Fatalf("after migrate: ext=%d local=%d", a, b)
	}
	p = startServe(t, dataDir, "--config", cfg)
	if code, got := get(t, projectFileURL(p, "team/ext", "w.bin")); code != http.StatusOK || string(got) != string(body) {
		t.Fatalf("download after migrate: %d, %d bytes", code, len(got))
	}
}
