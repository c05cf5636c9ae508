package main

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"testing"
)

// TestReplicasMLflowWorkflow runs the MLflow workflow of TestMLflowWorkflowAgainstRealProcess with its
// requests alternating between two replicas, every answer checked; its restart is replica A's (SIGTERM,
// then a new process), after which the requests alternate between the new A and B.
func TestReplicasMLflowWorkflow(t *testing.T) {
	r := startReplicas(t)
	c := r.replicaClient(t)
	mlflowWorkflow(t, c, func() { r.restart(0) })
	// The balancer alternates strictly, so each replica answered half of these.
	if n := r.turn.Load(); n < 50 {
		t.Fatalf("only %d requests went through the balancer", n)
	}
}

// TestReplicasMultipartAcrossReplicas: an MLflow multipart upload created on A has its parts PUT to A
// and B alternately (the part URLs A signed, sent to whichever replica the balancer picks) and is
// completed on B; both replicas then serve the whole file. The replicas share the signing key through
// the store, so B accepts A's signatures and A's sealed upload id.
func TestReplicasMultipartAcrossReplicas(t *testing.T) {
	r := startReplicas(t)
	a, b := r.procs[0], r.procs[1]
	c := &mlflowClient{t: t, base: a.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "mpu"}, &exp)
	run := c.createRun(exp.ExperimentID, "r")
	// S3's smallest middle part is 5 MiB: three parts, the last short.
	data := make([]byte, 2*restartPartSize+1000)
	_, _ = rand.Read(data)
	up := &multipartUpload{c: c, uri: run.ArtifactURI, created: c.mpuCreate(run.ArtifactURI, "model", "/tmp/weights.bin", 3), data: data}
	for n, p := range []*proc{a, b, a} {
		if code := up.putPart(t, p, n+1); code != http.StatusOK {
			t.Fatalf("part %d through %s: %d", n+1, p.base, code)
		}
	}
	if code, body := up.complete(b); code != http.StatusOK {
		t.Fatalf("complete on B of an upload created on A: %d %s", code, body)
	}
	for _, p := range []*proc{a, b} {
		c.base = p.base
		if got := names(c.listArtifacts(run.ArtifactURI, "model")); got != "weights.bin(10486760)" {
			t.Fatalf("listing through %s: %q", p.base, got)
		}
		code, got := get(t, c.artifactURL(run.ArtifactURI, "model/weights.bin"))
		if code != http.StatusOK || !bytes.Equal(got, data) {
			t.Fatalf("download through %s: %d, %d bytes (want %d, same sha256: %v)", p.base, code, len(got), len(data),
				bytes.Equal(sha256Of(got), sha256Of(data)))
		}
	}
}
