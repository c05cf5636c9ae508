package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway/runquery"
)

// The concurrent writers test's shape.
const (
	replicaWriters       = 16
	replicaWriteDuration = 20 * time.Second
	replicaPointsPerRun  = 5 // four by log-batch, one by log-metric
)

// writtenRun is a run a writer created and everything it was acknowledged for it.
type writtenRun struct {
	id, exp, artifactURI string
	iid                  int64
	points               []metricPoint
	file                 writtenFile // the run's artifact "f.bin"
}

// writtenFile is an acknowledged upload: its size and the sha256 of the bytes sent.
type writtenFile struct {
	size int64
	sum  string
}

// writerLog is what one writer was acknowledged for.
type writerLog struct {
	exps     []string
	runs     []writtenRun
	packages map[string]writtenFile // package file URL path (after the base URL) → upload
}

// TestReplicasConcurrentWriters runs 16 writers for 20 s, each alternating its requests between two
// replicas: experiments, runs, log-batch and log-metric, an MLflow artifact per run, and package uploads
// that create a model, its version and its backing run in one go. Every request must succeed. Then: the
// experiment ids and the runs' iids (mlgate.candidate_iid) are each exactly 1..N, without duplicates,
// as the store allocates them inside its transactions whichever replica asked (metadata.Store: counters
// never reuse or skip one); every acknowledged run, metric point and file is there, files with the
// sha256 of the bytes sent.
func TestReplicasConcurrentWriters(t *testing.T) {
	r := startReplicas(t, "--log-level", "warn")
	hc := newPoolClient(2 * replicaWriters)
	ctx := context.Background()
	deadline := time.Now().Add(replicaWriteDuration)
	logs := make([]writerLog, replicaWriters)
	errs := make([]error, replicaWriters)
	var wg sync.WaitGroup
	for w := range replicaWriters {
		wg.Go(func() { logs[w], errs[w] = replicaWriter(ctx, hc, r, w, deadline) })
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Experiments: the writers' and the package uploads' models, ids 1..N.
	var acked []string
	var runs []writtenRun
	packages := map[string]writtenFile{}
	for _, l := range logs {
		acked = append(acked, l.exps...)
		runs = append(runs, l.runs...)
		for k, v := range l.packages {
			packages[k] = v
		}
	}
	t.Logf("%d experiments, %d runs, %d package uploads acknowledged in %v", len(acked), len(runs), len(packages), replicaWriteDuration)
	if len(runs) < replicaWriters {
		t.Fatalf("only %d runs in %v: the writers hardly ran", len(runs), replicaWriteDuration)
	}
	exps := listExperimentIDs(t, hc, r)
	if err := contiguous(exps, len(acked)+len(packages)); err != nil {
		t.Fatalf("experiment ids: %v", err)
	}
	for _, id := range acked {
		if !slices.Contains(exps, mustAtoi(t, id)) {
			t.Fatalf("acknowledged experiment %s is not listed", id)
		}
	}

	// Runs: the writers' and the package versions' backing runs, iids 1..N.
	listed := searchRunIIDs(t, hc, r, exps)
	var iids []int64
	for _, iid := range listed {
		iids = append(iids, iid)
	}
	if err := contiguous(iids, len(runs)+len(packages)); err != nil {
		t.Fatalf("run iids: %v", err)
	}
	for _, run := range runs {
		if iid, ok := listed[run.id]; !ok || iid != run.iid {
			t.Fatalf("run %s created with iid %d is listed with iid %d (listed: %v)", run.id, run.iid, iid, ok)
		}
	}

	// Every acknowledged point and file, checked through both replicas, 16 at a time.
	jobs := make(chan func(base string) error)
	var mu sync.Mutex
	var failures []string
	for g := range replicaWriters {
		wg.Go(func() {
			for job := range jobs {
				if err := job(r.base(g % 2)); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for _, run := range runs {
		jobs <- func(base string) error {
			got, err := metricHistory(ctx, hc, base, run.id, "loss")
			if err != nil {
				return err
			}
			if !slices.Equal(got, run.points) {
				return fmt.Errorf("run %s: history %v, acknowledged %v", run.id, got, run.points)
			}
			u := strings.TrimPrefix(run.artifactURI, "mlflow-artifacts:/")
			return downloadCheck(ctx, hc, base+"/api/2.0/mlflow-artifacts/artifacts/"+u+"/f.bin", run.file.size, run.file.sum)
		}
	}
	for path, f := range packages {
		jobs <- func(base string) error { return downloadCheck(ctx, hc, base+path, f.size, f.sum) }
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d checks failed, the first: %s", len(failures), len(runs)+len(packages), failures[0])
	}
}

// replicaWriter is one writer of TestReplicasConcurrentWriters: until deadline, it creates runs (in a new
// experiment every eighth), logs their points, uploads their artifact and, every fourth run, a package
// file; each request goes to the replica after the previous one's. It stops at the first error.
func replicaWriter(ctx context.Context, hc *http.Client, r *replicaSet, w int, deadline time.Time) (writerLog, error) {
	l := writerLog{packages: map[string]writtenFile{}}
	turn := w
	base := func() string { turn++; return r.base(turn % 2) }
	var exp string
	for k := 0; time.Now().Before(deadline); k++ {
		if k%8 == 0 {
			var e struct {
				ExperimentID string `json:"experiment_id"`
			}
			if err := rpc(ctx, hc, base(), http.MethodPost, "experiments/create", map[string]any{"name": fmt.Sprintf("w%02d-%d", w, k)}, &e); err != nil {
				return l, err
			}
			exp = e.ExperimentID
			l.exps = append(l.exps, exp)
		}
		var created runResp
		if err := rpc(ctx, hc, base(), http.MethodPost, "runs/create", map[string]any{"experiment_id": exp,
			"run_name": fmt.Sprintf("w%02d-%d", w, k), "start_time": time.Now().UnixMilli()}, &created); err != nil {
			return l, err
		}
		run := writtenRun{id: created.Run.Info.RunID, exp: exp, artifactURI: created.Run.Info.ArtifactURI}
		for _, tag := range created.Run.Data.Tags {
			if tag.Key == runquery.CandidateIIDTag {
				run.iid, _ = strconv.ParseInt(tag.Value, 10, 64)
			}
		}
		if run.id == "" || run.iid == 0 {
			return l, fmt.Errorf("runs/create answered no run id or iid: %+v", created.Run)
		}
		now := time.Now().UnixMilli()
		for step := range int64(replicaPointsPerRun) {
			run.points = append(run.points, metricPoint{Key: "loss", Value: float64(w*100000+k) + float64(step)/10, Timestamp: now, Step: step})
		}
		if err := rpc(ctx, hc, base(), http.MethodPost, "runs/log-batch", map[string]any{"run_id": run.id,
			"metrics": run.points[:replicaPointsPerRun-1]}, nil); err != nil {
			return l, err
		}
		last := run.points[replicaPointsPerRun-1]
		if err := rpc(ctx, hc, base(), http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.id,
			"key": last.Key, "value": last.Value, "timestamp": last.Timestamp, "step": last.Step}, nil); err != nil {
			return l, err
		}
		seed := uint64(w)<<32 | uint64(k)
		size := int64(1<<10 + seed%(31<<10))
		body := newGenBody(seed, size)
		u := base() + "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(run.artifactURI, "mlflow-artifacts:/") + "/f.bin"
		code, answer, err := doHTTP(hc, http.MethodPut, u, body, size)
		if err != nil || code != http.StatusOK {
			return l, fmt.Errorf("PUT %s: %d %s %v", u, code, answer, err)
		}
		run.file = writtenFile{size, body.sum()}
		l.runs = append(l.runs, run)

		if k%4 == 1 {
			path := pkgURL("", "default", fmt.Sprintf("pkg-w%02d-%d", w, k), "1.0.0", "w.bin")
			sum, err := uploadGen(ctx, hc, base()+path, seed^0xabcdef, size)
			if err != nil {
				return l, err
			}
			l.packages[path] = writtenFile{size, sum}
		}
	}
	return l, nil
}

// listExperimentIDs lists every active experiment's id but the default one's, through both replicas.
func listExperimentIDs(t *testing.T, hc *http.Client, r *replicaSet) []int64 {
	t.Helper()
	var ids []int64
	token := ""
	for i := 0; ; i++ {
		var page struct {
			Experiments []struct {
				ExperimentID string `json:"experiment_id"`
			} `json:"experiments"`
			NextPageToken string `json:"next_page_token"`
		}
		in := map[string]any{"max_results": 500}
		if token != "" {
			in["page_token"] = token
		}
		mustRPC(t, hc, r.base(i%2), http.MethodPost, "experiments/search", in, &page)
		for _, e := range page.Experiments {
			if e.ExperimentID != "0" {
				ids = append(ids, mustAtoi(t, e.ExperimentID))
			}
		}
		if token = page.NextPageToken; token == "" {
			return ids
		}
	}
}

// searchRunIIDs returns every run of the experiments by run id, with its iid, through both replicas.
func searchRunIIDs(t *testing.T, hc *http.Client, r *replicaSet, exps []int64) map[string]int64 {
	t.Helper()
	var ids []string
	for _, e := range exps {
		ids = append(ids, strconv.FormatInt(e, 10))
	}
	out := map[string]int64{}
	token := ""
	for i := 0; ; i++ {
		in := map[string]any{"experiment_ids": ids, "max_results": 1000, "run_view_type": "ALL"}
		if token != "" {
			in["page_token"] = token
		}
		var raw struct {
			Runs []struct {
				Info runInfo `json:"info"`
				Data struct {
					Tags []kv `json:"tags"`
				} `json:"data"`
			} `json:"runs"`
			NextPageToken string `json:"next_page_token"`
		}
		mustRPC(t, hc, r.base(i%2), http.MethodPost, "runs/search", in, &raw)
		for _, run := range raw.Runs {
			if _, dup := out[run.Info.RunID]; dup {
				t.Fatalf("run %s listed twice", run.Info.RunID)
			}
			out[run.Info.RunID] = -1
			for _, tag := range run.Data.Tags {
				if tag.Key == runquery.CandidateIIDTag {
					out[run.Info.RunID] = mustAtoi(t, tag.Value)
				}
			}
		}
		if token = raw.NextPageToken; token == "" {
			return out
		}
	}
}

// contiguous checks that ids are exactly 1..n, each once.
func contiguous(ids []int64, n int) error {
	s := slices.Clone(ids)
	slices.Sort(s)
	for i, id := range s {
		if i > 0 && s[i-1] == id {
			return fmt.Errorf("%d is given twice", id)
		}
	}
	for i, id := range s {
		if id != int64(i+1) {
			return fmt.Errorf("%d ids, sorted: position %d holds %d (one is missing or out of range); want exactly 1..%d", len(s), i+1, id, n)
		}
	}
	if len(s) != n {
		return fmt.Errorf("%d ids 1..%d, want %d (one per acknowledged creation)", len(s), len(s), n)
	}
	return nil
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%q is not an integer id", s)
	}
	return n
}

// contiguous must refuse an iid given twice, a skipped one, and a count that is not one per creation.
func TestContiguous(t *testing.T) {
	for _, tc := range []struct {
		ids  []int64
		n    int
		want string // "" for accepted, else a part of the error
	}{
		{[]int64{3, 1, 2}, 3, ""},
		{nil, 0, ""},
		{[]int64{1, 2, 2, 3}, 4, "2 is given twice"},
		{[]int64{1, 3, 4}, 3, "position 2 holds 3"},
		{[]int64{0, 1, 2}, 3, "position 1 holds 0"},
		{[]int64{1, 2, 3}, 4, "want 4"},
	} {
		err := contiguous(tc.ids, tc.n)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("contiguous(%v, %d) = %v, want %q", tc.ids, tc.n, err, tc.want)
		}
	}
}
