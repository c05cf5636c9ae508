package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/mlgate/mlgate/metadata"
)

// Concurrent writes (the Store comment's "Concurrent writes"): a store may commit them together, but each
// keeps its own outcome. Writers start together from a barrier so that their writes overlap.

// burst runs fn(i) for i in [0, n) on n goroutines released at once, and waits for all of them.
func burst(n int, fn func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

// runs creates n candidates of one model.
func (f *fx) runs(n int) []*metadata.Candidate {
	f.Helper()
	p := f.project("p")
	m := f.model(p.ID, "m", "")
	out := make([]*metadata.Candidate, n)
	for i := range out {
		out[i] = f.candidate(m, metadata.Candidate{})
	}
	return out
}

// history returns a run's points of a metric, in step order.
func (f *fx) history(candID uint64, key string) []metadata.Metric {
	f.Helper()
	points, _, err := f.s.MetricHistory(f.ctx, candID, key, metadata.Page{Limit: 10000})
	if err != nil {
		f.Fatalf("MetricHistory: %v", err)
	}
	return points
}

var concurrencyTests = []test{
	{"ConcurrentWritersAreAllVisibleInTheirOrder", func(f *fx) {
		const writers, calls = 16, 25
		cands := f.runs(writers)
		errs := make([][]error, writers)
		burst(writers, func(w int) {
			c := cands[w]
			for i := range calls {
				err := f.s.LogBatch(f.ctx, c.ID, params{{Key: fmt.Sprint("p", i), Value: "v"}},
					metrics{{Key: "loss", Value: float64(i), Timestamp: 1, Step: int64(i)}}, tags{{Key: "last", Value: fmt.Sprint(i)}})
				errs[w] = append(errs[w], err)
				name := fmt.Sprint("name-", i)
				_, err = f.s.UpdateCandidate(f.ctx, c.ID, metadata.CandidateUpdate{Name: &name})
				errs[w] = append(errs[w], err)
			}
		})
		for w, c := range cands {
			for _, err := range errs[w] {
				f.wantErr(fmt.Sprint("writer ", w), err, nil)
			}
			if n := len(f.history(c.ID, "loss")); n != calls {
				f.Errorf("writer %d: %d points, want %d", w, n, calls)
			}
			rd := f.runData(c.ID)
			if len(rd.Params) != calls || len(rd.Tags) != 1 || rd.Tags[0].Value != fmt.Sprint(calls-1) ||
				len(rd.Metrics) != 1 || rd.Metrics[0].Step != calls-1 {
				f.Errorf("writer %d: %d params, tags %+v, latest %+v; want %d params and the last tag and point",
					w, len(rd.Params), rd.Tags, rd.Metrics, calls)
			}
			got, err := f.s.Candidate(f.ctx, metadata.CandidateRef{ID: c.ID})
			if err != nil || got.Name != fmt.Sprint("name-", calls-1) {
				f.Errorf("writer %d: candidate %+v, %v; want its last name", w, got, err)
			}
		}
	}},
	{"AFailingWriteInABurstFailsAlone", func(f *fx) {
		// Even writers log good points; odd ones send writes that fail after part of their work is done
		// (a batch whose second param conflicts, an Update that aborts after writing), and good ones.
		const writers, calls = 16, 20
		cands := f.runs(writers)
		for _, c := range cands {
			f.log(c.ID, params{{Key: "fixed", Value: "1"}}, nil, nil)
		}
		errs := make([][]error, writers)
		burst(writers, func(w int) {
			c := cands[w]
			for i := range calls {
				var err error
				switch {
				case w%2 == 0 || i%3 == 0:
					err = f.s.LogBatch(f.ctx, c.ID, nil, metrics{{Key: "good", Value: 1, Timestamp: 1, Step: int64(i)}}, nil)
				case i%3 == 1:
					err = f.s.LogBatch(f.ctx, c.ID, params{{Key: fmt.Sprint("new", i), Value: "1"}, {Key: "fixed", Value: "2"}},
						metrics{{Key: "bad", Value: 1, Timestamp: 1, Step: int64(i)}}, tags{{Key: "bad", Value: "1"}})
					if errors.Is(err, metadata.ErrInvalid) {
						err = nil
					} else {
						err = fmt.Errorf("conflicting batch: %v, want ErrInvalid", err)
					}
				default:
					err = f.s.Update(f.ctx, func(ctx context.Context) error {
						if err := f.s.LogBatch(ctx, c.ID, nil, metrics{{Key: "bad", Value: 2, Timestamp: 1, Step: int64(i)}}, nil); err != nil {
							return err
						}
						return errAbort
					})
					if errors.Is(err, errAbort) {
						err = nil
					} else {
						err = fmt.Errorf("aborted Update: %v, want errAbort", err)
					}
				}
				errs[w] = append(errs[w], err)
			}
		})
		for w, c := range cands {
			for _, err := range errs[w] {
				f.wantErr(fmt.Sprint("writer ", w), err, nil)
			}
			want := calls
			if w%2 == 1 {
				want = (calls + 2) / 3
			}
			if n := len(f.history(c.ID, "good")); n != want {
				f.Errorf("writer %d: %d good points, want %d", w, n, want)
			}
			if bad := f.history(c.ID, "bad"); len(bad) != 0 {
				f.Errorf("writer %d: points of failed writes are stored: %+v", w, bad)
			}
			if rd := f.runData(c.ID); len(rd.Params) != 1 || len(rd.Tags) != 0 {
				f.Errorf("writer %d: params %+v, tags %+v; want only the first param", w, rd.Params, rd.Tags)
			}
		}
	}},
	{"WritesBesideCanceledOnesAreKept", func(f *fx) {
		// Half the writers' requests go away at once, in the middle of their writes. Those writes may be
		// dropped or kept; every write answered nil is stored, and the other writers see no failure.
		const writers, calls = 16, 30
		cands := f.runs(writers)
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		acked := make([][]int64, writers)
		errs := make([][]error, writers)
		burst(writers, func(w int) {
			wctx := f.ctx
			if w%2 == 1 {
				wctx = ctx
			}
			for i := range calls {
				if w == 1 && i == calls/2 {
					cancel()
				}
				err := f.s.LogBatch(wctx, cands[w].ID, nil, metrics{{Key: "loss", Value: 1, Timestamp: 1, Step: int64(i)}}, nil)
				switch {
				case err == nil:
					acked[w] = append(acked[w], int64(i))
				case w%2 == 0 || !errors.Is(err, context.Canceled):
					errs[w] = append(errs[w], err)
				}
			}
		})
		for w, c := range cands {
			for _, err := range errs[w] {
				f.Errorf("writer %d: %v", w, err)
			}
			if w%2 == 0 && len(acked[w]) != calls {
				f.Errorf("writer %d, not canceled: %d of %d writes answered nil", w, len(acked[w]), calls)
			}
			stored := map[int64]bool{}
			for _, p := range f.history(c.ID, "loss") {
				stored[p.Step] = true
			}
			for _, step := range acked[w] {
				if !stored[step] {
					f.Errorf("writer %d: step %d was answered nil but is not stored", w, step)
				}
			}
		}
	}},
}
