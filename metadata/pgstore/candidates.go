package pgstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

const candidateCols = `id, project, iid, eid, model_id, name, user_id, status, start_time, end_time, lifecycle, deleted_with_model, created_at`

func scanCandidate(row pgx.Row) (*metadata.Candidate, error) {
	var c metadata.Candidate
	var eid []byte
	if err := row.Scan(&c.ID, &c.Project, &c.IID, &eid, &c.ModelID, &c.Name, &c.UserID, &c.Status, &c.StartTime,
		&c.EndTime, &c.Lifecycle, &c.DeletedWithModel, &c.CreatedAt); err != nil {
		return nil, err
	}
	if copy(c.EID[:], eid) != len(c.EID) {
		return nil, fmt.Errorf("candidate %d: eid of %d bytes", c.ID, len(eid))
	}
	c.CreatedAt = c.CreatedAt.UTC()
	return &c, nil
}

// CreateCandidate implements metadata.Store: it stores c and its tags and fills ID (from the owner
// sequence), Project (from the model), IID (the project's next unless c.IID > 0 requests one), EID (random
// unless set), CreatedAt (unless set) and StartTime when 0; c is changed only on success. Later tags of a key
// replace earlier ones. ErrNotFound if c.ModelID is unknown or of another project than a non-zero
// c.Project; ErrInvalid for a bad name, status, lifecycle, tag or a negative IID; ErrExists if c.EID is any
// candidate's, or c.IID one of the project's.
func (s *Store) CreateCandidate(ctx context.Context, c *metadata.Candidate, tags []metadata.Tag) error {
	if c == nil {
		return s.refuse(ctx, fmt.Errorf("nil candidate: %w", metadata.ErrInvalid))
	}
	in := *c
	if err := metadata.ValidateCandidate(&in); err != nil {
		return s.refuse(ctx, err)
	}
	if err := metadata.ValidateTags(tags); err != nil {
		return s.refuse(ctx, err)
	}
	now := s.now()
	var out metadata.Candidate
	err := s.update(ctx, func(tx pgx.Tx) error {
		out = in // one attempt's drawn EID and IID are no presets for the next
		m, err := getModel(ctx, tx, out.ModelID, false)
		if err != nil {
			return err
		}
		if out.Project != 0 && out.Project != m.Project {
			return fmt.Errorf("model %d in project %d: %w", m.ID, out.Project, metadata.ErrNotFound)
		}
		out.Project = m.Project
		if err := createCandidate(ctx, tx, &out, now, 0); err != nil {
			return err
		}
		return putTags(ctx, tx, out.ID, tags)
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// createCandidate writes a validated candidate whose Project and ModelID are checked. Its ID is reserved
// when not 0 (an id ReserveOwnerID drew), else the owner sequence's next.
func createCandidate(ctx context.Context, tx pgx.Tx, c *metadata.Candidate, now time.Time, reserved uint64) error {
	id := reserved
	if id == 0 {
		if err := tx.QueryRow(ctx, `SELECT nextval('owner_ids')`).Scan(&id); err != nil {
			return err
		}
	} else if err := checkReservedID(ctx, tx, id); err != nil {
		return err
	}
	iid := c.IID
	if iid > 0 {
		if taken, err := exists(ctx, tx, `SELECT 1 FROM candidates WHERE project = $1 AND iid = $2`, c.Project, iid); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("candidate iid %d: %w", iid, metadata.ErrExists)
		}
		if err := raiseCounter(ctx, tx, counterCandidateIID, c.Project, iid); err != nil {
			return err
		}
	} else {
		var err error
		if iid, err = nextCounter(ctx, tx, counterCandidateIID, c.Project); err != nil {
			return err
		}
	}
	if c.EID != (metadata.EID{}) {
		if taken, err := exists(ctx, tx, `SELECT 1 FROM candidates WHERE eid = $1`, c.EID[:]); err != nil {
			return err
		} else if taken {
			return fmt.Errorf("run id %s: %w", c.EID, metadata.ErrExists)
		}
	} else {
		// 128 random bits never collide in practice; the unique index would turn a collision into ErrExists.
		for c.EID == (metadata.EID{}) {
			rand.Read(c.EID[:])
		}
	}
	c.ID, c.IID, c.CreatedAt = id, iid, presetTime(c.CreatedAt, now)
	if c.StartTime == 0 {
		c.StartTime = now.UnixMilli()
	}
	_, err := tx.Exec(ctx, `INSERT INTO candidates (`+candidateCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		c.ID, c.Project, c.IID, c.EID[:], c.ModelID, c.Name, c.UserID, c.Status, c.StartTime, c.EndTime, c.Lifecycle,
		c.DeletedWithModel, c.CreatedAt)
	return err
}

// checkReservedID accepts an id for a new candidate when the sequence has issued it and no candidate or
// logged model has it. ErrInvalid for an id never issued; ErrExists for one in use.
func checkReservedID(ctx context.Context, tx pgx.Tx, id uint64) error {
	var last uint64
	var called bool
	if err := tx.QueryRow(ctx, `SELECT last_value, is_called FROM owner_ids`).Scan(&last, &called); err != nil {
		return err
	}
	if !called || id > last {
		return fmt.Errorf("the candidate's id was never reserved: %w", metadata.ErrInvalid)
	}
	if taken, err := exists(ctx, tx, `SELECT 1 FROM candidates WHERE id = $1
		UNION ALL SELECT 1 FROM logged_models WHERE id = $1`, id); err != nil {
		return err
	} else if taken {
		return fmt.Errorf("the candidate's reserved id is taken: %w", metadata.ErrExists)
	}
	return nil
}

// putTags sets a candidate's tags; a later tag of a key replaces an earlier one.
func putTags(ctx context.Context, tx pgx.Tx, candidateID uint64, tags []metadata.Tag) error {
	for _, t := range tags {
		if _, err := tx.Exec(ctx, `INSERT INTO candidate_tags (candidate_id, key, value) VALUES ($1, $2, $3)
			ON CONFLICT (candidate_id, key) DO UPDATE SET value = EXCLUDED.value`, candidateID, t.Key, t.Value); err != nil {
			return err
		}
	}
	return nil
}

// ReserveOwnerID implements metadata.Store. A sequence never issues a number twice, also across
// replicas, and a draw is never undone by a rollback: no later draw returns it.
func (s *Store) ReserveOwnerID(ctx context.Context) (uint64, error) {
	var id uint64
	err := s.update(ctx, func(tx pgx.Tx) error { return tx.QueryRow(ctx, `SELECT nextval('owner_ids')`).Scan(&id) })
	if err != nil {
		return 0, err
	}
	return id, nil
}

// Candidate implements metadata.Store: by exactly one of ref.ID, ref.EID and ref.IID (the last within
// ref.Project; a non-zero ref.Project also scopes ID and EID); any lifecycle. ErrInvalid for a ref that
// selects nothing or several ways; ErrNotFound otherwise.
func (s *Store) Candidate(ctx context.Context, ref metadata.CandidateRef) (*metadata.Candidate, error) {
	hasEID := ref.EID != (metadata.EID{})
	if !exactlyOne(ref.ID != 0, hasEID, ref.IID != 0) || (ref.IID != 0 && ref.Project == 0) {
		return nil, fmt.Errorf("candidate ref: set ID, EID, or Project and IID: %w", metadata.ErrInvalid)
	}
	var c *metadata.Candidate
	err := s.viewOne(ctx, func(tx queryer) error {
		var row pgx.Row
		switch {
		case hasEID:
			row = tx.QueryRow(ctx, `SELECT `+candidateCols+` FROM candidates WHERE eid = $1 AND ($2 = 0 OR project = $2)`, ref.EID[:], ref.Project)
		case ref.IID != 0:
			row = tx.QueryRow(ctx, `SELECT `+candidateCols+` FROM candidates WHERE project = $1 AND iid = $2`, ref.Project, ref.IID)
		default:
			row = tx.QueryRow(ctx, `SELECT `+candidateCols+` FROM candidates WHERE id = $1 AND ($2 = 0 OR project = $2)`, ref.ID, ref.Project)
		}
		var err error
		c, err = scanCandidate(row)
		return notFound(err, "candidate %+v", ref)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func getCandidate(ctx context.Context, tx pgx.Tx, id uint64, lock bool) (*metadata.Candidate, error) {
	q := `SELECT ` + candidateCols + ` FROM candidates WHERE id = $1`
	if lock {
		q += ` FOR UPDATE`
	}
	c, err := scanCandidate(tx.QueryRow(ctx, q, id))
	return c, notFound(err, "candidate %d", id)
}

// ListCandidates implements metadata.Store: a model's candidates of any lifecycle, newest StartTime first
// (ties: newest ID first), with the next page's token ("" at the end). ErrNotFound for an unknown model;
// ErrInvalid for a token of another listing.
func (s *Store) ListCandidates(ctx context.Context, modelID uint64, p metadata.Page) ([]*metadata.Candidate, string, error) {
	pg, err := newPager(p, "candidates", modelID)
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.Candidate
	err = s.view(ctx, func(tx pgx.Tx) error {
		if _, err := getModel(ctx, tx, modelID, false); err != nil {
			return err
		}
		var rows pgx.Rows
		if pg.after == nil {
			rows, err = tx.Query(ctx, `SELECT `+candidateCols+` FROM candidates WHERE model_id = $1
				ORDER BY start_time DESC, id DESC LIMIT $2`, modelID, pg.limit+1)
		} else {
			k, kerr := pg.int64s(2)
			if kerr != nil {
				return kerr
			}
			rows, err = tx.Query(ctx, `SELECT `+candidateCols+` FROM candidates WHERE model_id = $1
				AND (start_time, id) < ($2, $3) ORDER BY start_time DESC, id DESC LIMIT $4`, modelID, k[0], k[1], pg.limit+1)
		}
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.Candidate, error) { return scanCandidate(r) })
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(c *metadata.Candidate) []byte { return int64Key(c.StartTime, int64(c.ID)) })
	return out, next, nil
}

// UpdateCandidate implements metadata.Store. Setting Lifecycle (to either value) clears DeletedWithModel:
// an explicit decision about the candidate outlives its model's restore. ErrNotFound for an unknown
// candidate; ErrInvalid for a bad name, status or lifecycle.
func (s *Store) UpdateCandidate(ctx context.Context, id uint64, u metadata.CandidateUpdate) (*metadata.Candidate, error) {
	var out *metadata.Candidate
	err := s.update(ctx, func(tx pgx.Tx) error {
		c, err := getCandidate(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if u.Name != nil {
			c.Name = *u.Name
		}
		if u.Status != nil {
			c.Status = *u.Status
		}
		if u.EndTime != nil {
			c.EndTime = *u.EndTime
		}
		if u.Lifecycle != nil {
			c.Lifecycle, c.DeletedWithModel = *u.Lifecycle, false
		}
		if err := metadata.ValidateCandidate(c); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE candidates SET name = $2, status = $3, end_time = $4, lifecycle = $5,
			deleted_with_model = $6 WHERE id = $1`, id, c.Name, c.Status, c.EndTime, c.Lifecycle, c.DeletedWithModel); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTag implements metadata.Store. ErrNotFound for an unknown candidate or an absent key.
func (s *Store) DeleteTag(ctx context.Context, candidateID uint64, key string) error {
	return s.update(ctx, func(tx pgx.Tx) error {
		if _, err := getCandidate(ctx, tx, candidateID, false); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `DELETE FROM candidate_tags WHERE candidate_id = $1 AND key = $2`, candidateID, key)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("candidate %d tag %q: %w", candidateID, key, metadata.ErrNotFound)
		}
		return nil
	})
}
