// Package fsck cross-checks metadata against blob storage: it finds blobs that no file row references
// (left by a crash between storing a blob and committing its row), file rows whose blob is missing or
// has the wrong size, leftovers in a backend's staging area, and broken metadata indexes. With Repair it
// removes what is safe to remove: unreferenced blobs and staging leftovers. It never deletes metadata:
// a row without its blob is reported for a human to decide.
package fsck

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

// StagingSweeper is implemented by backends that keep temporary files of their own (localfs), so that
// uploads killed mid-way leave nothing a sweep cannot find.
type StagingSweeper interface {
	// StagingOrphans lists leftovers older than olderThan.
	StagingOrphans(olderThan time.Duration) ([]string, error)
	// CleanStaging removes leftovers older than olderThan.
	CleanStaging(olderThan time.Duration) error
}

// Verifier is implemented by stores that can check their own indexes.
type Verifier interface {
	Verify(ctx context.Context) error
}

// Options tune a check.
type Options struct {
	// Repair removes unreferenced blobs and staging leftovers.
	Repair bool
	// Grace spares blobs and staging files younger than this, which may belong to uploads in flight.
	// An offline check (the store's lock is held, so no server runs) can use 0.
	Grace time.Duration
	// Staging, when set, is checked for leftovers too.
	Staging StagingSweeper
	Log     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Problem is one finding.
type Problem struct {
	Kind   string // "unreferenced_blob", "missing_blob", "size_mismatch", "staging_leftover", "index"
	Key    string // blob key or staging path
	Detail string
	Fixed  bool
}

// Report is the outcome of a check.
type Report struct {
	FilesChecked int
	BlobsChecked int
	Problems     []Problem
}

// Clean reports whether nothing is left to fix.
func (r *Report) Clean() bool {
	for _, p := range r.Problems {
		if !p.Fixed {
			return false
		}
	}
	return true
}

// blobPrefix is where mlgate keeps committed files (see gateway's blob key scheme).
const blobPrefix = "c/"

// listPage is how many blobs one List call asks for.
const listPage = 1000

// Check runs every check. Its error is only for failures to read metadata or storage; findings go into
// the report.
func Check(ctx context.Context, store metadata.Store, backend backends.Backend, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rep := &Report{}
	if v, ok := store.(Verifier); ok {
		if err := v.Verify(ctx); err != nil {
			rep.Problems = append(rep.Problems, Problem{Kind: "index", Detail: err.Error()})
		}
	}

	// Referenced blobs, by key. One entry per file row: memory grows with the number of files, not bytes.
	type ref struct {
		file *metadata.File
		seen bool
	}
	refs := map[string]*ref{}
	err := store.ForEachFile(ctx, func(f *metadata.File) error {
		rep.FilesChecked++
		refs[f.BlobKey] = &ref{file: f}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading file rows: %w", err)
	}

	cutoff := opts.Now().Add(-opts.Grace)
	after := ""
	for {
		items, next, err := backend.List(ctx, blobPrefix, after, listPage)
		if err != nil {
			return nil, fmt.Errorf("listing blobs: %w", err)
		}
		for _, it := range items {
			rep.BlobsChecked++
			r, ok := refs[it.Key]
			if ok {
				r.seen = true
				if it.Size != r.file.Size {
					rep.Problems = append(rep.Problems, Problem{Kind: "size_mismatch", Key: it.Key,
						Detail: fmt.Sprintf("file %q of candidate %d: row says %d bytes, blob has %d",
							r.file.Path, r.file.CandidateID, r.file.Size, it.Size)})
				}
				continue
			}
			if !strings.HasPrefix(it.Key, blobPrefix) || it.ModTime.After(cutoff) {
				continue
			}
			p := Problem{Kind: "unreferenced_blob", Key: it.Key, Detail: fmt.Sprintf("%d bytes", it.Size)}
			if opts.Repair {
				if err := backend.Delete(ctx, it.Key); err != nil && !errors.Is(err, backends.ErrNotFound) {
					p.Detail += "; delete failed: " + err.Error()
				} else {
					p.Fixed = true
					opts.Log.Info("removed unreferenced blob", "key", it.Key, "size", it.Size)
				}
			}
			rep.Problems = append(rep.Problems, p)
		}
		if next == "" {
			break
		}
		after = next
	}
	for key, r := range refs {
		if !r.seen {
			rep.Problems = append(rep.Problems, Problem{Kind: "missing_blob", Key: key,
				Detail: fmt.Sprintf("file %q of candidate %d has no blob", r.file.Path, r.file.CandidateID)})
		}
	}

	if opts.Staging != nil {
		left, err := opts.Staging.StagingOrphans(opts.Grace)
		if err != nil {
			return nil, fmt.Errorf("listing staging leftovers: %w", err)
		}
		fixed := false
		if opts.Repair && len(left) > 0 {
			if err := opts.Staging.CleanStaging(opts.Grace); err != nil {
				return nil, fmt.Errorf("cleaning staging: %w", err)
			}
			fixed = true
		}
		for _, p := range left {
			rep.Problems = append(rep.Problems, Problem{Kind: "staging_leftover", Key: p, Fixed: fixed})
		}
	}
	return rep, nil
}
