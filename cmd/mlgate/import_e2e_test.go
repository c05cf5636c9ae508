package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// The import tests use a second `mlgate serve` as the source: it speaks the MLflow REST protocol, so
// the importer meets a real HTTP server, once on its plain MLflow routes and once on its GitLab-style
// project routes with --auth and a token.

const (
	importLongHistory = 25_001   // points of one metric: more than one get-history page
	importBigFile     = 50 << 20 // bytes of one artifact
)

// seeded is size bytes of a ChaCha8 stream, generated as read.
type seeded struct {
	rng  *rand.ChaCha8
	left int64
}

func newSeeded(seed byte, size int64) *seeded {
	var key [32]byte
	key[0] = seed
	return &seeded{rng: rand.NewChaCha8(key), left: size}
}

func (s *seeded) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), s.left)]
	_, _ = s.rng.Read(p)
	s.left -= int64(len(p))
	return len(p), nil
}

func seededSum(seed byte, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, newSeeded(seed, size))
	return hex.EncodeToString(h.Sum(nil))
}

// importSource is a populated source and what the tests know of it.
type importSource struct {
	proc  *proc
	c     *mlflowClient
	from  string // --from
	token string
	exps  map[string]string  // experiment name → id
	runs  map[string]runInfo // run name → info
}

// populateImportSource starts a source mlgate and fills it through the MLflow API: experiments (two
// whose names slug alike, one deleted, the Default one), runs with params, tags, a long metric
// history, nested artifacts and a 50 MB file, a deleted run, registered models whose versions come
// from runs of other experiments, and an alias.
func populateImportSource(t *testing.T, gitlab bool) *importSource {
	t.Helper()
	dir := t.TempDir()
	s := &importSource{exps: map[string]string{}, runs: map[string]runInfo{}}
	if gitlab {
		s.token, _ = createToken(t, dir, "--project", "team/src", "--scope", "write", "--name", "import-source")
		s.proc = startServe(t, dir, "--auth")
		s.from = s.proc.base + "/api/v4/projects/team%2Fsrc/ml/mlflow"
		s.c = &mlflowClient{t: t, base: s.from, header: map[string]string{"PRIVATE-TOKEN": s.token}}
	} else {
		s.proc = startServe(t, dir)
		s.from = s.proc.base
		s.c = &mlflowClient{t: t, base: s.from}
	}
	c := s.c
	for _, name := range []string{"Fraud Model", "fraud model", "Old Stuff"} {
		var out struct {
			ExperimentID string `json:"experiment_id"`
		}
		c.ok(http.MethodPost, "experiments/create", map[string]any{"name": name}, &out)
		s.exps[name] = out.ExperimentID
	}
	c.ok(http.MethodPost, "experiments/set-experiment-tag", map[string]any{"experiment_id": s.exps["Fraud Model"], "key": "team", "value": "risk"}, nil)

	r1 := c.createRun(s.exps["Fraud Model"], "train-1", kv{"stage", "dev"})
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r1.RunID,
		"params": []kv{{"lr", "0.1"}, {"depth", "5"}}}, nil)
	base := time.Now().UnixMilli() - importLongHistory
	for from := 0; from < importLongHistory; from += 1000 {
		var pts []map[string]any
		for i := from; i < min(from+1000, importLongHistory); i++ {
			pts = append(pts, map[string]any{"key": "loss", "value": 1 / float64(i+1), "timestamp": base + int64(i), "step": i})
		}
		c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r1.RunID, "metrics": pts}, nil)
	}
	for i := range 3 {
		c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": r1.RunID, "key": "acc", "value": 0.5 + float64(i)/10,
			"timestamp": base + int64(i), "step": i}, nil)
	}
	c.putArtifact(r1, "model/MLmodel", strings.NewReader("flavors: {}\n"), 12)
	c.putArtifact(r1, "deep/a/b/c.txt", strings.NewReader("deep"), 4)
	c.putArtifact(r1, "model/data/weights.bin", newSeeded(1, importBigFile), importBigFile)
	c.ok(http.MethodPost, "runs/update", map[string]any{"run_id": r1.RunID, "status": "FINISHED", "end_time": time.Now().UnixMilli()}, nil)
	s.runs["train-1"] = r1

	r2 := c.createRun(s.exps["fraud model"], "train-2")
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r2.RunID, "params": []kv{{"lr", "0.01"}},
		"metrics": []map[string]any{{"key": "acc", "value": 0.9, "timestamp": base, "step": 0}}}, nil)
	c.putArtifact(r2, "model/MLmodel", strings.NewReader("flavors: {sklearn: {}}\n"), 23)
	s.runs["train-2"] = r2

	r3 := c.createRun(s.exps["Old Stuff"], "old")
	c.putArtifact(r3, "notes.txt", strings.NewReader("old"), 3)
	s.runs["old"] = r3
	c.ok(http.MethodPost, "experiments/delete", map[string]any{"experiment_id": s.exps["Old Stuff"]}, nil)

	r4 := c.createRun(s.exps["Fraud Model"], "discarded")
	c.ok(http.MethodPost, "runs/delete", map[string]any{"run_id": r4.RunID}, nil)
	s.runs["discarded"] = r4

	r0 := c.createRun("0", "in-default")
	c.ok(http.MethodPost, "runs/log-parameter", map[string]any{"run_id": r0.RunID, "key": "where", "value": "default"}, nil)
	s.runs["in-default"] = r0

	c.ok(http.MethodPost, "registered-models/create", map[string]any{"name": "fraud-champion", "description": "the one we ship"}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r1.RunID + "/model", "run_id": r1.RunID}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r2.RunID + "/model", "run_id": r2.RunID,
		"tags": []kv{{"mlgate.version", "2.1.0"}}}, nil)
	c.ok(http.MethodPost, "registered-models/alias", map[string]any{"name": "fraud-champion", "alias": "champion", "version": "2"}, nil)
	return s
}

