package importer_test

import (
	"errors"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/importer"
	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/gateway/importer/source/fakegitlab"
	"github.com/mlgate/mlgate/gateway/importer/source/tracereplay"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// target is an mlgate store with a local backend, as `mlgate import` opens them. Its store runs every
// write twice (WithRehearsal), so an import step that is not safe to retry shows.
type target struct {
	store metadata.Store
	deps  importer.Deps
}

func newTarget(t *testing.T) *target {
	t.Helper()
	dir := t.TempDir()
	st, err := boltstore.Open(filepath.Join(dir, "mlgate.db"), boltstore.WithRehearsal())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b, err := localfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	storage := artifact.SingleStorage("local", backends.Checked("local", b))
	files := artifact.New(artifact.Deps{Store: st, Current: func() artifact.Storage { return storage }, MaxFileSize: 1 << 30})
	return &target{store: st, deps: importer.Deps{Store: st, Artifacts: files}}
}

func fastRetry() source.Retry {
	return source.Retry{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}
}

// gitlab is a GitLab-shaped source: two experiments, runs with params, tags, histories (one longer
// than GitLab serves), files at several depths in both package kinds, and a registry whose versions are
// database ids.
func gitlab(t *testing.T) (*fakegitlab.Server, *source.Client, map[string]*fakegitlab.Candidate) {
	t.Helper()
	gl := fakegitlab.New("glpat-secret")
	e1 := gl.AddExperiment("Churn Model").SetTag("team", "ml")
	e2 := gl.AddExperiment("churn model")
	runs := map[string]*fakegitlab.Candidate{}
	runs["r1"] = e1.AddRun("run-1").Param("alpha", "0.5").Tag("mlflow.user", "ana")
	for i := range 800 {
		runs["r1"].Log("loss", 1/float64(i+1), 1735689600000+int64(i), int64(i))
	}
	runs["r1"].Log("odd", math.NaN(), 1, 0).Log("odd", math.Inf(1), 2, 1)
	runs["r1"].File("model.pkl", []byte("pickle")).File("data/deep/er/x.json", []byte("{}"))
	runs["r2"] = e1.AddRun("run-2").Log("acc", 0.9, 5, 0)
	runs["r2"].MLModelPackage = true
	runs["r2"].File("weights/w.bin", []byte("0123456789"))
	runs["long"] = e2.AddRun("too-long")
	for i := range 1500 {
		runs["long"].Log("loss", float64(i), 1735689600000+int64(i), int64(i))
	}
	m := gl.AddModel("churn", "the model").SetTag("owner", "ana")
	gl.AddVersion(m, "1.0.0", runs["r1"]).SetTag("k", "v")
	gl.AddVersion(m, "1.1.0", runs["r2"])
	srv := httptest.NewServer(gl)
	t.Cleanup(srv.Close)
	c, err := source.Open(t.Context(), source.Config{URL: srv.URL + gl.TrackingPath(), Token: "glpat-secret", Retry: fastRetry()})
	if err != nil {
		t.Fatal(err)
	}
	return gl, c, runs
}

func TestImportFromGitLab(t *testing.T) {
	_, src, _ := gitlab(t)
	tg := newTarget(t)
	ctx := t.Context()
	opts := importer.Options{Project: "team/churn"}
	rep, err := importer.Import(ctx, src, tg.deps, opts)
	// GitLab serves at most 1000 points of a history: the longer one cannot be imported whole, and the
	// import says so by name instead of keeping 1000 points silently.
	if !errors.Is(err, importer.ErrIncomplete) || len(rep.Failures) != 1 ||
		!strings.Contains(rep.Failures[0].What, `metric "loss"`) || !errors.Is(rep.Failures[0].Err, source.ErrIncomplete) {
		t.Fatalf("import: %v, failures %v; want exactly the capped history reported", err, rep.Failures)
	}
	if c := rep.Imported; c.Experiments != 2 || c.Runs != 3 || c.Files != 3 || c.RegisteredModels != 1 || c.Versions != 2 || c.MetricPoints != 803 {
		t.Fatalf("imported %+v", c)
	}
	p, err := tg.store.Project(ctx, metadata.ProjectRef{Path: "team/churn"})
	if err != nil {
		t.Fatal(err)
	}
	// Experiments keep their iids; the two names that slug alike get distinct names.
	m1, err := tg.store.Model(ctx, metadata.ModelRef{Project: p.ID, IID: 1})
	if err != nil || m1.Name != "churn_model" || m1.DisplayName != "Churn Model" {
		t.Fatalf("experiment 1 → %+v, %v", m1, err)
	}
	m2, err := tg.store.Model(ctx, metadata.ModelRef{Project: p.ID, IID: 2})
	if err != nil || m2.Name != "churn_model_2" {
		t.Fatalf("experiment 2 → %+v, %v", m2, err)
	}
	// Candidates keep GitLab's iids, so ml_experiment_<iid>/<candidate iid> keeps resolving, and
	// their run ids (UUIDs).
	c1, err := tg.store.Candidate(ctx, metadata.CandidateRef{Project: p.ID, IID: 1})
	if err != nil || c1.ModelID != m1.ID || c1.Name != "run-1" {
		t.Fatalf("candidate iid 1 → %+v, %v", c1, err)
	}
	files, _, err := tg.store.ListFiles(ctx, c1.ID, "", metadata.Page{})
	if err != nil || len(files) != 2 || files[0].Path != "data/deep/er/x.json" || files[1].Path != "model.pkl" {
		t.Fatalf("files of run-1: %v, %v", files, err)
	}
	h, _, err := tg.store.MetricHistory(ctx, c1.ID, "odd", metadata.Page{})
	if err != nil || len(h) != 2 || !math.IsNaN(h[0].Value) || !math.IsInf(h[1].Value, 1) {
		t.Fatalf("odd history %v, %v", h, err)
	}
	// The registry: GitLab's semvers, seqs in creation order.
	reg, err := tg.store.Model(ctx, metadata.ModelRef{Project: p.ID, Name: "churn"})
	if err != nil || !reg.InRegistry || reg.Description != "the model" {
		t.Fatalf("registered model → %+v, %v", reg, err)
	}
	v2, err := tg.store.Version(ctx, metadata.VersionRef{ModelID: reg.ID, Semver: "1.1.0"})
	if err != nil || v2.Seq != 2 {
		t.Fatalf("version 1.1.0 → %+v, %v", v2, err)
	}

	// Verify finds the capped history (the 1000 points GitLab gave are kept, the run's latest value is
	// beyond them), and nothing else.
	vr, err := importer.Verify(ctx, src, tg.deps, opts)
	if !errors.Is(err, importer.ErrDifferent) || len(vr.Differences) != 2 {
		t.Fatalf("verify: %v, %v", err, vr.Differences)
	}
	for _, d := range vr.Differences {
		if !strings.HasPrefix(d.String(), "run "+rep.Failures[0].What[len("run "):len("run ")+32]) || !strings.Contains(d.String(), `"loss"`) {
			t.Errorf("difference not about the capped history: %s", d)
		}
	}

	// A second run imports nothing new and reports the same failure.
	rep, err = importer.Import(ctx, src, tg.deps, opts)
	if !errors.Is(err, importer.ErrIncomplete) || rep.Imported.Runs != 0 || rep.Imported.Files != 0 || rep.Imported.MetricPoints != 0 || rep.Skipped.Runs != 3 {
		t.Fatalf("second import: %v, imported %+v, skipped %+v", err, rep.Imported, rep.Skipped)
	}
}

func TestPlanResolvesCollisionsWithTheTarget(t *testing.T) {
	_, src, _ := gitlab(t)
	tg := newTarget(t)
	ctx := t.Context()
	p, err := tg.store.EnsureProject(ctx, "team/churn")
	if err != nil {
		t.Fatal(err)
	}
	// A model that holds iid 1, the name churn_model and the display name "Churn Model".
	if err := tg.store.CreateModel(ctx, &metadata.Model{Project: p.ID, Name: "churn_model", DisplayName: "Churn Model"}); err != nil {
		t.Fatal(err)
	}
	plan, err := importer.MakePlan(ctx, src, tg.store, "team/churn")
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := plan.Experiments[0], plan.Experiments[1]
	if e1.Name != "churn_model_2" || e1.DisplayName != "Churn Model (import 2)" || e1.IID != -1 || e2.Name != "churn_model_3" || e2.IID != 2 {
		t.Fatalf("plan: %+v / %+v", e1, e2)
	}
	if len(plan.Collisions) != 4 {
		t.Fatalf("collisions: %q", plan.Collisions)
	}
	if plan.Runs != 3 || plan.Files != 3 || plan.Bytes != int64(len("pickle")+len("{}")+10) {
		t.Fatalf("plan counts: %d runs, %d files, %d bytes", plan.Runs, plan.Files, plan.Bytes)
	}
	var out strings.Builder
	importer.PrintPlan(&out, plan)
	for _, want := range []string{"churn_model_2", "Churn Model (import 2)", "iid 1 is taken", "collisions (4)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed plan lacks %q:\n%s", want, out.String())
		}
	}
	// The import follows the plan and gives the experiment the next free iid.
	if _, err := importer.Import(ctx, src, tg.deps, importer.Options{Project: "team/churn"}); !errors.Is(err, importer.ErrIncomplete) {
		t.Fatal(err)
	}
	m, err := tg.store.Model(ctx, metadata.ModelRef{Project: p.ID, Name: "churn_model_2"})
	if err != nil || m.IID == 1 || m.DisplayName != "Churn Model (import 2)" {
		t.Fatalf("imported model: %+v, %v", m, err)
	}
	recs, err := importer.StatusOf(ctx, tg.store, "team/churn")
	if err != nil {
		t.Fatal(err)
	}
	var status strings.Builder
	importer.PrintStatus(ctx, &status, tg.store, recs)
	if !strings.Contains(status.String(), "experiment 1") || !strings.Contains(status.String(), "→ model iid "+strconv.FormatInt(m.IID, 10)) {
		t.Fatalf("status:\n%s", status.String())
	}
}

