package minio_test

import (
	"context"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	minio "github.com/mlgate/mlgate/backends/minio"
	"github.com/mlgate/mlgate/backends/s3test"
)

func config(s s3test.Server) minio.Config {
	return minio.Config{
		Endpoint: s.Endpoint, Bucket: s.Bucket, ForcePathStyle: true,
		AccessKeyEnv: s3test.AccessKeyEnv, SecretKeyEnv: s3test.SecretKeyEnv,
		// The smallest part size keeps unknown-size uploads in the suite cheap.
		PartSize: 5 << 20, Prefix: "minio-backend-test",
	}
}

func open(t testing.TB, cfg minio.Config) *minio.Backend {
	t.Helper()
	b, err := minio.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestShared runs the tests every S3 backend shares (s3test.Suite).
func TestShared(t *testing.T) {
	s3test.Suite(t, "minio", func(ctx context.Context, s s3test.Server, o s3test.Options) (backends.Backend, error) {
		cfg := config(s)
		if o.Endpoint != "" {
			cfg.Endpoint = o.Endpoint
		}
		if o.Bucket != "" {
			cfg.Bucket = o.Bucket
		}
		if o.SecretKeyEnv != "" {
			cfg.SecretKeyEnv = o.SecretKeyEnv
		}
		cfg.SinglePut, cfg.DisableDirectGet = o.SinglePut, o.DisableDirectGet
		return minio.New(ctx, cfg)
	}, func(b backends.Backend, endpoint string) backends.Backend {
		return minio.WithEndpointForTest(b.(*minio.Backend), endpoint)
	})
}

// BenchmarkMinio measures 1 MiB, 64 MiB and 1 GiB Put and Get against MinIO through Checked, as cmd
// wires the backend: go test -run X -bench 'Minio/.*/1GiB' -benchtime 3x ./backends/minio/
func BenchmarkMinio(b *testing.B) {
	s := s3test.Lookup(b, "minio")
	backendtest.Bench(b, func(b *testing.B) backends.Backend {
		return backends.Checked("minio", open(b, config(s)))
	}, 1<<20, 64<<20, 1<<30)
}
