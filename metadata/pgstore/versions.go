package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

const versionCols = `id, project, model_id, seq, semver, candidate_id, logged_model_id, subpath, source, run_link,
	description, user_id, stage, tags, created_at, updated_at`

func scanVersion(row pgx.Row) (*metadata.Version, error) {
	var v metadata.Version
	var cand, lm *uint64
	var tags []byte
	if err := row.Scan(&v.ID, &v.Project, &v.ModelID, &v.Seq, &v.Semver, &cand, &lm, &v.Subpath, &v.Source, &v.RunLink,
		&v.Description, &v.UserID, &v.Stage, &tags, &v.CreatedAt, &v.UpdatedAt); err != nil {
		return nil, err
	}
	if cand != nil {
		v.CandidateID = *cand
	}
	if lm != nil {
		v.LoggedModelID = *lm
	}
	if err := json.Unmarshal(tags, &v.Tags); err != nil {
		return nil, fmt.Errorf("version %d/%d tags: %w", v.ModelID, v.Seq, err)
	}
	if len(v.Tags) == 0 {
		v.Tags = nil
	}
	v.CreatedAt, v.UpdatedAt = v.CreatedAt.UTC(), v.UpdatedAt.UTC()
	return &v, nil
}

func collectVersions(rows pgx.Rows) ([]*metadata.Version, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.Version, error) { return scanVersion(r) })
}

// nullID is id as a nullable column: 0 is NULL.
func nullID(id uint64) *uint64 {
	if id == 0 {
		return nil
	}
	return &id
}

func validateVersion(v *metadata.Version) error {
	if v.Semver != "" {
		if err := metadata.Invalid(pkgtypes.ValidateSemver(v.Semver)); err != nil {
			return err
		}
	}
	if v.Subpath != "" {
		if err := metadata.ValidateFilePath(v.Subpath); err != nil {
			return fmt.Errorf("version subpath: %w", err)
		}
	}
	if len(v.Description) > metadata.MaxDescriptionLen {
		return fmt.Errorf("version description longer than %d bytes: %w", metadata.MaxDescriptionLen, metadata.ErrInvalid)
	}
	if v.Seq < 0 {
		return fmt.Errorf("version number %d: %w", v.Seq, metadata.ErrInvalid)
	}
	return metadata.ValidateTags(v.Tags)
}

// CreateVersion implements metadata.Store: it stores v and fills ID (the project's next), Project (from the
// model), Seq (the model's next, unless v.Seq > 0 requests one above the model's high-water mark),
// CreatedAt and UpdatedAt (unless preset), and Semver when empty: pkgtypes.NextMinor of the model's highest
// version by semver precedence (none: 1.0.0). v is changed only on success. The model becomes InRegistry in
// the same transaction. ErrInvalid for a bad semver, subpath, description, tag, owner or a negative Seq;
// ErrExists if the semver is taken or a requested seq is at or below the mark; ErrNotFound for an unknown
// model, a model outside a non-zero v.Project, or a candidate or logged model that is unknown or of another
// project.
func (s *Store) CreateVersion(ctx context.Context, v *metadata.Version) error {
	if v == nil {
		return s.refuse(ctx, fmt.Errorf("nil version: %w", metadata.ErrInvalid))
	}
	in := *v
	in.Tags = slices.Clone(v.Tags)
	if err := validateVersion(&in); err != nil {
		return s.refuse(ctx, err)
	}
	now := s.now()
	var out metadata.Version
	// Every attempt starts from the caller's version: a retried transaction derives the semver anew.
	if err := s.update(ctx, func(tx pgx.Tx) error { out = in; return createVersion(ctx, tx, &out, now) }); err != nil {
		return err
	}
	*v = out
	return nil
}

