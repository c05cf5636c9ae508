package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
	bolt "go.etcd.io/bbolt"
)

// CreateVersion stores v and fills ID (the project's next), Project (from the model), Seq (the model's
// next, unless v.Seq > 0 requests one), CreatedAt and UpdatedAt (unless preset), and Semver when empty: the
// next minor after the highest MAJOR.MINOR.PATCH of the model, prerelease and build ignored (none: 1.0.0;
// 1.4.2 or 1.4.0-rc.1: 1.5.0), so a default version is always above every existing one. v is changed only
// on success. Semvers are unique per model as exact strings. The model becomes InRegistry in the same
// transaction. Deleted models are not refused here: the caller has the model and decides. The model's
// version counter is its seq high-water mark: it never moves back (DeleteVersion leaves it), so a requested
// seq is accepted only above it, and then becomes it.
// ErrInvalid for a bad semver, subpath, description, tag or a negative Seq; ErrExists if the semver is
// taken or a requested seq is at or below the high-water mark; ErrNotFound for an unknown model, a model
// outside a non-zero v.Project, or a candidate that is unknown or of another project.
func (s *Store) CreateVersion(ctx context.Context, v *metadata.Version) error {
	if v == nil {
		return fmt.Errorf("nil version: %w", metadata.ErrInvalid)
	}
	out := *v
	out.Tags = slices.Clone(v.Tags)
	if err := validateVersion(&out); err != nil {
		return err
	}
	now := s.now()
	in := out // every run starts from the caller's version: a run again (group commit) derives the semver anew
	if err := s.update(ctx, func(tx *bolt.Tx) error { out = in; return createVersion(tx, &out, now) }); err != nil {
		return err
	}
	*v = out
	return nil
}

func validateVersion(v *metadata.Version) error {
	if v.Semver != "" {
		if _, err := parseSemver(v.Semver); err != nil {
			return err
		}
	}
	if v.Subpath != "" {
		if err := validateFilePath(v.Subpath); err != nil {
			return fmt.Errorf("version subpath: %w", err)
		}
	}
	if len(v.Description) > metadata.MaxDescriptionLen {
		return fmt.Errorf("version description longer than %d bytes: %w", metadata.MaxDescriptionLen, metadata.ErrInvalid)
	}
	if v.Seq < 0 {
		return fmt.Errorf("version number %d: %w", v.Seq, metadata.ErrInvalid)
	}
	return validateTags(v.Tags)
}

// createVersion writes a validated version, its four indexes, both counters and the model's registry flag.
func createVersion(tx *bolt.Tx, v *metadata.Version, now time.Time) error {
	m, err := getModel(tx, v.ModelID)
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
		c, err := getCandidate(tx, v.CandidateID)
		if err != nil {
			return err
		}
		if c.Project != m.Project {
			return fmt.Errorf("candidate %d in project %d: %w", c.ID, m.Project, metadata.ErrNotFound)
		}
	} else {
		lm, err := getLoggedModel(tx, v.LoggedModelID)
		if err != nil {
			return err
		}
		if lm.Project != m.Project {
			return fmt.Errorf("logged model %s in project %d: %w", lm.LMID, m.Project, metadata.ErrNotFound)
		}
	}
	if v.Semver == "" {
		if v.Semver, err = nextMinor(tx, m.ID); err != nil {
			return err
		}
	}
	sv, err := parseSemver(v.Semver)
	if err != nil {
		return err
	}
	bySemver := bk(tx, bucketVersionsBySemver)
	if bySemver.Get(idStrKey(m.ID, v.Semver)) != nil {
		return fmt.Errorf("model %q version %q: %w", m.Name, v.Semver, metadata.ErrExists)
	}
	if v.Seq, err = claimSeq(tx, m, v.Seq); err != nil {
		return err
	}
	if v.ID, err = nextCounter(tx, projectCounterKey(m.Project, counterVersion)); err != nil {
		return err
	}
	v.CreatedAt, v.UpdatedAt = presetTime(v.CreatedAt, now), presetTime(v.UpdatedAt, now)
	if err := putJSON(bk(tx, bucketVersions), pairKey(m.ID, uint64(v.Seq)), v); err != nil {
		return err
	}
	puts := []struct {
		b    []byte
		k, v []byte
	}{
		{bucketVersionsByID, pairKey(uint64(m.Project), uint64(v.ID)), pairKey(m.ID, uint64(v.Seq))},
		{bucketVersionsBySemver, idStrKey(m.ID, v.Semver), idKey(uint64(v.Seq))},
		{bucketVersionsOrder, versionOrderKey(m.ID, sv, v.Seq), nil},
		{bucketVersionsByCand, versionByCandidateKey(v.Owner(), m.ID, v.Seq), nil},
	}
	for _, p := range puts {
		if err := bk(tx, p.b).Put(p.k, p.v); err != nil {
			return err
		}
	}
	if !m.InRegistry {
		m.InRegistry, m.UpdatedAt = true, now
		return putJSON(bk(tx, bucketModels), idKey(m.ID), m)
	}
	return nil
}

