package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/backendtest/tmpfs"
)

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// wantInsufficientStorage checks a 507 without Retry-After and with an error body of its route family.
func wantInsufficientStorage(t *testing.T, what string, resp *http.Response, body []byte, codeField, code string) {
	t.Helper()
	var e map[string]string
	if resp.StatusCode != http.StatusInsufficientStorage || json.Unmarshal(body, &e) != nil || e[codeField] != code ||
		!strings.Contains(e["message"], "insufficient storage") {
		t.Fatalf("%s on a full disk: %s %s; want 507 with %s %q", what, resp.Status, body, codeField, code)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		t.Fatalf("%s: Retry-After %q on a full disk, which waiting does not cure", what, ra)
	}
}

func send(t *testing.T, method, url, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestFullDiskAnswers507AndRecovers fills the filesystem of a real mlgate's data dir (a small tmpfs)
// behind its back. Every write then answers 507 with a clear message (MLflow's body and code on MLflow
// routes, no Retry-After), reads go on, DELETE still works and frees space, and once enough is free
// writes are accepted again without a restart; fsck finds the store clean afterwards.
func TestFullDiskAnswers507AndRecovers(t *testing.T) {
	dataDir := tmpfs.Mount(t, 64<<20)
	p := startServe(t, dataDir)
	mlflow := &mlflowClient{t: t, base: p.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	mlflow.ok(http.MethodPost, "experiments/create", map[string]any{"name": "full"}, &exp)
	run := mlflow.createRun(exp.ExperimentID, "before")

	// Files to delete later: 24 MiB, more than the room writes need back (twice the 16 MiB reserve,
	// which mlgate gives up for deletes).
	keep := make([][]byte, 6)
	for i := range keep {
		keep[i] = bytes.Repeat([]byte{byte('a' + i)}, 4<<20)
		if code := put(t, p.url(fmt.Sprintf("m/1.0.0/files/keep%d.bin", i)), keep[i]); code != http.StatusCreated {
			t.Fatalf("upload %d: %d", i, code)
		}
	}
	tmpfs.Fill(t, dataDir)

	small := bytes.Repeat([]byte("z"), 256<<10)
	resp, body := send(t, http.MethodPut, p.url("m/1.0.0/files/new.bin"), "", small)
	wantInsufficientStorage(t, "package PUT", resp, body, "error", "insufficient_storage")
	resp, body = send(t, http.MethodPut, mlflow.artifactURL(run.ArtifactURI, "model.bin"), "", small)
	wantInsufficientStorage(t, "artifact PUT", resp, body, "error_code", "RESOURCE_EXHAUSTED")
	resp, body = send(t, http.MethodPost, p.base+"/api/2.0/mlflow/runs/create", "application/json",
		[]byte(`{"experiment_id": "`+exp.ExperimentID+`"}`))
	wantInsufficientStorage(t, "runs/create", resp, body, "error_code", "RESOURCE_EXHAUSTED")
	resp, body = send(t, http.MethodPost, p.base+"/api/2.0/mlflow/experiments/create", "application/json", []byte(`{"name": "more"}`))
	wantInsufficientStorage(t, "experiments/create", resp, body, "error_code", "RESOURCE_EXHAUSTED")
	resp, body = send(t, http.MethodPut, p.url("other/2.0.0/files/x.bin"), "", small)
	wantInsufficientStorage(t, "package PUT creating a model", resp, body, "error", "insufficient_storage")

	// Reads go on.
	if code, got := get(t, p.url("m/1.0.0/files/keep0.bin")); code != http.StatusOK || !bytes.Equal(got, keep[0]) {
		t.Fatalf("download on a full disk: %d, %d bytes", code, len(got))
	}
	mlflow.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, nil)

	// Deletes work and free space.
	before := freeBytes(t, dataDir)
	for i := range keep {
		resp, body := send(t, http.MethodDelete, p.url(fmt.Sprintf("m/1.0.0/files/keep%d.bin", i)), "", nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE %d on a full disk: %s %s", i, resp.Status, body)
		}
	}
	poll.UntilOK(t, 10*time.Second, "the deleted files' space to be free", func() error {
		if after := freeBytes(t, dataDir); after < before+int64(len(keep))*(4<<20)-(16<<20) {
			return fmt.Errorf("%d bytes free before the deletes, %d after", before, after)
		}
		return nil
	})

	// Writes resume without a restart.
	poll.UntilOK(t, 20*time.Second, "writes to be accepted again", func() error {
		resp, body := send(t, http.MethodPut, p.url("m/1.0.0/files/after.bin"), "", small)
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("%s %s", resp.Status, body)
		}
		return nil
	})
	mlflow.putArtifact(run, "model.bin", bytes.NewReader(small), int64(len(small)))
	mlflow.ok(http.MethodPost, "experiments/create", map[string]any{"name": "more"}, nil)

	code, body := get(t, p.url("m/1.0.0/files"))
	var list []struct{ Path string }
	if err := json.Unmarshal(body, &list); code != http.StatusOK || err != nil || len(list) != 1 || list[0].Path != "after.bin" {
		t.Fatalf("package files after the full disk: %d %s", code, body)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck after a full disk: exit %d\n%s", code, out)
	}
}

