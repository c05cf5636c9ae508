package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// ack is one write the server answered as done, with when the request started and when it was answered.
type ack struct {
	url, sum         string
	started, ackedAt time.Time
}

// backupClient writes files through the package API and metric points through MLflow until stop, and
// records what the server acknowledged. Errors are returned, not fatal: it runs in its own goroutine.
type backupClient struct {
	id      int
	base    string // the server's root URL
	auth    string // Authorization header
	runID   string
	files   []ack
	metrics []time.Time // when each acknowledged log-metric was answered (step = index)
}

const backupProject = "/api/v4/projects/team%2Fvision"

func (c *backupClient) send(method, url string, body []byte, header map[string]string) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", c.auth)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *backupClient) mlflow(rpc string, in map[string]any, out any) error {
	b, _ := json.Marshal(in)
	status, body, err := c.send(http.MethodPost, c.base+backupProject+"/ml/mlflow/api/2.0/mlflow/"+rpc, b,
		map[string]string{"Content-Type": "application/json"})
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: %d %s", rpc, status, body)
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

func (c *backupClient) start() error {
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := c.mlflow("experiments/create", map[string]any{"name": fmt.Sprintf("client-%d", c.id)}, &exp); err != nil {
		return err
	}
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	if err := c.mlflow("runs/create", map[string]any{"experiment_id": exp.ExperimentID, "start_time": time.Now().UnixMilli()}, &run); err != nil {
		return err
	}
	c.runID = run.Run.Info.RunID
	return nil
}

