package runquery_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// fixture is a model with candidates named c00… (c000… from 100 on), started in name order, each with the params and
// metrics its spec gives.
type fixture struct {
	t     *testing.T
	store metadata.Store
	model *metadata.Model
	names map[uint64]string
}

type spec struct {
	params  map[string]string
	metrics map[string]float64
	deleted bool
}

func newFixture(t *testing.T, specs []spec) *fixture {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	ctx := context.Background()
	p, err := store.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := store.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, model: m, names: map[uint64]string{}}
	for i, sp := range specs {
		c := &metadata.Candidate{ModelID: m.ID, Name: fmt.Sprintf(nameFormat(len(specs)), i), StartTime: int64(1000 + i)}
		if err := store.CreateCandidate(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		f.names[c.ID] = c.Name
		var params []metadata.Param
		for k, v := range sp.params {
			params = append(params, metadata.Param{Key: k, Value: v})
		}
		var metrics []metadata.Metric
		for k, v := range sp.metrics {
			metrics = append(metrics, metadata.Metric{Key: k, Value: v, Timestamp: 1})
		}
		if err := store.LogBatch(ctx, c.ID, params, metrics, nil); err != nil {
			t.Fatal(err)
		}
		if sp.deleted {
			deleted := metadata.Deleted
			if _, err := store.UpdateCandidate(ctx, c.ID, metadata.CandidateUpdate{Lifecycle: &deleted}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return f
}

// nameFormat numbers names with as many digits as the largest index needs, so they sort like numbers.
func nameFormat(n int) string {
	return fmt.Sprintf("c%%0%dd", max(2, len(fmt.Sprint(n-1))))
}

func (f *fixture) query(order string, filter string, limit int) runquery.Query {
	f.t.Helper()
	q := runquery.Query{Scope: "test", Models: []*metadata.Model{f.model}, Limit: limit}
	var err error
	if q.Filter, err = mlflowfilter.ParseRunFilter(filter); err != nil {
		f.t.Fatal(err)
	}
	if order != "" {
		if q.Order, err = mlflowfilter.ParseRunOrderBy([]string{order}); err != nil {
			f.t.Fatal(err)
		}
	}
	return q
}

// all pages through q and returns the candidate names in order, failing on a repeated row.
func (f *fixture) all(e *runquery.Engine, q runquery.Query) (names []string, pages int) {
	f.t.Helper()
	seen := map[string]bool{}
	for tok := ""; ; pages++ {
		page, err := e.Search(context.Background(), q, tok)
		if err != nil {
			f.t.Fatalf("page %d: %v", pages+1, err)
		}
		for _, r := range page.Rows {
			if seen[r.Candidate.Name] {
				f.t.Fatalf("%s on two pages", r.Candidate.Name)
			}
			seen[r.Candidate.Name] = true
			if r.Data == nil || r.Model != f.model {
				f.t.Fatalf("row without data or model: %+v", r)
			}
			names = append(names, r.Candidate.Name)
		}
		if page.Next == "" {
			return names, pages + 1
		}
		if pages > 100 {
			f.t.Fatal("paging does not end")
		}
		tok = page.Next
	}
}

func TestOrderingsMissingLastNaNAfterNumbers(t *testing.T) {
	nan := math.NaN()
	f := newFixture(t, []spec{
		{metrics: map[string]float64{"acc": 0.5}, params: map[string]string{"bs": "64"}},
		{metrics: map[string]float64{"acc": nan}, params: map[string]string{"bs": "128"}},
		{params: map[string]string{"bs": "x"}},
		{metrics: map[string]float64{"acc": 0.9}},
		{metrics: map[string]float64{"acc": 0.1}, params: map[string]string{"bs": "8"}, deleted: true},
	})
	e := &runquery.Engine{Store: f.store}
	for _, tc := range []struct {
		order   string
		numeric bool
		want    []string
	}{
		{"", false, []string{"c03", "c02", "c01", "c00"}}, // newest start first, deleted left out
		{"metrics.acc ASC", false, []string{"c00", "c03", "c01", "c02"}},
		{"metrics.acc DESC", false, []string{"c03", "c00", "c01", "c02"}},
		{"params.bs ASC", false, []string{"c01", "c00", "c02", "c03"}}, // as strings: "128" < "64" < "x"
		{"params.bs ASC", true, []string{"c00", "c01", "c02", "c03"}},  // numbers first, by value
		{"params.bs DESC", true, []string{"c02", "c01", "c00", "c03"}},
		{"attributes.start_time ASC", false, []string{"c00", "c01", "c02", "c03"}},
		{"attributes.run_name DESC", false, []string{"c03", "c02", "c01", "c00"}},
	} {
		q := f.query(tc.order, "", 2)
		q.NumericParams = tc.numeric
		got, pages := f.all(e, q)
		if !slices.Equal(got, tc.want) || pages != 2 {
			t.Errorf("order %q numeric %v: %v in %d pages, want %v in 2", tc.order, tc.numeric, got, pages, tc.want)
		}
	}
	q := f.query("metrics.acc ASC", "", 10)
	q.View = metadata.AllLifecycles
	if got, _ := f.all(e, q); !slices.Equal(got, []string{"c04", "c00", "c03", "c01", "c02"}) {
		t.Errorf("all lifecycles: %v", got)
	}
}

func TestFilterScanBudgetEndsPagesEarly(t *testing.T) {
	specs := make([]spec, 250)
	for i := range specs {
		specs[i] = spec{metrics: map[string]float64{"acc": float64(i)}}
	}
	f := newFixture(t, specs)
	// Only the three oldest match, so they come last in index order. With a scan budget of 100 the
	// first pages come back empty with a token to go on, and paging still finds all three once.
	e := &runquery.Engine{Store: f.store, ScanBudget: 100}
	first, err := e.Search(context.Background(), f.query("", "metrics.acc < 3", 10), "")
	if err != nil || len(first.Rows) != 0 || first.Next == "" {
		t.Fatalf("first page: %d rows, next %q, %v; want an empty page with a token", len(first.Rows), first.Next, err)
	}
	got, pages := f.all(e, f.query("", "metrics.acc < 3", 10))
	if !slices.Equal(got, []string{"c002", "c001", "c000"}) || pages != 3 {
		t.Fatalf("%v in %d pages, want c002 c001 c000 in 3", got, pages)
	}
}

func TestSortLimitBoundsEveryScope(t *testing.T) {
	specs := make([]spec, 6)
	for i := range specs {
		specs[i] = spec{params: map[string]string{"lr": fmt.Sprint(i)}, metrics: map[string]float64{"acc": float64(i)}}
	}
	f := newFixture(t, specs)
	e := &runquery.Engine{Store: f.store, SortLimit: 5}
	for _, scope := range []string{"runs/search", "ui"} {
		q := f.query("params.lr ASC", "", 2)
		q.Scope = scope
		if _, err := e.Search(context.Background(), q, ""); !errors.Is(err, httpapi.ErrBadRequest) {
			t.Errorf("%s: sorting 6 runs in memory under a limit of 5: %v, want ErrBadRequest", scope, err)
		}
		// A filter that leaves fewer runs than the limit is fine, and so is an indexed order.
		q.Filter, _ = mlflowfilter.ParseRunFilter("metrics.acc < 3")
		if _, err := e.Search(context.Background(), q, ""); err != nil {
			t.Errorf("%s: filtered to 3: %v", scope, err)
		}
		iq := f.query("metrics.acc DESC", "", 2)
		iq.Scope = scope
		if got, _ := f.all(e, iq); len(got) != 6 {
			t.Errorf("%s: indexed order: %v", scope, got)
		}
	}
}

func TestTokensBelongToTheirQuery(t *testing.T) {
	f := newFixture(t, []spec{{}, {}, {}})
	e := &runquery.Engine{Store: f.store}
	for _, order := range []string{"", "params.x ASC"} {
		first, err := e.Search(context.Background(), f.query(order, "", 1), "")
		if err != nil || first.Next == "" {
			t.Fatalf("%q: first page %+v, %v", order, first, err)
		}
		for name, other := range map[string]runquery.Query{
			"scope":  func() runquery.Query { q := f.query(order, "", 1); q.Scope = "other"; return q }(),
			"filter": f.query(order, "attributes.run_name != 'x'", 1),
			"view":   func() runquery.Query { q := f.query(order, "", 1); q.View = metadata.AllLifecycles; return q }(),
			"order":  f.query("attributes.run_name ASC", "", 1),
		} {
			if _, err := e.Search(context.Background(), other, first.Next); !errors.Is(err, httpapi.ErrBadRequest) {
				t.Errorf("%q: token used with another %s: %v", order, name, err)
			}
		}
		// The page size is not part of the query: a token works with another limit.
		if _, err := e.Search(context.Background(), f.query(order, "", 2), first.Next); err != nil {
			t.Errorf("%q: token with another limit: %v", order, err)
		}
	}
}

func TestSortedPagesReportTheirPlace(t *testing.T) {
	f := newFixture(t, []spec{{}, {}, {}, {}, {}})
	e := &runquery.Engine{Store: f.store}
	q := f.query("attributes.run_name ASC", "", 2)
	q.Attribute = nil
	p1, err := e.Search(context.Background(), q, "")
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.Search(context.Background(), q, p1.Next)
	if err != nil {
		t.Fatal(err)
	}
	if p1.Offset != 0 || p1.Total != 5 || p2.Offset != 2 || p2.Total != 5 {
		t.Errorf("places %d/%d and %d/%d, want 0/5 and 2/5", p1.Offset, p1.Total, p2.Offset, p2.Total)
	}
	idx, err := e.Search(context.Background(), f.query("", "", 2), "")
	if err != nil || idx.Total != -1 {
		t.Errorf("an indexed page knows no total: %d, %v", idx.Total, err)
	}
}

func TestAttributeHookOrdersUnknownKeys(t *testing.T) {
	f := newFixture(t, []spec{{}, {}, {}})
	versions := map[string]string{"c00": "2.0.0", "c02": "1.0.0"} // c01 has none: missing, last
	e := &runquery.Engine{Store: f.store}
	q := runquery.Query{Scope: "test", Models: []*metadata.Model{f.model}, Limit: 10,
		Order: []mlflowfilter.OrderBy{{Entity: mlflowfilter.Attribute, Key: "version"}},
		Attribute: func(key string, _ *metadata.Model, c *metadata.Candidate) (runquery.Value, bool) {
			v, ok := versions[c.Name]
			return runquery.Text(v), ok && key == "version"
		}}
	if got, _ := f.all(e, q); !slices.Equal(got, []string{"c02", "c00", "c01"}) {
		t.Errorf("by version: %v", got)
	}
}
