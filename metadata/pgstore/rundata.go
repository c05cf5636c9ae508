package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// LogBatch implements metadata.Store: params, metrics and tags of a candidate in one transaction, all or
// nothing. A param logged again with the same value is a no-op, with another value ErrInvalid (also inside
// one batch); an exact duplicate metric point (key, step, timestamp, value; NaNs equal) is a no-op; a tag
// replaces the value of its key. ErrInvalid for empty or over-long keys and values (params 250/250, metric
// keys 250 without NUL, tags 250/5000, dataset name and digest); ErrNotFound for an unknown candidate, and
// for a point whose logged model is unknown or of another project. A point with a logged model is also
// one of that logged model's metrics, with the candidate's EID as its Run.
func (s *Store) LogBatch(ctx context.Context, candidateID uint64, params []metadata.Param, metrics []metadata.Metric, tags []metadata.Tag) error {
	if err := validateParams(params); err != nil {
		return s.refuse(ctx, err)
	}
	for _, m := range metrics {
		if err := validateMetricKey(m.Key); err != nil {
			return s.refuse(ctx, err)
		}
		if len(m.DatasetName) > metadata.MaxDatasetNameLen || len(m.DatasetDigest) > metadata.MaxDatasetDigestLen {
			return s.refuse(ctx, fmt.Errorf("metric %q: dataset name or digest too long (%d, %d bytes): %w",
				m.Key, metadata.MaxDatasetNameLen, metadata.MaxDatasetDigestLen, metadata.ErrInvalid))
		}
	}
	if err := metadata.ValidateTags(tags); err != nil {
		return s.refuse(ctx, err)
	}
	if s.txOf(ctx) == nil && len(params) == 0 && len(tags) == 0 && !slices.ContainsFunc(metrics, func(m metadata.Metric) bool { return !m.LoggedModel.IsZero() }) {
		return s.logPointsOnly(ctx, candidateID, metrics)
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		c, err := getCandidate(ctx, tx, candidateID, false)
		if err != nil {
			return err
		}
		for _, p := range params {
			var old string
			err := tx.QueryRow(ctx, `INSERT INTO params (candidate_id, key, value) VALUES ($1, $2, $3)
				ON CONFLICT (candidate_id, key) DO UPDATE SET value = params.value RETURNING value`,
				candidateID, p.Key, p.Value).Scan(&old)
			if err != nil {
				return err
			}
			if old != p.Value {
				return fmt.Errorf("param %q already logged with value %q, not %q; params are immutable: %w",
					p.Key, old, p.Value, metadata.ErrInvalid)
			}
		}
		for _, m := range metrics {
			if !m.LoggedModel.IsZero() {
				if err := logLoggedModelMetric(ctx, tx, c, m); err != nil {
					return err
				}
			}
		}
		if err := insertPoints(ctx, tx, candidateID, metrics); err != nil {
			return err
		}
		return putTags(ctx, tx, candidateID, tags)
	})
}

// logPointsOnly is LogBatch, outside a caller's transaction, of points without a logged model (what
// log-metric and most log-batch calls send): BEGIN, the one INSERT and COMMIT in one round trip. The candidate is not read first: the INSERT's
// foreign key answers for it, and its violation is ErrNotFound.
func (s *Store) logPointsOnly(ctx context.Context, candidateID uint64, metrics []metadata.Metric) error {
	if len(metrics) == 0 {
		// Nothing to write; the contract still answers ErrNotFound for an unknown candidate.
		return s.view(ctx, func(tx pgx.Tx) error {
			_, err := getCandidate(ctx, tx, candidateID, false)
			return err
		})
	}
	err := s.updateBatch(ctx, func(b *pgx.Batch) { queuePoints(b, candidateID, metrics) })
	if errors.Is(err, metadata.ErrNotFound) { // the foreign key's answer (mapErr)
		return fmt.Errorf("candidate %d: %w", candidateID, err)
	}
	return err
}

// insertPoints stores a candidate's points in one statement: a 1000-point batch is one round trip, and
// one run of the latest_metrics trigger. An exact duplicate point (stored or earlier in the batch) takes
// the logged model and dataset of the later one, as boltstore's Put of the same key does. ON CONFLICT
// cannot update one row twice in a statement, so duplicates inside the batch are merged here first, under
// PostgreSQL's equality of float8 (every NaN equal, -0 equal to 0).
func insertPoints(ctx context.Context, tx pgx.Tx, candidateID uint64, metrics []metadata.Metric) error {
	if len(metrics) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	queuePoints(b, candidateID, metrics)
	return tx.SendBatch(ctx, b).Close()
}

