package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// maxModelNameLen is pkgtypes' limit on model names, needed to leave room for a slug's _2, _3… suffix.
const maxModelNameLen = 255

const modelCols = `id, project, iid, name, display_name, description, tags, in_registry, lifecycle, created_at, updated_at`

func scanModel(row pgx.Row) (*metadata.Model, error) {
	var m metadata.Model
	var tags []byte
	if err := row.Scan(&m.ID, &m.Project, &m.IID, &m.Name, &m.DisplayName, &m.Description, &tags, &m.InRegistry,
		&m.Lifecycle, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(tags, &m.Tags); err != nil {
		return nil, fmt.Errorf("model %d tags: %w", m.ID, err)
	}
	m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
	return &m, nil
}

func tagsJSON(tags []metadata.Tag) ([]byte, error) {
	if tags == nil {
		tags = []metadata.Tag{}
	}
	return json.Marshal(tags)
}

// CreateModel implements metadata.Store: it stores m and fills ID (from a sequence), IID (the project's
// next, unless m.IID > 0 requests one), Name and DisplayName when empty, CreatedAt and UpdatedAt (unless
// preset); m is changed only on success. ErrInvalid for a bad name, display name, description, tag,
// lifecycle or a negative IID; ErrExists if the name, display name or requested iid is taken in the project
// (deleted models keep theirs); ErrNotFound for an unknown project.
func (s *Store) CreateModel(ctx context.Context, m *metadata.Model) error {
	if m == nil {
		return s.refuse(ctx, fmt.Errorf("nil model: %w", metadata.ErrInvalid))
	}
	in := *m
	in.Tags = slices.Clone(m.Tags)
	if in.DisplayName == "" {
		in.DisplayName = in.Name
	}
	if err := metadata.ValidateModel(&in); err != nil {
		return s.refuse(ctx, err)
	}
	now := s.now()
	var out metadata.Model
	// Every attempt starts from the caller's model: a retried transaction derives the name anew.
	if err := s.update(ctx, func(tx pgx.Tx) error { out = in; return createModel(ctx, tx, &out, now, false) }); err != nil {
		return err
	}
	*m = out
	return nil
}

// createModel writes a validated model. It derives Name when empty. The project's default model takes
// iid 0 instead of the counter's next; any other model takes m.IID when that is set and free.
func createModel(ctx context.Context, tx pgx.Tx, m *metadata.Model, now time.Time, defaultModel bool) error {
	if _, err := getProject(ctx, tx, m.Project); err != nil {
		return err
	}
	if taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND display_name = $2`, m.Project, m.DisplayName); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("model display name %q: %w", m.DisplayName, metadata.ErrExists)
	}
	if m.Name == "" {
		name, err := freeSlug(ctx, tx, m.Project, m.DisplayName)
		if err != nil {
			return err
		}
		m.Name = name
	} else if taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND name = $2`, m.Project, m.Name); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("model %q: %w", m.Name, metadata.ErrExists)
	}
	var iid int64
	switch {
	case defaultModel:
	case m.IID > 0:
		if taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND iid = $2`, m.Project, m.IID); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("model iid %d: %w", m.IID, metadata.ErrExists)
		}
		iid = m.IID
		if err := raiseCounter(ctx, tx, counterModelIID, m.Project, iid); err != nil {
			return err
		}
	default:
		var err error
		if iid, err = nextCounter(ctx, tx, counterModelIID, m.Project); err != nil {
			return err
		}
	}
	tags, err := tagsJSON(m.Tags)
	if err != nil {
		return err
	}
	var id uint64
	if err := tx.QueryRow(ctx, `SELECT nextval('model_ids')`).Scan(&id); err != nil {
		return err
	}
	m.ID, m.IID = id, iid
	m.CreatedAt, m.UpdatedAt = presetTime(m.CreatedAt, now), presetTime(m.UpdatedAt, now)
	_, err = tx.Exec(ctx, `INSERT INTO models (`+modelCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		m.ID, m.Project, m.IID, m.Name, m.DisplayName, m.Description, tags, m.InRegistry, m.Lifecycle, m.CreatedAt, m.UpdatedAt)
	return err
}

// exists reports whether query returns a row.
func exists(ctx context.Context, tx pgx.Tx, query string, args ...any) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// freeSlug returns pkgtypes.Slugify(display), or the first of its _2, _3… forms that no model of the
// project uses, by the same rule as boltstore.
func freeSlug(ctx context.Context, tx pgx.Tx, project int64, display string) (string, error) {
	base := pkgtypes.Slugify(display)
	name := base
	for n := 2; ; n++ {
		taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND name = $2`, project, name)
		if err != nil {
			return "", err
		}
		if !taken {
			break
		}
		suffix := "_" + strconv.Itoa(n)
		name = metadata.TrimSlugTail(base[:min(len(base), maxModelNameLen-len(suffix))]) + suffix
		if pkgtypes.IsReservedModelName(name) { // "ml experiment" → ml_experiment_2 would be the legacy form
			name = "x_" + name
		}
	}
	if err := metadata.ValidateModelName(name); err != nil {
		return "", fmt.Errorf("slug of %q: %w", display, err)
	}
	return name, nil
}

