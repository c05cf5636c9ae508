package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/cmd/mlgate/internal/transfer"
)

// The model of the push/pull tests: 199 small files in nested directories and one of bigFileSize.
const (
	bigFilePath = "weights/big.bin"
	bigFileSize = 300 << 20
	smallFiles  = 199
)

// writeModelDir writes the test model into dir, its content generated from a seeded stream a MiB at a
// time, and returns every file's sha256 by package path.
func writeModelDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	write := func(path string, size int64, seed uint64) {
		full := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		var key [32]byte
		key[0], key[1] = byte(seed), byte(seed>>8)
		if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8(key), size)); err != nil {
			t.Fatal(err)
		}
		sums[path] = hex.EncodeToString(h.Sum(nil))
	}
	write(bigFilePath, bigFileSize, 0)
	for i := range smallFiles {
		write(fmt.Sprintf("part%d/layer_%03d.bin", i%7, i), int64(i*997%70_000), uint64(i+1))
	}
	return sums
}

// dirSums returns the sha256 of every file under dir by '/'-separated relative path, hidden files
// (partial downloads) included.
func dirSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sums[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func sameSums(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for p, s := range want {
		if got[p] != s {
			t.Errorf("%s: %s has sha256 %q, want %s", what, p, got[p], s)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected file %s", what, p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// runTransfer runs mlgate push or pull with --json and env, and returns its report.
func runTransfer(t *testing.T, env []string, args ...string) transfer.Report {
	t.Helper()
	cmd := exec.Command(mlgateBin, append(args, "--json")...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mlgate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	var rep transfer.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("mlgate %s printed %q: %v", args[0], &stdout, err)
	}
	return rep
}

// logMark makes a request whose access-log line marks the server's log: once the line is there,
// everything logged for requests answered before it is too. It returns the log from just after the
// previous mark (from is that mark's end offset) to this one, and this mark's end.
func logMark(t *testing.T, p *proc, logs *syncBuffer, from int, token string) (string, int) {
	t.Helper()
	name := fmt.Sprintf("log-mark-%d", time.Now().UnixNano())
	req, _ := http.NewRequest(http.MethodGet, p.url(name+"/1.0.0/files"), nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitForLog(t, logs, name)
	all := logs.String()
	end := strings.Index(all, name)
	return all[from:end], end + len(name)
}

// stallingProxy forwards to base, but stops the body of a download of bigFilePath after stallAt bytes
// until the client goes away: a pull through it can be killed with exactly stallAt bytes received.
func stallingProxy(t *testing.T, base string, stallAt int64) string {
	t.Helper()
	target, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1 // every byte read reaches the client at once
	rp.ModifyResponse = func(resp *http.Response) error {
		if strings.HasSuffix(resp.Request.URL.Path, "/"+bigFilePath) && resp.StatusCode == http.StatusOK {
			resp.Body = &stallingBody{ReadCloser: resp.Body, left: stallAt, ctx: resp.Request.Context()}
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

type stallingBody struct {
	io.ReadCloser
	left int64
	ctx  context.Context
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		<-b.ctx.Done()
		return 0, b.ctx.Err()
	}
	n, err := b.ReadCloser.Read(p[:min(int64(len(p)), b.left)])
	b.left -= int64(n)
	return n, err
}

var accessLine = regexp.MustCompile(`method=(\S+) path=(\S+) status=(\d+) bytes_out=(\d+)`)

// TestPushPullEndToEnd pushes a 200-file model with a 300 MiB file to a real `mlgate serve --auth`,
// pulls it back and compares every sha256; kills a pull halfway through the big file and checks that
// the next pull receives only what was missing, with a Range request; and checks that pushing the same
// directory again sends no file.
func TestPushPullEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 300 MiB several times")
	}
	work := t.TempDir()
	dataDir := filepath.Join(work, "data")
	token, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "write")
	p, logs := startServeWatched(t, dataDir, "--auth")
	src := filepath.Join(work, "src")
	want := writeModelDir(t, src)
	var total int64
	for i := range smallFiles {
		total += int64(i * 997 % 70_000)
	}
	total += bigFileSize

	// The URL and token from the environment.
	env := []string{"MLGATE_URL=" + p.base, "MLGATE_TOKEN=" + token}
	rep := runTransfer(t, env, "push", "--project", "team/vision", "--parallel", "4", "vision/resnet@1.0.0", src)
	if rep.Files != 200 || rep.FilesTransferred != 200 || rep.Bytes != total || rep.BytesTransferred != total || len(rep.Failed) != 0 {
		t.Fatalf("push: %+v", rep)
	}
	_, mark := logMark(t, p, logs, 0, token)

	// Flags after the positional arguments, -flag and --flag forms.
	dst := filepath.Join(work, "pulled")
	rep = runTransfer(t, nil, "pull", "vision/resnet@1.0.0", dst, "-url", p.base, "--project", "team/vision", "--token", token)
	if rep.FilesTransferred != 200 || rep.BytesTransferred != total {
		t.Fatalf("pull: %+v", rep)
	}
	sameSums(t, "pulled", dirSums(t, dst), want)

	// A pull killed with half the big file received, then run again.
	resumed := filepath.Join(work, "resumed")
	partial := filepath.Join(resumed, "weights", ".big.bin.mlgate-partial")
	const half = bigFileSize / 2
	killed := exec.Command(mlgateBin, "pull", "--url", stallingProxy(t, p.base, half), "--project", "team/vision",
		"--token", token, "vision/resnet@1.0.0", resumed)
	var killedOut bytes.Buffer
	killed.Stdout, killed.Stderr = &killedOut, &killedOut
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- killed.Wait() }()
	poll.UntilOK(t, 60*time.Second, "the pull to receive half the big file", func() error {
		select {
		case err := <-exited:
			t.Fatalf("the pull ended before it was killed: %v\n%s", err, &killedOut)
		default:
		}
		info, err := os.Stat(partial)
		if err != nil {
			return err
		}
		if info.Size() != half {
			return fmt.Errorf("%d bytes", info.Size())
		}
		return nil
	})
	if err := killed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	before := dirSums(t, resumed)
	// What the killed pull left, complete files and partial ones alike, is not received again.
	var have int64
	err := filepath.Walk(resumed, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			have += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := before["weights/.big.bin.mlgate-partial"]; !ok {
		t.Fatalf("the killed pull left no partial big file: %v", before)
	}
	_, mark = logMark(t, p, logs, mark, token)
	rep = runTransfer(t, nil, "pull", "--url", p.base, "--project", "team/vision", "--token", token, "vision/resnet@1.0.0", resumed)
	if rep.FilesResumed < 1 || rep.BytesTransferred != total-have {
		t.Fatalf("resumed pull: %+v; %d bytes were there before it, of %d", rep, have, total)
	}
	sameSums(t, "resumed", dirSums(t, resumed), want)
	var secondRun string
	secondRun, mark = logMark(t, p, logs, mark, token)
	var bigGets []string
	for _, m := range accessLine.FindAllStringSubmatch(secondRun, -1) {
		if m[1] == http.MethodGet && strings.HasSuffix(m[2], "/files/weights/big.bin") {
			bigGets = append(bigGets, m[0])
		}
	}
	if wantLine := fmt.Sprintf("status=206 bytes_out=%d", bigFileSize-half); len(bigGets) != 1 || !strings.Contains(bigGets[0], wantLine) {
		t.Fatalf("the resumed pull's downloads of the big file: %q, want one with %s", bigGets, wantLine)
	}

	// Pushing the same directory again sends no file.
	rep = runTransfer(t, env, "push", "--project", "team/vision", "vision/resnet@1.0.0", src)
	if rep.FilesTransferred != 0 || rep.BytesTransferred != 0 || rep.FilesSkipped != 200 {
		t.Fatalf("second push: %+v", rep)
	}
	secondPush, _ := logMark(t, p, logs, mark, token)
	if strings.Contains(secondPush, "method=PUT") {
		t.Fatalf("the second push sent PUTs:\n%s", secondPush)
	}
	if !strings.Contains(secondPush, "method=GET") {
		t.Fatalf("the server logged nothing of the second push:\n%s", secondPush)
	}
}
