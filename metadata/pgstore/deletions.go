package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlgate/mlgate/metadata"
)

var _ metadata.BlobDeletionQueue = (*Store)(nil)

// QueueBlobDeletion implements metadata.BlobDeletionQueue: an insert, or for a key queued already the
// later of both times, joining the transaction of ctx. ErrInvalid for an empty backend or key.
func (s *Store) QueueBlobDeletion(ctx context.Context, backend, key string, notBefore time.Time) error {
	if backend == "" || key == "" {
		return s.refuse(ctx, fmt.Errorf("queue a blob deletion: empty backend or key: %w", metadata.ErrInvalid))
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO blob_deletions (blob_key, backend, not_before) VALUES ($1, $2, $3)
			ON CONFLICT (blob_key) DO UPDATE SET not_before = GREATEST(blob_deletions.not_before, EXCLUDED.not_before)`,
			key, backend, notBefore.UTC())
		return err
	})
}

// ExtendBlobDeletions implements metadata.BlobDeletionQueue with one statement. It runs outside SERIALIZABLE
// retries' way as any update does; keys not queued match no row.
func (s *Store) ExtendBlobDeletions(ctx context.Context, keys []string, until time.Time) error {
	if len(keys) == 0 {
		return nil
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE blob_deletions SET not_before = $2 WHERE blob_key = ANY($1) AND not_before < $2`,
			keys, until.UTC())
		return err
	})
}

// ClaimBlobDeletions implements metadata.BlobDeletionQueue: one DELETE … RETURNING of the due rows, oldest
// first. Rows another replica is claiming at the same moment are skipped (SKIP LOCKED), not waited for.
func (s *Store) ClaimBlobDeletions(ctx context.Context, now time.Time, limit int) ([]metadata.BlobDeletion, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []metadata.BlobDeletion
	err := s.update(ctx, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, `DELETE FROM blob_deletions WHERE blob_key IN (
				SELECT blob_key FROM blob_deletions WHERE not_before <= $1 ORDER BY not_before LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING backend, blob_key, not_before`, now.UTC(), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d metadata.BlobDeletion
			if err := rows.Scan(&d.Backend, &d.Key, &d.NotBefore); err != nil {
				return err
			}
			d.NotBefore = d.NotBefore.UTC()
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BlobReferenced implements metadata.BlobDeletionQueue with one statement, hence one snapshot.
func (s *Store) BlobReferenced(ctx context.Context, key string) (bool, error) {
	var referenced bool
	err := s.view(ctx, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM files WHERE blob_key = $1)
			OR EXISTS (SELECT 1 FROM blob_deletions WHERE blob_key = $1)`, key).Scan(&referenced)
	})
	return referenced, err
}
