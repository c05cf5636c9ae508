package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/s3test"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/pgstore"
)

// minioBackendYAML is a config whose one backend, the default, is a fresh prefix of the shared test
// MinIO: a bbolt server and a PostgreSQL server given it see the same blobs.
func minioBackendYAML(t *testing.T) string {
	t.Helper()
	mio := s3test.Lookup(t, "minio")
	return fmt.Sprintf(`backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, mio.Endpoint, mio.Bucket, fmt.Sprintf("migrate-%x/", randBytes(6)), s3test.AccessKeyEnv, s3test.SecretKeyEnv)
}

// rawCall sends one RPC that must succeed and returns its answer re-encoded as JSON with sorted keys.
func (c *mlflowClient) raw(method, rpc string, in map[string]any) (string, map[string]any) {
	c.t.Helper()
	var out map[string]any
	c.ok(method, rpc, in, &out)
	b, err := json.Marshal(out)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b), out
}

// mlflowSnapshot reads everything a client can read of a server through the MLflow API, files included
// (downloaded and hashed), as one text: two servers with the same snapshot serve the same registry.
func mlflowSnapshot(c *mlflowClient) string {
	c.t.Helper()
	var b strings.Builder
	line := func(what, v string) { fmt.Fprintf(&b, "%s: %s\n", what, v) }
	s, exps := c.raw(http.MethodPost, "experiments/search", map[string]any{"view_type": "ALL", "max_results": 1000})
	line("experiments", s)
	var expIDs []string
	for _, e := range exps["experiments"].([]any) {
		expIDs = append(expIDs, e.(map[string]any)["experiment_id"].(string))
	}
	s, runs := c.raw(http.MethodPost, "runs/search", map[string]any{"experiment_ids": expIDs, "run_view_type": "ALL", "max_results": 1000})
	line("runs", s)
	for _, r := range runs["runs"].([]any) {
		run := r.(map[string]any)
		info := run["info"].(map[string]any)
		id := info["run_id"].(string)
		s, _ := c.raw(http.MethodGet, "runs/get", map[string]any{"run_id": id})
		line("run "+id, s)
		data, _ := run["data"].(map[string]any)
		metrics, _ := data["metrics"].([]any)
		for _, m := range metrics {
			key := m.(map[string]any)["key"].(string)
			s, _ := c.raw(http.MethodGet, "metrics/get-history", map[string]any{"run_id": id, "metric_key": key, "max_results": 25000})
			line("history "+id+" "+key, s)
		}
		line("files of run "+id, fmt.Sprint(sortedFiles(c.downloadTree(info["artifact_uri"].(string)))))
	}
	s, lms := c.raw(http.MethodPost, "logged-models/search", map[string]any{"experiment_ids": expIDs, "max_results": 100})
	line("logged models", s)
	for _, m := range lms["models"].([]any) {
		info := m.(map[string]any)["info"].(map[string]any)
		line("files of logged model "+info["model_id"].(string), fmt.Sprint(sortedFiles(c.downloadTree(info["artifact_uri"].(string)))))
	}
	s, rms := c.raw(http.MethodGet, "registered-models/search", map[string]any{"max_results": 1000})
	line("registered models", s)
	for _, m := range rms["registered_models"].([]any) {
		name := m.(map[string]any)["name"].(string)
		s, _ := c.raw(http.MethodGet, "registered-models/get", map[string]any{"name": name})
		line("registered model "+name, s)
		s, _ = c.raw(http.MethodGet, "model-versions/search", map[string]any{"filter": "name='" + name + "'", "max_results": 1000})
		line("versions of "+name, s)
	}
	return b.String()
}

func sortedFiles(m map[string]fileSum) []string {
	var out []string
	for p, s := range m {
		out = append(out, fmt.Sprintf("%s=%d:%s", p, s.Size, s.SHA256))
	}
	sort.Strings(out)
	return out
}

// populateForMigration fills a server through the MLflow API with every kind of entity the registry
// has: experiments (one with a tag, one deleted), runs with params, tags and a metric history, a
// deleted run, artifacts (one of several MB), a logged model with params, tags, linked metrics, a
// dataset input and files, a registered model with versions backed by runs and by the logged model, a
// deleted version and an alias. It returns a multipart upload left in flight with its first part sent.
func populateForMigration(t *testing.T, c *mlflowClient) (inflight mpuCreated, uri, etag1 string) {
	t.Helper()
	exp := func(name string) string {
		var out struct {
			ExperimentID string `json:"experiment_id"`
		}
		c.ok(http.MethodPost, "experiments/create", map[string]any{"name": name}, &out)
		return out.ExperimentID
	}
	fraud, old := exp("Fraud Model"), exp("Old Stuff")
	c.ok(http.MethodPost, "experiments/set-experiment-tag", map[string]any{"experiment_id": fraud, "key": "team", "value": "risk"}, nil)
	base := time.Now().UnixMilli() - 10_000
	r1 := c.createRun(fraud, "train-1", kv{"stage", "dev"})
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r1.RunID, "params": []kv{{"lr", "0.1"}, {"depth", "5"}}}, nil)
	for from := 0; from < 2000; from += 1000 { // MLflow takes 1000 metrics per batch
		var pts []map[string]any
		for i := from; i < from+1000; i++ {
			pts = append(pts, map[string]any{"key": "loss", "value": 1 / float64(i+1), "timestamp": base + int64(i), "step": i})
		}
		c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r1.RunID, "metrics": pts}, nil)
	}
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": r1.RunID, "key": "acc", "value": -0.5, "timestamp": base, "step": -1}, nil)
	c.putArtifact(r1, "model/MLmodel", strings.NewReader("flavors: {}\n"), 12)
	c.putArtifact(r1, "model/data/weights.bin", newSeeded(3, 6<<20), 6<<20)
	c.ok(http.MethodPost, "runs/update", map[string]any{"run_id": r1.RunID, "status": "FINISHED", "end_time": base + 5000}, nil)

	r2 := c.createRun(fraud, "train-2")
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": r2.RunID, "params": []kv{{"lr", "0.01"}},
		"metrics": []map[string]any{{"key": "acc", "value": 0.9, "timestamp": base, "step": 0}}}, nil)
	c.putArtifact(r2, "model/MLmodel", strings.NewReader("flavors: {sklearn: {}}\n"), 23)
	r3 := c.createRun(old, "old")
	c.putArtifact(r3, "notes.txt", strings.NewReader("old"), 3)
	c.ok(http.MethodPost, "experiments/delete", map[string]any{"experiment_id": old}, nil)
	r4 := c.createRun(fraud, "discarded")
	c.ok(http.MethodPost, "runs/delete", map[string]any{"run_id": r4.RunID}, nil)

	c.ok(http.MethodPost, "runs/log-inputs", map[string]any{"run_id": r1.RunID, "datasets": []map[string]any{{
		"tags":    []kv{{"mlflow.data.context", "training"}},
		"dataset": map[string]any{"name": "train", "digest": "f9e2bbb5", "source_type": "code", "source": "{}", "profile": `{"num_rows": 6}`}}}}, nil)
	var created struct{ Model loggedModelMsg }
	c.ok(http.MethodPost, "logged-models", map[string]any{"experiment_id": fraud, "name": "model", "model_type": "regressor",
		"source_run_id": r1.RunID, "params": []kv{{"factor", "2.0"}}, "tags": []kv{{"family", "linear"}}}, &created)
	lm := created.Model.Info
	c.ok(http.MethodPost, "runs/outputs", map[string]any{"run_id": r1.RunID, "models": []map[string]any{{"model_id": lm.ModelID, "step": 0}}}, nil)
	c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": r1.RunID, "key": "val_acc", "value": 0.8, "timestamp": base, "step": 0,
		"model_id": lm.ModelID, "dataset_name": "train", "dataset_digest": "f9e2bbb5"}, nil)
	c.putArtifact(runInfo{ArtifactURI: lm.ArtifactURI}, "MLmodel", strings.NewReader("flavors: {}\n"), 12)
	c.ok(http.MethodPatch, "logged-models/"+lm.ModelID, map[string]any{"model_id": lm.ModelID, "status": "LOGGED_MODEL_READY"}, nil)

	c.ok(http.MethodPost, "registered-models/create", map[string]any{"name": "fraud-champion", "description": "the one we ship"}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r1.RunID + "/model", "run_id": r1.RunID}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r2.RunID + "/model", "run_id": r2.RunID,
		"tags": []kv{{"mlgate.version", "2.1.0"}}}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "models:/" + lm.ModelID, "model_id": lm.ModelID}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r2.RunID + "/model", "run_id": r2.RunID}, nil)
	c.ok(http.MethodDelete, "model-versions/delete", map[string]any{"name": "fraud-champion", "version": "4"}, nil)
	c.ok(http.MethodPost, "registered-models/alias", map[string]any{"name": "fraud-champion", "alias": "champion", "version": "3"}, nil)

	// A multipart upload in flight across the migration: its part URLs and upload id are signed with
	// the store's signing key, which must come along.
	inflight = c.mpuCreate(r2.ArtifactURI, "big", "/tmp/job/big.bin", 2)
	code, etag1, err := putPart(inflight.Credentials[0].URL, inflight.Credentials[0].Headers, newSeeded(9, 5<<20), 5<<20)
	if err != nil || code != http.StatusOK || etag1 == "" {
		t.Fatalf("first part of the upload in flight: %d %q %v", code, etag1, err)
	}
	return inflight, r2.ArtifactURI, etag1
}

// TestMetadataMigrateToPostgres is the test: a bbolt server on MinIO populated through the MLflow
// API, stopped, migrated, and a PostgreSQL server on the same MinIO serving the same MLflow snapshot,
// every file downloaded; then the PostgreSQL server goes on where bbolt stopped: the upload in flight
// completes, new numbers follow the old ones, tokens still authenticate.
func TestMetadataMigrateToPostgres(t *testing.T) {
	dsn := pgEmptySchema(t)
	backends := minioBackendYAML(t)
	cfgBolt := writeConfig(t, backends)
	cfgPG := writeConfig(t, fmt.Sprintf("metadata:\n  type: postgres\n  dsn: %q\n", dsn)+backends)
	dir := t.TempDir()
	createToken(t, dir, "--project", "default", "--scope", "write", "--name", "ci")
	createToken(t, dir, "--instance", "--scope", "read", "--name", "ops")

	bolt := startServe(t, dir, "--config", cfgBolt)
	c := &mlflowClient{t: t, base: bolt.base}
	inflight, uri, etag1 := populateForMigration(t, c)
	want := mlflowSnapshot(c)

	// While the bbolt server runs, the store is refused.
	code, out := runCmd(t, "metadata", "migrate", "--from", dir, "--to", dsn)
	if code != 1 || !strings.Contains(out, "stop it") {
		t.Fatalf("migrate while the server runs: exit %d\n%s", code, out)
	}
	if err := bolt.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop the bbolt server: %v\n%s", err, bolt.logs)
	}
	_, tokensBefore := runCmd(t, "token", "list", "--data-dir", dir)
	code, out = runCmd(t, "metadata", "migrate", "--from", dir, "--to", dsn)
	if code != 0 || !strings.Contains(out, "verified") || !strings.Contains(out, "done:") || !strings.Contains(out, "by backend") ||
		!strings.Contains(out, "s3: 5") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	t.Logf("migrate:\n%s", out)

	pg := startServe(t, t.TempDir(), "--config", cfgPG)
	c.base = pg.base
	if got := mlflowSnapshot(c); got != want {
		t.Fatalf("the PostgreSQL server serves another MLflow snapshot:\n%s", firstDifference(want, got))
	}
	if _, tokensAfter := runCmd(t, "token", "list", "--config", cfgPG); tokensAfter != tokensBefore {
		t.Errorf("tokens after the migration:\n%s\nbefore:\n%s", tokensAfter, tokensBefore)
	}

	// The upload begun on bbolt completes on PostgreSQL: its upload id and part URLs were signed with
	// the bbolt store's signing key. Part URLs name the server that issued them: the client would reach
	// the new one at the same address, here another port.
	cred := inflight.Credentials[1]
	partURL := strings.Replace(cred.URL, bolt.base, pg.base, 1)
	code, etag2, err := putPart(partURL, cred.Headers, strings.NewReader("tail"), 4)
	if err != nil || code != http.StatusOK {
		t.Fatalf("second part, on the PostgreSQL server: %d %v", code, err)
	}
	code, body := c.mpuCall("complete", uri, "big", map[string]any{"path": "/tmp/job/big.bin", "upload_id": inflight.UploadID,
		"parts": []mpuPart{{1, etag1}, {2, etag2}}})
	if code != http.StatusOK {
		t.Fatalf("mpu/complete on the PostgreSQL server: %d %s", code, body)
	}
	h := sha256.New()
	_, _ = io.Copy(h, io.MultiReader(newSeeded(9, 5<<20), strings.NewReader("tail")))
	if st, sum, _ := fetch(t, c.artifactURL(uri, "big/big.bin")); st != http.StatusOK || sum.SHA256 != fmt.Sprintf("%x", h.Sum(nil)) {
		t.Fatalf("the file uploaded across the migration: %d %+v", st, sum)
	}

	// New numbers follow the copied ones: the next experiment and version are the ones bbolt would
	// have given. Experiment ids 1 and 2 were created above, 3 went to the registered model (a model is
	// both an experiment and a registered model), so the next is 4.
	var e struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "after"}, &e)
	if n, _ := strconv.Atoi(e.ExperimentID); n != 4 {
		t.Errorf("first experiment created after the migration: id %s, want 4", e.ExperimentID)
	}
	r := c.createRun(e.ExperimentID, "after")
	var mv struct {
		ModelVersion struct{ Version string } `json:"model_version"`
	}
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "fraud-champion", "source": "runs:/" + r.RunID + "/model", "run_id": r.RunID}, &mv)
	if mv.ModelVersion.Version != "5" {
		t.Errorf("first version created after the migration: %s, want 5 (4 was deleted, seqs are never reused)", mv.ModelVersion.Version)
	}
}

// firstDifference shows the first line where two snapshots differ.
func firstDifference(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  bbolt      %.2000s\n  PostgreSQL %.2000s", i+1, w, g)
		}
	}
	return "(equal)"
}

// bigBoltStore writes a bbolt store with runs × points metric points through the Store API, fast: the
// resume test needs a copy that takes a while, not an MLflow workflow.
func bigBoltStore(t *testing.T, runs, points int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := boltstore.Open(filepath.Join(dir, "mlgate.db"), boltstore.WithoutSync())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	p, err := s.EnsureProject(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "big"}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	for i := range runs {
		c := &metadata.Candidate{ModelID: m.ID, Name: "run-" + strconv.Itoa(i)}
		if err := s.CreateCandidate(ctx, c, []metadata.Tag{{Key: "i", Value: strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
		ms := make([]metadata.Metric, points)
		for j := range ms {
			ms[j] = metadata.Metric{Key: "loss", Value: float64(j) / float64(points), Timestamp: int64(j), Step: int64(j)}
		}
		if err := s.LogBatch(ctx, c.ID, []metadata.Param{{Key: "lr", Value: "0.1"}}, ms, nil); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// migrationRow reads the progress row of the target, ok false while there is none.
func migrationRow(t *testing.T, dsn string) (records int64, done, ok bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT records, done FROM metadata_migration`).Scan(&records, &done)
	if err != nil {
		return 0, false, false // no table yet, or no row yet
	}
	return records, done, true
}

