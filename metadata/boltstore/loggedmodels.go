package boltstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// linkedPoint is the value of a metric point logged with a logged model or a dataset: in metrics (the
// run's history) it names the logged model and dataset; in lm_metrics it names the run and dataset.
type linkedPoint struct {
	LoggedModel   metadata.LMID `json:"m,omitzero"`
	DatasetName   string        `json:"dn,omitempty"`
	DatasetDigest string        `json:"dd,omitempty"`
	Run           metadata.EID  `json:"r,omitzero"`
}

func (l linkedPoint) isZero() bool { return l == linkedPoint{} }

// encodeLinked is the stored value of a point: empty for a plain one.
func encodeLinked(l linkedPoint) ([]byte, error) {
	if l.isZero() {
		return nil, nil
	}
	return json.Marshal(l)
}

func decodeLinked(k, v []byte) (linkedPoint, error) {
	var l linkedPoint
	if len(v) == 0 {
		return l, nil
	}
	if err := json.Unmarshal(v, &l); err != nil {
		return l, fmt.Errorf("metric point %x: %v: %w", k, err, ErrCorrupt)
	}
	return l, nil
}

// CreateLoggedModel implements metadata.Store. A preset CreatedAt is also the time logged_models_by_model
// orders the logged model by, so that an imported model sorts among the others as it did at its source.
func (s *Store) CreateLoggedModel(ctx context.Context, lm *metadata.LoggedModel) error {
	if lm == nil {
		return fmt.Errorf("nil logged model: %w", metadata.ErrInvalid)
	}
	out := *lm
	out.Params, out.Tags = sortedParams(lm.Params), sortedTags(lm.Tags)
	if err := validateLoggedModel(&out); err != nil {
		return err
	}
	now := s.now()
	in := out // every run starts from the caller's logged model: one run's drawn LMID is no preset for the next
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
		if out.SourceRunID != 0 {
			c, err := getCandidate(tx, out.SourceRunID)
			if err != nil {
				return fmt.Errorf("source run: %w", err)
			}
			if c.Project != m.Project {
				return fmt.Errorf("source run %d in project %d: %w", c.ID, c.Project, metadata.ErrNotFound)
			}
			out.SourceRun = c.EID
		} else {
			out.SourceRun = metadata.EID{}
		}
		// Candidates and logged models draw their ids from one sequence: both own files, and a file
		// row's owner id must name one of them only.
		id, err := bk(tx, bucketCandidates).NextSequence()
		if err != nil {
			return err
		}
		byLMID := bk(tx, bucketLoggedModelsByLMID)
		if !out.LMID.IsZero() {
			if byLMID.Get(out.LMID[:]) != nil {
				return fmt.Errorf("logged model %s: %w", out.LMID, metadata.ErrExists)
			}
		} else {
			for { // 128 random bits collide in practice never; the loop makes the unique index a certainty
				rand.Read(out.LMID[:])
				if !out.LMID.IsZero() && byLMID.Get(out.LMID[:]) == nil {
					break
				}
			}
		}
		out.ID, out.CreatedAt, out.UpdatedAt = id, presetTime(out.CreatedAt, now), presetTime(out.UpdatedAt, now)
		if err := putJSON(bk(tx, bucketLoggedModels), idKey(id), &out); err != nil {
			return err
		}
		if err := byLMID.Put(out.LMID[:], idKey(id)); err != nil {
			return err
		}
		return bk(tx, bucketLoggedModelsByMdl).Put(candidateByModelKey(out.ModelID, out.CreatedAt.UnixMilli(), id), nil)
	})
	if err != nil {
		return err
	}
	*lm = out
	return nil
}

func validateLoggedModel(lm *metadata.LoggedModel) error {
	switch {
	case lm.Name == "" || len(lm.Name) > metadata.MaxLoggedModelNameLen:
		return fmt.Errorf("logged model name %.60q: must be 1–%d bytes: %w", lm.Name, metadata.MaxLoggedModelNameLen, metadata.ErrInvalid)
	case len(lm.ModelType) > metadata.MaxModelTypeLen:
		return fmt.Errorf("logged model type: longer than %d bytes: %w", metadata.MaxModelTypeLen, metadata.ErrInvalid)
	case lm.Status > metadata.LoggedModelFailed:
		return fmt.Errorf("logged model status %d: %w", lm.Status, metadata.ErrInvalid)
	case len(lm.StatusMessage) > metadata.MaxStatusMessageLen:
		return fmt.Errorf("logged model status message: longer than %d bytes: %w", metadata.MaxStatusMessageLen, metadata.ErrInvalid)
	}
	if err := validateParams(lm.Params); err != nil {
		return err
	}
	return validateTags(lm.Tags)
}

