package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// twoBackendConfig writes a config with localfs backends "a" and "b" under dir, the given default and
// routes (YAML list items), and returns its path.
func twoBackendConfig(t *testing.T, dir, def string, routes ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "backends:\n")
	for _, name := range []string{"a", "b"} {
		fmt.Fprintf(&b, "  - name: %s\n    type: localfs\n    config:\n      root: %s\n", name, filepath.Join(dir, "root-"+name))
	}
	fmt.Fprintf(&b, "default_backend: %s\nroutes:\n", def)
	for _, r := range routes {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	if len(routes) == 0 {
		b.WriteString("  []\n")
	}
	path := filepath.Join(dir, "mlgate.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// blobsIn counts the committed blobs (under c/) of a localfs root.
func blobsIn(t *testing.T, root string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(root, "c"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func projectFileURL(p *proc, project, file string) string {
	return p.base + "/api/v4/projects/" + strings.ReplaceAll(project, "/", "%2F") + "/packages/ml_models/m/1.0.0/files/" + file
}

// syncBuffer is a bytes.Buffer safe to read while the child process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServeWatched is startServe with a log that the test may read while the server runs.
func startServeWatched(t *testing.T, dataDir string, extra ...string) (*proc, *syncBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &syncBuffer{}
	p := &proc{t: t, base: "http://" + addr, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(mlgateBin, append([]string{"serve", "--data-dir", dataDir, "--addr", addr}, extra...)...)
	p.cmd.Stderr = logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("mlgate logs:\n%s", logs)
		}
	})
	waitHealthy(t, p.base, p.done, logs)
	return p, logs
}

// waitForLog waits until logs contain s.
func waitForLog(t *testing.T, logs *syncBuffer, s string) {
	t.Helper()
	poll.UntilOK(t, 10*time.Second, fmt.Sprintf("the log to show %q", s), func() error {
		if l := logs.String(); !strings.Contains(l, s) {
			return fmt.Errorf("log so far:\n%s", l)
		}
		return nil
	})
}

func TestRoutedBackendsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	rootA, rootB := filepath.Join(dir, "root-a"), filepath.Join(dir, "root-b")
	files := map[string][]byte{ // "project|file" → content
		"team/vision|w.bin":     payloadBytes(300_000, 1),
		"team/other|w.bin":      payloadBytes(200_000, 2),
		"team/third|before.bin": []byte("before the reload"),
		"team/third|after.bin":  []byte("after the reload"),
	}
	upload := func(p *proc, key string) {
		t.Helper()
		project, file, _ := strings.Cut(key, "|")
		if code := put(t, projectFileURL(p, project, file), files[key]); code != http.StatusCreated {
			t.Fatalf("upload %s: %d", key, code)
		}
	}
	downloadAll := func(p *proc, keys ...string) {
		t.Helper()
		for _, key := range keys {
			project, file, _ := strings.Cut(key, "|")
			resp, err := http.Get(projectFileURL(p, project, file))
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, resp.Body)
			resp.Body.Close()
			sum := hex.EncodeToString(h.Sum(nil))
			want := sha256.Sum256(files[key])
			if err != nil || resp.StatusCode != http.StatusOK || sum != hex.EncodeToString(want[:]) || resp.Header.Get("X-Checksum-SHA256") != sum {
				t.Fatalf("download %s: %d, sha256 %s (row says %s), want %x, err %v", key, resp.StatusCode, sum,
					resp.Header.Get("X-Checksum-SHA256"), want, err)
			}
		}
	}

	// 1. Routed by project: vision to b, everything else to the default a.
	cfg := twoBackendConfig(t, dir, "a", `{project: team/vision, backend: b}`)
	p := startServe(t, dataDir, "--config", cfg)
	upload(p, "team/vision|w.bin")
	upload(p, "team/other|w.bin")
	if a, b := blobsIn(t, rootA), blobsIn(t, rootB); a != 1 || b != 1 {
		t.Fatalf("after routed uploads: a=%d b=%d blobs, want 1 each", a, b)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// 2. Restart with the routes swapped: both files stay downloadable from where they were written.
	cfg = twoBackendConfig(t, dir, "b", `{project: team/vision, backend: a}`)
	p, logs := startServeWatched(t, dataDir, "--config", cfg)
	downloadAll(p, "team/vision|w.bin", "team/other|w.bin")
	upload(p, "team/third|before.bin") // the default, b
	if a, b := blobsIn(t, rootA), blobsIn(t, rootB); a != 1 || b != 2 {
		t.Fatalf("after restart: a=%d b=%d blobs, want 1 and 2", a, b)
	}

	// 3. SIGHUP with a new route: it applies to the next upload without a restart.
	twoBackendConfig(t, dir, "b", `{project: team/vision, backend: a}`, `{project: "team/th*", model: "*", backend: a}`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logs, "config reloaded")
	upload(p, "team/third|after.bin")
	if a, b := blobsIn(t, rootA), blobsIn(t, rootB); a != 2 || b != 2 {
		t.Fatalf("after SIGHUP: a=%d b=%d blobs, want 2 each", a, b)
	}
	downloadAll(p, "team/vision|w.bin", "team/other|w.bin", "team/third|before.bin", "team/third|after.bin")
	// A broken file on SIGHUP keeps the running config.
	if err := os.WriteFile(cfg, []byte("backends: [{name: a, type: floppy}]\ndefault_backend: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	waitForLog(t, logs, "config reload failed")
	downloadAll(p, "team/third|after.bin")
	twoBackendConfig(t, dir, "b", `{project: team/vision, backend: a}`, `{project: "team/th*", model: "*", backend: a}`)

	// migrate needs the database: refused beside the running server.
	if code, out := runCmd(t, "backends", "migrate", "--config", cfg, "--data-dir", dataDir, "--from", "a", "--to", "b"); code == 0 ||
		!strings.Contains(out, "stop mlgate serve first") {
		t.Fatalf("migrate beside a server: exit %d\n%s", code, out)
	}
	// list and check work beside it (they do not open the database).
	code, out := runCmd(t, "backends", "list", "--config", cfg, "--data-dir", dataDir)
	if code != 0 || !strings.Contains(out, "NAME") || strings.Count(out, "localfs") < 4 || strings.Count(out, "in-process") != 2 ||
		strings.Count(out, " ok ") != 2 {
		t.Fatalf("backends list: exit %d\n%s", code, out)
	}
	t.Logf("backends list:\n%s", out)
	code, out = runCmd(t, "backends", "check", "--config", cfg, "--data-dir", dataDir, "b")
	if code != 0 || !strings.Contains(out, "round trip of 1049093 bytes ok") {
		t.Fatalf("backends check: exit %d\n%s", code, out)
	}
	t.Logf("backends check:\n%s", out)
	if code, out := runCmd(t, "backends", "check", "--config", cfg, "--data-dir", dataDir, "nope"); code == 0 || !strings.Contains(out, `no backend "nope"`) {
		t.Fatalf("check of an unknown backend: exit %d\n%s", code, out)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// 4. migrate a → b: dry run, filtered dry run, the real run, a no-op re-run.
	mig := func(extra ...string) (int, string) {
		return runCmd(t, append([]string{"backends", "migrate", "--config", cfg, "--data-dir", dataDir, "--from", "a", "--to", "b"}, extra...)...)
	}
	code, out = mig("--dry-run")
	if code != 0 || strings.Count(out, "would move\t") != 2 || !strings.Contains(out, "would move 2 files, 200016 bytes") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	code, out = mig("--dry-run", "--project", "team/other")
	if code != 0 || strings.Count(out, "would move\t") != 1 || !strings.Contains(out, "team/other") {
		t.Fatalf("filtered dry run: exit %d\n%s", code, out)
	}
	if a, b := blobsIn(t, rootA), blobsIn(t, rootB); a != 2 || b != 2 {
		t.Fatalf("a dry run moved blobs: a=%d b=%d", a, b)
	}
	start := time.Now()
	code, out = mig()
	if code != 0 || !strings.Contains(out, "migrated 2 files, 200016 bytes, from a to b") || !strings.Contains(out, "100%") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	t.Logf("migrate of 2 files took %v:\n%s", time.Since(start), out)
	if a, b := blobsIn(t, rootA), blobsIn(t, rootB); a != 0 || b != 4 {
		t.Fatalf("after migrate: a=%d b=%d blobs, want 0 and 4", a, b)
	}
	if code, out = mig(); code != 0 || !strings.Contains(out, "nothing to migrate") {
		t.Fatalf("re-run: exit %d\n%s", code, out)
	}
	if code, out = runCmd(t, "fsck", "--config", cfg, "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") ||
		!strings.Contains(out, "backend a: 0 file rows") || !strings.Contains(out, "backend b: 4 file rows, 4 blobs") {
		t.Fatalf("fsck after migrate: exit %d\n%s", code, out)
	}

	// 5. Every file is still served, with the sha256 its row records.
	p = startServe(t, dataDir, "--config", cfg)
	downloadAll(p, "team/vision|w.bin", "team/other|w.bin", "team/third|before.bin", "team/third|after.bin")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// 6. Dropping backend b from the config: fsck reports its rows as on an unknown backend.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("backends: [{name: a, type: localfs, config: {root: %s}}]\ndefault_backend: a\n", rootA)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out = runCmd(t, "fsck", "--config", cfg, "--data-dir", dataDir); code != 1 || strings.Count(out, "unknown_backend") != 4 {
		t.Fatalf("fsck with b gone: exit %d\n%s", code, out)
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad type":       {"backends: [{name: a, type: floppy}]\ndefault_backend: a\n", `unknown backend type "floppy"`},
		"unknown route":  {"backends: [{name: a, type: memory}]\ndefault_backend: a\nroutes: [{project: x, backend: z}]\n", `backend "z" is not in backends`},
		"backend fails":  {"backends: [{name: a, type: localfs, config: {}}]\ndefault_backend: a\n", `backend "a" (localfs): localfs config: root is required`},
		"bad yaml":       {"backends: {", "invalid configuration"},
		"missing plugin": {"backends: [{name: a, plugin: {path: /nonexistent/plugin, sha256: " + strings.Repeat("0", 64) + "}}]\ndefault_backend: a\n", `backend "a": plugin /nonexistent/plugin`},
	} {
		cfg := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(cfg, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := runCmd(t, "serve", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0")
		if code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d, want a message containing %q:\n%s", name, code, tc.want, out)
		}
	}
}

// payloadBytes returns n deterministic bytes that differ per seed.
func payloadBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(2463534242) + uint32(seed)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// An upload in flight when SIGHUP removes its backend still completes on it: the backend is closed only
// after its last request. The file then answers 503 (its backend is no longer configured) until the
// backend is declared again.
func TestReloadLetsInFlightUploadFinish(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	cfg := twoBackendConfig(t, dir, "a")
	p, logs := startServeWatched(t, dataDir, "--config", cfg)

	data := payloadBytes(4<<20, 3)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, projectFileURL(p, "team/x", "slow.bin"), pr)
	req.ContentLength = int64(len(data))
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		resp.Body.Close()
		done <- result{resp.StatusCode, nil}
	}()
	if _, err := pw.Write(data[:1<<20]); err != nil {
		t.Fatal(err)
	}
	// In flight means the server is storing it: written into the client's socket is not enough, since the
	// server may not have started the request (and pinned its storage) before the reload.
	poll.UntilOK(t, 20*time.Second, "the upload to reach backend a", func() error {
		if n := stagedBytesIn(t, filepath.Join(dir, "root-a")); n == 0 {
			return errors.New("nothing staged on a yet")
		}
		return nil
	})

	// Only b from now on.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("backends: [{name: b, type: localfs, config: {root: %s}}]\ndefault_backend: b\n",
		filepath.Join(dir, "root-b"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logs, "config reloaded")
	if _, err := pw.Write(data[1<<20:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r.err != nil || r.code != http.StatusCreated {
		t.Fatalf("in-flight upload across the reload: %d, %v\n%s", r.code, r.err, logs)
	}
	if n := blobsIn(t, filepath.Join(dir, "root-a")); n != 1 {
		t.Fatalf("%d blobs on a, want the in-flight upload there", n)
	}
	// New uploads go to b; the file on a is reported unavailable, not lost and not a 500.
	if code := put(t, projectFileURL(p, "team/x", "new.bin"), []byte("new")); code != http.StatusCreated {
		t.Fatalf("upload after reload: %d", code)
	}
	if n := blobsIn(t, filepath.Join(dir, "root-b")); n != 1 {
		t.Fatalf("%d blobs on b, want 1", n)
	}
	resp, err := http.Get(projectFileURL(p, "team/x", "slow.bin"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `backend \"a\"`) {
		t.Fatalf("file on a removed backend: %d %s", resp.StatusCode, body)
	}
	// Declaring a again brings it back.
	twoBackendConfig(t, dir, "b")
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	poll.UntilOK(t, 10*time.Second, "the file on a after declaring it again", func() error {
		code, got := get(t, projectFileURL(p, "team/x", "slow.bin"))
		if code != http.StatusOK || !bytes.Equal(got, data) {
			return fmt.Errorf("%d, %d bytes", code, len(got))
		}
		return nil
	})
}