// TestMetadataMigrateResumesAfterSIGKILL kills the real `mlgate metadata migrate` in the middle of the
// copy, once some batches are committed, and runs it again: it resumes after the last committed batch
// and the stores verify equal.
func TestMetadataMigrateResumesAfterSIGKILL(t *testing.T) {
	dsn := pgEmptySchema(t)
	dir := bigBoltStore(t, 100, 1000)
	cmd := exec.Command(mlgateBin, "metadata", "migrate", "--from", dir, "--to", dsn, "--batch", "500")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	poll.UntilOK(t, 60*time.Second, "some batches committed", func() error {
		select {
		case err := <-exited:
			t.Fatalf("migrate exited before it was killed: %v\n%s", err, &logs)
		default:
		}
		if n, _, ok := migrationRow(t, dsn); !ok || n < 5000 {
			return fmt.Errorf("%d records in", n)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	killedAt, done, _ := migrationRow(t, dsn)
	if done || killedAt >= 100*1000 {
		t.Fatalf("killed at %d records, done %t: the copy ended before the kill; make the store bigger", killedAt, done)
	}
	if killedAt%500 != 0 {
		t.Errorf("%d records in after the kill: not a whole number of batches", killedAt)
	}

	code, out := runCmd(t, "metadata", "migrate", "--from", dir, "--to", dsn, "--batch", "500")
	if code != 0 || !strings.Contains(out, "resuming the migration begun") ||
		!strings.Contains(out, fmt.Sprintf("%d records are in", killedAt)) || !strings.Contains(out, "verified") {
		t.Fatalf("migrate after the kill at %d: exit %d\n%s", killedAt, code, out)
	}
	t.Logf("killed at %d records; rerun:\n%s", killedAt, out)
	if _, done, _ := migrationRow(t, dsn); !done {
		t.Errorf("the migration is not marked done after the rerun verified it")
	}
	// A third run finds it done and verifies again; --verify-only does the same.
	for _, extra := range [][]string{nil, {"--verify-only"}} {
		code, out := runCmd(t, append([]string{"metadata", "migrate", "--from", dir, "--to", dsn}, extra...)...)
		if code != 0 || !strings.Contains(out, "verified") {
			t.Errorf("migrate %v after it was done: exit %d\n%s", extra, code, out)
		}
	}
}

// TestMetadataMigrateRefusesNonEmptyTarget: a target with data of its own is refused, naming what it
// holds, and a store that differs from the source fails verification with exit status 1.
func TestMetadataMigrateRefusesNonEmptyTarget(t *testing.T) {
	dsn := pgEmptySchema(t)
	ctx := context.Background()
	dst, err := pgstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.EnsureProject(ctx, "someone/else"); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	dir := bigBoltStore(t, 2, 10)
	code, out := runCmd(t, "metadata", "migrate", "--from", dir, "--to", dsn)
	if code != 1 || !strings.Contains(out, "not empty") || !strings.Contains(out, "1 projects") {
		t.Fatalf("migrate into a non-empty target: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "metadata", "migrate", "--from", dir, "--to", dsn, "--verify-only")
	if code != 1 || !strings.Contains(out, "differ") || !strings.Contains(out, "only in the source") && !strings.Contains(out, "source project") {
		t.Fatalf("verify-only against another store: exit %d\n%s", code, out)
	}
	// Another source into a target that holds a migration is refused too.
	other := pgEmptySchema(t)
	if code, out := runCmd(t, "metadata", "migrate", "--from", dir, "--to", other); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	code, out = runCmd(t, "metadata", "migrate", "--from", bigBoltStore(t, 1, 1), "--to", other)
	if code != 1 || !strings.Contains(out, "another source") {
		t.Fatalf("migrate of another source: exit %d\n%s", code, out)
	}
	// Usage errors exit 2.
	if code, out := runCmd(t, "metadata", "migrate", "--to", other); code != 2 {
		t.Errorf("migrate without --from: exit %d\n%s", code, out)
	}
}
