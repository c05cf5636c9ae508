package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

var _ metadata.Exporter = (*Store)(nil)

// Export implements metadata.Exporter. It walks the buckets in one read transaction, records first,
// indexes never (they are derived, and the target builds its own), so a long export delays writers that
// need to grow the file: run it on a stopped server (`mlgate metadata migrate` holds the file lock).
// Errors wrap ErrCorrupt for undecodable data; fn's error is returned as is.
func (s *Store) Export(ctx context.Context, fn func(metadata.Record) error) error {
	return s.view(ctx, func(tx *bolt.Tx) error {
		e := &exporter{ctx: ctx, tx: tx, fn: fn}
		for _, step := range []func() error{
			e.settings, e.projects, e.models, e.candidates, e.candidateTags, e.params, e.metrics, e.loggedModels,
			e.lmMetrics, e.datasets, e.datasetContexts, e.runDatasets, e.runModelInputs, e.runModelOutputs,
			e.versions, e.aliases, e.files, e.tokens, e.imports, e.counters,
		} {
			if err := step(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Generation returns the id of the last committed write transaction: it changes with every write, so a
// tool that copies the store can tell whether it changed between two of its runs.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	var id int
	err := s.view(ctx, func(tx *bolt.Tx) error {
		id = tx.ID()
		return nil
	})
	return uint64(id), err
}

type exporter struct {
	ctx context.Context
	tx  *bolt.Tx
	fn  func(metadata.Record) error
	n   int
}

// emit passes r on, checking the context every so often: a walk of millions of points must stop promptly.
func (e *exporter) emit(r metadata.Record) error {
	if e.n++; e.n%1024 == 0 {
		if err := e.ctx.Err(); err != nil {
			return err
		}
	}
	return e.fn(r)
}

// each walks a bucket in key order.
func (e *exporter) each(name []byte, fn func(k, v []byte) error) error {
	c := bk(e.tx, name).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// eachJSON walks a bucket of JSON records, decoding each into a fresh T.
func eachJSON[T any](e *exporter, name []byte, wrap func(*T) metadata.Record) error {
	return e.each(name, func(k, v []byte) error {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			return fmt.Errorf("%s %x: %v: %w", name, k, err, ErrCorrupt)
		}
		return e.emit(wrap(rec))
	})
}

func (e *exporter) settings() error {
	return e.each(bucketSettings, func(k, v []byte) error {
		return e.emit(metadata.Record{Setting: &metadata.Setting{Name: string(k), Value: bytes.Clone(v)}})
	})
}

func (e *exporter) projects() error {
	return eachJSON(e, bucketProjects, func(p *metadata.Project) metadata.Record { return metadata.Record{Project: p} })
}

func (e *exporter) models() error {
	return eachJSON(e, bucketModels, func(m *metadata.Model) metadata.Record { return metadata.Record{Model: m} })
}

func (e *exporter) candidates() error {
	return eachJSON(e, bucketCandidates, func(c *metadata.Candidate) metadata.Record { return metadata.Record{Candidate: c} })
}

// idStr splits a u64 | string key (params, tags).
func idStr(name, k []byte) (uint64, string, error) {
	if len(k) <= 8 {
		return 0, "", fmt.Errorf("%s key %x: %w", name, k, ErrCorrupt)
	}
	return decodeU64(k), string(k[8:]), nil
}

func (e *exporter) candidateTags() error {
	return e.each(bucketTags, func(k, v []byte) error {
		id, key, err := idStr(bucketTags, k)
		if err != nil {
			return err
		}
		return e.emit(metadata.Record{CandidateTag: &metadata.OwnedTag{Owner: id, Tag: metadata.Tag{Key: key, Value: string(v)}}})
	})
}

func (e *exporter) params() error {
	return e.each(bucketParams, func(k, v []byte) error {
		id, key, err := idStr(bucketParams, k)
		if err != nil {
			return err
		}
		return e.emit(metadata.Record{Param: &metadata.OwnedParam{Owner: id, Param: metadata.Param{Key: key, Value: string(v)}}})
	})
}

// point decodes a history entry (metrics, lm_metrics): u64(owner) | str0(key) | i64(step) | i64(ts) |
// f64b(value) → linkedPoint or ∅.
func point(name, k, v []byte) (*metadata.OwnedMetric, error) {
	if len(k) < 8 {
		return nil, fmt.Errorf("%s key %x: %w", name, k, ErrCorrupt)
	}
	m, err := decodeMetricKey(k[8:])
	if err != nil {
		return nil, err
	}
	l, err := decodeLinked(k, v)
	if err != nil {
		return nil, err
	}
	m.LoggedModel, m.DatasetName, m.DatasetDigest, m.Run = l.LoggedModel, l.DatasetName, l.DatasetDigest, l.Run
	return &metadata.OwnedMetric{Owner: decodeU64(k), Metric: m}, nil
}

func (e *exporter) metrics() error {
	return e.each(bucketMetrics, func(k, v []byte) error {
		p, err := point(bucketMetrics, k, v)
		if err != nil {
			return err
		}
		p.Run = metadata.EID{} // a run's own points name no run
		return e.emit(metadata.Record{Metric: p})
	})
}

func (e *exporter) loggedModels() error {
	return eachJSON(e, bucketLoggedModels, func(lm *metadata.LoggedModel) metadata.Record { return metadata.Record{LoggedModel: lm} })
}

func (e *exporter) lmMetrics() error {
	return e.each(bucketLMMetrics, func(k, v []byte) error {
		p, err := point(bucketLMMetrics, k, v)
		if err != nil {
			return err
		}
		p.LoggedModel = metadata.LMID{} // the owner is the logged model
		return e.emit(metadata.Record{LMMetric: p})
	})
}

func (e *exporter) datasets() error {
	return e.each(bucketDatasets, func(k, v []byte) error {
		if len(k) < 8 {
			return fmt.Errorf("datasets key %x: %w", k, ErrCorrupt)
		}
		d := &metadata.ModelDataset{ModelID: decodeU64(k)}
		if err := json.Unmarshal(v, &d.Dataset); err != nil {
			return fmt.Errorf("datasets %x: %v: %w", k, err, ErrCorrupt)
		}
		return e.emit(metadata.Record{Dataset: d})
	})
}

func (e *exporter) datasetContexts() error {
	return e.each(bucketDatasetContexts, func(k, _ []byte) error {
		var parts []string
		if len(k) >= 8 {
			parts = strings.SplitN(string(k[8:]), "\x00", 3)
		}
		if len(parts) != 3 {
			return fmt.Errorf("dataset_contexts %x: %w", k, ErrCorrupt)
		}
		return e.emit(metadata.Record{DatasetContext: &metadata.DatasetSummary{ModelID: decodeU64(k), Name: parts[0], Digest: parts[1], Context: parts[2]}})
	})
}

// runIO walks the run_io entries of one kind (ioDataset, ioModelInput, ioModelOutput): the bucket holds
// all of a candidate's kinds together, and an export lists each kind on its own.
func (e *exporter) runIO(kind byte, fn func(cand uint64, rest, v []byte) error) error {
	return e.each(bucketRunIO, func(k, v []byte) error {
		if len(k) < 9 {
			return fmt.Errorf("run_io key %x: %w", k, ErrCorrupt)
		}
		if k[8] != kind {
			return nil
		}
		return fn(decodeU64(k), k[9:], v)
	})
}

func (e *exporter) runDatasets() error {
	return e.runIO(ioDataset, func(cand uint64, _, v []byte) error {
		var link datasetLink
		if err := json.Unmarshal(v, &link); err != nil {
			return fmt.Errorf("run_io of candidate %d: %v: %w", cand, err, ErrCorrupt)
		}
		return e.emit(metadata.Record{RunDataset: &metadata.RunDataset{Candidate: cand, Name: link.Name, Digest: link.Digest, Tags: link.Tags}})
	})
}

func (e *exporter) runModelInputs() error {
	return e.runIO(ioModelInput, func(cand uint64, rest, _ []byte) error {
		r := &metadata.RunModel{Candidate: cand}
		if len(rest) != len(r.LMID) {
			return fmt.Errorf("run_io model input of candidate %d: %x: %w", cand, rest, ErrCorrupt)
		}
		copy(r.LMID[:], rest)
		return e.emit(metadata.Record{RunModelInput: r})
	})
}

func (e *exporter) runModelOutputs() error {
	return e.runIO(ioModelOutput, func(cand uint64, rest, v []byte) error {
		r := &metadata.RunModel{Candidate: cand}
		if len(rest) != len(r.LMID) || len(v) != 8 {
			return fmt.Errorf("run_io model output of candidate %d: %x: %w", cand, rest, ErrCorrupt)
		}
		copy(r.LMID[:], rest)
		r.Step = decodeI64(v)
		return e.emit(metadata.Record{RunModelOutput: r})
	})
}

func (e *exporter) versions() error {
	return eachJSON(e, bucketVersions, func(v *metadata.Version) metadata.Record { return metadata.Record{Version: v} })
}

func (e *exporter) aliases() error {
	return e.each(bucketAliases, func(k, v []byte) error {
		if len(k) <= 8 || len(v) != 8 {
			return fmt.Errorf("aliases %x: %w", k, ErrCorrupt)
		}
		return e.emit(metadata.Record{Alias: &metadata.AliasRecord{ModelID: decodeU64(k),
			ModelAlias: metadata.ModelAlias{Alias: string(k[8:]), Seq: int64(decodeU64(v))}}})
	})
}

func (e *exporter) files() error {
	return eachJSON(e, bucketFiles, func(f *metadata.File) metadata.Record { return metadata.Record{File: f} })
}

func (e *exporter) tokens() error {
	return eachJSON(e, bucketTokens, func(t *metadata.Token) metadata.Record { return metadata.Record{Token: t} })
}

func (e *exporter) imports() error {
	return eachJSON(e, bucketImports, func(r *metadata.ImportRecord) metadata.Record { return metadata.Record{Import: r} })
}

// counters lists the counters bucket by kind, then key, as metadata.CounterKinds orders them (the bucket
// orders them by project or model first), and then the two bucket sequences that issue model and owner ids.
func (e *exporter) counters() error {
	emit := func(kind metadata.CounterKind, key, v uint64) error {
		return e.emit(metadata.Record{Counter: &metadata.Counter{Kind: kind, Key: key, Value: v}})
	}
	counters := bk(e.tx, bucketCounters)
	if v, ok, err := getU64(counters, counterProjectKey); err != nil {
		return err
	} else if ok {
		if err := emit(metadata.CounterProjectID, 0, v); err != nil {
			return err
		}
	}
	scoped := []struct {
		kind   metadata.CounterKind
		prefix byte
		what   string
	}{
		{metadata.CounterModelIID, 'p', counterModel},
		{metadata.CounterCandidateIID, 'p', counterCandidate},
		{metadata.CounterVersionID, 'p', counterVersion},
		{metadata.CounterVersionSeq, 'm', counterVersion},
	}
	for _, sc := range scoped {
		c := counters.Cursor()
		for k, v := c.Seek([]byte{sc.prefix}); k != nil && k[0] == sc.prefix; k, v = c.Next() {
			if len(k) != 9+len(sc.what) || string(k[9:]) != sc.what {
				continue
			}
			if len(v) != 8 {
				return fmt.Errorf("counter %q: %d bytes: %w", k, len(v), ErrCorrupt)
			}
			if err := emit(sc.kind, decodeU64(k[1:9]), decodeU64(v)); err != nil {
				return err
			}
		}
	}
	if seq := bk(e.tx, bucketModels).Sequence(); seq > 0 {
		if err := emit(metadata.CounterModelID, 0, seq); err != nil {
			return err
		}
	}
	if seq := bk(e.tx, bucketCandidates).Sequence(); seq > 0 {
		if err := emit(metadata.CounterOwnerID, 0, seq); err != nil {
			return err
		}
	}
	return nil
}

// exportedBuckets are the buckets Export reads records from (counters and sequences aside).
var exportedBuckets = [][]byte{
	bucketSettings, bucketProjects, bucketModels, bucketCandidates, bucketTags, bucketParams, bucketMetrics,
	bucketLoggedModels, bucketLMMetrics, bucketDatasets, bucketDatasetContexts, bucketRunIO, bucketVersions,
	bucketAliases, bucketFiles, bucketTokens, bucketImports, bucketCounters,
}

// EstimateRecords returns about how many records Export streams, for a progress bar: the keys of the
// buckets it reads (run_io's dataset index entries, which it skips, included) and the two sequences. It
// reads every page but decodes nothing. Errors are the store's.
func (s *Store) EstimateRecords(ctx context.Context) (int64, error) {
	var n int64 = 2
	err := s.view(ctx, func(tx *bolt.Tx) error {
		for _, name := range exportedBuckets {
			if err := ctx.Err(); err != nil {
				return err
			}
			n += int64(bk(tx, name).Stats().KeyN)
		}
		return nil
	})
	return n, err
}

// derivedBuckets are the buckets Export leaves out: indexes that a target derives from the records.
var derivedBuckets = [][]byte{
	bucketProjectsByPath, bucketModelsByName, bucketModelsByDisplay, bucketModelsByIID, bucketCandidatesByEID,
	bucketCandidatesByIID, bucketCandidatesByModel, bucketMetricsLatest, bucketCandidatesByMetric, bucketVersionsByID,
	bucketVersionsBySemver, bucketVersionsOrder, bucketVersionsByCand, bucketTokensByHash, bucketLoggedModelsByLMID,
	bucketLoggedModelsByMdl, bucketLMMetricsLatest, bucketLMsByMetric,
}
