package runquery_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// lmFixture is a model with one run that logged the logged models lm0, lm1, … (created in that order, a
// second apart), with points on the datasets eval@e1 and train@t1.
type lmFixture struct {
	t      *testing.T
	store  metadata.Store
	model  *metadata.Model
	run    *metadata.Candidate
	byName map[string]*metadata.LoggedModel
}

type lmSpec struct {
	name, modelType string
	params          map[string]string
	tags            map[string]string
	points          []metadata.Metric // LoggedModel is filled in
	ready           bool
}

func newLMFixture(t *testing.T, specs []lmSpec) *lmFixture {
	t.Helper()
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return start }
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"), boltstore.WithClock(func() time.Time { return clock() }))
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
	run := &metadata.Candidate{ModelID: m.ID, Name: "run"}
	if err := store.CreateCandidate(ctx, run, nil); err != nil {
		t.Fatal(err)
	}
	f := &lmFixture{t: t, store: store, model: m, run: run, byName: map[string]*metadata.LoggedModel{}}
	for i, sp := range specs {
		now := start.Add(time.Duration(i) * time.Second)
		clock = func() time.Time { return now }
		lm := &metadata.LoggedModel{ModelID: m.ID, Name: sp.name, ModelType: sp.modelType, SourceRunID: run.ID}
		for k, v := range sp.params {
			lm.Params = append(lm.Params, metadata.Param{Key: k, Value: v})
		}
		for k, v := range sp.tags {
			lm.Tags = append(lm.Tags, metadata.Tag{Key: k, Value: v})
		}
		if err := store.CreateLoggedModel(ctx, lm); err != nil {
			t.Fatal(err)
		}
		if sp.ready {
			ready := metadata.LoggedModelReady
			if _, err := store.UpdateLoggedModel(ctx, lm.ID, metadata.LoggedModelUpdate{Status: &ready}); err != nil {
				t.Fatal(err)
			}
		}
		points := slices.Clone(sp.points)
		for j := range points {
			points[j].LoggedModel = lm.LMID
		}
		if err := store.LogBatch(ctx, run.ID, nil, points, nil); err != nil {
			t.Fatal(err)
		}
		f.byName[sp.name] = lm
	}
	return f
}

func eval(key string, v float64, step int64) metadata.Metric {
	return metadata.Metric{Key: key, Value: v, Timestamp: 1, Step: step, DatasetName: "eval", DatasetDigest: "e1"}
}

func train(key string, v float64, step int64) metadata.Metric {
	return metadata.Metric{Key: key, Value: v, Timestamp: 1, Step: step, DatasetName: "train", DatasetDigest: "t1"}
}

// search pages through q (page size 2) and returns the names in order.
func (f *lmFixture) search(q runquery.LoggedModelQuery) []string {
	f.t.Helper()
	e := &runquery.Engine{Store: f.store}
	q.Models = []*metadata.Model{f.model}
	if q.Limit == 0 {
		q.Limit = 2
	}
	var names []string
	seen := map[string]bool{}
	for tok, pages := "", 0; ; pages++ {
		page, err := e.SearchLoggedModels(context.Background(), q, tok)
		if err != nil {
			f.t.Fatalf("page %d: %v", pages+1, err)
		}
		for _, r := range page.Rows {
			if seen[r.LoggedModel.Name] || r.Model != f.model {
				f.t.Fatalf("row %s repeated or without its model", r.LoggedModel.Name)
			}
			seen[r.LoggedModel.Name] = true
			names = append(names, r.LoggedModel.Name)
		}
		if page.Next == "" {
			return names
		}
		if pages > 50 {
			f.t.Fatal("paging does not end")
		}
		tok = page.Next
	}
}

func lmQuery(t *testing.T, filter string, order ...string) runquery.LoggedModelQuery {
	t.Helper()
	q := runquery.LoggedModelQuery{Query: runquery.Query{Scope: "logged-models/search"}}
	var err error
	if q.Filter, err = mlflowfilter.ParseLoggedModelFilter(filter); err != nil {
		t.Fatal(err)
	}
	for _, o := range order {
		desc := false
		if o[0] == '-' {
			o, desc = o[1:], true
		}
		ob, err := mlflowfilter.ParseLoggedModelOrderKey(o)
		if err != nil {
			t.Fatal(err)
		}
		ob.Desc = desc
		q.Order = append(q.Order, ob)
	}
	return q
}

