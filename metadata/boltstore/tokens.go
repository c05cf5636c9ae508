package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// CreateToken stores t, filling CreatedAt when zero. ErrInvalid for an ID outside 1–64 bytes of
// [A-Za-z0-9_-], a name over 255 bytes or not valid UTF-8, a bad project path or scope, an instance
// token with a project path, or a SecretHash that is not 64 lowercase hex characters; ErrExists if the
// ID or the hash is already stored. Instance is stored as an omitted-when-false JSON field, so records
// written before instance tokens existed read as project tokens and need no migration.
func (s *Store) CreateToken(ctx context.Context, t *metadata.Token) error {
	hash, err := validateToken(t)
	if err != nil {
		return err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		tokens, byHash := bk(tx, bucketTokens), bk(tx, bucketTokensByHash)
		if tokens.Get([]byte(t.ID)) != nil {
			return fmt.Errorf("token %q: %w", t.ID, metadata.ErrExists)
		}
		if byHash.Get(hash) != nil {
			return fmt.Errorf("token secret hash: %w", metadata.ErrExists)
		}
		if err := putJSON(tokens, []byte(t.ID), t); err != nil {
			return err
		}
		return byHash.Put(hash, []byte(t.ID))
	})
}

// TokenBySecretHash returns the token whose SecretHash is hash, revoked and expired ones included.
// ErrNotFound when there is none (a malformed hash included: it cannot match).
func (s *Store) TokenBySecretHash(ctx context.Context, hash string) (*metadata.Token, error) {
	key, err := decodeTokenHash(hash)
	if err != nil {
		return nil, fmt.Errorf("token: %w", metadata.ErrNotFound)
	}
	var t *metadata.Token
	err = s.view(ctx, func(tx *bolt.Tx) error {
		id := bk(tx, bucketTokensByHash).Get(key)
		if id == nil {
			return fmt.Errorf("token: %w", metadata.ErrNotFound)
		}
		var err error
		t, err = getToken(tx, string(id))
		return err
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ListTokens returns every token, oldest first, then by ID.
func (s *Store) ListTokens(ctx context.Context) ([]*metadata.Token, error) {
	var out []*metadata.Token
	err := s.view(ctx, func(tx *bolt.Tx) error {
		return bk(tx, bucketTokens).ForEach(func(k, data []byte) error {
			var t metadata.Token
			if err := json.Unmarshal(data, &t); err != nil {
				return fmt.Errorf("token %q: %v: %w", k, err, ErrCorrupt)
			}
			out = append(out, &t)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *metadata.Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// RevokeToken marks the token revoked, keeping its record and hash index so that using it answers
// "revoked" rather than "unknown". Revoking twice is a no-op. ErrNotFound for an unknown id.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		t, err := getToken(tx, id)
		if err != nil {
			return err
		}
		if t.Revoked {
			return nil
		}
		t.Revoked = true
		return putJSON(bk(tx, bucketTokens), []byte(id), t)
	})
}

func getToken(tx *bolt.Tx, id string) (*metadata.Token, error) {
	var t metadata.Token
	ok, err := getJSON(bk(tx, bucketTokens), []byte(id), &t)
	if err != nil {
		return nil, err
	}
	if !ok || id == "" {
		return nil, fmt.Errorf("token %q: %w", id, metadata.ErrNotFound)
	}
	return &t, nil
}
