package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/pgstore"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

const metadataMigrateLong = `Copies a bbolt metadata store into an empty PostgreSQL store: every project, model (experiment),
candidate (run) with its params, tags and metric points, logged model, dataset, version, alias, file row,
token, import record and setting (the signing key included, so uploads in flight stay valid), with their
ids, iids, seqs and timestamps, and the counters that issue the next ones. Blobs stay where they are: the
file rows name their backend and key, so the PostgreSQL servers must be configured with the same backends
(an S3 or MinIO backend; PostgreSQL refuses localfs).

Stop the server first: the command holds the bbolt file's lock, and the source must not change while it
is copied. Records go in batches, each committed with the migration's progress; after an interruption
(Ctrl-C, a crash, a lost connection) run the same command again and it goes on after the last batch. A
target that holds anything else than this migration is refused.

When every record is in, both stores are exported again and compared record by record; differences are
listed and exit with status 1. --verify-only runs that comparison alone.`

// migrateFlags are the flags of `mlgate metadata migrate`.
type migrateFlags struct {
	cfg        config
	from, to   string
	batch      int
	verifyOnly bool
	quiet      bool
}

func defineMetadataMigrate(fs *flag.FlagSet) runFunc {
	f := &migrateFlags{}
	addConfigFlag(fs, &f.cfg)
	fs.StringVar(&f.from, "from", "", "the bbolt store: a data dir (its mlgate.db) or the database file")
	fs.StringVar(&f.to, "to", "", "the PostgreSQL DSN (default: "+metadataDSNEnv+", then metadata.dsn of --config)")
	fs.IntVar(&f.batch, "batch", 5000, "records per transaction: how much a rerun after an interruption copies again at most")
	fs.BoolVar(&f.verifyOnly, "verify-only", false, "only compare both stores, record by record; exit 1 on any difference")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
		if f.from == "" {
			return usageErrorf("--from is required: the data dir or bbolt file of the store to copy")
		}
		if f.batch < 1 {
			return usageErrorf("--batch must be at least 1")
		}
		if f.to == "" {
			if err := f.cfg.loadFile(explicitFlags(fs)); err != nil {
				return err
			}
			mc, err := f.cfg.metadataConfig()
			if err != nil {
				return err
			}
			if mc.Type != metadataPostgres {
				return usageErrorf("--to is required: the PostgreSQL DSN (or set %s, or give a --config with metadata.type: postgres)", metadataDSNEnv)
			}
			f.to = mc.DSN
		}
		ok, err := runMetadataMigrate(ctx, f, stdout, stderr)
		if err == nil && !ok {
			return errProblems
		}
		return err
	}
}

// boltPath resolves --from: a directory is a data dir holding mlgate.db.
func boltPath(from string) (string, error) {
	st, err := os.Stat(from)
	if err != nil {
		return "", fmt.Errorf("--from %s: %w", from, err)
	}
	if st.IsDir() {
		from = filepath.Join(from, "mlgate.db")
		if _, err := os.Stat(from); err != nil {
			return "", fmt.Errorf("--from: no mlgate database in the data dir: %w", err)
		}
	}
	return from, nil
}

// sourceIdentity names a bbolt store durably: a hash of its signing key, which is drawn once per store and
// never changes (a copy of the file is the same store, as it should be for a resume).
func sourceIdentity(key []byte) string {
	h := sha256.Sum256(append([]byte("mlgate metadata migrate source\x00"), key...))
	return "bolt:" + hex.EncodeToString(h[:16])
}

// dsnWhere names a DSN's server without its password.
func dsnWhere(dsn string) string {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return "PostgreSQL"
	}
	return fmt.Sprintf("PostgreSQL at %s:%d/%s", c.Host, c.Port, c.Database)
}

