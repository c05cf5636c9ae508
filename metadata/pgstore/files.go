package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// forEachBatch is how many rows ForEachFile reads per transaction: large enough to amortise a transaction,
// small enough that none lives long.
const forEachBatch = 500

const fileCols = `owner_id, path, size, sha256, content_type, blob_key, backend, created_at`

func scanFile(row pgx.Row) (*metadata.File, error) {
	var f metadata.File
	if err := row.Scan(&f.OwnerID, &f.Path, &f.Size, &f.SHA256, &f.ContentType, &f.BlobKey, &f.Backend, &f.CreatedAt); err != nil {
		return nil, err
	}
	f.CreatedAt = f.CreatedAt.UTC()
	return &f, nil
}

// ownerExists checks that id is a file owner's: a candidate's or a logged model's.
func ownerExists(ctx context.Context, tx pgx.Tx, id uint64) error {
	ok, err := exists(ctx, tx, `SELECT 1 FROM candidates WHERE id = $1 UNION ALL SELECT 1 FROM logged_models WHERE id = $1`, id)
	if err == nil && !ok {
		err = fmt.Errorf("file owner %d: %w", id, metadata.ErrNotFound)
	}
	return err
}

// dirRange returns the bounds of the paths below directory p: "p/" ≤ path < "p0" in byte order ('0' is the
// byte after '/').
func dirRange(p string) (lo, hi string) { return p + "/", p + "0" }

