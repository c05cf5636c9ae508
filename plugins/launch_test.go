package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// buildOnce builds a main package of this module into a temp dir, once per test binary, and returns
// the executable's path and sha256.
var (
	buildMu    sync.Mutex
	buildCache = map[string][2]string{}
	buildDir   string
)

func build(t testing.TB, pkg string) (path, sum string) {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if r, ok := buildCache[pkg]; ok {
		return r[0], r[1]
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "mlgate-plugins-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	path = filepath.Join(buildDir, filepath.Base(pkg))
	out, err := exec.Command("go", "build", "-o", path, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	sum = hex.EncodeToString(h[:])
	buildCache[pkg] = [2]string{path, sum}
	return path, sum
}

func TestMain(m *testing.M) {
	pingInterval = 200 * time.Millisecond
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// launchLocalfs starts cmd/mlgate-backend serving localfs in a temp dir.
func launchLocalfs(t testing.TB) (*Supervised, string) {
	t.Helper()
	path, sum := build(t, "github.com/mlgate/mlgate/cmd/mlgate-backend")
	root := t.TempDir()
	cfg, _ := json.Marshal(map[string]any{"root": root, "min_part_size": 1024})
	b, err := Launch(context.Background(), Spec{Name: "fs", Path: path, SHA256: sum, Args: []string{"localfs"}, Config: cfg}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.(*Supervised), root
}

func TestLaunchConformance(t *testing.T) {
	b, _ := launchLocalfs(t)
	d, err := b.Describe(t.Context())
	if err != nil || d.Name == "" {
		t.Fatalf("describe: %+v %v", d, err)
	}
	checkUploads(t, true, true) // a real plugin process: large uploads go raw, small ones in chunks
	backendtest.Run(t, func(t *testing.T) backends.Backend { return backends.Checked("fs", b) })
	if n := b.Restarts(); n != 0 {
		t.Errorf("%d restarts during the suite", n)
	}
}

func TestLaunchRefused(t *testing.T) {
	path, sum := build(t, "github.com/mlgate/mlgate/cmd/mlgate-backend")
	cfg := json.RawMessage(`{"root":"` + t.TempDir() + `"}`)
	wrong := strings.Repeat("0", 64)
	cases := map[string]Spec{
		"wrong sha256":   {Name: "x", Path: path, SHA256: wrong, Args: []string{"localfs"}, Config: cfg},
		"no sha256":      {Name: "x", Path: path, Args: []string{"localfs"}, Config: cfg},
		"no path":        {Name: "x", SHA256: sum, Config: cfg},
		"bad config":     {Name: "x", Path: path, SHA256: sum, Args: []string{"localfs"}, Config: json.RawMessage(`{"nope":1}`)},
		"not a plugin":   {Name: "x", Path: "/bin/true", SHA256: sha256File(t, "/bin/true")},
		"unknown choice": {Name: "x", Path: path, SHA256: sum, Args: []string{"nosuch"}, Config: cfg},
	}
	for name, spec := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Launch(t.Context(), spec, testLogger(t))
			if err == nil {
				_ = b.Close()
				t.Fatal("launched")
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("error does not wrap ErrRefused: %v", err)
			}
			t.Log(err)
			if name == "wrong sha256" && !strings.Contains(err.Error(), "sha256") {
				t.Errorf("unclear message: %v", err)
			}
		})
	}
}

func sha256File(t testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}

// pattern yields n deterministic bytes without holding them.
type pattern struct {
	n, off int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternSum(n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, &pattern{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// kill SIGKILLs the running plugin process and returns its instance.
func kill(t testing.TB, b *Supervised) *instance {
	t.Helper()
	inst := b.cur.Load()
	if inst == nil {
		t.Fatal("no running plugin")
	}
	pid := inst.client.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return inst
}

func waitRestarts(t testing.TB, b *Supervised, n uint64) {
	t.Helper()
	poll.UntilOK(t, 30*time.Second, fmt.Sprintf("%d restarts", n), func() error {
		if r := b.Restarts(); r < n {
			return fmt.Errorf("restarts %d", r)
		}
		return nil
	})
}

// TestKillMidGet kills the plugin during a 200 MB download: the read fails with ErrUnavailable (and
// does not hang), the supervisor restarts the plugin, and the same download then succeeds.
func TestKillMidGet(t *testing.T) {
	const size = 200 << 20
	b, _ := launchLocalfs(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const key = "c/0000000000000001/big"
	want := patternSum(size)
	if _, err := b.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{SHA256: want}); err != nil {
		t.Fatal(err)
	}

	rc, info, err := b.Get(ctx, key, backends.All)
	if err != nil || info.Size != size {
		t.Fatalf("get: %+v %v", info, err)
	}
	if _, err := io.CopyN(io.Discard, rc, 20<<20); err != nil {
		t.Fatal(err)
	}
	kill(t, b)
	done := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = io.Copy(io.Discard, rc)
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("read hangs after the plugin was killed")
	}
	_ = rc.Close()
	if err == nil || !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("read after kill: %d more bytes, err %v; want ErrUnavailable", n, err)
	}
	if 20<<20+n >= size {
		t.Fatalf("the whole blob arrived despite the kill")
	}
	t.Logf("read failed after %d MiB: %v", (20<<20+n)>>20, err)

	waitRestarts(t, b, 1)
	rc, _, err = b.Get(ctx, key, backends.All)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("sha256 after restart %s, want %s", got, want)
	}
}

// killingReader kills the plugin once it has yielded after bytes.
type killingReader struct {
	r     io.Reader
	after int64
	n     int64
	kill  func()
	once  sync.Once
}

func (k *killingReader) Read(p []byte) (int, error) {
	if k.n >= k.after {
		k.once.Do(k.kill)
	}
	n, err := k.r.Read(p)
	k.n += int64(n)
	return n, err
}

// TestKillMidPut kills the plugin during an upload (raw, then chunked): Put fails with ErrUnavailable
// instead of hanging, nothing becomes visible, and after the restart the backend works again.
func TestKillMidPut(t *testing.T) {
	t.Run("raw", func(t *testing.T) { testKillMidPut(t, true) })
	t.Run("chunked", func(t *testing.T) {
		useRawPut = false
		defer func() { useRawPut = true }()
		testKillMidPut(t, false)
	})
}

func testKillMidPut(t *testing.T, raw bool) {
	const size = 100 << 20
	b, _ := launchLocalfs(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const key = "c/0000000000000002/put"
	r := &killingReader{r: &pattern{n: size}, after: 10 << 20, kill: func() { kill(t, b) }}
	done := make(chan error, 1)
	var rawN int64
	go func() {
		var err error
		rawN, _ = counted(func() { _, err = b.Put(ctx, key, r, size, backends.PutOptions{}) })
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("put hangs after the plugin was killed")
	}
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("put across a kill: %v; want ErrUnavailable", err)
	}
	if raw != (rawN == 1) {
		t.Fatalf("%d raw uploads, want raw=%v", rawN, raw)
	}
	t.Log(err)
	waitRestarts(t, b, 1)
	if _, err := b.Stat(ctx, key); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("stat after failed put: %v", err)
	}
	items, _, err := b.List(ctx, "c/", "", 10)
	if err != nil || len(items) != 0 {
		t.Fatalf("list after failed put: %v %v", items, err)
	}
	// Multipart's PutPart fails the same way, and the plugin works afterwards.
	if _, err := b.Put(ctx, key, bytes.NewReader([]byte("ok")), 2, backends.PutOptions{}); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
}