// runMetadataMigrate copies and verifies (or only verifies); false when the stores differ.
func runMetadataMigrate(ctx context.Context, f *migrateFlags, stdout, stderr io.Writer) (bool, error) {
	path, err := boltPath(f.from)
	if err != nil {
		return false, err
	}
	src, err := boltstore.Open(path, boltstore.WithTimeout(2*time.Second))
	if err != nil {
		if errors.Is(err, boltstore.ErrLocked) {
			return false, fmt.Errorf("%w\nA running mlgate server holds the store at %s: stop it, then run the migration again "+
				"(the source must not change while it is copied)", err, path)
		}
		return false, err
	}
	defer src.Close()
	// The first call on a store that never had a key draws it: the one write this command makes to the
	// source, and the same a server start makes.
	key, err := src.SigningKey(ctx)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", path, err)
	}
	source := sourceIdentity(key)
	gen, err := src.Generation(ctx)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", path, err)
	}
	octx, cancel := context.WithTimeout(ctx, pgOpenTimeout)
	dst, err := pgstore.Open(octx, f.to)
	cancel()
	if err != nil {
		return false, fmt.Errorf("target (--to): %w", err)
	}
	defer dst.Close()
	where := dsnWhere(f.to)
	total, err := src.EstimateRecords(ctx)
	if err != nil {
		return false, fmt.Errorf("source %s: %w", path, err)
	}

	if !f.verifyOnly {
		start := time.Now()
		p, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: source, Generation: gen})
		if err != nil {
			return false, fmt.Errorf("target %s: %w", where, err)
		}
		switch {
		case p.Done:
			fmt.Fprintf(stdout, "%s was migrated into %s already (%d records, %s); verifying again\n",
				path, where, p.Records, p.UpdatedAt.Format(time.RFC3339))
		case p.Records > 0:
			fmt.Fprintf(stdout, "resuming the migration begun %s: %d records are in\n", p.StartedAt.Format(time.RFC3339), p.Records)
		}
		if !p.Done {
			backends := map[string]int{}
			n, err := copyRecords(ctx, src, dst, source, p.Records, f.batch, newMigrateProgress(stderr, f.quiet, "copying", total), backends)
			if err != nil {
				return false, fmt.Errorf("copy %s into %s: %w\nRun the same command again to resume after the last committed batch", path, where, err)
			}
			rate := float64(n-p.Records) / max(time.Since(start).Seconds(), 1e-3)
			fmt.Fprintf(stdout, "copied %d records (%d in this run) from %s into %s in %s (%.0f records/s)\n",
				n, n-p.Records, path, where, time.Since(start).Round(time.Millisecond), rate)
			printBackends(stdout, backends)
		}
	}

	start := time.Now()
	rep, err := compareStores(ctx, src, dst, newMigrateProgress(stderr, f.quiet, "verifying", total))
	if err != nil {
		return false, fmt.Errorf("verify: %w", err)
	}
	rep.print(stdout)
	if len(rep.diffs) > 0 {
		fmt.Fprintf(stdout, "verify: the stores differ: %d differences\n", rep.count)
		if !f.verifyOnly {
			fmt.Fprintf(stdout, "the migration is not marked done: once the cause is found, empty the target and migrate again\n")
		}
		return false, nil
	}
	fmt.Fprintf(stdout, "verified in %s: both stores hold the same %d records\n", time.Since(start).Round(time.Millisecond), rep.records)
	if !f.verifyOnly {
		if err := dst.FinishMigration(ctx, source); err != nil {
			return false, err
		}
		fmt.Fprintf(stdout, "done: configure the servers with metadata.type: postgres and the same backends, and start them\n")
	}
	return true, nil
}

// printBackends lists the backends the copied file rows name: the PostgreSQL servers must declare them
// all, and none may be localfs there.
func printBackends(w io.Writer, backends map[string]int) {
	if len(backends) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(backends))
	var parts []string
	for _, name := range names {
		shown := name
		if name == "" {
			shown = "(the default backend)"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", shown, backends[name]))
	}
	fmt.Fprintf(w, "file rows copied in this run, by backend (the PostgreSQL servers must declare each, none as localfs): %s\n",
		strings.Join(parts, ", "))
}

