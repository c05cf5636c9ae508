package pgstore

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// TestMigration10LatestMetrics checks what migration 10 adds: points stored before it (as a database at
// version 9 holds them) are in latest_metrics after it, and points inserted afterwards row by row, as a
// replica of the previous release does during a rolling upgrade, keep it current through the trigger. The
// previous release's binary (migrations up to 8) still opens the migrated schema.
func TestMigration10LatestMetrics(t *testing.T) {
	dsn := emptySchema(t)
	ctx := t.Context()
	old, err := open(ctx, dsn, migrations[:9])
	if err != nil {
		t.Fatal(err)
	}
	p, err := old.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := old.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	a := &metadata.Candidate{ModelID: m.ID, Name: "a"}
	b := &metadata.Candidate{ModelID: m.ID, Name: "b"}
	for _, c := range []*metadata.Candidate{a, b} {
		if err := old.CreateCandidate(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	lm := &metadata.LoggedModel{ModelID: m.ID, Name: "lm", SourceRunID: a.ID}
	if err := old.CreateLoggedModel(ctx, lm); err != nil {
		t.Fatal(err)
	}
	nan := math.NaN()
	if err := old.LogBatch(ctx, a.ID, nil, []metadata.Metric{
		{Key: "k", Step: 1, Timestamp: 5, Value: 0.5},
		{Key: "k", Step: 2, Timestamp: 1, Value: nan}, // NaN is below every number at one step and time
		{Key: "k", Step: 2, Timestamp: 1, Value: 0.1, LoggedModel: lm.LMID},
		{Key: "j", Step: 0, Timestamp: 1, Value: 3},
		{Key: "j", Step: 0, Timestamp: 2, Value: 2},
	}, nil); err != nil {
		t.Fatal(err)
	}
	if err := old.LogBatch(ctx, b.ID, nil, []metadata.Metric{{Key: "k", Step: 3, Value: nan}}, nil); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkLatest(t, s, "after the backfill")
	latestOf := func(c uint64, key string) float64 {
		t.Helper()
		var v float64
		if err := s.pool.QueryRow(ctx, `SELECT value FROM latest_metrics WHERE candidate_id = $1 AND key = $2`, c, key).Scan(&v); err != nil {
			t.Fatalf("latest %q of %d: %v", key, c, err)
		}
		return v
	}
	if v := latestOf(a.ID, "k"); v != 0.1 {
		t.Errorf("latest k of a after the backfill: %v, want 0.1", v)
	}
	if v := latestOf(a.ID, "j"); v != 2 {
		t.Errorf("latest j of a after the backfill: %v, want 2", v)
	}
	if v := latestOf(b.ID, "k"); !math.IsNaN(v) {
		t.Errorf("latest k of b after the backfill: %v, want NaN", v)
	}
	var lmLatest float64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM latest_lm_metrics WHERE logged_model_id = $1 AND key = 'k'`, lm.ID).Scan(&lmLatest); err != nil || lmLatest != 0.1 {
		t.Errorf("latest k of the logged model after the backfill: %v, %v; want 0.1", lmLatest, err)
	}

	// The previous release's INSERT, one point per statement.
	insert := func(c uint64, key string, step int64, v float64) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, `INSERT INTO metrics (candidate_id, key, step, ts, value, logged_model, dataset_name,
			dataset_digest) VALUES ($1, $2, $3, 0, $4, NULL, '', '')`, c, key, step, v); err != nil {
			t.Fatal(err)
		}
	}
	insert(a.ID, "k", 1, 9) // an older step: not the latest
	if v := latestOf(a.ID, "k"); v != 0.1 {
		t.Errorf("latest k of a after an older point: %v, want 0.1", v)
	}
	insert(a.ID, "k", 7, 9)
	if v := latestOf(a.ID, "k"); v != 9 {
		t.Errorf("latest k of a after a newer point: %v, want 9", v)
	}
	insert(b.ID, "k", 3, -1) // same step and time as its NaN: the number wins
	if v := latestOf(b.ID, "k"); v != -1 {
		t.Errorf("latest k of b after a number beside its NaN: %v, want -1", v)
	}
	checkLatest(t, s, "after single inserts")

	prev, err := open(ctx, dsn, migrations[:9])
	if err != nil {
		t.Fatalf("the previous release's binary on the migrated schema: %v", err)
	}
	prev.Close()
}

// TestLatestMetricsFollowHistory logs random batches (repeated steps and times, NaN, ±0, infinities,
// duplicates inside and across batches) and checks that latest_metrics always holds what the whole
// history gives under MLflow's rule.
func TestLatestMetricsFollowHistory(t *testing.T) {
	s := openEmpty(t)
	defer s.Close()
	ctx := t.Context()
	p, err := s.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	var runs []uint64
	for i := range 3 {
		c := &metadata.Candidate{ModelID: m.ID, Name: "r" + strconv.Itoa(i)}
		if err := s.CreateCandidate(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, c.ID)
	}
	values := []float64{math.NaN(), 0, math.Copysign(0, -1), 1, -1, 2.5, math.Inf(1), math.Inf(-1)}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 40 {
		var batch []metadata.Metric
		for range rng.IntN(20) + 1 {
			batch = append(batch, metadata.Metric{Key: "k" + strconv.Itoa(rng.IntN(3)), Step: rng.Int64N(4),
				Timestamp: rng.Int64N(3), Value: values[rng.IntN(len(values))], DatasetName: "d" + strconv.Itoa(rng.IntN(2))})
		}
		if err := s.LogBatch(ctx, runs[rng.IntN(len(runs))], nil, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	checkLatest(t, s, "after random batches")
}

// checkLatest compares latest_metrics with the latest points computed from the whole history.
func checkLatest(t *testing.T, s *Store, when string) {
	t.Helper()
	ctx := t.Context()
	rows, err := s.pool.Query(ctx, `SELECT h.candidate_id, h.key, h.step, h.ts, h.value::text, l.step, l.ts, l.value::text
		FROM (SELECT DISTINCT ON (candidate_id, key) candidate_id, key, step, ts, value FROM metrics
			ORDER BY candidate_id, key, step DESC, ts DESC, (value = 'NaN'::float8), value DESC) h
		FULL JOIN latest_metrics l USING (candidate_id, key)`)
	if err != nil {
		t.Fatal(err)
	}
	type cmp struct {
		c                *int64
		k                *string
		hs, hts, ls, lts *int64
		hv, lv           *string
	}
	n := 0
	var x cmp
	_, err = pgx.ForEachRow(rows, []any{&x.c, &x.k, &x.hs, &x.hts, &x.hv, &x.ls, &x.lts, &x.lv}, func() error {
		n++
		if x.hs == nil || x.ls == nil || *x.hs != *x.ls || *x.hts != *x.lts || *x.hv != *x.lv {
			t.Errorf("%s: candidate %v key %v: history says %v/%v/%v, latest_metrics %v/%v/%v", when, deref(x.c), deref(x.k),
				deref(x.hs), deref(x.hts), deref(x.hv), deref(x.ls), deref(x.lts), deref(x.lv))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("%s: no metric at all", when)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestBatchedReadsEndTheirTransaction has reads sent as one batch (RunData, LoggedModelMetrics) stop
// part-way on a pool of one connection: each must end its transaction, or the next read would fail
// inside it.
func TestBatchedReadsEndTheirTransaction(t *testing.T) {
	s := openEmpty(t, WithMaxConns(1))
	defer s.Close()
	ctx := t.Context()
	p, err := s.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	c := &metadata.Candidate{ModelID: m.ID, Name: "c"}
	if err := s.CreateCandidate(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.LogBatch(ctx, c.ID, nil, []metadata.Metric{{Key: "k", Value: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.RunData(ctx, c.ID+1000); !errors.Is(err, metadata.ErrNotFound) {
			t.Fatalf("RunData of an unknown candidate: %v, want ErrNotFound", err)
		}
		if _, err := s.LoggedModelMetrics(ctx, c.ID+1000); !errors.Is(err, metadata.ErrNotFound) {
			t.Fatalf("LoggedModelMetrics of an unknown logged model: %v, want ErrNotFound", err)
		}
		rd, err := s.RunData(ctx, c.ID)
		if err != nil || len(rd.Metrics) != 1 || rd.Metrics[0].Value != 1 {
			t.Fatalf("RunData after a failed one: %+v, %v", rd, err)
		}
	}
}