// importCmd runs `mlgate import <args>` and returns its exit code and output.
func importCmd(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return runCmd(t, append([]string{"import"}, args...)...)
}

func (s *importSource) importArgs(sub, dataDir string, extra ...string) []string {
	args := []string{sub, "--from", s.from, "--project", "team/imported", "--data-dir", dataDir}
	if s.token != "" {
		args = append(args, "--token", s.token)
	}
	return append(args, extra...)
}

func TestImportFromMLflowSource(t *testing.T) { testImport(t, false) }

func TestImportFromGitLabStyleSource(t *testing.T) { testImport(t, true) }

func testImport(t *testing.T, gitlab bool) {
	src := populateImportSource(t, gitlab)
	target := t.TempDir()

	code, out := importCmd(t, src.importArgs("mlflow", target, "--dry-run")...)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	for _, want := range []string{`"Fraud Model"`, "fraud_model (", "fraud_model_2 (", "collisions (1)", "[deleted]",
		"fraud-champion", "5 runs", "2 versions"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(target, "mlgate.db")); !os.IsNotExist(err) {
		t.Fatalf("the dry run created the store (%v)", err)
	}

	code, out = importCmd(t, src.importArgs("mlflow", target)...)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	// Five experiments: the three created, Default, and fraud-champion, since in mlgate a registered
	// model is a model and so an experiment too.
	for _, want := range []string{"5 experiments, 5 runs", "no difference"} {
		if !strings.Contains(out, want) {
			t.Errorf("import output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, fmt.Sprintf("%d metric points", importLongHistory+3+1)) {
		t.Errorf("import output does not count every metric point:\n%s", out)
	}

	// A second complete run imports nothing new.
	code, out = importCmd(t, src.importArgs("mlflow", target)...)
	if code != 0 || !strings.Contains(out, "0 experiments, 0 runs, 0 metric points, 0 files") || !strings.Contains(out, "no difference") {
		t.Fatalf("second import: exit %d\n%s", code, out)
	}
	code, out = importCmd(t, "status", "--project", "team/imported", "--data-dir", target)
	if code != 0 || !strings.Contains(out, "run "+src.runs["train-1"].RunID) || !strings.Contains(out, "experiment "+src.exps["fraud model"]) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}

	if gitlab {
		// A GitLab source's files are read at their package addresses, never through the proxy. The
		// source is stopped first: its log is written until it exits.
		if err := src.proc.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("stopping the source: %v", err)
		}
		logs := src.proc.logs.String()
		if !strings.Contains(logs, "method=GET path=/api/v4/projects/team%2Fsrc/packages/generic/ml_experiment_1/1/model/data/weights.bin status=200") ||
			strings.Contains(logs, "method=GET path=/api/v4/projects/team%2Fsrc/ml/mlflow/api/2.0/mlflow-artifacts/artifacts/1/") {
			t.Errorf("the GitLab-style import did not read files at their generic-package addresses; source log:\n%s", logs)
		}
	}
	checkImported(t, src, target)
}