// createVersion writes a validated version, moves both counters and sets the model's registry flag.
func createVersion(ctx context.Context, tx pgx.Tx, v *metadata.Version, now time.Time) error {
	m, err := getModel(ctx, tx, v.ModelID, false)
	if err != nil {
		return err
	}
	if v.Project != 0 && v.Project != m.Project {
		return fmt.Errorf("model %d in project %d: %w", m.ID, v.Project, metadata.ErrNotFound)
	}
	v.Project = m.Project
	if !exactlyOne(v.CandidateID != 0, v.LoggedModelID != 0) {
		return fmt.Errorf("version of model %q: set exactly one of candidate and logged model: %w", m.Name, metadata.ErrInvalid)
	}
	if v.CandidateID != 0 {
		c, err := getCandidate(ctx, tx, v.CandidateID, false)
		if err != nil {
			return err
		}
		if c.Project != m.Project {
			return fmt.Errorf("candidate %d in project %d: %w", c.ID, m.Project, metadata.ErrNotFound)
		}
	} else {
		lm, err := getLoggedModel(ctx, tx, v.LoggedModelID, false)
		if err != nil {
			return err
		}
		if lm.Project != m.Project {
			return fmt.Errorf("logged model %s in project %d: %w", lm.LMID, lm.Project, metadata.ErrNotFound)
		}
	}
	if v.Semver == "" {
		if v.Semver, err = nextMinor(ctx, tx, m.ID); err != nil {
			return err
		}
	}
	if taken, err := exists(ctx, tx, `SELECT 1 FROM versions WHERE model_id = $1 AND semver = $2`, m.ID, v.Semver); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("model %q version %q: %w", m.Name, v.Semver, metadata.ErrExists)
	}
	if v.Seq, err = claimSeq(ctx, tx, m, v.Seq); err != nil {
		return err
	}
	if v.ID, err = nextCounter(ctx, tx, counterVersionID, m.Project); err != nil {
		return err
	}
	v.CreatedAt, v.UpdatedAt = presetTime(v.CreatedAt, now), presetTime(v.UpdatedAt, now)
	tags, err := tagsJSON(v.Tags)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO versions (`+versionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
		$11, $12, $13, $14, $15, $16)`, v.ID, v.Project, v.ModelID, v.Seq, v.Semver, nullID(v.CandidateID),
		nullID(v.LoggedModelID), v.Subpath, v.Source, v.RunLink, v.Description, v.UserID, v.Stage, tags, v.CreatedAt,
		v.UpdatedAt); err != nil {
		return err
	}
	if !m.InRegistry {
		_, err = tx.Exec(ctx, `UPDATE models SET in_registry = true, updated_at = $2 WHERE id = $1`, m.ID, now)
	}
	return err
}

// claimSeq returns the seq of a new version of m: requested when > 0, else the next of the model's counter.
// The counter is the highest seq ever issued, deleted versions' and requested ones included, so a requested
// seq must be above it.
func claimSeq(ctx context.Context, tx pgx.Tx, m *metadata.Model, requested int64) (int64, error) {
	if requested == 0 {
		return nextCounter(ctx, tx, counterVersionSeq, int64(m.ID))
	}
	var mark int64
	err := tx.QueryRow(ctx, `SELECT value FROM counters WHERE scope = $1 AND key = $2 FOR UPDATE`,
		counterVersionSeq, int64(m.ID)).Scan(&mark)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	if requested <= mark {
		return 0, fmt.Errorf("model %q version %d: at or below the highest version number the model has had (%d), "+
			"and numbers are never reused: %w", m.Name, requested, mark, metadata.ErrExists)
	}
	return requested, raiseCounter(ctx, tx, counterVersionSeq, int64(m.ID), requested)
}

// nextMinor returns pkgtypes.NextMinor of the model's highest version by semver precedence. Semvers may
// exceed what a numeric column holds, so the comparison happens here; a model has few versions.
func nextMinor(ctx context.Context, tx pgx.Tx, modelID uint64) (string, error) {
	rows, err := tx.Query(ctx, `SELECT semver FROM versions WHERE model_id = $1`, modelID)
	if err != nil {
		return "", err
	}
	semvers, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", err
	}
	highest := ""
	for _, sv := range semvers {
		if highest == "" || pkgtypes.CompareSemver(sv, highest) > 0 {
			highest = sv
		}
	}
	next := pkgtypes.NextMinor(highest)
	if next == "" {
		return "", fmt.Errorf("no version above %s can be derived; give a semver: %w", highest, metadata.ErrInvalid)
	}
	return next, nil
}

