package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path"
	"text/tabwriter"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/mlgate/mlgate/metadata"
	"github.com/schollz/progressbar/v3"
)

const backendsUsage = `usage: mlgate backends <command> [flags]

commands:
  list      show every configured backend: name, type, in-process or plugin, health, version
  check     NAME: put, get, stat and delete a probe blob and verify its sha256
  migrate   --from A --to B [--project P] [--model M] [--dry-run]: move files between backends

Every command reads the backends from --config (MLGATE_CONFIG), or the embedded default
(localfs at <data-dir>/blobs, named "local").
`

// runBackends dispatches the backends subcommands.
func runBackends(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, backendsUsage)
		if len(args) == 0 {
			return errors.New("backends: missing command")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "list":
		return runBackendsList(ctx, args[1:], stdout, stderr)
	case "check":
		return runBackendsCheck(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runBackendsMigrate(ctx, args[1:], stdout, stderr)
	default:
		fmt.Fprint(stderr, backendsUsage)
		return fmt.Errorf("backends: unknown command %q", args[0])
	}
}

// backendsFlags parses the flags every backends command shares, plus the command's own (added by more).
func backendsFlags(name string, args []string, stderr io.Writer, more func(*flag.FlagSet)) (*config, *flag.FlagSet, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("mlgate backends "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	if more != nil {
		more(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if err := cfg.loadFile(explicitFlags(fs)); err != nil {
		return nil, nil, err
	}
	return cfg, fs, nil
}

// openBackendsOnly opens the configured backends without the metadata store, so list and check work
// beside a running server.
func openBackendsOnly(ctx context.Context, cfg *config, log *slog.Logger) (*backendSet, error) {
	specs, def := cfg.backendSpecs()
	return openBackendSet(ctx, specs, def, cfg.routes(), nil, log)
}

// runBackendsList prints one line per configured backend. It fails when a backend is unhealthy.
func runBackendsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, _, err := backendsFlags("list", args, stderr, nil)
	if err != nil {
		return err
	}
	log, _ := newLogger(stderr, "text", "warn")
	set, err := openBackendsOnly(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer set.release()
	tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tRUNS\tHEALTH\tVERSION\tDEFAULT")
	unhealthy := 0
	for _, name := range set.order {
		in := set.insts[name]
		version, err := maintenance.Health(ctx, in.maintenance())
		state := "ok"
		if err != nil {
			state = "error: " + err.Error()
			unhealthy++
		}
		def := ""
		if name == set.def {
			def = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, in.spec.typeName(), in.spec.kind(), state, version, def)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if unhealthy > 0 {
		return fmt.Errorf("%d of %d backends are unhealthy", unhealthy, len(set.order))
	}
	return nil
}

// runBackendsCheck runs maintenance.RoundTrip on one backend and prints its steps.
func runBackendsCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, fs, err := backendsFlags("check", args, stderr, nil)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mlgate backends check [--config F] NAME")
	}
	name := fs.Arg(0)
	log, _ := newLogger(stderr, "text", "warn")
	set, err := openBackendsOnly(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer set.release()
	in := set.inst(name)
	if in == nil {
		return fmt.Errorf("backends check: no backend %q (have %v)", name, set.order)
	}
	rep, err := maintenance.RoundTrip(ctx, in.maintenance())
	for _, st := range rep.Steps {
		fmt.Fprintf(stdout, "%-7s ok  %v\n", st.Name, st.Took.Round(time.Microsecond))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backend %s: round trip of %d bytes ok, sha256 %s\n", name, rep.Size, rep.SHA256)
	return nil
}

const migrateHelp = `mlgate backends migrate --from A --to B [--project P] [--model M] [--dry-run]

Moves the files recorded on backend A to backend B: for each file it copies the blob (streaming, the
sha256 verified on the way), switches the file's row to B in one transaction, then deletes the blob on
A. A file's row points at a complete, verified copy at every moment, so the command can be killed and
run again: files already on B are skipped. A kill between copy and switch leaves a copy on B that no
row references, and one between switch and delete leaves the old blob on A; "mlgate fsck --repair"
removes both.

Files written before mlgate recorded backends per file belong to the default backend.
--project and --model are globs like those of routes (path.Match; "*" alone matches everything).

It opens the metadata database, which a running "mlgate serve" holds locked: stop the server first.
`

// migrateItem is one file to move.
type migrateItem struct {
	file          *metadata.File
	project, slug string
}

// runBackendsMigrate moves files from one backend to another. See migrateHelp.
func runBackendsMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var from, to, project, model string
	var dryRun bool
	cfg, fs, err := backendsFlags("migrate", args, stderr, func(fs *flag.FlagSet) {
		fs.Usage = func() {
			fmt.Fprint(fs.Output(), migrateHelp+"\nflags:\n")
			fs.PrintDefaults()
		}
		fs.StringVar(&from, "from", "", "backend to move files off (required)")
		fs.StringVar(&to, "to", "", "backend to move files to (required)")
		fs.StringVar(&project, "project", "", "only files of projects whose path matches this glob")
		fs.StringVar(&model, "model", "", "only files of models whose name matches this glob")
		fs.BoolVar(&dryRun, "dry-run", false, "print what would move, move nothing")
	})
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backends migrate: unexpected argument %q", fs.Arg(0))
	}
	if from == "" || to == "" {
		return errors.New("backends migrate: --from and --to are required")
	}
	if from == to {
		return errors.New("backends migrate: --from and --to name the same backend")
	}
	for _, g := range []string{project, model} {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("backends migrate: pattern %q: %w", g, err)
		}
	}
	log, _ := newLogger(stderr, "text", "warn")
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("%w (migrate needs the database: stop mlgate serve first)", err)
	}
	defer st.Close()
	src, dst := st.set.inst(from), st.set.inst(to)
	if src == nil || dst == nil {
		return fmt.Errorf("backends migrate: --from %q and --to %q must both be configured backends (have %v)", from, to, st.set.order)
	}

	items, total, err := migrateCandidates(ctx, st, from, project, model)
	if err != nil {
		return err
	}
	if dryRun {
		for _, it := range items {
			fmt.Fprintf(stdout, "would move\t%s\t%s\tcandidate %d\t%s\t%d bytes\n", it.project, it.slug, it.file.CandidateID, it.file.Path, it.file.Size)
		}
		fmt.Fprintf(stdout, "dry run: would move %d files, %d bytes, from %s to %s\n", len(items), total, from, to)
		return nil
	}
	if len(items) == 0 {
		fmt.Fprintf(stdout, "nothing to migrate: no matching file is on backend %s\n", from)
		return nil
	}

	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("%s → %s", from, to)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
	)
	var moved, skipped int
	var movedBytes int64
	for _, it := range items {
		ok, err := migrateOne(ctx, st, src.b, dst.b, to, it.file, bar, stderr)
		if err != nil {
			_ = bar.Exit()
			fmt.Fprintln(stderr)
			return fmt.Errorf("migrating %s/%s candidate %d %q: %w (%d files moved so far; run again to resume)",
				it.project, it.slug, it.file.CandidateID, it.file.Path, err, moved)
		}
		if ok {
			moved++
			movedBytes += it.file.Size
		} else {
			skipped++
		}
	}
	_ = bar.Finish()
	fmt.Fprintf(stdout, "migrated %d files, %d bytes, from %s to %s", moved, movedBytes, from, to)
	if skipped > 0 {
		fmt.Fprintf(stdout, "; %d skipped (changed meanwhile)", skipped)
	}
	fmt.Fprintln(stdout)
	return nil
}

