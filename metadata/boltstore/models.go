package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
	bolt "go.etcd.io/bbolt"
)

// CreateModel stores m and fills ID, IID (the project's next, 1, 2, 3…, unless m.IID > 0 requests one),
// Name when empty, DisplayName when empty, CreatedAt and UpdatedAt (unless preset); m is changed only on
// success. An empty Name becomes pkgtypes.Slugify(DisplayName), then _2, _3… until free. Lifecycle and
// InRegistry are stored as given. A requested iid is free when models_by_iid has no entry for it; the
// counter is raised to it when below, so the counter's next is always above every iid in use.
// ErrInvalid for a bad name, display name, description, tag, lifecycle or a negative IID; ErrExists if the
// name, display name or requested iid is taken in the project (deleted models keep theirs); ErrNotFound for
// an unknown project.
func (s *Store) CreateModel(ctx context.Context, m *metadata.Model) error {
	if m == nil {
		return fmt.Errorf("nil model: %w", metadata.ErrInvalid)
	}
	out := *m
	out.Tags = slices.Clone(m.Tags)
	if out.DisplayName == "" {
		out.DisplayName = out.Name
	}
	if err := validateModel(&out); err != nil {
		return err
	}
	now := s.now()
	in := out // every run starts from the caller's model: a run again (group commit) derives the name anew
	if err := s.update(ctx, func(tx *bolt.Tx) error { out = in; return createModel(tx, &out, now, false) }); err != nil {
		return err
	}
	*m = out
	return nil
}

// createModel writes a validated model and its three indexes. It derives Name when empty. The
// project's default model takes iid 0 instead of the next counter value; any other model takes m.IID when
// that is set and free.
func createModel(tx *bolt.Tx, m *metadata.Model, now time.Time, defaultModel bool) error {
	if _, err := getProject(tx, m.Project); err != nil {
		return err
	}
	byName, byDisplay := bk(tx, bucketModelsByName), bk(tx, bucketModelsByDisplay)
	if byDisplay.Get(idStrKey(uint64(m.Project), m.DisplayName)) != nil {
		return fmt.Errorf("model display name %q: %w", m.DisplayName, metadata.ErrExists)
	}
	if m.Name == "" {
		name, err := freeSlug(byName, m.Project, m.DisplayName)
		if err != nil {
			return err
		}
		m.Name = name
	} else if byName.Get(idStrKey(uint64(m.Project), m.Name)) != nil {
		return fmt.Errorf("model %q: %w", m.Name, metadata.ErrExists)
	}
	models := bk(tx, bucketModels)
	id, err := models.NextSequence()
	if err != nil {
		return err
	}
	var iid int64
	switch {
	case defaultModel:
	case m.IID > 0:
		if bk(tx, bucketModelsByIID).Get(pairKey(uint64(m.Project), uint64(m.IID))) != nil {
			return fmt.Errorf("model iid %d: %w", m.IID, metadata.ErrExists)
		}
		iid = m.IID
		if err := raiseCounter(tx, projectCounterKey(m.Project, counterModel), iid); err != nil {
			return err
		}
	default:
		if iid, err = nextCounter(tx, projectCounterKey(m.Project, counterModel)); err != nil {
			return err
		}
	}
	m.ID, m.IID = id, iid
	m.CreatedAt, m.UpdatedAt = presetTime(m.CreatedAt, now), presetTime(m.UpdatedAt, now)
	if err := putJSON(models, idKey(id), m); err != nil {
		return err
	}
	if err := byName.Put(idStrKey(uint64(m.Project), m.Name), idKey(id)); err != nil {
		return err
	}
	if err := byDisplay.Put(idStrKey(uint64(m.Project), m.DisplayName), idKey(id)); err != nil {
		return err
	}
	return bk(tx, bucketModelsByIID).Put(pairKey(uint64(m.Project), uint64(iid)), idKey(id))
}

// DefaultModelDisplayName is the display name of each project's default model, MLflow's experiment "0".
const DefaultModelDisplayName = "Default"