// TestIdempotentRetry: a Stat issued right after a kill (before the monitor notices) retries once on
// the restarted plugin instead of failing.
func TestIdempotentRetry(t *testing.T) {
	b, _ := launchLocalfs(t)
	ctx := t.Context()
	if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	killed := kill(t, b)
	poll.Until(t, 30*time.Second, "the killed plugin process to exit", killed.client.Exited)
	if info, err := b.Stat(ctx, "k"); err != nil || info.Size != 1 {
		t.Fatalf("stat across a restart: %+v %v", info, err)
	}
	if b.Restarts() != 1 {
		t.Fatalf("restarts = %d", b.Restarts())
	}
}

// TestExamplePlugin builds the example plugin and uses it through Launch.
func TestExamplePlugin(t *testing.T) {
	path, sum := build(t, "github.com/mlgate/mlgate/plugins/example")
	root := t.TempDir()
	launch := func(readOnly bool) backends.Backend {
		cfg, _ := json.Marshal(map[string]any{"root": root, "read_only": readOnly})
		b, err := Launch(t.Context(), Spec{Name: "example", Path: path, SHA256: sum, Config: cfg}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	rw := launch(false)
	if _, err := rw.Put(t.Context(), "a/b", strings.NewReader("hello"), 5, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ro := launch(true)
	rc, _, err := ro.Get(t.Context(), "a/b", backends.All)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	_ = rc.Close()
	if string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	if _, err := ro.Put(t.Context(), "a/c", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("put on read-only: %v", err)
	}
}
