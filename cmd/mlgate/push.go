package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/transfer"
)

// clientFlags are the flags push and pull share: which server and project, and how.
type clientFlags struct {
	url, project, token string
	parallel            int
	asJSON              bool
}

// addClientFlags defines the shared flags on fs. The token's default is not shown in -h (it is a
// secret): an empty --token falls back to MLGATE_TOKEN in client().
func addClientFlags(fs *flag.FlagSet, f *clientFlags) {
	fs.StringVar(&f.url, "url", "", "the server's root URL, e.g. http://127.0.0.1:5000 (default $MLGATE_URL)")
	fs.StringVar(&f.project, "project", "", "the project: its path (team/vision) or numeric id")
	fs.StringVar(&f.token, "token", "", "an access token of the project, for a server run with --auth (default $MLGATE_TOKEN)")
	fs.IntVar(&f.parallel, "parallel", 4, "files transferred at once")
	fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON on stdout")
}

func (f *clientFlags) client() (*transfer.Client, error) {
	if f.url == "" {
		f.url = os.Getenv("MLGATE_URL")
	}
	if f.token == "" {
		f.token = os.Getenv("MLGATE_TOKEN")
	}
	if f.parallel < 1 {
		return nil, fmt.Errorf("--parallel must be at least 1, not %d", f.parallel)
	}
	return transfer.NewClient(transfer.Config{URL: f.url, Project: f.project, Token: f.token})
}

// pushLong is what `mlgate push --help` says.
const pushLong = `Uploads the files of each DIR (recursively, with their paths relative to DIR) and each FILE (under its
base name) as version VERSION (a semver) of model MODEL, creating them when they do not exist. Every
file's sha256 is sent for the server to verify; files the version already has with the same sha256 are
not sent again, so an interrupted push is finished by running it again.`

// definePush is mlgate push. It exits 1 when some files failed (they are named).
func definePush(fs *flag.FlagSet) runFunc {
	var f clientFlags
	addClientFlags(fs, &f)
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		pos := fs.Args()
		if len(pos) < 2 {
			return usageErrorf("push needs MODEL@VERSION and at least one DIR or FILE")
		}
		ref, err := transfer.ParseRef(pos[0], false)
		if err != nil {
			return err
		}
		c, err := f.client()
		if err != nil {
			return err
		}
		rep, err := c.Push(ctx, transfer.PushOptions{Package: ref.Package, Sources: pos[1:], Parallel: f.parallel,
			Progress: transfer.NewProgress(stderr, "pushing")})
		return transferOutcome(reportTransfer(stdout, rep, err, f.asJSON))
	}
}

// transferOutcome turns a report's ok into the command's error: exit 1 once failed files are named.
func transferOutcome(ok bool, err error) error {
	if err == nil && !ok {
		return errProblems
	}
	return err
}

// reportTransfer prints a push's or pull's report and turns ErrIncomplete into a false ok.
func reportTransfer(stdout io.Writer, rep *transfer.Report, err error, asJSON bool) (bool, error) {
	if rep == nil {
		return false, err
	}
	if asJSON {
		if encErr := json.NewEncoder(stdout).Encode(rep); encErr != nil {
			return false, encErr
		}
	} else {
		transfer.PrintSummary(stdout, rep)
	}
	if errors.Is(err, transfer.ErrIncomplete) {
		return false, nil
	}
	return err == nil, err
}
