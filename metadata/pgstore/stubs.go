package pgstore

import (
	"context"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
)

// The methods below have no tables yet. Each fails with an error wrapping ErrNotImplemented, and fails the
// transaction ctx carries, as any failed write does.

func (s *Store) notImplemented(ctx context.Context, method string) error {
	return s.refuse(ctx, fmt.Errorf("%s: %w", method, ErrNotImplemented))
}

// SearchCandidates is not implemented yet (ErrNotImplemented).
func (s *Store) SearchCandidates(ctx context.Context, q metadata.CandidateQuery) ([]*metadata.Candidate, string, error) {
	return nil, "", s.notImplemented(ctx, "SearchCandidates")
}
