package boltstore

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// latestMetric is one metric point; metrics_latest stores the greatest per (candidate, key).
type latestMetric struct {
	key   string
	step  int64
	ts    int64
	value float64
}

func fromMetric(m metadata.Metric) latestMetric {
	return latestMetric{key: m.Key, step: m.Step, ts: m.Timestamp, value: m.Value}
}

func (m latestMetric) metric() metadata.Metric {
	return metadata.Metric{Key: m.key, Value: m.value, Timestamp: m.ts, Step: m.step}
}

// greater is MLflow's latest-metric rule: the higher step, then the newer timestamp, then the larger value,
// with NaN below every number.
func (m latestMetric) greater(o latestMetric) bool {
	switch {
	case m.step != o.step:
		return m.step > o.step
	case m.ts != o.ts:
		return m.ts > o.ts
	case math.IsNaN(m.value):
		return false
	case math.IsNaN(o.value):
		return true
	}
	return m.value > o.value
}

func (m latestMetric) encode() []byte {
	return appendF64b(appendI64(appendI64(make([]byte, 0, 24), m.step), m.ts), m.value)
}

func decodeLatest(key string, v []byte) (latestMetric, error) {
	if len(v) != 24 {
		return latestMetric{}, fmt.Errorf("metrics_latest %q: %d bytes, want 24: %w", key, len(v), ErrCorrupt)
	}
	return latestMetric{key: key, step: decodeI64(v), ts: decodeI64(v[8:]), value: decodeF64b(v[16:])}, nil
}

// LogBatch writes params, metrics and tags of a candidate in one transaction, all or nothing. A param logged
// again with the same value is a no-op, with another value ErrInvalid; an exact duplicate metric point
// (key, step, timestamp, value; all NaNs equal) is a no-op; a tag replaces the value of its key. The latest
// point of each metric (see RunData) and the metric order index move in the same transaction.
// ErrInvalid for empty or over-long keys and values (params 250/250, metric keys 250 without NUL, tags
// 250/5000); ErrNotFound for an unknown candidate. Logging to a deleted candidate is the caller's decision.
func (s *Store) LogBatch(ctx context.Context, candidateID uint64, params []metadata.Param, metrics []metadata.Metric, tags []metadata.Tag) error {
	if err := validateParams(params); err != nil {
		return err
	}
	for _, m := range metrics {
		if err := validateMetricKey(m.Key); err != nil {
			return err
		}
		if len(m.DatasetName) > metadata.MaxDatasetNameLen || len(m.DatasetDigest) > metadata.MaxDatasetDigestLen {
			return fmt.Errorf("metric %q: dataset name or digest too long (%d, %d bytes): %w",
				m.Key, metadata.MaxDatasetNameLen, metadata.MaxDatasetDigestLen, metadata.ErrInvalid)
		}
	}
	if err := validateTags(tags); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		c, err := getCandidate(tx, candidateID)
		if err != nil {
			return err
		}
		pb := bk(tx, bucketParams)
		for _, p := range params {
			k := idStrKey(candidateID, p.Key)
			if old, ok := lookup(pb, k); ok {
				if string(old) != p.Value {
					return fmt.Errorf("param %q already logged with value %q, not %q; params are immutable: %w",
						p.Key, old, p.Value, metadata.ErrInvalid)
				}
				continue
			}
			if err := pb.Put(k, []byte(p.Value)); err != nil {
				return err
			}
		}
		for _, m := range metrics {
			if err := logMetric(tx, c, m); err != nil {
				return err
			}
		}
		return putTags(tx, candidateID, tags)
	})
}

func validateParams(params []metadata.Param) error {
	seen := make(map[string]string, len(params))
	for _, p := range params {
		if p.Key == "" || len(p.Key) > metadata.MaxParamKeyLen {
			return fmt.Errorf("param key %.60q: must be 1–%d bytes: %w", p.Key, metadata.MaxParamKeyLen, metadata.ErrInvalid)
		}
		if len(p.Value) > metadata.MaxParamValueLen {
			return fmt.Errorf("param %q: value longer than %d bytes: %w", p.Key, metadata.MaxParamValueLen, metadata.ErrInvalid)
		}
		if v, ok := seen[p.Key]; ok && v != p.Value {
			return fmt.Errorf("param %q given twice with different values: %w", p.Key, metadata.ErrInvalid)
		}
		seen[p.Key] = p.Value
	}
	return nil
}

// validateMetricKey also refuses NUL, the terminator of the key inside history and order keys.
func validateMetricKey(k string) error {
	if k == "" || len(k) > metadata.MaxMetricKeyLen || strings.IndexByte(k, 0) >= 0 {
		return fmt.Errorf("metric key %.60q: must be 1–%d bytes without NUL: %w", k, metadata.MaxMetricKeyLen, metadata.ErrInvalid)
	}
	return nil
}

