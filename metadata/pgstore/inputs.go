package pgstore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// contextTag is the input tag whose value SearchDatasets reports as a dataset's context.
const contextTag = "mlflow.data.context"

// validateDatasetInput checks a dataset input as boltstore does, and refuses NUL in any of its strings,
// which no text column holds.
func validateDatasetInput(in metadata.DatasetInput) error {
	d := in.Dataset
	for _, f := range []struct {
		what     string
		v        string
		required bool
		max      int
	}{
		{"name", d.Name, true, metadata.MaxDatasetNameLen},
		{"digest", d.Digest, true, metadata.MaxDatasetDigestLen},
		{"source_type", d.SourceType, true, metadata.MaxDatasetSourceType},
		{"source", d.Source, true, metadata.MaxDatasetSourceLen},
		{"schema", d.Schema, false, metadata.MaxDatasetSchemaLen},
		{"profile", d.Profile, false, metadata.MaxDatasetProfileLen},
	} {
		if (f.required && f.v == "") || len(f.v) > f.max {
			return fmt.Errorf("dataset %.60q: %s must be 1–%d bytes (has %d): %w", d.Name, f.what, f.max, len(f.v), metadata.ErrInvalid)
		}
		if strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("dataset %.60q: %s contains NUL: %w", d.Name, f.what, metadata.ErrInvalid)
		}
	}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > metadata.MaxInputTagKeyLen || len(t.Value) > metadata.MaxInputTagValueLen ||
			strings.IndexByte(t.Key, 0) >= 0 || strings.IndexByte(t.Value, 0) >= 0 {
			return fmt.Errorf("dataset %.60q: input tag %.60q: key must be 1–%d bytes, value at most %d, without NUL: %w",
				d.Name, t.Key, metadata.MaxInputTagKeyLen, metadata.MaxInputTagValueLen, metadata.ErrInvalid)
		}
	}
	return nil
}

// LogInputs implements metadata.Store: in one transaction, it stores each dataset once per model (the
// first description kept), links it to the candidate once (the first input's tags kept) and links the
// logged models as inputs. ErrNotFound for an unknown candidate, or a logged model that is unknown or of
// another project; ErrInvalid for an empty or over-long name, digest, source type or source, an over-long
// schema or profile, a bad input tag, or NUL in any of them.
func (s *Store) LogInputs(ctx context.Context, candidateID uint64, datasets []metadata.DatasetInput, models []metadata.LMID) error {
	for _, in := range datasets {
		if err := validateDatasetInput(in); err != nil {
			return s.refuse(ctx, err)
		}
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		c, err := getCandidate(ctx, tx, candidateID, false)
		if err != nil {
			return err
		}
		for _, in := range datasets {
			d := in.Dataset
			if _, err := tx.Exec(ctx, `INSERT INTO datasets (model_id, name, digest, source_type, source, schema, profile)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
				c.ModelID, d.Name, d.Digest, d.SourceType, d.Source, d.Schema, d.Profile); err != nil {
				return err
			}
			tags, err := tagsJSON(in.Tags)
			if err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO run_datasets (candidate_id, name, digest, tags) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`, candidateID, d.Name, d.Digest, tags)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				continue // linked already: the first input's tags stay
			}
			ctxValue := ""
			for _, t := range in.Tags {
				if t.Key == contextTag {
					ctxValue = t.Value
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO dataset_contexts (model_id, name, digest, context) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`, c.ModelID, d.Name, d.Digest, ctxValue); err != nil {
				return err
			}
		}
		for _, lmid := range models {
			if _, err := loggedModelOfProject(ctx, tx, lmid, c.Project); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO run_model_inputs (candidate_id, lmid) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
				candidateID, lmid[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// LogOutputs implements metadata.Store: in one transaction, it links the logged models to the candidate as
// its outputs; one linked already keeps its first step. ErrNotFound for an unknown candidate, or a logged
// model that is unknown or of another project.
func (s *Store) LogOutputs(ctx context.Context, candidateID uint64, outputs []metadata.ModelOutput) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		c, err := getCandidate(ctx, tx, candidateID, false)
		if err != nil {
			return err
		}
		for _, o := range outputs {
			if _, err := loggedModelOfProject(ctx, tx, o.LoggedModel, c.Project); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO run_model_outputs (candidate_id, lmid, step) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, candidateID, o.LoggedModel[:], o.Step); err != nil {
				return err
			}
		}
		return nil
	})
}

// SearchDatasets implements metadata.Store: the datasets of the models, one entry per context an input gave
// them ("" for none), ordered by model, name, digest, context (byte order). Unknown models have none.
// ErrInvalid for an empty modelIDs.
func (s *Store) SearchDatasets(ctx context.Context, modelIDs []uint64) ([]metadata.DatasetSummary, error) {
	if len(modelIDs) == 0 {
		return nil, fmt.Errorf("dataset search: no model: %w", metadata.ErrInvalid)
	}
	models := slices.Clone(modelIDs)
	slices.Sort(models)
	models = slices.Compact(models)
	out := []metadata.DatasetSummary{}
	err := s.view(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT model_id, name, digest, context FROM dataset_contexts WHERE model_id = ANY($1)
			ORDER BY model_id, name, digest, context`, models)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[metadata.DatasetSummary])
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
