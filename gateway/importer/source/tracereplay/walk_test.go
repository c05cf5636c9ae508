package tracereplay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/gateway/importer/source/tracereplay"
)

// tracePath finds a trace: vendored in testdata, else in the shared directory next to the repository.
func tracePath(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"testdata", "../../../../../shared/traces"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("trace %s is neither in testdata/ nor in ../shared/traces", name)
	return ""
}

// snapshot is everything the client reads from one source.
type snapshot struct {
	experiments  []source.Experiment
	runs         map[string][]source.Run
	histories    map[string][]source.Metric // run/key
	files        map[string][]source.FileInfo
	models       []source.RegisteredModel
	versions     map[string][]source.ModelVersion
	loggedModels []source.LoggedModel
	bytes        int64
}

func walk(t *testing.T, trace string) *snapshot {
	t.Helper()
	h, err := tracereplay.Load(tracePath(t, trace))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx := t.Context()
	c, err := source.Open(ctx, source.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s := &snapshot{runs: map[string][]source.Run{}, histories: map[string][]source.Metric{}, files: map[string][]source.FileInfo{}, versions: map[string][]source.ModelVersion{}}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(uri string) {
		must(c.Artifacts(ctx, uri, func(f source.FileInfo) error {
			s.files[uri] = append(s.files[uri], f)
			rc, size, err := c.OpenArtifact(ctx, uri, f.Path)
			if err != nil {
				return err
			}
			defer rc.Close()
			n, err := io.Copy(io.Discard, rc)
			if err == nil && (n != f.Size || size >= 0 && size != n) {
				err = fmt.Errorf("%s %s: listed %d bytes, read %d (announced %d)", uri, f.Path, f.Size, n, size)
			}
			s.bytes += n
			return err
		}))
	}
	must(c.Experiments(ctx, func(e source.Experiment) error { s.experiments = append(s.experiments, e); return nil }))
	var expIDs []string
	for _, e := range s.experiments {
		expIDs = append(expIDs, e.ID)
		must(c.Runs(ctx, e.ID, func(r source.Run) error {
			s.runs[e.ID] = append(s.runs[e.ID], r)
			return nil
		}))
		for _, r := range s.runs[e.ID] {
			for _, m := range r.LatestMetrics {
				must(c.MetricHistory(ctx, r.ID, m.Key, func(ms []source.Metric) error {
					s.histories[r.ID+"/"+m.Key] = append(s.histories[r.ID+"/"+m.Key], ms...)
					return nil
				}))
			}
			fetch(r.ArtifactURI)
		}
	}
	must(c.RegisteredModels(ctx, func(m source.RegisteredModel) error { s.models = append(s.models, m); return nil }))
	for _, m := range s.models {
		must(c.ModelVersions(ctx, m.Name, func(v source.ModelVersion) error { s.versions[m.Name] = append(s.versions[m.Name], v); return nil }))
	}
	must(c.LoggedModels(context.WithoutCancel(ctx), expIDs, func(m source.LoggedModel) error {
		s.loggedModels = append(s.loggedModels, m)
		fetch(m.ArtifactLocation)
		return nil
	}))
	return s
}

func (s *snapshot) run(id string) source.Run {
	for _, rs := range s.runs {
		for _, r := range rs {
			if r.ID == id {
				return r
			}
		}
	}
	return source.Run{}
}

// created counts the entities a trace's workflow created (from its 200 answers to create calls), as a
// count to check the replayed walk against, found independently of the replay.
func created(t *testing.T, trace string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(tracePath(t, trace))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec tracereplay.Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Status == 200 && rec.Method == "POST" {
			out[strings.TrimPrefix(rec.Path, "/api/2.0/mlflow/")]++
		}
	}
	return out
}

