package pgstore

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// lifecycles are the values a candidate's lifecycle takes; SearchCandidates admits those its view does.
var lifecycles = []metadata.Lifecycle{metadata.Active, metadata.Deleted}

// SearchCandidates implements metadata.Store: the candidates of q.ModelIDs that q.View admits, with the next
// page's token ("" at the end). Without q.OrderByMetric, newest StartTime first (ties: newest ID first).
// With it, by the latest value of the metric (highest step, then newest timestamp): numbers ascending
// (descending with Desc; equal values by ID in the same direction), then NaN (by ID, same direction), then
// the candidates without the metric, newest StartTime first. Tokens are keyset positions, so a listing
// stays correct while candidates are added. ErrInvalid for an empty q.ModelIDs, a bad metric key or view,
// or a token of another query; ErrNotFound for an unknown model.
func (s *Store) SearchCandidates(ctx context.Context, q metadata.CandidateQuery) ([]*metadata.Candidate, string, error) {
	if len(q.ModelIDs) == 0 {
		return nil, "", fmt.Errorf("candidate search: no model: %w", metadata.ErrInvalid)
	}
	if q.View > metadata.AllLifecycles {
		return nil, "", fmt.Errorf("candidate search: view type %d: %w", q.View, metadata.ErrInvalid)
	}
	var admitted []int16
	for _, l := range lifecycles {
		if q.View.Admits(l) {
			admitted = append(admitted, int16(l))
		}
	}
	var key *string
	keyName, desc := "", false
	if q.OrderByMetric != nil {
		if err := validateMetricKey(q.OrderByMetric.Key); err != nil {
			return nil, "", err
		}
		key, keyName, desc = &q.OrderByMetric.Key, q.OrderByMetric.Key, q.OrderByMetric.Desc
	}
	models := slices.Clone(q.ModelIDs)
	slices.Sort(models)
	models = slices.Compact(models)
	pg, err := newPager(q.Page, "candidate search", models, q.View, key != nil, keyName, desc)
	if err != nil {
		return nil, "", err
	}
	// Every row gets the sort key (g, v, t, i), ascending in each part, as SearchLoggedModels' rows do, with
	// the start time in t.
	after, err := searchAfter(pg)
	if err != nil {
		return nil, "", err
	}
	type row struct {
		c *metadata.Candidate
		k searchKey
	}
	var rows []row
	err = s.view(ctx, func(tx pgx.Tx) error {
		if err := modelsExist(ctx, tx, models); err != nil {
			return err
		}
		rs, err := tx.Query(ctx, `WITH latest AS (
				SELECT DISTINCT ON (m.candidate_id) m.candidate_id, m.value FROM metrics m
				JOIN candidates c ON c.id = m.candidate_id
				WHERE m.key = $2 AND c.model_id = ANY($1)
				ORDER BY m.candidate_id, m.step DESC, m.ts DESC, (m.value = 'NaN'::float8), m.value DESC
			), ranked AS (
				SELECT c.id AS rid, CASE WHEN l.value IS NULL THEN 2 WHEN l.value = 'NaN'::float8 THEN 1 ELSE 0 END AS g,
					l.value AS lv FROM candidates c LEFT JOIN latest l ON l.candidate_id = c.id
				WHERE c.model_id = ANY($1) AND c.lifecycle = ANY($9)
			), keyed AS (
				SELECT rid, g,
					CASE WHEN g = 0 THEN (CASE WHEN $3 THEN -lv ELSE lv END) ELSE 0::float8 END AS v,
					CASE WHEN g = 2 THEN -c.start_time ELSE 0 END AS t,
					CASE WHEN g = 2 OR $3 THEN -c.id ELSE c.id END AS i
				FROM ranked JOIN candidates c ON c.id = rid
			)
			SELECT `+candidateCols+`, k.g, k.v, k.t, k.i FROM keyed k JOIN candidates ON candidates.id = k.rid
			WHERE (k.g, k.v, k.t, k.i) > ($4, $5, $6, $7)
			ORDER BY k.g, k.v, k.t, k.i LIMIT $8`,
			append(append([]any{models, key, desc}, after...), pg.limit+1, admitted)...)
		if err != nil {
			return err
		}
		rows, err = pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
			var x row
			var err error
			x.c, err = scanCandidate(rowWith{r, []any{&x.k.g, &x.k.v, &x.k.t, &x.k.i}})
			return x, err
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	rows, next := page(pg, rows, func(x row) []byte { return x.k.bytes() })
	out := make([]*metadata.Candidate, len(rows))
	for i, x := range rows {
		out[i] = x.c
	}
	return out, next, nil
}

// searchKey is a search result's position: see SearchLoggedModels.
type searchKey struct {
	g int64
	v float64
	t int64
	i int64
}

func (k searchKey) bytes() []byte { return int64Key(k.g, int64(math.Float64bits(k.v)), k.t, k.i) }

// searchAfter returns the query arguments of the position to resume after: below every row without a token.
func searchAfter(pg *pager) ([]any, error) {
	if pg.after == nil {
		return []any{int64(-1), float64(0), int64(0), int64(0)}, nil
	}
	k, err := pg.int64s(4)
	if err != nil {
		return nil, err
	}
	return []any{k[0], math.Float64frombits(uint64(k[1])), k[2], k[3]}, nil
}

// modelsExist returns ErrNotFound unless every model of the (deduplicated) list exists.
func modelsExist(ctx context.Context, tx pgx.Tx, models []uint64) error {
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM models WHERE id = ANY($1)`, models).Scan(&n); err != nil {
		return err
	}
	if n != len(models) {
		return fmt.Errorf("search: unknown model among %v: %w", models, metadata.ErrNotFound)
	}
	return nil
}

// rowWith scans a row into the columns of a scan function and then extra destinations.
type rowWith struct {
	pgx.Row
	extra []any
}

func (r rowWith) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.extra...)...) }
