package registry_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/metadata"
)

// registryFixture drives the registry RPCs of project team/vision through its per-project prefix, with
// experiments and runs made directly in the store so that these tests do not depend on runs/*.
type registryFixture struct {
	t       *testing.T
	env     *gatewaytest.Env
	base    string // the tracking URI
	project *metadata.Project
}

func newRegistryFixture(t *testing.T) *registryFixture {
	t.Helper()
	env := gatewaytest.New(t, gateway.Config{})
	p, err := env.Store.EnsureProject(context.Background(), "team/vision")
	if err != nil {
		t.Fatal(err)
	}
	return &registryFixture{t: t, env: env, base: env.Srv.URL + "/api/v4/projects/team%2Fvision/ml/mlflow", project: p}
}

func (f *registryFixture) experiment(name string) *metadata.Model {
	f.t.Helper()
	m := &metadata.Model{Project: f.project.ID, DisplayName: name}
	if err := f.env.Store.CreateModel(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
	return m
}

func (f *registryFixture) run(m *metadata.Model) *metadata.Candidate {
	f.t.Helper()
	c := &metadata.Candidate{Project: f.project.ID, ModelID: m.ID, Name: "run"}
	if err := f.env.Store.CreateCandidate(context.Background(), c, nil); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *registryFixture) call(method, rpc, body string) gatewaytest.Response {
	f.t.Helper()
	if method == http.MethodGet {
		return f.env.Get(f.base + "/api/2.0/mlflow/" + rpc + "?" + body)
	}
	return f.env.Do(method, f.base+"/api/2.0/mlflow/"+rpc, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
}

// ok calls an RPC, requires 200 and decodes the answer into out (when not nil).
func (f *registryFixture) ok(method, rpc, body string, out any) {
	f.t.Helper()
	r := f.call(method, rpc, body)
	gatewaytest.WantStatus(f.t, r, http.StatusOK)
	if out != nil {
		r.JSON(f.t, out)
	}
}

// fails calls an RPC and requires an MLflow error with status and code.
func (f *registryFixture) fails(method, rpc, body string, status int, code string) {
	f.t.Helper()
	r := f.call(method, rpc, body)
	if r.Status != status {
		f.t.Fatalf("%s %s %s: status %d, want %d: %s", method, rpc, body, r.Status, status, r.Body)
	}
	if got := r.MLflowError(f.t); got != code {
		f.t.Fatalf("%s %s %s: code %s, want %s", method, rpc, body, got, code)
	}
}

func (f *registryFixture) version(name, version string) message.ModelVersion {
	f.t.Helper()
	var out struct {
		ModelVersion message.ModelVersion `json:"model_version"`
	}
	f.ok(http.MethodGet, "model-versions/get", "name="+url.QueryEscape(name)+"&version="+url.QueryEscape(version), &out)
	return out.ModelVersion
}

func (f *registryFixture) createVersion(body string) message.ModelVersion {
	f.t.Helper()
	var out struct {
		ModelVersion message.ModelVersion `json:"model_version"`
	}
	f.ok(http.MethodPost, "model-versions/create", body, &out)
	return out.ModelVersion
}

func (f *registryFixture) registered(name string) message.RegisteredModel {
	f.t.Helper()
	var out struct {
		RegisteredModel message.RegisteredModel `json:"registered_model"`
	}
	f.ok(http.MethodGet, "registered-models/get", "name="+url.QueryEscape(name), &out)
	return out.RegisteredModel
}

func tagMap(tags []metadata.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

func versionNumbers(vs []message.ModelVersion) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Version
	}
	return out
}

func TestMLflowRegistryWorkflow(t *testing.T) {
	f := newRegistryFixture(t)
	exp := f.experiment("wf-exp")
	r1, r2, r3 := f.run(exp), f.run(exp), f.run(exp)

	// The trace's requests, in order.
	var created struct {
		RegisteredModel message.RegisteredModel `json:"registered_model"`
	}
	f.ok(http.MethodPost, "registered-models/create",
		`{"name": "wf-model", "tags": [{"key": "team", "value": "wf"}], "description": "workflow model"}`, &created)
	if rm := created.RegisteredModel; rm.Name != "wf-model" || rm.Description != "workflow model" ||
		tagMap(rm.Tags)["team"] != "wf" || tagMap(rm.Tags)["mlgate.name"] != "wf-model" || rm.CreationTimestamp == 0 {
		t.Fatalf("created %+v", rm)
	}
	f.fails(http.MethodPost, "registered-models/create", `{"name": "wf-model"}`, 400, "RESOURCE_ALREADY_EXISTS")

	v1 := f.createVersion(fmt.Sprintf(`{"name": "wf-model", "source": "runs:/%s/model", "run_id": "%s", "tags": [{"key": "k", "value": "v"}], "description": "v1"}`, r1.EID, r1.EID))
	if v1.Version != "1" || v1.Status != "READY" || v1.CurrentStage != "None" || v1.RunID != r1.EID.String() ||
		v1.Source != "runs:/"+r1.EID.String()+"/model" || v1.Description != "v1" || v1.Name != "wf-model" ||
		tagMap(v1.Tags)["k"] != "v" || tagMap(v1.Tags)["mlgate.semver"] != "1.0.0" || !slices.Equal(v1.Aliases, []string{"1.0.0"}) {
		t.Fatalf("version 1: %+v", v1)
	}
	// mlgate.version chooses the semver; it is consumed, not stored as a tag.
	v2 := f.createVersion(fmt.Sprintf(`{"name": "wf-model", "source": "runs:/%s/model", "run_id": "%s", "tags": [{"key": "mlgate.version", "value": "2.5.0"}]}`, r2.EID, r2.EID))
	if v2.Version != "2" || tagMap(v2.Tags)["mlgate.semver"] != "2.5.0" || tagMap(v2.Tags)["mlgate.version"] != "" {
		t.Fatalf("version 2: %+v", v2)
	}
	// Without a tag: the next minor after the highest.
	v3 := f.createVersion(fmt.Sprintf(`{"name": "wf-model", "source": "runs:/%s/model"}`, r3.EID))
	if v3.Version != "3" || tagMap(v3.Tags)["mlgate.semver"] != "2.6.0" || v3.RunID != r3.EID.String() {
		t.Fatalf("version 3: %+v", v3)
	}
	// The same semver twice is RESOURCE_ALREADY_EXISTS.
	f.fails(http.MethodPost, "model-versions/create", fmt.Sprintf(`{"name": "wf-model", "source": "runs:/%s/model", "tags": [{"key": "gitlab.version", "value": "2.5.0"}]}`, r3.EID), 400, "RESOURCE_ALREADY_EXISTS")

	var latest struct {
		ModelVersions []message.ModelVersion `json:"model_versions"`
	}
	f.ok(http.MethodPost, "registered-models/get-latest-versions", `{"name": "wf-model"}`, &latest)
	if !slices.Equal(versionNumbers(latest.ModelVersions), []string{"3"}) {
		t.Fatalf("latest: %+v", latest)
	}
	f.ok(http.MethodGet, "registered-models/get-latest-versions", "name=wf-model&stages=none", &latest)
	if !slices.Equal(versionNumbers(latest.ModelVersions), []string{"3"}) {
		t.Fatalf("latest None via GET: %+v", latest)
	}

	// Aliases: a real one, and the semver, which resolves as an alias too.
	var empty map[string]any
	f.ok(http.MethodPost, "registered-models/alias", `{"name": "wf-model", "alias": "champion", "version": "1"}`, &empty)
	if len(empty) != 0 {
		t.Fatalf("alias set answered %v", empty)
	}
	var byAlias struct {
		ModelVersion message.ModelVersion `json:"model_version"`
	}
	f.ok(http.MethodGet, "registered-models/alias", "name=wf-model&alias=champion", &byAlias)
	if byAlias.ModelVersion.Version != "1" || !slices.Equal(byAlias.ModelVersion.Aliases, []string{"champion", "1.0.0"}) {
		t.Fatalf("alias champion: %+v", byAlias.ModelVersion)
	}
	f.ok(http.MethodGet, "registered-models/alias", "name=wf-model&alias=2.5.0", &byAlias)
	if byAlias.ModelVersion.Version != "2" {
		t.Fatalf("alias 2.5.0: %+v", byAlias.ModelVersion)
	}
	f.fails(http.MethodGet, "registered-models/alias", "name=wf-model&alias=nope", 400, "INVALID_PARAMETER_VALUE")
	f.fails(http.MethodGet, "registered-models/alias", "name=wf-model&alias=9.9.9", 400, "INVALID_PARAMETER_VALUE")

	// get accepts the number or the semver.
	if got := f.version("wf-model", "2.5.0"); got.Version != "2" {
		t.Fatalf("get by semver: %+v", got)
	}
	if got := f.version("wf-model", "2"); tagMap(got.Tags)["mlgate.semver"] != "2.5.0" {
		t.Fatalf("get by number: %+v", got)
	}
	f.fails(http.MethodGet, "model-versions/get", "name=wf-model&version=9", 404, "RESOURCE_DOES_NOT_EXIST")
	f.fails(http.MethodGet, "model-versions/get", "name=wf-model&version=9.0.0", 404, "RESOURCE_DOES_NOT_EXIST")

	var uri struct {
		ArtifactURI string `json:"artifact_uri"`
	}
	f.ok(http.MethodGet, "model-versions/get-download-uri", "name=wf-model&version=1", &uri)
	if want := fmt.Sprintf("mlflow-artifacts:/%d/%s/artifacts/model", exp.IID, r1.EID); uri.ArtifactURI != want {
		t.Fatalf("download uri %q, want %q", uri.ArtifactURI, want)
	}

	rm := f.registered("wf-model")
	if !slices.Equal(versionNumbers(rm.LatestVersions), []string{"3"}) ||
		!slices.Equal(rm.Aliases, []message.Alias{{Alias: "champion", Version: "1"}}) ||
		rm.LastUpdatedTimestamp < rm.CreationTimestamp {
		t.Fatalf("registered model %+v", rm)
	}

	// Searches, with the 2.17 and 3.x filters of the traces.
	for _, filter := range []string{"name = 'wf-model'", "name LIKE 'wf-%'", "name ILIKE 'WF-MOD%'",
		"name = 'wf-model' AND tag.`mlflow.prompt.is_prompt` != 'true'", "tags.team = 'wf'"} {
		var found struct {
			RegisteredModels []message.RegisteredModel `json:"registered_models"`
		}
		f.ok(http.MethodGet, "registered-models/search", "max_results=100&filter="+url.QueryEscape(filter), &found)
		if len(found.RegisteredModels) != 1 || found.RegisteredModels[0].Name != "wf-model" {
			t.Fatalf("search %q: %+v", filter, found)
		}
	}
	r := f.call(http.MethodGet, "registered-models/search", "max_results=100&filter="+url.QueryEscape("name = 'nope'"))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if s := strings.TrimSpace(string(r.Body)); s != "{}" {
		t.Fatalf("empty search answered %s", s)
	}
	var versions struct {
		ModelVersions []message.ModelVersion `json:"model_versions"`
	}
	f.ok(http.MethodGet, "model-versions/search", "max_results=10000&filter="+url.QueryEscape("name = 'wf-model'"), &versions)
	if !slices.Equal(versionNumbers(versions.ModelVersions), []string{"3", "2", "1"}) {
		t.Fatalf("version search: %v", versionNumbers(versions.ModelVersions))
	}
	f.ok(http.MethodGet, "model-versions/search", "filter="+url.QueryEscape(fmt.Sprintf("run_id IN ('%s', '%s')", r1.EID, r3.EID))+"&order_by=version_number+ASC", &versions)
	if !slices.Equal(versionNumbers(versions.ModelVersions), []string{"1", "3"}) {
		t.Fatalf("run_id IN search: %v", versionNumbers(versions.ModelVersions))
	}
	f.ok(http.MethodGet, "model-versions/search", "filter="+url.QueryEscape("tags.`mlgate.semver` = '2.5.0'"), &versions)
	if !slices.Equal(versionNumbers(versions.ModelVersions), []string{"2"}) {
		t.Fatalf("tag search: %v", versionNumbers(versions.ModelVersions))
	}

	// Tags.
	f.ok(http.MethodPost, "registered-models/set-tag", `{"name": "wf-model", "key": "k2", "value": "v2"}`, nil)
	f.ok(http.MethodPost, "model-versions/set-tag", `{"name": "wf-model", "version": "1", "key": "validated", "value": "yes"}`, nil)
	if got := tagMap(f.version("wf-model", "1").Tags); got["validated"] != "yes" || got["k"] != "v" {
		t.Fatalf("version tags %v", got)
	}
	f.ok(http.MethodDelete, "model-versions/delete-tag", `{"name": "wf-model", "version": "1", "key": "validated"}`, nil)
	if got := tagMap(f.version("wf-model", "1").Tags); got["validated"] != "" {
		t.Fatalf("version tag not deleted: %v", got)
	}
	f.ok(http.MethodDelete, "registered-models/delete-tag", `{"name": "wf-model", "key": "k2"}`, nil)
	if got := tagMap(f.registered("wf-model").Tags); got["k2"] != "" || got["team"] != "wf" {
		t.Fatalf("model tags %v", got)
	}

	// Stages.
	var transitioned struct {
		ModelVersion message.ModelVersion `json:"model_version"`
	}
	f.ok(http.MethodPost, "model-versions/transition-stage", `{"name": "wf-model", "version": "1", "stage": "production", "archive_existing_versions": false}`, &transitioned)
	if transitioned.ModelVersion.CurrentStage != "Production" {
		t.Fatalf("transition: %+v", transitioned.ModelVersion)
	}
	f.ok(http.MethodPost, "model-versions/transition-stage", `{"name": "wf-model", "version": "2", "stage": "Production", "archive_existing_versions": true}`, nil)
	if st := f.version("wf-model", "1").CurrentStage; st != "Archived" {
		t.Fatalf("version 1 stage %s, want Archived", st)
	}
	f.ok(http.MethodPost, "registered-models/get-latest-versions", `{"name": "wf-model", "stages": ["Production", "Archived"]}`, &latest)
	if !slices.Equal(versionNumbers(latest.ModelVersions), []string{"1", "2"}) {
		t.Fatalf("latest Production+Archived: %v", versionNumbers(latest.ModelVersions))
	}

	// Update and rename: the display name changes, the slug stays.
	var updated struct {
		RegisteredModel message.RegisteredModel `json:"registered_model"`
	}
	f.ok(http.MethodPatch, "registered-models/update", `{"name": "wf-model", "description": "updated"}`, &updated)
	if updated.RegisteredModel.Description != "updated" {
		t.Fatalf("update: %+v", updated.RegisteredModel)
	}
	f.ok(http.MethodPatch, "model-versions/update", `{"name": "wf-model", "version": "3", "description": "third"}`, nil)
	if d := f.version("wf-model", "3").Description; d != "third" {
		t.Fatalf("version description %q", d)
	}
	f.ok(http.MethodPost, "registered-models/rename", `{"name": "wf-model", "new_name": "Wf Model"}`, &updated)
	if updated.RegisteredModel.Name != "Wf Model" || tagMap(updated.RegisteredModel.Tags)["mlgate.name"] != "wf-model" {
		t.Fatalf("rename: %+v", updated.RegisteredModel)
	}
	if got := f.version("Wf Model", "1"); got.Name != "Wf Model" {
		t.Fatalf("version after rename: %+v", got)
	}

	// Alias deletion (body, then query), version deletion, model deletion.
	f.ok(http.MethodPost, "registered-models/alias", `{"name": "Wf Model", "alias": "tmp", "version": "2"}`, nil)
	f.ok(http.MethodDelete, "registered-models/alias", `{"name": "Wf Model", "alias": "tmp"}`, nil)
	f.fails(http.MethodGet, "registered-models/alias", "name=Wf+Model&alias=tmp", 400, "INVALID_PARAMETER_VALUE")
	r = f.env.Do(http.MethodDelete, f.base+"/api/2.0/mlflow/registered-models/alias?name=Wf+Model&alias=champion", nil, nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	f.fails(http.MethodGet, "registered-models/alias", "name=Wf+Model&alias=champion", 400, "INVALID_PARAMETER_VALUE")

	f.ok(http.MethodDelete, "model-versions/delete", `{"name": "Wf Model", "version": "3"}`, nil)
	f.fails(http.MethodGet, "model-versions/get", "name=Wf+Model&version=3", 404, "RESOURCE_DOES_NOT_EXIST")
	if got := versionNumbers(f.registered("Wf Model").LatestVersions); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("latest after delete: %v", got)
	}

	f.ok(http.MethodDelete, "registered-models/delete", `{"name": "Wf Model"}`, nil)
	f.fails(http.MethodGet, "registered-models/get", "name=Wf+Model", 404, "RESOURCE_DOES_NOT_EXIST")
	// The runs are untouched, even though versions of the deleted registered model pointed at them.
	for _, c := range []*metadata.Candidate{r1, r2, r3} {
		got, err := f.env.Store.Candidate(context.Background(), metadata.CandidateRef{ID: c.ID})
		if err != nil || got.Lifecycle != metadata.Active {
			t.Fatalf("run %s after registered-models/delete: %+v, %v", c.EID, got, err)
		}
	}
}

func TestMLflowRegistryAdoptsExperiment(t *testing.T) {
	f := newRegistryFixture(t)
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	f.ok(http.MethodPost, "experiments/create", `{"name": "resnet"}`, &exp)

	// Only an experiment so far: invisible to the registry.
	f.fails(http.MethodGet, "registered-models/get", "name=resnet", 404, "RESOURCE_DOES_NOT_EXIST")
	r := f.call(http.MethodGet, "registered-models/search", "max_results=100")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if s := strings.TrimSpace(string(r.Body)); s != "{}" {
		t.Fatalf("registry lists an experiment: %s", s)
	}

	var created struct {
		RegisteredModel message.RegisteredModel `json:"registered_model"`
	}
	f.ok(http.MethodPost, "registered-models/create", `{"name": "resnet", "description": "d", "tags": [{"key": "t", "value": "1"}]}`, &created)
	if created.RegisteredModel.Name != "resnet" || created.RegisteredModel.Description != "d" || tagMap(created.RegisteredModel.Tags)["t"] != "1" {
		t.Fatalf("adopted %+v", created.RegisteredModel)
	}
	iid, _ := strconv.ParseInt(exp.ExperimentID, 10, 64)
	m, err := f.env.Store.Model(context.Background(), metadata.ModelRef{Project: f.project.ID, IID: iid})
	if err != nil || !m.InRegistry || m.DisplayName != "resnet" || tagMap(m.Tags)["t"] != "1" {
		t.Fatalf("the experiment was not adopted: %+v, %v", m, err)
	}
	f.fails(http.MethodPost, "registered-models/create", `{"name": "resnet"}`, 400, "RESOURCE_ALREADY_EXISTS")

	// After registered-models/delete an experiment with runs stays and can be adopted again (one without
	// runs is removed entirely: TestRegistryDeleteOfAModelWithoutRunsFreesItsName).
	f.ok(http.MethodPost, "runs/create", `{"experiment_id": "`+exp.ExperimentID+`"}`, nil)
	f.ok(http.MethodDelete, "registered-models/delete", `{"name": "resnet"}`, nil)
	f.ok(http.MethodGet, "experiments/get-by-name", "experiment_name=resnet", nil)
	f.ok(http.MethodPost, "registered-models/create", `{"name": "resnet"}`, nil)

	// model-versions/create on an experiment that is not in the registry adopts it too.
	other := f.experiment("other")
	c := f.run(other)
	f.createVersion(fmt.Sprintf(`{"name": "other", "source": "runs:/%s"}`, c.EID))
	f.registered("other")
}

func TestMLflowRegistryPromotesRunOfAnotherModel(t *testing.T) {
	f := newRegistryFixture(t)
	exp := f.experiment("training")
	c := f.run(exp)
	gatewaytest.WantStatus(t, f.env.Put(f.env.PkgURL(fmt.Sprintf("candidate:%d/files/model/weights.bin", c.IID)), gatewaytest.Payload(1000)), http.StatusCreated)
	blobs := len(f.env.BlobKeys())
	f.ok(http.MethodPost, "registered-models/create", `{"name": "serving"}`, nil)

	root := fmt.Sprintf("mlflow-artifacts:/%d/%s/artifacts", exp.IID, c.EID)
	for i, tc := range []struct{ body, uri string }{
		{fmt.Sprintf(`{"name": "serving", "source": "runs:/%s/model", "run_id": "%s"}`, c.EID, c.EID), root + "/model"},
		{fmt.Sprintf(`{"name": "serving", "source": "%s/model"}`, root), root + "/model"},
		{fmt.Sprintf(`{"name": "serving", "source": "mlflow-artifacts://somehost:5000/%d/%s/artifacts"}`, exp.IID, c.EID), root},
		{fmt.Sprintf(`{"name": "serving", "source": "%s/model", "run_id": "%s"}`, root, c.EID), root + "/model"},
		{fmt.Sprintf(`{"name": "serving", "source": "s3://bucket/elsewhere", "run_id": "%s"}`, c.EID), root},
		{`{"name": "serving", "source": "models:/serving/1"}`, root + "/model"},
	} {
		v := f.createVersion(tc.body)
		if v.RunID != c.EID.String() || v.Version != strconv.Itoa(i+1) {
			t.Fatalf("%s: %+v", tc.body, v)
		}
		var uri struct {
			ArtifactURI string `json:"artifact_uri"`
		}
		f.ok(http.MethodGet, "model-versions/get-download-uri", "name=serving&version="+v.Version, &uri)
		if uri.ArtifactURI != tc.uri {
			t.Fatalf("%s: download uri %q, want %q", tc.body, uri.ArtifactURI, tc.uri)
		}
	}
	if n := len(f.env.BlobKeys()); n != blobs {
		t.Fatalf("promotion copied bytes: %d blobs, had %d", n, blobs)
	}
	// The run stays in its own model.
	got, err := f.env.Store.Candidate(context.Background(), metadata.CandidateRef{ID: c.ID})
	if err != nil || got.ModelID != exp.ID {
		t.Fatalf("run moved: %+v, %v", got, err)
	}

	f.fails(http.MethodPost, "model-versions/create", `{"name": "serving", "source": "s3://bucket/x"}`, 400, "INVALID_PARAMETER_VALUE")
	f.fails(http.MethodPost, "model-versions/create", `{"name": "serving", "source": "runs:/0123456789abcdef0123456789abcdef/model"}`, 404, "RESOURCE_DOES_NOT_EXIST")
	f.fails(http.MethodPost, "model-versions/create", fmt.Sprintf(`{"name": "no-such-model", "source": "runs:/%s/model"}`, c.EID), 404, "RESOURCE_DOES_NOT_EXIST")
	f.fails(http.MethodPost, "model-versions/create", fmt.Sprintf(`{"name": "serving", "source": "runs:/%s/model", "run_id": "0123456789abcdef0123456789abcdef"}`, c.EID), 400, "INVALID_PARAMETER_VALUE")
	f.fails(http.MethodPost, "model-versions/create", fmt.Sprintf(`{"name": "serving", "source": "runs:/%s/../x"}`, c.EID), 400, "INVALID_PARAMETER_VALUE")
}

func TestMLflowRegistryVersionIsDownloadableAsPackage(t *testing.T) {
	f := newRegistryFixture(t)
	exp := f.experiment("Fraud Detector")
	c := f.run(exp)
	data := []byte("model weights")
	gatewaytest.WantStatus(t, f.env.Put(f.env.PkgURL(fmt.Sprintf("candidate:%d/files/model/x", c.IID)), data), http.StatusCreated)
	gatewaytest.WantStatus(t, f.env.Put(f.env.PkgURL(fmt.Sprintf("candidate:%d/files/notes.txt", c.IID)), []byte("outside")), http.StatusCreated)

	f.ok(http.MethodPost, "registered-models/create", `{"name": "Fraud Detector"}`, nil)
	v := f.createVersion(fmt.Sprintf(`{"name": "Fraud Detector", "source": "runs:/%s/model", "run_id": "%s", "tags": [{"key": "mlgate.version", "value": "3.1.0-rc.1"}]}`, c.EID, c.EID))
	semver := tagMap(v.Tags)["mlgate.semver"]
	if semver != "3.1.0-rc.1" {
		t.Fatalf("semver %q", semver)
	}
	r := f.env.Get(f.env.PkgURL("fraud_detector/" + semver + "/files/x"))
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatalf("package download: %q", r.Body)
	}
	// The version is the run's model/ directory, not the whole run.
	gatewaytest.WantStatus(t, f.env.Get(f.env.PkgURL("fraud_detector/"+semver+"/files/notes.txt")), http.StatusNotFound)
}

