package boltstore

import (
	"context"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// SetAlias points alias at version seq of the model, moving it when it exists. ErrInvalid for an alias
// that metadata.ValidateAlias refuses; ErrNotFound for an unknown model or version.
func (s *Store) SetAlias(ctx context.Context, modelID uint64, alias string, seq int64) error {
	if err := metadata.ValidateAlias(alias); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		if _, err := getVersion(tx, modelID, seq); err != nil {
			return err
		}
		return bk(tx, bucketAliases).Put(idStrKey(modelID, alias), idKey(uint64(seq)))
	})
}

// Alias returns the Seq that alias points at. ErrNotFound for an unknown model; ErrAliasNotFound for an
// alias the model does not have.
func (s *Store) Alias(ctx context.Context, modelID uint64, alias string) (int64, error) {
	var seq int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		var err error
		seq, err = aliasSeq(tx, modelID, alias)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// DeleteAlias removes an alias. ErrNotFound for an unknown model; ErrAliasNotFound for an alias the model
// does not have.
func (s *Store) DeleteAlias(ctx context.Context, modelID uint64, alias string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		if _, err := aliasSeq(tx, modelID, alias); err != nil {
			return err
		}
		return bk(tx, bucketAliases).Delete(idStrKey(modelID, alias))
	})
}

// Aliases returns the model's aliases sorted by alias (byte order); empty, not nil, when there are none.
// ErrNotFound for an unknown model.
func (s *Store) Aliases(ctx context.Context, modelID uint64) ([]metadata.ModelAlias, error) {
	out := []metadata.ModelAlias{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		prefix := idKey(modelID)
		c := bk(tx, bucketAliases).Cursor()
		for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 8 {
				return fmt.Errorf("aliases %x: %w", k, ErrCorrupt)
			}
			out = append(out, metadata.ModelAlias{Alias: string(k[8:]), Seq: int64(decodeU64(v))})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// aliasSeq reads an alias; ErrAliasNotFound when absent.
func aliasSeq(tx *bolt.Tx, modelID uint64, alias string) (int64, error) {
	seq, ok, err := getU64(bk(tx, bucketAliases), idStrKey(modelID, alias))
	if err != nil {
		return 0, err
	}
	if !ok || alias == "" {
		return 0, fmt.Errorf("model %d alias %.60q: %w", modelID, alias, metadata.ErrAliasNotFound)
	}
	return int64(seq), nil
}

// deleteAliasesOf removes the model's aliases that point at seq. A model has few aliases, so a scan of
// its range is cheaper than another index.
func deleteAliasesOf(tx *bolt.Tx, modelID uint64, seq int64) error {
	prefix, want := idKey(modelID), idKey(uint64(seq))
	b := bk(tx, bucketAliases)
	var doomed [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if string(v) == string(want) {
			doomed = append(doomed, append([]byte(nil), k...)) // copied: deleting under a cursor moves it
		}
	}
	for _, k := range doomed {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