// migrateCandidates lists the rows on backend from whose project and model match the globs, with their
// total size. Projects and models are looked up once per candidate.
func migrateCandidates(ctx context.Context, st *storage, from, projectGlob, modelGlob string) ([]migrateItem, int64, error) {
	type owner struct{ project, slug string }
	owners := map[uint64]owner{}
	var items []migrateItem
	var total int64
	err := st.store.ForEachFile(ctx, func(f *metadata.File) error {
		if st.set.resolve(f.Backend) != from {
			return nil
		}
		o, ok := owners[f.CandidateID]
		if !ok {
			c, err := st.store.Candidate(ctx, metadata.CandidateRef{ID: f.CandidateID})
			if err != nil {
				return err
			}
			m, err := st.store.Model(ctx, metadata.ModelRef{ID: c.ModelID})
			if err != nil {
				return err
			}
			p, err := st.store.Project(ctx, metadata.ProjectRef{ID: m.Project})
			if err != nil {
				return err
			}
			o = owner{p.Path, m.Name}
			owners[f.CandidateID] = o
		}
		if !globMatch(projectGlob, o.project) || !globMatch(modelGlob, o.slug) {
			return nil
		}
		items = append(items, migrateItem{file: f, project: o.project, slug: o.slug})
		total += f.Size
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading file rows: %w", err)
	}
	return items, total, nil
}

// globMatch matches like a route: "" and "*" match everything, anything else is path.Match.
func globMatch(pattern, s string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// migrateOne copies f's blob from src to dst under a fresh key, switches its row, then deletes the source
// blob. It reports false when the row changed meanwhile (the copy is removed again). The fresh key means
// a misconfiguration where A and B are the same storage can never make the delete hit the copy.
func migrateOne(ctx context.Context, st *storage, src, dst backends.Backend, dstName string, f *metadata.File, bar *progressbar.ProgressBar, stderr io.Writer) (bool, error) {
	rc, _, err := src.Get(ctx, f.BlobKey, backends.All)
	if err != nil {
		return false, fmt.Errorf("reading the source blob: %w", err)
	}
	defer rc.Close()
	newKey := blobkey.File(f.CandidateID) // fsck sees the copy as one of the candidate's blobs
	body := io.TeeReader(rc, bar)
	// Checked hashes the stream into dst and fails (leaving nothing) unless it matches the row's sha256:
	// this verifies the source read and the copy in one pass.
	info, err := dst.Put(ctx, newKey, body, f.Size, backends.PutOptions{ContentType: f.ContentType, SHA256: f.SHA256})
	if err != nil {
		return false, fmt.Errorf("copying: %w", err)
	}
	if info.Size != f.Size || info.SHA256 != f.SHA256 {
		_ = dst.Delete(context.WithoutCancel(ctx), newKey)
		return false, fmt.Errorf("copy has %d bytes and sha256 %s, the row says %d and %s", info.Size, info.SHA256, f.Size, f.SHA256)
	}
	err = st.store.SwitchFileBackend(ctx, f.CandidateID, f.Path, f.BlobKey, dstName, newKey)
	if errors.Is(err, metadata.ErrConflict) || errors.Is(err, metadata.ErrNotFound) {
		_ = dst.Delete(context.WithoutCancel(ctx), newKey)
		return false, nil
	}
	if err != nil {
		_ = dst.Delete(context.WithoutCancel(ctx), newKey)
		return false, fmt.Errorf("switching the row: %w", err)
	}
	// The row points at the copy: the source is unreferenced. A failed delete leaves an orphan for fsck.
	if err := src.Delete(ctx, f.BlobKey); err != nil && !errors.Is(err, backends.ErrNotFound) {
		fmt.Fprintf(stderr, "\nwarning: could not delete the source blob %s (fsck --repair will): %v\n", f.BlobKey, err)
	}
	return true, nil
}
