package main

import (
	"context"
	"flag"
	"io"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/transfer"
)

// pullLong is what `mlgate pull --help` says.
const pullLong = `Downloads every file of a model version (by semver, or by an alias of the model registry) or of a
candidate into DIR, keeping their paths. Each file is received under a temporary name beside its
destination (.<name>.mlgate-partial), its sha256 checked, then renamed into place. An interrupted pull
is continued by running it again: partial files are resumed with Range requests, and files already in
DIR with the right sha256 are not received again. Exits 1 naming any file that failed.`

// definePull is mlgate pull. It exits 1 when some files failed (they are named).
func definePull(fs *flag.FlagSet) runFunc {
	var f clientFlags
	addClientFlags(fs, &f)
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		ref, err := transfer.ParseRef(fs.Arg(0), true)
		if err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		rep, err := c.Pull(ctx, transfer.PullOptions{Ref: ref, Dir: fs.Arg(1), Parallel: f.parallel,
			Progress: transfer.NewProgress(stderr, "pulling")})
		return transferOutcome(reportTransfer(stdout, rep, err, f.asJSON))
	}
}