// queuePoints queues insertPoints's statement in b.
func queuePoints(b *pgx.Batch, candidateID uint64, metrics []metadata.Metric) {
	type point struct {
		key       string
		step, ts  int64
		valueBits uint64
	}
	at := make(map[point]int, len(metrics))
	var (
		keys, names, digests []string
		steps, tss           []int64
		values               []float64
		lms                  [][]byte // nil: NULL, no logged model
	)
	for _, m := range metrics {
		bits := math.Float64bits(m.Value)
		switch {
		case math.IsNaN(m.Value):
			bits = math.Float64bits(math.NaN())
		case m.Value == 0:
			bits = 0
		}
		var lm []byte
		if !m.LoggedModel.IsZero() {
			lm = m.LoggedModel[:]
		}
		p := point{m.Key, m.Step, m.Timestamp, bits}
		if i, ok := at[p]; ok {
			lms[i], names[i], digests[i] = lm, m.DatasetName, m.DatasetDigest
			continue
		}
		at[p] = len(keys)
		keys, steps, tss, values = append(keys, m.Key), append(steps, m.Step), append(tss, m.Timestamp), append(values, m.Value)
		lms, names, digests = append(lms, lm), append(names, m.DatasetName), append(digests, m.DatasetDigest)
	}
	b.Queue(`INSERT INTO metrics (candidate_id, key, step, ts, value, logged_model, dataset_name, dataset_digest)
		SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::bytea[], $7::text[], $8::text[])
		ON CONFLICT (candidate_id, key, step, ts, value) DO UPDATE SET logged_model = EXCLUDED.logged_model,
		dataset_name = EXCLUDED.dataset_name, dataset_digest = EXCLUDED.dataset_digest`,
		candidateID, keys, steps, tss, values, lms, names, digests)
}

func validateParams(params []metadata.Param) error {
	seen := make(map[string]string, len(params))
	for _, p := range params {
		if p.Key == "" || len(p.Key) > metadata.MaxParamKeyLen {
			return fmt.Errorf("param key %.60q: must be 1–%d bytes: %w", p.Key, metadata.MaxParamKeyLen, metadata.ErrInvalid)
		}
		if len(p.Value) > metadata.MaxParamValueLen {
			return fmt.Errorf("param %q: value longer than %d bytes: %w", p.Key, metadata.MaxParamValueLen, metadata.ErrInvalid)
		}
		if v, ok := seen[p.Key]; ok && v != p.Value {
			return fmt.Errorf("param %q given twice with different values: %w", p.Key, metadata.ErrInvalid)
		}
		seen[p.Key] = p.Value
	}
	return nil
}

// validateMetricKey refuses NUL as boltstore does (its key terminator), so both stores take the same keys.
func validateMetricKey(k string) error {
	if k == "" || len(k) > metadata.MaxMetricKeyLen || strings.IndexByte(k, 0) >= 0 {
		return fmt.Errorf("metric key %.60q: must be 1–%d bytes without NUL: %w", k, metadata.MaxMetricKeyLen, metadata.ErrInvalid)
	}
	return nil
}

// RunData implements metadata.Store: params, tags and the latest point of each metric, each sorted by key
// (byte order), empty slices when there is nothing, and the run's inputs and outputs (see queueRunData).
// ErrNotFound for an unknown candidate. It is RunDataOf for one id, so that both answer alike.
func (s *Store) RunData(ctx context.Context, candidateID uint64) (*metadata.RunData, error) {
	out, err := s.RunDataOf(ctx, []uint64{candidateID})
	if err != nil {
		return nil, err
	}
	rd, ok := out[candidateID]
	if !ok {
		return nil, fmt.Errorf("candidate %d: %w", candidateID, metadata.ErrNotFound)
	}
	return rd, nil
}

// MetricHistory implements metadata.Store: the points of one metric ordered by step, then timestamp (then
// value, which only makes the order total), each with its logged model and dataset, and the next page's
// token ("" at the end). An unknown key is an empty history. ErrNotFound for an unknown candidate;
// ErrInvalid for a bad key or a token of another listing.
func (s *Store) MetricHistory(ctx context.Context, candidateID uint64, key string, p metadata.Page) ([]metadata.Metric, string, error) {
	if err := validateMetricKey(key); err != nil {
		return nil, "", err
	}
	pg, err := newPager(p, "metrics", candidateID, key)
	if err != nil {
		return nil, "", err
	}
	out := []metadata.Metric{}
	err = s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getCandidate(ctx, tx, candidateID, false); err != nil {
			return err
		}
		const cols = `SELECT step, ts, value, logged_model, dataset_name, dataset_digest FROM metrics`
		var rows pgx.Rows
		if pg.after == nil {
			rows, err = tx.Query(ctx, cols+` WHERE candidate_id = $1 AND key = $2
				ORDER BY step, ts, value LIMIT $3`, candidateID, key, pg.limit+1)
		} else {
			k, kerr := pg.int64s(3)
			if kerr != nil {
				return kerr
			}
			rows, err = tx.Query(ctx, cols+` WHERE candidate_id = $1 AND key = $2 AND (step, ts, value) > ($3, $4, $5)
				ORDER BY step, ts, value LIMIT $6`, candidateID, key, k[0], k[1], math.Float64frombits(uint64(k[2])), pg.limit+1)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (metadata.Metric, error) {
			m := metadata.Metric{Key: key}
			var lm []byte
			if err := r.Scan(&m.Step, &m.Timestamp, &m.Value, &lm, &m.DatasetName, &m.DatasetDigest); err != nil {
				return m, err
			}
			if lm != nil && copy(m.LoggedModel[:], lm) != len(m.LoggedModel) {
				return m, fmt.Errorf("metric %q of candidate %d: logged model id of %d bytes", key, candidateID, len(lm))
			}
			return m, nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(m metadata.Metric) []byte {
		return int64Key(m.Step, m.Timestamp, int64(math.Float64bits(m.Value)))
	})
	return out, next, nil
}