// EnsureDefaultModel implements metadata.Store: the project's default model (iid 0, display name
// "Default", slug "default" or a suffixed form if a user model took it), created on first use.
// ErrNotFound for an unknown project; ErrConflict if another model already has the display name "Default".
func (s *Store) EnsureDefaultModel(ctx context.Context, project int64) (*metadata.Model, error) {
	find := func(tx pgx.Tx) (*metadata.Model, error) {
		m, err := scanModel(tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND iid = 0`, project))
		return m, notFound(err, "default model of project %d", project)
	}
	var out *metadata.Model
	err := s.view(ctx, func(tx pgx.Tx) (err error) { out, err = find(tx); return err })
	if !errors.Is(err, metadata.ErrNotFound) {
		return out, err
	}
	now := s.now()
	err = s.update(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = find(tx); !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		if taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND display_name = $2`, project, defaultModelDisplayName); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("default experiment: display name %q is used by another model: %w", defaultModelDisplayName, metadata.ErrConflict)
		}
		out = &metadata.Model{Project: project, DisplayName: defaultModelDisplayName}
		return createModel(ctx, tx, out, now, true)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Model implements metadata.Store: by ID (and, if ref.Project is set, only within that project), or within
// ref.Project by exactly one of IID, Name and DisplayName; any lifecycle. ErrInvalid for a ref that
// selects nothing or several ways; ErrNotFound otherwise.
func (s *Store) Model(ctx context.Context, ref metadata.ModelRef) (*metadata.Model, error) {
	if !exactlyOne(ref.ID != 0, ref.IID != 0, ref.Name != "", ref.DisplayName != "") || (ref.ID == 0 && ref.Project == 0) {
		return nil, fmt.Errorf("model ref %+v: set ID, or Project and one of IID, Name, DisplayName: %w", ref, metadata.ErrInvalid)
	}
	var m *metadata.Model
	err := s.viewOne(ctx, func(tx queryer) error {
		var row pgx.Row
		switch {
		case ref.ID != 0:
			row = tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE id = $1 AND ($2 = 0 OR project = $2)`, ref.ID, ref.Project)
		case ref.IID != 0:
			row = tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND iid = $2`, ref.Project, ref.IID)
		case ref.Name != "":
			row = tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND name = $2`, ref.Project, ref.Name)
		default:
			row = tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND display_name = $2`, ref.Project, ref.DisplayName)
		}
		var err error
		m, err = scanModel(row)
		return notFound(err, "model %+v", ref)
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func getModel(ctx context.Context, tx pgx.Tx, id uint64, lock bool) (*metadata.Model, error) {
	q := `SELECT ` + modelCols + ` FROM models WHERE id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	m, err := scanModel(tx.QueryRow(ctx, q, id))
	return m, notFound(err, "model %d", id)
}

// ListModels implements metadata.Store: the project's models of any lifecycle in IID order, with the next
// page's token ("" at the end). ErrNotFound for an unknown project; ErrInvalid for a token of another
// listing.
func (s *Store) ListModels(ctx context.Context, project int64, p metadata.Page) ([]*metadata.Model, string, error) {
	pg, err := newPager(p, "models", project)
	if err != nil {
		return nil, "", err
	}
	after := int64(-1) // the default model has iid 0
	if pg.after != nil {
		k, err := pg.int64s(1)
		if err != nil {
			return nil, "", err
		}
		after = k[0]
	}
	var out []*metadata.Model
	err = s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getProject(ctx, tx, project); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND iid > $2 ORDER BY iid LIMIT $3`,
			project, after, pg.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.Model, error) { return scanModel(r) })
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(m *metadata.Model) []byte { return int64Key(m.IID) })
	return out, next, nil
}

