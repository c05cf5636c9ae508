package boltstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// searchPhase is one index range that SearchCandidates walks for every model of the query, merging the
// models by the key suffix after the per-model prefix. Results come phase after phase.
type searchPhase struct {
	bucket   []byte
	prefix   func(modelID uint64) []byte
	backward bool
	// without skips candidates that have the ordering metric: the "without" tail after the ranked phases.
	without bool
}

// searchIndexes names the indexes an ordered search over one kind of record walks: candidates or
// logged models.
type searchIndexes struct {
	byModel  []byte // u64(modelID) | i64(time) | u64(id): the default order, newest first
	byMetric []byte // u64(modelID) | str0(key) | class | f64s(latest) | u64(id)
	latest   []byte // u64(id) | key → latest point: who has the metric, for the "without" tail
}

var (
	candidateIndexes   = searchIndexes{byModel: bucketCandidatesByModel, byMetric: bucketCandidatesByMetric, latest: bucketMetricsLatest}
	loggedModelIndexes = searchIndexes{byModel: bucketLoggedModelsByMdl, byMetric: bucketLMsByMetric, latest: bucketLMMetricsLatest}
)

// searchPhases returns the phases of an ordering:
//
//	default:    byModel backwards (newest first)
//	metric asc: byMetric forwards (numbers ascending, then class NaN), then the without tail
//	metric desc: class number backwards, class NaN backwards, then the without tail
func (ix searchIndexes) searchPhases(order *metadata.MetricOrder) []searchPhase {
	byModel := func(without bool) searchPhase {
		return searchPhase{bucket: ix.byModel, prefix: idKey, backward: true, without: without}
	}
	if order == nil {
		return []searchPhase{byModel(false)}
	}
	ranked := func(class ...byte) func(uint64) []byte {
		return func(m uint64) []byte { return append(metricRankPrefix(m, order.Key), class...) }
	}
	if !order.Desc {
		return []searchPhase{{bucket: ix.byMetric, prefix: ranked()}, byModel(true)}
	}
	return []searchPhase{
		{bucket: ix.byMetric, prefix: ranked(classNumber), backward: true},
		{bucket: ix.byMetric, prefix: ranked(classNaN), backward: true},
		byModel(true),
	}
}

// searchPage walks the phases of an ordered search over models from the position of token and passes
// the id of every record it meets to accept, which reports whether the record matches (an error stops the
// walk) and, when inPage, keeps it. After limit matches it looks for one more match (inPage false) and
// returns the token of the next page only if there is one: "" at the end. hash identifies the query; a
// token of another is ErrInvalid.
func searchPage(tx *bolt.Tx, ix searchIndexes, order *metadata.MetricOrder, models []uint64, hash [hashLen]byte,
	token string, limit int, accept func(id uint64, inPage bool) (bool, error)) (string, error) {
	phases := ix.searchPhases(order)
	startPhase, after, err := decodeSearchToken(token, hash, len(phases))
	if err != nil {
		return "", err
	}
	latest := bk(tx, ix.latest)
	accepted := 0
	var lastPhase int
	var lastSuffix []byte
	for pi := startPhase; pi < len(phases); pi++ {
		ph := phases[pi]
		var from []byte
		if pi == startPhase {
			from = after
		}
		m := newMerge(tx, ph, models, from)
		for {
			suffix, k, ok := m.next()
			if !ok {
				break
			}
			id := decodeU64(k[len(k)-8:])
			if ph.without && latest.Get(idStrKey(id, order.Key)) != nil {
				continue
			}
			ok, err := accept(id, accepted < limit)
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			if accepted == limit { // one more match exists: this page ends at the previous one
				return encodeSearchToken(hash, lastPhase, lastSuffix), nil
			}
			accepted++
			lastPhase, lastSuffix = pi, suffix
		}
	}
	return "", nil
}