// checkImported serves the target and reads what was imported through the MLflow API, by the ids the
// source gave: run ids, experiment ids and the registry's names.
func checkImported(t *testing.T, src *importSource, target string) {
	t.Helper()
	p := startServe(t, target)
	c := &mlflowClient{t: t, base: p.base + "/api/v4/projects/team%2Fimported/ml/mlflow"}
	var exp struct {
		Experiment struct {
			ExperimentID   string `json:"experiment_id"`
			LifecycleStage string `json:"lifecycle_stage"`
		} `json:"experiment"`
	}
	for name, id := range src.exps {
		c.ok(http.MethodGet, "experiments/get", map[string]any{"experiment_id": id}, &exp)
		want := "active"
		if name == "Old Stuff" {
			want = "deleted"
		}
		if exp.Experiment.LifecycleStage != want {
			t.Errorf("experiment %q (%s): %s, want %s", name, id, exp.Experiment.LifecycleStage, want)
		}
	}
	var run runResp
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": src.runs["train-1"].RunID}, &run)
	if run.Run.Info.ExperimentID != src.exps["Fraud Model"] || run.Run.Info.Status != "FINISHED" || len(run.Run.Data.Params) != 2 {
		t.Errorf("run train-1 in the target: %+v", run.Run)
	}
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": src.runs["discarded"].RunID}, &run)
	if run.Run.Info.LifecycleStage != "deleted" {
		t.Errorf("deleted run: %+v", run.Run.Info)
	}
	// Every point of the long history, paged.
	n, token := 0, ""
	for {
		var h struct {
			Metrics       []struct{ Step int64 } `json:"metrics"`
			NextPageToken string                 `json:"next_page_token"`
		}
		in := map[string]any{"run_id": src.runs["train-1"].RunID, "metric_key": "loss", "max_results": 10000}
		if token != "" {
			in["page_token"] = token
		}
		c.ok(http.MethodGet, "metrics/get-history", in, &h)
		n += len(h.Metrics)
		if token = h.NextPageToken; token == "" {
			break
		}
	}
	if n != importLongHistory {
		t.Errorf("loss history in the target: %d points, want %d", n, importLongHistory)
	}
	// The 50 MB file, byte for byte, through the target's artifact proxy at the run's new location.
	c.ok(http.MethodGet, "runs/get", map[string]any{"run_id": src.runs["train-1"].RunID}, &run)
	status, sum, _ := fetch(t, c.artifactURL(run.Run.Info.ArtifactURI, "model/data/weights.bin"))
	if status != http.StatusOK || sum.SHA256 != seededSum(1, importBigFile) {
		t.Errorf("weights.bin in the target: %d, sha256 %s", status, sum.SHA256)
	}
	var mv struct {
		ModelVersion struct {
			Version string `json:"version"`
			RunID   string `json:"run_id"`
		} `json:"model_version"`
	}
	c.ok(http.MethodGet, "registered-models/alias", map[string]any{"name": "fraud-champion", "alias": "champion"}, &mv)
	if mv.ModelVersion.Version != "2" || mv.ModelVersion.RunID != src.runs["train-2"].RunID {
		t.Errorf("alias champion in the target: %+v", mv.ModelVersion)
	}
	c.ok(http.MethodGet, "model-versions/get", map[string]any{"name": "fraud-champion", "version": "2.1.0"}, &mv)
	if mv.ModelVersion.Version != "2" {
		t.Errorf("version 2.1.0 in the target: %+v", mv.ModelVersion)
	}
	// Version 1 is backed by a run of another experiment, where that run is, and says so.
	var tagged struct {
		ModelVersion struct {
			RunID string `json:"run_id"`
			Tags  []kv   `json:"tags"`
		} `json:"model_version"`
	}
	c.ok(http.MethodGet, "model-versions/get", map[string]any{"name": "fraud-champion", "version": "1"}, &tagged)
	if r1 := src.runs["train-1"].RunID; tagged.ModelVersion.RunID != r1 || !slices.Contains(tagged.ModelVersion.Tags, kv{"mlgate.source_run_id", r1}) {
		t.Errorf("version 1 in the target: %+v", tagged.ModelVersion)
	}
	// The package API serves the version's files, which are the run's model directory: no byte was copied.
	status, body := get(t, p.base+"/api/v4/projects/team%2Fimported/packages/ml_models/fraud-champion/1.0.0/files/MLmodel")
	if status != http.StatusOK || string(body) != "flavors: {}\n" {
		t.Errorf("package address of version 1: %d %q", status, body)
	}
}

