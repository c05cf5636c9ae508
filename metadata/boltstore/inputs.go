package boltstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// run_io key kinds, after u64(candID).
const (
	ioDataset      byte = 'd' // | u64(n) → json(datasetLink): the run's dataset inputs in logging order
	ioDatasetIndex byte = 'D' // | str0(name) | digest → u64(n): which datasets the run already has
	ioModelInput   byte = 'm' // | lmid → ∅
	ioModelOutput  byte = 'o' // | lmid → i64(step)
)

// datasetLink is a run's input of one dataset: the dataset is stored once per model (datasets), the
// link keeps the input's tags.
type datasetLink struct {
	Name   string         `json:"name"`
	Digest string         `json:"digest"`
	Tags   []metadata.Tag `json:"tags,omitempty"`
}

// contextTag is the input tag whose value experiments/search-datasets reports as a dataset's context.
const contextTag = "mlflow.data.context"

func ioKey(candID uint64, kind byte, rest ...byte) []byte {
	return append(append(appendU64(make([]byte, 0, 9+len(rest)), candID), kind), rest...)
}

func datasetKey(modelID uint64, name, digest string) []byte {
	return append(appendStr0(appendU64(make([]byte, 0, 8+len(name)+1+len(digest)), modelID), name), digest...)
}

func validateDatasetInput(in metadata.DatasetInput) error {
	d := in.Dataset
	for _, f := range []struct {
		what     string
		v        string
		required bool
		max      int
	}{
		{"name", d.Name, true, metadata.MaxDatasetNameLen},
		{"digest", d.Digest, true, metadata.MaxDatasetDigestLen},
		{"source_type", d.SourceType, true, metadata.MaxDatasetSourceType},
		{"source", d.Source, true, metadata.MaxDatasetSourceLen},
		{"schema", d.Schema, false, metadata.MaxDatasetSchemaLen},
		{"profile", d.Profile, false, metadata.MaxDatasetProfileLen},
	} {
		if (f.required && f.v == "") || len(f.v) > f.max {
			return fmt.Errorf("dataset %.60q: %s must be 1–%d bytes (has %d): %w", d.Name, f.what, f.max, len(f.v), metadata.ErrInvalid)
		}
	}
	if strings.IndexByte(d.Name, 0) >= 0 || strings.IndexByte(d.Digest, 0) >= 0 {
		return fmt.Errorf("dataset %.60q: name or digest contains NUL: %w", d.Name, metadata.ErrInvalid)
	}
	for _, t := range in.Tags {
		if t.Key == "" || len(t.Key) > metadata.MaxInputTagKeyLen || len(t.Value) > metadata.MaxInputTagValueLen {
			return fmt.Errorf("dataset %.60q: input tag %.60q: key must be 1–%d bytes, value at most %d: %w",
				d.Name, t.Key, metadata.MaxInputTagKeyLen, metadata.MaxInputTagValueLen, metadata.ErrInvalid)
		}
	}
	return nil
}