func TestLoggedModelSearch(t *testing.T) {
	f := newLMFixture(t, []lmSpec{
		{name: "lm0", modelType: "agent", params: map[string]string{"lr": "0.1"}, tags: map[string]string{"stage": "dev"},
			points: []metadata.Metric{eval("acc", 0.9, 0), train("acc", 0.2, 0)}, ready: true},
		{name: "lm1", params: map[string]string{"lr": "0.01"}, tags: map[string]string{"stage": "candidate"},
			points: []metadata.Metric{eval("acc", 0.6, 0), train("acc", 0.95, 0)}, ready: true},
		{name: "lm2", params: map[string]string{"lr": "0.5"},
			points: []metadata.Metric{eval("acc", 0.3, 0), eval("acc", 0.75, 1)}},
		{name: "lm3"},
	})
	for _, tc := range []struct {
		what  string
		q     runquery.LoggedModelQuery
		names []string
	}{
		{"newest first", lmQuery(t, ""), []string{"lm3", "lm2", "lm1", "lm0"}},
		{"creation order", lmQuery(t, "", "creation_timestamp"), []string{"lm0", "lm1", "lm2", "lm3"}},
		{"name", lmQuery(t, "name = 'lm1'"), []string{"lm1"}},
		{"name like", lmQuery(t, "name LIKE 'lm%' AND name != 'lm0'", "name"), []string{"lm1", "lm2", "lm3"}},
		{"status", lmQuery(t, "status = 'LOGGED_MODEL_READY'"), []string{"lm1", "lm0"}},
		{"model type", lmQuery(t, "model_type = 'agent'"), []string{"lm0"}},
		{"source run", lmQuery(t, "source_run_id = '"+f.run.EID.String()+"'"), []string{"lm3", "lm2", "lm1", "lm0"}},
		{"params", lmQuery(t, "params.lr = '0.01'"), []string{"lm1"}},
		{"tags", lmQuery(t, "tags.stage = 'candidate'"), []string{"lm1"}},
		// With no dataset restriction a metric is its latest point over all datasets: lm1's is train's
		// 0.95 or eval's 0.6 at the same step and time, the larger value deciding.
		{"latest point", lmQuery(t, "metrics.acc > 0.7", "-metrics.acc"), []string{"lm1", "lm0", "lm2"}},
		{"metric ascending, missing last", lmQuery(t, "", "metrics.acc"), []string{"lm2", "lm0", "lm1", "lm3"}},
		{"creation time alias", lmQuery(t, "creation_time > 0", "creation_time"), []string{"lm0", "lm1", "lm2", "lm3"}},
		{"timestamp attribute", lmQuery(t, "creation_timestamp >= "+strconv.FormatInt(f.byName["lm2"].CreatedAt.UnixMilli(), 10)), []string{"lm3", "lm2"}},
	} {
		if got := f.search(tc.q); !slices.Equal(got, tc.names) {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.names)
		}
	}

	// A dataset restriction makes filters see only that dataset's points.
	q := lmQuery(t, "metrics.acc >= 0.7")
	q.Datasets = []runquery.Dataset{{Name: "eval", Digest: "e1"}}
	if got := f.search(q); !slices.Equal(got, []string{"lm2", "lm0"}) {
		t.Errorf("eval only: %v", got)
	}
	q.Datasets = []runquery.Dataset{{Name: "train", Digest: "t1"}}
	if got := f.search(q); !slices.Equal(got, []string{"lm1"}) {
		t.Errorf("train only: %v", got)
	}
	// A name without its digest matches only points logged without a digest, as MLflow's server does.
	q.Datasets = []runquery.Dataset{{Name: "eval"}}
	if got := f.search(q); len(got) != 0 {
		t.Errorf("eval without a digest: %v, want none", got)
	}
	q.Datasets = []runquery.Dataset{{Name: "eval", Digest: "e1"}, {Name: "train", Digest: "t1"}}
	if got := f.search(q); !slices.Equal(got, []string{"lm2", "lm1", "lm0"}) {
		t.Errorf("either dataset: %v", got)
	}

	// An order clause's dataset decides that clause.
	q = lmQuery(t, "", "-metrics.acc")
	q.OrderDatasets = []runquery.Dataset{{Name: "train", Digest: "t1"}}
	if got := f.search(q); !slices.Equal(got, []string{"lm1", "lm0", "lm3", "lm2"}) { // missing last, newest first
		t.Errorf("ordered on train: %v", got)
	}
	q.OrderDatasets = []runquery.Dataset{{Name: "eval", Digest: "e1"}}
	if got := f.search(q); !slices.Equal(got, []string{"lm0", "lm2", "lm1", "lm3"}) {
		t.Errorf("ordered on eval: %v", got)
	}

	// A token is bound to its query, datasets included.
	e := &runquery.Engine{Store: f.store}
	q = lmQuery(t, "")
	q.Models, q.Limit = []*metadata.Model{f.model}, 1
	first, err := e.SearchLoggedModels(context.Background(), q, "")
	if err != nil || first.Next == "" {
		t.Fatalf("first page: %v, next %q", err, first.Next)
	}
	q.Datasets = []runquery.Dataset{{Name: "eval", Digest: "e1"}}
	if _, err := e.SearchLoggedModels(context.Background(), q, first.Next); !errors.Is(err, httpapi.ErrBadRequest) {
		t.Errorf("token of another query: %v, want ErrBadRequest", err)
	}
}
