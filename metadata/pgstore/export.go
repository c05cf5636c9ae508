package pgstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

var _ metadata.Exporter = (*Store)(nil)

// Export implements metadata.Exporter: one read-only REPEATABLE READ transaction, so that every table is
// read from one snapshot, and one query per kind whose rows are streamed, never collected. Orders match
// boltstore's byte-ordered keys: text keys are COLLATE "C", and metric points with equal key, step and
// timestamp order by the IEEE bits of their value (float8send), as bbolt's keys hold them. fn runs while
// a query is open: it must not call the store.
func (s *Store) Export(ctx context.Context, fn func(metadata.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// One attempt, never retried: fn has seen the records of a failed attempt already. A read-only
	// transaction at this level never fails to serialize anyway.
	return mapErr(s.attempt(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(st *txState) error {
		e := &pgExporter{ctx: ctx, tx: st.tx, fn: fn}
		for _, step := range []func() error{
			e.settings, e.projects, e.models, e.candidates, e.candidateTags, e.params, e.metrics, e.loggedModels,
			e.lmMetrics, e.datasets, e.datasetContexts, e.runDatasets, e.runModelInputs, e.runModelOutputs,
			e.versions, e.aliases, e.files, e.tokens, e.imports, e.counters,
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	}))
}

type pgExporter struct {
	ctx context.Context
	tx  pgx.Tx
	fn  func(metadata.Record) error
}

// each runs sql and calls scan for every row, in order; scan's error stops the walk.
func (e *pgExporter) each(sql string, scan func(pgx.Rows) (metadata.Record, error), args ...any) error {
	rows, err := e.tx.Query(e.ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scan(rows)
		if err != nil {
			return err
		}
		if err := e.fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (e *pgExporter) settings() error {
	return e.each(`SELECT name, value FROM settings ORDER BY name COLLATE "C"`, func(rows pgx.Rows) (metadata.Record, error) {
		var st metadata.Setting
		err := rows.Scan(&st.Name, &st.Value)
		return metadata.Record{Setting: &st}, err
	})
}

func (e *pgExporter) projects() error {
	return e.each(`SELECT id, path, created_at FROM projects ORDER BY id`, func(rows pgx.Rows) (metadata.Record, error) {
		p, err := scanProject(rows)
		return metadata.Record{Project: p}, err
	})
}

func (e *pgExporter) models() error {
	return e.each(`SELECT `+modelCols+` FROM models ORDER BY id`, func(rows pgx.Rows) (metadata.Record, error) {
		m, err := scanModel(rows)
		return metadata.Record{Model: m}, err
	})
}

func (e *pgExporter) candidates() error {
	return e.each(`SELECT `+candidateCols+` FROM candidates ORDER BY id`, func(rows pgx.Rows) (metadata.Record, error) {
		c, err := scanCandidate(rows)
		return metadata.Record{Candidate: c}, err
	})
}

func (e *pgExporter) candidateTags() error {
	return e.each(`SELECT candidate_id, key, value FROM candidate_tags ORDER BY candidate_id, key`, func(rows pgx.Rows) (metadata.Record, error) {
		var t metadata.OwnedTag
		err := rows.Scan(&t.Owner, &t.Key, &t.Value)
		return metadata.Record{CandidateTag: &t}, err
	})
}

func (e *pgExporter) params() error {
	return e.each(`SELECT candidate_id, key, value FROM params ORDER BY candidate_id, key`, func(rows pgx.Rows) (metadata.Record, error) {
		var p metadata.OwnedParam
		err := rows.Scan(&p.Owner, &p.Key, &p.Value)
		return metadata.Record{Param: &p}, err
	})
}

func (e *pgExporter) metrics() error {
	return e.each(`SELECT candidate_id, key, step, ts, value, logged_model, dataset_name, dataset_digest FROM metrics
		ORDER BY candidate_id, key, step, ts, float8send(value)`, func(rows pgx.Rows) (metadata.Record, error) {
		var m metadata.OwnedMetric
		var lm []byte
		if err := rows.Scan(&m.Owner, &m.Key, &m.Step, &m.Timestamp, &m.Value, &lm, &m.DatasetName, &m.DatasetDigest); err != nil {
			return metadata.Record{}, err
		}
		if lm != nil && copy(m.LoggedModel[:], lm) != len(m.LoggedModel) {
			return metadata.Record{}, fmt.Errorf("metric %q of candidate %d: logged model of %d bytes", m.Key, m.Owner, len(lm))
		}
		return metadata.Record{Metric: &m}, nil
	})
}

func (e *pgExporter) loggedModels() error {
	return e.each(`SELECT `+loggedModelCols+loggedModelFrom+` ORDER BY lm.id`, func(rows pgx.Rows) (metadata.Record, error) {
		lm, err := scanLoggedModel(rows)
		return metadata.Record{LoggedModel: lm}, err
	})
}

func (e *pgExporter) lmMetrics() error {
	return e.each(`SELECT logged_model_id, key, step, ts, value, run, dataset_name, dataset_digest FROM lm_metrics
		ORDER BY logged_model_id, key, step, ts, float8send(value)`, func(rows pgx.Rows) (metadata.Record, error) {
		var m metadata.OwnedMetric
		var run []byte
		if err := rows.Scan(&m.Owner, &m.Key, &m.Step, &m.Timestamp, &m.Value, &run, &m.DatasetName, &m.DatasetDigest); err != nil {
			return metadata.Record{}, err
		}
		if copy(m.Run[:], run) != len(m.Run) {
			return metadata.Record{}, fmt.Errorf("metric %q of logged model %d: run of %d bytes", m.Key, m.Owner, len(run))
		}
		return metadata.Record{LMMetric: &m}, nil
	})
}

func (e *pgExporter) datasets() error {
	return e.each(`SELECT model_id, name, digest, source_type, source, schema, profile FROM datasets
		ORDER BY model_id, name, digest`, func(rows pgx.Rows) (metadata.Record, error) {
		var d metadata.ModelDataset
		err := rows.Scan(&d.ModelID, &d.Name, &d.Digest, &d.SourceType, &d.Source, &d.Schema, &d.Profile)
		return metadata.Record{Dataset: &d}, err
	})
}

func (e *pgExporter) datasetContexts() error {
	return e.each(`SELECT model_id, name, digest, context FROM dataset_contexts ORDER BY model_id, name, digest, context`,
		func(rows pgx.Rows) (metadata.Record, error) {
			var d metadata.DatasetSummary
			err := rows.Scan(&d.ModelID, &d.Name, &d.Digest, &d.Context)
			return metadata.Record{DatasetContext: &d}, err
		})
}

func (e *pgExporter) runDatasets() error {
	return e.each(`SELECT candidate_id, name, digest, tags FROM run_datasets ORDER BY candidate_id, ord`, func(rows pgx.Rows) (metadata.Record, error) {
		var d metadata.RunDataset
		var tags []byte
		if err := rows.Scan(&d.Candidate, &d.Name, &d.Digest, &tags); err != nil {
			return metadata.Record{}, err
		}
		if err := json.Unmarshal(tags, &d.Tags); err != nil {
			return metadata.Record{}, fmt.Errorf("run dataset of candidate %d: tags: %w", d.Candidate, err)
		}
		return metadata.Record{RunDataset: &d}, nil
	})
}

func (e *pgExporter) runModelInputs() error {
	return e.each(`SELECT candidate_id, lmid FROM run_model_inputs ORDER BY candidate_id, lmid`, func(rows pgx.Rows) (metadata.Record, error) {
		var r metadata.RunModel
		var lmid []byte
		if err := rows.Scan(&r.Candidate, &lmid); err != nil {
			return metadata.Record{}, err
		}
		if copy(r.LMID[:], lmid) != len(r.LMID) {
			return metadata.Record{}, fmt.Errorf("model input of candidate %d: lmid of %d bytes", r.Candidate, len(lmid))
		}
		return metadata.Record{RunModelInput: &r}, nil
	})
}

func (e *pgExporter) runModelOutputs() error {
	return e.each(`SELECT candidate_id, lmid, step FROM run_model_outputs ORDER BY candidate_id, lmid`, func(rows pgx.Rows) (metadata.Record, error) {
		var r metadata.RunModel
		var lmid []byte
		if err := rows.Scan(&r.Candidate, &lmid, &r.Step); err != nil {
			return metadata.Record{}, err
		}
		if copy(r.LMID[:], lmid) != len(r.LMID) {
			return metadata.Record{}, fmt.Errorf("model output of candidate %d: lmid of %d bytes", r.Candidate, len(lmid))
		}
		return metadata.Record{RunModelOutput: &r}, nil
	})
}

func (e *pgExporter) versions() error {
	return e.each(`SELECT `+versionCols+` FROM versions ORDER BY model_id, seq`, func(rows pgx.Rows) (metadata.Record, error) {
		v, err := scanVersion(rows)
		return metadata.Record{Version: v}, err
	})
}

func (e *pgExporter) aliases() error {
	return e.each(`SELECT model_id, alias, seq FROM aliases ORDER BY model_id, alias`, func(rows pgx.Rows) (metadata.Record, error) {
		var a metadata.AliasRecord
		err := rows.Scan(&a.ModelID, &a.Alias, &a.Seq)
		return metadata.Record{Alias: &a}, err
	})
}

func (e *pgExporter) files() error {
	return e.each(`SELECT `+fileCols+` FROM files ORDER BY owner_id, path`, func(rows pgx.Rows) (metadata.Record, error) {
		f, err := scanFile(rows)
		return metadata.Record{File: f}, err
	})
}

func (e *pgExporter) tokens() error {
	return e.each(`SELECT `+tokenCols+` FROM tokens ORDER BY id`, func(rows pgx.Rows) (metadata.Record, error) {
		t, err := scanToken(rows)
		return metadata.Record{Token: t}, err
	})
}

func (e *pgExporter) imports() error {
	return e.each(`SELECT `+importCols+` FROM import_records ORDER BY project, source, kind, source_id`, func(rows pgx.Rows) (metadata.Record, error) {
		r, err := scanImportRecord(rows)
		return metadata.Record{Import: r}, err
	})
}

// counterScopes maps the counters that live in the counters table to their scope there.
var counterScopes = map[metadata.CounterKind]string{
	metadata.CounterProjectID:    counterProject,
	metadata.CounterModelIID:     counterModelIID,
	metadata.CounterCandidateIID: counterCandidateIID,
	metadata.CounterVersionID:    counterVersionID,
	metadata.CounterVersionSeq:   counterVersionSeq,
}

// counterSequences maps the counters that are sequences to their name.
var counterSequences = map[metadata.CounterKind]string{
	metadata.CounterModelID: "model_ids",
	metadata.CounterOwnerID: "owner_ids",
}

func (e *pgExporter) counters() error {
	for _, kind := range metadata.CounterKinds {
		if scope, ok := counterScopes[kind]; ok {
			err := e.each(`SELECT key, value FROM counters WHERE scope = $1 ORDER BY key`, func(rows pgx.Rows) (metadata.Record, error) {
				c := metadata.Counter{Kind: kind}
				err := rows.Scan(&c.Key, &c.Value)
				return metadata.Record{Counter: &c}, err
			}, scope)
			if err != nil {
				return err
			}
			continue
		}
		last, err := sequenceLast(e.ctx, e.tx, counterSequences[kind])
		if err != nil {
			return err
		}
		if last > 0 { // as bbolt's bucket sequences, a sequence never drawn from is no counter
			if err := e.fn(metadata.Record{Counter: &metadata.Counter{Kind: kind, Value: last}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// sequenceLast returns the last value a sequence issued, 0 when it issued none.
func sequenceLast(ctx context.Context, tx pgx.Tx, name string) (uint64, error) {
	var last int64
	var called bool
	// The name is one of counterSequences', never the caller's.
	if err := tx.QueryRow(ctx, `SELECT last_value, is_called FROM `+name).Scan(&last, &called); err != nil {
		return 0, err
	}
	if !called {
		return 0, nil
	}
	return uint64(last), nil
}