func checkVersionRef(ref metadata.VersionRef) error {
	byID := ref.ID != 0 && ref.Project != 0 && ref.ModelID == 0 && ref.Seq == 0 && ref.Semver == "" && ref.Alias == ""
	byModel := ref.ID == 0 && ref.ModelID != 0 && exactlyOne(ref.Seq != 0, ref.Semver != "", ref.Alias != "")
	if !byID && !byModel {
		return fmt.Errorf("version ref %+v: set Project and ID, or ModelID and one of Seq, Semver, Alias: %w", ref, metadata.ErrInvalid)
	}
	return nil
}

// versionByRef resolves a ref that checkVersionRef accepted, locking the row when lock is set.
func versionByRef(ctx context.Context, tx pgx.Tx, ref metadata.VersionRef, lock bool) (*metadata.Version, error) {
	q := `SELECT ` + versionCols + ` FROM versions WHERE `
	var args []any
	switch {
	case ref.ID != 0:
		q += `project = $1 AND id = $2`
		args = []any{ref.Project, ref.ID}
	case ref.Semver != "":
		q += `model_id = $1 AND semver = $2 AND ($3 = 0 OR project = $3)`
		args = []any{ref.ModelID, ref.Semver, ref.Project}
	case ref.Alias != "":
		seq, err := aliasSeq(ctx, tx, ref.ModelID, ref.Alias)
		if err != nil {
			return nil, err
		}
		q += `model_id = $1 AND seq = $2 AND ($3 = 0 OR project = $3)`
		args = []any{ref.ModelID, seq, ref.Project}
	default:
		q += `model_id = $1 AND seq = $2 AND ($3 = 0 OR project = $3)`
		args = []any{ref.ModelID, ref.Seq, ref.Project}
	}
	if lock {
		q += ` FOR UPDATE`
	}
	v, err := scanVersion(tx.QueryRow(ctx, q, args...))
	return v, notFound(err, "version %+v", ref)
}

