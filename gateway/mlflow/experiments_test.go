package mlflow_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/metadata"
)

// experimentsTestGet fetches experiment id.
func experimentsTestGet(t *testing.T, env *gatewaytest.Env, id string) message.Experiment {
	t.Helper()
	r := env.Get(env.Srv.URL + "/api/2.0/mlflow/experiments/get?experiment_id=" + id)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var out struct{ Experiment message.Experiment }
	r.JSON(t, &out)
	return out.Experiment
}

func experimentsTestTags(e message.Experiment) map[string]string {
	tags := map[string]string{}
	for _, t := range e.Tags {
		tags[t.Key] = t.Value
	}
	return tags
}

func TestMLflowExperimentsUpdate(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "My Experiment"}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "taken"}`), http.StatusOK)

	r := env.MLflowPost(base, "experiments/update", `{"experiment_id": "1", "new_name": "Renamed"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("update answered %s", r.Body)
	}
	e := experimentsTestGet(t, env, "1")
	if e.Name != "Renamed" || experimentsTestTags(e)["mlgate.name"] != "my_experiment" {
		t.Fatalf("renamed experiment %+v", e)
	}
	gatewaytest.WantStatus(t, env.Get(base+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=Renamed"), http.StatusOK)
	// The old display name is free again; the slug still finds the model.
	runsWantError(t, env.Get(base+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=My+Experiment"), 404, "RESOURCE_DOES_NOT_EXIST")
	gatewaytest.WantStatus(t, env.Get(base+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=my_experiment"), http.StatusOK)

	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"experiment_id": "1", "new_name": "taken"}`, 400, "RESOURCE_ALREADY_EXISTS"},
		{`{"experiment_id": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"new_name": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "new_name": "` + strings.Repeat("n", 256) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "new_name": "bad\u0001name"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "9", "new_name": "x"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
	} {
		r := env.MLflowPost(base, "experiments/update", c.body)
		if r.Status != c.status || r.MLflowError(t) != c.code {
			t.Errorf("%.80s: %d %s", c.body, r.Status, r.Body)
		}
	}
	// A deleted experiment cannot be renamed, and its name stays taken.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/delete", `{"experiment_id": "2"}`), http.StatusOK)
	runsWantError(t, env.MLflowPost(base, "experiments/update", `{"experiment_id": "2", "new_name": "fresh"}`), 400, "INVALID_PARAMETER_VALUE")
	runsWantError(t, env.MLflowPost(base, "experiments/update", `{"experiment_id": "1", "new_name": "taken"}`), 400, "RESOURCE_ALREADY_EXISTS")
}

func TestMLflowExperimentsDeleteAndRestore(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "My Experiment"}`), http.StatusOK)
	run := runsTestCreate(t, env, `{"experiment_id": "1"}`).Info.RunID

	// The 2.17.2 trace: delete, get shows "deleted", get-by-name still finds it, restore.
	r := env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("delete answered %s", r.Body)
	}
	if e := experimentsTestGet(t, env, "1"); e.LifecycleStage != "deleted" || e.LastUpdateTime < e.CreationTime {
		t.Fatalf("deleted experiment %+v", e)
	}
	r = env.Get(base + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=My+Experiment")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"lifecycle_stage":"deleted"`) {
		t.Fatalf("get-by-name of a deleted experiment: %s", r.Body)
	}
	if g := runsTestGet(t, env, run); g.Info.LifecycleStage != "deleted" {
		t.Fatalf("run of deleted experiment %+v", g.Info)
	}
	// Retried deletes are harmless; the name stays taken.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`), http.StatusOK)
	runsWantError(t, env.MLflowPost(base, "experiments/create", `{"name": "My Experiment"}`), 400, "RESOURCE_ALREADY_EXISTS")

	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/restore", `{"experiment_id": "1"}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/restore", `{"experiment_id": "1"}`), http.StatusOK)
	if e := experimentsTestGet(t, env, "1"); e.LifecycleStage != "active" {
		t.Fatalf("restored experiment %+v", e)
	}
	if g := runsTestGet(t, env, run); g.Info.LifecycleStage != "active" {
		t.Fatalf("run of restored experiment %+v", g.Info)
	}

	// A model in the registry cannot be deleted through the tracking API.
	m, err := env.Store.Model(context.Background(), metadata.ModelRef{Project: 1, IID: 1})
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := env.Store.UpdateModel(context.Background(), m.ID, metadata.ModelUpdate{InRegistry: &yes}); err != nil {
		t.Fatal(err)
	}
	r = env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`)
	runsWantError(t, r, 400, "INVALID_PARAMETER_VALUE")
	if !strings.Contains(string(r.Body), "delete it from the registry first") {
		t.Fatalf("message %s", r.Body)
	}
	if e := experimentsTestGet(t, env, "1"); e.LifecycleStage != "active" {
		t.Fatalf("registered experiment deleted: %+v", e)
	}

	for _, c := range []struct {
		rpc, body string
		status    int
		code      string
	}{
		{"experiments/delete", `{}`, 400, "INVALID_PARAMETER_VALUE"},
		{"experiments/delete", `{"experiment_id": "abc"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"experiments/delete", `{"experiment_id": "5"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"experiments/restore", `{"experiment_id": "5"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"experiments/restore", `{}`, 400, "INVALID_PARAMETER_VALUE"},
	} {
		r := env.MLflowPost(base, c.rpc, c.body)
		if r.Status != c.status || r.MLflowError(t) != c.code {
			t.Errorf("%s %s: %d %s", c.rpc, c.body, r.Status, r.Body)
		}
	}
}