// UpdateModel implements metadata.Store, as boltstore does: a rename changes DisplayName only; DeleteTags
// before SetTags; Active → Deleted deletes the active candidates (marking them DeletedWithModel), Deleted →
// Active restores exactly those. ErrNotFound for an unknown model; ErrExists if the new display name is
// taken in the project; ErrInvalid for a bad display name, description, tag or lifecycle.
func (s *Store) UpdateModel(ctx context.Context, id uint64, u metadata.ModelUpdate) (*metadata.Model, error) {
	if err := metadata.ValidateModelUpdate(u); err != nil {
		return nil, s.refuse(ctx, err)
	}
	now := s.now()
	var out *metadata.Model
	err := s.update(ctx, func(tx pgx.Tx) error {
		m, err := getModel(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if u.DisplayName != nil && *u.DisplayName != m.DisplayName {
			taken, err := exists(ctx, tx, `SELECT 1 FROM models WHERE project = $1 AND display_name = $2`, m.Project, *u.DisplayName)
			if err != nil {
				return err
			}
			if taken {
				return fmt.Errorf("model display name %q: %w", *u.DisplayName, metadata.ErrExists)
			}
			m.DisplayName = *u.DisplayName
		}
		if u.Description != nil {
			m.Description = *u.Description
		}
		m.Tags = metadata.UpdateTags(m.Tags, u.SetTags, u.DeleteTags)
		if u.InRegistry != nil {
			m.InRegistry = *u.InRegistry
		}
		if u.Lifecycle != nil && *u.Lifecycle != m.Lifecycle {
			m.Lifecycle = *u.Lifecycle
			q := `UPDATE candidates SET lifecycle = 1, deleted_with_model = true WHERE model_id = $1 AND lifecycle = 0`
			if m.Lifecycle == metadata.Active {
				q = `UPDATE candidates SET lifecycle = 0, deleted_with_model = false WHERE model_id = $1 AND deleted_with_model`
			}
			if _, err := tx.Exec(ctx, q, m.ID); err != nil {
				return err
			}
		}
		m.UpdatedAt = now
		tags, err := tagsJSON(m.Tags)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE models SET display_name = $2, description = $3, tags = $4, in_registry = $5,
			lifecycle = $6, updated_at = $7 WHERE id = $1`, m.ID, m.DisplayName, m.Description, tags, m.InRegistry, m.Lifecycle, m.UpdatedAt); err != nil {
			return err
		}
		out = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PurgeModel implements metadata.Store: it removes a model and its aliases so that its names become free.
// ErrConflict while it has candidates, logged models or versions; ErrNotFound for an unknown model. The iid
// counter is untouched, so the model's iid is never issued again.
func (s *Store) PurgeModel(ctx context.Context, id uint64) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		m, err := getModel(ctx, tx, id, true)
		if err != nil {
			return err
		}
		// Aliases point at versions.
		if busy, err := exists(ctx, tx, `SELECT 1 FROM candidates WHERE model_id = $1
			UNION ALL SELECT 1 FROM logged_models WHERE model_id = $1
			UNION ALL SELECT 1 FROM versions WHERE model_id = $1 LIMIT 1`, id); err != nil {
			return err
		} else if busy {
			return fmt.Errorf("model %q still has runs, logged models or versions: %w", m.DisplayName, metadata.ErrConflict)
		}
		_, err = tx.Exec(ctx, `DELETE FROM models WHERE id = $1`, id)
		return err
	})
}