// loop alternates a file upload (a new version each time) and a metric point until stop is closed,
// calling onAck after each acknowledged upload.
func (c *backupClient) loop(stop <-chan struct{}, onAck func()) error {
	rng := rand.New(rand.NewPCG(uint64(c.id), uint64(time.Now().UnixNano())))
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		data := make([]byte, 1+rng.IntN(48<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		url := fmt.Sprintf("%s%s/packages/ml_models/model-%d/1.%d.0/files/weights/w.bin", c.base, backupProject, c.id, i)
		started := time.Now()
		status, body, err := c.send(http.MethodPut, url, data, map[string]string{"X-Checksum-SHA256": hexSum})
		if err != nil {
			return err
		}
		if status != http.StatusCreated {
			return fmt.Errorf("PUT %s: %d %s", url, status, body)
		}
		c.files = append(c.files, ack{url: url, sum: hexSum, started: started, ackedAt: time.Now()})
		onAck()
		if err := c.mlflow("runs/log-metric", map[string]any{"run_id": c.runID, "key": "loss", "value": float64(i),
			"timestamp": time.Now().UnixMilli(), "step": len(c.metrics)}, nil); err != nil {
			return err
		}
		c.metrics = append(c.metrics, time.Now())
	}
}

// copyTree copies the regular files under src to dst while a server may be writing there: a file that
// vanishes between the listing and its copy (a staging file renamed into place) is skipped.
func copyTree(t *testing.T, src, dst string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o750)
		}
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n++
		return os.WriteFile(filepath.Join(dst, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A hot backup taken while 16 clients upload files and log metrics, restored into a new data dir with
// the blobs copied after it (as the README says), serves every file acknowledged before the backup
// began with its sha256, and every metric point; fsck says every file row has its blob.
func TestHotBackupUnderWritesRestores(t *testing.T) {
	dataDir := t.TempDir()
	writer, _ := createToken(t, dataDir, "--project", "team/vision", "--scope", "write")
	admin, _ := createToken(t, dataDir, "--instance", "--name", "backup")
	p := startServe(t, dataDir, "--auth")

	// Not through --data-dir while the server holds the store.
	out := filepath.Join(t.TempDir(), "meta.backup")
	if code, msg := runCmd(t, "backup", "--out", out, "--data-dir", dataDir); code == 0 || !strings.Contains(msg, "a running server holds it") {
		t.Fatalf("offline backup of a served store: %d %s", code, msg)
	}
	// A project token cannot take a backup, whatever its scope.
	if code, msg := runCmd(t, "backup", "--out", out, "--url", p.base, "--token", writer); code == 0 || !strings.Contains(msg, "403") {
		t.Fatalf("backup with a project token: %d %s", code, msg)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused backup left %s: %v", out, err)
	}

	const nClients = 16
	clients := make([]*backupClient, nClients)
	for i := range clients {
		clients[i] = &backupClient{id: i, base: p.base, auth: "Bearer " + writer}
		if err := clients[i].start(); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	var progress atomic.Int64
	for _, c := range clients {
		wg.Go(func() {
			if err := c.loop(stop, func() { progress.Add(1) }); err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()
	poll.UntilOK(t, 60*time.Second, "200 writes before the backup", func() error {
		if e := failed.Load(); e != nil {
			t.Fatal(*e)
		}
		if n := progress.Load(); n < 200 {
			return fmt.Errorf("%d writes", n)
		}
		return nil
	})

	backupStart := time.Now()
	code, msg := runCmd(t, "backup", "--out", out, "--url", p.base+"/", "--token", admin)
	backupEnd := time.Now()
	if code != 0 || !regexp.MustCompile(`backup of http://\S+: .* \(\d+ bytes, schema \d+\) in .*, sha256 [0-9a-f]{64} → `).MatchString(msg) {
		t.Fatalf("backup: %d %s", code, msg)
	}
	duringBackup := progress.Load()

	newDir := filepath.Join(t.TempDir(), "restored")
	if code, msg := runCmd(t, "restore", "--from", out, "--data-dir", newDir); code != 0 || !strings.Contains(msg, "restored ") {
		t.Fatalf("restore: %d %s", code, msg)
	}
	// Blobs after the metadata, while the clients still write: every row of the backup has its blob.
	copied := copyTree(t, filepath.Join(dataDir, "blobs"), filepath.Join(newDir, "blobs"))
	stopClients()
	if e := failed.Load(); e != nil {
		t.Fatal(*e)
	}
	if progress.Load() <= duringBackup {
		t.Logf("no write landed after the backup (%d writes)", duringBackup)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.logs)
	}

	// A second restore into the same directory, or of something that is not a backup, is refused.
	if code, msg := runCmd(t, "restore", "--from", out, "--data-dir", newDir); code == 0 || !strings.Contains(msg, "not empty") {
		t.Fatalf("restore into a non-empty dir: %d %s", code, msg)
	}
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, bytes.Repeat([]byte{7}, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, msg := runCmd(t, "restore", "--from", junk, "--data-dir", t.TempDir()); code == 0 || !strings.Contains(msg, "not an mlgate metadata database") {
		t.Fatalf("restore of junk: %d %s", code, msg)
	}

	_, msg = runCmd(t, "fsck", "--data-dir", newDir)
	if !regexp.MustCompile(`blobs: all \d+ file rows have their blob in their backend`).MatchString(msg) {
		t.Fatalf("fsck after restore:\n%s", msg)
	}
	// What was written after the backup is unreferenced there; --repair removes it, and fsck is clean.
	if code, msg := runCmd(t, "fsck", "--repair", "--data-dir", newDir); code != 0 {
		t.Fatalf("fsck --repair: %d\n%s", code, msg)
	}
	if code, msg := runCmd(t, "fsck", "--data-dir", newDir); code != 0 || !strings.Contains(msg, "store is clean") {
		t.Fatalf("fsck after repair: %d\n%s", code, msg)
	}

	r := startServe(t, newDir, "--auth") // the backup holds the tokens too
	var before, after, absent int
	for _, c := range clients {
		for _, a := range c.files {
			url := r.base + strings.TrimPrefix(a.url, p.base)
			status, body, err := (&backupClient{auth: "Bearer " + writer}).send(http.MethodGet, url, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(body)
			switch {
			case a.ackedAt.Before(backupStart):
				before++
				if status != http.StatusOK || hex.EncodeToString(sum[:]) != a.sum {
					t.Errorf("%s, acknowledged before the backup: %d, sha256 %x, want %s", url, status, sum, a.sum)
				}
			case a.started.After(backupEnd):
				after++
				if status != http.StatusNotFound {
					t.Errorf("%s, started after the backup: %d, want 404", url, status)
				}
			default: // in flight during the backup: whole or absent
				if status == http.StatusOK && hex.EncodeToString(sum[:]) != a.sum {
					t.Errorf("%s, written during the backup: sha256 %x, want %s", url, sum, a.sum)
				} else if status == http.StatusNotFound {
					absent++
				}
			}
		}
		// Metric points: every one acknowledged before the backup is in the restored history.
		wantPoints := 0
		for _, at := range c.metrics {
			if at.Before(backupStart) {
				wantPoints++
			}
		}
		rc := &backupClient{base: r.base, auth: "Bearer " + writer}
		var hist struct {
			Metrics []struct {
				Step int `json:"step"`
			} `json:"metrics"`
		}
		status, body, err := rc.send(http.MethodGet, fmt.Sprintf("%s%s/ml/mlflow/api/2.0/mlflow/metrics/get-history?run_id=%s&metric_key=loss&max_results=25000",
			r.base, backupProject, c.runID), nil, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("get-history: %d %v %s", status, err, body)
		}
		if err := json.Unmarshal(body, &hist); err != nil {
			t.Fatal(err)
		}
		if len(hist.Metrics) < wantPoints {
			t.Errorf("client %d: %d metric points restored, %d were acknowledged before the backup", c.id, len(hist.Metrics), wantPoints)
		}
	}
	if before < 200 {
		t.Errorf("only %d files acknowledged before the backup", before)
	}
	t.Logf("%d files acknowledged before the backup, %d started after it, %d in flight absent; %d blob files copied",
		before, after, absent, copied)
}
