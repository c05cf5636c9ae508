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

// forEachBatch is how many rows ForEachFile reads per transaction: large enough to amortise a transaction,
// small enough that no read transaction lives long.
const forEachBatch = 500

// CommitFile inserts or replaces the row for (f.CandidateID, f.Path) and returns the replaced row (nil for
// an insert). CreatedAt is filled with now when zero; f is changed only on success.
// ErrConflict if f.Path is a directory of other rows, if an ancestor directory of f.Path is a file, or if a
// row exists and replace is false. ErrNotFound for an unknown candidate; ErrInvalid for a bad path, a
// negative size, a SHA256 that is not lowercase hex of 64 digits, an over-long content type or an empty
// blob key.
func (s *Store) CommitFile(ctx context.Context, f *metadata.File, replace bool) (*metadata.File, error) {
	if f == nil {
		return nil, fmt.Errorf("nil file: %w", metadata.ErrInvalid)
	}
	if err := validateFile(f); err != nil {
		return nil, err
	}
	out := *f
	if out.CreatedAt.IsZero() {
		out.CreatedAt = s.now()
	}
	var replaced *metadata.File
	err := s.update(ctx, func(tx *bolt.Tx) error {
		replaced = nil // a run again (group commit) may find no row to replace
		if _, err := ownerProject(tx, out.OwnerID); err != nil {
			return err
		}
		files := bk(tx, bucketFiles)
		for i := strings.IndexByte(out.Path, '/'); i >= 0; i = nextSlash(out.Path, i) {
			if files.Get(idStrKey(out.OwnerID, out.Path[:i])) != nil {
				return fmt.Errorf("file %q: ancestor %q is a file: %w", out.Path, out.Path[:i], metadata.ErrConflict)
			}
		}
		dir := idStrKey(out.OwnerID, out.Path+"/")
		if k, _ := files.Cursor().Seek(dir); k != nil && hasPrefix(k, dir) {
			return fmt.Errorf("file %q: is a directory (holds %q): %w", out.Path, k[8:], metadata.ErrConflict)
		}
		key := idStrKey(out.OwnerID, out.Path)
		var old metadata.File
		ok, err := getJSON(files, key, &old)
		if err != nil {
			return err
		}
		if ok {
			if !replace {
				return fmt.Errorf("file %q: %w", out.Path, metadata.ErrConflict)
			}
			replaced = &old
		}
		return putJSON(files, key, &out)
	})
	if err != nil {
		return nil, err
	}
	*f = out
	return replaced, nil
}

