//go:build reliability

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// The SIGKILL test's shape: rounds of mixed load, each ended by a kill at a random moment.
const (
	killRounds        = 5
	killUploaders     = 6 // package uploads of 1–5 MB, each worker into a version of its own
	killMetricLoggers = 3 // runs/log-metric, one point per call
	killBatchLoggers  = 3 // runs/log-batch of killBatchSize points
	killBatchSize     = 100
	killProject       = "kill/mixed"
	killVersion       = "1.0.0"
	killMinFile       = 1 << 20
	killMaxFile       = 5 << 20
	killMinMoment     = 500 * time.Millisecond
	killMaxMoment     = 3 * time.Second
)

// TestReliabilitySIGKILLDuringMixedLoad kills mlgate with SIGKILL five times, each at a random moment
// 0.5–3 s into a round of concurrent package uploads, log-metric and log-batch calls (and after the
// round's first acknowledgements, so that every round has something to lose). After each kill it
// runs fsck with the server stopped (clean, or clean after --repair removed only crash leftovers),
// restarts mlgate on the same data dir, and checks every round so far: each upload answered 201 is
// there with its sha256, each metric point answered 200 is in its history, an upload that was in
// flight is either absent or whole, a log-batch in flight is all there or not at all, and every file
// a listing shows downloads whole with the sha256 the listing gives. The restarted server carries the
// next round's load.
func TestReliabilitySIGKILLDuringMixedLoad(t *testing.T) {
	dataDir := t.TempDir()
	hc := newPoolClient(killUploaders + killMetricLoggers + killBatchLoggers)
	p := serveReliable(t, dataDir)
	exp := createExperiment(t, hc, p.base, "kill")
	l := &killLedger{uploads: map[upKey]*upRecord{}}
	for i := range killMetricLoggers + killBatchLoggers {
		l.runs = append(l.runs, &killRun{id: createRun(t, hc, p.base, exp, fmt.Sprintf("logger-%d", i)), batch: i >= killMetricLoggers})
	}

	for round := range killRounds {
		var killed atomic.Bool
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range killUploaders {
			wg.Go(func() { l.uploader(ctx, hc, p.base, &killed, round, w) })
		}
		for _, r := range l.runs {
			wg.Go(func() { l.logger(ctx, hc, p.base, &killed, round, r) })
		}
		poll.UntilOK(t, 60*time.Second, "the round's first acknowledged upload and metric point", func() error {
			if up, pts := l.acked(round); up == 0 || pts == 0 {
				return fmt.Errorf("%d uploads and %d points acknowledged", up, pts)
			}
			return nil
		})
		moment := killMinMoment + rand.N(killMaxMoment-killMinMoment)
		time.Sleep(moment) // the deliberate random kill moment
		killed.Store(true)
		if err := p.stop(syscall.SIGKILL); err == nil {
			t.Fatal("SIGKILL: mlgate exited cleanly")
		}
		cancel()
		wg.Wait()
		// Pooled connections died with the server.
		hc.CloseIdleConnections()
		if msgs := l.takeFailures(); len(msgs) > 0 {
			t.Fatalf("round %d: requests failed before the kill:\n  %s", round, strings.Join(msgs, "\n  "))
		}
		repaired := fsckAfterCrash(t, "--data-dir", dataDir)

		p = serveReliable(t, dataDir)
		up, pts := l.acked(round)
		t.Logf("round %d: killed %v after the first acknowledgements; this round %d uploads and %d metric points acknowledged; fsck --repair removed %d leftovers",
			round, moment.Round(time.Millisecond), up, pts, repaired)
		fate := l.verify(t, hc, p.base)
		t.Logf("round %d: verified every acknowledged upload and point of rounds 0–%d; in flight at the kills so far: "+
			"%d uploads stored whole, %d absent; %d log-batches stored whole, %d absent",
			round, round, fate.uploadsStored, fate.uploadsAbsent, fate.batchesStored, fate.batchesAbsent)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM after the last round: %v", err)
	}
	if code, out := runCmd(t, "fsck", "--data-dir", dataDir); code != 0 || !strings.Contains(out, "store is clean") {
		t.Errorf("fsck at the end: exit %d\n%s", code, out)
	}
}

// upKey names an upload independently of the server's address, which changes with each restart.
type upKey struct{ model, path string }

// upRecord is an upload the test sent: acked once it was answered 201; otherwise its outcome is
// unknown (it was in flight at the kill) and it must be absent or whole.
type upRecord struct {
	round int
	seed  uint64
	size  int64
	acked bool
}

