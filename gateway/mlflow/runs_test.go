package mlflow_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// runsTestRun is a Run as the client decodes it; values stay raw so NaN strings can be checked.
type runsTestRun struct {
	Info message.RunInfo `json:"info"`
	Data struct {
		Metrics []struct {
			Key       string          `json:"key"`
			Value     json.RawMessage `json:"value"`
			Timestamp int64           `json:"timestamp"`
			Step      int64           `json:"step"`
		} `json:"metrics"`
		Params []struct{ Key, Value string } `json:"params"`
		Tags   []struct{ Key, Value string } `json:"tags"`
	} `json:"data"`
	Inputs *struct{} `json:"inputs"`
}

func (r runsTestRun) tag(key string) (string, bool) {
	for _, t := range r.Data.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

func (r runsTestRun) param(key string) (string, bool) {
	for _, p := range r.Data.Params {
		if p.Key == key {
			return p.Value, true
		}
	}
	return "", false
}

// runsTestCreate creates a run with body and returns it.
func runsTestCreate(t *testing.T, env *gatewaytest.Env, body string) runsTestRun {
	t.Helper()
	r := env.MLflowPost(env.Srv.URL, "runs/create", body)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out struct{ Run runsTestRun }
	r.JSON(t, &out)
	if len(out.Run.Info.RunID) != 32 || out.Run.Info.RunUUID != out.Run.Info.RunID {
		t.Fatalf("run ids: %s", r.Body)
	}
	return out.Run
}

func runsTestGet(t *testing.T, env *gatewaytest.Env, id string) runsTestRun {
	t.Helper()
	r := env.Get(env.Srv.URL + "/api/2.0/mlflow/runs/get?run_uuid=" + id + "&run_id=" + id)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out struct{ Run runsTestRun }
	r.JSON(t, &out)
	return out.Run
}

// runsTestHistory returns the raw metric points of key.
func runsTestHistory(t *testing.T, env *gatewaytest.Env, id, key string) []map[string]any {
	t.Helper()
	r := env.Get(env.Srv.URL + "/api/2.0/mlflow/metrics/get-history?run_uuid=" + id + "&metric_key=" + url.QueryEscape(key) + "&run_id=" + id + "&max_results=25000")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out struct {
		Metrics       []map[string]any `json:"metrics"`
		NextPageToken string           `json:"next_page_token"`
	}
	r.JSON(t, &out)
	if out.NextPageToken != "" {
		t.Fatalf("unexpected next_page_token: %s", r.Body)
	}
	return out.Metrics
}

// runsWantError checks an MLflow error answer's status and error_code.
func runsWantError(t *testing.T, r gatewaytest.Response, status int, code string) {
	t.Helper()
	gatewaytest.WantStatus(t, r, status)
	if got := r.MLflowError(t); got != code {
		t.Fatalf("error_code %s, want %s: %s", got, code, r.Body)
	}
}

// TestMLflowRunsTraceReplay replays requests of the recorded 2.17.2 client verbatim (with the reference
// server's run id replaced by mlgate's) and checks the answers the client relies on.
func TestMLflowRunsTraceReplay(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "My Experiment"}`), http.StatusOK)

	created := runsTestCreate(t, env, `{"experiment_id": "1", "user_id": "root", "run_name": "wf-main-5f1b44611b", "start_time": 1795992303358, "tags": [{"key": "mlflow.user", "value": "root"}, {"key": "mlflow.source.name", "value": "train.py"}, {"key": "mlflow.source.type", "value": "LOCAL"}, {"key": "mlflow.runName", "value": "wf-main-5f1b44611b"}]}`)
	id := created.Info.RunID
	info := created.Info
	if info.ExperimentID != "1" || info.RunName != "wf-main-5f1b44611b" || info.UserID != "root" || info.Status != "RUNNING" ||
		info.StartTime != 1795992303358 || info.EndTime != 0 || info.LifecycleStage != "active" ||
		info.ArtifactURI != "mlflow-artifacts:/1/"+id+"/artifacts" || created.Inputs == nil {
		t.Fatalf("created run %+v", created)
	}
	for k, v := range map[string]string{"mlflow.user": "root", "mlflow.source.type": "LOCAL", "mlflow.runName": "wf-main-5f1b44611b", "mlgate.candidate_iid": "1"} {
		if got, _ := created.tag(k); got != v {
			t.Fatalf("tag %s = %q, want %q: %+v", k, got, v, created.Data.Tags)
		}
	}

	const traceID = "87abef4c21114e6080b026c2be83705f"
	for _, step := range []struct{ rpc, body string }{
		{"runs/log-parameter", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "alpha", "value": "0.5", "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		{"runs/log-batch", `{"run_id": "87abef4c21114e6080b026c2be83705f", "params": [{"key": "l1_ratio", "value": "0.1"}, {"key": "optimizer", "value": "adam"}, {"key": "layers", "value": "3"}]}`},
		{"runs/log-metric", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "loss", "value": 1.0, "timestamp": 1795992303401, "step": 0, "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		{"runs/log-metric", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "loss", "value": 0.5, "timestamp": 1795992303415, "step": 1, "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		{"runs/log-metric", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "loss", "value": 0.3333333333333333, "timestamp": 1795992303426, "step": 2, "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		// A retried request (the client retries POSTs) must not add a second point.
		{"runs/log-metric", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "loss", "value": 0.3333333333333333, "timestamp": 1795992303426, "step": 2, "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		{"runs/log-batch", `{"run_id": "87abef4c21114e6080b026c2be83705f", "metrics": [{"key": "acc", "value": 0.7, "timestamp": 1795992303656, "step": 25}, {"key": "f1", "value": 0.65, "timestamp": 1795992303656, "step": 25}]}`},
		{"runs/set-tag", `{"run_uuid": "87abef4c21114e6080b026c2be83705f", "key": "wf_id", "value": "5f1b44611b", "run_id": "87abef4c21114e6080b026c2be83705f"}`},
		{"runs/log-batch", `{"run_id": "87abef4c21114e6080b026c2be83705f", "tags": [{"key": "stage", "value": "test"}, {"key": "owner", "value": "workflow"}]}`},
	} {
		r := env.MLflowPost(base, step.rpc, strings.ReplaceAll(step.body, traceID, id))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if strings.TrimSpace(string(r.Body)) != "{}" {
			t.Fatalf("%s answered %s, want {}", step.rpc, r.Body)
		}
	}

	got := runsTestGet(t, env, id)
	for k, v := range map[string]string{"alpha": "0.5", "l1_ratio": "0.1", "optimizer": "adam", "layers": "3"} {
		if p, _ := got.param(k); p != v {
			t.Fatalf("param %s = %q: %+v", k, p, got.Data.Params)
		}
	}
	for k, v := range map[string]string{"wf_id": "5f1b44611b", "stage": "test", "owner": "workflow"} {
		if g, _ := got.tag(k); g != v {
			t.Fatalf("tag %s = %q: %+v", k, g, got.Data.Tags)
		}
	}
	latest := map[string]string{}
	for _, m := range got.Data.Metrics {
		latest[m.Key] = fmt.Sprintf("%s@%d/%d", m.Value, m.Step, m.Timestamp)
	}
	want := map[string]string{"loss": "0.3333333333333333@2/1795992303426", "acc": "0.7@25/1795992303656", "f1": "0.65@25/1795992303656"}
	if fmt.Sprint(latest) != fmt.Sprint(want) {
		t.Fatalf("latest metrics %v, want %v", latest, want)
	}

	hist := runsTestHistory(t, env, id, "loss")
	wantHist := `[map[key:loss step:0 timestamp:1.795992303401e+12 value:1] map[key:loss step:1 timestamp:1.795992303415e+12 value:0.5] map[key:loss step:2 timestamp:1.795992303426e+12 value:0.3333333333333333]]`
	if fmt.Sprint(hist) != wantHist {
		t.Fatalf("history %v", hist)
	}

	r := env.MLflowPost(base, "runs/update", strings.ReplaceAll(`{"run_uuid": "87abef4c21114e6080b026c2be83705f", "status": "FINISHED", "end_time": 1795992303841, "run_id": "87abef4c21114e6080b026c2be83705f"}`, traceID, id))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var upd struct {
		RunInfo message.RunInfo `json:"run_info"`
	}
	r.JSON(t, &upd)
	if upd.RunInfo.Status != "FINISHED" || upd.RunInfo.EndTime != 1795992303841 || upd.RunInfo.RunName != "wf-main-5f1b44611b" || upd.RunInfo.RunID != id {
		t.Fatalf("run_info %+v", upd.RunInfo)
	}

	// The second run of the trace: a client without a user, a name but no mlflow.runName tag, and one
	// batch with all three kinds.
	b := runsTestCreate(t, env, `{"experiment_id": "1", "user_id": "unknown", "run_name": "wf-b-5f1b44611b", "start_time": 1795992303911, "tags": [{"key": "wf_id", "value": "5f1b44611b"}]}`)
	if v, _ := b.tag("mlflow.runName"); v != "wf-b-5f1b44611b" {
		t.Fatalf("mlflow.runName not added: %+v", b.Data.Tags)
	}
	body := strings.ReplaceAll(`{"run_id": "eb7d49f121444279969906550700f10d", "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1795992303928, "step": 0}], "params": [{"key": "alpha", "value": "alt-b"}], "tags": [{"key": "variant", "value": "b"}]}`, "eb7d49f121444279969906550700f10d", b.Info.RunID)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-batch", body), http.StatusOK)
	got = runsTestGet(t, env, b.Info.RunID)
	if p, _ := got.param("alpha"); p != "alt-b" || len(got.Data.Metrics) != 1 || string(got.Data.Metrics[0].Value) != "0.9" {
		t.Fatalf("batch not logged: %+v", got.Data)
	}
}

