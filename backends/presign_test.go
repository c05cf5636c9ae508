package backends_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

type signer struct{ *memory.Backend }

func (signer) PresignGet(_ context.Context, key string, _ time.Duration, _ string) (string, error) {
	return "https://s3.example/" + key, nil
}

func TestCheckedPresign(t *testing.T) {
	ctx := context.Background()
	policy := backends.RedirectPolicy{Expiry: time.Minute, Grace: time.Hour}

	// A backend that cannot presign never redirects, whatever the configuration says (a plugin).
	plain := backends.Checked("plain", memory.New(), backends.WithDownloadRedirect(policy))
	if _, ok := plain.Redirect(); ok {
		t.Error("a backend without PresignGet redirects")
	}
	if _, err := plain.PresignGet(ctx, "a/b", time.Minute, ""); !errors.Is(err, backends.ErrUnsupported) {
		t.Errorf("PresignGet on a backend without it: %v", err)
	}

	s := backends.Checked("s", signer{memory.New()}, backends.WithDownloadRedirect(policy))
	if p, ok := s.Redirect(); !ok || p != policy {
		t.Errorf("Redirect() = %v, %v", p, ok)
	}
	if _, ok := backends.Checked("s", signer{memory.New()}).Redirect(); ok {
		t.Error("a presigner redirects without WithDownloadRedirect")
	}
	if u, err := s.PresignGet(ctx, "a/b", time.Minute, ""); err != nil || u != "https://s3.example/a/b" {
		t.Errorf("PresignGet = %q, %v", u, err)
	}
	for _, c := range []struct {
		key    string
		expiry time.Duration
		want   error
	}{
		{"../etc", time.Minute, backends.ErrInvalidKey},
		{"a", 0, backends.ErrUnsupported},
		{"a", 8 * 24 * time.Hour, backends.ErrUnsupported},
	} {
		var op *backends.OpError
		if _, err := s.PresignGet(ctx, c.key, c.expiry, ""); !errors.Is(err, c.want) || !errors.As(err, &op) {
			t.Errorf("PresignGet(%q, %v): %v, want %v in an OpError", c.key, c.expiry, err, c.want)
		}
	}
}
