package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

const loggedModelCols = `lm.id, lm.lmid, lm.project, lm.model_id, lm.name, lm.status, lm.status_message, lm.model_type,
	lm.source_run_id, c.eid, lm.user_id, lm.params, lm.tags, lm.created_at, lm.updated_at`

// loggedModelFrom joins the source run, whose EID a logged model reports.
const loggedModelFrom = ` FROM logged_models lm LEFT JOIN candidates c ON c.id = lm.source_run_id`

func scanLoggedModel(row pgx.Row, extra ...any) (*metadata.LoggedModel, error) {
	var lm metadata.LoggedModel
	var lmid, eid, params, tags []byte
	var run *uint64
	if err := row.Scan(append([]any{&lm.ID, &lmid, &lm.Project, &lm.ModelID, &lm.Name, &lm.Status, &lm.StatusMessage,
		&lm.ModelType, &run, &eid, &lm.UserID, &params, &tags, &lm.CreatedAt, &lm.UpdatedAt}, extra...)...); err != nil {
		return nil, err
	}
	if copy(lm.LMID[:], lmid) != len(lm.LMID) {
		return nil, fmt.Errorf("logged model %d: lmid of %d bytes", lm.ID, len(lmid))
	}
	if run != nil {
		lm.SourceRunID = *run
		if copy(lm.SourceRun[:], eid) != len(lm.SourceRun) {
			return nil, fmt.Errorf("logged model %d: source run %d has no run id", lm.ID, *run)
		}
	}
	if err := json.Unmarshal(params, &lm.Params); err != nil {
		return nil, fmt.Errorf("logged model %d params: %w", lm.ID, err)
	}
	if err := json.Unmarshal(tags, &lm.Tags); err != nil {
		return nil, fmt.Errorf("logged model %d tags: %w", lm.ID, err)
	}
	if len(lm.Params) == 0 {
		lm.Params = nil
	}
	if len(lm.Tags) == 0 {
		lm.Tags = nil
	}
	lm.CreatedAt, lm.UpdatedAt = lm.CreatedAt.UTC(), lm.UpdatedAt.UTC()
	return &lm, nil
}

// sortedParams returns params sorted by key (byte order), the last of a key winning.
func sortedParams(ps []metadata.Param) []metadata.Param {
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.Key] = p.Value
	}
	out := make([]metadata.Param, 0, len(m))
	for k, v := range m {
		out = append(out, metadata.Param{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b metadata.Param) int { return strings.Compare(a.Key, b.Key) })
	return out
}

// sortedTags returns tags sorted by key (byte order), the last of a key winning.
func sortedTags(ts []metadata.Tag) []metadata.Tag {
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.Key] = t.Value
	}
	out := make([]metadata.Tag, 0, len(m))
	for k, v := range m {
		out = append(out, metadata.Tag{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b metadata.Tag) int { return strings.Compare(a.Key, b.Key) })
	return out
}

func validateLoggedModel(lm *metadata.LoggedModel) error {
	switch {
	case lm.Name == "" || len(lm.Name) > metadata.MaxLoggedModelNameLen:
		return fmt.Errorf("logged model name %.60q: must be 1–%d bytes: %w", lm.Name, metadata.MaxLoggedModelNameLen, metadata.ErrInvalid)
	case len(lm.ModelType) > metadata.MaxModelTypeLen:
		return fmt.Errorf("logged model type: longer than %d bytes: %w", metadata.MaxModelTypeLen, metadata.ErrInvalid)
	}
	if err := validateLoggedModelStatus(&lm.Status, &lm.StatusMessage); err != nil {
		return err
	}
	if err := validateParams(lm.Params); err != nil {
		return err
	}
	return metadata.ValidateTags(lm.Tags)
}

func validateLoggedModelStatus(status *metadata.LoggedModelStatus, msg *string) error {
	if status != nil && *status > metadata.LoggedModelFailed {
		return fmt.Errorf("logged model status %d: %w", *status, metadata.ErrInvalid)
	}
	if msg != nil && len(*msg) > metadata.MaxStatusMessageLen {
		return fmt.Errorf("logged model status message: longer than %d bytes: %w", metadata.MaxStatusMessageLen, metadata.ErrInvalid)
	}
	return nil
}

func paramsJSON(ps []metadata.Param) ([]byte, error) {
	if ps == nil {
		ps = []metadata.Param{}
	}
	return json.Marshal(ps)
}