// EnsureDefaultModel returns the project's default model (iid 0, display name "Default", slug
// "default" or a suffixed form if a user model took it), creating it on first use. ErrNotFound for an
// unknown project; ErrConflict if another model already has the display name "Default".
func (s *Store) EnsureDefaultModel(ctx context.Context, project int64) (*metadata.Model, error) {
	var out *metadata.Model
	find := func(tx *bolt.Tx) error {
		v := bk(tx, bucketModelsByIID).Get(pairKey(uint64(project), 0))
		if v == nil {
			return metadata.ErrNotFound
		}
		m, err := getModel(tx, binary.BigEndian.Uint64(v))
		out = m
		return err
	}
	if err := s.view(ctx, find); !errors.Is(err, metadata.ErrNotFound) {
		return out, err
	}
	now := s.now()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if err := find(tx); !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		if bk(tx, bucketModelsByDisplay).Get(idStrKey(uint64(project), DefaultModelDisplayName)) != nil {
			return fmt.Errorf("default experiment: display name %q is used by another model: %w",
				DefaultModelDisplayName, metadata.ErrConflict)
		}
		out = &metadata.Model{Project: project, DisplayName: DefaultModelDisplayName}
		return createModel(tx, out, now, true)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// freeSlug returns pkgtypes.Slugify(display), or the first of its _2, _3… forms that no model of the project uses.
func freeSlug(byName *bolt.Bucket, project int64, display string) (string, error) {
	base := pkgtypes.Slugify(display)
	name := base
	for n := 2; byName.Get(idStrKey(uint64(project), name)) != nil; n++ {
		suffix := "_" + strconv.Itoa(n)
		name = trimSlugTail(base[:min(len(base), maxModelNameLen-len(suffix))]) + suffix
		if pkgtypes.IsReservedModelName(name) { // "ml experiment" → ml_experiment_2 would be the legacy form
			name = "x_" + name
		}
	}
	if err := validateModelName(name); err != nil {
		return "", fmt.Errorf("slug of %q: %v: %w", display, err, ErrCorrupt)
	}
	return name, nil
}

// Model returns the model selected by ref: by ID (and, if ref.Project is set, only within that project), or
// within ref.Project by exactly one of IID, Name and DisplayName. Models of any lifecycle are returned.
// ErrInvalid for a ref that selects nothing or several ways; ErrNotFound otherwise.
func (s *Store) Model(ctx context.Context, ref metadata.ModelRef) (*metadata.Model, error) {
	if !exactlyOne(ref.ID != 0, ref.IID != 0, ref.Name != "", ref.DisplayName != "") || (ref.ID == 0 && ref.Project == 0) {
		return nil, fmt.Errorf("model ref %+v: set ID, or Project and one of IID, Name, DisplayName: %w", ref, metadata.ErrInvalid)
	}
	var m *metadata.Model
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		m, err = modelByRef(tx, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

func modelByRef(tx *bolt.Tx, ref metadata.ModelRef) (*metadata.Model, error) {
	id := ref.ID
	if id == 0 {
		var b *bolt.Bucket
		var k []byte
		var what string
		switch {
		case ref.IID != 0:
			b, k, what = bk(tx, bucketModelsByIID), pairKey(uint64(ref.Project), uint64(ref.IID)), "iid "+strconv.FormatInt(ref.IID, 10)
		case ref.Name != "":
			b, k, what = bk(tx, bucketModelsByName), idStrKey(uint64(ref.Project), ref.Name), strconv.Quote(ref.Name)
		default:
			b, k, what = bk(tx, bucketModelsByDisplay), idStrKey(uint64(ref.Project), ref.DisplayName), "display name "+strconv.Quote(ref.DisplayName)
		}
		v, ok, err := getU64(b, k)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("model %s in project %d: %w", what, ref.Project, metadata.ErrNotFound)
		}
		id = v
	}
	m, err := getModel(tx, id)
	if err != nil {
		return nil, err
	}
	if ref.Project != 0 && m.Project != ref.Project {
		return nil, fmt.Errorf("model %d in project %d: %w", id, ref.Project, metadata.ErrNotFound)
	}
	return m, nil
}

func getModel(tx *bolt.Tx, id uint64) (*metadata.Model, error) {
	var m metadata.Model
	ok, err := getJSON(bk(tx, bucketModels), idKey(id), &m)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("model %d: %w", id, metadata.ErrNotFound)
	}
	return &m, nil
}

// ListModels returns the project's models of any lifecycle in IID order, with the next page's token ("" at
// the end). ErrNotFound for an unknown project; ErrInvalid for a token of another listing.
func (s *Store) ListModels(ctx context.Context, project int64, p metadata.Page) ([]*metadata.Model, string, error) {
	pg, err := newPager(p, "models", idKey(uint64(project)))
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.Model
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getProject(tx, project); err != nil {
			return err
		}
		next, err = pg.forward(bk(tx, bucketModelsByIID).Cursor(), func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("models_by_iid %x: %w", k, ErrCorrupt)
			}
			m, err := getModel(tx, decodeU64(v))
			if err != nil {
				return indexPointsNowhere(err)
			}
			out = append(out, m)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// indexPointsNowhere turns a record's ErrNotFound, met through an index entry, into corruption: a caller
// must not see a 404 for data the index promised.
func indexPointsNowhere(err error) error {
	if errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("index entry without record: %v: %w", err, ErrCorrupt)
	}
	return err
}

// UpdateModel applies u to the model in one transaction and returns the model as stored, with UpdatedAt
// set to now. A rename changes DisplayName and its models_by_display entry; Name, the slug, never changes.
// DeleteTags (absent keys ignored) is applied before SetTags (which replaces a key's value or appends the
// tag). When Lifecycle changes Active → Deleted, every active candidate of the model becomes Deleted with
// DeletedWithModel set; when it changes Deleted → Active, exactly the candidates with DeletedWithModel
// become Active again, so candidates deleted on their own stay deleted. Setting the lifecycle the model
// already has touches no candidate. Clearing InRegistry only clears the flag: removing versions and aliases
// is the caller's business.
// ErrNotFound for an unknown model; ErrExists if the new display name belongs to another model of the
// project (deleted models keep theirs); ErrInvalid for a bad display name, description, tag or lifecycle.
func (s *Store) UpdateModel(ctx context.Context, id uint64, u metadata.ModelUpdate) (*metadata.Model, error) {
	if err := validateModelUpdate(u); err != nil {
		return nil, err
	}
	now := s.now()
	var out *metadata.Model
	err := s.update(ctx, func(tx *bolt.Tx) error {
		m, err := getModel(tx, id)
		if err != nil {
			return err
		}
		if u.DisplayName != nil && *u.DisplayName != m.DisplayName {
			if err := renameModel(tx, m, *u.DisplayName); err != nil {
				return err
			}
		}
		if u.Description != nil {
			m.Description = *u.Description
		}
		m.Tags = updateTags(m.Tags, u.SetTags, u.DeleteTags)
		if u.InRegistry != nil {
			m.InRegistry = *u.InRegistry
		}
		if u.Lifecycle != nil && *u.Lifecycle != m.Lifecycle {
			m.Lifecycle = *u.Lifecycle
			if err := cascadeLifecycle(tx, m.ID, m.Lifecycle); err != nil {
				return err
			}
		}
		m.UpdatedAt = now
		if err := putJSON(bk(tx, bucketModels), idKey(m.ID), m); err != nil {
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

// renameModel moves the model's models_by_display entry to display; the caller stores m.
func renameModel(tx *bolt.Tx, m *metadata.Model, display string) error {
	byDisplay := bk(tx, bucketModelsByDisplay)
	newKey := idStrKey(uint64(m.Project), display)
	if byDisplay.Get(newKey) != nil {
		return fmt.Errorf("model display name %q: %w", display, metadata.ErrExists)
	}
	if err := byDisplay.Delete(idStrKey(uint64(m.Project), m.DisplayName)); err != nil {
		return err
	}
	m.DisplayName = display
	return byDisplay.Put(newKey, idKey(m.ID))
}

// cascadeLifecycle applies a model's new lifecycle to its candidates: deleting marks the active ones
// Deleted and DeletedWithModel; restoring reactivates exactly those marked.
func cascadeLifecycle(tx *bolt.Tx, modelID uint64, to metadata.Lifecycle) error {
	prefix := idKey(modelID)
	cands := bk(tx, bucketCandidates)
	c := bk(tx, bucketCandidatesByModel).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != 24 {
			return fmt.Errorf("candidates_by_model %x: %w", k, ErrCorrupt)
		}
		cand, err := getCandidate(tx, decodeU64(k[16:]))
		if err != nil {
			return indexPointsNowhere(err)
		}
		switch {
		case to == metadata.Deleted && cand.Lifecycle == metadata.Active:
			cand.Lifecycle, cand.DeletedWithModel = metadata.Deleted, true
		case to == metadata.Active && cand.DeletedWithModel:
			cand.Lifecycle, cand.DeletedWithModel = metadata.Active, false
		default:
			continue
		}
		if err := putJSON(cands, idKey(cand.ID), cand); err != nil {
			return err
		}
	}
	return nil
}

// PurgeModel removes a model and its names for good, so the names become free again. It is refused with
// ErrConflict while the model has candidates or versions: runs and the versions they back are never
// removed by a purge. ErrNotFound for an unknown model. Counters are untouched, so the model's iid is
// never reused.
func (s *Store) PurgeModel(ctx context.Context, id uint64) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		m, err := getModel(tx, id)
		if err != nil {
			return err
		}
		prefix := idKey(id)
		for _, b := range [][]byte{bucketCandidatesByModel, bucketLoggedModelsByMdl, bucketVersions} {
			if k, _ := bk(tx, b).Cursor().Seek(prefix); k != nil && hasPrefix(k, prefix) {
				return fmt.Errorf("model %q still has runs, logged models or versions: %w", m.DisplayName, metadata.ErrConflict)
			}
		}
		aliases := bk(tx, bucketAliases)
		c := aliases.Cursor()
		for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := aliases.Delete(k); err != nil {
				return err
			}
		}
		for _, del := range []struct {
			bucket []byte
			key    []byte
		}{
			{bucketModelsByName, idStrKey(uint64(m.Project), m.Name)},
			{bucketModelsByDisplay, idStrKey(uint64(m.Project), m.DisplayName)},
			{bucketModelsByIID, pairKey(uint64(m.Project), uint64(m.IID))},
			{bucketModels, prefix},
		} {
			if err := bk(tx, del.bucket).Delete(del.key); err != nil {
				return err
			}
		}
		return nil
	})
}
