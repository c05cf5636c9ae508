package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// Project returns the project selected by exactly one of ref.ID and ref.Path. ErrInvalid if both or
// neither is set; ErrNotFound if there is no such project.
func (s *Store) Project(ctx context.Context, ref metadata.ProjectRef) (*metadata.Project, error) {
	if !exactlyOne(ref.ID != 0, ref.Path != "") {
		return nil, fmt.Errorf("project ref %+v: set exactly one of ID and Path: %w", ref, metadata.ErrInvalid)
	}
	var p *metadata.Project
	err := s.view(ctx, func(tx pgx.Tx) (err error) {
		if ref.ID != 0 {
			p, err = getProject(ctx, tx, ref.ID)
		} else {
			p, err = projectByPath(ctx, tx, ref.Path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// EnsureProject returns the project at path, creating it with the next id (1, 2, 3…) if missing.
// ErrInvalid unless path is a valid project path (metadata.ValidateProjectPath).
func (s *Store) EnsureProject(ctx context.Context, path string) (*metadata.Project, error) {
	if err := metadata.ValidateProjectPath(path); err != nil {
		return nil, s.refuse(ctx, err)
	}
	now := s.now()
	var p *metadata.Project
	err := s.update(ctx, func(tx pgx.Tx) error {
		var err error
		if p, err = projectByPath(ctx, tx, path); !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		id, err := nextCounter(ctx, tx, counterProject, 0)
		if err != nil {
			return err
		}
		p = &metadata.Project{ID: id, Path: path, CreatedAt: now}
		_, err = tx.Exec(ctx, `INSERT INTO projects (id, path, created_at) VALUES ($1, $2, $3)`, id, path, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func scanProject(row pgx.Row) (*metadata.Project, error) {
	var p metadata.Project
	if err := row.Scan(&p.ID, &p.Path, &p.CreatedAt); err != nil {
		return nil, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	return &p, nil
}

func getProject(ctx context.Context, tx pgx.Tx, id int64) (*metadata.Project, error) {
	p, err := scanProject(tx.QueryRow(ctx, `SELECT id, path, created_at FROM projects WHERE id = $1`, id))
	return p, notFound(err, "project %d", id)
}

func projectByPath(ctx context.Context, tx pgx.Tx, path string) (*metadata.Project, error) {
	p, err := scanProject(tx.QueryRow(ctx, `SELECT id, path, created_at FROM projects WHERE path = $1`, path))
	return p, notFound(err, "project %q", path)
}

// ListProjects returns up to limit projects (<= 0: all) in id order.
func (s *Store) ListProjects(ctx context.Context, limit int) ([]*metadata.Project, error) {
	var out []*metadata.Project
	err := s.view(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT id, path, created_at FROM projects ORDER BY id LIMIT $1`, sqlLimit(limit))
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.Project, error) { return scanProject(r) })
		return err
	})
	return out, err
}

// sqlLimit turns "<= 0: all" into a LIMIT argument (NULL is no limit).
func sqlLimit(limit int) *int {
	if limit <= 0 {
		return nil
	}
	return &limit
}