// killRun is one logging worker's run, kept across rounds.
type killRun struct {
	id       string
	batch    bool  // log-batch, else log-metric
	nextStep int64 // steps are unique per run, so that a point is identified by its step
	acked    map[int64]metricPoint
	inFlight [][]metricPoint // batches with no answer: all or none of each must be stored
	rounds   map[int]int     // points acknowledged per round
}

// killLedger is what the workers were told was stored, across rounds.
type killLedger struct {
	mu       sync.Mutex
	uploads  map[upKey]*upRecord
	runs     []*killRun
	upRounds map[int]int // uploads acknowledged per round
	failures []string    // errors before the kill: each fails the test
}

func (l *killLedger) fail(killed *atomic.Bool, err error) {
	if killed.Load() {
		return // the kill's own damage: connections refused or cut
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = append(l.failures, err.Error())
}

func (l *killLedger) takeFailures() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures
	l.failures = nil
	return f
}

// acked returns how many uploads and metric points were acknowledged in round.
func (l *killLedger) acked(round int) (uploads, points int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		points += r.rounds[round]
	}
	return l.upRounds[round], points
}

// uploader uploads files of 1–5 MB back to back into its own version until the kill, recording each
// before it is sent (in flight) and as acknowledged once answered 201.
func (l *killLedger) uploader(ctx context.Context, hc *http.Client, base string, killed *atomic.Bool, round, w int) {
	rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
	model := fmt.Sprintf("up%d", w)
	for i := 0; ctx.Err() == nil && !killed.Load(); i++ {
		k := upKey{model, fmt.Sprintf("r%d/f%d.bin", round, i)}
		rec := &upRecord{round: round, seed: uint64(round)<<40 | uint64(w)<<32 | uint64(i),
			size: killMinFile + rng.Int64N(killMaxFile-killMinFile+1)}
		l.mu.Lock()
		l.uploads[k] = rec
		l.mu.Unlock()
		err := withBackoff(ctx, newOpStats(), func() error {
			_, err := uploadGen(ctx, hc, pkgURL(base, killProject, k.model, killVersion, k.path), rec.seed, rec.size)
			return err
		})
		if err != nil {
			l.fail(killed, err)
			continue
		}
		l.mu.Lock()
		rec.acked = true
		if l.upRounds == nil {
			l.upRounds = map[int]int{}
		}
		l.upRounds[round]++
		l.mu.Unlock()
	}
}

// logger logs points to r back to back until the kill: one per log-metric call, or killBatchSize per
// log-batch (ten keys, ten steps each). Values and steps are unique, so the check can find each point.
func (l *killLedger) logger(ctx context.Context, hc *http.Client, base string, killed *atomic.Bool, round int, r *killRun) {
	for ctx.Err() == nil && !killed.Load() {
		l.mu.Lock()
		step := r.nextStep
		n := 1
		if r.batch {
			n = killBatchSize
		}
		r.nextStep += int64(n)
		l.mu.Unlock()
		now := time.Now().UnixMilli()
		pts := make([]metricPoint, n)
		for i := range pts {
			pts[i] = metricPoint{Key: "single", Value: float64(step+int64(i)) + 0.25, Timestamp: now, Step: step + int64(i)}
			if r.batch {
				pts[i].Key = fmt.Sprintf("b%d", i%10)
			}
		}
		var err error
		if r.batch {
			l.mu.Lock()
			r.inFlight = append(r.inFlight, pts)
			l.mu.Unlock()
			err = withBackoff(ctx, newOpStats(), func() error {
				return rpc(ctx, hc, base, http.MethodPost, "runs/log-batch", map[string]any{"run_id": r.id, "metrics": pts}, nil)
			})
		} else {
			p := pts[0]
			err = withBackoff(ctx, newOpStats(), func() error {
				return rpc(ctx, hc, base, http.MethodPost, "runs/log-metric", map[string]any{"run_id": r.id, "key": p.Key,
					"value": p.Value, "timestamp": p.Timestamp, "step": p.Step}, nil)
			})
		}
		if err != nil {
			l.fail(killed, err)
			continue
		}
		l.mu.Lock()
		if r.acked == nil {
			r.acked, r.rounds = map[int64]metricPoint{}, map[int]int{}
		}
		for _, p := range pts {
			r.acked[p.Step] = p
		}
		if r.batch {
			r.inFlight = slices.DeleteFunc(r.inFlight, func(b []metricPoint) bool { return b[0].Step == step })
		}
		r.rounds[round] += n
		l.mu.Unlock()
	}
}

