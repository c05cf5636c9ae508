package boltstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
	bolt "go.etcd.io/bbolt"
)

// CreateModel stores m and fills ID, IID (the project's next, 1, 2, 3…), Name when empty, DisplayName when
// empty, CreatedAt and UpdatedAt; m is changed only on success. An empty Name becomes
// pkgtypes.Slugify(DisplayName), then _2, _3… until free. Lifecycle and InRegistry are stored as given.
// ErrInvalid for a bad name, display name, description, tag or lifecycle; ErrExists if the name or
// display name is taken in the project (deleted models keep theirs); ErrNotFound for an unknown project.
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
	if err := s.update(ctx, func(tx *bolt.Tx) error { return createModel(tx, &out, now) }); err != nil {
		return err
	}
	*m = out
	return nil
}

func validateModel(m *metadata.Model) error {
	if m.Name == "" && m.DisplayName == "" {
		return fmt.Errorf("model: a name or a display name is required: %w", metadata.ErrInvalid)
	}
	if m.Name != "" {
		if err := validateModelName(m.Name); err != nil {
			return err
		}
	}
	if err := validateDisplayName(m.DisplayName); err != nil {
		return err
	}
	if len(m.Description) > metadata.MaxDescriptionLen {
		return fmt.Errorf("model %q: description longer than %d bytes: %w", m.DisplayName, metadata.MaxDescriptionLen, metadata.ErrInvalid)
	}
	if m.Lifecycle > metadata.Deleted {
		return fmt.Errorf("model %q: lifecycle %d: %w", m.DisplayName, m.Lifecycle, metadata.ErrInvalid)
	}
	return validateTags(m.Tags)
}

// createModel writes a validated model and its three indexes. It derives Name when empty.
func createModel(tx *bolt.Tx, m *metadata.Model, now time.Time) error {
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
	iid, err := nextCounter(tx, projectCounterKey(m.Project, counterModel))
	if err != nil {
		return err
	}
	m.ID, m.IID, m.CreatedAt, m.UpdatedAt = id, iid, now, now
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

func trimSlugTail(s string) string {
	for len(s) > 1 && (s[len(s)-1] == '_' || s[len(s)-1] == '.' || s[len(s)-1] == '-') {
		s = s[:len(s)-1]
	}
	return s
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

func validateTags(tags []metadata.Tag) error {
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > metadata.MaxTagKeyLen {
			return fmt.Errorf("tag key %.60q: must be 1–%d bytes: %w", t.Key, metadata.MaxTagKeyLen, metadata.ErrInvalid)
		}
		if len(t.Value) > metadata.MaxTagValueLen {
			return fmt.Errorf("tag %q: value longer than %d bytes: %w", t.Key, metadata.MaxTagValueLen, metadata.ErrInvalid)
		}
	}
	return nil
}
