package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/mlgate/mlgate/metadata"
)

// defineFsck is the fsck command: it checks a data dir with maintenance.Fsck, and exits 1 when problems
// remain. On bbolt it holds the database lock for the whole run, so no server can be writing: blobs of
// uploads in flight cannot exist, and no grace period is needed. PostgreSQL has no such lock, and replicas
// may serve while it runs, so there a blob counts as unreferenced only when it is older than --grace and
// no row or queued deletion names it when asked again just before it is reported (maintenance.SpareShared).
func defineFsck(fs *flag.FlagSet) runFunc {
	cfg := &config{}
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	repair := fs.Bool("repair", false, "remove unreferenced blobs and staging leftovers")
	grace := fs.Duration("grace", defaultSweepGrace,
		"with PostgreSQL metadata (replicas may be serving), spare unreferenced blobs younger than this: they may belong to uploads in flight; bbolt needs none")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		if err := cfg.loadFile(explicitFlags(fs)); err != nil {
			return err
		}
		if *grace < 0 {
			return usageErrorf("fsck: --grace must not be negative")
		}
		clean, err := fsck(ctx, cfg, *repair, *grace, stdout, stderr)
		if err == nil && !clean {
			return errProblems
		}
		return err
	}
}

// fsck checks (and with repair, cleans) the store and backends of cfg, printing what it finds.
func fsck(ctx context.Context, cfg *config, repair bool, sharedGrace time.Duration, stdout, stderr io.Writer) (clean bool, err error) {
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		return false, err
	}
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		return false, err
	}
	defer st.Close()

	opts := maintenance.FsckOptions{Repair: repair, Log: log}
	if _, shared := st.store.(metadata.BlobDeletionQueue); shared {
		opts.Grace = sharedGrace
		opts.Spare = maintenance.SpareShared(ctx, st.store, nil)
	}
	res, err := maintenance.Fsck(ctx, st.set.maintenance(st.store), opts)
	for _, b := range res.Backends {
		fmt.Fprintf(stdout, "backend %s: %d file rows, %d blobs, %d problems\n", b.Name, b.FilesChecked, b.BlobsChecked, len(b.Problems))
	}
	if err != nil {
		return false, err
	}
	total := res.Total
	for _, p := range total.Problems {
		state := "found"
		if p.Fixed {
			state = "repaired"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", state, p.Kind, p.Key, p.Detail)
	}
	// The answer to "is every file's blob there?" (after a restore, say), on a line of its own.
	kinds := map[string]int{}
	for _, p := range total.Problems {
		kinds[p.Kind]++
	}
	if lacking := kinds["missing_blob"] + kinds["size_mismatch"] + kinds["unknown_backend"]; lacking == 0 {
		fmt.Fprintf(stdout, "blobs: all %d file rows have their blob in their backend\n", total.FilesChecked)
	} else {
		fmt.Fprintf(stdout, "blobs: %d of %d file rows lack their blob (%d missing, %d of the wrong size, %d on an undeclared backend)\n",
			lacking, total.FilesChecked, kinds["missing_blob"], kinds["size_mismatch"], kinds["unknown_backend"])
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