// sortedParams returns params sorted by key, the last of a key winning.
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

// sortedTags returns tags sorted by key, the last of a key winning.
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

func getLoggedModel(tx *bolt.Tx, id uint64) (*metadata.LoggedModel, error) {
	var lm metadata.LoggedModel
	found, err := getJSON(bk(tx, bucketLoggedModels), idKey(id), &lm)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("logged model %d: %w", id, metadata.ErrNotFound)
	}
	return &lm, nil
}

func loggedModelByLMID(tx *bolt.Tx, lmid metadata.LMID) (*metadata.LoggedModel, error) {
	id, ok, err := getU64(bk(tx, bucketLoggedModelsByLMID), lmid[:])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("logged model %s: %w", lmid, metadata.ErrNotFound)
	}
	lm, err := getLoggedModel(tx, id)
	if err != nil {
		return nil, indexPointsNowhere(err)
	}
	return lm, nil
}

// LoggedModel implements metadata.Store.
func (s *Store) LoggedModel(ctx context.Context, ref metadata.LoggedModelRef) (*metadata.LoggedModel, error) {
	if !exactlyOne(ref.ID != 0, !ref.LMID.IsZero()) {
		return nil, fmt.Errorf("logged model ref: set ID or LMID: %w", metadata.ErrInvalid)
	}
	var lm *metadata.LoggedModel
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		if ref.ID != 0 {
			lm, err = getLoggedModel(tx, ref.ID)
		} else {
			lm, err = loggedModelByLMID(tx, ref.LMID)
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

// UpdateLoggedModel implements metadata.Store.
func (s *Store) UpdateLoggedModel(ctx context.Context, id uint64, u metadata.LoggedModelUpdate) (*metadata.LoggedModel, error) {
	if u.Status != nil && *u.Status > metadata.LoggedModelFailed {
		return nil, fmt.Errorf("logged model status %d: %w", *u.Status, metadata.ErrInvalid)
	}
	if u.StatusMessage != nil && len(*u.StatusMessage) > metadata.MaxStatusMessageLen {
		return nil, fmt.Errorf("logged model status message: longer than %d bytes: %w", metadata.MaxStatusMessageLen, metadata.ErrInvalid)
	}
	if err := validateTags(u.SetTags); err != nil {
		return nil, err
	}
	if err := validateParams(u.Params); err != nil {
		return nil, err
	}
	var out *metadata.LoggedModel
	err := s.update(ctx, func(tx *bolt.Tx) error {
		lm, err := getLoggedModel(tx, id)
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
		lm.UpdatedAt = s.now()
		out = lm
		return putJSON(bk(tx, bucketLoggedModels), idKey(id), lm)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteLoggedModel implements metadata.Store.
func (s *Store) DeleteLoggedModel(ctx context.Context, id uint64) ([]*metadata.File, error) {
	var files []*metadata.File
	err := s.update(ctx, func(tx *bolt.Tx) error {
		files = nil // a run again (group commit) lists them anew
		lm, err := getLoggedModel(tx, id)
		if err != nil {
			return err
		}
		prefix := idKey(id)
		if k, _ := bk(tx, bucketVersionsByCand).Cursor().Seek(prefix); k != nil && hasPrefix(k, prefix) {
			return fmt.Errorf("logged model %s backs a model version; delete the version first: %w", lm.LMID, metadata.ErrConflict)
		}
		if err := deletePrefix(bk(tx, bucketFiles), prefix, func(_, v []byte) error {
			var f metadata.File
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("file row of logged model %d: %v: %w", id, err, ErrCorrupt)
			}
			files = append(files, &f)
			return nil
		}); err != nil {
			return err
		}
		rank := bk(tx, bucketLMsByMetric)
		if err := deletePrefix(bk(tx, bucketLMMetricsLatest), prefix, func(k, v []byte) error {
			latest, err := decodeLatest(string(k[8:]), v)
			if err != nil {
				return err
			}
			return rank.Delete(metricRankKey(lm.ModelID, latest, id))
		}); err != nil {
			return err
		}
		if err := deletePrefix(bk(tx, bucketLMMetrics), prefix, nil); err != nil {
			return err
		}
		if err := bk(tx, bucketLoggedModelsByLMID).Delete(lm.LMID[:]); err != nil {
			return err
		}
		if err := bk(tx, bucketLoggedModelsByMdl).Delete(candidateByModelKey(lm.ModelID, lm.CreatedAt.UnixMilli(), id)); err != nil {
			return err
		}
		return bk(tx, bucketLoggedModels).Delete(prefix)
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// deletePrefix deletes every key of b that starts with prefix, calling each (when not nil) on the key
// and value first. Keys are collected before deleting: bbolt cursors skip after a delete.
func deletePrefix(b *bolt.Bucket, prefix []byte, each func(k, v []byte) error) error {
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if each != nil {
			if err := each(k, v); err != nil {
				return err
			}
		}
		keys = append(keys, slices.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// SearchLoggedModels implements metadata.Store.
func (s *Store) SearchLoggedModels(ctx context.Context, q metadata.LoggedModelQuery) ([]*metadata.LoggedModel, string, error) {
	if len(q.ModelIDs) == 0 {
		return nil, "", fmt.Errorf("logged model search: no model: %w", metadata.ErrInvalid)
	}
	if q.OrderByMetric != nil {
		if err := validateMetricKey(q.OrderByMetric.Key); err != nil {
			return nil, "", err
		}
	}
	models := slices.Clone(q.ModelIDs)
	slices.Sort(models)
	models = slices.Compact(models)
	limit := q.Page.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	hash := searchHash(models, metadata.CandidateQuery{OrderByMetric: q.OrderByMetric}, "logged models")

	var out []*metadata.LoggedModel
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, id := range models {
			if _, err := getModel(tx, id); err != nil {
				return err
			}
		}
		var err error
		next, err = searchPage(tx, loggedModelIndexes, q.OrderByMetric, models, hash, q.Page.Token, limit,
			func(id uint64, inPage bool) (bool, error) {
				if !inPage {
					return true, nil
				}
				lm, err := getLoggedModel(tx, id)
				if err != nil {
					return false, indexPointsNowhere(err)
				}
				out = append(out, lm)
				return true, nil
			})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// LoggedModelMetrics implements metadata.Store.
func (s *Store) LoggedModelMetrics(ctx context.Context, id uint64) ([]metadata.Metric, error) {
	var out []metadata.Metric
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		out, err = loggedModelMetrics(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// loggedModelMetrics is LoggedModelMetrics inside tx.
func loggedModelMetrics(tx *bolt.Tx, id uint64) ([]metadata.Metric, error) {
	lm, err := getLoggedModel(tx, id)
	if err != nil {
		return nil, err
	}
	out := []metadata.Metric{}
	prefix := idKey(id)
	c := bk(tx, bucketLMMetrics).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		m, err := decodeMetricKey(k[8:])
		if err != nil {
			return nil, err
		}
		l, err := decodeLinked(k, v)
		if err != nil {
			return nil, err
		}
		m.LoggedModel, m.Run, m.DatasetName, m.DatasetDigest = lm.LMID, l.Run, l.DatasetName, l.DatasetDigest
		out = append(out, m)
	}
	return out, nil
}

// decodeMetricKey reads str0(key) | i64(step) | i64(ts) | f64b(value), the part of a history key after
// its owner's id.
func decodeMetricKey(b []byte) (metadata.Metric, error) {
	i := strings.IndexByte(string(b), 0)
	if i < 0 || len(b)-i-1 != 24 {
		return metadata.Metric{}, fmt.Errorf("metric point %x: %w", b, ErrCorrupt)
	}
	rest := b[i+1:]
	return metadata.Metric{Key: string(b[:i]), Step: decodeI64(rest), Timestamp: decodeI64(rest[8:]), Value: decodeF64b(rest[16:])}, nil
}

// logLoggedModelMetric adds a point of candidate c to logged model lmid: to its metrics, its latest
// points and its metric order. The logged model must be of c's project.
func logLoggedModelMetric(tx *bolt.Tx, c *metadata.Candidate, m metadata.Metric) error {
	lm, err := loggedModelByLMID(tx, m.LoggedModel)
	if err != nil {
		return err
	}
	if lm.Project != c.Project {
		return fmt.Errorf("logged model %s: %w", m.LoggedModel, metadata.ErrNotFound)
	}
	point := fromMetric(m)
	v, err := encodeLinked(linkedPoint{Run: c.EID, DatasetName: m.DatasetName, DatasetDigest: m.DatasetDigest})
	if err != nil {
		return err
	}
	if err := bk(tx, bucketLMMetrics).Put(metricKey(lm.ID, point), v); err != nil {
		return err
	}
	return putLatest(tx, bucketLMMetricsLatest, bucketLMsByMetric, lm.ModelID, lm.ID, point)
}

// ownerProject returns the project of a file owner: a candidate or a logged model. ErrNotFound when id
// names neither.
func ownerProject(tx *bolt.Tx, id uint64) (int64, error) {
	if c, err := getCandidate(tx, id); err == nil {
		return c.Project, nil
	}
	lm, err := getLoggedModel(tx, id)
	if err != nil {
		return 0, fmt.Errorf("file owner %d (no candidate or logged model): %w", id, metadata.ErrNotFound)
	}
	return lm.Project, nil
}