func TestWalkTraces(t *testing.T) {
	for _, tc := range []struct {
		trace, run, runName, model, history string
		firstLoss                           float64
		firstLossTime                       int64
	}{
		{"mlflow-2.17.2-client.jsonl", "87abef4c21114e6080b026c2be83705f", "wf-main-5f1b44611b", "wf-model-5f1b44611b", "loss", 1.0, 1795992303401},
		{"mlflow-3.6-client.jsonl", "656a01299b1b4e8e9fec0be015e31c91", "wf-main-6eb35928cc", "wf-model-6eb35928cc", "loss", 1.0, 1795991935895},
	} {
		t.Run(tc.trace, func(t *testing.T) {
			s, want := walk(t, tc.trace), created(t, tc.trace)
			if len(s.experiments) != want["experiments/create"] || s.experiments[0].Name != "My Experiment" ||
				s.experiments[0].ArtifactLocation != "mlflow-artifacts:/1" || s.experiments[0].CreationTime == 0 {
				t.Fatalf("experiments %+v", s.experiments)
			}
			if len(s.runs["1"]) != want["runs/create"] {
				t.Fatalf("%d runs, the trace created %d", len(s.runs["1"]), want["runs/create"])
			}
			r := s.run(tc.run)
			if r.Name != tc.runName || r.ExperimentID != "1" || r.ArtifactURI != "mlflow-artifacts:/1/"+tc.run+"/artifacts" || r.StartTime == 0 {
				t.Fatalf("run %+v", r)
			}
			h := s.histories[tc.run+"/"+tc.history]
			if len(h) == 0 || h[0].Value != tc.firstLoss || h[0].Step != 0 || h[0].Timestamp != tc.firstLossTime {
				t.Fatalf("history %+v", h)
			}
			files := fmt.Sprint(s.files[r.ArtifactURI])
			if files != "[{big/big-20mb.bin 20971520} {data/a.txt 100} {data/sub/b.json 8} {hello.txt 31} {model/MLmodel 73} {model/model.pkl 1000} {notes.txt 9}]" {
				t.Fatalf("files %s", files)
			}
			if len(s.models) != want["registered-models/create"] || s.models[0].Name != tc.model || s.models[0].Description == "" {
				t.Fatalf("models %+v", s.models)
			}
			vs := s.versions[tc.model]
			if len(vs) != want["model-versions/create"] || vs[0].Version != "1" || vs[1].Version != "2" || vs[0].Status != "READY" ||
				fmt.Sprint(vs[0].Aliases) != "[champion]" || fmt.Sprint(vs[0].Tags) != "[{k v} {validated yes}]" || vs[0].Source != "runs:/"+tc.run+"/model" {
				t.Fatalf("versions %+v", vs)
			}
			if len(s.loggedModels) != 0 {
				t.Fatalf("logged models %+v", s.loggedModels)
			}
		})
	}
}

func TestWalkMLflow3Models(t *testing.T) {
	const trace = "mlflow-3.6-models.jsonl"
	s, want := walk(t, trace), created(t, trace)
	if len(s.runs["1"]) != want["runs/create"] || len(s.loggedModels) != want["logged-models"] {
		t.Fatalf("%d runs, %d logged models; the trace created %v", len(s.runs["1"]), len(s.loggedModels), want)
	}
	r := s.run("4264bd21a4fb4d1faf155c6aed2d4b5b")
	if len(r.DatasetInputs) != 2 || r.DatasetInputs[0].Name != "train" || r.DatasetInputs[0].Digest != "f9e2bbb5" ||
		r.DatasetInputs[0].SourceType != "code" || !strings.Contains(r.DatasetInputs[1].Profile, `"num_rows": 3`) ||
		fmt.Sprint(r.DatasetInputs[0].Tags) != "[{mlflow.data.context training}]" ||
		fmt.Sprint(r.ModelInputs) != "[m-5d94c5fc78d64bb08a1bf02573833dd7]" || fmt.Sprint(r.ModelOutputs) != "[{m-5d94c5fc78d64bb08a1bf02573833dd7 0}]" {
		t.Fatalf("run %+v", r)
	}
	var m source.LoggedModel
	for _, lm := range s.loggedModels {
		if lm.ID == "m-5d94c5fc78d64bb08a1bf02573833dd7" {
			m = lm
		}
	}
	if m.Status != "LOGGED_MODEL_READY" || m.ModelType != "regressor" || m.SourceRunID != r.ID || len(m.Params) != 4 ||
		m.CreationTime != 1796524688908 || m.ArtifactLocation != "mlflow-artifacts:/1/models/"+m.ID+"/artifacts" {
		t.Fatalf("logged model %+v", m)
	}
	var acc source.Metric
	for _, x := range m.Metrics {
		if x.Key == "acc" {
			acc = x
		}
	}
	if acc.Value != 0.9 || acc.DatasetName != "eval" || acc.DatasetDigest != "e35a3a61" || acc.ModelID != m.ID || acc.RunID != r.ID {
		t.Fatalf("metric %+v", acc)
	}
	if got := fmt.Sprint(s.files["mlflow-artifacts:/1/models/m-895c7b69a4054128952c32a55b11ea81/artifacts"]); got != "[{README.md 32} {weights/w.bin 2048}]" {
		t.Fatalf("external model files %s", got)
	}
	vs := s.versions["wf3-model"]
	if len(vs) != want["model-versions/create"] || vs[0].Source != "models:/m-5d94c5fc78d64bb08a1bf02573833dd7" || fmt.Sprint(vs[1].Aliases) != "[champion]" {
		t.Fatalf("versions %+v", vs)
	}
}
