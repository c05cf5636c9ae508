package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// The bulk reads of a search page (metadata.BulkReader). Each is the per-record query with the id turned
// into "= ANY($1)" and ordered by the id first, so that within one record the rows come in the per-record
// order; the queries of one call go in one batch, one round trip whatever the number of ids. The
// per-record methods call them with one id, so both answer alike by construction.

var _ metadata.BulkReader = (*Store)(nil)

// distinctIDs returns ids without duplicates, as int64s for the database's bigint arrays.
func distinctIDs(ids []uint64) []int64 {
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		out = append(out, int64(id))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// RunDataOf implements metadata.BulkReader: RunData of every candidate of ids, from one snapshot and one
// round trip; ids that name no candidate are absent. Errors are the database's.
func (s *Store) RunDataOf(ctx context.Context, ids []uint64) (map[uint64]*metadata.RunData, error) {
	out := make(map[uint64]*metadata.RunData, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	arg := distinctIDs(ids)
	err := s.viewBatch(ctx, func(b *pgx.Batch) {
		// The first query decides which candidates exist; the others fill those (their rows cannot name
		// another candidate: every table refers to candidates).
		b.Queue(`SELECT id FROM candidates WHERE id = ANY($1)`, arg).Query(func(rows pgx.Rows) error {
			found, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			for _, id := range found {
				out[uint64(id)] = &metadata.RunData{Params: []metadata.Param{}, Tags: []metadata.Tag{}, Metrics: []metadata.Metric{},
					IO: metadata.RunIO{Datasets: []metadata.DatasetInput{}, ModelInputs: []metadata.LMID{}, Outputs: []metadata.ModelOutput{}}}
			}
			return err
		})
		of := func(id int64) (*metadata.RunData, error) {
			rd, ok := out[uint64(id)]
			if !ok {
				return nil, fmt.Errorf("candidate %d: rows without the candidate inside one snapshot", id)
			}
			return rd, nil
		}
		b.Queue(`SELECT candidate_id, key, value FROM params WHERE candidate_id = ANY($1) ORDER BY candidate_id, key`, arg).Query(
			func(rows pgx.Rows) error {
				var id int64
				var p metadata.Param
				_, err := pgx.ForEachRow(rows, []any{&id, &p.Key, &p.Value}, func() error {
					rd, err := of(id)
					if err == nil {
						rd.Params = append(rd.Params, p)
					}
					return err
				})
				return err
			})
		b.Queue(`SELECT candidate_id, key, value FROM candidate_tags WHERE candidate_id = ANY($1) ORDER BY candidate_id, key`, arg).Query(
			func(rows pgx.Rows) error {
				var id int64
				var t metadata.Tag
				_, err := pgx.ForEachRow(rows, []any{&id, &t.Key, &t.Value}, func() error {
					rd, err := of(id)
					if err == nil {
						rd.Tags = append(rd.Tags, t)
					}
					return err
				})
				return err
			})
		// latest_metrics holds the latest point of each metric: MLflow's rule (the highest step, then the
		// newest timestamp, then the largest value with NaN below every number), which the trigger of
		// migration 10 keeps as points are inserted.
		b.Queue(`SELECT candidate_id, key, value, ts, step FROM latest_metrics WHERE candidate_id = ANY($1)
			ORDER BY candidate_id, key`, arg).Query(func(rows pgx.Rows) error {
			var id int64
			var m metadata.Metric
			_, err := pgx.ForEachRow(rows, []any{&id, &m.Key, &m.Value, &m.Timestamp, &m.Step}, func() error {
				rd, err := of(id)
				if err == nil {
					rd.Metrics = append(rd.Metrics, m)
				}
				return err
			})
			return err
		})
		queueRunIO(b, arg, of)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// queueRunIO queues the reads of the candidates' inputs (datasets in logging order, logged models by LMID)
// and outputs (by LMID) into the RunData that of returns for each.
func queueRunIO(b *pgx.Batch, ids []int64, of func(id int64) (*metadata.RunData, error)) {
	b.Queue(`SELECT r.candidate_id, d.name, d.digest, d.source_type, d.source, d.schema, d.profile, r.tags
		FROM run_datasets r JOIN candidates c ON c.id = r.candidate_id
		JOIN datasets d ON d.model_id = c.model_id AND d.name = r.name AND d.digest = r.digest
		WHERE r.candidate_id = ANY($1) ORDER BY r.candidate_id, r.ord`, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var in metadata.DatasetInput
			var tags []byte
			d := &in.Dataset
			if err := rows.Scan(&id, &d.Name, &d.Digest, &d.SourceType, &d.Source, &d.Schema, &d.Profile, &tags); err != nil {
				return err
			}
			if err := json.Unmarshal(tags, &in.Tags); err != nil {
				return fmt.Errorf("input tags of dataset %q of candidate %d: %w", d.Name, id, err)
			}
			if len(in.Tags) == 0 {
				in.Tags = nil
			}
			rd, err := of(id)
			if err != nil {
				return err
			}
			rd.IO.Datasets = append(rd.IO.Datasets, in)
		}
		return rows.Err()
	})
	b.Queue(`SELECT candidate_id, lmid FROM run_model_inputs WHERE candidate_id = ANY($1) ORDER BY candidate_id, lmid`, ids).Query(
		func(rows pgx.Rows) error {
			var id int64
			var raw []byte
			_, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
				var l metadata.LMID
				if copy(l[:], raw) != len(l) {
					return fmt.Errorf("model input of candidate %d: lmid of %d bytes", id, len(raw))
				}
				rd, err := of(id)
				if err == nil {
					rd.IO.ModelInputs = append(rd.IO.ModelInputs, l)
				}
				return err
			})
			return err
		})
	b.Queue(`SELECT candidate_id, lmid, step FROM run_model_outputs WHERE candidate_id = ANY($1) ORDER BY candidate_id, lmid`, ids).Query(
		func(rows pgx.Rows) error {
			var id int64
			var raw []byte
			var o metadata.ModelOutput
			_, err := pgx.ForEachRow(rows, []any{&id, &raw, &o.Step}, func() error {
				if copy(o.LoggedModel[:], raw) != len(o.LoggedModel) {
					return fmt.Errorf("output of candidate %d: lmid of %d bytes", id, len(raw))
				}
				rd, err := of(id)
				if err == nil {
					rd.IO.Outputs = append(rd.IO.Outputs, o)
				}
				return err
			})
			return err
		})
}

// LoggedModelMetricsOf implements metadata.BulkReader: LoggedModelMetrics of every logged model of ids,
// from one snapshot and one round trip; ids that name no logged model are absent. Errors are the
// database's.
func (s *Store) LoggedModelMetricsOf(ctx context.Context, ids []uint64) (map[uint64][]metadata.Metric, error) {
	out := make(map[uint64][]metadata.Metric, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	arg := distinctIDs(ids)
	// The points name their logged model by LMID: read it beside them, in the same round trip.
	lmids := make(map[int64]metadata.LMID, len(arg))
	err := s.viewBatch(ctx, func(b *pgx.Batch) {
		b.Queue(`SELECT id, lmid FROM logged_models WHERE id = ANY($1)`, arg).Query(func(rows pgx.Rows) error {
			var id int64
			var raw []byte
			_, err := pgx.ForEachRow(rows, []any{&id, &raw}, func() error {
				var l metadata.LMID
				if copy(l[:], raw) != len(l) {
					return fmt.Errorf("logged model %d: lmid of %d bytes", id, len(raw))
				}
				lmids[id], out[uint64(id)] = l, []metadata.Metric{}
				return nil
			})
			return err
		})
		b.Queue(`SELECT logged_model_id, key, step, ts, value, run, dataset_name, dataset_digest FROM lm_metrics
			WHERE logged_model_id = ANY($1) ORDER BY logged_model_id, key, step, ts, value`, arg).Query(func(rows pgx.Rows) error {
			var id int64
			var run []byte
			var m metadata.Metric
			_, err := pgx.ForEachRow(rows, []any{&id, &m.Key, &m.Step, &m.Timestamp, &m.Value, &run, &m.DatasetName, &m.DatasetDigest}, func() error {
				l, ok := lmids[id]
				if !ok {
					return fmt.Errorf("logged model %d: metrics without the logged model inside one snapshot", id)
				}
				if copy(m.Run[:], run) != len(m.Run) {
					return fmt.Errorf("metric %q of logged model %d: run id of %d bytes", m.Key, id, len(run))
				}
				m.LoggedModel = l
				out[uint64(id)] = append(out[uint64(id)], m)
				return nil
			})
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// VersionsBackedByAny implements metadata.BulkReader: VersionsBackedBy of every owner of ids, in one
// statement; every id is in the map, with an empty list when nothing is backed by it. Errors are the
// database's.
func (s *Store) VersionsBackedByAny(ctx context.Context, ids []uint64) (map[uint64][]*metadata.Version, error) {
	out := make(map[uint64][]*metadata.Version, len(ids))
	for _, id := range ids {
		out[id] = []*metadata.Version{}
	}
	if len(ids) == 0 {
		return out, nil
	}
	err := s.viewOne(ctx, func(q queryer) error {
		rows, err := q.Query(ctx, `SELECT `+versionCols+` FROM versions WHERE candidate_id = ANY($1) OR logged_model_id = ANY($1)
			ORDER BY model_id, seq`, distinctIDs(ids))
		if err != nil {
			return err
		}
		vs, err := collectVersions(rows)
		if err != nil {
			return err
		}
		// A version has exactly one owner (a CHECK of the schema), and the global order by model, then
		// seq, is also each owner's.
		for _, v := range vs {
			owner := v.CandidateID
			if owner == 0 {
				owner = v.LoggedModelID
			}
			out[owner] = append(out[owner], v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
