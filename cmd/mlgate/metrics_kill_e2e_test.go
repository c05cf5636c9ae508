package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// killedJob is one training job of the kill test: it logs to its own run, back to back, and remembers
// every point the server acknowledged (answered 200).
type killedJob struct {
	runID string
	batch int // metrics per runs/log-batch call; 0: one runs/log-metric per point

	acked   []int64 // steps of acknowledged points; read once the logger has stopped
	refused string  // an answer other than 200 while the server was up, which fails the test
}

// jobPointValue is the value logged at step, so that a point read back can be checked.
func jobPointValue(step int64) float64 { return float64(step) / 4 }

// run logs until a call fails at the transport level (the server was killed), counting each acknowledged
// call in acks.
func (l *killedJob) run(client *http.Client, base string, acks *atomic.Int64) {
	ts := time.Now().UnixMilli()
	for step := int64(0); ; {
		var body []byte
		var steps []int64
		if l.batch == 0 {
			steps = []int64{step}
			body, _ = json.Marshal(map[string]any{"run_id": l.runID, "key": "loss", "value": jobPointValue(step), "timestamp": ts, "step": step})
		} else {
			ms := make([]map[string]any, l.batch)
			for j := range ms {
				s := step + int64(j)
				steps = append(steps, s)
				ms[j] = map[string]any{"key": "loss", "value": jobPointValue(s), "timestamp": ts, "step": s}
			}
			body, _ = json.Marshal(map[string]any{"run_id": l.runID, "metrics": ms})
		}
		rpc := "runs/log-metric"
		if l.batch > 0 {
			rpc = "runs/log-batch"
		}
		resp, err := client.Post(base+"/api/2.0/mlflow/"+rpc, "application/json", bytes.NewReader(body))
		if err != nil {
			return // killed: this call is not acknowledged
		}
		answer, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return // killed while answering: a 200 not read whole is not an acknowledgement
		}
		if resp.StatusCode != http.StatusOK {
			l.refused = fmt.Sprintf("%s answered %d %s", rpc, resp.StatusCode, answer)
			return
		}
		l.acked = append(l.acked, steps...)
		acks.Add(1)
		step += int64(len(steps))
	}
}

// TestSIGKILLKeepsAcknowledgedMetricPoints kills mlgate with SIGKILL at a random moment while concurrent
// clients log metrics, with runs/log-metric and runs/log-batch: the group commit shares commits between
// them. After each kill fsck must find the store clean, and after a restart every point answered 200
// before the kill, in this round or an earlier one, must be in its run's metric history.
func TestSIGKILLKeepsAcknowledgedMetricPoints(t *testing.T) {
	const rounds, loggers, batch = 4, 8, 10
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 11))
	dataDir := t.TempDir()
	p := startServe(t, dataDir)
	var all []*killedJob
	for round := range rounds {
		c := &mlflowClient{t: t, base: p.base}
		var exp struct {
			ExperimentID string `json:"experiment_id"`
		}
		c.ok(http.MethodPost, "experiments/create", map[string]any{"name": fmt.Sprint("kill-", round)}, &exp)
		var current []*killedJob
		for i := range loggers {
			l := &killedJob{runID: c.createRun(exp.ExperimentID, fmt.Sprint("job-", i)).RunID}
			if i%2 == 1 {
				l.batch = batch
			}
			current = append(current, l)
		}
		all = append(all, current...)

		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loggers}}
		var acks atomic.Int64
		var wg sync.WaitGroup
		for _, l := range current {
			wg.Go(func() { l.run(client, p.base, &acks) })
		}
		killAt := 20 + rng.Int64N(600) // acknowledged calls before the kill: a random moment of the load
		poll.Until(t, 60*time.Second, fmt.Sprintf("%d acknowledged calls", killAt), func() bool {
			return acks.Load() >= killAt
		})
		if err := p.stop(syscall.SIGKILL); err == nil {
			t.Fatal("SIGKILL did not kill")
		}
		wg.Wait()
		client.CloseIdleConnections()
		for _, l := range current {
			if l.refused != "" {
				t.Fatalf("round %d, run %s: %s", round, l.runID, l.refused)
			}
		}

		if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
			t.Fatalf("round %d: fsck after SIGKILL: exit %d\n%s", round, code, out)
		}
		p = startServe(t, dataDir)
		points := 0
		for _, l := range all {
			stored := lossHistory(t, p.base, l.runID)
			for _, step := range l.acked {
				v, ok := stored[step]
				if !ok {
					t.Fatalf("round %d: run %s lost step %d, acknowledged before the kill (%d of its %d acknowledged points are stored)",
						round, l.runID, step, countStoredSteps(stored, l.acked), len(l.acked))
				}
				if v != jobPointValue(step) {
					t.Fatalf("round %d: run %s step %d has value %v, want %v", round, l.runID, step, v, jobPointValue(step))
				}
			}
			points += len(l.acked)
		}
		t.Logf("round %d: killed after %d acknowledged calls; all %d acknowledged points of %d runs are stored", round, acks.Load(), points, len(all))
	}
}

// lossHistory returns the run's "loss" points, step to value.
func lossHistory(t *testing.T, base, runID string) map[int64]float64 {
	t.Helper()
	code, body := get(t, base+"/api/2.0/mlflow/metrics/get-history?run_id="+runID+"&metric_key=loss&max_results=25000")
	var out struct {
		Metrics []struct {
			Step  int64   `json:"step"`
			Value float64 `json:"value"`
		} `json:"metrics"`
		NextPageToken string `json:"next_page_token"`
	}
	if err := json.Unmarshal(body, &out); code != http.StatusOK || err != nil || out.NextPageToken != "" {
		t.Fatalf("get-history of run %s: %d %v, next page %q: %.300s", runID, code, err, out.NextPageToken, body)
	}
	points := make(map[int64]float64, len(out.Metrics))
	for _, m := range out.Metrics {
		points[m.Step] = m.Value
	}
	return points
}

func countStoredSteps(stored map[int64]float64, steps []int64) int {
	n := 0
	for _, s := range steps {
		if _, ok := stored[s]; ok {
			n++
		}
	}
	return n
}
