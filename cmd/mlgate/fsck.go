package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/gateway/fsck"
)

// runFsck checks a data dir offline. It holds the database lock for the whole run, so no server can be
// writing: blobs of uploads in flight cannot exist, and no grace period is needed. clean reports whether
// nothing is left to fix.
func runFsck(ctx context.Context, args []string, stdout, stderr io.Writer) (clean bool, err error) {
	cfg := &config{}
	fs := flag.NewFlagSet("mlgate fsck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addDataDirFlag(fs, cfg)
	repair := fs.Bool("repair", false, "remove unreferenced blobs and staging leftovers")
	if err := fs.Parse(args); err != nil {
		return false, err
	}
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		return false, err
	}
	st, err := openStorage(cfg, log)
	if err != nil {
		return false, err
	}
	defer st.Close()

	rep, err := fsck.Check(ctx, st.store, st.backend, fsck.Options{Repair: *repair, Staging: st.local, Log: log})
	if err != nil {
		return false, err
	}
	for _, p := range rep.Problems {
		state := "found"
		if p.Fixed {
			state = "repaired"
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", state, p.Kind, p.Key, p.Detail)
	}
	fmt.Fprintf(stdout, "checked %d file rows and %d blobs: %d problems", rep.FilesChecked, rep.BlobsChecked, len(rep.Problems))
	if rep.Clean() {
		fmt.Fprintln(stdout, ", store is clean")
	} else {
		fmt.Fprintln(stdout, ", run with --repair to remove unreferenced blobs; missing blobs need a human")
	}
	return rep.Clean(), nil
}
