package storetest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

// BenchRuns is how many runs Bench seeds for its searches.
const BenchRuns = 10_000

// Bench measures the calls the MLflow benchmarks time through HTTP, at the store's level, so that stores
// compare without the gateway: a one-point LogBatch (log-metric), a 1000-point LogBatch (log-batch), the
// first page of 100 of SearchCandidates by a metric over BenchRuns runs, and RunData (which a search page
// reads once per row). newStore returns a new, empty store; Bench closes it. An implementation runs it
// from its own tests:
//
//	func BenchmarkStore(b *testing.B) { storetest.Bench(b, func(b *testing.B) metadata.Store { return newEmptyStore(b) }) }
func Bench(b *testing.B, newStore func(b *testing.B) metadata.Store) {
	ctx := context.Background()
	s := newStore(b)
	defer func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close: %v", err)
		}
	}()
	p, err := s.EnsureProject(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "bench"}
	if err := s.CreateModel(ctx, m); err != nil {
		b.Fatal(err)
	}
	run := &metadata.Candidate{ModelID: m.ID, Name: "logging"}
	if err := s.CreateCandidate(ctx, run, nil); err != nil {
		b.Fatal(err)
	}
	// Seeded in transactions of 500 runs: one commit per run would make the setup of a store that syncs
	// each commit take minutes.
	rng := rand.New(rand.NewPCG(1, 2))
	accs := make([]float64, BenchRuns)
	for i := range accs {
		accs[i] = rng.Float64()
	}
	for lo := 0; lo < BenchRuns; lo += 500 {
		err := s.Update(ctx, func(ctx context.Context) error {
			for i := lo; i < min(lo+500, BenchRuns); i++ {
				c := &metadata.Candidate{ModelID: m.ID, Name: "run-" + strconv.Itoa(i), StartTime: int64(i + 1)}
				if err := s.CreateCandidate(ctx, c, nil); err != nil {
					return err
				}
				if err := s.LogBatch(ctx, c.ID, []metadata.Param{{Key: "lr", Value: "0.01"}},
					[]metadata.Metric{{Key: "acc", Value: accs[i]}}, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatalf("seeding: %v", err)
		}
	}

	step := int64(0)
	b.Run("LogMetric", func(b *testing.B) {
		for b.Loop() {
			step++
			if err := s.LogBatch(ctx, run.ID, nil, []metadata.Metric{{Key: "loss", Value: 1 / float64(step), Step: step}}, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("LogBatch1000", func(b *testing.B) {
		ms := make([]metadata.Metric, 1000)
		for b.Loop() {
			for i := range ms {
				step++
				ms[i] = metadata.Metric{Key: "batch", Value: float64(i), Step: step}
			}
			if err := s.LogBatch(ctx, run.ID, nil, ms, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	var page []*metadata.Candidate
	b.Run("SearchCandidatesByMetric", func(b *testing.B) {
		q := metadata.CandidateQuery{ModelIDs: []uint64{m.ID}, OrderByMetric: &metadata.MetricOrder{Key: "acc", Desc: true},
			Page: metadata.Page{Limit: 100}}
		for b.Loop() {
			cs, next, err := s.SearchCandidates(ctx, q)
			if err != nil || len(cs) != 100 || next == "" {
				b.Fatalf("SearchCandidates: %d candidates, next %q, %v", len(cs), next, err)
			}
			page = cs
		}
	})
	b.Run("RunData", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, err := s.RunData(ctx, page[i%len(page)].ID); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