// Version implements metadata.Store: within ref.Project by ID, or within ref.ModelID by exactly one of Seq,
// Semver (the exact string) and Alias (a non-zero ref.Project then scopes the model). ErrInvalid for a ref
// that selects nothing or several ways; ErrAliasNotFound for an alias the model does not have; ErrNotFound
// otherwise.
func (s *Store) Version(ctx context.Context, ref metadata.VersionRef) (*metadata.Version, error) {
	if err := checkVersionRef(ref); err != nil {
		return nil, err
	}
	var v *metadata.Version
	err := s.view(ctx, func(tx pgx.Tx) error {
		var err error
		v, err = versionByRef(ctx, tx, ref, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ListVersions implements metadata.Store: a model's versions in Seq order with the next page's token (""
// at the end). ErrNotFound for an unknown model; ErrInvalid for a token of another listing.
func (s *Store) ListVersions(ctx context.Context, modelID uint64, p metadata.Page) ([]*metadata.Version, string, error) {
	pg, err := newPager(p, "versions", modelID)
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.Version
	err = s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		after := int64(0)
		if pg.after != nil {
			k, err := pg.int64s(1)
			if err != nil {
				return err
			}
			after = k[0]
		}
		rows, err := tx.Query(ctx, `SELECT `+versionCols+` FROM versions WHERE model_id = $1 AND seq > $2
			ORDER BY seq LIMIT $3`, modelID, after, pg.limit+1)
		if err != nil {
			return err
		}
		out, err = collectVersions(rows)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(v *metadata.Version) []byte { return int64Key(v.Seq) })
	return out, next, nil
}

// VersionsBackedBy implements metadata.Store: the versions of any model backed by the candidate or logged
// model owner, ordered by model ID then Seq; empty, not nil, when there are none.
func (s *Store) VersionsBackedBy(ctx context.Context, owner uint64) ([]*metadata.Version, error) {
	out := []*metadata.Version{}
	err := s.viewOne(ctx, func(tx queryer) error {
		rows, err := tx.Query(ctx, `SELECT `+versionCols+` FROM versions WHERE candidate_id = $1 OR logged_model_id = $1
			ORDER BY model_id, seq`, owner)
		if err != nil {
			return err
		}
		vs, err := collectVersions(rows)
		out = append(out, vs...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EnsurePackageVersion implements metadata.Store: it resolves <modelName>/<semver> in project in one
// transaction, creating what is missing: the model (Name and DisplayName = modelName), a backing candidate
// (named after the semver, FINISHED, StartTime = EndTime = now; it gets candidateID when that is not 0) and
// the version, which puts the model in the registry. Concurrent calls for one version create it once: the
// losers of the race fail to serialize, run again and find it.
// ErrInvalid for a bad name or semver, or a candidateID never reserved; ErrExists for a candidateID already
// in use; ErrNotFound for an unknown project; ErrConflict if the model exists but is deleted, or if
// modelName is already the display name of another model.
func (s *Store) EnsurePackageVersion(ctx context.Context, project int64, modelName, semver string, candidateID uint64) (*metadata.PackageVersion, error) {
	if err := metadata.ValidateModelName(modelName); err != nil {
		return nil, s.refuse(ctx, err)
	}
	if err := metadata.Invalid(pkgtypes.ValidateSemver(semver)); err != nil {
		return nil, s.refuse(ctx, err)
	}
	now := s.now()
	var pv *metadata.PackageVersion
	err := s.update(ctx, func(tx pgx.Tx) error {
		pv = &metadata.PackageVersion{}
		m, err := scanModel(tx.QueryRow(ctx, `SELECT `+modelCols+` FROM models WHERE project = $1 AND name = $2`, project, modelName))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			m = &metadata.Model{Project: project, Name: modelName, DisplayName: modelName, InRegistry: true}
			if err := createModel(ctx, tx, m, now, false); errors.Is(err, metadata.ErrExists) {
				return fmt.Errorf("package %q: another model has this display name: %w", modelName, metadata.ErrConflict)
			} else if err != nil {
				return err
			}
		case err != nil:
			return err
		case m.Lifecycle == metadata.Deleted:
			return fmt.Errorf("package %q: model is deleted: %w", modelName, metadata.ErrConflict)
		}
		v, err := versionByRef(ctx, tx, metadata.VersionRef{ModelID: m.ID, Semver: semver}, false)
		switch {
		case err == nil:
			if v.CandidateID != 0 { // nil for a version backed by a logged model
				if pv.Candidate, err = getCandidate(ctx, tx, v.CandidateID, false); err != nil {
					return err
				}
			}
			pv.Model, pv.Version = m, v
			return nil
		case !isNotFound(err):
			return err
		}
		ms := now.UnixMilli()
		c := &metadata.Candidate{Project: m.Project, ModelID: m.ID, Name: semver, Status: metadata.Finished, StartTime: ms, EndTime: ms}
		if err := createCandidate(ctx, tx, c, now, candidateID); err != nil {
			return err
		}
		v = &metadata.Version{ModelID: m.ID, Semver: semver, CandidateID: c.ID}
		if err := createVersion(ctx, tx, v, now); err != nil {
			return err
		}
		if m, err = getModel(ctx, tx, m.ID, false); err != nil { // createVersion may have set InRegistry
			return err
		}
		*pv = metadata.PackageVersion{Model: m, Version: v, Candidate: c, Created: true}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pv, nil
}

// UpdateVersion implements metadata.Store: it applies u to the version selected by ref (see Version) and
// returns it as stored, with UpdatedAt now. DeleteTags (absent keys ignored) is applied before SetTags.
// ErrInvalid for a bad ref, description, stage (one of metadata.VersionStages) or tag; ErrAliasNotFound for
// an unknown ref.Alias; ErrNotFound otherwise.
func (s *Store) UpdateVersion(ctx context.Context, ref metadata.VersionRef, u metadata.VersionUpdate) (*metadata.Version, error) {
	if err := checkVersionRef(ref); err != nil {
		return nil, s.refuse(ctx, err)
	}
	if u.Description != nil && len(*u.Description) > metadata.MaxDescriptionLen {
		return nil, s.refuse(ctx, fmt.Errorf("version description longer than %d bytes: %w", metadata.MaxDescriptionLen, metadata.ErrInvalid))
	}
	if u.Stage != nil && !slices.Contains(metadata.VersionStages, *u.Stage) {
		return nil, s.refuse(ctx, fmt.Errorf("version stage %.60q: want one of %v: %w", *u.Stage, metadata.VersionStages, metadata.ErrInvalid))
	}
	if err := metadata.ValidateTagUpdate(u.SetTags, u.DeleteTags); err != nil {
		return nil, s.refuse(ctx, err)
	}
	now := s.now()
	var out *metadata.Version
	err := s.update(ctx, func(tx pgx.Tx) error {
		v, err := versionByRef(ctx, tx, ref, true)
		if err != nil {
			return err
		}
		if u.Description != nil {
			v.Description = *u.Description
		}
		if u.Stage != nil {
			v.Stage = *u.Stage
		}
		v.Tags = metadata.UpdateTags(v.Tags, u.SetTags, u.DeleteTags)
		v.UpdatedAt = now
		tags, err := tagsJSON(v.Tags)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE versions SET description = $3, stage = $4, tags = $5, updated_at = $6
			WHERE model_id = $1 AND seq = $2`, v.ModelID, v.Seq, v.Description, v.Stage, tags, v.UpdatedAt); err != nil {
			return err
		}
		out = v
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteVersion implements metadata.Store: it removes the version selected by ref (see Version) and, by
// the aliases' foreign key, every alias pointing at it. The backing candidate and its files stay; the
// counters do not move back, so the Seq and ID are never issued again; the model keeps InRegistry.
// ErrInvalid for a bad ref; ErrAliasNotFound for an unknown ref.Alias; ErrNotFound otherwise.
func (s *Store) DeleteVersion(ctx context.Context, ref metadata.VersionRef) error {
	if err := checkVersionRef(ref); err != nil {
		return s.refuse(ctx, err)
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		v, err := versionByRef(ctx, tx, ref, true)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM versions WHERE model_id = $1 AND seq = $2`, v.ModelID, v.Seq)
		return err
	})
}

// SetAlias implements metadata.Store: it points alias at version seq of the model, moving it when it
// exists. ErrInvalid for an alias metadata.ValidateAlias refuses; ErrNotFound for an unknown model or
// version.
func (s *Store) SetAlias(ctx context.Context, modelID uint64, alias string, seq int64) error {
	if err := metadata.ValidateAlias(alias); err != nil {
		return s.refuse(ctx, err)
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		if _, err := versionByRef(ctx, tx, metadata.VersionRef{ModelID: modelID, Seq: seq}, true); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO aliases (model_id, alias, seq) VALUES ($1, $2, $3)
			ON CONFLICT (model_id, alias) DO UPDATE SET seq = EXCLUDED.seq`, modelID, alias, seq)
		return err
	})
}

// Alias implements metadata.Store: the Seq alias points at. ErrNotFound for an unknown model;
// ErrAliasNotFound for an alias the model does not have.
func (s *Store) Alias(ctx context.Context, modelID uint64, alias string) (int64, error) {
	var seq int64
	err := s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		var err error
		seq, err = aliasSeq(ctx, tx, modelID, alias)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// DeleteAlias implements metadata.Store. ErrNotFound for an unknown model; ErrAliasNotFound for an alias
// the model does not have.
func (s *Store) DeleteAlias(ctx context.Context, modelID uint64, alias string) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM aliases WHERE model_id = $1 AND alias = $2`, modelID, alias)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("model %d alias %.60q: %w", modelID, alias, metadata.ErrAliasNotFound)
		}
		return nil
	})
}

// Aliases implements metadata.Store: the model's aliases sorted by alias (byte order); empty, not nil, when
// there are none. ErrNotFound for an unknown model.
func (s *Store) Aliases(ctx context.Context, modelID uint64) ([]metadata.ModelAlias, error) {
	out := []metadata.ModelAlias{}
	err := s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT alias, seq FROM aliases WHERE model_id = $1 ORDER BY alias`, modelID)
		if err != nil {
			return err
		}
		as, err := pgx.CollectRows(rows, pgx.RowToStructByPos[metadata.ModelAlias])
		out = append(out, as...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// aliasSeq reads an alias; ErrAliasNotFound when absent.
func aliasSeq(ctx context.Context, tx pgx.Tx, modelID uint64, alias string) (int64, error) {
	var seq int64
	err := tx.QueryRow(ctx, `SELECT seq FROM aliases WHERE model_id = $1 AND alias = $2`, modelID, alias).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("model %d alias %.60q: %w", modelID, alias, metadata.ErrAliasNotFound)
	}
	return seq, err
}