func TestMLflowRunsCreate(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL

	// No experiment_id: the default experiment "0"; no name: a generated one, mirrored in the tag.
	r := runsTestCreate(t, env, `{"start_time": 1700000000000}`)
	if r.Info.ExperimentID != "0" || !regexp.MustCompile(`^[a-z]+-[a-z]+-\d{1,3}$`).MatchString(r.Info.RunName) {
		t.Fatalf("default run %+v", r.Info)
	}
	if v, _ := r.tag("mlflow.runName"); v != r.Info.RunName {
		t.Fatalf("mlflow.runName %q, run_name %q", v, r.Info.RunName)
	}
	if r.Info.StartTime != 1700000000000 || r.Info.ArtifactURI != "mlflow-artifacts:/0/"+r.Info.RunID+"/artifacts" {
		t.Fatalf("info %+v", r.Info)
	}
	// The name comes from the tag when run_name is absent; experiment ids may be numbers.
	r = runsTestCreate(t, env, `{"experiment_id": 0, "tags": [{"key": "mlflow.runName", "value": "from-tag"}]}`)
	if r.Info.RunName != "from-tag" || r.Info.StartTime == 0 {
		t.Fatalf("tag name %+v", r.Info)
	}
	if got := runsTestGet(t, env, r.Info.RunID); got.Info.RunName != "from-tag" {
		t.Fatalf("get %+v", got.Info)
	}

	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "gone"}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`), http.StatusOK)
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"experiment_id": "1"}`, 400, "INVALID_PARAMETER_VALUE"}, // deleted experiment
		{`{"experiment_id": "7"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{`{"experiment_id": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"run_name": "a", "tags": [{"key": "mlflow.runName", "value": "b"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"tags": [{"key": "mlgate.candidate_iid", "value": "9"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"tags": [{"key": "bad*key", "value": "9"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"tags": [{"key": "k"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"tags": [{"key": "k", "value": "` + strings.Repeat("v", 5001) + `"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"run_name": "` + strings.Repeat("n", 256) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"start_time": "soon"}`, 400, "INVALID_PARAMETER_VALUE"},
	} {
		r := env.MLflowPost(base, "runs/create", c.body)
		if r.Status != c.status || r.MLflowError(t) != c.code {
			t.Errorf("%.80s: %d %s", c.body, r.Status, r.Body)
		}
	}
}

func TestMLflowRunsLogging(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	id := runsTestCreate(t, env, `{"run_name": "r"}`).Info.RunID
	post := func(rpc, body string) gatewaytest.Response {
		t.Helper()
		return env.MLflowPost(base, rpc, strings.ReplaceAll(body, "RUN", id))
	}

	// NaN and infinities round-trip as MLflow's strings; step defaults to 0.
	for _, v := range []string{`"NaN"`, `"Infinity"`, `"-Infinity"`} {
		gatewaytest.WantStatus(t, post("runs/log-metric", `{"run_id": "RUN", "key": "odd", "value": `+v+`, "timestamp": 5}`), http.StatusOK)
	}
	hist := runsTestHistory(t, env, id, "odd")
	if len(hist) != 3 {
		t.Fatalf("history %v", hist)
	}
	values := map[any]bool{}
	for _, p := range hist {
		values[p["value"]] = true
		if p["step"] != float64(0) {
			t.Fatalf("step %v", p)
		}
	}
	if !values["NaN"] || !values["Infinity"] || !values["-Infinity"] {
		t.Fatalf("values %v", values)
	}
	gatewaytest.WantStatus(t, post("runs/log-batch", `{"run_id": "RUN", "metrics": [{"key": "nan", "value": "NaN", "timestamp": 1, "step": 1}]}`), http.StatusOK)
	got := runsTestGet(t, env, id)
	for _, m := range got.Data.Metrics {
		if m.Key == "nan" && string(m.Value) != `"NaN"` {
			t.Fatalf("NaN shown as %s", m.Value)
		}
	}

	// Params are immutable: the same value again is fine, another one is refused.
	gatewaytest.WantStatus(t, post("runs/log-parameter", `{"run_id": "RUN", "key": "alpha", "value": "0.5"}`), http.StatusOK)
	gatewaytest.WantStatus(t, post("runs/log-parameter", `{"run_id": "RUN", "key": "alpha", "value": "0.5"}`), http.StatusOK)
	runsWantError(t, post("runs/log-parameter", `{"run_id": "RUN", "key": "alpha", "value": "0.6"}`), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, post("runs/log-batch", `{"run_id": "RUN", "params": [{"key": "alpha", "value": "0.7"}]}`), 400, "INVALID_PARAMETER_VALUE")
	// A param given as a number (other clients) is stored as its text.
	gatewaytest.WantStatus(t, post("runs/log-parameter", `{"run_id": "RUN", "key": "n", "value": 3}`), http.StatusOK)

	// mlflow.runName renames the run, through set-tag and log-batch; run_name rewrites the tag.
	gatewaytest.WantStatus(t, post("runs/set-tag", `{"run_id": "RUN", "key": "mlflow.runName", "value": "renamed"}`), http.StatusOK)
	if g := runsTestGet(t, env, id); g.Info.RunName != "renamed" {
		t.Fatalf("set-tag rename: %+v", g.Info)
	}
	gatewaytest.WantStatus(t, post("runs/log-batch", `{"run_id": "RUN", "tags": [{"key": "mlflow.runName", "value": "batched"}]}`), http.StatusOK)
	if g := runsTestGet(t, env, id); g.Info.RunName != "batched" {
		t.Fatalf("log-batch rename: %+v", g.Info)
	}
	// A batch that renames but fails on a param conflict changes nothing.
	runsWantError(t, post("runs/log-batch", `{"run_id": "RUN", "params": [{"key": "alpha", "value": "9"}], "tags": [{"key": "mlflow.runName", "value": "never"}]}`), 400, "INVALID_PARAMETER_VALUE")
	if g := runsTestGet(t, env, id); g.Info.RunName != "batched" {
		t.Fatalf("failed batch renamed the run: %+v", g.Info)
	}
	r := post("runs/update", `{"run_id": "RUN", "run_name": "updated", "status": "KILLED"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	g := runsTestGet(t, env, id)
	if v, _ := g.tag("mlflow.runName"); v != "updated" || g.Info.RunName != "updated" || g.Info.Status != "KILLED" || g.Info.EndTime != 0 {
		t.Fatalf("update: %+v %+v", g.Info, g.Data.Tags)
	}
	gatewaytest.WantStatus(t, post("runs/update", `{"run_id": "RUN", "status": 3, "end_time": "1700000000001"}`), http.StatusOK)
	if g := runsTestGet(t, env, id); g.Info.Status != "FINISHED" || g.Info.EndTime != 1700000000001 {
		t.Fatalf("numeric status: %+v", g.Info)
	}

	// Tags: set, delete, delete again (404).
	gatewaytest.WantStatus(t, post("runs/set-tag", `{"run_id": "RUN", "key": "t", "value": ""}`), http.StatusOK)
	gatewaytest.WantStatus(t, post("runs/delete-tag", `{"run_id": "RUN", "key": "t"}`), http.StatusOK)
	if _, ok := runsTestGet(t, env, id).tag("t"); ok {
		t.Fatal("tag not deleted")
	}
	runsWantError(t, post("runs/delete-tag", `{"run_id": "RUN", "key": "t"}`), 404, "RESOURCE_DOES_NOT_EXIST")

	for _, c := range []struct {
		rpc, body string
		status    int
		code      string
	}{
		{"runs/log-metric", `{"run_id": "RUN", "key": "m", "value": 1}`, 400, "INVALID_PARAMETER_VALUE"},     // no timestamp
		{"runs/log-metric", `{"run_id": "RUN", "key": "m", "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"}, // no value
		{"runs/log-metric", `{"run_id": "RUN", "value": 1, "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"}, // no key
		{"runs/log-metric", `{"run_id": "RUN", "key": "m", "value": "x", "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/log-metric", `{"run_id": "RUN", "key": "../m", "value": 1, "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/log-metric", `{"key": "m", "value": 1, "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"}, // no run
		{"runs/log-metric", `{"run_id": "RUN", "run_uuid": "00000000000000000000000000000000", "key": "m", "value": 1, "timestamp": 1}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/log-metric", `{"run_id": "0123456789abcdef0123456789abcdef", "key": "m", "value": 1, "timestamp": 1}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"runs/log-parameter", `{"run_id": "RUN", "key": "p"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/log-parameter", `{"run_id": "RUN", "key": "p", "value": "` + strings.Repeat("v", 251) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/log-parameter", `{"run_id": "RUN", "key": "` + strings.Repeat("k", 251) + `", "value": "v"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/set-tag", `{"run_id": "RUN", "key": "mlgate.candidate_iid", "value": "7"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/set-tag", `{"run_id": "RUN", "key": "a//b", "value": "7"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/set-tag", `{"run_id": "RUN", "key": "t", "value": "` + strings.Repeat("v", 5001) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/set-tag", `{"run_id": "RUN", "key": "mlflow.runName", "value": "` + strings.Repeat("v", 256) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/delete-tag", `{"run_id": "RUN", "key": "mlgate.candidate_iid"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/delete-tag", `{"run_id": "RUN"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/update", `{"run_id": "RUN", "status": "DONE"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/update", `{"run_id": "RUN", "status": 9}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/update", `{"run_id": "RUN", "end_time": "later"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/delete", `{}`, 400, "INVALID_PARAMETER_VALUE"},
		{"runs/restore", `{"run_id": "0123456789abcdef0123456789abcdef"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
	} {
		r := post(c.rpc, c.body)
		if r.Status != c.status || r.MLflowError(t) != c.code {
			t.Errorf("%s %.100s: %d %s", c.rpc, c.body, r.Status, r.Body)
		}
	}
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/runs/get?run_id=nothex"), 404, "RESOURCE_DOES_NOT_EXIST")
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/runs/get"), 400, "INVALID_PARAMETER_VALUE")
}

func TestMLflowRunsLogBatchLimitsAndAtomicity(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	id := runsTestCreate(t, env, `{}`).Info.RunID
	list := func(n int, f func(i int) string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = f(i)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	metrics := func(n int) string {
		return list(n, func(i int) string { return fmt.Sprintf(`{"key": "m", "value": %d, "timestamp": 7, "step": %d}`, i, i) })
	}
	kvs := func(n int, prefix string) string {
		return list(n, func(i int) string { return fmt.Sprintf(`{"key": "%s%d", "value": "v"}`, prefix, i) })
	}
	batch := func(m, p, tg string) gatewaytest.Response {
		return env.MLflowPost(base, "runs/log-batch", `{"run_id": "`+id+`", "metrics": `+m+`, "params": `+p+`, "tags": `+tg+`}`)
	}
	for _, c := range []struct{ m, p, tg string }{
		{metrics(1001), "[]", "[]"},
		{"[]", kvs(101, "p"), "[]"},
		{"[]", "[]", kvs(101, "t")},
		{metrics(900), kvs(100, "p"), kvs(1, "t")},
	} {
		runsWantError(t, batch(c.m, c.p, c.tg), 400, "INVALID_PARAMETER_VALUE")
	}
	if h := runsTestHistory(t, env, id, "m"); len(h) != 0 {
		t.Fatalf("refused batches wrote %d points", len(h))
	}
	gatewaytest.WantStatus(t, batch(metrics(1000), "[]", "[]"), http.StatusOK)
	if h := runsTestHistory(t, env, id, "m"); len(h) != 1000 {
		t.Fatalf("%d points", len(h))
	}

	// All or nothing: a bad entry anywhere refuses the whole batch.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-parameter", `{"run_id": "`+id+`", "key": "fixed", "value": "1"}`), http.StatusOK)
	for _, c := range []struct{ m, p, tg string }{
		{`[{"key": "x", "value": 1, "timestamp": 1}]`, `[{"key": "fixed", "value": "2"}]`, `[{"key": "x", "value": "1"}]`},
		{`[{"key": "x", "value": 1, "timestamp": 1}]`, `[{"key": "d", "value": "1"}, {"key": "d", "value": "2"}]`, `[]`},
		{`[{"key": "x", "value": 1, "timestamp": 1}]`, `[]`, `[{"key": "mlgate.x", "value": "1"}]`},
		{`[{"key": "x", "value": 1, "timestamp": 1}, {"key": "x", "timestamp": 1}]`, `[]`, `[]`},
		{`[{"key": "x", "value": 1, "timestamp": -1}]`, `[]`, `[]`},
	} {
		runsWantError(t, batch(c.m, c.p, c.tg), 400, "INVALID_PARAMETER_VALUE")
	}
	g := runsTestGet(t, env, id)
	if _, ok := g.tag("x"); ok || len(runsTestHistory(t, env, id, "x")) != 0 {
		t.Fatalf("a refused batch wrote something: %+v", g.Data)
	}
	// An empty batch is fine; a batch point without timestamp gets 0, proto's default.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-batch", `{"run_id": "`+id+`"}`), http.StatusOK)
	gatewaytest.WantStatus(t, batch(`[{"key": "z", "value": 2}]`, "[]", "[]"), http.StatusOK)
	if h := runsTestHistory(t, env, id, "z"); len(h) != 1 || h[0]["timestamp"] != float64(0) {
		t.Fatalf("z history %v", h)
	}
}

func TestMLflowRunsMetricHistoryPaging(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	id := runsTestCreate(t, env, `{}`).Info.RunID
	for b := 0; b < 3; b++ {
		parts := make([]string, 1000)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"key": "loss", "value": %d, "timestamp": 1, "step": %d}`, b*1000+i, b*1000+i)
		}
		gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-batch", `{"run_id": "`+id+`", "metrics": [`+strings.Join(parts, ",")+`]}`), http.StatusOK)
	}
	// The client asks for 25000 at once: everything comes in one answer, in step order.
	hist := runsTestHistory(t, env, id, "loss")
	if len(hist) != 3000 || hist[0]["step"] != float64(0) || hist[2999]["step"] != float64(2999) {
		t.Fatalf("%d points", len(hist))
	}
	// Smaller pages chain through next_page_token.
	var steps []float64
	token := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		r := env.Get(base + "/api/2.0/mlflow/metrics/get-history?run_id=" + id + "&metric_key=loss&max_results=1200&page_token=" + url.QueryEscape(token))
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var out struct {
			Metrics       []map[string]any `json:"metrics"`
			NextPageToken string           `json:"next_page_token"`
		}
		r.JSON(t, &out)
		if len(out.Metrics) > 1200 {
			t.Fatalf("page of %d", len(out.Metrics))
		}
		for _, m := range out.Metrics {
			steps = append(steps, m["step"].(float64))
		}
		if token = out.NextPageToken; token == "" {
			break
		}
	}
	if len(steps) != 3000 || steps[1500] != 1500 {
		t.Fatalf("paged %d points", len(steps))
	}

	// An unknown key on a known run is {}; an unknown run is 404.
	r := env.Get(base + "/api/2.0/mlflow/metrics/get-history?run_id=" + id + "&metric_key=nope")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("unknown key: %s", r.Body)
	}
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/metrics/get-history?run_id=0123456789abcdef0123456789abcdef&metric_key=loss"), 404, "RESOURCE_DOES_NOT_EXIST")
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/metrics/get-history?run_id="+id), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/metrics/get-history?run_id="+id+"&metric_key=loss&page_token=garbage"), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/metrics/get-history?run_id="+id+"&metric_key=loss&max_results=many"), 400, "INVALID_PARAMETER_VALUE")
}

func TestMLflowRunsDeleteAndRestore(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "e"}`), http.StatusOK)
	alone := runsTestCreate(t, env, `{"experiment_id": "1"}`).Info.RunID
	withModel := runsTestCreate(t, env, `{"experiment_id": "1"}`).Info.RunID

	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/delete", `{"run_id": "`+alone+`"}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/delete", `{"run_id": "`+alone+`"}`), http.StatusOK) // retried
	if g := runsTestGet(t, env, alone); g.Info.LifecycleStage != "deleted" {
		t.Fatalf("deleted run %+v", g.Info)
	}
	// Writes to a deleted run are INVALID_PARAMETER_VALUE (400), never INVALID_STATE (500).
	for _, c := range []struct{ rpc, body string }{
		{"runs/log-metric", `{"run_id": "ID", "key": "m", "value": 1, "timestamp": 1}`},
		{"runs/log-parameter", `{"run_id": "ID", "key": "p", "value": "1"}`},
		{"runs/set-tag", `{"run_id": "ID", "key": "t", "value": "1"}`},
		{"runs/delete-tag", `{"run_id": "ID", "key": "mlflow.runName"}`},
		{"runs/log-batch", `{"run_id": "ID", "tags": [{"key": "t", "value": "1"}]}`},
		{"runs/update", `{"run_id": "ID", "status": "FINISHED"}`},
		{"runs/log-model", `{"run_id": "ID", "model_json": "{\"artifact_path\": \"m\", \"flavors\": {}, \"utc_time_created\": \"x\", \"run_id\": \"ID\"}"}`},
		{"runs/log-inputs", `{"run_id": "ID", "datasets": []}`},
	} {
		runsWantError(t, env.MLflowPost(base, c.rpc, strings.ReplaceAll(c.body, "ID", alone)), 400, "INVALID_PARAMETER_VALUE")
	}

	// Deleting the experiment deletes its active runs; restoring it restores exactly those.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`), http.StatusOK)
	if g := runsTestGet(t, env, withModel); g.Info.LifecycleStage != "deleted" {
		t.Fatalf("run of a deleted experiment %+v", g.Info)
	}
	runsWantError(t, env.MLflowPost(base, "runs/restore", `{"run_id": "`+withModel+`"}`), 400, "INVALID_PARAMETER_VALUE")
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/restore", `{"experiment_id": "1"}`), http.StatusOK)
	if g := runsTestGet(t, env, withModel); g.Info.LifecycleStage != "active" {
		t.Fatalf("run not restored with its experiment %+v", g.Info)
	}
	if g := runsTestGet(t, env, alone); g.Info.LifecycleStage != "deleted" {
		t.Fatalf("run deleted on its own came back %+v", g.Info)
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/restore", `{"run_id": "`+alone+`"}`), http.StatusOK)
	if g := runsTestGet(t, env, alone); g.Info.LifecycleStage != "active" {
		t.Fatalf("restored run %+v", g.Info)
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-metric", `{"run_id": "`+alone+`", "key": "m", "value": 1, "timestamp": 1}`), http.StatusOK)
}

func TestMLflowRunsLogModelAndInputs(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	id := runsTestCreate(t, env, `{}`).Info.RunID
	model := func(path string) string {
		m, _ := json.Marshal(map[string]any{"artifact_path": path, "flavors": map[string]any{"python_function": map[string]any{"loader_module": "x"}},
			"utc_time_created": "2026-11-30 00:00:00.000000", "run_id": id, "model_uuid": "abc"})
		b, _ := json.Marshal(map[string]string{"run_id": id, "model_json": string(m)})
		return string(b)
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-model", model("model")), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "runs/log-model", model("other")), http.StatusOK)
	hist, _ := runsTestGet(t, env, id).tag("mlflow.log-model.history")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(hist), &entries); err != nil || len(entries) != 2 ||
		entries[0]["artifact_path"] != "model" || entries[1]["artifact_path"] != "other" {
		t.Fatalf("history %q", hist)
	}
	// Concurrent calls on one run each keep their entry.
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if r := env.MLflowPost(base, "runs/log-model", model(fmt.Sprintf("concurrent-%d", i))); r.Status != http.StatusOK {
				t.Errorf("concurrent log-model %d: %d %s", i, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	hist, _ = runsTestGet(t, env, id).tag("mlflow.log-model.history")
	entries = nil
	if err := json.Unmarshal([]byte(hist), &entries); err != nil || len(entries) != 14 {
		t.Fatalf("after 12 concurrent log-model calls the history has %d entries, want 14: %v", len(entries), err)
	}
	for _, body := range []string{
		`{"run_id": "` + id + `"}`,
		`{"run_id": "` + id + `", "model_json": "not json"}`,
		`{"run_id": "` + id + `", "model_json": "{\"artifact_path\": \"m\"}"}`,
		// An entry that would push the history over the tag limit is refused, the history kept.
		model(strings.Repeat("p", 5000)),
	} {
		runsWantError(t, env.MLflowPost(base, "runs/log-model", body), 400, "INVALID_PARAMETER_VALUE")
	}
	if again, _ := runsTestGet(t, env, id).tag("mlflow.log-model.history"); again != hist {
		t.Fatalf("refused log-model changed the history: %q", again)
	}
	runsWantError(t, env.MLflowPost(base, "runs/log-model", strings.ReplaceAll(model("m"), id, "0123456789abcdef0123456789abcdef")), 404, "RESOURCE_DOES_NOT_EXIST")

	// Dataset inputs are accepted and dropped; the request is still checked.
	inputs := `{"run_id": "` + id + `", "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "train"}], "dataset": {"name": "d", "digest": "abc", "source_type": "local", "source": "{\"uri\": \"/tmp/d.csv\"}", "schema": "{}", "profile": "{}"}}]}`
	r := env.MLflowPost(base, "runs/log-inputs", inputs)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("log-inputs: %s", r.Body)
	}
	runsWantError(t, env.MLflowPost(base, "runs/log-inputs", `{"run_id": "`+id+`", "datasets": [{"dataset": {"name": "d"}}]}`), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, env.MLflowPost(base, "runs/log-inputs", `{"datasets": []}`), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, env.MLflowPost(base, "runs/log-inputs", `{"run_id": "0123456789abcdef0123456789abcdef"}`), 404, "RESOURCE_DOES_NOT_EXIST")
}

// TestMLflowRunsAreProjectScoped checks that a run id of one project is unknown in another.
func TestMLflowRunsAreProjectScoped(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	id := runsTestCreate(t, env, `{}`).Info.RunID
	prefix := env.Srv.URL + "/api/v4/projects/" + url.PathEscape("team/vision") + "/ml/mlflow"
	r := env.MLflowPost(prefix, "runs/create", `{"experiment_id": "0", "run_name": "elsewhere"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	runsWantError(t, env.Get(prefix+"/api/2.0/mlflow/runs/get?run_id="+id), 404, "RESOURCE_DOES_NOT_EXIST")
	runsWantError(t, env.MLflowPost(prefix, "runs/log-metric", `{"run_id": "`+id+`", "key": "m", "value": 1, "timestamp": 1}`), 404, "RESOURCE_DOES_NOT_EXIST")
}

// TestMLflowRunsUserIsThePrincipal checks that with auth on, user_id is the token's, not the client's.
func TestMLflowRunsUserIsThePrincipal(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{Auth: true})
	secret, _, err := auth.IssueToken(t.Context(), env.Store, auth.TokenRequest{ProjectPath: rpc.DefaultProject, Scope: metadata.ScopeWrite, Name: "ci-bot"})
	if err != nil {
		t.Fatal(err)
	}
	r := env.Do(http.MethodPost, env.Srv.URL+"/api/2.0/mlflow/runs/create", strings.NewReader(`{"user_id": "root"}`),
		map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + secret})
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out struct{ Run runsTestRun }
	r.JSON(t, &out)
	if out.Run.Info.UserID != "ci-bot" {
		t.Fatalf("user_id %q", out.Run.Info.UserID)
	}
}