// TestImportResumesAfterSIGKILL kills the importer at several points (while it plans or creates
// entities, in the middle of the 50 MB file, between files), runs it again each time, and checks that
// the end result verifies clean, with nothing duplicated and nothing for fsck to repair but
// unreferenced blobs.
func TestImportResumesAfterSIGKILL(t *testing.T) {
	src := populateImportSource(t, false)
	// Through a proxy that slows bodies to 25 MB/s, the 50 MB file takes two seconds: long enough to
	// be seen half-written and killed there, whatever the machine's speed.
	src.from = throttledProxy(t, src.from, 25<<20)
	target := t.TempDir()
	var base int
	kills := []struct {
		when string
		cond func() error
	}{
		{"once the store is open", func() error {
			if _, err := os.Stat(filepath.Join(target, "mlgate.db")); err != nil {
				return err
			}
			return nil
		}},
		{"in the middle of the 50 MB file", func() error {
			if n := stagedBytes(t, target); n < 8<<20 {
				return fmt.Errorf("%d bytes staged", n)
			}
			return nil
		}},
		{"after more files are committed", func() error {
			if n := committedBlobs(t, target); n <= base {
				return fmt.Errorf("%d blobs, as before this run", n)
			}
			return nil
		}},
	}
	for _, k := range kills {
		base = committedBlobs(t, target)
		cmd := exec.Command(mlgateBin, append([]string{"import"}, src.importArgs("mlflow", target)...)...)
		var logs strings.Builder
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		poll.UntilOK(t, 60*time.Second, "the import to get "+k.when, func() error {
			select {
			case err := <-done:
				t.Fatalf("the import ended before it could be killed %s: %v\n%s", k.when, err, logs.String())
			default:
			}
			return k.cond()
		})
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		t.Logf("killed %s", k.when)
	}
	code, out := importCmd(t, src.importArgs("mlflow", target)...)
	if code != 0 || !strings.Contains(out, "no difference") {
		t.Fatalf("import after the kills: exit %d\n%s", code, out)
	}
	code, out = importCmd(t, src.importArgs("verify", target)...)
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "fsck", "--data-dir", target, "--repair")
	if code != 0 {
		t.Fatalf("fsck --repair: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "repaired") && !strings.Contains(line, "unreferenced") && !strings.Contains(line, "staging") {
			t.Errorf("fsck repaired more than leftovers: %s", line)
		}
	}
	checkImported(t, src, target)
}

// committedBlobs counts the committed blob files under the data dir.
func committedBlobs(t *testing.T, dataDir string) int {
	t.Helper()
	n := 0
	_ = filepath.Walk(filepath.Join(dataDir, "blobs"), func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.Contains(path, string(filepath.Separator)+".") {
			n++
		}
		return nil
	})
	return n
}

// throttledProxy serves target through a reverse proxy that passes response bodies at about rate
// bytes per second.
func throttledProxy(t *testing.T, target string, rate int) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &throttledBody{rc: resp.Body, rate: rate}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

type throttledBody struct {
	rc    io.ReadCloser
	rate  int
	start time.Time
	n     int
}

func (b *throttledBody) Read(p []byte) (int, error) {
	if b.start.IsZero() {
		b.start = time.Now()
	}
	n, err := b.rc.Read(p[:min(len(p), 64<<10)])
	b.n += n
	// Pacing, not synchronisation: the body may not run ahead of rate.
	if ahead := time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)) - time.Since(b.start); ahead > 0 {
		time.Sleep(ahead)
	}
	return n, err
}

func (b *throttledBody) Close() error { return b.rc.Close() }

// TestImportRefusesAStoreAServerHolds: an offline import into the data dir of a running server stops
// at once and says why, instead of waiting or writing beside the server.
func TestImportRefusesAStoreAServerHolds(t *testing.T) {
	src := startServe(t, t.TempDir())
	target := t.TempDir()
	startServe(t, target)
	code, out := importCmd(t, "mlflow", "--from", src.base, "--project", "p", "--data-dir", target)
	if code == 0 || !strings.Contains(out, "A running mlgate server holds the store") {
		t.Fatalf("import into a served data dir: exit %d\n%s", code, out)
	}
}
