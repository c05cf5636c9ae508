package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

var _ metadata.Loader = (*Store)(nil)

// migrationCols are the columns of metadata_migration (migration 9) that MigrationProgress reads.
const migrationCols = `source, generation, records, done, started_at, updated_at`

func scanMigration(row pgx.Row) (*metadata.MigrationProgress, error) {
	var p metadata.MigrationProgress
	var gen int64
	if err := row.Scan(&p.Source, &gen, &p.Records, &p.Done, &p.StartedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	p.Generation = uint64(gen)
	p.StartedAt, p.UpdatedAt = p.StartedAt.UTC(), p.UpdatedAt.UTC()
	return &p, nil
}

// MigrationProgress implements metadata.Loader.
func (s *Store) MigrationProgress(ctx context.Context) (*metadata.MigrationProgress, error) {
	var p *metadata.MigrationProgress
	err := s.view(ctx, func(tx pgx.Tx) (err error) {
		p, err = scanMigration(tx.QueryRow(ctx, `SELECT `+migrationCols+` FROM metadata_migration`))
		return notFound(err, "metadata migration")
	})
	return p, err
}

// BeginMigration implements metadata.Loader. The store is empty when it has no project, token, file row or
// import record, and none of its counters or sequences ever issued a number (every other entity needs a
// project); settings do not count. Generation is kept as PostgreSQL's bigint, bit for bit.
func (s *Store) BeginMigration(ctx context.Context, p metadata.MigrationProgress) (*metadata.MigrationProgress, error) {
	if p.Source == "" {
		return nil, fmt.Errorf("metadata migration: empty source: %w", metadata.ErrInvalid)
	}
	var out *metadata.MigrationProgress
	err := s.update(ctx, func(tx pgx.Tx) error {
		cur, err := scanMigration(tx.QueryRow(ctx, `SELECT `+migrationCols+` FROM metadata_migration FOR UPDATE`))
		switch {
		case err == nil && cur.Source != p.Source:
			return fmt.Errorf("the target holds a migration of another source (%s, started %s, %d records in): %w",
				cur.Source, cur.StartedAt.Format(time.RFC3339), cur.Records, metadata.ErrConflict)
		case err == nil && cur.Generation != p.Generation:
			return fmt.Errorf("the source changed since its migration into the target began (%s, %d records in), "+
				"so the records in the target may no longer be the source's: empty the target (drop its schema or "+
				"database) and migrate again: %w", cur.StartedAt.Format(time.RFC3339), cur.Records, metadata.ErrConflict)
		case err == nil:
			out = cur
			return nil
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if what, err := contents(ctx, tx); err != nil {
			return err
		} else if what != "" {
			return fmt.Errorf("the target is not empty, it holds %s, and no migration is in progress in it: "+
				"migrate into an empty database or schema: %w", what, metadata.ErrConflict)
		}
		now := s.now()
		out = &metadata.MigrationProgress{Source: p.Source, Generation: p.Generation, StartedAt: now, UpdatedAt: now}
		_, err = tx.Exec(ctx, `INSERT INTO metadata_migration (source, generation, records, done, started_at, updated_at)
			VALUES ($1, $2, 0, false, $3, $3)`, p.Source, int64(p.Generation), now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// contents describes what the store holds, "" when it is empty in BeginMigration's sense.
func contents(ctx context.Context, tx pgx.Tx) (string, error) {
	var parts []string
	for _, t := range []struct{ table, what string }{
		{"projects", "projects"}, {"models", "models"}, {"candidates", "runs (candidates)"}, {"versions", "model versions"},
		{"files", "file rows"}, {"tokens", "tokens"}, {"import_records", "import records"}, {"counters", "counters"},
	} {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+t.table).Scan(&n); err != nil {
			return "", err
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, t.what))
		}
	}
	for _, seq := range []string{"model_ids", "owner_ids"} {
		last, err := sequenceLast(ctx, tx, seq)
		if err != nil {
			return "", err
		}
		if last > 0 {
			parts = append(parts, fmt.Sprintf("sequence %s at %d", seq, last))
		}
	}
	return strings.Join(parts, ", "), nil
}

// FinishMigration implements metadata.Loader.
func (s *Store) FinishMigration(ctx context.Context, source string) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE metadata_migration SET done = true, updated_at = $2 WHERE source = $1`, source, s.now())
		if err == nil && tag.RowsAffected() == 0 {
			err = fmt.Errorf("no migration of %s in progress: %w", source, metadata.ErrConflict)
		}
		return err
	})
}

// LoadBatch implements metadata.Loader. Runs of records of one kind go in with COPY, the fastest way into
// PostgreSQL; the table's constraints still check every row, and the indexes are built as rows come.
// Counters and settings are statements, as they move values that may exist.
func (s *Store) LoadBatch(ctx context.Context, source string, from int64, recs []metadata.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// READ COMMITTED, not the store's SERIALIZABLE: the lock on the progress row already makes batches take
	// turns, every row is new, and predicate locks would only add work to each foreign key check.
	return s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(st *txState) error {
		tx := st.tx
		var at int64
		var done bool
		err := tx.QueryRow(ctx, `SELECT records, done FROM metadata_migration WHERE source = $1 FOR UPDATE`, source).Scan(&at, &done)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("no migration of %s in progress: %w", source, metadata.ErrConflict)
		case err != nil:
			return err
		case at != from || done:
			return fmt.Errorf("the migration is at record %d (done: %t), not %d: another run went on meanwhile: %w",
				at, done, from, metadata.ErrConflict)
		}
		for i := 0; i < len(recs); {
			j := i + 1
			for j < len(recs) && recs[j].Kind() == recs[i].Kind() {
				j++
			}
			if err := loadRun(ctx, tx, recs[i:j]); err != nil {
				return fmt.Errorf("records %d–%d (%s): %w", from+int64(i)+1, from+int64(j), recs[i].Kind(), err)
			}
			i = j
		}
		_, err = tx.Exec(ctx, `UPDATE metadata_migration SET records = $1, updated_at = $2`, from+int64(len(recs)), s.now())
		return err
	})
}

// copyTable is where a kind's records go with COPY, and how a record becomes a row.
type copyTable struct {
	table string
	cols  []string
	row   func(metadata.Record) ([]any, error)
}

var copyTables = map[metadata.RecordKind]copyTable{
	metadata.KindProject: {"projects", []string{"id", "path", "created_at"}, func(r metadata.Record) ([]any, error) {
		p := r.Project
		return []any{p.ID, p.Path, p.CreatedAt}, nil
	}},
	metadata.KindModel: {"models", []string{"id", "project", "iid", "name", "display_name", "description", "tags",
		"in_registry", "lifecycle", "created_at", "updated_at"}, func(r metadata.Record) ([]any, error) {
		m := r.Model
		tags, err := tagsJSON(m.Tags)
		return []any{m.ID, m.Project, m.IID, m.Name, m.DisplayName, m.Description, tags, m.InRegistry, int16(m.Lifecycle),
			m.CreatedAt, m.UpdatedAt}, err
	}},
	metadata.KindCandidate: {"candidates", []string{"id", "project", "iid", "eid", "model_id", "name", "user_id", "status",
		"start_time", "end_time", "lifecycle", "deleted_with_model", "created_at"}, func(r metadata.Record) ([]any, error) {
		c := r.Candidate
		return []any{c.ID, c.Project, c.IID, c.EID[:], c.ModelID, c.Name, c.UserID, int16(c.Status), c.StartTime, c.EndTime,
			int16(c.Lifecycle), c.DeletedWithModel, c.CreatedAt}, nil
	}},
	metadata.KindCandidateTag: {"candidate_tags", []string{"candidate_id", "key", "value"}, func(r metadata.Record) ([]any, error) {
		return []any{r.CandidateTag.Owner, r.CandidateTag.Key, r.CandidateTag.Value}, nil
	}},
	metadata.KindParam: {"params", []string{"candidate_id", "key", "value"}, func(r metadata.Record) ([]any, error) {
		return []any{r.Param.Owner, r.Param.Key, r.Param.Value}, nil
	}},
	metadata.KindMetric: {"metrics", []string{"candidate_id", "key", "step", "ts", "value", "logged_model", "dataset_name",
		"dataset_digest"}, func(r metadata.Record) ([]any, error) {
		m := r.Metric
		var lm []byte // NULL: no logged model
		if !m.LoggedModel.IsZero() {
			lm = m.LoggedModel[:]
		}
		return []any{m.Owner, m.Key, m.Step, m.Timestamp, m.Value, lm, m.DatasetName, m.DatasetDigest}, nil
	}},
	metadata.KindLoggedModel: {"logged_models", []string{"id", "lmid", "project", "model_id", "name", "status",
		"status_message", "model_type", "source_run_id", "user_id", "params", "tags", "created_at", "updated_at"},
		func(r metadata.Record) ([]any, error) {
			lm := r.LoggedModel
			params, err := paramsJSON(lm.Params)
			if err != nil {
				return nil, err
			}
			tags, err := tagsJSON(lm.Tags)
			return []any{lm.ID, lm.LMID[:], lm.Project, lm.ModelID, lm.Name, int16(lm.Status), lm.StatusMessage, lm.ModelType,
				nullID(lm.SourceRunID), lm.UserID, params, tags, lm.CreatedAt, lm.UpdatedAt}, err
		}},
	metadata.KindLMMetric: {"lm_metrics", []string{"logged_model_id", "key", "step", "ts", "value", "run", "dataset_name",
		"dataset_digest"}, func(r metadata.Record) ([]any, error) {
		m := r.LMMetric
		return []any{m.Owner, m.Key, m.Step, m.Timestamp, m.Value, m.Run[:], m.DatasetName, m.DatasetDigest}, nil
	}},
	metadata.KindDataset: {"datasets", []string{"model_id", "name", "digest", "source_type", "source", "schema", "profile"},
		func(r metadata.Record) ([]any, error) {
			d := r.Dataset
			return []any{d.ModelID, d.Name, d.Digest, d.SourceType, d.Source, d.Schema, d.Profile}, nil
		}},
	metadata.KindDatasetContext: {"dataset_contexts", []string{"model_id", "name", "digest", "context"},
		func(r metadata.Record) ([]any, error) {
			d := r.DatasetContext
			return []any{d.ModelID, d.Name, d.Digest, d.Context}, nil
		}},
	// ord is an identity column: rows copied in the export's order get increasing ords, which is the order
	// the run logged its inputs in.
	metadata.KindRunDataset: {"run_datasets", []string{"candidate_id", "name", "digest", "tags"}, func(r metadata.Record) ([]any, error) {
		d := r.RunDataset
		tags, err := tagsJSON(d.Tags)
		return []any{d.Candidate, d.Name, d.Digest, tags}, err
	}},
	metadata.KindRunModelInput: {"run_model_inputs", []string{"candidate_id", "lmid"}, func(r metadata.Record) ([]any, error) {
		return []any{r.RunModelInput.Candidate, r.RunModelInput.LMID[:]}, nil
	}},
	metadata.KindRunModelOutput: {"run_model_outputs", []string{"candidate_id", "lmid", "step"}, func(r metadata.Record) ([]any, error) {
		o := r.RunModelOutput
		return []any{o.Candidate, o.LMID[:], o.Step}, nil
	}},
	metadata.KindVersion: {"versions", []string{"model_id", "seq", "project", "id", "semver", "candidate_id", "logged_model_id",
		"subpath", "source", "run_link", "description", "user_id", "stage", "tags", "created_at", "updated_at"},
		func(r metadata.Record) ([]any, error) {
			v := r.Version
			tags, err := tagsJSON(v.Tags)
			return []any{v.ModelID, v.Seq, v.Project, v.ID, v.Semver, nullID(v.CandidateID), nullID(v.LoggedModelID), v.Subpath,
				v.Source, v.RunLink, v.Description, v.UserID, v.Stage, tags, v.CreatedAt, v.UpdatedAt}, err
		}},
	metadata.KindAlias: {"aliases", []string{"model_id", "alias", "seq"}, func(r metadata.Record) ([]any, error) {
		return []any{r.Alias.ModelID, r.Alias.Alias, r.Alias.Seq}, nil
	}},
	metadata.KindFile: {"files", []string{"owner_id", "path", "size", "sha256", "content_type", "blob_key", "backend", "created_at"},
		func(r metadata.Record) ([]any, error) {
			f := r.File
			return []any{f.OwnerID, f.Path, f.Size, f.SHA256, f.ContentType, f.BlobKey, f.Backend, f.CreatedAt}, nil
		}},
	metadata.KindToken: {"tokens", []string{"id", "name", "project_path", "instance", "scope", "secret_hash", "created_at",
		"expires_at", "revoked"}, func(r metadata.Record) ([]any, error) {
		t := r.Token
		scope, err := t.Scope.MarshalText()
		if err != nil {
			return nil, err
		}
		var expires *time.Time
		if !t.ExpiresAt.IsZero() {
			expires = &t.ExpiresAt
		}
		return []any{t.ID, t.Name, t.ProjectPath, t.Instance, string(scope), t.SecretHash, t.CreatedAt, expires, t.Revoked}, nil
	}},
	metadata.KindImport: {"import_records", []string{"project", "source", "kind", "source_id", "target_id", "target_iid", "state",
		"progress", "note", "updated_at"}, func(r metadata.Record) ([]any, error) {
		i := r.Import
		return []any{i.Project, i.Source, string(i.Kind), i.SourceID, i.TargetID, i.TargetIID, string(i.State), i.Progress, i.Note,
			i.UpdatedAt}, nil
	}},
}

// loadRun writes records of one kind.
func loadRun(ctx context.Context, tx pgx.Tx, recs []metadata.Record) error {
	switch kind := recs[0].Kind(); kind {
	case metadata.KindSetting:
		for _, r := range recs {
			if _, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
				ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, r.Setting.Name, r.Setting.Value); err != nil {
				return err
			}
		}
		return nil
	case metadata.KindCounter:
		for _, r := range recs {
			if err := loadCounter(ctx, tx, r.Counter); err != nil {
				return err
			}
		}
		return nil
	default:
		ct, ok := copyTables[kind]
		if !ok {
			return fmt.Errorf("record kind %q: %w", kind, metadata.ErrInvalid)
		}
		rows := make([][]any, len(recs))
		for i, r := range recs {
			row, err := ct.row(r)
			if err != nil {
				return fmt.Errorf("%s: %w", r, err)
			}
			rows[i] = row
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{ct.table}, ct.cols, pgx.CopyFromRows(rows))
		return mapErr(err)
	}
}

// loadCounter raises a counter or a sequence to c.Value, never lowering it.
func loadCounter(ctx context.Context, tx pgx.Tx, c *metadata.Counter) error {
	if c.Value > 1<<63-1 || c.Key > 1<<63-1 {
		return fmt.Errorf("counter %s %d: value %d beyond bigint: %w", c.Kind, c.Key, c.Value, metadata.ErrInvalid)
	}
	if scope, ok := counterScopes[c.Kind]; ok {
		return raiseCounter(ctx, tx, scope, int64(c.Key), int64(c.Value))
	}
	seq, ok := counterSequences[c.Kind]
	if !ok {
		return fmt.Errorf("counter kind %q: %w", c.Kind, metadata.ErrInvalid)
	}
	if c.Value == 0 {
		return nil // a sequence never drawn from: nothing to raise
	}
	last, err := sequenceLast(ctx, tx, seq)
	if err != nil || last >= c.Value {
		return err
	}
	// setval is not transactional: a batch rolled back after it leaves the sequence raised, which only
	// skips numbers, and the retry sets the same value.
	_, err = tx.Exec(ctx, `SELECT setval($1, $2, true)`, seq, int64(c.Value))
	return err
}
