package storetest

import (
	"fmt"
	"math"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

// searchNames pages through a search with several limits, checks that they agree, and returns the
// candidates' names in order.
func (f *fx) searchNames(q metadata.CandidateQuery) string {
	f.Helper()
	var first string
	for i, limit := range []int{0, 1, 2, 3} {
		all, _ := pageAll(f, limit, func(pg metadata.Page) ([]*metadata.Candidate, string, error) {
			q.Page = pg
			return f.s.SearchCandidates(f.ctx, q)
		})
		var names []string
		for _, c := range all {
			names = append(names, c.Name)
		}
		got := strings.Join(names, ",")
		if i == 0 {
			first = got
		} else if got != first {
			f.Errorf("limit %d: %s, but unlimited: %s", limit, got, first)
		}
	}
	return first
}

var searchTests = []test{
	{"DefaultOrderAndViews", func(f *fx) {
		p := f.project("p")
		m1, m2, m3 := f.model(p.ID, "m1", ""), f.model(p.ID, "m2", ""), f.model(p.ID, "m3", "")
		f.candidate(m1, metadata.Candidate{Name: "a", StartTime: 100})
		f.candidate(m2, metadata.Candidate{Name: "b", StartTime: 400})
		c := f.candidate(m1, metadata.Candidate{Name: "c", StartTime: 300})
		f.candidate(m2, metadata.Candidate{Name: "d", StartTime: 300})
		f.candidate(m1, metadata.Candidate{Name: "e", StartTime: -50})
		f.candidate(m3, metadata.Candidate{Name: "x", StartTime: 350})
		f.updateCandidate(c.ID, metadata.CandidateUpdate{Lifecycle: ptr(metadata.Deleted)})
		both := []uint64{m2.ID, m1.ID, m2.ID} // order and duplicates do not matter
		for _, tc := range []struct {
			view metadata.ViewType
			want string
		}{
			{metadata.ActiveOnly, "b,d,a,e"},
			{metadata.DeletedOnly, "c"},
			{metadata.AllLifecycles, "b,d,c,a,e"}, // equal start times: newest candidate first
		} {
			if got := f.searchNames(metadata.CandidateQuery{ModelIDs: both, View: tc.view}); got != tc.want {
				f.Errorf("view %d: %s, want %s", tc.view, got, tc.want)
			}
		}
		if got := f.searchNames(metadata.CandidateQuery{ModelIDs: []uint64{m3.ID}}); got != "x" {
			f.Errorf("m3: %s", got)
		}
		empty := f.model(p.ID, "empty", "")
		list, next, err := f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: []uint64{empty.ID}})
		if err != nil || len(list) != 0 || next != "" {
			f.Errorf("empty model: %d, %q, %v", len(list), next, err)
		}
	}},
	{"MetricOrder", func(f *fx) {
		p := f.project("p")
		m1, m2 := f.model(p.ID, "m1", ""), f.model(p.ID, "m2", "")
		logLoss := func(m *metadata.Model, name string, start int64, values ...float64) *metadata.Candidate {
			c := f.candidate(m, metadata.Candidate{Name: name, StartTime: start})
			for i, v := range values {
				f.log(c.ID, nil, []metadata.Metric{{Key: "loss", Value: v, Step: int64(i)}}, nil)
			}
			return c
		}
		logLoss(m1, "three", 1, 9, 3) // latest is 3, not the 9 logged first
		logLoss(m1, "one", 2, 1)
		logLoss(m1, "nan", 3, 0, math.NaN())
		logLoss(m1, "none_old", 4)
		logLoss(m2, "two", 5, 2)
		logLoss(m2, "minus_inf", 6, math.Inf(-1))
		logLoss(m2, "none_new", 7)
		gone := logLoss(m2, "deleted", 8, 0)
		other := f.candidate(m1, metadata.Candidate{Name: "lossy", StartTime: 9})
		f.log(other.ID, nil, []metadata.Metric{{Key: "loss_total", Value: -1}}, nil) // a key extending "loss"
		f.updateCandidate(gone.ID, metadata.CandidateUpdate{Lifecycle: ptr(metadata.Deleted)})
		models := []uint64{m1.ID, m2.ID}
		asc := f.searchNames(metadata.CandidateQuery{ModelIDs: models, OrderByMetric: &metadata.MetricOrder{Key: "loss"}})
		if want := "minus_inf,one,two,three,nan,lossy,none_new,none_old"; asc != want {
			f.Errorf("ascending: %s, want %s", asc, want)
		}
		desc := f.searchNames(metadata.CandidateQuery{ModelIDs: models, OrderByMetric: &metadata.MetricOrder{Key: "loss", Desc: true}})
		if want := "three,two,one,minus_inf,nan,lossy,none_new,none_old"; desc != want {
			f.Errorf("descending: %s, want %s", desc, want)
		}
		all := f.searchNames(metadata.CandidateQuery{ModelIDs: models, View: metadata.AllLifecycles, OrderByMetric: &metadata.MetricOrder{Key: "loss"}})
		if want := "minus_inf,deleted,one,two,three,nan,lossy,none_new,none_old"; all != want {
			f.Errorf("ascending, all: %s, want %s", all, want)
		}
		if got := f.searchNames(metadata.CandidateQuery{ModelIDs: models, OrderByMetric: &metadata.MetricOrder{Key: "nobody"}}); got != "lossy,none_new,minus_inf,two,none_old,nan,one,three" {
			f.Errorf("by an unlogged metric: %s, want newest first", got)
		}
	}},
	{"Errors", func(f *fx) {
		p := f.project("p")
		m, n := f.model(p.ID, "m", ""), f.model(p.ID, "n", "")
		for i := range 3 {
			f.candidate(m, metadata.Candidate{Name: fmt.Sprint(i)})
		}
		_, _, err := f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{})
		f.wantErr("no models", err, metadata.ErrInvalid)
		_, _, err = f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: []uint64{m.ID, 999}})
		f.wantErr("unknown model", err, metadata.ErrNotFound)
		_, _, err = f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: []uint64{m.ID}, View: 9})
		f.wantErr("bad view", err, metadata.ErrInvalid)
		_, _, err = f.s.SearchCandidates(f.ctx, metadata.CandidateQuery{ModelIDs: []uint64{m.ID}, OrderByMetric: &metadata.MetricOrder{Key: "a\x00b"}})
		f.wantErr("bad metric key", err, metadata.ErrInvalid)
		q := metadata.CandidateQuery{ModelIDs: []uint64{m.ID}, Page: metadata.Page{Limit: 1}}
		_, tok, err := f.s.SearchCandidates(f.ctx, q)
		if err != nil || tok == "" {
			f.Fatalf("first page: %q, %v", tok, err)
		}
		for name, other := range map[string]metadata.CandidateQuery{
			"other model":   {ModelIDs: []uint64{n.ID}},
			"more models":   {ModelIDs: []uint64{m.ID, n.ID}},
			"other view":    {ModelIDs: []uint64{m.ID}, View: metadata.AllLifecycles},
			"other order":   {ModelIDs: []uint64{m.ID}, OrderByMetric: &metadata.MetricOrder{Key: "x"}},
			"other desc":    {ModelIDs: []uint64{m.ID}, OrderByMetric: &metadata.MetricOrder{Key: "x", Desc: true}},
			"garbage":       {ModelIDs: []uint64{m.ID}},
			"other listing": {ModelIDs: []uint64{m.ID}},
		} {
			other.Page.Token = tok
			switch name {
			case "garbage":
				other.Page.Token = "!!"
			case "other listing":
				_, other.Page.Token, _ = f.s.ListCandidates(f.ctx, m.ID, metadata.Page{Limit: 1})
			}
			_, _, err := f.s.SearchCandidates(f.ctx, other)
			f.wantErr("token of "+name, err, metadata.ErrInvalid)
		}
		q.Page.Token = tok
		if rest, _, err := f.s.SearchCandidates(f.ctx, q); err != nil || len(rest) != 1 || rest[0].Name != "1" {
			f.Errorf("second page: %d, %v", len(rest), err)
		}
	}},
}
