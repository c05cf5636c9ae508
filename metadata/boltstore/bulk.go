package boltstore

import (
	"context"
	"errors"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// The bulk reads of a search page (metadata.BulkReader): the per-record reads of every id in one read
// transaction, which saves a transaction per record and gives the page one consistent view.

var _ metadata.BulkReader = (*Store)(nil)

// bulkView reads one value per id in one read transaction; an id for which read returns ErrNotFound is
// left out.
func bulkView[V any](ctx context.Context, s *Store, ids []uint64, read func(tx *bolt.Tx, id uint64) (V, error)) (map[uint64]V, error) {
	out := make(map[uint64]V, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, id := range ids {
			if _, done := out[id]; done {
				continue
			}
			v, err := read(tx, id)
			switch {
			case errors.Is(err, metadata.ErrNotFound):
				continue
			case err != nil:
				return err
			}
			out[id] = v
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RunDataOf implements metadata.BulkReader: RunData of every candidate of ids, in one read transaction;
// ids that name no candidate are absent. Errors are the database's (closed, ctx done, ErrCorrupt).
func (s *Store) RunDataOf(ctx context.Context, ids []uint64) (map[uint64]*metadata.RunData, error) {
	return bulkView(ctx, s, ids, runData)
}

// LoggedModelMetricsOf implements metadata.BulkReader: LoggedModelMetrics of every logged model of ids, in
// one read transaction; ids that name no logged model are absent. Errors as for RunDataOf.
func (s *Store) LoggedModelMetricsOf(ctx context.Context, ids []uint64) (map[uint64][]metadata.Metric, error) {
	return bulkView(ctx, s, ids, loggedModelMetrics)
}

// VersionsBackedByAny implements metadata.BulkReader: VersionsBackedBy of every owner of ids, in one read
// transaction; every id is present, with an empty list when nothing is backed by it. Errors as for
// RunDataOf.
func (s *Store) VersionsBackedByAny(ctx context.Context, ids []uint64) (map[uint64][]*metadata.Version, error) {
	return bulkView(ctx, s, ids, versionsBackedBy)
}
