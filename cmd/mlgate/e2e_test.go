package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// mlgateBin is the binary built once by TestMain: these tests run mlgate as a real process, so that
// restarts, SIGTERM and SIGKILL are the real thing.
var mlgateBin string

// e2eDir is TestMain's temporary directory, removed after the tests: binaries built once go there.
var e2eDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mlgate-e2e-")
	if err != nil {
		panic(err)
	}
	e2eDir = dir
	mlgateBin = filepath.Join(dir, "mlgate")
	build := exec.Command("go", "build", "-o", mlgateBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building mlgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `mlgate serve`.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	logs *bytes.Buffer
	done chan error
}

func startServe(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	return startServeEnv(t, dataDir, nil, extra...)
}

// startServeEnv is startServe with env ("NAME=value") added to the test's environment.
func startServeEnv(t *testing.T, dataDir string, env []string, extra ...string) *proc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &proc{t: t, base: "http://" + addr, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	args := append([]string{"serve", "--data-dir", dataDir, "--addr", addr}, extra...)
	p.cmd = exec.Command(mlgateBin, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = p.logs
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
			t.Logf("mlgate logs:\n%s", p.logs)
		}
	})
	waitHealthy(t, p.base, p.done, p.logs)
	return p
}

// waitHealthy waits up to 20 s for the mlgate at base to answer /health with 200 OK. done receives
// the process's exit: an exit before then fails the test at once, showing logs.
func waitHealthy(t *testing.T, base string, done <-chan error, logs fmt.Stringer) {
	t.Helper()
	poll.UntilOK(t, 20*time.Second, "mlgate to answer /health", func() error {
		select {
		case err := <-done:
			t.Fatalf("mlgate exited early: %v\n%s", err, logs)
		default:
		}
		resp, err := http.Get(base + "/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/health answered %d", resp.StatusCode)
		}
		return nil
	})
}

// stop sends sig and waits for the process to exit, returning its exit error.
func (p *proc) stop(sig syscall.Signal) error {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		p.t.Fatal("mlgate did not exit")
		return nil
	}
}

func (p *proc) url(rest string) string {
	return p.base + "/api/v4/projects/team%2Fvision/packages/ml_models/" + rest
}

func put(t *testing.T, url string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// runCmd runs an mlgate subcommand to completion and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command(mlgateBin, args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestVersionCommand(t *testing.T) {
	code, out := runCmd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "mlgate ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _ := runCmd(t, "nonsense"); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
}

func TestFilesSurviveRestart(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	data := bytes.Repeat([]byte("mlgate persists "), 100_000)
	if code := put(t, p.url("resnet/1.0.0/files/model/model.pt"), data); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	if code := put(t, p.url("ml_experiment_1/1/files/eval.json"), []byte(`{"acc":0.9}`)); code != http.StatusCreated {
		t.Fatalf("legacy upload: %d", code)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v\n%s", err, p.logs)
	}
	p = startServe(t, dataDir)
	for url, want := range map[string][]byte{
		p.url("resnet/1.0.0/files/model/model.pt"):                                   data,
		p.url("ml_experiment_1/1/files/model/model.pt"):                              data,
		p.url("resnet/1.0.0/files/eval.json"):                                        []byte(`{"acc":0.9}`),
		p.base + "/api/v4/projects/1/packages/ml_models/candidate:1/files/eval.json": []byte(`{"acc":0.9}`),
	} {
		code, got := get(t, url)
		if code != http.StatusOK || !bytes.Equal(got, want) {
			t.Fatalf("%s after restart: %d, %d bytes", url, code, len(got))
		}
	}
	// iids continue after the restart instead of being reused.
	if code := put(t, p.url("second/1.0.0/files/a"), []byte("a")); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	if code, got := get(t, p.url("ml_experiment_2/2/files/a")); code != http.StatusOK || string(got) != "a" {
		t.Fatalf("second model: %d %q", code, got)
	}
}

// slowBody feeds an upload by hand so a test can act in the middle of it.
type slowBody struct {
	pw   *io.PipeWriter
	resp chan *http.Response
	err  chan error
}

