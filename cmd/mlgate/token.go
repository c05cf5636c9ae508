package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

const tokenUsage = `usage: mlgate token <command> [flags]

commands:
  create --project P --scope read|write|admin [--name N] [--expires 30d]
            issue a token and print its secret, once
  list      list tokens (never their secrets)
  revoke ID revoke a token

Every command takes --data-dir. The database allows one process at a time: stop the server first.
`

// runToken manages API tokens offline, in the data dir's database.
func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) == 0 {
			fmt.Fprint(stderr, tokenUsage)
			return errors.New("token: a command is required")
		}
		fmt.Fprint(stdout, tokenUsage)
		return flag.ErrHelp
	}
	cmd, args := args[0], args[1:]
	cfg := &config{}
	fs := flag.NewFlagSet("mlgate token "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addDataDirFlag(fs, cfg)
	switch cmd {
	case "create":
		var req auth.TokenRequest
		var scope, expires string
		fs.StringVar(&req.ProjectPath, "project", "", "project path the token reaches, e.g. team/vision (required)")
		fs.StringVar(&scope, "scope", "", "read (GET only), write, or admin (required)")
		fs.StringVar(&req.Name, "name", "", "a label to recognise the token by")
		fs.StringVar(&expires, "expires", "", "lifetime such as 30d, 12h or 2w; empty: never")
		if err := parseAll(fs, args, 0); err != nil {
			return err
		}
		if req.ProjectPath == "" {
			return errors.New("token create: --project is required")
		}
		var ok bool
		if req.Scope, ok = metadata.ParseTokenScope(scope); !ok {
			return fmt.Errorf("token create: --scope %q: want read, write or admin", scope)
		}
		ttl, err := parseLifetime(expires)
		if err != nil {
			return fmt.Errorf("token create: --expires: %w", err)
		}
		req.TTL = ttl
		store, err := openTokenStore(cfg, true)
		if err != nil {
			return err
		}
		defer store.Close()
		secret, tok, err := auth.IssueToken(ctx, store, req)
		if err != nil {
			return fmt.Errorf("token create: %w", err)
		}
		// The secret alone on stdout, so that TOKEN=$(mlgate token create …) works; the rest is for humans.
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "created token %s for project %s, scope %s, expires %s.\n"+
			"This is the only time the secret is shown: store it now.\n",
			tok.ID, tok.ProjectPath, tok.Scope, expiryText(tok))
		return nil
	case "list":
		if err := parseAll(fs, args, 0); err != nil {
			return err
		}
		store, err := openTokenStore(cfg, false)
		if err != nil {
			return err
		}
		defer store.Close()
		toks, err := store.ListTokens(ctx)
		if err != nil {
			return err
		}
		if len(toks) == 0 {
			fmt.Fprintln(stdout, "no tokens")
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROJECT\tSCOPE\tCREATED\tEXPIRES\tSTATUS")
		now := time.Now()
		for _, t := range toks {
			status := "active"
			switch {
			case t.Revoked:
				status = "revoked"
			case t.Expired(now):
				status = "expired"
			}
			name := t.Name
			if name == "" {
				name = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, name, t.ProjectPath, t.Scope,
				t.CreatedAt.UTC().Format(time.RFC3339), expiryText(t), status)
		}
		return tw.Flush()
	case "revoke":
		if err := parseAll(fs, args, 1); err != nil {
			return err
		}
		id := fs.Arg(0)
		store, err := openTokenStore(cfg, false)
		if err != nil {
			return err
		}
		defer store.Close()
		if err := store.RevokeToken(ctx, id); err != nil {
			return fmt.Errorf("token revoke: %w", err)
		}
		fmt.Fprintf(stdout, "revoked token %s\n", id)
		return nil
	default:
		return fmt.Errorf("token: unknown command %q\n\n%s", cmd, tokenUsage)
	}
}

// parseAll parses flags placed before or after the positional arguments, of which there must be exactly
// npos: `mlgate token revoke ID --data-dir D` reads naturally, but flag stops at the first non-flag.
func parseAll(fs *flag.FlagSet, args []string, npos int) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != npos {
		return fmt.Errorf("%s: want %d argument(s), got %q", fs.Name(), npos, pos)
	}
	return fs.Parse(pos) // leaves them in fs.Args()
}

// parseLifetime reads 30d, 2w, or any Go duration (12h, 90m); "" and "never" are 0 (no expiry).
func parseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "never" {
		return 0, nil
	}
	var d time.Duration
	var err error
	switch unit := s[len(s)-1]; unit {
	case 'd', 'w':
		var n int64
		n, err = strconv.ParseInt(s[:len(s)-1], 10, 32)
		d = time.Duration(n) * 24 * time.Hour
		if unit == 'w' {
			d *= 7
		}
	default:
		d, err = time.ParseDuration(s)
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive lifetime such as 30d, 2w or 12h", s)
	}
	return d, nil
}

func expiryText(t *metadata.Token) string {
	if t.ExpiresAt.IsZero() {
		return "never"
	}
	return t.ExpiresAt.UTC().Format(time.RFC3339)
}

// openTokenStore opens only the metadata database: tokens need no blob storage. Without create, a data
// dir that has no database is an error rather than a new empty one.
func openTokenStore(cfg *config, create bool) (*boltstore.Store, error) {
	if create {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	} else if _, err := os.Stat(cfg.dbPath()); err != nil {
		return nil, fmt.Errorf("no mlgate database at %s (wrong --data-dir?): %w", cfg.dbPath(), err)
	}
	store, err := boltstore.Open(cfg.dbPath(), boltstore.WithTimeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", cfg.dbPath(), err)
	}
	return store, nil
}