func TestMLflowRegistrySearchPaging(t *testing.T) {
	f := newRegistryFixture(t)
	for _, name := range []string{"b-model", "a-model", "c-model"} {
		f.ok(http.MethodPost, "registered-models/create", `{"name": "`+name+`"}`, nil)
	}
	type page struct {
		RegisteredModels []message.RegisteredModel `json:"registered_models"`
		NextPageToken    string                    `json:"next_page_token"`
	}
	names := func(p page) []string {
		var out []string
		for _, m := range p.RegisteredModels {
			out = append(out, m.Name)
		}
		return out
	}
	var p1, p2 page
	f.ok(http.MethodGet, "registered-models/search", "max_results=2", &p1)
	if !slices.Equal(names(p1), []string{"a-model", "b-model"}) || p1.NextPageToken == "" {
		t.Fatalf("page 1: %+v", p1)
	}
	f.ok(http.MethodGet, "registered-models/search", "max_results=2&page_token="+url.QueryEscape(p1.NextPageToken), &p2)
	if !slices.Equal(names(p2), []string{"c-model"}) || p2.NextPageToken != "" {
		t.Fatalf("page 2: %+v", p2)
	}
	f.fails(http.MethodGet, "registered-models/search", "max_results=2&filter=name+LIKE+%27a%25%27&page_token="+url.QueryEscape(p1.NextPageToken), 400, "INVALID_PARAMETER_VALUE")
	f.fails(http.MethodGet, "registered-models/search", "page_token=garbage", 400, "INVALID_PARAMETER_VALUE")

	f.ok(http.MethodGet, "registered-models/search", "order_by=name+DESC", &p1)
	if !slices.Equal(names(p1), []string{"c-model", "b-model", "a-model"}) {
		t.Fatalf("name DESC: %v", names(p1))
	}
	f.ok(http.MethodGet, "registered-models/search", "order_by=last_updated_timestamp+DESC&max_results=100000", &p1)
	if len(p1.RegisteredModels) != 3 {
		t.Fatalf("timestamp order: %v", names(p1))
	}
}

