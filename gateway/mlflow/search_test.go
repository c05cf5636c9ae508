package mlflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// searchFixture builds projects, models and runs straight in the store, so these tests do not depend on
// the runs/* handlers.
type searchFixture struct {
	env     *gatewaytest.Env
	project *metadata.Project
}

func newSearchFixture(t *testing.T, opts ...boltstore.Option) *searchFixture {
	t.Helper()
	env := gatewaytest.New(t, gateway.Config{}, opts...)
	p, err := env.Store.EnsureProject(context.Background(), rpc.DefaultProject)
	if err != nil {
		t.Fatal(err)
	}
	return &searchFixture{env: env, project: p}
}

func (f *searchFixture) model(name string, tags ...metadata.Tag) *metadata.Model {
	f.env.T.Helper()
	m := &metadata.Model{Project: f.project.ID, DisplayName: name, Tags: tags}
	if err := f.env.Store.CreateModel(context.Background(), m); err != nil {
		f.env.T.Fatal(err)
	}
	return m
}

type searchRunSpec struct {
	name    string
	start   int64
	end     int64
	status  metadata.RunStatus
	user    string
	metrics []metadata.Metric
	params  []metadata.Param
	tags    []metadata.Tag
}

func (f *searchFixture) run(m *metadata.Model, spec searchRunSpec) *metadata.Candidate {
	f.env.T.Helper()
	ctx := context.Background()
	c := &metadata.Candidate{ModelID: m.ID, Name: spec.name, StartTime: spec.start, EndTime: spec.end, Status: spec.status, UserID: spec.user}
	if err := f.env.Store.CreateCandidate(ctx, c, spec.tags); err != nil {
		f.env.T.Fatal(err)
	}
	if len(spec.metrics)+len(spec.params) > 0 {
		if err := f.env.Store.LogBatch(ctx, c.ID, spec.params, spec.metrics, nil); err != nil {
			f.env.T.Fatal(err)
		}
	}
	return c
}

type searchRunsResult struct {
	Runs          []message.Run `json:"runs"`
	NextPageToken string        `json:"next_page_token"`
}

func (f *searchFixture) searchRuns(body string) searchRunsResult {
	f.env.T.Helper()
	r := f.env.MLflowPost(f.env.Srv.URL, "runs/search", body)
	gatewaytest.WantStatus(f.env.T, r, http.StatusOK)
	var out searchRunsResult
	r.JSON(f.env.T, &out)
	return out
}

func runNames(runs []message.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.Info.RunName
	}
	return out
}

func (f *searchFixture) searchRunNames(body string) []string {
	f.env.T.Helper()
	return runNames(f.searchRuns(body).Runs)
}

