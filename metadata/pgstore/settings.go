package pgstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/mlgate/mlgate/metadata"
)

// SigningKey implements metadata.Store: the first call draws the secret and stores it; a concurrent
// first call on another replica loses the insert (ON CONFLICT DO NOTHING) and reads the winner's, so
// every replica gets the same bytes. Errors are the database's; never ErrNotFound.
func (s *Store) SigningKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := s.update(ctx, func(tx pgx.Tx) error {
		drawn := make([]byte, metadata.SigningKeyLen)
		_, _ = rand.Read(drawn) // never fails (crypto/rand)
		if _, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ('signing_key', $1) ON CONFLICT (name) DO NOTHING`, drawn); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT value FROM settings WHERE name = 'signing_key'`).Scan(&key)
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if len(key) != metadata.SigningKeyLen {
		return nil, fmt.Errorf("signing key: %d bytes stored, want %d: %w", len(key), metadata.SigningKeyLen, errCorruptSetting)
	}
	return key, nil
}

var errCorruptSetting = errors.New("pgstore: corrupt setting")
