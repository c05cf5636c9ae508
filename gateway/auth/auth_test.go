package auth

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

func openStore(t *testing.T) metadata.Store {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func TestIssueTokenStoresOnlyTheHash(t *testing.T) {
	store := openStore(t)
	secret, tok, err := IssueToken(t.Context(), store, TokenRequest{ProjectPath: "p", Scope: metadata.ScopeRead, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, secretPrefix) || len(secret) < 40 || len(tok.ID) != 16 {
		t.Errorf("secret %q id %q", secret, tok.ID)
	}
	if tok.ExpiresAt.Sub(tok.CreatedAt) != time.Hour {
		t.Errorf("expiry %v after creation", tok.ExpiresAt.Sub(tok.CreatedAt))
	}
	all, err := store.ListTokens(t.Context())
	if err != nil || len(all) != 1 {
		t.Fatalf("ListTokens: %v %v", all, err)
	}
	if all[0].SecretHash != HashSecret(secret) || strings.Contains(all[0].SecretHash, secret[len(secretPrefix):]) {
		t.Errorf("stored %+v", all[0])
	}
	secret2, _, err := IssueToken(t.Context(), store, TokenRequest{ProjectPath: "p", Scope: metadata.ScopeRead})
	if err != nil || secret2 == secret {
		t.Errorf("second token %q, %v", secret2, err)
	}
	for _, bad := range []TokenRequest{{ProjectPath: "", Scope: metadata.ScopeRead}, {ProjectPath: "p"},
		{ProjectPath: "p", Scope: metadata.ScopeRead, TTL: -time.Second}} {
		if _, _, err := IssueToken(t.Context(), store, bad); !errors.Is(err, metadata.ErrInvalid) {
			t.Errorf("IssueToken(%+v): %v, want ErrInvalid", bad, err)
		}
	}
}
