package artifactproxy_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// A multipart upload stays on the backend it was created on, even when the routes change before it
// completes: the upload id carries the backend's name.
func TestMultipartUploadKeepsItsBackendAcrossRouteChange(t *testing.T) {
	e := gatewaytest.NewRouted(t, "a", []artifact.Route{{Project: "team/vision", Backend: "b"}})
	run := newArtifactRun(t, e.Env, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	created := run.mpuCreate(t, "", "/tmp/m.bin", 1)
	swapped, err := artifact.NewStaticStorage(e.Backends, "a", []artifact.Route{{Project: "team/vision", Backend: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	e.Server.SwapStorage(swapped)
	parts := putParts(t, e.Env, created, []byte("multipart bytes"), 5<<20)
	wantEmptyObject(t, run.mpu(t, "complete", "", map[string]any{"path": "/tmp/m.bin", "upload_id": created.UploadID, "parts": parts}))
	if gatewaytest.BlobCount(t, e.A) != 0 || gatewaytest.BlobCount(t, e.B) != 1 {
		t.Fatalf("blobs a=%d b=%d; want the upload on b, where it started", gatewaytest.BlobCount(t, e.A), gatewaytest.BlobCount(t, e.B))
	}
	f, err := e.Store.File(context.Background(), run.cand.ID, "m.bin")
	if err != nil || f.Backend != "b" {
		t.Fatalf("row %+v, %v; want backend b", f, err)
	}
	if r := e.Get(run.url("m.bin")); r.Status != http.StatusOK || string(r.Body) != "multipart bytes" {
		t.Fatalf("download: %d %q", r.Status, r.Body)
	}
}
