package runquery_test

import (
	"context"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

// perRowStore hides the store's metadata.BulkReader, so the engine falls back to per-row reads, and counts
// them.
type perRowStore struct {
	metadata.Store
	runData atomic.Int64
}

func (s *perRowStore) RunData(ctx context.Context, id uint64) (*metadata.RunData, error) {
	s.runData.Add(1)
	return s.Store.RunData(ctx, id)
}

// bulkStore counts the bulk reads and the per-row reads.
type bulkStore struct {
	perRowStore
	bulk atomic.Int64
}

func (s *bulkStore) RunDataOf(ctx context.Context, ids []uint64) (map[uint64]*metadata.RunData, error) {
	s.bulk.Add(1)
	return s.Store.(metadata.BulkReader).RunDataOf(ctx, ids)
}

func (s *bulkStore) LoggedModelMetricsOf(ctx context.Context, ids []uint64) (map[uint64][]metadata.Metric, error) {
	return s.Store.(metadata.BulkReader).LoggedModelMetricsOf(ctx, ids)
}

func (s *bulkStore) VersionsBackedByAny(ctx context.Context, ids []uint64) (map[uint64][]*metadata.Version, error) {
	return s.Store.(metadata.BulkReader).VersionsBackedByAny(ctx, ids)
}

// Pages are the same whether the store reads run data in bulk or row by row; with bulk reads a page
// costs no per-row read, and without them the engine reads no more rows than before (a page of 5 in
// index order reads 5).
func TestBulkReadsGiveThePerRowPages(t *testing.T) {
	var specs []spec
	for i := range 40 {
		sp := spec{metrics: map[string]float64{"acc": float64(i % 7)}, params: map[string]string{"bs": string(rune('a' + i%5))}}
		if i%6 == 0 {
			sp.metrics = nil
		}
		specs = append(specs, sp)
	}
	f := newFixture(t, specs)
	perRow := &perRowStore{Store: f.store}
	bulk := &bulkStore{perRowStore: perRowStore{Store: f.store}}
	for _, c := range []struct{ order, filter string }{
		{"", ""},
		{"metrics.acc DESC", ""},
		{"metrics.acc", "metrics.acc > 2"},
		{"", "params.bs = 'c'"},
		{"params.bs", ""},
		{"params.bs DESC", "metrics.acc < 5 AND attributes.run_name != 'c03'"},
	} {
		q := f.query(c.order, c.filter, 5)
		var pages [2][]runquery.Page[runquery.Row]
		for i, st := range []metadata.Store{perRow, bulk} {
			e := &runquery.Engine{Store: st}
			for tok := ""; ; {
				p, err := e.Search(context.Background(), q, tok)
				if err != nil {
					t.Fatalf("%+v: %v", c, err)
				}
				pages[i] = append(pages[i], p)
				if tok = p.Next; tok == "" || len(pages[i]) > 50 {
					break
				}
			}
		}
		if !reflect.DeepEqual(pages[0], pages[1]) {
			t.Errorf("%+v: per-row and bulk pages differ:\n%+v\n%+v", c, pages[0], pages[1])
		}
	}
	if n := bulk.runData.Load(); n != 0 || bulk.bulk.Load() == 0 {
		t.Errorf("with bulk reads: %d per-row reads, %d bulk reads; want 0 and some", n, bulk.bulk.Load())
	}
	perRow.runData.Store(0)
	if _, err := (&runquery.Engine{Store: perRow}).Search(context.Background(), f.query("", "", 5), ""); err != nil {
		t.Fatal(err)
	}
	if n := perRow.runData.Load(); n != 5 {
		t.Errorf("a page of 5 read %d runs' data row by row, want 5", n)
	}
}
