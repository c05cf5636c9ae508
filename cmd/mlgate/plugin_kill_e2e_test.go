package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// TestPluginKilledMidDownload runs mlgate with its default backend out of process (mlgate-backend
// localfs, a real child), SIGKILLs the plugin in the middle of a 200 MB download and checks that the
// download fails visibly, that an upload caught by the outage leaves nothing behind, that the
// supervisor restarts the plugin (counted in /metrics), that the file then downloads intact, and that
// the plugin does not outlive mlgate.
func TestPluginKilledMidDownload(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB through a plugin process; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "mlgate-backend")
	if out, err := exec.Command("go", "build", "-o", bin, "../mlgate-backend").CombinedOutput(); err != nil {
		t.Fatalf("building mlgate-backend: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	exeSum := sha256.Sum256(exe)
	cfg := filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf(`backends:
  - name: disk
    plugin: {path: %s, sha256: %s, args: [localfs]}
    config: {root: %s}
default_backend: disk
`, bin, hex.EncodeToString(exeSum[:]), filepath.Join(dir, "blobs"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, logs := startServeWatched(t, filepath.Join(dir, "data"), "--config", cfg)
	pid1 := pluginPID(t, p.cmd.Process.Pid, bin)
	if n := pluginRestarts(t, p); n != 0 {
		t.Fatalf("restarts before any kill: %d", n)
	}

	const size = 200 << 20
	url := p.url("m/1.0.0/files/big.bin")
	start := time.Now()
	want := uploadGenerated(t, url, size, 1)
	t.Logf("uploaded 200 MB through the plugin in %v", time.Since(start).Round(time.Millisecond))

	// Download: take a slice, kill the plugin while the rest is still in the plugin, then drain.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != size {
		t.Fatalf("download: %d, Content-Length %d", resp.StatusCode, resp.ContentLength)
	}
	h := sha256.New()
	head, err := io.CopyN(h, resp.Body, 24<<20)
	if err != nil {
		t.Fatalf("first 24 MiB: %v", err)
	}

	// An upload that is half sent when the plugin dies.
	up := startUpload(t, p.url("m/1.0.0/files/outage.bin"), 32<<20)
	feed(up, 8<<20)

	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()

	rest, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	got := head + rest
	t.Logf("download after the kill: %d of %d bytes, err %v, %v after the kill", got, int64(size), err, time.Since(killed).Round(time.Millisecond))
	switch {
	case ctx.Err() != nil:
		t.Fatal("the download hung after the plugin was killed")
	case err == nil && got == size:
		// Only possible if everything was already buffered past the plugin; then the bytes must be right.
		if hex.EncodeToString(h.Sum(nil)) != want {
			t.Fatal("a complete-looking download carried wrong bytes")
		}
		t.Fatal("the whole body was buffered before the kill: the test did not kill mid-download")
	case err == nil:
		t.Fatalf("short body (%d of %d) without an error", got, int64(size))
	}

	feed(up, 24<<20)
	up.pw.Close()
	upStatus := 0
	select {
	case resp := <-up.resp:
		resp.Body.Close()
		upStatus = resp.StatusCode
		t.Logf("upload during the outage: %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After"))
		switch resp.StatusCode {
		case http.StatusServiceUnavailable:
			if resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		case http.StatusCreated: // the plugin was back before the upload reached it
		default:
			t.Errorf("upload during the outage answered %d, want 503 or 201", resp.StatusCode)
		}
	case err := <-up.err:
		t.Logf("upload during the outage: %v", err) // the server may answer 503 and close before reading it all
	case <-time.After(30 * time.Second):
		t.Fatal("upload during the outage hung")
	}

	// The supervisor restarts the plugin; until then requests may get 503 with Retry-After.
	var body []byte
	poll.UntilOK(t, 30*time.Second, "a download after the restart", func() error {
		var code int
		switch code, body = getHashed(t, url); code {
		case http.StatusOK:
			return nil
		case http.StatusServiceUnavailable:
			return fmt.Errorf("%d %s", code, body)
		}
		t.Fatalf("while the plugin restarts: %d %s", code, body)
		return nil
	})
	if string(body) != want {
		t.Fatalf("download after the restart: sha256 %s, want %s", body, want)
	}
	t.Logf("full download again %v after the kill", time.Since(killed).Round(time.Millisecond))
	waitForLog(t, logs, "plugin restarted")
	pid2 := pluginPID(t, p.cmd.Process.Pid, bin)
	if pid2 == pid1 {
		t.Fatalf("plugin pid %d unchanged after the kill", pid1)
	}
	if n := pluginRestarts(t, p); n < 1 {
		t.Fatalf("mlgate_plugin_restarts_total{plugin=\"disk\"} = %d after a kill", n)
	} else {
		t.Logf("mlgate_plugin_restarts_total{plugin=\"disk\"} = %d", n)
	}

	// The upload cut by the outage left no file: either it completed whole, or it is not there.
	switch code, b := getHashed(t, p.url("m/1.0.0/files/outage.bin")); code {
	case http.StatusNotFound:
	case http.StatusOK:
		if upStatus != http.StatusCreated {
			t.Fatalf("the upload answered %d, yet its file is visible", upStatus)
		}
		if string(b) != sha256Hex(bytesOf(0x5a, 32<<20)) {
			t.Fatal("the upload cut by the outage is visible with wrong content")
		}
	default:
		t.Fatalf("file of the upload cut by the outage: %d %s", code, b)
	}

	// mlgate stops its plugin when it exits.
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mlgate exit: %v", err)
	}
	waitGone(t, pid2)
}