// verify checks, against the restarted server at base, everything acknowledged in every round so far,
// that uploads in flight at a kill are absent or whole, that batches in flight are all or nothing,
// and that each version's listing shows only whole files.
// It returns what became of the requests in flight at the kills so far.
func (l *killLedger) verify(t *testing.T, hc *http.Client, base string) (fate inFlightFate) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	defer l.mu.Unlock()

	// Uploads, a few at a time: this re-reads every round's files.
	type result struct {
		k       upKey
		present bool
		err     error
	}
	keys := make(chan upKey)
	results := make(chan result)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for k := range keys {
				present, err := l.checkUpload(ctx, hc, base, k, l.uploads[k])
				results <- result{k, present, err}
			}
		})
	}
	go func() {
		for k := range l.uploads {
			keys <- k
		}
		close(keys)
		wg.Wait()
		close(results)
	}()
	var errs []error
	for r := range results {
		switch rec := l.uploads[r.k]; {
		case r.err != nil:
			errs = append(errs, r.err)
		case rec.acked:
		case r.present:
			fate.uploadsStored++
		default:
			fate.uploadsAbsent++
		}
	}
	if len(errs) > 0 {
		t.Fatalf("%d uploads wrong after the restart:\n%v", len(errs), errors.Join(errs...))
	}

	// Listings: each listed file is one the test uploaded, with its size and sum; each acknowledged
	// one is listed. A listed file was downloaded whole above (acknowledged or in flight).
	for w := range killUploaders {
		model := fmt.Sprintf("up%d", w)
		listed, err := listFiles(ctx, hc, pkgURL(base, killProject, model, killVersion, ""), 1000)
		if err != nil && !strings.Contains(err.Error(), "404") {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, f := range listed {
			rec, ok := l.uploads[upKey{model, f.Path}]
			if !ok {
				t.Fatalf("%s lists %s, which the test never uploaded", model, f.Path)
			}
			if want := genSum(rec.seed, rec.size); f.Size != rec.size || f.SHA256 != want {
				t.Fatalf("%s lists %s with size %d sha256 %s; uploaded %d bytes with sha256 %s (a partial file is visible)",
					model, f.Path, f.Size, f.SHA256, rec.size, want)
			}
			seen[f.Path] = true
		}
		for k, rec := range l.uploads {
			if k.model == model && rec.acked && !seen[k.path] {
				t.Fatalf("%s/%s was answered 201 but is not listed", model, k.path)
			}
		}
	}

	// Metric points.
	for _, r := range l.runs {
		keys := []string{"single"}
		if r.batch {
			keys = keys[:0]
			for i := range 10 {
				keys = append(keys, fmt.Sprintf("b%d", i))
			}
		}
		stored := map[int64]metricPoint{}
		for _, key := range keys {
			hist, err := metricHistory(ctx, hc, base, r.id, key)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range hist {
				if _, dup := stored[p.Step]; dup {
					t.Fatalf("run %s: step %d stored twice", r.id, p.Step)
				}
				stored[p.Step] = p
			}
		}
		for step, want := range r.acked {
			if got, ok := stored[step]; !ok || got != want {
				t.Fatalf("run %s: acknowledged point %+v is stored as %+v (present: %v)", r.id, want, got, ok)
			}
		}
		for _, b := range r.inFlight {
			n := 0
			for _, p := range b {
				if got, ok := stored[p.Step]; ok && got == p {
					n++
				}
			}
			switch n {
			case 0:
				fate.batchesAbsent++
			case len(b):
				fate.batchesStored++
			default:
				t.Fatalf("run %s: %d of the %d points of a log-batch in flight at the kill are stored", r.id, n, len(b))
			}
		}
		if len(stored) < len(r.acked) {
			t.Fatalf("run %s: %d points stored, %d acknowledged", r.id, len(stored), len(r.acked))
		}
	}
	return fate
}

// inFlightFate counts the requests in flight at the kills (sent, never answered) by what the restarted
// server shows of them: each must be wholly there or wholly absent.
type inFlightFate struct {
	uploadsStored, uploadsAbsent int
	batchesStored, batchesAbsent int
}

// checkUpload checks one upload: an acknowledged one must download whole with its sha256; one in
// flight at a kill must be absent (404) or whole.
// It reports whether the file is there.
func (l *killLedger) checkUpload(ctx context.Context, hc *http.Client, base string, k upKey, rec *upRecord) (bool, error) {
	u := pkgURL(base, killProject, k.model, killVersion, k.path)
	err := downloadCheck(ctx, hc, u, rec.size, genSum(rec.seed, rec.size))
	if err == nil {
		return true, nil
	}
	if !rec.acked && strings.Contains(err.Error(), "404 Not Found") {
		return false, nil
	}
	state := "in flight at a kill"
	if rec.acked {
		state = "acknowledged"
	}
	return false, fmt.Errorf("%s (%s in round %d): %w", k.path, state, rec.round, err)
}