// CreateLoggedModel implements metadata.Store: it stores lm and fills ID (from owner_ids, shared with
// candidates), LMID (random unless preset), Project (from the model), SourceRun, CreatedAt and UpdatedAt
// (unless preset); lm is changed only on success. Params and tags are stored sorted by key, the last of a
// key winning. ErrNotFound for an unknown model, a model outside a non-zero lm.Project, or a source run
// that is unknown or of another project; ErrInvalid for a bad name, model type, status, param or tag;
// ErrExists if any logged model has lm.LMID.
func (s *Store) CreateLoggedModel(ctx context.Context, lm *metadata.LoggedModel) error {
	if lm == nil {
		return s.refuse(ctx, fmt.Errorf("nil logged model: %w", metadata.ErrInvalid))
	}
	in := *lm
	in.Params, in.Tags = sortedParams(lm.Params), sortedTags(lm.Tags)
	if err := validateLoggedModel(&in); err != nil {
		return s.refuse(ctx, err)
	}
	params, err := paramsJSON(in.Params)
	if err != nil {
		return s.refuse(ctx, err)
	}
	tags, err := tagsJSON(in.Tags)
	if err != nil {
		return s.refuse(ctx, err)
	}
	now := s.now()
	var out metadata.LoggedModel
	err = s.update(ctx, func(tx pgx.Tx) error {
		out = in // one attempt's drawn LMID is no preset for the next
		m, err := getModel(ctx, tx, out.ModelID, false)
		if err != nil {
			return err
		}
		if out.Project != 0 && out.Project != m.Project {
			return fmt.Errorf("model %d in project %d: %w", m.ID, out.Project, metadata.ErrNotFound)
		}
		out.Project = m.Project
		out.SourceRun = metadata.EID{}
		if out.SourceRunID != 0 {
			c, err := getCandidate(ctx, tx, out.SourceRunID, false)
			if err != nil {
				return fmt.Errorf("source run: %w", err)
			}
			if c.Project != m.Project {
				return fmt.Errorf("source run %d in project %d: %w", c.ID, c.Project, metadata.ErrNotFound)
			}
			out.SourceRun = c.EID
		}
		if !out.LMID.IsZero() {
			if taken, err := exists(ctx, tx, `SELECT 1 FROM logged_models WHERE lmid = $1`, out.LMID[:]); err != nil {
				return err
			} else if taken {
				return fmt.Errorf("logged model %s: %w", out.LMID, metadata.ErrExists)
			}
		} else {
			// 128 random bits never collide in practice; the unique index would turn a collision into ErrExists.
			for out.LMID.IsZero() {
				rand.Read(out.LMID[:])
			}
		}
		if err := tx.QueryRow(ctx, `SELECT nextval('owner_ids')`).Scan(&out.ID); err != nil {
			return err
		}
		out.CreatedAt, out.UpdatedAt = presetTime(out.CreatedAt, now), presetTime(out.UpdatedAt, now)
		_, err = tx.Exec(ctx, `INSERT INTO logged_models (id, lmid, project, model_id, name, status, status_message,
			model_type, source_run_id, user_id, params, tags, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			out.ID, out.LMID[:], out.Project, out.ModelID, out.Name, out.Status, out.StatusMessage, out.ModelType,
			nullID(out.SourceRunID), out.UserID, params, tags, out.CreatedAt, out.UpdatedAt)
		return err
	})
	if err != nil {
		return err
	}
	if len(out.Params) == 0 {
		out.Params = nil
	}
	if len(out.Tags) == 0 {
		out.Tags = nil
	}
	*lm = out
	return nil
}

func getLoggedModel(ctx context.Context, tx queryer, id uint64, lock bool) (*metadata.LoggedModel, error) {
	q := `SELECT ` + loggedModelCols + loggedModelFrom + ` WHERE lm.id = $1`
	if lock {
		q += ` FOR UPDATE OF lm`
	}
	lm, err := scanLoggedModel(tx.QueryRow(ctx, q, id))
	return lm, notFound(err, "logged model %d", id)
}

func loggedModelByLMID(ctx context.Context, tx queryer, lmid metadata.LMID) (*metadata.LoggedModel, error) {
	lm, err := scanLoggedModel(tx.QueryRow(ctx, `SELECT `+loggedModelCols+loggedModelFrom+` WHERE lm.lmid = $1`, lmid[:]))
	return lm, notFound(err, "logged model %s", lmid)
}

// loggedModelOfProject returns the logged model lmid when it is of project; ErrNotFound otherwise.
func loggedModelOfProject(ctx context.Context, tx pgx.Tx, lmid metadata.LMID, project int64) (*metadata.LoggedModel, error) {
	lm, err := loggedModelByLMID(ctx, tx, lmid)
	if err != nil {
		return nil, err
	}
	if lm.Project != project {
		return nil, fmt.Errorf("logged model %s: %w", lmid, metadata.ErrNotFound)
	}
	return lm, nil
}

// LoggedModel implements metadata.Store: by exactly one of ref.ID and ref.LMID, within a non-zero
// ref.Project. ErrInvalid for a ref that selects nothing or several ways; ErrNotFound otherwise.
func (s *Store) LoggedModel(ctx context.Context, ref metadata.LoggedModelRef) (*metadata.LoggedModel, error) {
	if !exactlyOne(ref.ID != 0, !ref.LMID.IsZero()) {
		return nil, fmt.Errorf("logged model ref: set ID or LMID: %w", metadata.ErrInvalid)
	}
	var lm *metadata.LoggedModel
	err := s.viewOne(ctx, func(tx queryer) (err error) {
		if ref.ID != 0 {
			lm, err = getLoggedModel(ctx, tx, ref.ID, false)
		} else {
			lm, err = loggedModelByLMID(ctx, tx, ref.LMID)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if ref.Project != 0 && lm.Project != ref.Project {
		return nil, fmt.Errorf("logged model %s: %w", lm.LMID, metadata.ErrNotFound)
	}
	return lm, nil
}

// UpdateLoggedModel implements metadata.Store: DeleteTags before SetTags; a param given again with its
// value is a no-op, with another value ErrInvalid. ErrNotFound for an unknown logged model; ErrInvalid for a
// bad status, message, tag or param.
func (s *Store) UpdateLoggedModel(ctx context.Context, id uint64, u metadata.LoggedModelUpdate) (*metadata.LoggedModel, error) {
	if err := validateLoggedModelStatus(u.Status, u.StatusMessage); err != nil {
		return nil, s.refuse(ctx, err)
	}
	if err := metadata.ValidateTags(u.SetTags); err != nil {
		return nil, s.refuse(ctx, err)
	}
	if err := validateParams(u.Params); err != nil {
		return nil, s.refuse(ctx, err)
	}
	now := s.now()
	var out *metadata.LoggedModel
	err := s.update(ctx, func(tx pgx.Tx) error {
		lm, err := getLoggedModel(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if u.Status != nil {
			lm.Status = *u.Status
		}
		if u.StatusMessage != nil {
			lm.StatusMessage = *u.StatusMessage
		}
		tags := slices.DeleteFunc(lm.Tags, func(t metadata.Tag) bool { return slices.Contains(u.DeleteTags, t.Key) })
		lm.Tags = sortedTags(append(tags, u.SetTags...))
		for _, p := range u.Params {
			i := slices.IndexFunc(lm.Params, func(q metadata.Param) bool { return q.Key == p.Key })
			if i >= 0 && lm.Params[i].Value != p.Value {
				return fmt.Errorf("param %q of logged model %s already logged with value %q, not %q; params are immutable: %w",
					p.Key, lm.LMID, lm.Params[i].Value, p.Value, metadata.ErrInvalid)
			}
			if i < 0 {
				lm.Params = append(lm.Params, p)
			}
		}
		lm.Params = sortedParams(lm.Params)
		lm.UpdatedAt = now
		params, err := paramsJSON(lm.Params)
		if err != nil {
			return err
		}
		tj, err := tagsJSON(lm.Tags)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE logged_models SET status = $2, status_message = $3, params = $4, tags = $5,
			updated_at = $6 WHERE id = $1`, id, lm.Status, lm.StatusMessage, params, tj, lm.UpdatedAt); err != nil {
			return err
		}
		if len(lm.Params) == 0 {
			lm.Params = nil
		}
		if len(lm.Tags) == 0 {
			lm.Tags = nil
		}
		out = lm
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteLoggedModel implements metadata.Store: it removes the logged model, its metrics and its file rows
// and returns those rows in path order. The runs' own histories keep their points. ErrConflict while a
// version is backed by it; ErrNotFound for an unknown logged model.
func (s *Store) DeleteLoggedModel(ctx context.Context, id uint64) ([]*metadata.File, error) {
	var files []*metadata.File
	err := s.update(ctx, func(tx pgx.Tx) error {
		files = nil
		lm, err := getLoggedModel(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if busy, err := exists(ctx, tx, `SELECT 1 FROM versions WHERE logged_model_id = $1`, id); err != nil {
			return err
		} else if busy {
			return fmt.Errorf("logged model %s backs a model version; delete the version first: %w", lm.LMID, metadata.ErrConflict)
		}
		rows, err := tx.Query(ctx, `DELETE FROM files WHERE owner_id = $1 RETURNING `+fileCols, id)
		if err != nil {
			return err
		}
		if files, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.File, error) { return scanFile(r) }); err != nil {
			return err
		}
		slices.SortFunc(files, func(a, b *metadata.File) int { return strings.Compare(a.Path, b.Path) })
		_, err = tx.Exec(ctx, `DELETE FROM logged_models WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// SearchLoggedModels implements metadata.Store: the logged models of q.ModelIDs newest first (CreatedAt,
// then ID), or by the latest value of a metric (highest step, then newest timestamp): numbers ascending
// (descending with Desc; ties by ID, in the same direction), then NaN, then the logged models without the
// metric, newest first. ErrInvalid for an empty ModelIDs, a bad metric key or a token of another query;
// ErrNotFound for an unknown model.
func (s *Store) SearchLoggedModels(ctx context.Context, q metadata.LoggedModelQuery) ([]*metadata.LoggedModel, string, error) {
	if len(q.ModelIDs) == 0 {
		return nil, "", fmt.Errorf("logged model search: no model: %w", metadata.ErrInvalid)
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
	pg, err := newPager(q.Page, "logged models", models, key != nil, keyName, desc)
	if err != nil {
		return nil, "", err
	}
	after, err := searchAfter(pg)
	if err != nil {
		return nil, "", err
	}
	var rows []found[*metadata.LoggedModel]
	err = s.view(ctx, func(tx pgx.Tx) error {
		if err := modelsExist(ctx, tx, models); err != nil {
			return err
		}
		hits, err := loggedModelOrder.run(ctx, tx, orderedQuery{models: models, key: key, desc: desc, after: after, want: pg.limit + 1})
		if err != nil {
			return err
		}
		rows, err = inHitOrder(ctx, tx, `SELECT `+loggedModelCols+loggedModelFrom+` WHERE lm.id = ANY($1)`, hits,
			func(r pgx.CollectableRow) (*metadata.LoggedModel, error) { return scanLoggedModel(r) },
			func(lm *metadata.LoggedModel) uint64 { return lm.ID }, "logged model")
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := pageFound(pg, rows)
	return out, next, nil
}

// LoggedModelMetrics implements metadata.Store: every point of the logged model, each with its Run and
// dataset, ordered by key, step, timestamp (then value). ErrNotFound for an unknown logged model.
func (s *Store) LoggedModelMetrics(ctx context.Context, id uint64) ([]metadata.Metric, error) {
	out, err := s.LoggedModelMetricsOf(ctx, []uint64{id})
	if err != nil {
		return nil, err
	}
	ms, ok := out[id]
	if !ok {
		return nil, fmt.Errorf("logged model %d: %w", id, metadata.ErrNotFound)
	}
	return ms, nil
}

// logLoggedModelMetric adds a point of candidate c to the metrics of its logged model, which must be of
// c's project (ErrNotFound otherwise). A duplicate point takes the later one's run and dataset.
func logLoggedModelMetric(ctx context.Context, tx pgx.Tx, c *metadata.Candidate, m metadata.Metric) error {
	lm, err := loggedModelOfProject(ctx, tx, m.LoggedModel, c.Project)
	if err != nil {
		return fmt.Errorf("metric %q: %w", m.Key, err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO lm_metrics (logged_model_id, key, step, ts, value, run, dataset_name, dataset_digest)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (logged_model_id, key, step, ts, value) DO UPDATE SET run = EXCLUDED.run,
		dataset_name = EXCLUDED.dataset_name, dataset_digest = EXCLUDED.dataset_digest`,
		lm.ID, m.Key, m.Step, m.Timestamp, m.Value, c.EID[:], m.DatasetName, m.DatasetDigest)
	return err
}
