package boltstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// CreateCandidate stores c and its tags and fills ID, Project (from the model), IID (the project's next, 1,
// 2, 3…, unless c.IID > 0 requests one), EID (random unless set), CreatedAt (unless set), and StartTime when
// 0; c is changed only on success. Status, EndTime, Lifecycle and DeletedWithModel are stored as given (the
// zero Status is Running). Later tags of a key replace earlier ones. A requested iid raises the project's
// candidate counter to it when below.
// ErrNotFound if c.ModelID is unknown or belongs to another project than a non-zero c.Project; ErrInvalid
// for a bad name, status, lifecycle, tag or a negative IID; ErrExists if c.EID is any candidate's, or
// c.IID one of the project's.
func (s *Store) CreateCandidate(ctx context.Context, c *metadata.Candidate, tags []metadata.Tag) error {
	if c == nil {
		return fmt.Errorf("nil candidate: %w", metadata.ErrInvalid)
	}
	out := *c
	if err := validateCandidate(&out); err != nil {
		return err
	}
	if err := validateTags(tags); err != nil {
		return err
	}
	now := s.now()
	in := out // every run starts from the caller's candidate: one run's drawn EID and IID are no presets for the next
	err := s.update(ctx, func(tx *bolt.Tx) error {
		out = in
		m, err := getModel(tx, out.ModelID)
		if err != nil {
			return err
		}
		if out.Project != 0 && out.Project != m.Project {
			return fmt.Errorf("model %d in project %d: %w", m.ID, out.Project, metadata.ErrNotFound)
		}
		out.Project = m.Project
		if err := createCandidate(tx, &out, now, 0); err != nil {
			return err
		}
		return putTags(tx, out.ID, tags)
	})
	if err != nil {
		return err
	}
	*c = out
	return nil
}

// createCandidate writes a validated candidate whose Project and ModelID are already checked, and its
// three indexes. Its ID is reserved when not 0 (an id ReserveOwnerID drew), else the sequence's next. A
// non-zero c.EID, c.IID or c.CreatedAt is kept (see CreateCandidate).
// ErrInvalid for a reserved id the sequence never issued; ErrExists for one a candidate or logged model
// already has, and for a taken EID or IID.
func createCandidate(tx *bolt.Tx, c *metadata.Candidate, now time.Time, reserved uint64) error {
	cands, byEID := bk(tx, bucketCandidates), bk(tx, bucketCandidatesByEID)
	id := reserved
	if id == 0 {
		var err error
		if id, err = cands.NextSequence(); err != nil {
			return err
		}
	} else if err := checkReservedID(tx, id); err != nil {
		return err
	}
	iid, counter := c.IID, projectCounterKey(c.Project, counterCandidate)
	if iid > 0 {
		if bk(tx, bucketCandidatesByIID).Get(pairKey(uint64(c.Project), uint64(iid))) != nil {
			return fmt.Errorf("candidate iid %d: %w", iid, metadata.ErrExists)
		}
		if err := raiseCounter(tx, counter, iid); err != nil {
			return err
		}
	} else {
		var err error
		if iid, err = nextCounter(tx, counter); err != nil {
			return err
		}
	}
	if c.EID != (metadata.EID{}) {
		if byEID.Get(c.EID[:]) != nil {
			return fmt.Errorf("run id %s: %w", c.EID, metadata.ErrExists)
		}
	} else {
		// 128 random bits collide in practice never; the loop only makes the unique index a certainty.
		for {
			rand.Read(c.EID[:])
			if c.EID != (metadata.EID{}) && byEID.Get(c.EID[:]) == nil {
				break
			}
		}
	}
	c.ID, c.IID, c.CreatedAt = id, iid, presetTime(c.CreatedAt, now)
	if c.StartTime == 0 {
		c.StartTime = now.UnixMilli()
	}
	if err := putJSON(cands, idKey(id), c); err != nil {
		return err
	}
	if err := byEID.Put(c.EID[:], idKey(id)); err != nil {
		return err
	}
	if err := bk(tx, bucketCandidatesByIID).Put(pairKey(uint64(c.Project), uint64(iid)), idKey(id)); err != nil {
		return err
	}
	return bk(tx, bucketCandidatesByModel).Put(candidateByModelKey(c.ModelID, c.StartTime, id), nil)
}