// LogInputs implements metadata.Store.
func (s *Store) LogInputs(ctx context.Context, candidateID uint64, datasets []metadata.DatasetInput, models []metadata.LMID) error {
	for _, in := range datasets {
		if err := validateDatasetInput(in); err != nil {
			return err
		}
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		c, err := getCandidate(tx, candidateID)
		if err != nil {
			return err
		}
		io, stored := bk(tx, bucketRunIO), bk(tx, bucketDatasets)
		for _, in := range datasets {
			d := in.Dataset
			dk := datasetKey(c.ModelID, d.Name, d.Digest)
			if stored.Get(dk) == nil {
				if err := putJSON(stored, dk, d); err != nil {
					return err
				}
			}
			idx := ioKey(candidateID, ioDatasetIndex, appendStr0(nil, d.Name)...)
			idx = append(idx, d.Digest...)
			if io.Get(idx) != nil {
				continue // linked already: the first input's tags stay
			}
			n, err := io.NextSequence()
			if err != nil {
				return err
			}
			if err := io.Put(idx, idKey(n)); err != nil {
				return err
			}
			if err := putJSON(io, ioKey(candidateID, ioDataset, idKey(n)...), datasetLink{Name: d.Name, Digest: d.Digest, Tags: in.Tags}); err != nil {
				return err
			}
			ctxValue := ""
			for _, t := range in.Tags {
				if t.Key == contextTag {
					ctxValue = t.Value
				}
			}
			ck := append(appendStr0(appendStr0(appendU64(nil, c.ModelID), d.Name), d.Digest), ctxValue...)
			if err := bk(tx, bucketDatasetContexts).Put(ck, nil); err != nil {
				return err
			}
		}
		for _, lmid := range models {
			lm, err := loggedModelByLMID(tx, lmid)
			if err != nil {
				return err
			}
			if lm.Project != c.Project {
				return fmt.Errorf("logged model %s: %w", lmid, metadata.ErrNotFound)
			}
			if err := io.Put(ioKey(candidateID, ioModelInput, lmid[:]...), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

// LogOutputs implements metadata.Store.
func (s *Store) LogOutputs(ctx context.Context, candidateID uint64, outputs []metadata.ModelOutput) error {
	return s.update(ctx, func(tx *bolt.Tx) error {
		c, err := getCandidate(tx, candidateID)
		if err != nil {
			return err
		}
		io := bk(tx, bucketRunIO)
		for _, o := range outputs {
			lm, err := loggedModelByLMID(tx, o.LoggedModel)
			if err != nil {
				return err
			}
			if lm.Project != c.Project {
				return fmt.Errorf("logged model %s: %w", o.LoggedModel, metadata.ErrNotFound)
			}
			k := ioKey(candidateID, ioModelOutput, o.LoggedModel[:]...)
			if io.Get(k) != nil {
				continue
			}
			if err := io.Put(k, appendI64(nil, o.Step)); err != nil {
				return err
			}
		}
		return nil
	})
}

// readRunIO reads a candidate's inputs and outputs; every list is empty, not nil, when there is nothing.
func readRunIO(tx *bolt.Tx, candidateID uint64) (metadata.RunIO, error) {
	out := metadata.RunIO{Datasets: []metadata.DatasetInput{}, ModelInputs: []metadata.LMID{}, Outputs: []metadata.ModelOutput{}}
	c, err := getCandidate(tx, candidateID)
	if err != nil {
		return out, err
	}
	io, stored := bk(tx, bucketRunIO), bk(tx, bucketDatasets)
	cur := io.Cursor()
	prefix := ioKey(candidateID, ioDataset)
	for k, v := cur.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = cur.Next() {
		var link datasetLink
		if err := json.Unmarshal(v, &link); err != nil {
			return out, fmt.Errorf("run_io %x: %v: %w", k, err, ErrCorrupt)
		}
		var d metadata.Dataset
		found, err := getJSON(stored, datasetKey(c.ModelID, link.Name, link.Digest), &d)
		if err != nil {
			return out, err
		}
		if !found {
			return out, fmt.Errorf("run_io %x names dataset %q@%s, which is missing: %w", k, link.Name, link.Digest, ErrCorrupt)
		}
		out.Datasets = append(out.Datasets, metadata.DatasetInput{Dataset: d, Tags: link.Tags})
	}
	prefix = ioKey(candidateID, ioModelInput)
	for k, _ := cur.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = cur.Next() {
		var l metadata.LMID
		if len(k) != len(prefix)+len(l) {
			return out, fmt.Errorf("run_io %x: %w", k, ErrCorrupt)
		}
		copy(l[:], k[len(prefix):])
		out.ModelInputs = append(out.ModelInputs, l)
	}
	prefix = ioKey(candidateID, ioModelOutput)
	for k, v := cur.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = cur.Next() {
		var l metadata.LMID
		if len(k) != len(prefix)+len(l) || len(v) != 8 {
			return out, fmt.Errorf("run_io %x: %w", k, ErrCorrupt)
		}
		copy(l[:], k[len(prefix):])
		out.Outputs = append(out.Outputs, metadata.ModelOutput{LoggedModel: l, Step: decodeI64(v)})
	}
	return out, nil
}

// SearchDatasets implements metadata.Store.
func (s *Store) SearchDatasets(ctx context.Context, modelIDs []uint64) ([]metadata.DatasetSummary, error) {
	if len(modelIDs) == 0 {
		return nil, fmt.Errorf("dataset search: no model: %w", metadata.ErrInvalid)
	}
	models := slices.Clone(modelIDs)
	slices.Sort(models)
	models = slices.Compact(models)
	out := []metadata.DatasetSummary{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := bk(tx, bucketDatasetContexts).Cursor()
		for _, m := range models {
			prefix := idKey(m)
			for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
				parts := strings.SplitN(string(k[8:]), "\x00", 3)
				if len(parts) != 3 {
					return fmt.Errorf("dataset_contexts %x: %w", k, ErrCorrupt)
				}
				out = append(out, metadata.DatasetSummary{ModelID: m, Name: parts[0], Digest: parts[1], Context: parts[2]})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
