package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/transfer"
)

const pullUsage = `usage: mlgate pull --url URL --project P [--token T] [--parallel 4] [--json] MODEL@VERSION|MODEL@ALIAS|candidate:IID DIR

Downloads every file of a model version (by semver, or by an alias of the model registry) or of a
candidate into DIR, keeping their paths. Each file is received under a temporary name beside its
destination (.<name>.mlgate-partial), its sha256 checked, then renamed into place. An interrupted pull
is continued by running it again: partial files are resumed with Range requests, and files already in
DIR with the right sha256 are not received again. Exits 1 naming any file that failed.

flags:
`

// pullFlagSet defines every flag of mlgate pull.
func pullFlagSet(f *clientFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mlgate pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pullUsage)
		fs.PrintDefaults()
	}
	addClientFlags(fs, f)
	return fs
}

// runPull runs `mlgate pull`. ok is false when some files failed (they are named; exit 1).
func runPull(ctx context.Context, args []string, stdout, stderr io.Writer) (ok bool, err error) {
	var f clientFlags
	fs := pullFlagSet(&f, stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return false, err
	}
	if len(pos) != 2 {
		fs.Usage()
		return false, errors.New("pull needs MODEL@VERSION, MODEL@ALIAS or candidate:IID, and DIR")
	}
	ref, err := transfer.ParseRef(pos[0], true)
	if err != nil {
		return false, err
	}
	c, err := f.client()
	if err != nil {
		return false, err
	}
	rep, err := c.Pull(ctx, transfer.PullOptions{Ref: ref, Dir: pos[1], Parallel: f.parallel,
		Progress: transfer.NewProgress(stderr, "pulling")})
	return reportTransfer(stdout, rep, err, f.asJSON)
}