// TestSIGTERMLetsLongDownloadFinish: a download running when SIGTERM arrives finishes, whole, within
// --shutdown-timeout, while new connections are refused.
func TestSIGTERMLetsLongDownloadFinish(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir, "--shutdown-timeout", "60s")
	data := bytes.Repeat([]byte("0123456789abcdef"), 4<<20) // 64 MiB: far more than socket buffers hold
	want := sha256.Sum256(data)
	if code := put(t, p.url("m/1.0.0/files/big.bin"), data); code != http.StatusCreated {
		t.Fatalf("upload: %d", code)
	}
	resp, err := http.Get(p.url("m/1.0.0/files/big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, 1<<20); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "mlgate to refuse new connections after SIGTERM", func() bool {
		c, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	n, err := io.Copy(h, resp.Body)
	if err != nil || n != int64(len(data))-(1<<20) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("download across SIGTERM: %d more bytes (%v), sha256 match %v", n, err, bytes.Equal(h.Sum(nil), want[:]))
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("mlgate did not exit within --shutdown-timeout after its last download ended")
	}
	if elapsed := time.Since(start); elapsed > 60*time.Second {
		t.Fatalf("shutdown took %s, more than --shutdown-timeout", elapsed)
	}
}

// TestStalledUploadTimesOut: an upload whose body stops arriving fails with 408 after
// --body-read-timeout, leaves no staging file, and does not hold SIGTERM for --shutdown-timeout.
func TestStalledUploadTimesOut(t *testing.T) {
	dataDir := t.TempDir()
	p := startServe(t, dataDir, "--body-read-timeout", "1s", "--shutdown-timeout", "120s")
	addr := strings.TrimPrefix(p.base, "http://")
	stall := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		// 2 MiB promised, 1 MiB and a bit sent: enough for the server to stage bytes, then nothing.
		fmt.Fprintf(conn, "PUT /api/v4/projects/team%%2Fvision/packages/ml_models/m/1.0.0/files/stalled.bin HTTP/1.1\r\n"+
			"Host: %s\r\nContent-Length: %d\r\n\r\n", addr, 2<<20)
		if _, err := conn.Write(bytes.Repeat([]byte("s"), 1<<20+10)); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	conn := stall()
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled upload: no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), "request_timeout") {
		t.Fatalf("stalled upload: %s %s", resp.Status, body)
	}
	poll.Until(t, 10*time.Second, "the stalled upload's staging file to be removed", func() bool { return stagedBytes(t, dataDir) == 0 })
	if code, _ := get(t, p.url("m/1.0.0/files/stalled.bin")); code != http.StatusNotFound {
		t.Fatalf("stalled upload visible: %d", code)
	}

	// A stalled upload in flight when SIGTERM arrives is cut after the body timeout, not the shutdown
	// timeout.
	conn2 := stall()
	defer conn2.Close()
	waitForStagedBytes(t, dataDir, 1)
	start := time.Now()
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if elapsed := time.Since(start); elapsed > 20*time.Second {
		t.Fatalf("a stalled upload held SIGTERM for %s", elapsed)
	}
	if n := stagedBytes(t, dataDir); n != 0 {
		t.Fatalf("%d staged bytes left after shutdown", n)
	}
}