// pluginPID returns the pid of parent's child process running bin, waiting up to 20 s for it.
func pluginPID(t *testing.T, parent int, bin string) int {
	t.Helper()
	found := 0
	poll.Until(t, 20*time.Second, fmt.Sprintf("a %s child of mlgate (pid %d)", bin, parent), func() bool {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			t.Skipf("no /proc to find the plugin process: %v", err)
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe != bin {
				continue
			}
			if ppid, state := procStat(pid); ppid == parent && state != "Z" {
				found = pid
				return true
			}
		}
		return false
	})
	// A failing test SIGKILLs mlgate, which cannot stop its plugin then: do it here.
	t.Cleanup(func() {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", found)); exe == bin {
			_ = syscall.Kill(found, syscall.SIGKILL)
		}
	})
	return found
}

// procStat returns the parent pid and state of pid from /proc/PID/stat (0, "" if it is gone).
func procStat(pid int) (ppid int, state string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	// The command name is in parentheses and may contain spaces; the fields after it are fixed.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 2 {
		return 0, ""
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0]
}

// waitGone waits until pid has exited (a zombie counts: it runs no more).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	poll.UntilOK(t, 10*time.Second, fmt.Sprintf("plugin process %d to exit after mlgate", pid), func() error {
		if _, state := procStat(pid); state != "" && state != "Z" && state != "X" {
			return fmt.Errorf("it is still in state %s", state)
		}
		return nil
	})
}

var restartsLine = regexp.MustCompile(`(?m)^mlgate_plugin_restarts_total\{plugin="disk"\} (\d+)$`)

// pluginRestarts scrapes /metrics for the restarts of plugin "disk" (0 when the series is absent).
func pluginRestarts(t *testing.T, p *proc) int {
	t.Helper()
	code, b := get(t, p.base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", code, b)
	}
	if !strings.Contains(string(b), "go_goroutines ") || !strings.Contains(string(b), "process_resident_memory_bytes ") {
		t.Fatalf("/metrics lacks the Go or process collector:\n%s", b)
	}
	m := restartsLine.FindSubmatch(b)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// uploadGenerated streams size pseudo-random bytes (from seed) to url and returns their sha256.
func uploadGenerated(t *testing.T, url string, size int64, seed uint64) string {
	t.Helper()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), size), h)
	req, _ := http.NewRequest(http.MethodPut, url, bufio.NewReaderSize(src, 1<<20))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// getHashed downloads url and returns the status and, for a 200, the hex sha256 of a body that
// arrived whole (the error body otherwise).
func getHashed(t *testing.T, url string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Fatal("download hung")
		}
		return resp.StatusCode, []byte("broken body: " + err.Error())
	}
	return resp.StatusCode, []byte(hex.EncodeToString(h.Sum(nil)))
}

// feed writes n bytes of 0x5a to an upload, ignoring a server that stopped reading (it answered).
func feed(b *slowBody, n int) {
	chunk := bytesOf(0x5a, 1<<20)
	for n > 0 {
		m := min(n, len(chunk))
		if _, err := b.pw.Write(chunk[:m]); err != nil {
			return
		}
		n -= m
	}
}

func bytesOf(c byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A SIGKILLed mlgate cannot stop its plugins; each plugin notices it was orphaned and exits by itself.
func TestPluginExitsWhenMlgateIsKilled(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "mlgate-backend")
	if out, err := exec.Command("go", "build", "-o", bin, "../mlgate-backend").CombinedOutput(); err != nil {
		t.Fatalf("building mlgate-backend: %v\n%s", err, out)
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(exe)
	cfg := filepath.Join(dir, "mlgate.yaml")
	yaml := fmt.Sprintf("backends:\n  - name: disk\n    plugin: {path: %s, sha256: %s, args: [localfs]}\n    config: {root: %s}\ndefault_backend: disk\n",
		bin, hex.EncodeToString(sum[:]), filepath.Join(dir, "blobs"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := startServeWatched(t, filepath.Join(dir, "data"), "--config", cfg)
	plug := pluginPID(t, p.cmd.Process.Pid, bin)
	t.Cleanup(func() { _ = syscall.Kill(plug, syscall.SIGKILL) })
	if err := p.stop(syscall.SIGKILL); err == nil {
		t.Fatal("SIGKILL did not kill mlgate")
	}
	waitGone(t, plug)
}
