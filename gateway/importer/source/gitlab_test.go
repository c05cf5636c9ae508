package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway/importer/source/fakegitlab"
)

func fastRetry() Retry { return Retry{Attempts: 4, Base: time.Millisecond, Max: 5 * time.Millisecond} }

func gitlabSource(t *testing.T) (*fakegitlab.Server, *httptest.Server, *Client) {
	t.Helper()
	gl := fakegitlab.New("glpat-secret")
	e1 := gl.AddExperiment("churn model").SetTag("team", "ml")
	gl.AddExperiment("empty")
	r1 := e1.AddRun("run-1").Param("alpha", "0.5").Tag("mlflow.user", "ana")
	for i := range 1500 {
		r1.Log("loss", 1/float64(i+1), 1735689600000+int64(i), int64(i))
	}
	r1.Log("odd", math.NaN(), 1, 0).Log("odd", math.Inf(1), 2, 1).Log("odd", math.Inf(-1), 3, 2)
	r1.File("model.pkl", []byte("pickle")).File("data/train.csv", []byte("a,b\n1,2\n")).File("data/deep/er/x.json", []byte("{}"))
	r2 := e1.AddRun("run-2").Log("acc", 0.9, 5, 0)
	r2.MLModelPackage = true
	r2.File("weights/w.bin", []byte("0123456789"))
	m := gl.AddModel("churn", "the model").SetTag("owner", "ana")
	gl.AddVersion(m, "1.0.0", r1).SetTag("k", "v")
	gl.AddVersion(m, "2.0.0", r2)
	other := gl.AddModel("other", "")
	gl.AddVersion(other, "1.0.0", r2)
	srv := httptest.NewServer(gl)
	t.Cleanup(srv.Close)
	c, err := Open(t.Context(), Config{URL: srv.URL + gl.TrackingPath() + "/", Token: "glpat-secret", Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	return gl, srv, c
}

func TestGitLabSource(t *testing.T) {
	_, srv, c := gitlabSource(t)
	ctx := t.Context()
	if c.Kind() != KindGitLab {
		t.Fatalf("kind %v", c.Kind())
	}
	if want := strings.ToLower(srv.URL) + "/api/v4/projects/42/ml/mlflow"; c.Identity() != want {
		t.Fatalf("identity %q, want %q", c.Identity(), want)
	}
	var exps []Experiment
	if err := c.Experiments(ctx, func(e Experiment) error { exps = append(exps, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(exps) != 2 || exps[0].Name != "churn model" || exps[0].ArtifactLocation != "not_implemented" || len(exps[0].Tags) != 1 {
		t.Fatalf("experiments %+v", exps)
	}
	var runs []Run
	if err := c.Runs(ctx, exps[0].ID, func(r Run) error { runs = append(runs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Params[0] != (Param{"alpha", "0.5"}) || !strings.Contains(runs[0].ArtifactURI, "/packages/generic/ml_experiment_1/1") {
		t.Fatalf("runs %+v", runs)
	}
	// The capped history is reported, not silently cut.
	n := 0
	err := c.MetricHistory(ctx, runs[0].ID, "loss", func(ms []Metric) error { n += len(ms); return nil })
	if !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), runs[0].ID) || !strings.Contains(err.Error(), "loss") || n != 1000 {
		t.Fatalf("capped history: %d points, err %v", n, err)
	}
	var odd []Metric
	if err := c.MetricHistory(ctx, runs[0].ID, "odd", func(ms []Metric) error { odd = append(odd, ms...); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(odd) != 3 || !math.IsNaN(odd[0].Value) || !math.IsInf(odd[1].Value, 1) || !math.IsInf(odd[2].Value, -1) {
		t.Fatalf("odd values %+v", odd)
	}
	// Generic-package artifacts: listed flat through the proxy, fetched from the package.
	files := walkAll(t, c, runs[0].ArtifactURI)
	if want := "data/deep/er/x.json:2 data/train.csv:8 model.pkl:6"; files != want {
		t.Fatalf("files %q, want %q", files, want)
	}
	if got := readAll(t, c, runs[0].ArtifactURI, "data/train.csv"); got != "a,b\n1,2\n" {
		t.Fatalf("content %q", got)
	}
	if got := readAll(t, c, runs[1].ArtifactURI, "weights/w.bin"); got != "0123456789" {
		t.Fatalf("ml_models content %q", got)
	}
	if _, _, err := c.OpenArtifact(ctx, runs[0].ArtifactURI, "gone.bin"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing artifact: %v", err)
	}
	var models []RegisteredModel
	if err := c.RegisteredModels(ctx, func(m RegisteredModel) error { models = append(models, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || models[0].CreationTime != time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("models %+v", models)
	}
	var versions []ModelVersion
	if err := c.ModelVersions(ctx, "churn", func(v ModelVersion) error { versions = append(versions, v); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(versions) != 2 || versions[0].Version != "107" || versions[1].Version != "114" || versions[0].Aliases[0] != "1.0.0" ||
		versions[0].RunID != runs[0].ID || versions[0].CreationTime%1000 != 0 || versions[0].CreationTime < 1e12 {
		t.Fatalf("versions %+v", versions)
	}
	if err := c.LoggedModels(ctx, nil, func(LoggedModel) error { t.Fatal("a GitLab source has no logged models"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestGitLabOpenErrors(t *testing.T) {
	gl := fakegitlab.New("right")
	srv := httptest.NewServer(gl)
	defer srv.Close()
	_, err := Open(t.Context(), Config{URL: srv.URL + gl.TrackingPath(), Token: "wrong", Retry: fastRetry()})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = Open(t.Context(), Config{URL: srv.URL + "/api/v4/projects/7/ml/mlflow", Token: "right", Retry: fastRetry()})
	if err == nil || !strings.Contains(err.Error(), "no such project") {
		t.Fatalf("wrong project: %v", err)
	}
	// The escaped project path works as the id.
	c, err := Open(t.Context(), Config{URL: srv.URL + "/api/v4/projects/group%2Fproject/ml/mlflow", Token: "right", Retry: fastRetry()})
	if err != nil || c.Kind() != KindGitLab {
		t.Fatalf("path as id: %v", err)
	}
	if _, err := Open(t.Context(), Config{URL: "ftp://x"}); err == nil {
		t.Fatal("ftp accepted")
	}
}

func walkAll(t *testing.T, c *Client, uri string) string {
	t.Helper()
	var out []string
	if err := c.Artifacts(t.Context(), uri, func(f FileInfo) error { out = append(out, fmt.Sprintf("%s:%d", f.Path, f.Size)); return nil }); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, " ")
}

func readAll(t *testing.T, c *Client, uri, p string) string {
	t.Helper()
	rc, _, err := c.OpenArtifact(context.WithoutCancel(t.Context()), uri, p)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
