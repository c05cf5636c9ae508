package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

const tokenCols = `id, name, project_path, instance, scope, secret_hash, created_at, expires_at, revoked`

func scanToken(row pgx.Row) (*metadata.Token, error) {
	var t metadata.Token
	var scope string
	var expires *time.Time
	if err := row.Scan(&t.ID, &t.Name, &t.ProjectPath, &t.Instance, &scope, &t.SecretHash, &t.CreatedAt, &expires, &t.Revoked); err != nil {
		return nil, err
	}
	if err := t.Scope.UnmarshalText([]byte(scope)); err != nil {
		return nil, fmt.Errorf("token %q: stored scope %q", t.ID, scope) // not ErrInvalid: the caller passed nothing wrong
	}
	t.CreatedAt = t.CreatedAt.UTC()
	if expires != nil {
		t.ExpiresAt = expires.UTC()
	}
	return &t, nil
}

// CreateToken implements metadata.Store: it stores t, filling CreatedAt when zero. ErrInvalid as
// metadata.ValidateToken says; ErrExists if the ID or the hash is already stored.
func (s *Store) CreateToken(ctx context.Context, t *metadata.Token) error {
	if _, err := metadata.ValidateToken(t); err != nil {
		return s.refuse(ctx, err)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now()
	}
	var expires *time.Time
	if !t.ExpiresAt.IsZero() {
		expires = &t.ExpiresAt
	}
	scope, _ := t.Scope.MarshalText() // validated above
	return s.update(ctx, func(tx pgx.Tx) error {
		if taken, err := exists(ctx, tx, `SELECT 1 FROM tokens WHERE id = $1`, t.ID); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("token %q: %w", t.ID, metadata.ErrExists)
		}
		if taken, err := exists(ctx, tx, `SELECT 1 FROM tokens WHERE secret_hash = $1`, t.SecretHash); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("token secret hash: %w", metadata.ErrExists)
		}
		_, err := tx.Exec(ctx, `INSERT INTO tokens (`+tokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			t.ID, t.Name, t.ProjectPath, t.Instance, string(scope), t.SecretHash, t.CreatedAt, expires, t.Revoked)
		return err
	})
}

// TokenBySecretHash implements metadata.Store: revoked and expired tokens included; ErrNotFound when there
// is none (a malformed hash included: it cannot match).
func (s *Store) TokenBySecretHash(ctx context.Context, hash string) (*metadata.Token, error) {
	if _, err := metadata.DecodeTokenHash(hash); err != nil {
		return nil, fmt.Errorf("token: %w", metadata.ErrNotFound)
	}
	var t *metadata.Token
	err := s.viewOne(ctx, func(tx queryer) error {
		var err error
		t, err = scanToken(tx.QueryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE secret_hash = $1`, hash))
		return notFound(err, "token")
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// ListTokens implements metadata.Store: every token, oldest first, then by ID.
func (s *Store) ListTokens(ctx context.Context) ([]*metadata.Token, error) {
	var out []*metadata.Token
	err := s.view(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+tokenCols+` FROM tokens ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.Token, error) { return scanToken(r) })
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RevokeToken implements metadata.Store: the record stays, so using the token answers "revoked" rather
// than "unknown"; revoking twice is a no-op. ErrNotFound for an unknown id.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tokens SET revoked = true WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("token %q: %w", id, metadata.ErrNotFound)
		}
		return nil
	})
}