func TestMLflowExperimentsSetTag(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "e", "tags": [{"key": "team", "value": "a"}]}`), http.StatusOK)

	r := env.MLflowPost(base, "experiments/set-experiment-tag", `{"experiment_id": "1", "key": "team", "value": "b"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != "{}" {
		t.Fatalf("set-experiment-tag answered %s", r.Body)
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/set-experiment-tag", `{"experiment_id": "1", "key": "note", "value": ""}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/set-experiment-tag", `{"experiment_id": "1", "key": "mlgate.semver_bump", "value": "patch"}`), http.StatusOK)
	tags := experimentsTestTags(experimentsTestGet(t, env, "1"))
	if tags["team"] != "b" || tags["mlgate.semver_bump"] != "patch" || tags["mlgate.name"] != "e" {
		t.Fatalf("tags %v", tags)
	}
	if _, ok := tags["note"]; !ok {
		t.Fatalf("empty-valued tag missing: %v", tags)
	}
	// The default experiment takes tags too.
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/set-experiment-tag", `{"experiment_id": "0", "key": "k", "value": "v"}`), http.StatusOK)
	if experimentsTestTags(experimentsTestGet(t, env, "0"))["k"] != "v" {
		t.Fatal("default experiment tag missing")
	}

	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"experiment_id": "1", "key": "mlgate.name", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "mlgate.version", "value": "1.0.0"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "mlgate.semver_bump", "value": "huge"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "bad*key", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "../up", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "k", "value": "` + strings.Repeat("v", 5001) + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "1", "key": "k"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"key": "k", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{`{"experiment_id": "3", "key": "k", "value": "x"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
	} {
		r := env.MLflowPost(base, "experiments/set-experiment-tag", c.body)
		if r.Status != c.status || r.MLflowError(t) != c.code {
			t.Errorf("%.80s: %d %s", c.body, r.Status, r.Body)
		}
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/delete", `{"experiment_id": "1"}`), http.StatusOK)
	runsWantError(t, env.MLflowPost(base, "experiments/set-experiment-tag", `{"experiment_id": "1", "key": "k", "value": "x"}`), 400, "INVALID_PARAMETER_VALUE")

	// experiments/create applies the same tag rules.
	runsWantError(t, env.MLflowPost(base, "experiments/create", `{"name": "f", "tags": [{"key": "mlgate.name", "value": "x"}]}`), 400, "INVALID_PARAMETER_VALUE")
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "f", "tags": [{"key": "mlgate.semver_bump", "value": "major"}]}`), http.StatusOK)
}
