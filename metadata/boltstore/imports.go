package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// importPrefix is the key prefix of a project's records, narrowed to a source when source is not "" and to
// a kind of it when kind is not "" too.
func importPrefix(project int64, source string, kind metadata.ImportKind) []byte {
	k := idKey(uint64(project))
	if source == "" {
		return k
	}
	k = appendStr0(k, source)
	if kind == "" {
		return k
	}
	return appendStr0(k, string(kind))
}

func importKey(project int64, source string, kind metadata.ImportKind, sourceID string) []byte {
	return append(importPrefix(project, source, kind), sourceID...)
}

// splitImportKey is the inverse of importKey; ok is false for a key it cannot have written.
func splitImportKey(k []byte) (project int64, source string, kind metadata.ImportKind, sourceID string, ok bool) {
	if len(k) < 8 {
		return 0, "", "", "", false
	}
	rest := k[8:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return 0, "", "", "", false
	}
	j := bytes.IndexByte(rest[i+1:], 0)
	if j < 0 {
		return 0, "", "", "", false
	}
	return int64(decodeU64(k)), string(rest[:i]), metadata.ImportKind(rest[i+1 : i+1+j]), string(rest[i+2+j:]), true
}

// PutImportRecord implements metadata.Store. r is changed (UpdatedAt) only on success.
func (s *Store) PutImportRecord(ctx context.Context, r *metadata.ImportRecord) error {
	if r == nil {
		return s.refuse(ctx, fmt.Errorf("nil import record: %w", metadata.ErrInvalid))
	}
	if err := metadata.ValidateImportRecord(r); err != nil {
		return s.refuse(ctx, err)
	}
	out := *r
	out.UpdatedAt = s.now()
	err := s.update(ctx, func(tx *bolt.Tx) error {
		if _, err := getProject(tx, out.Project); err != nil {
			return err
		}
		return putJSON(bk(tx, bucketImports), importKey(out.Project, out.Source, out.Kind, out.SourceID), &out)
	})
	if err != nil {
		return err
	}
	*r = out
	return nil
}

// ImportRecord implements metadata.Store.
func (s *Store) ImportRecord(ctx context.Context, project int64, source string, kind metadata.ImportKind, sourceID string) (*metadata.ImportRecord, error) {
	if err := metadata.ValidateImportKey(source, kind, sourceID); err != nil {
		// Such a record cannot have been stored, and a lookup that finds nothing is a 404, not a 400.
		return nil, fmt.Errorf("import record: %v: %w", err, metadata.ErrNotFound)
	}
	var r metadata.ImportRecord
	err := s.view(ctx, func(tx *bolt.Tx) error {
		found, err := getJSON(bk(tx, bucketImports), importKey(project, source, kind, sourceID), &r)
		if err == nil && !found {
			err = fmt.Errorf("import record %s %q from %q in project %d: %w", kind, sourceID, source, project, metadata.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// ListImportRecords implements metadata.Store. With a source, the listing is a range scan of the source's
// (or its kind's) prefix. Kind without source reads every source's range of that kind and skips from one
// to the next with a seek, so that a project's other kinds (its metrics and artifacts, the bulk of a
// journal) are never decoded.
func (s *Store) ListImportRecords(ctx context.Context, project int64, source string, kind metadata.ImportKind, p metadata.Page) ([]*metadata.ImportRecord, string, error) {
	if source != "" {
		if err := metadata.ValidateImportSource(source); err != nil {
			return nil, "", err
		}
	}
	if kind != "" && !kind.Valid() {
		return nil, "", fmt.Errorf("import kind %.30q: want one of %v: %w", kind, metadata.ImportKinds, metadata.ErrInvalid)
	}
	prefix := importPrefix(project, source, kind)
	pg, err := newPager(p, "imports\x00"+string(kind), prefix)
	if err != nil {
		return nil, "", err
	}
	skipKinds := source == "" && kind != ""
	var out []*metadata.ImportRecord
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		if _, err := getProject(tx, project); err != nil {
			return err
		}
		c := bk(tx, bucketImports).Cursor()
		var k, v []byte
		if pg.after == nil {
			k, v = c.Seek(prefix)
		} else if k, v = c.Seek(pg.after); k != nil && bytes.Equal(k, pg.after) {
			k, v = c.Next()
		}
		var last []byte
		for n := 0; k != nil && hasPrefix(k, prefix); {
			if skipKinds {
				_, src, knd, _, ok := splitImportKey(k)
				if !ok {
					return fmt.Errorf("imports %x: malformed key: %w", k, ErrCorrupt)
				}
				switch {
				case knd < kind:
					k, v = c.Seek(importPrefix(project, src, kind))
					continue
				case knd > kind:
					if k, v = seekAfter(c, importPrefix(project, src, "")); k == nil {
						return nil
					}
					continue
				}
			}
			if n == pg.limit {
				next = pg.token(last)
				return nil
			}
			var r metadata.ImportRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("import record %x: %v: %w", k, err, ErrCorrupt)
			}
			out = append(out, &r)
			last, n = k, n+1
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// seekAfter positions c at the first key that does not start with prefix and sorts after it.
func seekAfter(c *bolt.Cursor, prefix []byte) ([]byte, []byte) {
	end := prefixEnd(prefix)
	if end == nil {
		return nil, nil
	}
	return c.Seek(end)
}