// CommitFile implements metadata.Store: it inserts or replaces the row for (f.OwnerID, f.Path) and returns
// the replaced row (nil for an insert). CreatedAt is filled with now when zero; f is changed only on
// success. ErrConflict if f.Path is a directory of other rows, if an ancestor of f.Path is a file, or if a
// row exists and replace is false; ErrNotFound for an unknown owner; ErrInvalid as metadata.ValidateFile
// says. Concurrent commits of a file and a path below it cannot both succeed: the transaction is
// SERIALIZABLE, so the one that read the other's range fails to serialize and is run again.
func (s *Store) CommitFile(ctx context.Context, f *metadata.File, replace bool) (*metadata.File, error) {
	if f == nil {
		return nil, s.refuse(ctx, fmt.Errorf("nil file: %w", metadata.ErrInvalid))
	}
	if err := metadata.ValidateFile(f); err != nil {
		return nil, s.refuse(ctx, err)
	}
	out := *f
	if out.CreatedAt.IsZero() {
		out.CreatedAt = s.now()
	}
	var replaced *metadata.File
	err := s.update(ctx, func(tx pgx.Tx) error {
		replaced = nil // a retried attempt may find no row to replace
		if err := ownerExists(ctx, tx, out.OwnerID); err != nil {
			return err
		}
		var ancestors []string
		for i := strings.IndexByte(out.Path, '/'); i >= 0; i = nextSlash(out.Path, i) {
			ancestors = append(ancestors, out.Path[:i])
		}
		var anc string
		err := tx.QueryRow(ctx, `SELECT path FROM files WHERE owner_id = $1 AND path = ANY($2) LIMIT 1`, out.OwnerID, ancestors).Scan(&anc)
		if err == nil {
			return fmt.Errorf("file %q: ancestor %q is a file: %w", out.Path, anc, metadata.ErrConflict)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		lo, hi := dirRange(out.Path)
		var below string
		err = tx.QueryRow(ctx, `SELECT path FROM files WHERE owner_id = $1 AND path >= $2 AND path < $3 LIMIT 1`, out.OwnerID, lo, hi).Scan(&below)
		if err == nil {
			return fmt.Errorf("file %q: is a directory (holds %q): %w", out.Path, below, metadata.ErrConflict)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		old, err := getFile(ctx, tx, out.OwnerID, out.Path, true)
		switch {
		case err == nil && !replace:
			return fmt.Errorf("file %q: %w", out.Path, metadata.ErrConflict)
		case err == nil:
			replaced = old
		case !isNotFound(err):
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO files (`+fileCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (owner_id, path) DO UPDATE SET size = EXCLUDED.size, sha256 = EXCLUDED.sha256,
			content_type = EXCLUDED.content_type, blob_key = EXCLUDED.blob_key, backend = EXCLUDED.backend,
			created_at = EXCLUDED.created_at`,
			out.OwnerID, out.Path, out.Size, out.SHA256, out.ContentType, out.BlobKey, out.Backend, out.CreatedAt)
		return err
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

func getFile(ctx context.Context, tx pgx.Tx, owner uint64, path string, lock bool) (*metadata.File, error) {
	q := `SELECT ` + fileCols + ` FROM files WHERE owner_id = $1 AND path = $2`
	if lock {
		q += ` FOR UPDATE`
	}
	f, err := scanFile(tx.QueryRow(ctx, q, owner, path))
	return f, notFound(err, "owner %d file %q", owner, path)
}

// File implements metadata.Store: the row at (candidateID, path). ErrNotFound if there is none (or no
// such owner); ErrInvalid for a bad path.
func (s *Store) File(ctx context.Context, candidateID uint64, path string) (*metadata.File, error) {
	if err := metadata.ValidateFilePath(path); err != nil {
		return nil, err
	}
	var f *metadata.File
	err := s.view(ctx, func(tx pgx.Tx) (err error) { f, err = getFile(ctx, tx, candidateID, path, false); return err })
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ListFiles implements metadata.Store: the owner's rows under prefix in path (byte) order, recursively; ""
// lists every row, "dir" every row below "dir/". ErrNotFound for an unknown owner; ErrInvalid for a bad
// prefix or a token of another listing.
func (s *Store) ListFiles(ctx context.Context, candidateID uint64, prefix string, p metadata.Page) ([]*metadata.File, string, error) {
	lo, hi := "", "\U0010FFFF" // paths are UTF-8, so every one sorts below the highest code point
	if prefix != "" {
		if err := metadata.ValidateFilePath(prefix); err != nil {
			return nil, "", fmt.Errorf("list prefix: %w", err)
		}
		lo, hi = dirRange(prefix)
	}
	pg, err := newPager(p, "files", candidateID, prefix)
	if err != nil {
		return nil, "", err
	}
	after := ""
	if pg.after != nil {
		after = string(pg.after)
	}
	var out []*metadata.File
	err = s.view(ctx, func(tx pgx.Tx) error {
		if err := ownerExists(ctx, tx, candidateID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+fileCols+` FROM files WHERE owner_id = $1 AND path >= $2 AND path < $3
			AND ($4 = '' OR path > $4) ORDER BY path LIMIT $5`, candidateID, lo, hi, after, pg.limit+1)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.File, error) { return scanFile(r) })
		return err
	})
	if err != nil {
		return nil, "", err
	}
	out, next := page(pg, out, func(f *metadata.File) []byte { return []byte(f.Path) })
	return out, next, nil
}

// DeleteFile implements metadata.Store: it removes the row and returns it. ErrNotFound if there is none;
// ErrInvalid for a bad path. The blob is the caller's to delete, after this commit.
func (s *Store) DeleteFile(ctx context.Context, candidateID uint64, path string) (*metadata.File, error) {
	if err := metadata.ValidateFilePath(path); err != nil {
		return nil, s.refuse(ctx, err)
	}
	var f *metadata.File
	err := s.update(ctx, func(tx pgx.Tx) error {
		var err error
		f, err = scanFile(tx.QueryRow(ctx, `DELETE FROM files WHERE owner_id = $1 AND path = $2 RETURNING `+fileCols, candidateID, path))
		return notFound(err, "owner %d file %q", candidateID, path)
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ForEachFile implements metadata.Store: every row in (owner, path) order, read 500 per transaction; fn
// runs only between transactions, so it may do blob I/O or write to the store. fn's error, or the
// context's, stops the walk.
func (s *Store) ForEachFile(ctx context.Context, fn func(*metadata.File) error) error {
	var afterOwner uint64
	afterPath, first := "", true
	for {
		var batch []*metadata.File
		err := s.view(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT `+fileCols+` FROM files WHERE $1 OR (owner_id, path) > ($2, $3)
				ORDER BY owner_id, path LIMIT $4`, first, afterOwner, afterPath, forEachBatch)
			if err != nil {
				return err
			}
			batch, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*metadata.File, error) { return scanFile(r) })
			return err
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
		last := batch[len(batch)-1]
		afterOwner, afterPath, first = last.OwnerID, last.Path, false
	}
}

// SwitchFileBackend implements metadata.Store: a compare-and-swap of the row's blob. ErrConflict if the
// row now has another key; ErrNotFound if there is no row; ErrInvalid for a bad path, an empty newKey or an
// over-long backend name.
func (s *Store) SwitchFileBackend(ctx context.Context, candidateID uint64, path, expectOldKey, newBackend, newKey string) error {
	if err := metadata.ValidateFilePath(path); err != nil {
		return s.refuse(ctx, err)
	}
	if newKey == "" {
		return s.refuse(ctx, fmt.Errorf("file %q: empty blob key: %w", path, metadata.ErrInvalid))
	}
	if len(newBackend) > metadata.MaxBackendNameLen {
		return s.refuse(ctx, fmt.Errorf("file %q: backend name longer than %d bytes: %w", path, metadata.MaxBackendNameLen, metadata.ErrInvalid))
	}
	return s.update(ctx, func(tx pgx.Tx) error {
		f, err := getFile(ctx, tx, candidateID, path, true)
		if err != nil {
			return err
		}
		if f.BlobKey != expectOldKey {
			return fmt.Errorf("file %q: replaced since the switch was planned: %w", path, metadata.ErrConflict)
		}
		_, err = tx.Exec(ctx, `UPDATE files SET backend = $3, blob_key = $4 WHERE owner_id = $1 AND path = $2`, candidateID, path, newBackend, newKey)
		return err
	})
}
