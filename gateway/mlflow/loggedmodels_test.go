package mlflow_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// lmEnv is a server with one experiment and one run in it, for logged-model tests.
type lmEnv struct {
	*gatewaytest.Env
	t      *testing.T
	expID  string
	runID  string
	prefix string // the MLflow RPC prefix, .../api/2.0/mlflow/
}

// newLMEnv's store clock ticks on every reading, so logged models created one after another have
// distinct creation times and orders by time do not fall to the random-id tie break.
func newLMEnv(t *testing.T) *lmEnv {
	t.Helper()
	env := gatewaytest.New(t, gateway.Config{}, boltstore.WithClock(gatewaytest.TickingClock(time.UnixMilli(1_800_000_000_000))))
	e := &lmEnv{Env: env, t: t, prefix: env.Srv.URL + "/api/2.0/mlflow/"}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	e.ok(http.MethodPost, "experiments/create", `{"name": "lm-test"}`, &exp)
	e.expID = exp.ExperimentID
	e.runID = runsTestCreate(t, env, `{"experiment_id": "`+e.expID+`"}`).Info.RunID
	return e
}

// call sends an RPC with a JSON body (a query string for GET) and returns the answer.
func (e *lmEnv) call(method, rpc, body string) gatewaytest.Response {
	e.t.Helper()
	if method == http.MethodGet {
		return e.Get(e.prefix + rpc + body)
	}
	return e.Do(method, e.prefix+rpc, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// ok calls an RPC that must answer 200 and decodes the answer into out (when not nil).
func (e *lmEnv) ok(method, rpc, body string, out any) {
	e.t.Helper()
	r := e.call(method, rpc, body)
	gatewaytest.WantStatus(e.t, r, http.StatusOK)
	if out != nil {
		r.JSON(e.t, out)
	}
}

// fails calls an RPC that must answer status with error_code code.
func (e *lmEnv) fails(method, rpc, body string, status int, code string) {
	e.t.Helper()
	runsWantError(e.t, e.call(method, rpc, body), status, code)
}

func (e *lmEnv) create(body string) message.LoggedModel {
	e.t.Helper()
	var out struct{ Model message.LoggedModel }
	e.ok(http.MethodPost, "logged-models", body, &out)
	return out.Model
}

func (e *lmEnv) get(id string) message.LoggedModel {
	e.t.Helper()
	var out struct{ Model message.LoggedModel }
	e.ok(http.MethodGet, "logged-models/"+id, "", &out)
	return out.Model
}

// errorMessage returns an MLflow error body's message.
func errorMessage(t *testing.T, r gatewaytest.Response) string {
	t.Helper()
	var body struct{ Message string }
	r.JSON(t, &body)
	return body.Message
}

func TestLoggedModelLifecycle(t *testing.T) {
	e := newLMEnv(t)
	lm := e.create(fmt.Sprintf(`{"experiment_id": %q, "name": "model", "model_type": "regressor", "source_run_id": %q,
		"params": [{"key": "factor", "value": "2.0"}], "tags": [{"key": "team", "value": "x"}]}`, e.expID, e.runID))
	info := lm.Info
	if !strings.HasPrefix(info.ModelID, "m-") || len(info.ModelID) != 34 || info.ExperimentID != e.expID ||
		info.Name != "model" || info.ModelType != "regressor" || info.SourceRunID != e.runID ||
		info.Status != "LOGGED_MODEL_PENDING" || info.ArtifactURI != "mlflow-artifacts:/"+e.expID+"/models/"+info.ModelID+"/artifacts" ||
		info.CreationTimestampMs == 0 || info.LastUpdatedTimestampMs < info.CreationTimestampMs {
		t.Fatalf("created: %+v", info)
	}
	if len(lm.Data.Params) != 1 || lm.Data.Params[0].Value != "2.0" || len(info.Tags) != 1 {
		t.Fatalf("created data: %+v %+v", lm.Data, info.Tags)
	}
	id := info.ModelID

	// A name is generated when none is given; the experiment defaults to "0" (Default).
	if anon := e.create(`{"experiment_id": "` + e.expID + `"}`); anon.Info.Name == "" {
		t.Fatal("no generated name")
	}

	// Finalize: READY or UPLOAD_FAILED, by name or number; PENDING or nonsense is 400.
	e.fails(http.MethodPatch, "logged-models/"+id, `{"status": "LOGGED_MODEL_PENDING"}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.fails(http.MethodPatch, "logged-models/"+id, `{"status": "DONE"}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.fails(http.MethodPatch, "logged-models/"+id, `{}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	var fin struct{ Model message.LoggedModel }
	e.ok(http.MethodPatch, "logged-models/"+id, `{"model_id": "`+id+`", "status": "LOGGED_MODEL_READY"}`, &fin)
	if fin.Model.Info.Status != "LOGGED_MODEL_READY" {
		t.Fatalf("finalized: %+v", fin.Model.Info)
	}

	// Tags: set, replace, delete (a key with a slash reaches the handler whole), delete an absent one.
	e.ok(http.MethodPatch, "logged-models/"+id+"/tags", `{"tags": [{"key": "stage", "value": "dev"}, {"key": "a/b", "value": "1"}]}`, nil)
	e.ok(http.MethodPatch, "logged-models/"+id+"/tags", `{"tags": [{"key": "stage", "value": "prod"}]}`, nil)
	e.ok(http.MethodDelete, "logged-models/"+id+"/tags/"+url.PathEscape("a/b"), "", nil)
	e.ok(http.MethodDelete, "logged-models/"+id+"/tags/absent", "", nil)
	got := e.get(id)
	tags := map[string]string{}
	for _, tg := range got.Info.Tags {
		tags[tg.Key] = tg.Value
	}
	if len(tags) != 2 || tags["stage"] != "prod" || tags["team"] != "x" {
		t.Fatalf("tags: %v", tags)
	}
	e.fails(http.MethodPatch, "logged-models/"+id+"/tags", `{"tags": [{"key": "", "value": "x"}]}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	// Params are immutable as a run's: the same value again is fine, another is 400.
	e.ok(http.MethodPost, "logged-models/"+id+"/params", `{"params": [{"key": "factor", "value": "2.0"}, {"key": "lr", "value": "0.1"}]}`, nil)
	e.fails(http.MethodPost, "logged-models/"+id+"/params", `{"params": [{"key": "factor", "value": "3.0"}]}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	if got := e.get(id); len(got.Data.Params) != 2 {
		t.Fatalf("params: %+v", got.Data.Params)
	}

	// Unknown and malformed ids are MLflow's 404; bad creates are 400 or 404.
	for _, bad := range []string{"m-00000000000000000000000000000001", "m-xyz", "42"} {
		e.fails(http.MethodGet, "logged-models/"+bad, "", http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
		e.fails(http.MethodPatch, "logged-models/"+bad, `{"status": "LOGGED_MODEL_READY"}`, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
		e.fails(http.MethodDelete, "logged-models/"+bad, "", http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	}
	e.fails(http.MethodPost, "logged-models", `{"experiment_id": "999"}`, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e.fails(http.MethodPost, "logged-models", `{"experiment_id": "`+e.expID+`", "source_run_id": "0123456789abcdef0123456789abcdef"}`,
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e.fails(http.MethodPost, "logged-models", `{"experiment_id": "`+e.expID+`", "name": "`+strings.Repeat("n", 501)+`"}`,
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.fails(http.MethodPost, "logged-models", `{"experiment_id": "`+e.expID+`", "params": [{"key": "k"}]}`,
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.fails(http.MethodPut, "logged-models/"+id, "{}", http.StatusNotFound, "ENDPOINT_NOT_FOUND")
	e.ok(http.MethodPost, "runs/delete", `{"run_id": "`+e.runID+`"}`, nil)
	e.fails(http.MethodPost, "logged-models", `{"experiment_id": "`+e.expID+`", "source_run_id": "`+e.runID+`"}`,
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	// Another project does not see it.
	other := e.Srv.URL + "/api/v4/projects/other/ml/mlflow/api/2.0/mlflow/logged-models/" + id
	runsWantError(t, e.Get(other), http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
}

// Metrics logged with model_id and a dataset belong to the run and to the logged model: runs/get,
// metric histories and the logged model's data.metrics all show them with their links.
func TestMetricsLinkedToALoggedModel(t *testing.T) {
	e := newLMEnv(t)
	id := e.create(`{"experiment_id": "` + e.expID + `", "source_run_id": "` + e.runID + `"}`).Info.ModelID
	e.ok(http.MethodPost, "runs/log-metric", fmt.Sprintf(`{"run_id": %q, "key": "acc", "value": 0.9, "timestamp": 5, "step": 1,
		"model_id": %q, "dataset_name": "eval", "dataset_digest": "e35a"}`, e.runID, id), nil)
	e.ok(http.MethodPost, "runs/log-batch", fmt.Sprintf(`{"run_id": %q, "metrics": [{"key": "loss", "value": 0.5, "timestamp": 6, "step": 0, "model_id": %q}]}`,
		e.runID, id), nil)
	// The same point again (a client retry) adds nothing.
	e.ok(http.MethodPost, "runs/log-metric", fmt.Sprintf(`{"run_id": %q, "key": "acc", "value": 0.9, "timestamp": 5, "step": 1,
		"model_id": %q, "dataset_name": "eval", "dataset_digest": "e35a"}`, e.runID, id), nil)

	lm := e.get(id)
	if len(lm.Data.Metrics) != 2 {
		t.Fatalf("logged model metrics: %+v", lm.Data.Metrics)
	}
	for _, m := range lm.Data.Metrics {
		if m.ModelID != id || m.RunID != e.runID {
			t.Fatalf("metric without its links: %+v", m)
		}
		if m.Key == "acc" && (m.DatasetName != "eval" || m.DatasetDigest != "e35a" || m.Step != 1) {
			t.Fatalf("acc: %+v", m)
		}
	}
	h := runsTestHistory(t, e.Env, e.runID, "acc")
	if len(h) != 1 || h[0]["model_id"] != id || h[0]["dataset_name"] != "eval" || h[0]["dataset_digest"] != "e35a" {
		t.Fatalf("history: %v", h)
	}
	var run struct {
		Run struct {
			Data struct{ Metrics []message.Metric } `json:"data"`
		} `json:"run"`
	}
	e.ok(http.MethodGet, "runs/get", "?run_id="+e.runID, &run)
	if len(run.Run.Data.Metrics) != 2 {
		t.Fatalf("run metrics: %+v", run.Run.Data.Metrics)
	}

	// A model id that is malformed or unknown is refused, and nothing is logged.
	e.fails(http.MethodPost, "runs/log-metric", `{"run_id": "`+e.runID+`", "key": "acc", "value": 1, "timestamp": 7, "model_id": "m-nope"}`,
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e.fails(http.MethodPost, "runs/log-metric", `{"run_id": "`+e.runID+`", "key": "acc", "value": 1, "timestamp": 7, "model_id": "m-00000000000000000000000000000001"}`,
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e.fails(http.MethodPost, "runs/log-metric", `{"run_id": "`+e.runID+`", "key": "acc", "value": 1, "timestamp": 7, "dataset_digest": "`+strings.Repeat("d", 37)+`"}`,
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	if h := runsTestHistory(t, e.Env, e.runID, "acc"); len(h) != 1 {
		t.Fatalf("refused points were logged: %v", h)
	}
}

// searchModels posts a logged-models/search and returns the names in order and the next token.
func (e *lmEnv) searchModels(body string) ([]string, string) {
	e.t.Helper()
	var out struct {
		Models        []message.LoggedModel `json:"models"`
		NextPageToken string                `json:"next_page_token"`
	}
	e.ok(http.MethodPost, "logged-models/search", body, &out)
	var names []string
	for _, m := range out.Models {
		names = append(names, m.Info.Name)
	}
	return names, out.NextPageToken
}

func TestSearchLoggedModels(t *testing.T) {
	e := newLMEnv(t)
	var exp2 struct {
		ExperimentID string `json:"experiment_id"`
	}
	e.ok(http.MethodPost, "experiments/create", `{"name": "second"}`, &exp2)
	ids := map[string]string{}
	for i, spec := range []struct{ name, exp, acc string }{{"a", e.expID, "0.9"}, {"b", e.expID, "0.6"}, {"c", exp2.ExperimentID, "0.8"}, {"d", e.expID, ""}} {
		id := e.create(fmt.Sprintf(`{"experiment_id": %q, "name": %q, "model_type": %q}`, spec.exp, spec.name, []string{"agent", "clf"}[i%2])).Info.ModelID
		ids[spec.name] = id
		if spec.acc != "" {
			e.ok(http.MethodPost, "runs/log-metric", fmt.Sprintf(`{"run_id": %q, "key": "acc", "value": %s, "timestamp": 1, "model_id": %q,
				"dataset_name": "eval", "dataset_digest": "e1"}`, e.runID, spec.acc, id), nil)
		}
	}
	both := fmt.Sprintf(`"experiment_ids": [%q, %q]`, e.expID, exp2.ExperimentID)
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{` + both + `}`, []string{"d", "c", "b", "a"}},
		{`{"experiment_ids": ["` + e.expID + `"]}`, []string{"d", "b", "a"}},
		{`{"experiment_ids": ["` + e.expID + `", "999"]}`, []string{"d", "b", "a"}}, // an unknown experiment adds nothing
		{`{` + both + `, "filter": "metrics.acc > 0.7", "order_by": [{"field_name": "metrics.acc", "ascending": false}]}`, []string{"a", "c"}},
		{`{` + both + `, "order_by": [{"field_name": "metrics.acc", "ascending": true}]}`, []string{"b", "c", "a", "d"}},
		{`{` + both + `, "filter": "metrics.acc > 0.5", "datasets": [{"dataset_name": "eval", "dataset_digest": "e1"}]}`, []string{"c", "b", "a"}},
		{`{` + both + `, "filter": "metrics.acc > 0.5", "datasets": [{"dataset_name": "train", "dataset_digest": "e1"}]}`, nil},
		{`{` + both + `, "order_by": [{"field_name": "metrics.acc", "ascending": false, "dataset_name": "eval", "dataset_digest": "e1"}]}`, []string{"a", "c", "b", "d"}},
		{`{` + both + `, "filter": "model_type = 'agent' AND name != 'c'"}`, []string{"a"}},
		{`{` + both + `, "filter": "model_id = '` + ids["b"] + `'"}`, []string{"b"}},
		{`{` + both + `, "order_by": [{"field_name": "name"}]}`, []string{"a", "b", "c", "d"}},
	} {
		if got, _ := e.searchModels(tc.body); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.body, got, tc.want)
		}
	}

	// Paging: every model once, and a token belongs to its search.
	var all []string
	body := `{` + both + `, "max_results": 1, "order_by": [{"field_name": "creation_time", "ascending": true}]}`
	page, tok := e.searchModels(body)
	for all = page; tok != ""; all = append(all, page...) {
		page, tok = e.searchModels(strings.TrimSuffix(body, "}") + `, "page_token": "` + tok + `"}`)
	}
	if !slices.Equal(all, []string{"a", "b", "c", "d"}) {
		t.Fatalf("paged: %v", all)
	}
	_, tok = e.searchModels(body)
	e.fails(http.MethodPost, "logged-models/search", `{`+both+`, "page_token": "`+tok+`"}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")

	for _, bad := range []string{
		`{` + both + `, "filter": "start_time > 0"}`,
		`{` + both + `, "filter": "metrics.acc > 'x'"}`,
		`{` + both + `, "order_by": [{"field_name": "bogus.x"}]}`,
		`{` + both + `, "order_by": [{"ascending": true}]}`,
		`{` + both + `, "datasets": [{"dataset_digest": "e1"}]}`,
		`{` + both + `, "max_results": 100000}`,
		`{"experiment_ids": ["x"]}`,
		`{` + both + `, "page_token": "garbage"}`,
	} {
		e.fails(http.MethodPost, "logged-models/search", bad, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
}

// Deleting a logged model that backs a version is refused with a clear 400; once the version is gone it
// deletes the logged model with its files.
func TestDeleteLoggedModelThatBacksAVersion(t *testing.T) {
	e := newLMEnv(t)
	lm := e.create(`{"experiment_id": "` + e.expID + `", "source_run_id": "` + e.runID + `"}`).Info
	file := e.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(lm.ArtifactURI, "mlflow-artifacts:/") + "/MLmodel"
	gatewaytest.WantStatus(t, e.Put(file, []byte("flavors: {}\n")), http.StatusOK)
	e.ok(http.MethodPost, "registered-models/create", `{"name": "reg"}`, nil)
	var mv struct {
		ModelVersion message.ModelVersion `json:"model_version"`
	}
	e.ok(http.MethodPost, "model-versions/create", `{"name": "reg", "source": "models:/`+lm.ModelID+`", "model_id": "`+lm.ModelID+`"}`, &mv)
	if mv.ModelVersion.ModelID != lm.ModelID || mv.ModelVersion.RunID != e.runID || mv.ModelVersion.Source != "models:/"+lm.ModelID {
		t.Fatalf("version: %+v", mv.ModelVersion)
	}
	// The logged model now lists the version it backs.
	got := e.get(lm.ModelID)
	if len(got.Info.Registrations) != 1 || got.Info.Registrations[0] != (message.Registration{Name: "reg", Version: "1"}) {
		t.Fatalf("registrations: %+v", got.Info.Registrations)
	}
	tags := map[string]string{}
	for _, tg := range got.Info.Tags {
		tags[tg.Key] = tg.Value
	}
	if tags["mlflow.modelVersions"] != `[{"name": "reg", "version": 1}]` {
		t.Fatalf("mlflow.modelVersions tag: %q", tags["mlflow.modelVersions"])
	}

	r := e.call(http.MethodDelete, "logged-models/"+lm.ModelID, "")
	runsWantError(t, r, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	if !strings.Contains(errorMessage(t, r), "version") {
		t.Fatalf("the refusal does not say why: %s", r.Body)
	}
	gatewaytest.WantStatus(t, e.Get(file), http.StatusOK)

	e.ok(http.MethodDelete, "model-versions/delete", `{"name": "reg", "version": "1"}`, nil)
	e.ok(http.MethodDelete, "logged-models/"+lm.ModelID, "", nil)
	e.fails(http.MethodGet, "logged-models/"+lm.ModelID, "", http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	gatewaytest.WantStatus(t, e.Get(file), http.StatusNotFound)
	if keys := e.BlobKeys(); len(keys) != 0 {
		t.Fatalf("blobs left after the delete: %v", keys)
	}
	// The run it came from is untouched.
	e.ok(http.MethodGet, "runs/get", "?run_id="+e.runID, nil)
}

// model-versions/create with a model_id backs the version with the logged model's files: the download
// URI is the logged model's location, and a logged model of another experiment is referenced as runs are.
func TestVersionsBackedByLoggedModels(t *testing.T) {
	e := newLMEnv(t)
	lm := e.create(`{"experiment_id": "` + e.expID + `", "name": "model", "source_run_id": "` + e.runID + `"}`).Info
	e.ok(http.MethodPost, "registered-models/create", `{"name": "reg"}`, nil)
	e.ok(http.MethodPost, "model-versions/create", `{"name": "reg", "source": "models:/`+lm.ModelID+`", "model_id": "`+lm.ModelID+`"}`, nil)
	// The 3.x client sends the model id in source alone too.
	e.ok(http.MethodPost, "model-versions/create", `{"name": "reg", "source": "models:/`+lm.ModelID+`"}`, nil)
	for _, v := range []string{"1", "2"} {
		var uri struct {
			ArtifactURI string `json:"artifact_uri"`
		}
		e.ok(http.MethodGet, "model-versions/get-download-uri", "?name=reg&version="+v, &uri)
		if uri.ArtifactURI != lm.ArtifactURI {
			t.Fatalf("version %s download uri %q, want %q", v, uri.ArtifactURI, lm.ArtifactURI)
		}
		var got struct {
			ModelVersion message.ModelVersion `json:"model_version"`
		}
		e.ok(http.MethodGet, "model-versions/get", "?name=reg&version="+v, &got)
		if got.ModelVersion.ModelID != lm.ModelID || got.ModelVersion.RunID != e.runID {
			t.Fatalf("version %s: %+v", v, got.ModelVersion)
		}
	}
	e.fails(http.MethodPost, "model-versions/create", `{"name": "reg", "source": "models:/m-00000000000000000000000000000001", "model_id": "m-00000000000000000000000000000001"}`,
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	e.fails(http.MethodPost, "model-versions/create", `{"name": "reg", "source": "x", "model_id": "m-bad"}`,
		http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
	// The package API lists the logged model's files under the registered version's semver.
	file := e.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(lm.ArtifactURI, "mlflow-artifacts:/") + "/MLmodel"
	gatewaytest.WantStatus(t, e.Put(file, []byte("m")), http.StatusOK)
	r := e.Get(e.Srv.URL + "/api/v4/projects/default/packages/ml_models/reg/1.0.0/files")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var files []struct{ Path string }
	r.JSON(t, &files)
	if len(files) != 1 || files[0].Path != "MLmodel" {
		t.Fatalf("package listing: %s", r.Body)
	}
}

func TestRunInputsOutputsAndDatasets(t *testing.T) {
	e := newLMEnv(t)
	lm := e.create(`{"experiment_id": "` + e.expID + `"}`).Info.ModelID
	dataset := `{"name": "train", "digest": "f9e2", "source_type": "code", "source": "{}", "schema": "{\"cols\": 2}", "profile": "{\"rows\": 6}"}`
	inputs := fmt.Sprintf(`{"run_id": %q, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": %s}],
		"models": [{"model_id": %q}]}`, e.runID, dataset, lm)
	e.ok(http.MethodPost, "runs/log-inputs", inputs, nil)
	e.ok(http.MethodPost, "runs/log-inputs", inputs, nil) // twice: stored once
	// The same dataset again on the same run keeps its first input, tags included, as MLflow's server
	// does (the 3.x client logs a model's evaluation dataset again without tags).
	e.ok(http.MethodPost, "runs/log-inputs", fmt.Sprintf(`{"run_id": %q, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": %s}]}`,
		e.runID, dataset), nil)
	e.ok(http.MethodPost, "runs/outputs", fmt.Sprintf(`{"run_id": %q, "models": [{"model_id": %q, "step": 3}]}`, e.runID, lm), nil)
	// Another run uses the dataset in another context: the model keeps the dataset once.
	run2 := runsTestCreate(t, e.Env, `{"experiment_id": "`+e.expID+`"}`).Info.RunID
	e.ok(http.MethodPost, "runs/log-inputs", fmt.Sprintf(`{"run_id": %q, "datasets": [{"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": %s}]}`,
		run2, dataset), nil)

	var got struct {
		Run struct {
			Inputs  message.RunInputs  `json:"inputs"`
			Outputs message.RunOutputs `json:"outputs"`
		} `json:"run"`
	}
	e.ok(http.MethodGet, "runs/get", "?run_id="+e.runID, &got)
	in := got.Run.Inputs
	if len(in.DatasetInputs) != 1 || len(in.ModelInputs) != 1 || in.ModelInputs[0].ModelID != lm {
		t.Fatalf("inputs: %+v", in)
	}
	d := in.DatasetInputs[0]
	if d.Dataset.Name != "train" || d.Dataset.Digest != "f9e2" || d.Dataset.Schema != `{"cols": 2}` || d.Dataset.Profile != `{"rows": 6}` ||
		len(d.Tags) != 1 || d.Tags[0].Value != "training" {
		t.Fatalf("dataset input: %+v", d)
	}
	if outs := got.Run.Outputs.ModelOutputs; len(outs) != 1 || outs[0] != (message.ModelOutput{ModelID: lm, Step: 3}) {
		t.Fatalf("outputs: %+v", got.Run.Outputs)
	}

	// runs/search returns the inputs too.
	var search struct {
		Runs []struct {
			Inputs message.RunInputs `json:"inputs"`
		} `json:"runs"`
	}
	e.ok(http.MethodPost, "runs/search", `{"experiment_ids": ["`+e.expID+`"]}`, &search)
	if len(search.Runs) != 2 || len(search.Runs[0].Inputs.DatasetInputs) != 1 || len(search.Runs[1].Inputs.DatasetInputs) != 1 {
		t.Fatalf("runs/search inputs: %+v", search.Runs)
	}

	var sums struct {
		Summaries []map[string]string `json:"dataset_summaries"`
	}
	e.ok(http.MethodPost, "experiments/search-datasets", `{"experiment_ids": ["`+e.expID+`"]}`, &sums)
	b, _ := json.Marshal(sums.Summaries)
	if string(b) != `[{"context":"eval","digest":"f9e2","experiment_id":"`+e.expID+`","name":"train"},{"context":"training","digest":"f9e2","experiment_id":"`+e.expID+`","name":"train"}]` {
		t.Fatalf("search-datasets: %s", b)
	}

	// MLflow's limits give a clear 400, and nothing is stored.
	big := strings.Repeat("s", 1<<20)
	for _, bad := range []string{
		fmt.Sprintf(`{"run_id": %q, "datasets": [{"dataset": {"name": "x", "digest": "d", "source_type": "code", "source": "{}", "schema": %q}}]}`, e.runID, big),
		fmt.Sprintf(`{"run_id": %q, "datasets": [{"dataset": {"name": "x", "digest": "%s", "source_type": "code", "source": "{}"}}]}`, e.runID, strings.Repeat("d", 37)),
		fmt.Sprintf(`{"run_id": %q, "datasets": [{"dataset": {"digest": "d", "source_type": "code", "source": "{}"}}]}`, e.runID),
		fmt.Sprintf(`{"run_id": %q, "datasets": [{}]}`, e.runID),
		fmt.Sprintf(`{"run_id": %q, "models": [{"model_id": "nope"}]}`, e.runID),
		fmt.Sprintf(`{"run_id": %q, "datasets": [{"tags": [{"key": "%s", "value": "v"}], "dataset": {"name": "x", "digest": "d", "source_type": "code", "source": "{}"}}]}`,
			e.runID, strings.Repeat("k", 256)),
	} {
		e.fails(http.MethodPost, "runs/log-inputs", bad, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	}
	e.fails(http.MethodPost, "runs/outputs", `{"run_id": "`+e.runID+`", "models": [{"model_id": "nope"}]}`, http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.ok(http.MethodGet, "runs/get", "?run_id="+e.runID, &got)
	if len(got.Run.Inputs.DatasetInputs) != 1 {
		t.Fatalf("a refused input was stored: %+v", got.Run.Inputs)
	}
}

// Tracing and GenAI routes, under every prefix, answer MLflow's ENDPOINT_NOT_FOUND body with a message
// saying mlgate does not store traces: never a 5xx that the client would retry.
func TestTracingRoutesAreNotServed(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	prefixed := "/api/v4/projects/default/ml/mlflow"
	for _, req := range []struct{ method, path string }{
		{"POST", "/api/2.0/mlflow/traces"},
		{"GET", "/api/2.0/mlflow/traces/tr-1/info"},
		{"POST", "/api/3.0/mlflow/traces"},
		{"POST", "/api/3.0/mlflow/traces/search"},
		{"GET", "/api/3.0/mlflow/traces/batchGet?trace_ids=tr-1"},
		{"POST", "/api/3.0/mlflow/scorers/register"},
		{"POST", "/api/3.0/mlflow/datasets/create"},
		{"POST", "/v1/traces"},
		{"GET", "/version"},
		{"POST", prefixed + "/api/3.0/mlflow/traces"},
		{"POST", prefixed + "/v1/traces"},
	} {
		r := env.Do(req.method, env.Srv.URL+req.path, strings.NewReader("{}"), map[string]string{"Content-Type": "application/json"})
		runsWantError(t, r, http.StatusNotFound, "ENDPOINT_NOT_FOUND")
		if !strings.Contains(errorMessage(t, r), "traces") {
			t.Errorf("%s %s: message does not say mlgate stores no traces: %s", req.method, req.path, r.Body)
		}
	}
}

// artifacts/directories lists one level of a logged model's files, as the proxy lists a run's.
func TestListLoggedModelArtifacts(t *testing.T) {
	e := newLMEnv(t)
	lm := e.create(`{"experiment_id": "` + e.expID + `"}`).Info
	base := e.Srv.URL + "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(lm.ArtifactURI, "mlflow-artifacts:/")
	for p, body := range map[string]string{"MLmodel": "m", "data/model.pkl": "pickle", "data/sub/x.json": "{}"} {
		gatewaytest.WantStatus(t, e.Put(base+"/"+p, []byte(body)), http.StatusOK)
	}
	list := func(dir string) string {
		t.Helper()
		var out struct {
			RootURI string             `json:"root_uri"`
			Files   []message.FileInfo `json:"files"`
		}
		q := ""
		if dir != "" {
			q = "?artifact_directory_path=" + url.QueryEscape(dir)
		}
		e.ok(http.MethodGet, "logged-models/"+lm.ModelID+"/artifacts/directories", q, &out)
		if out.RootURI != lm.ArtifactURI {
			t.Fatalf("root_uri %q, want %q", out.RootURI, lm.ArtifactURI)
		}
		var parts []string
		for _, f := range out.Files {
			size := int64(-1)
			if f.FileSize != nil {
				size = *f.FileSize
			}
			parts = append(parts, fmt.Sprintf("%s:%v:%d", f.Path, f.IsDir, size))
		}
		return strings.Join(parts, " ")
	}
	for dir, want := range map[string]string{
		"":         "MLmodel:false:1 data:true:-1",
		"data":     "data/model.pkl:false:6 data/sub:true:-1",
		"data/sub": "data/sub/x.json:false:2",
		"nothing":  "",
	} {
		if got := list(dir); got != want {
			t.Errorf("list %q: %q, want %q", dir, got, want)
		}
	}
	e.fails(http.MethodGet, "logged-models/"+lm.ModelID+"/artifacts/directories", "?artifact_directory_path=..%2Fx", http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	e.fails(http.MethodGet, "logged-models/m-00000000000000000000000000000001/artifacts/directories", "", http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST")
}
