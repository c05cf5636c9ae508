package s3_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/s3"
	"github.com/mlgate/mlgate/backends/s3test"
)

func config(s s3test.Server) s3.Config {
	return s3.Config{
		Endpoint: s.Endpoint, Bucket: s.Bucket, ForcePathStyle: true,
		AccessKeyEnv: s3test.AccessKeyEnv, SecretKeyEnv: s3test.SecretKeyEnv,
		// The smallest part size keeps unknown-size uploads in the suite cheap.
		PartSize: 5 << 20, Prefix: "s3-backend-test",
	}
}

func open(t testing.TB, cfg s3.Config) *s3.Backend {
	t.Helper()
	b, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		t.Run("bare", func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend { return open(t, config(s)) })
		})
		t.Run("checked", func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend { return backends.Checked("s3", open(t, config(s))) })
		})
		t.Run("sdk-get", func(t *testing.T) {
			cfg := config(s)
			cfg.DisableDirectGet = true
			backendtest.Run(t, func(t *testing.T) backends.Backend { return open(t, cfg) })
		})
		if s.Name == "minio" { // SinglePut is only safe where truncated bodies are rejected
			t.Run("single-put", func(t *testing.T) {
				cfg := config(s)
				cfg.SinglePut = true
				backendtest.Run(t, func(t *testing.T) backends.Backend { return open(t, cfg) })
			})
		}
	})
}

func TestStartupErrors(t *testing.T) {
	s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
		cfg := config(s)
		cfg.Bucket = "mlgate-no-such-bucket"
		_, err := s3.New(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), `bucket "mlgate-no-such-bucket" does not exist at `+s.Endpoint) {
			t.Errorf("missing bucket: %v", err)
		}

		t.Setenv("MLGATE_TEST_WRONG_SECRET", "not-the-secret")
		cfg = config(s)
		cfg.SecretKeyEnv = "MLGATE_TEST_WRONG_SECRET"
		_, err = s3.New(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), "credentials rejected by "+s.Endpoint) {
			t.Errorf("wrong credentials: %v", err)
		}
	})
}

// closedEndpoint returns the URL of a port nothing listens on.
func closedEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

func TestUnavailable(t *testing.T) {
	s := s3test.Lookup(t, "minio")
	b := open(t, config(s))
	cfg := config(s)
	cfg.Endpoint = closedEndpoint(t)
	if _, err := s3.New(t.Context(), cfg); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("New against a closed port: %v, want ErrUnavailable", err)
	}
	// A backend whose server went away after startup: every operation reports ErrUnavailable.
	down := s3.WithEndpointForTest(b, cfg.Endpoint)
	ctx := t.Context()
	_, err := down.Put(ctx, "k", strings.NewReader("abc"), 3, backends.PutOptions{})
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("put: %v", err)
	}
	_, _, err = down.Get(ctx, "k", backends.All)
	if !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("get: %v", err)
	}
	if _, err = down.Stat(ctx, "k"); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("stat: %v", err)
	}
	if _, _, err = down.List(ctx, "", "", 10); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("list: %v", err)
	}
	if _, err = down.CreateMultipart(ctx, "k", backends.PutOptions{}); !errors.Is(err, backends.ErrUnavailable) {
		t.Errorf("create multipart: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []s3.Config{
		{},
		{Bucket: "b", Endpoint: "ftp://x"},
		{Bucket: "b", Endpoint: "127.0.0.1:9000"},
		{Bucket: "b", Prefix: "/abs"},
		{Bucket: "b", AccessKeyEnv: "A"},
		{Bucket: "b", PartSize: 1 << 20},
		{Bucket: "b", Concurrency: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	c := s3.Config{Bucket: "b", Prefix: "p"}
	if err := c.Validate(); err != nil || c.Prefix != "p/" || c.Region == "" || c.PartSize == 0 || c.Concurrency == 0 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
}

// BenchmarkS3 measures 1 MiB, 64 MiB and 1 GiB Put and Get against MinIO through Checked, as cmd
// wires the backend: go test -run X -bench 'S3/.*/1GiB' -benchtime 3x ./backends/s3/
func BenchmarkS3(b *testing.B) {
	s := s3test.Lookup(b, "minio")
	backendtest.Bench(b, func(b *testing.B) backends.Backend {
		return backends.Checked("s3", open(b, config(s)))
	}, 1<<20, 64<<20, 1<<30)
}