func TestMLflowRegistryBadInput(t *testing.T) {
	f := newRegistryFixture(t)
	c := f.run(f.experiment("exp"))
	f.ok(http.MethodPost, "registered-models/create", `{"name": "m"}`, nil)
	f.createVersion(fmt.Sprintf(`{"name": "m", "source": "runs:/%s/model"}`, c.EID))
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		method, rpc, body string
		status            int
		code              string
	}{
		{"POST", "registered-models/create", `{}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/create", `{"name": "` + long + `"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/create", `{"name": "n", "tags": [{"key": "mlgate.name", "value": "x"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/create", `{"name": "n", "tags": [{"key": "k", "value": "` + strings.Repeat("v", 5001) + `"}]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/create", `{"name": 5}`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/get", ``, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/get", `name=nope`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "registered-models/rename", `{"name": "m"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/rename", `{"name": "m", "new_name": "exp"}`, 400, "RESOURCE_ALREADY_EXISTS"},
		{"POST", "registered-models/set-tag", `{"name": "m", "key": "mlgate.semver", "value": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/set-tag", `{"name": "m", "key": "` + long + `", "value": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/get-latest-versions", `{"name": "nope"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "registered-models/get-latest-versions", `{"name": "m", "stages": ["Bogus"]}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/alias", `{"name": "m", "alias": "latest", "version": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/alias", `{"name": "m", "alias": "v2", "version": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/alias", `{"name": "m", "alias": "2.0.0", "version": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "registered-models/alias", `{"name": "m", "alias": "a", "version": "7"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "registered-models/alias", `{"name": "m", "version": "1"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/alias", `name=nope&alias=a`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"GET", "registered-models/search", `filter=` + url.QueryEscape("name = "), 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/search", `filter=` + url.QueryEscape("name = 'a' OR name = 'b'"), 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/search", `order_by=bogus`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "registered-models/search", `order_by=version_number`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "model-versions/search", `filter=` + url.QueryEscape("metrics.x > 1"), 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/create", `{"name": "m"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/create", fmt.Sprintf(`{"name": "m", "source": "runs:/%s/model", "tags": [{"key": "mlgate.version", "value": "v1"}]}`, c.EID), 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/create", fmt.Sprintf(`{"name": "m", "source": "runs:/%s/model", "tags": [{"key": "mlgate.version", "value": "1.0.0"}, {"key": "gitlab.version", "value": "2.0.0"}]}`, c.EID), 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/create", fmt.Sprintf(`{"name": "m", "source": "runs:/%s/model", "tags": [{"key": "mlgate.semver", "value": "2.0.0"}]}`, c.EID), 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "model-versions/get", `name=m`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "model-versions/get", `name=m&version=abc`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "model-versions/get", `name=m&version=0`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"GET", "model-versions/get", `name=m&version=99999999999999999999`, 400, "INVALID_PARAMETER_VALUE"},
		{"GET", "model-versions/get", `name=nope&version=1`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"POST", "model-versions/set-tag", `{"name": "m", "version": "1", "key": "mlgate.semver", "value": "9.9.9"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/set-tag", `{"name": "m", "version": "1", "value": "x"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/transition-stage", `{"name": "m", "version": "1", "stage": "bogus", "archive_existing_versions": false}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/transition-stage", `{"name": "m", "version": "1", "stage": "Archived", "archive_existing_versions": true}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/transition-stage", `{"name": "m", "version": "1", "archive_existing_versions": false}`, 400, "INVALID_PARAMETER_VALUE"},
		{"POST", "model-versions/transition-stage", `{"name": "m", "version": "1", "stage": "None", "archive_existing_versions": "maybe"}`, 400, "INVALID_PARAMETER_VALUE"},
		{"DELETE", "model-versions/delete", `{"name": "m", "version": "5"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"DELETE", "registered-models/delete", `{"name": "nope"}`, 404, "RESOURCE_DOES_NOT_EXIST"},
		{"PUT", "registered-models/create", `{"name": "x"}`, 404, "ENDPOINT_NOT_FOUND"},
	} {
		f.fails(tc.method, tc.rpc, tc.body, tc.status, tc.code)
	}
	// Unknown aliases and tags are silently ignored on delete, as in MLflow.
	f.ok(http.MethodDelete, "registered-models/alias", `{"name": "m", "alias": "never-set"}`, nil)
	f.ok(http.MethodDelete, "registered-models/delete-tag", `{"name": "m", "key": "never-set"}`, nil)
}

func TestRegistrySemverBumpTag(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "registered-models/create", `{"name": "bumpy", "tags": [{"key": "mlgate.semver_bump", "value": "major"}]}`), http.StatusOK)
	r := env.MLflowPost(base, "runs/create", `{"experiment_id": "1"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var run struct{ Run message.Run }
	r.JSON(t, &run)
	semvers := []string{}
	for range 2 {
		r = env.MLflowPost(base, "model-versions/create", `{"name": "bumpy", "source": "runs:/`+run.Run.Info.RunID+`", "run_id": "`+run.Run.Info.RunID+`"}`)
		gatewaytest.WantStatus(t, r, http.StatusOK)
		var mv struct {
			ModelVersion struct{ Tags []metadata.Tag } `json:"model_version"`
		}
		r.JSON(t, &mv)
		for _, tag := range mv.ModelVersion.Tags {
			if tag.Key == "mlgate.semver" {
				semvers = append(semvers, tag.Value)
			}
		}
	}
	if fmt.Sprint(semvers) != "[1.0.0 2.0.0]" {
		t.Fatalf("semvers with bump=major: %v", semvers)
	}
	gatewaytest.WantStatus(t, env.MLflowPost(base, "registered-models/set-tag", `{"name": "bumpy", "key": "mlgate.semver_bump", "value": "patch"}`), http.StatusOK)
	r = env.MLflowPost(base, "model-versions/create", `{"name": "bumpy", "source": "runs:/`+run.Run.Info.RunID+`", "run_id": "`+run.Run.Info.RunID+`"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.Body), `"2.0.1"`) {
		t.Fatalf("bump=patch after 2.0.0: %s", r.Body)
	}
	r = env.MLflowPost(base, "registered-models/set-tag", `{"name": "bumpy", "key": "mlgate.semver_bump", "value": "huge"}`)
	gatewaytest.WantStatus(t, r, http.StatusBadRequest)
}

func TestRegistryDeleteOfAModelWithoutRunsFreesItsName(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	gatewaytest.WantStatus(t, env.MLflowPost(base, "registered-models/create", `{"name": "only-registry"}`), http.StatusOK)
	r := env.Do(http.MethodDelete, base+"/api/2.0/mlflow/registered-models/delete", strings.NewReader(`{"name": "only-registry"}`), nil)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	// Gone as an experiment too, so the name can be used again from scratch.
	gatewaytest.WantStatus(t, env.Get(base+"/api/2.0/mlflow/experiments/get-by-name?experiment_name=only-registry"), http.StatusNotFound)
	gatewaytest.WantStatus(t, env.MLflowPost(base, "experiments/create", `{"name": "only-registry"}`), http.StatusOK)
}
