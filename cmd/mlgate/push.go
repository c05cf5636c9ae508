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

// parseInterleaved parses fs from args and returns the positional arguments, which may come before,
// between or after the flags (mlgate push m@1.0.0 ./dir --url …). After "--" every argument is
// positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

const pushUsage = `usage: mlgate push --url URL --project P [--token T] [--parallel 4] [--json] MODEL@VERSION DIR|FILE…

Uploads the files of each DIR (recursively, with their paths relative to DIR) and each FILE (under its
base name) as version VERSION (a semver) of model MODEL, creating them when they do not exist. Every
file's sha256 is sent for the server to verify; files the version already has with the same sha256 are
not sent again, so an interrupted push is finished by running it again.

flags:
`

// pushFlagSet defines every flag of mlgate push.
func pushFlagSet(f *clientFlags, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("mlgate push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), pushUsage)
		fs.PrintDefaults()
	}
	addClientFlags(fs, f)
	return fs
}

// runPush runs `mlgate push`. ok is false when some files failed (they are named; exit 1).
func runPush(ctx context.Context, args []string, stdout, stderr io.Writer) (ok bool, err error) {
	var f clientFlags
	fs := pushFlagSet(&f, stderr)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return false, err
	}
	if len(pos) < 2 {
		fs.Usage()
		return false, errors.New("push needs MODEL@VERSION and at least one DIR or FILE")
	}
	ref, err := transfer.ParseRef(pos[0], false)
	if err != nil {
		return false, err
	}
	c, err := f.client()
	if err != nil {
		return false, err
	}
	rep, err := c.Push(ctx, transfer.PushOptions{Package: ref.Package, Sources: pos[1:], Parallel: f.parallel,
		Progress: transfer.NewProgress(stderr, "pushing")})
	return reportTransfer(stdout, rep, err, f.asJSON)
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
