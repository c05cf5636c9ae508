//go:build reliability

// The reliability suite: slow tests against a real `mlgate serve` under load and faults (SIGKILL
// during mixed load, MinIO stopped mid-transfer). They run only with -tags reliability, so that
// `make test` stays quick; .ci/run runs them in a stage of their own:
//
//	go test -tags reliability -run TestReliability -timeout 20m ./cmd/mlgate/
//
// This file holds what the tests share beyond load_helpers_test.go (a client for many workers,
// generated upload bodies, calls that return errors instead of failing the test): the server's
// Prometheus gauges, and latency statistics.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveReliable starts `mlgate serve` for a reliability test at log level warn: the process's stderr
// is kept in memory for the whole test, and an info line per request would grow it by megabytes.
func serveReliable(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	return startServe(t, dataDir, append([]string{"--log-level", "warn"}, extra...)...)
}

// createExperiment creates an experiment and returns its id.
func createExperiment(t *testing.T, c *http.Client, base, name string) string {
	t.Helper()
	var e struct {
		ExperimentID string `json:"experiment_id"`
	}
	mustRPC(t, c, base, http.MethodPost, "experiments/create", map[string]any{"name": name}, &e)
	return e.ExperimentID
}

// deleteFile deletes a package file and expects 204. A 429 is an *errThrottled.
func deleteFile(ctx context.Context, c *http.Client, u string) error {
	ctx, cancel := context.WithTimeout(ctx, relRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("DELETE %s: %w", u, err)
	}
	defer resp.Body.Close()
	if err := throttled(resp); err != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return statusError("DELETE "+u, resp)
	}
	return nil
}

// gauges are the server's resource gauges from its Prometheus /metrics.
type gauges struct {
	goroutines, fds int
	rssMB           float64
}

func (g gauges) String() string {
	return fmt.Sprintf("%d goroutines, %d open fds, %.0f MB resident", g.goroutines, g.fds, g.rssMB)
}

// scrapeClient reads /metrics over a connection of its own that it closes after each scrape, so that
// the reading does not count a pooled connection of the test's own.
var scrapeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}

// readGauges reads go_goroutines, process_open_fds and process_resident_memory_bytes from the
// server's GET /metrics.
func readGauges(base string) (gauges, error) {
	resp, err := scrapeClient.Get(base + "/metrics")
	if err != nil {
		return gauges{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return gauges{}, fmt.Errorf("/metrics answered %s", resp.Status)
	}
	vals := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		switch name {
		case "go_goroutines", "process_open_fds", "process_resident_memory_bytes":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return gauges{}, fmt.Errorf("/metrics: %s %q: %w", name, v, err)
			}
			vals[name] = f
		}
	}
	if err := sc.Err(); err != nil {
		return gauges{}, err
	}
	for _, name := range []string{"go_goroutines", "process_open_fds", "process_resident_memory_bytes"} {
		if _, ok := vals[name]; !ok {
			return gauges{}, fmt.Errorf("/metrics has no %s", name)
		}
	}
	return gauges{goroutines: int(vals["go_goroutines"]), fds: int(vals["process_open_fds"]),
		rssMB: vals["process_resident_memory_bytes"] / 1e6}, nil
}

// opStats collects what workers did: latencies per kind of request, bytes moved, 429s, and errors.
type opStats struct {
	mu        sync.Mutex
	latencies map[string][]time.Duration
	errs      []string // the first few, for the failure message
	nerrs     int

	throttled   atomic.Int64 // 429 answers, backed off and retried
	noRetryHint atomic.Int64 // 429 answers without a valid Retry-After
	bytesUp     atomic.Int64
	bytesDown   atomic.Int64
}

func newOpStats() *opStats { return &opStats{latencies: map[string][]time.Duration{}} }

// maxKeptErrors is how many error messages opStats keeps; the count covers all of them.
const maxKeptErrors = 20

func (s *opStats) ok(kind string, d time.Duration) {
	s.mu.Lock()
	s.latencies[kind] = append(s.latencies[kind], d)
	s.mu.Unlock()
}

func (s *opStats) fail(kind string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nerrs++
	if len(s.errs) < maxKeptErrors {
		s.errs = append(s.errs, kind+": "+err.Error())
	}
}

// failures returns the number of errors and the first few messages.
func (s *opStats) failures() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nerrs, slices.Clone(s.errs)
}

