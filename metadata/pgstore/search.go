package pgstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

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
	after, err := searchAfter(pg)
	if err != nil {
		return nil, "", err
	}
	var rows []found[*metadata.Candidate]
	err = s.view(ctx, func(tx pgx.Tx) error {
		if err := modelsExist(ctx, tx, models); err != nil {
			return err
		}
		hits, err := candidateOrder.run(ctx, tx, orderedQuery{models: models, key: key, desc: desc, after: after,
			want: pg.limit + 1, extra: []any{admitted}})
		if err != nil {
			return err
		}
		rows, err = inHitOrder(ctx, tx, `SELECT `+candidateCols+` FROM candidates WHERE id = ANY($1)`, hits,
			func(r pgx.CollectableRow) (*metadata.Candidate, error) { return scanCandidate(r) },
			func(c *metadata.Candidate) uint64 { return c.ID }, "candidate")
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := pageFound(pg, rows)
	return out, next, nil
}

// searchKey is a search result's position, ascending in each part: g is 0 for a number, 1 for NaN, 2 for
// no value; v the number (negated for Desc); t the negated time (start time, or creation time in
// milliseconds) of those without a value; i the ID (negated for Desc and for those without a value). Page
// tokens carry it, so their format outlives the queries that produce it.
type searchKey struct {
	g int64
	v float64
	t int64
	i int64
}

func (k searchKey) bytes() []byte { return int64Key(k.g, int64(math.Float64bits(k.v)), k.t, k.i) }

// searchAfter returns the position to resume after, nil without a token.
func searchAfter(pg *pager) (*searchKey, error) {
	if pg.after == nil {
		return nil, nil
	}
	k, err := pg.int64s(4)
	if err != nil {
		return nil, err
	}
	if k[0] < 0 || k[0] > 2 {
		return nil, fmt.Errorf("page token: group %d: %w", k[0], metadata.ErrInvalid)
	}
	return &searchKey{k[0], math.Float64frombits(uint64(k[1])), k[2], k[3]}, nil
}

// orderSQL is a search by the latest value of a metric, for an owner kind (candidates or logged models),
// as three queries, one per group of searchKey, each taking the page from an index in its order and
// stopping at the page's end; a page that a group does not fill continues in the next. One query over
// every row with a computed sort key would read and sort all of the models' rows for each page.
//
// Every query takes $1 the model ids, $2 the metric key (NULL: no owner has the metric), $3 and $4 the
// position to continue after, $5 the number of rows wanted, then orderedQuery.extra; it returns each
// owner's id and then the value (numbers) or time (missing) its key needs. The queries are per model
// (LATERAL over the ids), as an index scan in value order serves one model at a time.
type orderSQL struct {
	// numbers is a format taking, in order: the comparison to the position (> or <) and three times the
	// direction (ASC or DESC).
	numbers string
	// nans is a format taking the comparison and two times the direction.
	nans string
	// missing orders newest first; its time is the start time in milliseconds (bigint), or a timestamptz.
	missing string
	// timestamps reports that missing's time is a timestamptz, not milliseconds.
	timestamps bool
}

// candidateOrder searches candidates; orderedQuery.extra is the admitted lifecycles ($6).
var candidateOrder = orderSQL{
	numbers: `SELECT x.id, x.value FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT l.candidate_id AS id, l.value FROM latest_metrics l JOIN candidates c ON c.id = l.candidate_id
		WHERE l.model_id = mo.id AND l.key = $2 AND l.value < 'NaN'::float8 AND (l.value, l.candidate_id) %s ($3::float8, $4::bigint)
			AND c.lifecycle = ANY($6)
		ORDER BY l.value %[2]s, l.candidate_id %[2]s LIMIT $5) x
		ORDER BY x.value %[2]s, x.id %[2]s LIMIT $5`,
	nans: `SELECT x.id, 0::float8 FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT l.candidate_id AS id FROM latest_metrics l JOIN candidates c ON c.id = l.candidate_id
		WHERE l.model_id = mo.id AND l.key = $2 AND l.value = 'NaN'::float8 AND l.candidate_id %s $4::bigint
			AND c.lifecycle = ANY($6) AND $3::float8 IS NOT NULL
		ORDER BY l.candidate_id %[2]s LIMIT $5) x
		ORDER BY x.id %[2]s LIMIT $5`,
	missing: `SELECT x.id, x.start_time FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT c.id, c.start_time FROM candidates c
		WHERE c.model_id = mo.id AND (c.start_time, c.id) < ($3::bigint, $4::bigint) AND c.lifecycle = ANY($6)
			AND NOT EXISTS (SELECT 1 FROM latest_metrics l WHERE l.candidate_id = c.id AND l.key = $2::text)
		ORDER BY c.start_time DESC, c.id DESC LIMIT $5) x
		ORDER BY x.start_time DESC, x.id DESC LIMIT $5`,
}

// loggedModelOrder searches logged models.
var loggedModelOrder = orderSQL{
	numbers: `SELECT x.id, x.value FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT l.logged_model_id AS id, l.value FROM latest_lm_metrics l
		WHERE l.model_id = mo.id AND l.key = $2 AND l.value < 'NaN'::float8 AND (l.value, l.logged_model_id) %s ($3::float8, $4::bigint)
		ORDER BY l.value %[2]s, l.logged_model_id %[2]s LIMIT $5) x
		ORDER BY x.value %[2]s, x.id %[2]s LIMIT $5`,
	nans: `SELECT x.id, 0::float8 FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT l.logged_model_id AS id FROM latest_lm_metrics l
		WHERE l.model_id = mo.id AND l.key = $2 AND l.value = 'NaN'::float8 AND l.logged_model_id %s $4::bigint
			AND $3::float8 IS NOT NULL
		ORDER BY l.logged_model_id %[2]s LIMIT $5) x
		ORDER BY x.id %[2]s LIMIT $5`,
	missing: `SELECT x.id, x.created_at FROM unnest($1::bigint[]) AS mo(id) CROSS JOIN LATERAL (
		SELECT m.id, m.created_at FROM logged_models m
		WHERE m.model_id = mo.id AND (m.created_at, m.id) < ($3::timestamptz, $4::bigint)
			AND NOT EXISTS (SELECT 1 FROM latest_lm_metrics l WHERE l.logged_model_id = m.id AND l.key = $2::text)
		ORDER BY m.created_at DESC, m.id DESC LIMIT $5) x
		ORDER BY x.created_at DESC, x.id DESC LIMIT $5`,
	timestamps: true,
}

// orderedQuery is one page of an ordered search.
type orderedQuery struct {
	models []uint64
	key    *string // nil: no ordering metric, every owner is in group 2
	desc   bool
	after  *searchKey // nil: from the start
	want   int
	extra  []any
}

// hit is an owner found by an ordered search, with its position.
type hit struct {
	id int64
	k  searchKey
}

// found is a record a search hit, with its position.
type found[T any] struct {
	rec T
	k   searchKey
}

// inHitOrder reads the records of hits with query (which takes their ids as $1) and returns them in the
// hits' order, each with its position. A hit whose record is missing is an error: the ids and the
// records are read in one snapshot, so that cannot happen unless the query is wrong.
func inHitOrder[T any](ctx context.Context, tx pgx.Tx, query string, hits []hit, scan func(pgx.CollectableRow) (T, error),
	idOf func(T) uint64, what string) ([]found[T], error) {
	rs, err := tx.Query(ctx, query, hitIDs(hits))
	if err != nil {
		return nil, err
	}
	recs, err := pgx.CollectRows(rs, scan)
	if err != nil {
		return nil, err
	}
	byID := make(map[uint64]T, len(recs))
	for _, r := range recs {
		byID[idOf(r)] = r
	}
	out := make([]found[T], 0, len(hits))
	for _, h := range hits {
		r, ok := byID[uint64(h.id)]
		if !ok {
			return nil, fmt.Errorf("%s search: %s %d vanished inside one snapshot", what, what, h.id)
		}
		out = append(out, found[T]{r, h.k})
	}
	return out, nil
}

// pageFound cuts rows to the page and returns its records and the next page's token ("" at the end).
func pageFound[T any](pg *pager, rows []found[T]) ([]T, string) {
	rows, next := page(pg, rows, func(x found[T]) []byte { return x.k.bytes() })
	out := make([]T, len(rows))
	for i, x := range rows {
		out[i] = x.rec
	}
	return out, next
}

func hitIDs(hs []hit) []int64 {
	ids := make([]int64, len(hs))
	for i, h := range hs {
		ids[i] = h.id
	}
	return ids
}

// farFuture is above every creation time: the bound of the first page of logged models without the metric.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// run returns up to q.want owners after q.after, in searchKey order.
func (o orderSQL) run(ctx context.Context, tx pgx.Tx, q orderedQuery) ([]hit, error) {
	first := int64(0)
	if q.key == nil {
		first = 2
	}
	if q.after != nil {
		first = max(first, q.after.g)
	}
	cmp, dir := ">", "ASC"
	if q.desc {
		cmp, dir = "<", "DESC"
	}
	var out []hit
	for g := first; g <= 2 && len(out) < q.want; g++ {
		var (
			sql        string
			lo, hi     any // $3 and $4
			resumed    = q.after != nil && q.after.g == g
			neg        = int64(1)
			timeBounds = g == 2 && o.timestamps
		)
		if q.desc {
			neg = -1
		}
		switch g {
		case 0:
			sql = fmt.Sprintf(o.numbers, cmp, dir)
			switch {
			case resumed:
				lo, hi = float64(neg)*q.after.v, neg*q.after.i
			case q.desc:
				lo, hi = math.Inf(1), int64(math.MaxInt64)
			default:
				lo, hi = math.Inf(-1), int64(-1)
			}
		case 1:
			sql = fmt.Sprintf(o.nans, cmp, dir)
			lo = float64(0) // unused by the query, but typed
			switch {
			case resumed:
				hi = neg * q.after.i
			case q.desc:
				hi = int64(math.MaxInt64)
			default:
				hi = int64(-1)
			}
		default:
			sql = o.missing
			switch {
			case resumed && timeBounds:
				lo, hi = time.UnixMilli(-q.after.t), -q.after.i
			case resumed:
				lo, hi = -q.after.t, -q.after.i
			case timeBounds:
				lo, hi = farFuture, int64(math.MaxInt64)
			default:
				lo, hi = int64(math.MaxInt64), int64(math.MaxInt64)
			}
		}
		rows, err := tx.Query(ctx, sql, append([]any{q.models, q.key, lo, hi, q.want - len(out)}, q.extra...)...)
		if err != nil {
			return nil, err
		}
		var h hit
		var v float64
		var ms int64
		var at time.Time
		dest := []any{&h.id, &v}
		if g == 2 {
			dest = []any{&h.id, &ms}
			if timeBounds {
				dest = []any{&h.id, &at}
			}
		}
		_, err = pgx.ForEachRow(rows, dest, func() error {
			switch g {
			case 0:
				h.k = searchKey{g: 0, v: float64(neg) * v, i: neg * h.id}
			case 1:
				h.k = searchKey{g: 1, i: neg * h.id}
			default:
				if timeBounds {
					ms = at.UnixMilli()
				}
				h.k = searchKey{g: 2, t: -ms, i: -h.id}
			}
			out = append(out, h)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
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
