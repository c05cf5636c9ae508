package mlflow_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
)

func TestMLflowExperimentsAreModels(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	r := env.Get(base + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=My+Experiment")
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	if code := r.MLflowError(t); code != "RESOURCE_DOES_NOT_EXIST" {
		t.Fatalf("unknown name: %s", code)
	}

	r = env.MLflowPost(base, "experiments/create", `{"name": "My Experiment", "tags": [{"key": "team", "value": "vision"}], "unknown_field": 1}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var created struct {
		ExperimentID string `json:"experiment_id"`
	}
	r.JSON(t, &created)
	if created.ExperimentID != "1" {
		t.Fatalf("experiment_id %q", created.ExperimentID)
	}

	var got struct{ Experiment message.Experiment }
	r = env.Get(base + "/api/2.0/mlflow/experiments/get?experiment_id=1")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	r.JSON(t, &got)
	tags := map[string]string{}
	for _, tag := range got.Experiment.Tags {
		tags[tag.Key] = tag.Value
	}
	if got.Experiment.Name != "My Experiment" || got.Experiment.LifecycleStage != "active" ||
		tags["team"] != "vision" || tags["mlgate.name"] != "my_experiment" || got.Experiment.CreationTime == 0 {
		t.Fatalf("experiment %+v", got.Experiment)
	}

	// Experiment "0" is the project's default model, created on first reference.
	r = env.Get(base + "/api/2.0/mlflow/experiments/get?experiment_id=0")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var def struct{ Experiment message.Experiment }
	r.JSON(t, &def)
	if def.Experiment.ExperimentID != "0" || def.Experiment.Name != "Default" {
		t.Fatalf("default experiment %+v", def.Experiment)
	}
	for _, q := range []string{"My+Experiment", "my_experiment"} {
		r = env.Get(base + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=" + q)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		r.JSON(t, &got)
		if got.Experiment.ExperimentID != "1" {
			t.Fatalf("get-by-name %s: %+v", q, got.Experiment)
		}
	}

	// The experiment is the model: its slug is the package name, its iid the legacy name.
	gatewaytest.WantStatus(t, env.Put(base+"/api/v4/projects/default/packages/ml_models/my_experiment/1.0.0/files/a.txt", []byte("a")), http.StatusCreated)
	r = env.Get(base + "/api/v4/projects/default/packages/ml_models/ml_experiment_1/1/files/a.txt")
	gatewaytest.WantStatus(t, r, http.StatusOK)

	// The same display name again is RESOURCE_ALREADY_EXISTS with MLflow's 400, not the package API's 409.
	r = env.MLflowPost(base, "experiments/create", `{"name": "My Experiment"}`)
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
	if code := r.MLflowError(t); code != "RESOURCE_ALREADY_EXISTS" {
		t.Fatalf("duplicate: %s", code)
	}
	// A different display name with the same slug gets a suffixed slug.
	r = env.MLflowPost(base, "experiments/create", `{"name": "my experiment"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	r = env.Get(base + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=my_experiment_2")
	gatewaytest.WantStatus(t, r, http.StatusOK)
}

func TestMLflowPerProjectPrefixIsolatesProjects(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	prefix := env.Srv.URL + "/api/v4/projects/" + url.PathEscape("team/vision") + "/ml/mlflow"
	gatewaytest.WantStatus(t, env.MLflowPost(prefix, "experiments/create", `{"name": "churn"}`), http.StatusOK)
	gatewaytest.WantStatus(t, env.Get(prefix+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn"), http.StatusOK)
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=churn"), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/v4/projects/1/ml/mlflow/api/2.0/mlflow/experiments/get?experiment_id=1"), http.StatusOK)
	r := env.Get(env.Srv.URL + "/api/v4/projects/99/ml/mlflow/api/2.0/mlflow/experiments/get?experiment_id=1")
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	r.MLflowError(t)
}

func TestMLflowBadInputIs400AndUnknownRPCsAreEndpointNotFound(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	for _, c := range []struct {
		r      gatewaytest.Response
		status int
		code   string
	}{
		{env.MLflowPost(base, "experiments/create", `{"name": `), 400, "INVALID_PARAMETER_VALUE"},
		{env.MLflowPost(base, "experiments/create", `[1, 2]`), 400, "INVALID_PARAMETER_VALUE"},
		{env.MLflowPost(base, "experiments/create", `{}`), 400, "INVALID_PARAMETER_VALUE"},
		{env.MLflowPost(base, "experiments/create", `{"name": 7}`), 400, "INVALID_PARAMETER_VALUE"},
		{env.MLflowPost(base, "experiments/create", `{"name": "x", "tags": "nope"}`), 400, "INVALID_PARAMETER_VALUE"},
		{env.Get(base + "/api/2.0/mlflow/experiments/get?experiment_id=abc"), 400, "INVALID_PARAMETER_VALUE"},
		{env.Get(base + "/api/2.0/mlflow/experiments/get?experiment_id=-1"), 400, "INVALID_PARAMETER_VALUE"},
		{env.MLflowPost(base, "experiments/create", `{"name": "x", "tags": [{"key": 1}]}`), 400, "INVALID_PARAMETER_VALUE"},
		{env.Get(base + "/api/2.0/mlflow/experiments/get?experiment_id=42"), 404, "RESOURCE_DOES_NOT_EXIST"},
		{env.Get(base + "/api/2.0/mlflow/experiments/get"), 400, "INVALID_PARAMETER_VALUE"},
		{env.Get(base + "/api/2.0/mlflow/no/such/rpc"), 404, "ENDPOINT_NOT_FOUND"},
		{env.MLflowPost(base, "experiments/get", `{}`), 404, "ENDPOINT_NOT_FOUND"},
	} {
		if c.r.Status != c.status {
			t.Errorf("status %d, want %d: %s", c.r.Status, c.status, c.r.Body)
			continue
		}
		if code := c.r.MLflowError(t); code != c.code {
			t.Errorf("code %s, want %s: %s", code, c.code, c.r.Body)
		}
	}
}

func TestMLflowUnservedMethodIsEndpointNotFound(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	r := env.Do(http.MethodPut, env.Srv.URL+"/api/2.0/mlflow/experiments/create", strings.NewReader("{}"), nil)
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	if code := r.MLflowError(t); code != "ENDPOINT_NOT_FOUND" {
		t.Fatalf("code %s", code)
	}
}
