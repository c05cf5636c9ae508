package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/schollz/progressbar/v3"
)

// backendsLong is what `mlgate backends --help` says beside the list of its commands.
const backendsLong = `Every command reads the backends from --config (MLGATE_CONFIG), or the embedded default
(localfs at <data-dir>/blobs, named "local").`

// defineBackends is a backends command: the flags every one shares, the command's own (added by more),
// and run with the config loaded.
func defineBackends(more func(*flag.FlagSet), run func(ctx context.Context, cfg *config, fs *flag.FlagSet, stdout, stderr io.Writer) error) func(*flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		cfg := &config{}
		addDataDirFlag(fs, cfg)
		addConfigFlag(fs, cfg)
		if more != nil {
			more(fs)
		}
		return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
			if err := cfg.loadFile(explicitFlags(fs)); err != nil {
				return err
			}
			return run(ctx, cfg, fs, stdout, stderr)
		}
	}
}

// openBackendsOnly opens the configured backends without the metadata store, so list and check work
// beside a running server.
func openBackendsOnly(ctx context.Context, cfg *config, log *slog.Logger) (*backendSet, error) {
	specs, def := cfg.backendSpecs()
	return openBackendSet(ctx, specs, def, cfg.routes(), nil, nil, log)
}

// runBackendsList prints one line per configured backend. It fails when a backend is unhealthy.
var defineBackendsList = defineBackends(nil, backendsList)

func backendsList(ctx context.Context, cfg *config, _ *flag.FlagSet, stdout, stderr io.Writer) error {
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
var defineBackendsCheck = defineBackends(nil, backendsCheck)

func backendsCheck(ctx context.Context, cfg *config, fs *flag.FlagSet, stdout, stderr io.Writer) error {
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

// defineBackendsMigrate moves files from one backend to another. See migrateHelp.
func defineBackendsMigrate(fs *flag.FlagSet) runFunc {
	var from, to string
	var filter maintenance.Filter
	var dryRun bool
	return defineBackends(func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "backend to move files off (required)")
		fs.StringVar(&to, "to", "", "backend to move files to (required)")
		fs.StringVar(&filter.Project, "project", "", "only files of projects whose path matches this glob")
		fs.StringVar(&filter.Model, "model", "", "only files of models whose name matches this glob")
		fs.BoolVar(&dryRun, "dry-run", false, "print what would move, move nothing")
	}, func(ctx context.Context, cfg *config, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		return backendsMigrate(ctx, cfg, from, to, filter, dryRun, stdout, stderr)
	})(fs)
}

func backendsMigrate(ctx context.Context, cfg *config, from, to string, filter maintenance.Filter, dryRun bool, stdout, stderr io.Writer) error {
	if from == "" || to == "" {
		return errors.New("backends migrate: --from and --to are required")
	}
	if from == to {
		return errors.New("backends migrate: --from and --to name the same backend")
	}
	if err := filter.Validate(); err != nil {
		return fmt.Errorf("backends migrate: %w", err)
	}
	log, _ := newLogger(stderr, "text", "warn")
	st, err := openStorage(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("%w (migrate needs the database: stop mlgate serve first)", err)
	}
	defer st.Close()
	ms := st.set.maintenance(st.store)
	src, dst := ms.Backend(from), ms.Backend(to)
	if src == nil || dst == nil {
		return fmt.Errorf("backends migrate: --from %q and --to %q must both be configured backends (have %v)", from, to, st.set.order)
	}

	moves, total, err := maintenance.PlanMigration(ctx, ms, from, filter)
	if err != nil {
		return err
	}
	if dryRun {
		for _, m := range moves {
			fmt.Fprintf(stdout, "would move\t%s\t%s\tcandidate %d\t%s\t%d bytes\n", m.Project, m.Model, m.File.OwnerID, m.File.Path, m.File.Size)
		}
		fmt.Fprintf(stdout, "dry run: would move %d files, %d bytes, from %s to %s\n", len(moves), total, from, to)
		return nil
	}
	if len(moves) == 0 {
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
	res, err := maintenance.Migrate(ctx, st.store, *src, *dst, moves, maintenance.MigrateOptions{
		Progress: func(n int) { _ = bar.Add(n) },
		Leftover: func(key string, err error) {
			fmt.Fprintf(stderr, "\nwarning: could not delete the source blob %s (fsck --repair will): %v\n", key, err)
		},
	})
	if err != nil {
		_ = bar.Exit()
		fmt.Fprintln(stderr)
		return err
	}
	_ = bar.Finish()
	fmt.Fprintf(stdout, "migrated %d files, %d bytes, from %s to %s", res.Moved, res.MovedBytes, from, to)
	if res.Skipped > 0 {
		fmt.Fprintf(stdout, "; %d skipped (changed meanwhile)", res.Skipped)
	}
	fmt.Fprintln(stdout)
	return nil
}
