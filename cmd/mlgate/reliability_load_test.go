//go:build reliability

package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// Load test shape. The duration and the number of clients can be lowered through the environment
// (MLGATE_LOAD_DURATION=10s, MLGATE_LOAD_CLIENTS) to iterate quickly; CI runs the defaults.
const (
	loadDefaultDuration = 60 * time.Second
	loadDefaultClients  = 200
	loadExperiments     = 4  // runs/search scans one of these, each with a quarter of the clients' runs
	loadCatalogFiles    = 50 // files of the version every listing pages through
	loadCatalogPage     = 20 // per_page of those listings, so each takes three pages
	loadBatchMetrics    = 100
	loadMinFile         = 1 << 20
	loadMaxFile         = 50 << 20
)

// Slack on the server's resources after the load, against the idle reading before it: room for a
// few goroutines and descriptors started lazily (a commit queue, a pooled connection of a backend),
// far below what one leak per client (200) or per request (thousands) would show.
const (
	goroutineSlack = 20
	fdSlack        = 10
)

// TestReliabilityLoad runs 200 concurrent clients against a real mlgate for 60 s, each picking at
// random between an MLflow log-batch of 100 metrics, a runs/search, a 1–50 MB upload that it then
// downloads (checking the sha256) and deletes, and a three-page package listing. It asserts that
// every request succeeded (429s from the upload limiter are backed off and retried, and counted),
// that every download and listing was right, that the server's goroutines and open descriptors come
// back to their idle level once the clients' connections close, that SIGTERM then stops it cleanly,
// and that fsck finds the store clean (every deleted file's blob gone). It logs throughput and
// latency per kind of request.
func TestReliabilityLoad(t *testing.T) {
	duration := testEnvDuration(t, "MLGATE_LOAD_DURATION", loadDefaultDuration)
	clients := testEnvInt(t, "MLGATE_LOAD_CLIENTS", loadDefaultClients)
	dataDir := t.TempDir()
	p := serveReliable(t, dataDir)
	hc := newPoolClient(clients)
	ctx := context.Background()

	exps := make([]string, loadExperiments)
	for i := range exps {
		exps[i] = createExperiment(t, hc, p.base, fmt.Sprintf("load-%d", i))
	}
	// The catalog: small files with known sums, listed in pages by every "list" request.
	catalogURL := pkgURL(p.base, "load/catalog", "catalog", "1.0.0", "")
	catalog := map[string]listedFile{}
	for i := range loadCatalogFiles {
		f := listedFile{Path: fmt.Sprintf("f%03d.bin", i), Size: int64(1000 + i)}
		sum, err := uploadGen(ctx, hc, catalogURL+"/"+f.Path, uint64(1<<40+i), f.Size)
		if err != nil {
			t.Fatal(err)
		}
		f.SHA256 = sum
		catalog[f.Path] = f
	}
	workers := make([]*loadClient, clients)
	for i := range workers {
		workers[i] = &loadClient{
			id: i, base: p.base, hc: hc, exp: exps[i%loadExperiments],
			run:     createRun(t, hc, p.base, exps[i%loadExperiments], fmt.Sprintf("client-%d", i)),
			files:   pkgURL(p.base, fmt.Sprintf("load/p%d", i%8), fmt.Sprintf("m%d", i), "1.0.0", ""),
			catalog: catalogURL, catalogWant: catalog,
			rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))),
		}
	}

	hc.CloseIdleConnections()
	before := idleGauges(t, p.base)
	t.Logf("before the load: %v", before)

	stats := newOpStats()
	peak := watchPeak(p.base)
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for _, w := range workers {
		w.stats = stats
		wg.Go(func() { w.loop(ctx, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	peakG := peak()

	t.Logf("%d clients for %v (load ran %v):\n%s", clients, duration, elapsed.Round(time.Millisecond), stats.summary(elapsed))
	t.Logf("peak during the load: %v", peakG)
	if n, msgs := stats.failures(); n > 0 {
		t.Errorf("%d requests failed; the first:\n  %s", n, strings.Join(msgs, "\n  "))
	}
	for _, kind := range []string{"log-batch", "search", "upload", "download", "delete", "list"} {
		if len(stats.latencies[kind]) == 0 {
			t.Errorf("no %s request succeeded", kind)
		}
	}

	// Idle connections keep a goroutine and a descriptor each on the server until they close; close
	// the clients' side, then wait for the server to notice.
	hc.CloseIdleConnections()
	var after gauges
	poll.UntilOK(t, 60*time.Second, "the server's goroutines and descriptors to return to their idle level", func() error {
		g, err := readGauges(p.base)
		if err != nil {
			return err
		}
		after = g
		if g.goroutines > before.goroutines+goroutineSlack || g.fds > before.fds+fdSlack {
			return fmt.Errorf("now %v, before the load %v (slack %d goroutines, %d fds)", g, before, goroutineSlack, fdSlack)
		}
		return nil
	})
	t.Logf("after the load: %v", after)

	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM after the load: %v", err)
	}
	// Nothing went wrong, so nothing may be logged as an error: such a line is a failure that reached
	// no client (a blob that could not be discarded, say). The process has exited: its log is complete.
	if lines := logLines(p.logs.String(), "level=ERROR"); len(lines) > 0 {
		t.Errorf("mlgate logged %d errors under a load without faults; the first:\n%s", len(lines), strings.Join(lines[:min(len(lines), 10)], ""))
	}
	t.Logf("mlgate logged %d warnings", len(logLines(p.logs.String(), "level=WARN")))
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Errorf("fsck after the load: exit %d\n%s", code, out)
	}
}

// loadClient is one of the load test's clients: an MLflow run of its own, a package version of its
// own for its uploads, and the shared catalog to list.
type loadClient struct {
	id          int
	base        string
	hc          *http.Client
	exp, run    string
	files       string // its version's listing URL; its files are under it
	catalog     string
	catalogWant map[string]listedFile
	rng         *rand.Rand
	stats       *opStats

	step   int64 // the next step of its log-batch metrics
	nfiles int   // files uploaded so far, for unique seeds and paths
}

// loop runs requests back to back until deadline; the one running at the deadline finishes.
func (c *loadClient) loop(ctx context.Context, deadline time.Time) {
	for time.Now().Before(deadline) {
		switch r := c.rng.IntN(100); {
		case r < 35:
			c.timed(ctx, "log-batch", c.logBatch)
		case r < 55:
			c.timed(ctx, "search", c.search)
		case r < 80:
			c.fileRoundTrip(ctx)
		default:
			c.timed(ctx, "list", c.list)
		}
	}
}

// timed runs one request through withBackoff, recording the latency of the attempt that succeeded
// (a throttled attempt is not a request served), or the error.
func (c *loadClient) timed(ctx context.Context, kind string, op func(context.Context) error) bool {
	err := withBackoff(ctx, c.stats, func() error {
		t0 := time.Now()
		err := op(ctx)
		if err == nil {
			c.stats.ok(kind, time.Since(t0))
		}
		return err
	})
	if err != nil {
		c.stats.fail(kind, fmt.Errorf("client %d: %w", c.id, err))
		return false
	}
	return true
}

func (c *loadClient) logBatch(ctx context.Context) error {
	now := time.Now().UnixMilli()
	metrics := make([]metricPoint, 0, loadBatchMetrics)
	for i := range loadBatchMetrics {
		metrics = append(metrics, metricPoint{Key: fmt.Sprintf("m%d", i%10), Value: c.rng.Float64(),
			Timestamp: now, Step: c.step + int64(i/10)})
	}
	if err := rpc(ctx, c.hc, c.base, http.MethodPost, "runs/log-batch", map[string]any{"run_id": c.run, "metrics": metrics}, nil); err != nil {
		return err
	}
	c.step += loadBatchMetrics / 10
	return nil
}

// search orders the experiment's runs by a metric every client logs. Once this client has logged
// one, its own run matches the filter, so an empty answer is wrong.
func (c *loadClient) search(ctx context.Context) error {
	var out struct {
		Runs []struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"runs"`
	}
	err := rpc(ctx, c.hc, c.base, http.MethodPost, "runs/search", map[string]any{
		"experiment_ids": []string{c.exp}, "filter": "metrics.m0 >= 0", "order_by": []string{"metrics.m0 DESC"},
		"max_results": 50}, &out)
	if err != nil {
		return err
	}
	if len(out.Runs) > 50 || (c.step > 0 && len(out.Runs) == 0) {
		return fmt.Errorf("runs/search: %d runs (max_results 50; this client's run has metrics)", len(out.Runs))
	}
	return nil
}

// list pages through the catalog and checks that it is exactly the files uploaded at setup.
func (c *loadClient) list(ctx context.Context) error {
	got, err := listFiles(ctx, c.hc, c.catalog, loadCatalogPage)
	if err != nil {
		return err
	}
	if len(got) != len(c.catalogWant) {
		return fmt.Errorf("catalog listing: %d files, want %d", len(got), len(c.catalogWant))
	}
	for _, f := range got {
		if f != c.catalogWant[f.Path] {
			return fmt.Errorf("catalog listing: %+v, want %+v", f, c.catalogWant[f.Path])
		}
	}
	return nil
}

// fileRoundTrip uploads a generated file, downloads it checking its sha256, and deletes it, so that
// the disk holds at most one file per client. The size is skewed small (1 MB plus 49 MB × u⁸: mean
// about 6 MB, one in twelve above 25 MB) so that 200 clients on 2 cores and one disk keep up.
func (c *loadClient) fileRoundTrip(ctx context.Context) {
	size := int64(loadMinFile + float64(loadMaxFile-loadMinFile)*math.Pow(c.rng.Float64(), 8))
	seed := uint64(c.id)<<32 | uint64(c.nfiles)
	u := fmt.Sprintf("%s/f%d.bin", c.files, c.nfiles)
	c.nfiles++
	var sum string
	if !c.timed(ctx, "upload", func(ctx context.Context) (err error) {
		sum, err = uploadGen(ctx, c.hc, u, seed, size)
		return err
	}) {
		return
	}
	c.stats.bytesUp.Add(size)
	if c.timed(ctx, "download", func(ctx context.Context) error { return downloadCheck(ctx, c.hc, u, size, sum) }) {
		c.stats.bytesDown.Add(size)
	}
	c.timed(ctx, "delete", func(ctx context.Context) error { return deleteFile(ctx, c.hc, u) })
}

// idleGauges reads the server's gauges once they are steady (two readings in a row agree on
// goroutines and descriptors): connections the test just closed take a moment to end on the server.
func idleGauges(t *testing.T, base string) gauges {
	t.Helper()
	var last gauges
	poll.UntilOK(t, 30*time.Second, "the server's goroutines and descriptors to settle", func() error {
		g, err := readGauges(base)
		if err != nil {
			return err
		}
		prev := last
		last = g
		if g.goroutines != prev.goroutines || g.fds != prev.fds {
			return fmt.Errorf("%v, then %v", prev, g)
		}
		return nil
	})
	return last
}

// watchPeak samples the server's gauges every second until the returned function is called, which
// returns the highest of each. Sampling errors are ignored: this is for the report, not an assertion.
func watchPeak(base string) func() gauges {
	stop := make(chan struct{})
	done := make(chan gauges)
	go func() {
		var peak gauges
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- peak
				return
			case <-tick.C:
				if g, err := readGauges(base); err == nil {
					peak = gauges{goroutines: max(peak.goroutines, g.goroutines), fds: max(peak.fds, g.fds),
						rssMB: max(peak.rssMB, g.rssMB)}
				}
			}
		}
	}()
	return func() gauges {
		close(stop)
		return <-done
	}
}