// copyRecords loads the source's export after the first skip records into dst, batch records per
// transaction, and returns how many records are in when it ends. It counts the file rows it copies by
// backend into backends.
func copyRecords(ctx context.Context, src metadata.Exporter, dst metadata.Loader, source string, skip int64, batch int,
	progress *migrateProgress, backends map[string]int) (int64, error) {
	var n int64
	buf := make([]metadata.Record, 0, batch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := dst.LoadBatch(ctx, source, n-int64(len(buf)), buf); err != nil {
			return err
		}
		progress.add(len(buf), buf[len(buf)-1].Kind())
		clear(buf) // the records are garbage now; the array is reused
		buf = buf[:0]
		return nil
	}
	progress.add(int(skip), "")
	err := src.Export(ctx, func(r metadata.Record) error {
		n++
		if n <= skip {
			return nil
		}
		if r.File != nil {
			backends[r.File.Backend]++
		}
		buf = append(buf, r)
		if len(buf) == batch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	progress.finish()
	return n, err
}

// compareReport is what compareStores found.
type compareReport struct {
	records int64                            // records of the source
	counts  map[metadata.RecordKind][2]int64 // per kind: source, target
	diffs   []string                         // the first differences
	count   int                              // all differences
}

// maxDiffs bounds the differences listed.
const maxDiffs = 10

func (r *compareReport) print(w io.Writer) {
	for _, k := range metadata.ExportOrder {
		c := r.counts[k]
		mark := ""
		if c[0] != c[1] {
			mark = "  DIFFERENT"
		}
		fmt.Fprintf(w, "%-20s %10d %10d%s\n", k, c[0], c[1], mark)
	}
	for _, d := range r.diffs {
		fmt.Fprintln(w, d)
	}
}

// compareStores exports both stores at once and compares them record by record: both export in one
// canonical order, so equal stores give equal streams. Records are counted per kind to the end, so a
// missing record shows in the counts even after the differences it causes stop being listed.
func compareStores(ctx context.Context, a, b metadata.Exporter, progress *migrateProgress) (*compareReport, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream := func(e metadata.Exporter) (<-chan metadata.Record, <-chan error) {
		ch, errc := make(chan metadata.Record, 1024), make(chan error, 1)
		go func() {
			defer close(ch)
			errc <- e.Export(ctx, func(r metadata.Record) error {
				select {
				case ch <- r:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			})
		}()
		return ch, errc
	}
	ca, errA := stream(a)
	cb, errB := stream(b)
	rep := &compareReport{counts: map[metadata.RecordKind][2]int64{}}
	var i int64
	for {
		ra, okA := <-ca
		rb, okB := <-cb
		if !okA && !okB {
			break
		}
		i++
		if okA {
			c := rep.counts[ra.Kind()]
			c[0]++
			rep.counts[ra.Kind()] = c
			rep.records++
			progress.add(1, ra.Kind())
		}
		if okB {
			c := rep.counts[rb.Kind()]
			c[1]++
			rep.counts[rb.Kind()] = c
		}
		var d string
		switch {
		case !okB:
			d = fmt.Sprintf("record %d: only in the source: %s", i, ra)
		case !okA:
			d = fmt.Sprintf("record %d: only in the target: %s", i, rb)
		case !metadata.EqualRecords(ra, rb):
			d = fmt.Sprintf("record %d:\n  source %s\n  target %s", i, ra, rb)
		}
		if d != "" {
			rep.count++
			if len(rep.diffs) < maxDiffs {
				rep.diffs = append(rep.diffs, d)
			}
		}
	}
	progress.finish()
	if err := <-errA; err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	if err := <-errB; err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	return rep, nil
}

// migrateProgress shows records done: a bar on a terminal, a plain line every few seconds otherwise (a
// CI log), nothing when quiet.
type migrateProgress struct {
	mu    sync.Mutex
	w     io.Writer
	what  string
	bar   *progressbar.ProgressBar
	quiet bool
	total int64
	done  int64
	kind  metadata.RecordKind // the kind the bar describes
	start time.Time
	last  time.Time
}

func newMigrateProgress(w io.Writer, quiet bool, what string, total int64) *migrateProgress {
	p := &migrateProgress{w: w, what: what, quiet: quiet, total: total, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && !quiet && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *migrateProgress) add(n int, kind metadata.RecordKind) {
	if p.quiet || n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if p.bar != nil {
		if p.done > p.total { // the total is an estimate
			p.total = p.done
			p.bar.ChangeMax64(p.total)
		}
		_ = p.bar.Add(n)
		if kind != "" && kind != p.kind {
			p.kind = kind
			p.bar.Describe(fmt.Sprintf("%s (%s)", p.what, kind))
		}
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s: %d of about %d records (%s), %s\n", p.what, p.done, p.total,
			strings.ReplaceAll(string(kind), "_", " "), time.Since(p.start).Round(time.Second))
	}
}

func (p *migrateProgress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