// claimSeq returns the seq of a new version of m: requested when > 0, else the next of the model's counter.
// The counter is the highest seq ever issued, deleted versions' included, so a requested seq must be above
// it: telling a deleted version's seq from one skipped by an earlier request would need more state, and
// refusing both keeps the rule "a seq is never reused" without exceptions.
func claimSeq(tx *bolt.Tx, m *metadata.Model, requested int64) (int64, error) {
	counter := modelCounterKey(m.ID, counterVersion)
	if requested == 0 {
		return nextCounter(tx, counter)
	}
	mark, _, err := getU64(bk(tx, bucketCounters), counter)
	if err != nil {
		return 0, err
	}
	if requested <= int64(mark) {
		if bk(tx, bucketVersions).Get(pairKey(m.ID, uint64(requested))) != nil {
			return 0, fmt.Errorf("model %q version %d: %w", m.Name, requested, metadata.ErrExists)
		}
		return 0, fmt.Errorf("model %q version %d: at or below the highest version number the model has had (%d), "+
			"and numbers are never reused: %w", m.Name, requested, mark, metadata.ErrExists)
	}
	return requested, raiseCounter(tx, counter, requested)
}

// nextMinor returns pkgtypes.NextMinor of the model's highest version, read from the end of its
// versions_order range. Build metadata is not in the key, and NextMinor drops it anyway.
func nextMinor(tx *bolt.Tx, modelID uint64) (string, error) {
	prefix := idKey(modelID)
	c := bk(tx, bucketVersionsOrder).Cursor()
	var k []byte
	if k, _ = c.Seek(prefixEnd(prefix)); k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if k == nil || !hasPrefix(k, prefix) {
		return pkgtypes.NextMinor(""), nil
	}
	highest, ok := semver{}, false
	if len(k) >= 8+25+8 {
		highest, ok = decodeSemverKey(k[8 : len(k)-8])
	}
	if !ok {
		return "", fmt.Errorf("versions_order %x: %w", k, ErrCorrupt)
	}
	next := pkgtypes.NextMinor(highest.String())
	if next == "" {
		return "", fmt.Errorf("no version above %s can be derived; give a semver: %w", highest, metadata.ErrInvalid)
	}
	return next, nil
}

// Version returns the version selected by ref: within ref.Project by ID, or within ref.ModelID by exactly
// one of Seq, Semver (the exact string) and Alias (a non-zero ref.Project then scopes the model).
// ErrInvalid for a ref that selects nothing or several ways; ErrAliasNotFound for an alias the model does
// not have; ErrNotFound otherwise.
func (s *Store) Version(ctx context.Context, ref metadata.VersionRef) (*metadata.Version, error) {
	if err := checkVersionRef(ref); err != nil {
		return nil, err
	}
	var v *metadata.Version
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		v, err = versionByRef(tx, ref)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func checkVersionRef(ref metadata.VersionRef) error {
	byID := ref.ID != 0 && ref.Project != 0 && ref.ModelID == 0 && ref.Seq == 0 && ref.Semver == "" && ref.Alias == ""
	byModel := ref.ID == 0 && ref.ModelID != 0 && exactlyOne(ref.Seq != 0, ref.Semver != "", ref.Alias != "")
	if !byID && !byModel {
		return fmt.Errorf("version ref %+v: set Project and ID, or ModelID and one of Seq, Semver, Alias: %w", ref, metadata.ErrInvalid)
	}
	return nil
}

// versionByRef resolves a ref that checkVersionRef accepted.
func versionByRef(tx *bolt.Tx, ref metadata.VersionRef) (*metadata.Version, error) {
	modelID, seq := ref.ModelID, ref.Seq
	switch {
	case ref.ID != 0:
		k := pairKey(uint64(ref.Project), uint64(ref.ID))
		val := bk(tx, bucketVersionsByID).Get(k)
		if val == nil {
			return nil, fmt.Errorf("version id %d in project %d: %w", ref.ID, ref.Project, metadata.ErrNotFound)
		}
		if len(val) != 16 {
			return nil, fmt.Errorf("versions_by_id %x: %w", k, ErrCorrupt)
		}
		modelID, seq = decodeU64(val), int64(decodeU64(val[8:]))
	case ref.Semver != "":
		u, ok, err := getU64(bk(tx, bucketVersionsBySemver), idStrKey(modelID, ref.Semver))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("model %d version %q: %w", modelID, ref.Semver, metadata.ErrNotFound)
		}
		seq = int64(u)
	case ref.Alias != "":
		var err error
		if seq, err = aliasSeq(tx, modelID, ref.Alias); err != nil {
			return nil, err
		}
	}
	v, err := getVersion(tx, modelID, seq)
	if err != nil {
		if ref.Seq == 0 { // reached through an index
			return nil, indexPointsNowhere(err)
		}
		return nil, err
	}
	if ref.Project != 0 && v.Project != ref.Project {
		return nil, fmt.Errorf("model %d in project %d: %w", modelID, ref.Project, metadata.ErrNotFound)
	}
	return v, nil
}

