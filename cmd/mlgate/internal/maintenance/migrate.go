package maintenance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/metadata"
)

// Filter selects files by their project's path and their model's name, with globs like those of
// routes: "" and "*" match everything, anything else is a path.Match pattern.
type Filter struct {
	Project, Model string
}

// Validate returns an error for a malformed pattern: `pattern "<p>": ` wrapping path.ErrBadPattern.
func (f Filter) Validate() error {
	for _, g := range []string{f.Project, f.Model} {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", g, err)
		}
	}
	return nil
}

func (f Filter) match(project, model string) bool {
	return globMatch(f.Project, project) && globMatch(f.Model, model)
}

// globMatch matches like a route: "" and "*" match everything, anything else is path.Match.
func globMatch(pattern, s string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// Move is one file a migration moves, with the names it is listed under.
type Move struct {
	File    *metadata.File
	Project string // the project's path
	Model   string // the model's name
}

// PlanMigration lists the files recorded on backend from (rows recording none are s.Default's) whose
// project and model match f, in the store's (candidate, path) order, with their total size. It reads
// each candidate's project and model once. Errors: the store's, as "reading file rows: ...".
func PlanMigration(ctx context.Context, s Storage, from string, f Filter) ([]Move, int64, error) {
	type owner struct{ project, model string }
	owners := map[uint64]owner{}
	var moves []Move
	var total int64
	err := s.Store.ForEachFile(ctx, func(file *metadata.File) error {
		if s.resolve(file.Backend) != from {
			return nil
		}
		o, ok := owners[file.OwnerID]
		if !ok {
			modelID, err := metadata.ModelOfOwner(ctx, s.Store, file.OwnerID)
			if err != nil {
				return err
			}
			m, err := s.Store.Model(ctx, metadata.ModelRef{ID: modelID})
			if err != nil {
				return err
			}
			p, err := s.Store.Project(ctx, metadata.ProjectRef{ID: m.Project})
			if err != nil {
				return err
			}
			o = owner{p.Path, m.Name}
			owners[file.OwnerID] = o
		}
		if !f.match(o.project, o.model) {
			return nil
		}
		moves = append(moves, Move{File: file, Project: o.project, Model: o.model})
		total += file.Size
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading file rows: %w", err)
	}
	return moves, total, nil
}

// MigrateOptions are a migration's hooks, through which the command shows progress; both may be nil.
type MigrateOptions struct {
	// Progress is called with the size of every piece of a blob read from the source, as it is copied.
	Progress func(n int)
	// Leftover hears of a moved file whose source blob could not be deleted. The file's row already
	// points at the copy, so the blob is an orphan that fsck --repair removes; the migration goes on.
	Leftover func(key string, err error)
	// DeletionDelay is, with a store that replicas share (metadata.BlobDeletionQueue), how long the
	// source blob of a moved file is kept for the downloads other replicas still stream: its deletion is
	// queued with the row's switch instead of done at once (see artifact.Service.RunDeletions), at least
	// the source's redirect expiry plus grace when it redirects downloads. 0 means
	// artifact.DefaultDeletionDelay.
	DeletionDelay time.Duration
}

// MigrateResult counts what a migration did.
type MigrateResult struct {
	Moved      int   // files whose rows now point at the destination
	MovedBytes int64 // their bytes
	Skipped    int   // files whose rows changed or vanished during their copy; the copies are removed
}

// Migrate moves each file of moves (made by PlanMigration for src) from src to dst, one after the
// other: it streams the blob from src into dst under a fresh key (blobkey.File) with the row's sha256
// and size verified on the way (dst is checked, so a mismatch stores nothing), switches the row to dst
// and the new key in one transaction that is a compare-and-swap on the old key, then deletes the source
// blob (with a store that replicas share, the switch's transaction queues its deletion instead: see
// MigrateOptions.DeletionDelay). A row that changed meanwhile (its file replaced or deleted: cmd holds the store's lock, so
// that takes another writer, but the switch does not rely on there being none) is skipped and its copy
// removed. The fresh key means that even with src and dst on one storage the delete can never hit the
// copy.
//
// Every row points at a complete, verified copy at every moment, so a migration killed at any point is
// resumed by planning and migrating again: moved files are no longer on src. A kill between copy and
// switch leaves an unreferenced copy on dst, one between switch and delete the old blob on src; fsck
// finds both.
//
// Migrate stops at the first file it cannot move, and returns what it did until then with an error
// that names the file and says how many were moved; the file's row is unchanged and its copy removed.
// Errors wrap the cause: the source's Get, dst's Put (backends.ErrChecksum or ErrSizeMismatch when the
// source blob does not match its row), or the store's switch.
func Migrate(ctx context.Context, store metadata.Store, src, dst Backend, moves []Move, opts MigrateOptions) (MigrateResult, error) {
	var res MigrateResult
	for _, m := range moves {
		ok, err := moveFile(ctx, store, src, dst, m.File, opts)
		if err != nil {
			return res, fmt.Errorf("migrating %s/%s candidate %d %q: %w (%d files moved so far; run again to resume)",
				m.Project, m.Model, m.File.OwnerID, m.File.Path, err, res.Moved)
		}
		if ok {
			res.Moved++
			res.MovedBytes += m.File.Size
		} else {
			res.Skipped++
		}
	}
	return res, nil
}

// moveFile moves one file as Migrate describes. It reports false when the row changed meanwhile.
func moveFile(ctx context.Context, store metadata.Store, src, dst Backend, f *metadata.File, opts MigrateOptions) (bool, error) {
	rc, _, err := src.Blobs.Get(ctx, f.BlobKey, backends.All)
	if err != nil {
		return false, fmt.Errorf("reading the source blob: %w", err)
	}
	defer rc.Close()
	var body io.Reader = rc
	if opts.Progress != nil {
		body = io.TeeReader(rc, progressWriter(opts.Progress))
	}
	newKey := blobkey.File(f.OwnerID) // fsck sees the copy as one of the candidate's blobs
	// Checked hashes the stream into dst and fails (leaving nothing) unless it matches the row's sha256:
	// this verifies the source read and the copy in one pass.
	info, err := dst.Blobs.Put(ctx, newKey, body, f.Size, backends.PutOptions{ContentType: f.ContentType, SHA256: f.SHA256})
	if err != nil {
		return false, fmt.Errorf("copying: %w", err)
	}
	if info.Size != f.Size || info.SHA256 != f.SHA256 {
		_ = dst.Blobs.Delete(context.WithoutCancel(ctx), newKey)
		return false, fmt.Errorf("copy has %d bytes and sha256 %s, the row says %d and %s", info.Size, info.SHA256, f.Size, f.SHA256)
	}
	queue, shared := store.(metadata.BlobDeletionQueue)
	err = store.Update(ctx, func(ctx context.Context) error {
		if err := store.SwitchFileBackend(ctx, f.OwnerID, f.Path, f.BlobKey, dst.Name, newKey); err != nil || !shared {
			return err
		}
		delay := cmp.Or(opts.DeletionDelay, artifact.DefaultDeletionDelay)
		if p, ok := src.Blobs.Redirect(); ok {
			delay = max(delay, p.Expiry+p.Grace)
		}
		return queue.QueueBlobDeletion(ctx, src.Name, f.BlobKey, time.Now().Add(delay))
	})
	if errors.Is(err, metadata.ErrConflict) || errors.Is(err, metadata.ErrNotFound) {
		_ = dst.Blobs.Delete(context.WithoutCancel(ctx), newKey)
		return false, nil
	}
	if err != nil {
		_ = dst.Blobs.Delete(context.WithoutCancel(ctx), newKey)
		return false, fmt.Errorf("switching the row: %w", err)
	}
	if shared {
		return true, nil // a replica deletes the source blob once no download can be reading it
	}
	// The row points at the copy: the source is unreferenced. A failed delete leaves an orphan for fsck.
	if err := src.Blobs.Delete(ctx, f.BlobKey); err != nil && !errors.Is(err, backends.ErrNotFound) && opts.Leftover != nil {
		opts.Leftover(f.BlobKey, err)
	}
	return true, nil
}

// progressWriter turns MigrateOptions.Progress into the writer of an io.TeeReader.
type progressWriter func(n int)

func (p progressWriter) Write(b []byte) (int, error) {
	p(len(b))
	return len(b), nil
}