// TestImportFromReferenceTraces imports each recorded trace of the real MLflow server as a source,
// so that the importer meets the reference server's exact shapes (MLflow 3 logged models, datasets
// and inputs included), and verifies the result.
func TestImportFromReferenceTraces(t *testing.T) {
	for _, trace := range []string{"mlflow-2.17.2-client.jsonl", "mlflow-3.6-client.jsonl", "mlflow-3.6-models.jsonl"} {
		t.Run(trace, func(t *testing.T) {
			path := filepath.Join("source", "tracereplay", "testdata", trace)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("the vendored trace: %v", err)
			}
			h, err := tracereplay.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			ctx := t.Context()
			src, err := source.Open(ctx, source.Config{URL: srv.URL, Retry: fastRetry()})
			if err != nil {
				t.Fatal(err)
			}
			tg := newTarget(t)
			opts := importer.Options{Project: "traces"}
			rep, err := importer.Import(ctx, src, tg.deps, opts)
			if err != nil {
				t.Fatalf("import: %v\n%v", err, rep.Failures)
			}
			if rep.Imported.Runs == 0 || rep.Imported.Experiments == 0 {
				t.Fatalf("imported nothing: %+v", rep.Imported)
			}
			t.Logf("imported %+v, %d bytes", rep.Imported, rep.Bytes)
			// The replay serves each run as last recorded and each history as far as recorded, at
			// different moments of the workflow, so a run's latest values may be missing from (or
			// older than) the history served. Those differences come from the replay; any other is
			// the importer's.
			vr, err := importer.Verify(ctx, src, tg.deps, opts)
			if err != nil && !errors.Is(err, importer.ErrDifferent) {
				t.Fatal(err)
			}
			for _, d := range vr.Differences {
				msg := d.String()
				if strings.Contains(msg, ": latest ") || strings.HasSuffix(msg, "\" missing") || strings.Contains(msg, " metrics in the source, ") {
					continue
				}
				t.Errorf("difference: %s", msg)
			}
			if vr.Checked.Runs != rep.Imported.Runs || vr.Checked.Files != rep.Imported.Files || vr.Checked.Versions != rep.Imported.Versions {
				t.Errorf("verified %+v, imported %+v", vr.Checked, rep.Imported)
			}
		})
	}
}