func getVersion(tx *bolt.Tx, modelID uint64, seq int64) (*metadata.Version, error) {
	var v metadata.Version
	ok, err := getJSON(bk(tx, bucketVersions), pairKey(modelID, uint64(seq)), &v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("model %d version %d: %w", modelID, seq, metadata.ErrNotFound)
	}
	return &v, nil
}

// ListVersions returns a model's versions in Seq order with the next page's token ("" at the end).
// ErrNotFound for an unknown model; ErrInvalid for a token of another listing.
func (s *Store) ListVersions(ctx context.Context, modelID uint64, p metadata.Page) ([]*metadata.Version, string, error) {
	pg, err := newPager(p, "versions", idKey(modelID))
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.Version
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getModel(tx, modelID); err != nil {
			return err
		}
		next, err = pg.forward(bk(tx, bucketVersions).Cursor(), func(k, data []byte) error {
			var v metadata.Version
			if err := json.Unmarshal(data, &v); err != nil {
				return fmt.Errorf("version %x: %v: %w", k, err, ErrCorrupt)
			}
			out = append(out, &v)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// VersionsBackedBy returns the versions backed by owner, through the versions_by_candidate index.
func (s *Store) VersionsBackedBy(ctx context.Context, owner uint64) ([]*metadata.Version, error) {
	var out []*metadata.Version
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		out, err = versionsBackedBy(tx, owner)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// versionsBackedBy is VersionsBackedBy inside tx.
func versionsBackedBy(tx *bolt.Tx, owner uint64) ([]*metadata.Version, error) {
	out := []*metadata.Version{}
	prefix := idKey(owner)
	c := bk(tx, bucketVersionsByCand).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != 24 {
			return nil, fmt.Errorf("versions_by_candidate %x: %w", k, ErrCorrupt)
		}
		v, err := getVersion(tx, decodeU64(k[8:16]), int64(decodeU64(k[16:])))
		if err != nil {
			return nil, indexPointsNowhere(err)
		}
		out = append(out, v)
	}
	return out, nil
}

// EnsurePackageVersion resolves <modelName>/<semver> in project in one transaction, creating what is
// missing: the model (Name and DisplayName = modelName, InRegistry), a backing candidate and the version.
// The candidate is named after the semver and created FINISHED with StartTime = EndTime = now: a package
// upload is not a training run, and a RUNNING run would sit in MLflow's UI forever. It gets candidateID
// when that is not 0 (an id from ReserveOwnerID), else the sequence's next. Created reports whether the
// version was created. Concurrent calls for the same version create it once.
// ErrInvalid for a bad name or semver, or a candidateID never reserved; ErrExists for a candidateID
// already in use; ErrNotFound for an unknown project; ErrConflict if the model exists but is deleted
// (reviving it or shadowing its name silently would surprise its owner), or if modelName is already the
// display name of another model.
func (s *Store) EnsurePackageVersion(ctx context.Context, project int64, modelName, semverStr string, candidateID uint64) (*metadata.PackageVersion, error) {
	if err := validateModelName(modelName); err != nil {
		return nil, err
	}
	if _, err := parseSemver(semverStr); err != nil {
		return nil, err
	}
	now := s.now()
	var pv *metadata.PackageVersion
	err := s.update(ctx, func(tx *bolt.Tx) error {
		pv = &metadata.PackageVersion{}
		m, err := modelByRef(tx, metadata.ModelRef{Project: project, Name: modelName})
		switch {
		case errors.Is(err, metadata.ErrNotFound):
			m = &metadata.Model{Project: project, Name: modelName, DisplayName: modelName, InRegistry: true}
			if err := createModel(tx, m, now, false); errors.Is(err, metadata.ErrExists) {
				return fmt.Errorf("package %q: another model has this display name: %w", modelName, metadata.ErrConflict)
			} else if err != nil {
				return err
			}
		case err != nil:
			return err
		case m.Lifecycle == metadata.Deleted:
			return fmt.Errorf("package %q: model is deleted: %w", modelName, metadata.ErrConflict)
		}
		seq, ok, err := getU64(bk(tx, bucketVersionsBySemver), idStrKey(m.ID, semverStr))
		if err != nil {
			return err
		}
		if ok {
			if pv.Version, err = getVersion(tx, m.ID, int64(seq)); err != nil {
				return indexPointsNowhere(err)
			}
			if pv.Version.CandidateID != 0 { // nil for a version backed by a logged model
				if pv.Candidate, err = getCandidate(tx, pv.Version.CandidateID); err != nil {
					return indexPointsNowhere(err)
				}
			}
			pv.Model = m
			return nil
		}
		ms := now.UnixMilli()
		c := &metadata.Candidate{Project: m.Project, ModelID: m.ID, Name: semverStr, Status: metadata.Finished, StartTime: ms, EndTime: ms}
		if err := createCandidate(tx, c, now, candidateID); err != nil {
			return err
		}
		v := &metadata.Version{ModelID: m.ID, Semver: semverStr, CandidateID: c.ID}
		if err := createVersion(tx, v, now); err != nil {
			return err
		}
		if m, err = getModel(tx, m.ID); err != nil { // createVersion may have set InRegistry
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

// UpdateVersion applies u to the version selected by ref (see Version) in one transaction and returns it
// as stored, with UpdatedAt set to now. DeleteTags (absent keys ignored) is applied before SetTags.
// ErrInvalid for a bad ref, description, stage (one of metadata.VersionStages) or tag; ErrAliasNotFound
// for an unknown ref.Alias; ErrNotFound otherwise.
func (s *Store) UpdateVersion(ctx context.Context, ref metadata.VersionRef, u metadata.VersionUpdate) (*metadata.Version, error) {
	if err := checkVersionRef(ref); err != nil {
		return nil, err
	}
	if u.Description != nil && len(*u.Description) > metadata.MaxDescriptionLen {
		return nil, fmt.Errorf("version description longer than %d bytes: %w", metadata.MaxDescriptionLen, metadata.ErrInvalid)
	}
	if u.Stage != nil && !slices.Contains(metadata.VersionStages, *u.Stage) {
		return nil, fmt.Errorf("version stage %.60q: want one of %v: %w", *u.Stage, metadata.VersionStages, metadata.ErrInvalid)
	}
	if err := validateTagUpdate(u.SetTags, u.DeleteTags); err != nil {
		return nil, err
	}
	now := s.now()
	var out *metadata.Version
	err := s.update(ctx, func(tx *bolt.Tx) error {
		v, err := versionByRef(tx, ref)
		if err != nil {
			return err
		}
		if u.Description != nil {
			v.Description = *u.Description
		}
		if u.Stage != nil {
			v.Stage = *u.Stage
		}
		v.Tags = updateTags(v.Tags, u.SetTags, u.DeleteTags)
		v.UpdatedAt = now
		if err := putJSON(bk(tx, bucketVersions), pairKey(v.ModelID, uint64(v.Seq)), v); err != nil {
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

// DeleteVersion removes the version selected by ref (see Version), its four index entries and every alias
// pointing at it, in one transaction. The backing candidate and its files stay; the counters do not move
// back, so the Seq and ID are never issued again. The model keeps its InRegistry flag.
// ErrInvalid for a bad ref; ErrAliasNotFound for an unknown ref.Alias; ErrNotFound otherwise.
func (s *Store) DeleteVersion(ctx context.Context, ref metadata.VersionRef) error {
	if err := checkVersionRef(ref); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		v, err := versionByRef(tx, ref)
		if err != nil {
			return err
		}
		sv, err := parseSemver(v.Semver)
		if err != nil {
			return fmt.Errorf("version %d/%d: %v: %w", v.ModelID, v.Seq, err, ErrCorrupt)
		}
		dels := []struct{ b, k []byte }{
			{bucketVersions, pairKey(v.ModelID, uint64(v.Seq))},
			{bucketVersionsByID, pairKey(uint64(v.Project), uint64(v.ID))},
			{bucketVersionsBySemver, idStrKey(v.ModelID, v.Semver)},
			{bucketVersionsOrder, versionOrderKey(v.ModelID, sv, v.Seq)},
			{bucketVersionsByCand, versionByCandidateKey(v.Owner(), v.ModelID, v.Seq)},
		}
		for _, d := range dels {
			if err := bk(tx, d.b).Delete(d.k); err != nil {
				return err
			}
		}
		return deleteAliasesOf(tx, v.ModelID, v.Seq)
	})
}
