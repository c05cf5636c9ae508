package main

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mlgate/mlgate/backends/s3test"
)

// TestS3BackendsFromConfig runs mlgate with a localfs backend and both S3 backends on the real servers
// .ci/s3-servers.sh starts (s3 on MinIO, minio on versitygw), routes by project, migrates local → s3,
// and downloads everything again.
func TestS3BackendsFromConfig(t *testing.T) {
	mio := s3test.Lookup(t, "minio")
	vgw := s3test.Lookup(t, "versitygw")
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	prefix := fmt.Sprintf("cmd-e2e-%x/", randBytes(6))
	cfg := filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf(`backends:
  - {name: local, type: localfs, config: {root: %s}}
  - name: s3
    type: s3
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
  - name: mio
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: local
routes:
  - {project: "team/s3", backend: s3}
  - {project: "team/mio", backend: mio}
`, filepath.Join(dir, "local"), mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv,
		vgw.Endpoint, vgw.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runCmd(t, "backends", "list", "--config", cfg, "--data-dir", dataDir)
	if code != 0 || strings.Count(out, " ok ") != 3 {
		t.Fatalf("backends list: exit %d\n%s", code, out)
	}
	t.Logf("backends list:\n%s", out)
	for _, name := range []string{"s3", "mio"} {
		if code, out := runCmd(t, "backends", "check", "--config", cfg, "--data-dir", dataDir, name); code != 0 {
			t.Fatalf("backends check %s: exit %d\n%s", name, code, out)
		}
	}

	content := map[string][]byte{"team/s3": randBytes(3 << 20), "team/mio": randBytes(1 << 20), "team/local": randBytes(2 << 20)}
	p := startServe(t, dataDir, "--config", cfg)
	for project, data := range content {
		if code := put(t, projectFileURL(p, project, "w.bin"), data); code != http.StatusCreated {
			t.Fatalf("upload to %s: %d", project, code)
		}
	}
	check := func() {
		t.Helper()
		for project, data := range content {
			code, got := get(t, projectFileURL(p, project, "w.bin"))
			if code != http.StatusOK || string(got) != string(data) {
				t.Fatalf("download from %s: %d, %d bytes", project, code, len(got))
			}
		}
	}
	check()
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out = runCmd(t, "backends", "migrate", "--config", cfg, "--data-dir", dataDir, "--from", "local", "--to", "s3")
	if code != 0 || !strings.Contains(out, "migrated 1 files, 2097152 bytes, from local to s3") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "backends", "migrate", "--config", cfg, "--data-dir", dataDir, "--from", "mio", "--to", "local")
	if code != 0 || !strings.Contains(out, "migrated 1 files") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	p = startServe(t, dataDir, "--config", cfg)
	check()
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// fsck lists whole buckets under the prefix: every backend must be clean.
	if code, out := runCmd(t, "fsck", "--config", cfg, "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck: exit %d\n%s", code, out)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
