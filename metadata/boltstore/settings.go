package boltstore

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

var settingSigningKey = []byte("signing_key")

// SigningKey returns the signing secret, drawing and storing it on the first call. The read comes first
// and alone, so that every call but the very first costs a read transaction; the write transaction reads
// again, so that of concurrent first calls (bbolt serializes writers) the first stores the secret and the
// others return it. Errors are the store's; a stored value of another length is ErrCorrupt.
func (s *Store) SigningKey(ctx context.Context) ([]byte, error) {
	var key []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		key, err = readSigningKey(tx)
		return err
	})
	if err != nil || key != nil {
		return key, err
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		if key, err = readSigningKey(tx); err != nil || key != nil {
			return err
		}
		key = make([]byte, metadata.SigningKeyLen)
		_, _ = rand.Read(key) // never fails (crypto/rand)
		return bk(tx, bucketSettings).Put(settingSigningKey, key)
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return key, nil
}

// readSigningKey returns a copy of the stored secret, nil when none is stored yet.
func readSigningKey(tx *bolt.Tx) ([]byte, error) {
	v := bk(tx, bucketSettings).Get(settingSigningKey)
	if v == nil {
		return nil, nil
	}
	if len(v) != metadata.SigningKeyLen {
		return nil, fmt.Errorf("settings/signing_key has %d bytes, want %d: %w", len(v), metadata.SigningKeyLen, ErrCorrupt)
	}
	return append([]byte(nil), v...), nil
}