// logMetric adds a point to the candidate's history (with its links to a logged model and a dataset, if
// any) and, if it beats the stored latest point, replaces that and its entry in candidates_by_metric. A
// point with a logged model becomes one of that model's metrics too.
func logMetric(tx *bolt.Tx, c *metadata.Candidate, m metadata.Metric) error {
	point := fromMetric(m)
	v, err := encodeLinked(linkedPoint{LoggedModel: m.LoggedModel, DatasetName: m.DatasetName, DatasetDigest: m.DatasetDigest})
	if err != nil {
		return err
	}
	if err := bk(tx, bucketMetrics).Put(metricKey(c.ID, point), v); err != nil {
		return err
	}
	if err := putLatest(tx, bucketMetricsLatest, bucketCandidatesByMetric, c.ModelID, c.ID, point); err != nil {
		return err
	}
	if !m.LoggedModel.IsZero() {
		return logLoggedModelMetric(tx, c, m)
	}
	return nil
}

// putLatest makes m the latest point of its key for id (a candidate or a logged model of model modelID)
// if it beats the stored one, moving id's entry in the rank index with it.
func putLatest(tx *bolt.Tx, latestBucket, rankBucket []byte, modelID, id uint64, m latestMetric) error {
	lb, rank := bk(tx, latestBucket), bk(tx, rankBucket)
	lk := idStrKey(id, m.key)
	if v := lb.Get(lk); v != nil {
		old, err := decodeLatest(m.key, v)
		if err != nil {
			return err
		}
		if !m.greater(old) {
			return nil
		}
		if err := rank.Delete(metricRankKey(modelID, old, id)); err != nil {
			return err
		}
	}
	if err := lb.Put(lk, m.encode()); err != nil {
		return err
	}
	return rank.Put(metricRankKey(modelID, m, id), nil)
}

func putTags(tx *bolt.Tx, candidateID uint64, tags []metadata.Tag) error {
	b := bk(tx, bucketTags)
	for _, t := range tags {
		if err := b.Put(idStrKey(candidateID, t.Key), []byte(t.Value)); err != nil {
			return err
		}
	}
	return nil
}

// RunData returns the candidate's params, tags and latest metric points, each sorted by key (byte order).
// The slices are empty, not nil, when there is nothing. ErrNotFound for an unknown candidate.
func (s *Store) RunData(ctx context.Context, candidateID uint64) (*metadata.RunData, error) {
	var rd *metadata.RunData
	err := s.view(ctx, func(tx *bolt.Tx) (err error) {
		rd, err = runData(tx, candidateID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rd, nil
}

// runData is RunData inside tx.
func runData(tx *bolt.Tx, candidateID uint64) (rd *metadata.RunData, err error) {
	if _, err := getCandidate(tx, candidateID); err != nil {
		return nil, err
	}
	rd = &metadata.RunData{Params: []metadata.Param{}, Tags: []metadata.Tag{}, Metrics: []metadata.Metric{}}
	prefix := idKey(candidateID)
	c := bk(tx, bucketParams).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		rd.Params = append(rd.Params, metadata.Param{Key: string(k[8:]), Value: string(v)})
	}
	c = bk(tx, bucketTags).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		rd.Tags = append(rd.Tags, metadata.Tag{Key: string(k[8:]), Value: string(v)})
	}
	c = bk(tx, bucketMetricsLatest).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		m, err := decodeLatest(string(k[8:]), v)
		if err != nil {
			return nil, err
		}
		rd.Metrics = append(rd.Metrics, m.metric())
	}
	if rd.IO, err = readRunIO(tx, candidateID); err != nil {
		return nil, err
	}
	return rd, nil
}

// MetricHistory returns the points of one metric ordered by step, then timestamp (then value bits, which
// only makes the order total), with the next page's token ("" at the end). An unknown key is an empty
// history. ErrNotFound for an unknown candidate; ErrInvalid for a bad key or a token of another listing.
func (s *Store) MetricHistory(ctx context.Context, candidateID uint64, key string, p metadata.Page) ([]metadata.Metric, string, error) {
	if err := validateMetricKey(key); err != nil {
		return nil, "", err
	}
	prefix := metricPrefix(candidateID, key)
	pg, err := newPager(p, "metrics", prefix)
	if err != nil {
		return nil, "", err
	}
	out := []metadata.Metric{}
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := getCandidate(tx, candidateID); err != nil {
			return err
		}
		next, err = pg.forward(bk(tx, bucketMetrics).Cursor(), func(k, v []byte) error {
			rest := k[len(prefix):]
			if len(rest) != 24 {
				return fmt.Errorf("metrics %x: %w", k, ErrCorrupt)
			}
			l, err := decodeLinked(k, v)
			if err != nil {
				return err
			}
			out = append(out, metadata.Metric{Key: key, Step: decodeI64(rest), Timestamp: decodeI64(rest[8:]), Value: decodeF64b(rest[16:]),
				LoggedModel: l.LoggedModel, DatasetName: l.DatasetName, DatasetDigest: l.DatasetDigest})
			return nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// DeleteTag removes one tag of a candidate. ErrNotFound for an unknown candidate or a key the candidate
// has no tag for.
func (s *Store) DeleteTag(ctx context.Context, candidateID uint64, key string) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getCandidate(tx, candidateID); err != nil {
			return err
		}
		b, k := bk(tx, bucketTags), idStrKey(candidateID, key)
		if _, ok := lookup(b, k); !ok {
			return fmt.Errorf("candidate %d tag %.60q: %w", candidateID, key, metadata.ErrNotFound)
		}
		return b.Delete(k)
	})
}