// ReserveOwnerID implements metadata.Store: it draws the next id of the sequence candidates and logged
// models share, in a transaction of its own (or the one ctx carries).
func (s *Store) ReserveOwnerID(ctx context.Context) (uint64, error) {
	var id uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		id, err = bk(tx, bucketCandidates).NextSequence()
		return err
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// checkReservedID accepts an id for a new candidate when the sequence has issued it and no candidate
// or logged model has it. ErrInvalid for an id never issued; ErrExists for one in use.
func checkReservedID(tx *bolt.Tx, id uint64) error {
	if id > bk(tx, bucketCandidates).Sequence() {
		return fmt.Errorf("the candidate's id was never reserved: %w", metadata.ErrInvalid)
	}
	if bk(tx, bucketCandidates).Get(idKey(id)) != nil || bk(tx, bucketLoggedModels).Get(idKey(id)) != nil {
		return fmt.Errorf("the candidate's reserved id is taken: %w", metadata.ErrExists)
	}
	return nil
}

// Candidate returns the candidate selected by exactly one of ref.ID, ref.EID and ref.IID (the last within
// ref.Project; a non-zero ref.Project also scopes ID and EID). Candidates of any lifecycle are returned.
// ErrInvalid for a ref that selects nothing or several ways; ErrNotFound otherwise.
func (s *Store) Candidate(ctx context.Context, ref metadata.CandidateRef) (*metadata.Candidate, error) {
	hasEID := ref.EID != (metadata.EID{})
	if !exactlyOne(ref.ID != 0, hasEID, ref.IID != 0) || (ref.IID != 0 && ref.Project == 0) {
		return nil, fmt.Errorf("candidate ref: set ID, EID, or Project and IID: %w", metadata.ErrInvalid)
	}
	var c *metadata.Candidate
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id := ref.ID
		var err error
		var ok bool
		switch {
		case hasEID:
			id, ok, err = getU64(bk(tx, bucketCandidatesByEID), ref.EID[:])
			if err == nil && !ok {
				err = fmt.Errorf("candidate %s: %w", ref.EID, metadata.ErrNotFound)
			}
		case ref.IID != 0:
			id, ok, err = getU64(bk(tx, bucketCandidatesByIID), pairKey(uint64(ref.Project), uint64(ref.IID)))
			if err == nil && !ok {
				err = fmt.Errorf("candidate iid %d in project %d: %w", ref.IID, ref.Project, metadata.ErrNotFound)
			}
		}
		if err != nil {
			return err
		}
		if c, err = getCandidate(tx, id); err != nil {
			return err
		}
		if ref.Project != 0 && c.Project != ref.Project {
			return fmt.Errorf("candidate %d in project %d: %w", id, ref.Project, metadata.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func getCandidate(tx *bolt.Tx, id uint64) (*metadata.Candidate, error) {
	var c metadata.Candidate
	ok, err := getJSON(bk(tx, bucketCandidates), idKey(id), &c)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("candidate %d: %w", id, metadata.ErrNotFound)
	}
	return &c, nil
}

// ListCandidates returns a model's candidates of any lifecycle, newest StartTime first (ties: newest ID
// first), with the next page's token ("" at the end). ErrNotFound for an unknown model; ErrInvalid for a
// token of another listing.
func (s *Store) ListCandidates(ctx context.Context, modelID uint64, p metadata.Page) ([]*metadata.Candidate, string, error) {
	pg, err := newPager(p, "candidates", idKey(modelID))
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.Candidate
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		next, err = pg.backward(bk(tx, bucketCandidatesByModel).Cursor(), func(k, _ []byte) error {
			if len(k) != 24 {
				return fmt.Errorf("candidates_by_model %x: %w", k, ErrCorrupt)
			}
			c, err := getCandidate(tx, decodeU64(k[16:]))
			if err != nil {
				return indexPointsNowhere(err)
			}
			out = append(out, c)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// UpdateCandidate applies u in one transaction and returns the candidate as stored. Setting Lifecycle (to
// either value) clears DeletedWithModel: an explicit decision about the candidate outlives its model's
// restore. StartTime never changes, so candidates_by_model stays as it is.
// ErrNotFound for an unknown candidate; ErrInvalid for a bad name, status or lifecycle.
func (s *Store) UpdateCandidate(ctx context.Context, id uint64, u metadata.CandidateUpdate) (*metadata.Candidate, error) {
	var out *metadata.Candidate
	err := s.update(ctx, func(tx *bolt.Tx) error {
		c, err := getCandidate(tx, id)
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
		if err := validateCandidate(c); err != nil {
			return err
		}
		if err := putJSON(bk(tx, bucketCandidates), idKey(id), c); err != nil {
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