func startUpload(t *testing.T, url string, size int64) *slowBody {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, url, pr)
	req.ContentLength = size
	b := &slowBody{pw: pw, resp: make(chan *http.Response, 1), err: make(chan error, 1)}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.err <- err
			return
		}
		b.resp <- resp
	}()
	return b
}

func (b *slowBody) write(t *testing.T, n int) {
	t.Helper()
	chunk := bytes.Repeat([]byte{0x5a}, 1<<20)
	for n > 0 {
		m := min(n, len(chunk))
		if _, err := b.pw.Write(chunk[:m]); err != nil {
			t.Fatalf("writing upload body: %v", err)
		}
		n -= m
	}
}

func TestSIGTERMLetsInFlightUploadFinish(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	const size = 16 << 20
	up := startUpload(t, p.url("m/1.0.0/files/big.bin"), size)
	up.write(t, size/2)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The shutdown has begun once the listener is closed; only then is the upload's second half
	// in flight across it.
	poll.Until(t, 20*time.Second, "mlgate to refuse new connections after SIGTERM", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	up.write(t, size/2)
	up.pw.Close()
	select {
	case resp := <-up.resp:
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("in-flight upload answered %d", resp.StatusCode)
		}
	case err := <-up.err:
		t.Fatalf("in-flight upload failed: %v", err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("mlgate did not exit after SIGTERM")
	}
	p = startServe(t, dataDir)
	code, got := get(t, p.url("m/1.0.0/files/big.bin"))
	if code != http.StatusOK || len(got) != size {
		t.Fatalf("after restart: %d, %d bytes", code, len(got))
	}
}

func TestSIGKILLMidUploadLeavesNothingVisibleAndFsckRepairs(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	if code := put(t, p.url("m/1.0.0/files/keep.txt"), []byte("keep me")); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	const size = 512 << 20
	up := startUpload(t, p.url("m/1.0.0/files/big.bin"), size)
	up.write(t, 96<<20)
	waitForStagedBytes(t, dataDir, 32<<20)
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

	// The killed upload left a staged temp file: fsck must see it, --repair must remove it.
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 1 || !strings.Contains(out, "staging_leftover") {
		t.Fatalf("fsck after crash: exit %d\n%s", code, out)
	}

	p = startServe(t, dataDir)
	if code, _ := get(t, p.url("m/1.0.0/files/big.bin")); code != http.StatusNotFound {
		t.Fatalf("partial file visible: %d", code)
	}
	code, body := get(t, p.url("m/1.0.0/files"))
	var list []struct{ Path string }
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list) != 1 || list[0].Path != "keep.txt" {
		t.Fatalf("listing after crash: %d %s", code, body)
	}
	if code, got := get(t, p.url("m/1.0.0/files/keep.txt")); code != http.StatusOK || string(got) != "keep me" {
		t.Fatalf("earlier file: %d %q", code, got)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	if code, out := runCmd(t, "fsck", "--repair", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "repaired") {
		t.Fatalf("fsck --repair: exit %d\n%s", code, out)
	}
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck after repair: exit %d\n%s", code, out)
	}
	if n := stagedBytes(t, dataDir); n != 0 {
		t.Fatalf("%d staged bytes remain after repair", n)
	}
}

func TestFsckRefusesWhileServing(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	code, out := runCmd(t, "fsck", "--data-dir", dataDir)
	if code == 0 || !strings.Contains(strings.ToLower(out), "lock") {
		t.Fatalf("fsck beside a running server: exit %d\n%s", code, out)
	}
	_ = p
}

// stagedBytes sums the sizes of files under the data dir that are not committed blobs or the database:
// what an interrupted upload leaves behind.
func stagedBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	return stagedBytesIn(t, filepath.Join(dataDir, "blobs"))
}

// stagedBytesIn is stagedBytes for a localfs backend rooted at root.
func stagedBytesIn(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() && strings.Contains(path, string(filepath.Separator)+".") {
			n += info.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return n
}

func waitForStagedBytes(t *testing.T, dataDir string, atLeast int64) {
	t.Helper()
	poll.UntilOK(t, 30*time.Second, fmt.Sprintf("the upload to reach %d staged bytes", atLeast), func() error {
		if n := stagedBytes(t, dataDir); n < atLeast {
			return fmt.Errorf("%d staged bytes", n)
		}
		return nil
	})
}