// SearchCandidates returns the candidates of q.ModelIDs whose lifecycle q.View admits, with the next
// page's token ("" at the end). Without q.OrderByMetric the order is newest StartTime first (ties: newest
// ID first) across all the models. With it, candidates are ordered by the latest value of the metric:
// ascending numbers (descending with Desc; equal values by ID in the same direction), then those whose
// latest value is NaN (by ID, same direction), then those without the metric, newest first. Tokens are keyset positions, so a listing stays correct while
// candidates are added. ErrInvalid for an empty q.ModelIDs, a bad metric key or view, or a token of
// another query; ErrNotFound for an unknown model.
func (s *Store) SearchCandidates(ctx context.Context, q metadata.CandidateQuery) ([]*metadata.Candidate, string, error) {
	if len(q.ModelIDs) == 0 {
		return nil, "", fmt.Errorf("candidate search: no model: %w", metadata.ErrInvalid)
	}
	if q.View > metadata.AllLifecycles {
		return nil, "", fmt.Errorf("candidate search: view type %d: %w", q.View, metadata.ErrInvalid)
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

	var out []*metadata.Candidate
	var next string
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, id := range models {
			if _, err := getModel(tx, id); err != nil {
				return err
			}
		}
		var err error
		next, err = searchPage(tx, candidateIndexes, q.OrderByMetric, models, searchHash(models, q, "candidates"), q.Page.Token, limit,
			func(id uint64, inPage bool) (bool, error) {
				c, err := getCandidate(tx, id)
				if err != nil {
					return false, indexPointsNowhere(err)
				}
				if !q.View.Admits(c.Lifecycle) {
					return false, nil
				}
				if inPage {
					out = append(out, c)
				}
				return true, nil
			})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// merge walks one phase's range of every model at once, yielding keys in suffix order (descending for a
// backward phase).
type merge struct {
	backward bool
	heads    []mergeHead
}

type mergeHead struct {
	c      *bolt.Cursor
	prefix []byte
	k      []byte // current key; nil when the model's range is exhausted
}

// newMerge positions one cursor per model strictly after (backward: before) prefix|after, or at the start
// of the range when after is nil.
func newMerge(tx *bolt.Tx, ph searchPhase, models []uint64, after []byte) *merge {
	m := &merge{backward: ph.backward}
	for _, id := range models {
		h := mergeHead{c: bk(tx, ph.bucket).Cursor(), prefix: ph.prefix(id)}
		var k []byte
		switch {
		case !ph.backward && after == nil:
			k, _ = h.c.Seek(h.prefix)
		case !ph.backward:
			start := append(slices.Clone(h.prefix), after...)
			if k, _ = h.c.Seek(start); k != nil && bytes.Equal(k, start) {
				k, _ = h.c.Next()
			}
		default:
			start := prefixEnd(h.prefix)
			if after != nil {
				start = append(slices.Clone(h.prefix), after...)
			}
			if start == nil || seekKey(h.c, start) == nil {
				k, _ = h.c.Last()
			} else {
				k, _ = h.c.Prev()
			}
		}
		h.k = h.valid(k)
		m.heads = append(m.heads, h)
	}
	return m
}

func (h *mergeHead) valid(k []byte) []byte {
	if k == nil || !hasPrefix(k, h.prefix) || len(k) < len(h.prefix)+8 {
		return nil
	}
	return k
}

// next returns the next key in merge order and its suffix. Both are only valid until the following call.
func (m *merge) next() (suffix, k []byte, ok bool) {
	best := -1
	for i, h := range m.heads {
		if h.k == nil {
			continue
		}
		if best < 0 {
			best = i
			continue
		}
		cmp := bytes.Compare(h.k[len(h.prefix):], m.heads[best].k[len(m.heads[best].prefix):])
		if (!m.backward && cmp < 0) || (m.backward && cmp > 0) {
			best = i
		}
	}
	if best < 0 {
		return nil, nil, false
	}
	h := &m.heads[best]
	k = h.k
	suffix = slices.Clone(k[len(h.prefix):])
	if m.backward {
		nk, _ := h.c.Prev()
		h.k = h.valid(nk)
	} else {
		nk, _ := h.c.Next()
		h.k = h.valid(nk)
	}
	return suffix, k, true
}

// A search token is base64url(queryHash[8] | phase | suffix): the position of the last candidate returned.
func searchHash(models []uint64, q metadata.CandidateQuery, kind string) [hashLen]byte {
	b := appendStr0([]byte("search\x00"), kind)
	for _, id := range models {
		b = appendU64(b, id)
	}
	b = append(b, byte(q.View))
	if o := q.OrderByMetric; o != nil {
		b = appendStr0(append(b, 'm'), o.Key)
		if o.Desc {
			b = append(b, 'd')
		}
	}
	sum := sha256.Sum256(b)
	var h [hashLen]byte
	copy(h[:], sum[:])
	return h
}

func encodeSearchToken(hash [hashLen]byte, phase int, suffix []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(append(hash[:], byte(phase)), suffix...))
}

func decodeSearchToken(token string, hash [hashLen]byte, phases int) (phase int, after []byte, err error) {
	if token == "" {
		return 0, nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) < hashLen+1+8 || !bytes.Equal(raw[:hashLen], hash[:]) || int(raw[hashLen]) >= phases {
		return 0, nil, fmt.Errorf("page token %.40q does not belong to this search: %w", token, metadata.ErrInvalid)
	}
	return int(raw[hashLen]), raw[hashLen+1:], nil
}