// summary is one line per kind of request: count, rate over elapsed, p50, p99 and max latency.
func (s *opStats) summary(elapsed time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	kinds := make([]string, 0, len(s.latencies))
	for k := range s.latencies {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		l := s.latencies[k]
		slices.Sort(l)
		fmt.Fprintf(&b, "  %-10s %7d requests  %8.1f/s  p50 %8v  p99 %8v  max %8v\n", k, len(l),
			float64(len(l))/elapsed.Seconds(), quantile(l, 0.50).Round(time.Millisecond),
			quantile(l, 0.99).Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "  bytes: %.0f MB up (%.1f MB/s), %.0f MB down (%.1f MB/s)\n",
		float64(s.bytesUp.Load())/1e6, float64(s.bytesUp.Load())/1e6/elapsed.Seconds(),
		float64(s.bytesDown.Load())/1e6, float64(s.bytesDown.Load())/1e6/elapsed.Seconds())
	fmt.Fprintf(&b, "  429 answers backed off and retried: %d (%d without a valid Retry-After)", s.throttled.Load(), s.noRetryHint.Load())
	return b.String()
}

// quantile is the q-quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// withBackoff calls op until it returns anything but an *errThrottled, waiting the answer's
// Retry-After (at most 2 s, a little less if none came, and with jitter so that throttled workers do
// not return in step) between tries. It counts each 429 in s. It gives up when ctx ends.
func withBackoff(ctx context.Context, s *opStats, op func() error) error {
	for {
		err := op()
		var th *errThrottled
		if !errors.As(err, &th) {
			return err
		}
		s.throttled.Add(1)
		wait := th.retryAfter
		if wait < 0 {
			s.noRetryHint.Add(1)
			wait = 500 * time.Millisecond
		}
		wait = min(wait, 2*time.Second) + rand.N(250*time.Millisecond)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("still throttled when the test ended: %w", err)
		}
	}
}

// testEnvDuration reads a duration from the environment variable name, or returns def when it is unset.
func testEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10s", name, v)
	}
	return d
}

// testEnvInt reads a positive integer from the environment variable name, or returns def when unset.
func testEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// crashLeftovers are the fsck problem kinds an interrupted write may leave behind: a blob stored
// whose row was never committed, and a staged temp file. Anything else (a row without its blob, a
// size mismatch) means acknowledged data was lost or a partial file became visible.
var crashLeftovers = map[string]bool{"unreferenced_blob": true, "staging_leftover": true}

// fsckAfterCrash runs `mlgate fsck` with args (--data-dir, --config) on a store whose server was
// killed or lost its storage mid-write; the server must be stopped, as fsck takes the database lock.
// The store must be clean, or its only problems crash leftovers that `fsck --repair` removes, after
// which fsck must find it clean. It returns how many leftovers were repaired.
func fsckAfterCrash(t *testing.T, args ...string) int {
	t.Helper()
	code, out := runCmd(t, append([]string{"fsck"}, args...)...)
	if code == 0 && strings.Contains(out, "store is clean") {
		return 0
	}
	if code != 1 {
		t.Fatalf("fsck: exit %d\n%s", code, out)
	}
	found := fsckProblems(out, "found")
	if len(found) == 0 {
		t.Fatalf("fsck: exit 1 without a problem listed\n%s", out)
	}
	for _, kind := range found {
		if !crashLeftovers[kind] {
			t.Fatalf("fsck found a %s problem, which no crash may leave:\n%s", kind, out)
		}
	}
	code, rout := runCmd(t, append([]string{"fsck", "--repair"}, args...)...)
	if code != 0 || len(fsckProblems(rout, "found")) > 0 {
		t.Fatalf("fsck --repair: exit %d\n%s", code, rout)
	}
	repaired := fsckProblems(rout, "repaired")
	if len(repaired) != len(found) {
		t.Fatalf("fsck listed %d problems, fsck --repair repaired %d:\n%s\n%s", len(found), len(repaired), out, rout)
	}
	if code, out := runCmd(t, append([]string{"fsck"}, args...)...); code != 0 || !strings.Contains(out, "store is clean") {
		t.Fatalf("fsck after --repair: exit %d\n%s", code, out)
	}
	return len(repaired)
}

// fsckProblems returns the kind of each problem line of fsck's output in state ("found" or
// "repaired"): the lines are state, kind, key and detail separated by tabs.
func fsckProblems(out, state string) []string {
	var kinds []string
	for line := range strings.Lines(out) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) >= 2 && f[0] == state {
			kinds = append(kinds, f[1])
		}
	}
	return kinds
}

// logLines returns the lines of a text log that contain s (such as "level=ERROR").
func logLines(log, s string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}
