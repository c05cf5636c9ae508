package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// Project returns the project selected by exactly one of ref.ID and ref.Path. ErrInvalid if both or
// neither is set; ErrNotFound if there is no such project.
func (s *Store) Project(ctx context.Context, ref metadata.ProjectRef) (*metadata.Project, error) {
	if !exactlyOne(ref.ID != 0, ref.Path != "") {
		return nil, fmt.Errorf("project ref %+v: set exactly one of ID and Path: %w", ref, metadata.ErrInvalid)
	}
	var p *metadata.Project
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		if ref.ID != 0 {
			p, err = getProject(tx, ref.ID)
		} else {
			p, err = projectByPath(tx, ref.Path)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// EnsureProject returns the project at path, creating it with the next id (1, 2, 3…) if missing. ErrInvalid
// unless path is 1–255 bytes of non-empty segments of [A-Za-z0-9._-] joined by "/".
func (s *Store) EnsureProject(ctx context.Context, path string) (*metadata.Project, error) {
	if err := validateProjectPath(path); err != nil {
		return nil, err
	}
	now := s.now()
	var p *metadata.Project
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		if p, err = projectByPath(tx, path); !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		id, err := nextCounter(tx, counterProjectKey)
		if err != nil {
			return err
		}
		p = &metadata.Project{ID: id, Path: path, CreatedAt: now}
		if err := putJSON(bk(tx, bucketProjects), idKey(uint64(id)), p); err != nil {
			return err
		}
		return bk(tx, bucketProjectsByPath).Put([]byte(path), idKey(uint64(id)))
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

func getProject(tx *bolt.Tx, id int64) (*metadata.Project, error) {
	var p metadata.Project
	ok, err := getJSON(bk(tx, bucketProjects), idKey(uint64(id)), &p)
	if err != nil {
		return nil, err
	}
	if !ok || id <= 0 {
		return nil, fmt.Errorf("project %d: %w", id, metadata.ErrNotFound)
	}
	return &p, nil
}

func projectByPath(tx *bolt.Tx, path string) (*metadata.Project, error) {
	id, ok, err := getU64(bk(tx, bucketProjectsByPath), []byte(path))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("project %q: %w", path, metadata.ErrNotFound)
	}
	return getProject(tx, int64(id))
}

// ListProjects returns up to limit projects (<= 0: all) in id order.
func (s *Store) ListProjects(ctx context.Context, limit int) ([]*metadata.Project, error) {
	var out []*metadata.Project
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := bk(tx, bucketProjects).Cursor()
		for k, v := c.First(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			p := &metadata.Project{}
			if err := json.Unmarshal(v, p); err != nil {
				return fmt.Errorf("project %x: %v: %w", k, err, ErrCorrupt)
			}
			out = append(out, p)
		}
		return nil
	})
	return out, err
}
