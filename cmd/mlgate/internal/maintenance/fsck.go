package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/metadata"
)

// StagingSweeper is implemented by backends that keep temporary files of their own (localfs), so that
// uploads killed mid-way leave nothing a sweep cannot find. Its errors are failures to read or clean
// the staging area.
type StagingSweeper interface {
	// StagingOrphans lists leftovers older than olderThan.
	StagingOrphans(olderThan time.Duration) ([]string, error)
	// CleanStaging removes leftovers older than olderThan.
	CleanStaging(olderThan time.Duration) error
}

// Verifier is implemented by stores that can check their own indexes.
type Verifier interface {
	// Verify returns an error describing what is broken, nil when nothing is; fsck reports it as an
	// "index" problem.
	Verify(ctx context.Context) error
}

// FsckOptions tune a check.
type FsckOptions struct {
	// Repair removes unreferenced blobs and staging leftovers.
	Repair bool
	// Grace spares blobs and staging files younger than this, which may belong to uploads in flight.
	// An offline check (the store's lock is held, so no server runs) can use 0.
	Grace time.Duration
	// Staging, when set, is checked for leftovers too. Fsck sets it to each Backend's own.
	Staging StagingSweeper
	Log     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Spare, when set, is asked about each blob that the rows read at the start do not reference, just
	// before it would be reported (and with Repair removed); true means it is not garbage: a running
	// server's blob that a download still reads (its deletion is due when the download ends), or, with a
	// store that replicas share, a blob that a row committed since, or a queued deletion, names (see
	// SpareShared).
	Spare func(key string) bool
}

// Problem is one finding.
type Problem struct {
	Kind   string // "unreferenced_blob", "missing_blob", "size_mismatch", "staging_leftover", "index", "unknown_backend"
	Key    string // blob key or staging path
	Detail string
	Fixed  bool
}

// FsckReport is the outcome of a check.
type FsckReport struct {
	FilesChecked int
	BlobsChecked int
	Problems     []Problem
}

// Clean reports whether nothing is left to fix.
func (r *FsckReport) Clean() bool {
	for _, p := range r.Problems {
		if !p.Fixed {
			return false
		}
	}
	return true
}

// listPage is how many blobs one List call asks for.
const listPage = 1000

// FileRows is what fsck reads of the metadata store. A store that also implements Verifier has its
// indexes checked too.
type FileRows interface {
	// ForEachFile calls fn for every file row (see metadata.Store).
	ForEachFile(ctx context.Context, fn func(*metadata.File) error) error
}

// FsckBackend checks one backend against the file rows of store that record it: blobs under
// blobkey.FilePrefix that no row references (older than opts.Grace), rows whose blob is missing or has
// another size, opts.Staging's leftovers, and, when store is a Verifier, its indexes. With opts.Repair
// it removes the unreferenced blobs and the staging leftovers; it never deletes metadata. Its error is
// only for failures to read metadata ("reading file rows: ...") or storage ("listing blobs: ...",
// "listing staging leftovers: ...", "cleaning staging: ..."); findings go into the report.
func FsckBackend(ctx context.Context, store FileRows, backend backends.Backend, opts FsckOptions) (*FsckReport, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rep := &FsckReport{}
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
		items, next, err := backend.List(ctx, blobkey.FilePrefix, after, listPage)
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
							r.file.Path, r.file.OwnerID, r.file.Size, it.Size)})
				}
				continue
			}
			if !strings.HasPrefix(it.Key, blobkey.FilePrefix) || it.ModTime.After(cutoff) {
				continue
			}
			if opts.Spare != nil && opts.Spare(it.Key) {
				continue // not garbage after all: see FsckOptions.Spare
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
				Detail: fmt.Sprintf("file %q of candidate %d has no blob", r.file.Path, r.file.OwnerID)})
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

// FsckResult is the outcome of Fsck.
type FsckResult struct {
	// Backends has one report per configured backend, in config order; on an error, those checked
	// before it.
	Backends []BackendReport
	// Total adds up every backend's counts and problems, and the rows recorded on a backend the
	// configuration does not declare (problem kind "unknown_backend").
	Total FsckReport
}

// BackendReport is the check of one configured backend.
type BackendReport struct {
	Name string
	FsckReport
}

// Fsck checks every backend of s with FsckBackend against the rows that record it (rows recording none
// belong to s.Default), with each Backend's Staging, and the store's indexes once. Rows recorded on a
// backend s does not have are reported as "unknown_backend". It runs offline, where with no server
// writing no upload can be in flight and opts.Grace can be 0; or beside servers sharing a store, with a
// Grace that outlasts an upload and SpareShared as opts.Spare. Errors: FsckBackend's, prefixed with
// `backend "<name>": `, and "reading file rows: ..."; the result holds what was checked before.
func Fsck(ctx context.Context, s Storage, opts FsckOptions) (*FsckResult, error) {
	res := &FsckResult{}
	for i, b := range s.Backends {
		var rows FileRows = rowsOn{rows: s.Store, s: &s, name: b.Name}
		if v, ok := s.Store.(Verifier); ok && i == 0 {
			// The index check is the store's, not a backend's: run it once.
			rows = rowsOnVerified{rowsOn: rows.(rowsOn), v: v}
		}
		o := opts
		o.Staging = b.Staging
		rep, err := FsckBackend(ctx, rows, b.Blobs, o)
		if err != nil {
			return res, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		res.Backends = append(res.Backends, BackendReport{Name: b.Name, FsckReport: *rep})
		res.Total.FilesChecked += rep.FilesChecked
		res.Total.BlobsChecked += rep.BlobsChecked
		res.Total.Problems = append(res.Total.Problems, rep.Problems...)
	}
	// Rows on backends that are not configured: no check above saw them.
	err := s.Store.ForEachFile(ctx, func(f *metadata.File) error {
		if name := s.resolve(f.Backend); s.Backend(name) == nil {
			res.Total.FilesChecked++
			res.Total.Problems = append(res.Total.Problems, Problem{Kind: "unknown_backend", Key: f.BlobKey,
				Detail: fmt.Sprintf("file %q of candidate %d is on backend %q, which the config does not declare",
					f.Path, f.OwnerID, name)})
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("reading file rows: %w", err)
	}
	return res, nil
}

// rowsOn is the store as FsckBackend sees it for one backend: ForEachFile walks only the rows recorded
// on that backend, so every other backend's blobs and rows stay out of its check.
type rowsOn struct {
	rows FileRows
	s    *Storage
	name string
}

func (r rowsOn) ForEachFile(ctx context.Context, fn func(*metadata.File) error) error {
	return r.rows.ForEachFile(ctx, func(f *metadata.File) error {
		if r.s.resolve(f.Backend) != r.name {
			return nil
		}
		return fn(f)
	})
}

// rowsOnVerified is rowsOn with the store's index check.
type rowsOnVerified struct {
	rowsOn
	v Verifier
}

func (r rowsOnVerified) Verify(ctx context.Context) error { return r.v.Verify(ctx) }
