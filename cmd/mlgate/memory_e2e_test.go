package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// memoryBound is the resident memory mlgate must stay under whatever clients send (issue 11): the
// peak (VmHWM) of the whole process, not a heap estimate.
const memoryBound = 512 << 20

// peakRSS reads a process's peak resident set size (VmHWM) from /proc.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc to read the peak RSS from: %v", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// hostileBody is a request body that repeats item n times inside prefix…suffix, joined by commas.
func hostileBody(prefix, item, suffix string, n int) []byte {
	var b bytes.Buffer
	b.Grow(len(prefix) + n*(len(item)+1) + len(suffix))
	b.WriteString(prefix)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteString(suffix)
	return b.Bytes()
}

// sendAll sends body(i) to url from n clients at once, as a body of known length (chunked when
// chunked is set, so that the server must read it to learn its size), and returns each answer's
// status and body.
func sendAll(t *testing.T, url string, body func(i int) []byte, n int, chunked bool) []string {
	t.Helper()
	answers := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var r io.Reader = bytes.NewReader(body(i))
			if chunked {
				r = io.MultiReader(r) // hides the length, so the client sends chunks
			}
			req, _ := http.NewRequest(http.MethodPost, url, r)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				// The server may answer an oversize body before reading it and close the connection
				// while the client still writes: that is a refusal too, but not one we can inspect.
				answers[i] = "transport: " + err.Error()
				return
			}
			defer resp.Body.Close()
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			answers[i] = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(msg))
		})
	}
	wg.Wait()
	return answers
}

// TestMemoryStaysBoundedUnderHostileBodies sends what took mlgate to 2.8 GB (issue 11, defect 3) to a
// real process and checks its peak resident memory: ten runs/search calls at once with 3.8 million
// experiment ids each (15 MB, under the old 16 MiB cap), thirty 15 MB log-batch bodies at once, the same
// chunked (so that the server has to read them to find out their size), and log-batch bodies of empty
// objects, the costliest JSON to decode. Every one is refused with an MLflow 4xx. Then the largest calls
// that are accepted, at once: searches of the most experiment ids a search takes, and log-inputs with a
// dataset profile of MLflow's maximum size. Through all of it the process never holds more than
// memoryBound.
func TestMemoryStaysBoundedUnderHostileBodies(t *testing.T) {
	p := startServe(t, t.TempDir())
	c := &mlflowClient{t: t, base: p.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "memory"}, &exp)
	run := c.createRun(exp.ExperimentID, "hostile")

	search := hostileBody(`{"experiment_ids":[`, `"1"`, `]}`, 3_800_000)
	batch := hostileBody(`{"run_id":"`+run.RunID+`","metrics":[`, `{"key":"m","value":1,"timestamp":1,"step":0}`, `]}`,
		15_000_000/46)
	// An array of empty objects costs the most per byte once decoded: each becomes a whole struct.
	emptyObjects := hostileBody(`{"run_id":"`+run.RunID+`","metrics":[`, `{}`, `]}`, 5_000_000)
	// The largest calls that are accepted: as many experiment ids as a search takes, and a dataset
	// profile of MLflow's maximum size.
	widestSearch := hostileBody(`{"max_results":10,"experiment_ids":[`, `"`+exp.ExperimentID+`"`, `]}`, 10_000)
	logInputs, _ := json.Marshal(map[string]any{"run_id": run.RunID, "datasets": []any{map[string]any{
		"dataset": map[string]any{"name": "big", "digest": "d1", "source_type": "local", "source": "{}",
			"profile": strings.Repeat("p", 16<<20-1)}}}})
	for _, tc := range []struct {
		name     string
		rpc      string
		body     func(i int) []byte
		n        int
		chunked  bool
		accepted bool
	}{
		{"ten runs/search of 3.8M experiment ids", "runs/search", same(search), 10, false, false},
		{"ten chunked runs/search of 3.8M experiment ids", "runs/search", same(search), 10, true, false},
		{"thirty 15 MB log-batch", "runs/log-batch", same(batch), 30, false, false},
		{"thirty chunked 15 MB log-batch", "runs/log-batch", same(batch), 30, true, false},
		{"thirty chunked log-batch of empty metrics", "runs/log-batch", same(emptyObjects), 30, true, false},
		{"thirty runs/search of 10000 experiment ids", "runs/search", same(widestSearch), 30, false, true},
		// One dataset sent ten times: the store keeps it once, so what is measured is what the calls
		// cost, not a database that grows by 160 MB (bbolt maps the pages it rewrites).
		{"ten log-inputs with a 16 MiB profile", "runs/log-inputs", same(logInputs), 10, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, a := range sendAll(t, p.base+"/api/2.0/mlflow/"+tc.rpc, tc.body, tc.n, tc.chunked) {
				status, msg, _ := strings.Cut(a, " ")
				code, _ := strconv.Atoi(status)
				var e struct {
					ErrorCode string `json:"error_code"`
				}
				switch {
				case tc.accepted && code != http.StatusOK:
					t.Errorf("request %d: %.300s, want 200", i, a)
				case tc.accepted:
				case strings.HasPrefix(a, "transport: "):
					// Refused before the client finished writing; nothing to inspect.
				case code < 400 || code > 499 || json.Unmarshal([]byte(msg), &e) != nil || e.ErrorCode == "":
					t.Errorf("request %d: %.300s, want an MLflow 4xx", i, a)
				}
			}
			if peak := peakRSS(t, p.cmd.Process.Pid); peak > memoryBound {
				t.Fatalf("peak RSS %d MiB, over the bound of %d MiB", peak>>20, memoryBound>>20)
			} else {
				t.Logf("peak RSS so far: %d MiB", peak>>20)
			}
		})
	}
}

// same gives every request the same body.
func same(b []byte) func(int) []byte { return func(int) []byte { return b } }
