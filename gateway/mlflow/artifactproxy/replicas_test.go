package artifactproxy_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/mlflow/artifactproxy"
	"github.com/mlgate/mlgate/gateway/signing"
)

// replica starts another gateway on env's store and backend with secret, as a second mlgate process on
// the same PostgreSQL and S3 would be, and returns env as seen through it.
func replica(t *testing.T, env *gatewaytest.Env, secret *signing.Secret) *gatewaytest.Env {
	t.Helper()
	gw := gateway.New(gateway.Config{Signing: secret}, env.Store, env.Backend, gatewaytest.Logger())
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	other := *env
	other.Srv, other.Gateway = srv, gw
	return &other
}

// through addresses run's artifacts through the replica other.
func (a *artifactRun) through(other *gatewaytest.Env) *artifactRun {
	b := *a
	b.prefix = strings.Replace(a.prefix, a.env.Srv.URL, other.Srv.URL, 1)
	b.env = other
	return &b
}

// partsThrough uploads data's parts to the create response's URLs rewritten to reach other instead of
// the replica that signed them, and returns each answer.
func partsThrough(t *testing.T, from, other *gatewaytest.Env, created mpuCreateResponse, data []byte, partSize int) []gatewaytest.Response {
	t.Helper()
	var out []gatewaytest.Response
	for i, c := range created.Credentials {
		if !strings.HasPrefix(c.URL, from.Srv.URL+"/") {
			t.Fatalf("part URL %s is not on the replica that created the upload (%s)", c.URL, from.Srv.URL)
		}
		u := other.Srv.URL + strings.TrimPrefix(c.URL, from.Srv.URL)
		chunk := data[min(i*partSize, len(data)):min((i+1)*partSize, len(data))]
		out = append(out, other.Do(http.MethodPut, u, bytes.NewReader(chunk), c.Headers))
	}
	return out
}

// Two replicas that share the signing secret accept each other's upload ids and part URLs: an upload
// created on A has its parts stored and is completed on B (and the other way round), and every replica
// serves the file.
func TestMLflowArtifactsMultipartAcrossReplicas(t *testing.T) {
	secret := signing.Random()
	a := gatewaytest.New(t, gateway.Config{Signing: secret})
	b := replica(t, a, secret)
	const partSize = 5 << 20
	data := gatewaytest.Payload(partSize + 1000)
	for _, dir := range []struct {
		name        string
		create, use *gatewaytest.Env
	}{{"A to B", a, b}, {"B to A", b, a}} {
		t.Run(dir.name, func(t *testing.T) {
			run := newArtifactRun(t, dir.create, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
			created := run.mpuCreate(t, "m", "/tmp/model.bin", 2)
			var parts []mpuPart
			for i, r := range partsThrough(t, dir.create, dir.use, created, data, partSize) {
				gatewaytest.WantStatus(t, r, http.StatusOK)
				parts = append(parts, mpuPart{PartNumber: i + 1, ETag: r.Header.Get("ETag")})
			}
			other := run.through(dir.use)
			wantEmptyObject(t, other.mpu(t, "complete", "m", map[string]any{"path": "/tmp/model.bin", "upload_id": created.UploadID, "parts": parts}))
			for _, env := range []*gatewaytest.Env{a, b} {
				if r := env.Get(run.through(env).url("m/model.bin")); r.Status != http.StatusOK || !bytes.Equal(r.Body, data) {
					t.Fatalf("download through %s: %d, %d bytes", env.Srv.URL, r.Status, len(r.Body))
				}
			}
		})
	}
}

// A replica with another signing secret refuses the part URLs and upload ids of the first, and stores
// nothing: the secret, not the store or the backend, is what makes them valid.
func TestMLflowArtifactsMultipartOtherSecretRefused(t *testing.T) {
	secret := signing.Random()
	a := gatewaytest.New(t, gateway.Config{Signing: secret})
	b := replica(t, a, signing.Random())
	run := newArtifactRun(t, a, "team/vision", "exp", "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts")
	created := run.mpuCreate(t, "", "model.bin", 1)
	for _, r := range partsThrough(t, a, b, created, []byte("bytes"), 5) {
		wantMLflowError(t, r, http.StatusForbidden, "PERMISSION_DENIED")
	}
	done := map[string]any{"path": "model.bin", "upload_id": created.UploadID, "parts": []mpuPart{{PartNumber: 1, ETag: "x"}}}
	wantMLflowError(t, run.through(b).mpu(t, "complete", "", done), http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	wantMLflowError(t, run.through(b).mpu(t, "abort", "", map[string]any{"path": "model.bin", "upload_id": created.UploadID}),
		http.StatusBadRequest, "INVALID_PARAMETER_VALUE")
	key, upload, err := artifactproxy.OpenMPUToken(secret, created.UploadID)
	if err != nil {
		t.Fatal(err)
	}
	if parts, err := a.Backend.ListParts(context.Background(), key, upload); err != nil || len(parts) != 0 {
		t.Fatalf("parts refused by the other replica were stored: %v, %v", parts, err)
	}
	// The replica that signed them still accepts them.
	for _, r := range partsThrough(t, a, a, created, []byte("bytes"), 5) {
		gatewaytest.WantStatus(t, r, http.StatusOK)
	}
}