func nextSlash(p string, i int) int {
	j := strings.IndexByte(p[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// File returns the row at (candidateID, path). ErrNotFound if there is none (or no such candidate);
// ErrInvalid for a bad path.
func (s *Store) File(ctx context.Context, candidateID uint64, path string) (*metadata.File, error) {
	if err := validateFilePath(path); err != nil {
		return nil, err
	}
	var f metadata.File
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ok, err := getJSON(bk(tx, bucketFiles), idStrKey(candidateID, path), &f)
		if err == nil && !ok {
			err = fmt.Errorf("candidate %d file %q: %w", candidateID, path, metadata.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// ListFiles returns the candidate's rows under prefix in path (byte) order, recursively: "" lists every
// row, "dir" every row below "dir/". The next page's token is "" at the end. ErrNotFound for an unknown
// candidate; ErrInvalid for a bad prefix or a token of another listing.
func (s *Store) ListFiles(ctx context.Context, candidateID uint64, prefix string, p metadata.Page) ([]*metadata.File, string, error) {
	keyPrefix := idKey(candidateID)
	if prefix != "" {
		if err := validateFilePath(prefix); err != nil {
			return nil, "", fmt.Errorf("list prefix: %w", err)
		}
		keyPrefix = idStrKey(candidateID, prefix+"/")
	}
	pg, err := newPager(p, "files", keyPrefix)
	if err != nil {
		return nil, "", err
	}
	var out []*metadata.File
	var next string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		if _, err := ownerProject(tx, candidateID); err != nil {
			return err
		}
		next, err = pg.forward(bk(tx, bucketFiles).Cursor(), func(k, v []byte) error {
			f, err := decodeFile(k, v)
			out = append(out, f)
			return err
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

func decodeFile(k, v []byte) (*metadata.File, error) {
	var f metadata.File
	if err := json.Unmarshal(v, &f); err != nil {
		return nil, fmt.Errorf("file %x: %v: %w", k, err, ErrCorrupt)
	}
	return &f, nil
}

// DeleteFile removes the row at (candidateID, path) and returns it. ErrNotFound if there is none;
// ErrInvalid for a bad path. The blob is the caller's to delete, after this commit.
func (s *Store) DeleteFile(ctx context.Context, candidateID uint64, path string) (*metadata.File, error) {
	if err := validateFilePath(path); err != nil {
		return nil, err
	}
	var f metadata.File
	err := s.update(ctx, func(tx *bolt.Tx) error {
		f = metadata.File{} // decoding merges into f: a run again (group commit) must not keep fields of a row read before
		files := bk(tx, bucketFiles)
		key := idStrKey(candidateID, path)
		ok, err := getJSON(files, key, &f)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("candidate %d file %q: %w", candidateID, path, metadata.ErrNotFound)
		}
		return files.Delete(key)
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// ForEachFile calls fn for every row of every candidate in (candidate, path) order. It reads 500 rows per
// read transaction and calls fn only between transactions, so fn may do blob I/O or write to the store.
// Rows committed during the walk behind its position are not seen; rows ahead of it are. fn's error, or the
// context's, stops the walk and is returned.
func (s *Store) ForEachFile(ctx context.Context, fn func(*metadata.File) error) error {
	var after []byte
	for {
		batch := make([]*metadata.File, 0, forEachBatch)
		err := s.view(ctx, func(tx *bolt.Tx) error {
			c := bk(tx, bucketFiles).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.First()
			} else if k, v = c.Seek(after); k != nil && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			for ; k != nil && len(batch) < forEachBatch; k, v = c.Next() {
				f, err := decodeFile(k, v)
				if err != nil {
					return err
				}
				batch = append(batch, f)
				after = append(after[:0], k...)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, f := range batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(f); err != nil {
				return err
			}
		}
		if len(batch) < forEachBatch {
			return nil
		}
	}
}

// SwitchFileBackend points the row at (candidateID, path) at newKey on newBackend, in one transaction,
// if its BlobKey is still expectOldKey. It is how `mlgate backends migrate` commits a copied blob: a row
// replaced or deleted since the copy started is left alone. ErrConflict if the row now has another key;
// ErrNotFound if there is no row; ErrInvalid for a bad path, an empty newKey or an over-long backend name.
func (s *Store) SwitchFileBackend(ctx context.Context, candidateID uint64, path, expectOldKey, newBackend, newKey string) error {
	if err := validateFilePath(path); err != nil {
		return err
	}
	if newKey == "" {
		return fmt.Errorf("file %q: empty blob key: %w", path, metadata.ErrInvalid)
	}
	if len(newBackend) > maxBackendNameLen {
		return fmt.Errorf("file %q: backend name longer than %d bytes: %w", path, maxBackendNameLen, metadata.ErrInvalid)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		files := bk(tx, bucketFiles)
		key := idStrKey(candidateID, path)
		var f metadata.File
		ok, err := getJSON(files, key, &f)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("candidate %d file %q: %w", candidateID, path, metadata.ErrNotFound)
		}
		if f.BlobKey != expectOldKey {
			return fmt.Errorf("file %q: replaced since the switch was planned: %w", path, metadata.ErrConflict)
		}
		f.Backend, f.BlobKey = newBackend, newKey
		return putJSON(files, key, &f)
	})
}
