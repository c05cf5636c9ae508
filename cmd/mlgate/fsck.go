package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/gateway/fsck"
	"github.com/mlgate/mlgate/metadata"
)

// runFsck checks a data dir offline. It holds the database lock for the whole run, so no server can be
// writing: blobs of uploads in flight cannot exist, and no grace period is needed. clean reports whether
// nothing is left to fix. Every configured backend is checked against the rows that record it (rows
// without a backend belong to the default); rows recorded on a backend the config no longer declares are
// reported as unknown_backend.
func runFsck(ctx context.Context, args []string, stdout, stderr io.Writer) (clean bool, err error) {
	cfg := &config{}
	fs := flag.NewFlagSet("mlgate fsck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	repair := fs.Bool("repair", false, "remove unreferenced blobs and staging leftovers")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	if err := cfg.loadFile(explicitFlags(fs)); err != nil {
		return false, err
	}
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		return false, err
	}
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		return false, err
	}
	defer st.Close()

	total := &fsck.Report{}
	for i, name := range st.set.order {
		in := st.set.insts[name]
		rows := metadata.Store(rowsOn{Store: st.store, set: st.set, name: name})
		if i == 0 {
			// The index check is the store's, not a backend's: run it once.
			rows = rowsOnVerified{rowsOn: rows.(rowsOn), v: st.store}
		}
		opts := fsck.Options{Repair: *repair, Log: log}
		opts.Staging = in.staging
		rep, err := fsck.Check(ctx, rows, in.b, opts)
		if err != nil {
			return false, fmt.Errorf("backend %q: %w", name, err)
		}
		fmt.Fprintf(stdout, "backend %s: %d file rows, %d blobs, %d problems\n", name, rep.FilesChecked, rep.BlobsChecked, len(rep.Problems))
		total.FilesChecked += rep.FilesChecked
		total.BlobsChecked += rep.BlobsChecked
		total.Problems = append(total.Problems, rep.Problems...)
	}
	// Rows on backends that are not configured: no check above saw them.
	err = st.store.ForEachFile(ctx, func(f *metadata.File) error {
		if name := st.set.resolve(f.Backend); st.set.inst(name) == nil {
			total.FilesChecked++
			total.Problems = append(total.Problems, fsck.Problem{Kind: "unknown_backend", Key: f.BlobKey,
				Detail: fmt.Sprintf("file %q of candidate %d is on backend %q, which the config does not declare",
					f.Path, f.CandidateID, name)})
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading file rows: %w", err)
	}
	for _, p := range total.Problems {
		state := "found"
		if p.Fixed {
			state = "repaired"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", state, p.Kind, p.Key, p.Detail)
	}
	fmt.Fprintf(stdout, "checked %d file rows and %d blobs on %d backends: %d problems",
		total.FilesChecked, total.BlobsChecked, len(st.set.order), len(total.Problems))
	if total.Clean() {
		fmt.Fprintln(stdout, ", store is clean")
	} else {
		fmt.Fprintln(stdout, ", run with --repair to remove unreferenced blobs; missing blobs need a human")
	}
	return total.Clean(), nil
}

// rowsOn is the store as fsck.Check sees it for one backend: ForEachFile walks only the rows recorded on
// that backend, so every other backend's blobs and rows stay out of its check.
type rowsOn struct {
	metadata.Store
	set  *backendSet
	name string
}

func (r rowsOn) ForEachFile(ctx context.Context, fn func(*metadata.File) error) error {
	return r.Store.ForEachFile(ctx, func(f *metadata.File) error {
		if r.set.resolve(f.Backend) != r.name {
			return nil
		}
		return fn(f)
	})
}

// rowsOnVerified is rowsOn with the store's index check (fsck.Verifier).
type rowsOnVerified struct {
	rowsOn
	v fsck.Verifier
}

func (r rowsOnVerified) Verify(ctx context.Context) error { return r.v.Verify(ctx) }
