package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// LeftoverSweeper is implemented by backends whose staging area holds multipart uploads beside staging
// files (localfs), so that a running server can sweep each kind with its own grace period.
type LeftoverSweeper interface {
	// SweepLeftovers removes staging entries older than stagingGrace and multipart uploads untouched
	// for uploadGrace, and returns the names it removed of each. Its error joins the removals that
	// failed, after those that worked.
	SweepLeftovers(stagingGrace, uploadGrace time.Duration) (staging, uploads []string, err error)
}

// SweepOptions tune Sweep.
type SweepOptions struct {
	// Grace spares unreferenced blobs and staging files younger than this: an upload in flight has
	// stored its blob but not yet committed its row, or is still writing its staging file.
	Grace time.Duration
	// MultipartGrace spares multipart uploads that received a part more recently than this: their
	// client may still send the next part and complete them.
	MultipartGrace time.Duration
	// Spare keeps an unreferenced blob that is not garbage after all (see FsckOptions.Spare).
	Spare func(key string) bool
	Log   *slog.Logger
	// Now is the clock of blob ages; nil means time.Now.
	Now func() time.Time
}

// Removal is one thing Sweep removed.
type Removal struct {
	Backend string
	// Kind is "unreferenced_blob", "staging_leftover" or "multipart_upload".
	Kind string
	Key  string // the blob key, or the staging path
}

// Sweep removes, on every backend of s, what fsck calls garbage once it is older than its grace
// period: blobs no file row references (never one opts.Spare reports in use), staging leftovers, and
// abandoned multipart uploads of backends that keep them in their staging area (LeftoverSweeper). It
// works beside a running server, which is what the grace periods are for, and logs every removal. It
// never deletes metadata and never checks indexes (fsck does). Errors: FsckBackend's, and staging
// sweeps that failed, each prefixed with `backend "<name>": `, joined; the removals that worked are
// returned with them.
func Sweep(ctx context.Context, s Storage, opts SweepOptions) ([]Removal, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var (
		removed []Removal
		errs    []error
	)
	for _, b := range s.Backends {
		rows := rowsOn{rows: s.Store, s: &s, name: b.Name}
		rep, err := FsckBackend(ctx, rows, b.Blobs, FsckOptions{Repair: true, Grace: opts.Grace, Spare: opts.Spare,
			Log: opts.Log.With("backend", b.Name), Now: opts.Now})
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %q: %w", b.Name, err))
		} else {
			for _, p := range rep.Problems {
				if p.Kind == "unreferenced_blob" && p.Fixed {
					removed = append(removed, Removal{Backend: b.Name, Kind: p.Kind, Key: p.Key})
				}
			}
		}
		ls, ok := b.Staging.(LeftoverSweeper)
		if !ok {
			continue
		}
		staging, uploads, err := ls.SweepLeftovers(opts.Grace, opts.MultipartGrace)
		for _, name := range staging {
			opts.Log.Info("sweeper removed a staging leftover", "backend", b.Name, "path", name)
			removed = append(removed, Removal{Backend: b.Name, Kind: "staging_leftover", Key: name})
		}
		for _, name := range uploads {
			opts.Log.Info("sweeper removed an abandoned multipart upload", "backend", b.Name, "path", name)
			removed = append(removed, Removal{Backend: b.Name, Kind: "multipart_upload", Key: name})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("backend %q: %w", b.Name, err))
		}
	}
	return removed, errors.Join(errs...)
}

// SpareShared is the FsckOptions.Spare of a check that runs while servers write to store: it spares what
// inUse reports (a download of this process reads the blob), and, when store is shared by several
// processes (metadata.BlobDeletionQueue), every blob that a file row or a queued deletion names at the
// moment of asking, read in one transaction, so that a blob committed or replaced on another replica
// since the rows were read is never taken for garbage. A failure to ask spares the blob: the next sweep
// asks again. inUse may be nil.
func SpareShared(ctx context.Context, store any, inUse func(key string) bool) func(key string) bool {
	q, shared := store.(metadata.BlobDeletionQueue)
	return func(key string) bool {
		if inUse != nil && inUse(key) {
			return true
		}
		if !shared {
			return false
		}
		referenced, err := q.BlobReferenced(ctx, key)
		return err != nil || referenced
	}
}
