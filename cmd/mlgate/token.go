package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/metadata"
)

// tokenLong is what `mlgate token --help` says beside the list of its commands.
const tokenLong = `Every command works on a running server with --url URL [--token T] (an instance token under --auth;
MLGATE_TOKEN), or offline with --data-dir when no server holds the database.`

// tokenTarget is where a token command works: a running server (--url) or the data dir's database.
type tokenTarget struct {
	cfg                    config
	serverURL, serverToken string
}

func defineTokenTarget(fs *flag.FlagSet) *tokenTarget {
	t := &tokenTarget{}
	addDataDirFlag(fs, &t.cfg)
	addConfigFlag(fs, &t.cfg)
	addServerFlags(fs, &t.serverURL, &t.serverToken)
	return t
}

// online returns the admin client when --url is given, nil otherwise.
func (t *tokenTarget) online(fs *flag.FlagSet) (*adminClient, error) {
	if t.serverURL == "" {
		return nil, nil
	}
	if explicitFlags(fs)["data-dir"] {
		return nil, errURLAndDataDir
	}
	return newAdminClient(t.serverURL, t.serverToken)
}

// defineTokenCreate issues a project token (or an instance token) and prints its secret, once.
func defineTokenCreate(fs *flag.FlagSet) runFunc {
	target := defineTokenTarget(fs)
	cfg := &target.cfg
	var req auth.TokenRequest
	var scope, expires string
	fs.StringVar(&req.ProjectPath, "project", "", "project path the token reaches, e.g. team/vision (required without --instance)")
	fs.BoolVar(&req.Instance, "instance", false, "an instance token: administers the server (/metrics, backups, tokens), reaches no project")
	fs.StringVar(&scope, "scope", "", "read (GET only), write, or admin (required for a project token; admin for --instance)")
	fs.StringVar(&req.Name, "name", "", "a label to recognise the token by")
	fs.StringVar(&expires, "expires", "", "lifetime such as 30d, 12h or 2w; empty: never")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		online := func() (*adminClient, error) { return target.online(fs) }
		switch {
		case req.Instance && req.ProjectPath != "":
			return errors.New("token create: an instance token reaches no project: give --instance or --project, not both")
		case !req.Instance && req.ProjectPath == "":
			return errors.New("token create: --project is required (or --instance for an instance token)")
		case req.Instance && scope == "":
			scope = "admin"
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
		client, err := online()
		if err != nil {
			return err
		}
		var secret string
		var tok *metadata.Token
		if client != nil {
			var out gateway.TokenJSON
			err = client.json(ctx, http.MethodPost, "/api/v4/admin/tokens", gateway.CreateTokenRequest{
				Name: req.Name, Instance: req.Instance, ProjectPath: req.ProjectPath, Scope: req.Scope,
				ExpiresInSeconds: int64(req.TTL / time.Second),
			}, http.StatusCreated, &out)
			if err != nil {
				return fmt.Errorf("token create: %w", err)
			}
			secret = out.Secret
			tok = &metadata.Token{ID: out.ID, Instance: out.Instance, ProjectPath: out.ProjectPath, Scope: out.Scope, ExpiresAt: out.ExpiresAt}
		} else {
			store, err := openTokenStore(ctx, fs, cfg, true)
			if err != nil {
				return err
			}
			defer store.Close()
			if secret, tok, err = auth.IssueToken(ctx, store, req); err != nil {
				return fmt.Errorf("token create: %w", err)
			}
		}
		// The secret alone on stdout, so that TOKEN=$(mlgate token create …) works; the rest is for humans.
		fmt.Fprintln(stdout, secret)
		fmt.Fprintf(stderr, "created token %s for %s, scope %s, expires %s.\n"+
			"This is the only time the secret is shown: store it now.\n",
			tok.ID, tokenReach(tok), tok.Scope, expiryText(tok))
		return nil
	}
}

// defineTokenList lists tokens, never their secrets.
func defineTokenList(fs *flag.FlagSet) runFunc {
	target := defineTokenTarget(fs)
	cfg := &target.cfg
	return func(ctx context.Context, fs *flag.FlagSet, stdout, _ io.Writer) error {
		online := func() (*adminClient, error) { return target.online(fs) }
		client, err := online()
		if err != nil {
			return err
		}
		var toks []*metadata.Token
		if client != nil {
			var out []gateway.TokenJSON
			if err := client.json(ctx, http.MethodGet, "/api/v4/admin/tokens", nil, http.StatusOK, &out); err != nil {
				return fmt.Errorf("token list: %w", err)
			}
			for _, t := range out {
				toks = append(toks, &metadata.Token{ID: t.ID, Name: t.Name, Instance: t.Instance, ProjectPath: t.ProjectPath,
					Scope: t.Scope, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Status == "revoked"})
			}
		} else {
			store, err := openTokenStore(ctx, fs, cfg, false)
			if err != nil {
				return err
			}
			defer store.Close()
			if toks, err = store.ListTokens(ctx); err != nil {
				return err
			}
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
			project := t.ProjectPath
			if t.Instance {
				project = "(instance)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, name, project, t.Scope,
				t.CreatedAt.UTC().Format(time.RFC3339), expiryText(t), status)
		}
		return tw.Flush()
	}
}

// defineTokenRevoke revokes the token with the id given.
func defineTokenRevoke(fs *flag.FlagSet) runFunc {
	target := defineTokenTarget(fs)
	cfg := &target.cfg
	return func(ctx context.Context, fs *flag.FlagSet, stdout, _ io.Writer) error {
		online := func() (*adminClient, error) { return target.online(fs) }
		id := fs.Arg(0)
		client, err := online()
		if err != nil {
			return err
		}
		if client != nil {
			if err := client.json(ctx, http.MethodDelete, "/api/v4/admin/tokens/"+url.PathEscape(id), nil, http.StatusNoContent, nil); err != nil {
				return fmt.Errorf("token revoke: %w", err)
			}
		} else {
			store, err := openTokenStore(ctx, fs, cfg, false)
			if err != nil {
				return err
			}
			defer store.Close()
			if err := store.RevokeToken(ctx, id); err != nil {
				return fmt.Errorf("token revoke: %w", err)
			}
		}
		fmt.Fprintf(stdout, "revoked token %s\n", id)
		return nil
	}
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

// tokenReach says what a token reaches: its project, or the whole server.
func tokenReach(t *metadata.Token) string {
	if t.Instance {
		return "the whole server (instance token)"
	}
	return "project " + t.ProjectPath
}

func expiryText(t *metadata.Token) string {
	if t.ExpiresAt.IsZero() {
		return "never"
	}
	return t.ExpiresAt.UTC().Format(time.RFC3339)
}

// openTokenStore opens only the metadata store (see openMetadata): tokens need no blob storage. Without
// create, a bbolt data dir that has no database is an error rather than a new empty one. It reads
// --config first, for its metadata section; errors are loadFile's and openMetadata's.
func openTokenStore(ctx context.Context, fs *flag.FlagSet, cfg *config, create bool) (metadata.Store, error) {
	if err := cfg.loadFile(explicitFlags(fs)); err != nil {
		return nil, err
	}
	store, _, err := openMetadata(ctx, cfg, create, nil)
	return store, err
}
