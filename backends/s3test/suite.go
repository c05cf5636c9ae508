package s3test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
)

// Options are the settings the shared tests vary; an Opener maps them onto its backend's Config.
type Options struct {
	Endpoint         string // "" keeps the server's
	Bucket           string // "" keeps the server's
	SecretKeyEnv     string // "" keeps SecretKeyEnv
	SinglePut        bool
	DisableDirectGet bool
}

// Opener builds one S3 backend (s3 or minio) on s with o, as New does: errors are New's.
type Opener func(ctx context.Context, s Server, o Options) (backends.Backend, error)

// Suite runs the tests every S3 backend shares: the conformance suite on each server (bare, through
// Checked, with SDK gets, and with single PutObjects where the server refuses short bodies), startup
// errors, and outages. name is the backend's name in Checked; withEndpoint returns a copy of a backend
// talking to another endpoint, as if its server went away after New.
func Suite(t *testing.T, name string, open Opener, withEndpoint func(b backends.Backend, endpoint string) backends.Backend) {
	must := func(t testing.TB, s Server, o Options) backends.Backend {
		t.Helper()
		b, err := open(context.Background(), s, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	t.Run("Conformance", func(t *testing.T) {
		ForEach(t, func(t *testing.T, s Server) {
			variants := []struct {
				name    string
				o       Options
				checked bool
			}{{"bare", Options{}, false}, {"checked", Options{}, true}, {"sdk-get", Options{DisableDirectGet: true}, false}}
			if s.Name == "minio" { // SinglePut is only safe where truncated bodies are rejected
				variants = append(variants, struct {
					name    string
					o       Options
					checked bool
				}{"single-put", Options{SinglePut: true}, false})
			}
			for _, v := range variants {
				t.Run(v.name, func(t *testing.T) {
					backendtest.Run(t, func(t *testing.T) backends.Backend {
						b := must(t, s, v.o)
						if v.checked {
							return backends.Checked(name, b)
						}
						return b
					})
				})
			}
		})
	})

	t.Run("StartupErrors", func(t *testing.T) {
		ForEach(t, func(t *testing.T, s Server) {
			_, err := open(t.Context(), s, Options{Bucket: "mlgate-no-such-bucket"})
			if err == nil || !strings.Contains(err.Error(), `bucket "mlgate-no-such-bucket" does not exist at `+s.Endpoint) {
				t.Errorf("missing bucket: %v", err)
			}
			t.Setenv("MLGATE_TEST_WRONG_SECRET", "not-the-secret")
			_, err = open(t.Context(), s, Options{SecretKeyEnv: "MLGATE_TEST_WRONG_SECRET"})
			if err == nil || !strings.Contains(err.Error(), "credentials rejected by "+s.Endpoint) {
				t.Errorf("wrong credentials: %v", err)
			}
		})
	})

	t.Run("Unavailable", func(t *testing.T) {
		s := Lookup(t, "minio")
		closed := closedEndpoint(t)
		if _, err := open(t.Context(), s, Options{Endpoint: closed}); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("New against a closed port: %v, want ErrUnavailable", err)
		}
		// A backend whose server went away after startup: every operation reports ErrUnavailable.
		down := withEndpoint(must(t, s, Options{}), closed)
		ctx := t.Context()
		if _, err := down.Put(ctx, "k", strings.NewReader("abc"), 3, backends.PutOptions{}); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("put: %v", err)
		}
		if _, _, err := down.Get(ctx, "k", backends.All); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("get: %v", err)
		}
		if _, err := down.Stat(ctx, "k"); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("stat: %v", err)
		}
		if _, _, err := down.List(ctx, "", "", 10); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("list: %v", err)
		}
		if _, err := down.CreateMultipart(ctx, "k", backends.PutOptions{}); !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("create multipart: %v", err)
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