func wantNames(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func TestMLflowSearchRunsTraceWorkflow(t *testing.T) {
	// The 2.17.2 trace's search section: three runs tagged with one workflow id, acc 0.9 / 0.7 / 0.5,
	// alpha 0.5 on the main run, one run deleted afterwards.
	f := newSearchFixture(t)
	exp := f.model("My Experiment")
	other := f.model("Other")
	wf := metadata.Tag{Key: "wf_id", Value: "5f1b44611b"}
	now := time.Now().UnixMilli()
	f.run(exp, searchRunSpec{name: "wf-main", start: now, status: metadata.Finished, end: now + 5, user: "root",
		tags: []metadata.Tag{wf}, params: []metadata.Param{{Key: "alpha", Value: "0.5"}},
		metrics: []metadata.Metric{{Key: "acc", Value: 0.7, Timestamp: now}, {Key: "loss", Value: 0.04, Timestamp: now, Step: 24}}})
	f.run(exp, searchRunSpec{name: "wf-b", start: now + 1, tags: []metadata.Tag{wf},
		metrics: []metadata.Metric{{Key: "acc", Value: 0.9, Timestamp: now}}})
	c := f.run(exp, searchRunSpec{name: "wf-c", start: now + 2, tags: []metadata.Tag{wf},
		metrics: []metadata.Metric{{Key: "acc", Value: 0.5, Timestamp: now}}})
	f.run(exp, searchRunSpec{name: "unrelated", start: now + 3, metrics: []metadata.Metric{{Key: "acc", Value: 1}}})
	f.run(other, searchRunSpec{name: "elsewhere", start: now + 4, tags: []metadata.Tag{wf}})

	base := `{"experiment_ids": ["1"], "run_view_type": "ACTIVE_ONLY", "filter": "tags.wf_id = '5f1b44611b'"`
	wantNames(t, "acc DESC", f.searchRunNames(base+`, "max_results": 1000, "order_by": ["metrics.acc DESC"]}`), "wf-b", "wf-main", "wf-c")
	wantNames(t, "acc ASC", f.searchRunNames(base+`, "max_results": 1000, "order_by": ["metrics.acc ASC"]}`), "wf-c", "wf-main", "wf-b")
	wantNames(t, "acc > 0.6", f.searchRunNames(`{"experiment_ids": ["1"], "filter": "tags.wf_id = '5f1b44611b' and metrics.acc > 0.6", "max_results": 1000}`), "wf-b", "wf-main")
	wantNames(t, "alpha", f.searchRunNames(`{"experiment_ids": ["1"], "filter": "tags.wf_id = '5f1b44611b' and params.alpha = '0.5'", "max_results": 1000}`), "wf-main")
	wantNames(t, "default order", f.searchRunNames(base+`, "max_results": 1000}`), "wf-c", "wf-b", "wf-main")
	wantNames(t, "two experiments", f.searchRunNames(`{"experiment_ids": ["1", "2"], "filter": "tags.wf_id = '5f1b44611b'"}`), "elsewhere", "wf-c", "wf-b", "wf-main")

	// The full Run message, data included.
	res := f.searchRuns(`{"experiment_ids": ["1"], "filter": "params.alpha = '0.5'"}`)
	if len(res.Runs) != 1 || res.NextPageToken != "" {
		t.Fatalf("alpha search: %+v", res)
	}
	run := res.Runs[0]
	if run.Info.RunID == "" || run.Info.RunID != run.Info.RunUUID || run.Info.ExperimentID != "1" || run.Info.Status != "FINISHED" ||
		run.Info.UserID != "root" || run.Info.LifecycleStage != "active" || !strings.HasPrefix(run.Info.ArtifactURI, "mlflow-artifacts:/1/") {
		t.Fatalf("run info %+v", run.Info)
	}
	if len(run.Data.Metrics) != 2 || run.Data.Metrics[1].Key != "loss" || run.Data.Metrics[1].Step != 24 ||
		len(run.Data.Params) != 1 || run.Data.Params[0].Value != "0.5" {
		t.Fatalf("run data %+v", run.Data)
	}

	// Paging one run at a time, as the trace does: three pages, then no token.
	var paged []string
	tok := ""
	for i := 0; ; i++ {
		body := base + `, "max_results": 1, "order_by": ["metrics.acc DESC"]`
		if tok != "" {
			body += `, "page_token": "` + tok + `"`
		}
		res := f.searchRuns(body + "}")
		paged = append(paged, runNames(res.Runs)...)
		if tok = res.NextPageToken; tok == "" || i > 5 {
			break
		}
	}
	wantNames(t, "paged", paged, "wf-b", "wf-main", "wf-c")

	// Deleting a run moves it between the views.
	deleted := metadata.Deleted
	if _, err := f.env.Store.UpdateCandidate(context.Background(), c.ID, metadata.CandidateUpdate{Lifecycle: &deleted}); err != nil {
		t.Fatal(err)
	}
	wantNames(t, "ACTIVE_ONLY", f.searchRunNames(base+`}`), "wf-b", "wf-main")
	wantNames(t, "DELETED_ONLY", f.searchRunNames(`{"experiment_ids": ["1"], "run_view_type": "DELETED_ONLY", "filter": "tags.wf_id = '5f1b44611b'"}`), "wf-c")
	wantNames(t, "ALL", f.searchRunNames(`{"experiment_ids": ["1"], "run_view_type": "ALL", "filter": "tags.wf_id = '5f1b44611b'"}`), "wf-c", "wf-b", "wf-main")
	wantNames(t, "view by number", f.searchRunNames(`{"experiment_ids": ["1"], "run_view_type": 2}`), "wf-c")

	// Nothing found is {}.
	r := f.env.MLflowPost(f.env.Srv.URL, "runs/search", `{"experiment_ids": ["1"], "filter": "tags.wf_id = 'nope'"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("empty search: %s", r.Body)
	}
}

func TestMLflowSearchRunsFiltersAndOrderings(t *testing.T) {
	f := newSearchFixture(t)
	exp := f.model("exp")
	a := f.run(exp, searchRunSpec{name: "a", start: 1000, end: 1500, status: metadata.Finished, user: "ann",
		params: []metadata.Param{{Key: "opt", Value: "adam"}}, tags: []metadata.Tag{{Key: "team", Value: "vision"}},
		metrics: []metadata.Metric{{Key: "acc", Value: 0.5}}})
	b := f.run(exp, searchRunSpec{name: "b", start: 2000, status: metadata.Running, user: "bob",
		params: []metadata.Param{{Key: "opt", Value: "sgd"}}, tags: []metadata.Tag{{Key: "team", Value: "nlp"}},
		metrics: []metadata.Metric{{Key: "acc", Value: math.NaN()}}})
	f.run(exp, searchRunSpec{name: "c", start: 3000, end: 3100, status: metadata.Failed, user: "ann",
		metrics: []metadata.Metric{{Key: "acc", Value: 0.9}}})
	f.run(exp, searchRunSpec{name: "d", start: 4000, status: metadata.Finished, user: "bob"})

	search := func(filter string, orderBy ...string) []string {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"experiment_ids": []string{"1"}, "filter": filter, "order_by": orderBy})
		return f.searchRunNames(string(body))
	}
	// != on a tag or param matches runs without the key.
	wantNames(t, "tag !=", search("tags.team != 'vision'"), "d", "c", "b")
	wantNames(t, "param !=", search("params.opt != 'adam'"), "d", "c", "b")
	wantNames(t, "param =", search("params.opt = 'sgd'"), "b")
	wantNames(t, "tag LIKE", search("tags.team LIKE 'vis%'"), "a")
	wantNames(t, "tag ILIKE", search("tags.team ILIKE 'NL_'"), "b")
	// Metric clauses compare the latest value; NaN only matches !=, a missing metric nothing.
	wantNames(t, "metric >=", search("metrics.acc >= 0.5"), "c", "a")
	wantNames(t, "metric !=", search("metrics.acc != 0.5"), "c", "b")
	wantNames(t, "status", search("attributes.status = 'FINISHED'"), "d", "a")
	wantNames(t, "user", search("attributes.user_id = 'ann' AND metrics.acc < 1"), "c", "a")
	wantNames(t, "start_time", search("attributes.start_time > 1500 and attributes.start_time <= 3000"), "c", "b")
	wantNames(t, "end_time unset matches nothing", search("attributes.end_time > 0"), "c", "a")
	wantNames(t, "run_name", search("attributes.run_name = 'b'"), "b")
	wantNames(t, "run_name LIKE", search("run_name LIKE '%'"), "d", "c", "b", "a")
	wantNames(t, "run_id IN", search(fmt.Sprintf("attributes.run_id IN ('%s', '%s')", a.EID, b.EID)), "b", "a")
	wantNames(t, "artifact_uri", search(fmt.Sprintf("attributes.artifact_uri = 'mlflow-artifacts:/1/%s/artifacts'", a.EID)), "a")
	wantNames(t, "synthetic tag", search("tags.`mlgate.candidate_iid` = '2'"), "b")

	// Orderings: NaN after numbers and missing last, in both directions.
	wantNames(t, "acc ASC", search("", "metrics.acc ASC"), "a", "c", "b", "d")
	wantNames(t, "acc DESC", search("", "metrics.acc DESC"), "c", "a", "b", "d")
	wantNames(t, "acc DESC filtered", search("attributes.user_id != 'x'", "metrics.acc DESC"), "c", "a", "b", "d")
	wantNames(t, "start_time ASC", search("", "attributes.start_time ASC"), "a", "b", "c", "d")
	wantNames(t, "start_time DESC", search("", "start_time DESC"), "d", "c", "b", "a")
	wantNames(t, "param DESC, missing last", search("", "params.opt DESC"), "b", "a", "d", "c")
	wantNames(t, "tag ASC", search("", "tags.team"), "b", "a", "d", "c")
	wantNames(t, "end_time DESC", search("", "end_time DESC"), "c", "a", "d", "b")
	wantNames(t, "user then name", search("", "user_id DESC", "run_name ASC"), "b", "d", "a", "c")
	wantNames(t, "metric then time", search("", "metrics.acc DESC", "start_time ASC"), "c", "a", "b", "d")
	wantNames(t, "status", search("", "status"), "c", "d", "a", "b")

	// In-memory orderings page by offset without gaps.
	var paged []string
	tok := ""
	for i := 0; i < 10; i++ {
		body, _ := json.Marshal(map[string]any{"experiment_ids": []string{"1"}, "order_by": []string{"params.opt DESC"}, "max_results": 1, "page_token": tok})
		res := f.searchRuns(string(body))
		paged = append(paged, runNames(res.Runs)...)
		if tok = res.NextPageToken; tok == "" {
			break
		}
	}
	wantNames(t, "paged param order", paged, "b", "a", "d", "c")
}

func TestMLflowSearchRunsExperimentIDs(t *testing.T) {
	f := newSearchFixture(t)
	exp := f.model("exp")
	f.run(exp, searchRunSpec{name: "one", start: 1})
	// Unknown ids contribute nothing, as in MLflow's SQL store; experiment 0 does not exist yet and is not
	// created by a search.
	wantNames(t, "unknown ids", f.searchRunNames(`{"experiment_ids": ["0", "77", "1", "1"]}`), "one")
	wantNames(t, "no ids", f.searchRunNames(`{}`))
	if ms, _, _ := f.env.Store.ListModels(context.Background(), f.project.ID, metadata.Page{}); len(ms) != 1 {
		t.Fatalf("search created models: %d", len(ms))
	}
	def, err := f.env.Store.EnsureDefaultModel(context.Background(), f.project.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.run(def, searchRunSpec{name: "default-run", start: 2})
	res := f.searchRuns(`{"experiment_ids": ["0"]}`)
	wantNames(t, "experiment 0", runNames(res.Runs), "default-run")
	if res.Runs[0].Info.ExperimentID != "0" {
		t.Fatalf("experiment_id %q", res.Runs[0].Info.ExperimentID)
	}
	wantNames(t, "numeric ids", f.searchRunNames(`{"experiment_ids": [0, 1]}`), "default-run", "one")
}

func TestMLflowSearchRunsBadInputIs400(t *testing.T) {
	f := newSearchFixture(t)
	f.model("exp")
	first := f.searchRuns(`{"experiment_ids": ["1"], "max_results": 1}`)
	_ = first
	for _, body := range []string{
		`{"experiment_ids": ["abc"]}`,
		`{"experiment_ids": ["-1"]}`,
		`{"experiment_ids": ["1"], "filter": "metrics.acc > 'x'"}`,
		`{"experiment_ids": ["1"], "filter": "nonsense"}`,
		`{"experiment_ids": ["1"], "filter": "params.a = 'x' OR params.b = 'y'"}`,
		`{"experiment_ids": ["1"], "order_by": ["metrics.acc SIDEWAYS"]}`,
		`{"experiment_ids": ["1"], "order_by": ["bogus"]}`,
		`{"experiment_ids": ["1"], "run_view_type": "SOME"}`,
		`{"experiment_ids": ["1"], "max_results": 50001}`,
		`{"experiment_ids": ["1"], "max_results": -1}`,
		`{"experiment_ids": ["1"], "max_results": "many"}`,
		`{"experiment_ids": ["1"], "page_token": "not a token"}`,
		`{"experiment_ids": ["1"], "page_token": "eyJvZmZzZXQiOiAxfQ=="}`,
		`[1, 2]`,
	} {
		r := f.env.MLflowPost(f.env.Srv.URL, "runs/search", body)
		gatewaytest.WantStatus(t, r, http.StatusBadRequest)
		if code := r.MLflowError(t); code != "INVALID_PARAMETER_VALUE" {
			t.Fatalf("%s: %s", body, code)
		}
	}
	// max_results up to 50000 is accepted.
	f.searchRuns(`{"experiment_ids": ["1"], "max_results": 50000}`)
}

func TestMLflowSearchRunsTokenBelongsToItsQuery(t *testing.T) {
	f := newSearchFixture(t)
	exp := f.model("exp")
	for i := range 3 {
		f.run(exp, searchRunSpec{name: fmt.Sprint("r", i), start: int64(i + 1), metrics: []metadata.Metric{{Key: "m", Value: float64(i)}}})
	}
	for _, q := range []struct{ first, other string }{
		{`"order_by": ["metrics.m DESC"]`, `"order_by": ["metrics.m ASC"]`},
		{`"order_by": ["metrics.m DESC"]`, `"order_by": ["metrics.m DESC"], "filter": "metrics.m > 0"`},
		{`"order_by": ["params.p DESC"]`, `"order_by": ["params.q DESC"]`},
		{`"filter": "metrics.m >= 0"`, `"filter": "metrics.m >= 0", "run_view_type": "ALL"`},
	} {
		res := f.searchRuns(`{"experiment_ids": ["1"], "max_results": 1, ` + q.first + `}`)
		if res.NextPageToken == "" {
			t.Fatalf("%s: no token", q.first)
		}
		// The same query with another page size accepts it.
		f.searchRuns(`{"experiment_ids": ["1"], "max_results": 2, "page_token": "` + res.NextPageToken + `", ` + q.first + `}`)
		r := f.env.MLflowPost(f.env.Srv.URL, "runs/search", `{"experiment_ids": ["1"], "page_token": "`+res.NextPageToken+`", `+q.other+`}`)
		gatewaytest.WantStatus(t, r, http.StatusBadRequest)
		if code := r.MLflowError(t); code != "INVALID_PARAMETER_VALUE" {
			t.Fatal(code)
		}
	}
}

// TestMLflowSearchRunsMetricOrderPaging orders 2000 runs by a metric (numbers, NaN and missing values),
// with and without a filter, and pages through them with several page sizes: every page must continue
// the order exactly, without duplicates or gaps.
func TestMLflowSearchRunsMetricOrderPaging(t *testing.T) {
	f := newSearchFixture(t)
	exp := f.model("big")
	ctx := context.Background()
	const n = 2000
	type runInfo struct {
		eid   string
		val   float64
		has   bool
		start int64
		even  bool
	}
	var runs []runInfo
	for i := range n {
		c := &metadata.Candidate{ModelID: exp.ID, Name: fmt.Sprint("r", i), StartTime: int64(1000 + i)}
		tags := []metadata.Tag{{Key: "parity", Value: map[bool]string{true: "even", false: "odd"}[i%2 == 0]}}
		if err := f.env.Store.CreateCandidate(ctx, c, tags); err != nil {
			t.Fatal(err)
		}
		ri := runInfo{eid: c.EID.String(), start: c.StartTime, even: i%2 == 0}
		switch {
		case i%10 == 3: // no metric
		case i%10 == 7:
			ri.val, ri.has = math.NaN(), true
		default:
			ri.val, ri.has = float64((i*7919)%997), true // many ties
		}
		if ri.has {
			if err := f.env.Store.LogBatch(ctx, c.ID, nil, []metadata.Metric{{Key: "score", Value: ri.val, Timestamp: 1}}, nil); err != nil {
				t.Fatal(err)
			}
		}
		runs = append(runs, ri)
	}

	class := func(r runInfo) int {
		switch {
		case !r.has:
			return 2
		case math.IsNaN(r.val):
			return 1
		}
		return 0
	}
	check := func(name string, desc bool, filter string, pageSize int) {
		t.Helper()
		var got []message.Run
		tok := ""
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatalf("%s: too many pages", name)
			}
			body, _ := json.Marshal(map[string]any{"experiment_ids": []string{"1"}, "filter": filter,
				"order_by":    []string{"metrics.score " + map[bool]string{true: "DESC", false: "ASC"}[desc]},
				"max_results": pageSize, "page_token": tok})
			res := f.searchRuns(string(body))
			if len(res.Runs) > pageSize {
				t.Fatalf("%s: page of %d > %d", name, len(res.Runs), pageSize)
			}
			if res.NextPageToken != "" && len(res.Runs) != pageSize {
				t.Fatalf("%s: short page %d with a token", name, len(res.Runs))
			}
			got = append(got, res.Runs...)
			if tok = res.NextPageToken; tok == "" {
				break
			}
		}
		byEID := map[string]runInfo{}
		for _, r := range runs {
			if filter == "" || r.even {
				byEID[r.eid] = r
			}
		}
		if len(got) != len(byEID) {
			t.Fatalf("%s: %d runs, want %d", name, len(got), len(byEID))
		}
		seen := map[string]bool{}
		var prev runInfo
		for i, run := range got {
			r, ok := byEID[run.Info.RunID]
			if !ok || seen[r.eid] {
				t.Fatalf("%s: run %d %s unexpected or repeated", name, i, run.Info.RunID)
			}
			seen[r.eid] = true
			if i > 0 {
				pc, rc := class(prev), class(r)
				switch {
				case pc > rc:
					t.Fatalf("%s: run %d: class %d after %d", name, i, rc, pc)
				case pc == 0 && rc == 0 && !desc && r.val < prev.val, pc == 0 && rc == 0 && desc && r.val > prev.val:
					t.Fatalf("%s: run %d: %v after %v", name, i, r.val, prev.val)
				case pc == 2 && rc == 2 && r.start > prev.start:
					t.Fatalf("%s: run %d: runs without the metric are not newest first", name, i)
				}
			}
			// Data comes with every run: the latest score.
			if r.has && (len(run.Data.Metrics) != 1 || !(float64(run.Data.Metrics[0].Value) == r.val ||
				math.IsNaN(r.val) && math.IsNaN(float64(run.Data.Metrics[0].Value)))) {
				t.Fatalf("%s: run %d data %+v, want %v", name, i, run.Data.Metrics, r.val)
			}
			prev = r
		}
	}
	check("asc/100", false, "", 100)
	check("desc/100", true, "", 100)
	check("desc/1000", true, "", 1000)
	check("asc/all", false, "", 5000)
	check("desc/37", true, "", 37)
	check("asc/filtered/100", false, "tags.parity = 'even'", 100)
	check("desc/filtered/333", true, "tags.parity != 'odd'", 333)

	// The first page of 100 is served from the index: it must not depend on the number of runs.
	start := time.Now()
	res := f.searchRuns(`{"experiment_ids": ["1"], "order_by": ["metrics.score DESC"], "max_results": 100}`)
	if len(res.Runs) != 100 || res.NextPageToken == "" {
		t.Fatalf("first page: %d runs, token %q", len(res.Runs), res.NextPageToken)
	}
	t.Logf("first page of 100 by metric over %d runs: %v", n, time.Since(start))
}

func TestMLflowSearchExperiments(t *testing.T) {
	// The clock ticks on every reading, so the models' creation times differ and order them.
	f := newSearchFixture(t, boltstore.WithClock(gatewaytest.TickingClock(time.UnixMilli(1_700_000_000_000))))
	base := f.env.Srv.URL
	ctx := context.Background()
	a := f.model("My Experiment", metadata.Tag{Key: "team", Value: "vision"})
	b := f.model("Second", metadata.Tag{Key: "team", Value: "nlp"})
	f.model("third")

	type expResult struct {
		Experiments   []message.Experiment `json:"experiments"`
		NextPageToken string               `json:"next_page_token"`
	}
	search := func(body string) expResult {
		t.Helper()
		r := f.env.MLflowPost(base, "experiments/search", body)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var out expResult
		r.JSON(t, &out)
		return out
	}
	names := func(res expResult) []string {
		var out []string
		for _, e := range res.Experiments {
			out = append(out, e.Name)
		}
		return out
	}
	// Default order: newest first. The default model does not exist yet, so it is not listed.
	wantNames(t, "all", names(search(`{"max_results": 1000}`)), "third", "Second", "My Experiment")
	wantNames(t, "name", names(search(`{"filter": "name = 'My Experiment'", "view_type": "ACTIVE_ONLY"}`)), "My Experiment")
	wantNames(t, "name LIKE", names(search(`{"filter": "name LIKE '%e%'", "order_by": ["name ASC"]}`)), "My Experiment", "Second")
	wantNames(t, "tag", names(search(`{"filter": "tags.team = 'nlp'"}`)), "Second")
	wantNames(t, "tag != matches untagged", names(search(`{"filter": "tags.team != 'nlp'", "order_by": ["experiment_id"]}`)), "My Experiment", "third")
	wantNames(t, "slug tag", names(search(`{"filter": "tags.`+"`mlgate.name`"+` = 'my_experiment'"}`)), "My Experiment")
	wantNames(t, "creation_time", names(search(fmt.Sprintf(`{"filter": "creation_time > %d", "order_by": ["creation_time ASC"]}`, a.CreatedAt.UnixMilli()))), "Second", "third")
	wantNames(t, "id DESC", names(search(`{"order_by": ["attributes.experiment_id DESC"]}`)), "third", "Second", "My Experiment")
	wantNames(t, "name DESC", names(search(`{"order_by": ["name DESC"]}`)), "third", "Second", "My Experiment")

	// The trace: a deleted experiment is found with DELETED_ONLY only.
	deleted := metadata.Deleted
	if _, err := f.env.Store.UpdateModel(ctx, b.ID, metadata.ModelUpdate{Lifecycle: &deleted}); err != nil {
		t.Fatal(err)
	}
	r := f.env.MLflowPost(base, "experiments/search", `{"max_results": 1000, "filter": "name = 'Second'", "view_type": "ACTIVE_ONLY"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("active search for a deleted experiment: %s", r.Body)
	}
	res := search(`{"max_results": 1000, "filter": "name = 'Second'", "view_type": "DELETED_ONLY"}`)
	if len(res.Experiments) != 1 || res.Experiments[0].LifecycleStage != "deleted" || res.Experiments[0].ExperimentID != "2" ||
		res.Experiments[0].ArtifactLocation != "mlflow-artifacts:/2" {
		t.Fatalf("deleted search %+v", res)
	}
	wantNames(t, "ALL", names(search(`{"view_type": "ALL", "order_by": ["experiment_id ASC"]}`)), "My Experiment", "Second", "third")
	wantNames(t, "view 3", names(search(`{"view_type": 3, "order_by": ["experiment_id ASC"]}`)), "My Experiment", "Second", "third")

	// The default model is listed once it exists.
	if _, err := f.env.Store.EnsureDefaultModel(ctx, f.project.ID); err != nil {
		t.Fatal(err)
	}
	wantNames(t, "with default", names(search(`{"order_by": ["experiment_id"]}`)), "Default", "My Experiment", "third")

	// GET with query parameters, repeated order_by, paging one at a time.
	var paged []string
	tok := ""
	for i := 0; i < 10; i++ {
		q := url.Values{"max_results": {"1"}, "order_by": {"name DESC", "experiment_id"}, "view_type": {"ALL"}}
		if tok != "" {
			q.Set("page_token", tok)
		}
		r := f.env.Get(base + "/api/2.0/mlflow/experiments/search?" + q.Encode())
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var page expResult
		r.JSON(t, &page)
		paged = append(paged, names(page)...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	wantNames(t, "GET paging", paged, "third", "Second", "My Experiment", "Default")

	// Bad input is 400 INVALID_PARAMETER_VALUE.
	first := search(`{"max_results": 1}`)
	for _, body := range []string{
		`{"filter": "metrics.acc > 1"}`,
		`{"filter": "name = "}`,
		`{"order_by": ["version_number"]}`,
		`{"order_by": ["experiment_id UP"]}`,
		`{"order_by": ["tags.team"]}`,
		`{"view_type": "NONE"}`,
		`{"max_results": 50001}`,
		`{"max_results": -5}`,
		`{"page_token": "%%%"}`,
		`{"filter": "name != 'x'", "page_token": "` + first.NextPageToken + `"}`,
	} {
		r := f.env.MLflowPost(base, "experiments/search", body)
		gatewaytest.WantStatus(t, r, http.StatusBadRequest)
		if code := r.MLflowError(t); code != "INVALID_PARAMETER_VALUE" {
			t.Fatalf("%s: %s", body, code)
		}
	}
}
