package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/importer"
	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// importLong is what `mlgate import --help` says beside the list of its commands.
const importLong = `The import writes into the store at --data-dir (or the store and backends --config declares) while
the server is stopped. It can be killed at any point: run the same command again and it continues.`

type importFlags struct {
	cfg                     config
	from, token, user, pass string
	project, s3Endpoint     string
	dryRun, verify, asJSON  bool
	readOnly                bool
	parallel                int
}

// defineImport is `mlgate import mlflow` (verifyOnly false) or `mlgate import verify`.
func defineImport(verifyOnly bool) func(*flag.FlagSet) runFunc {
	return func(fs *flag.FlagSet) runFunc {
		f := &importFlags{}
		addDataDirFlag(fs, &f.cfg)
		addConfigFlag(fs, &f.cfg)
		fs.StringVar(&f.from, "from", "", "the source: an MLflow tracking server (http://host:5000) or a GitLab project's "+
			"MLflow API (https://gitlab.example/api/v4/projects/<id>/ml/mlflow)")
		fs.StringVar(&f.token, "token", os.Getenv("MLFLOW_TRACKING_TOKEN"), "the source's token (MLFLOW_TRACKING_TOKEN): "+
			"PRIVATE-TOKEN for a GitLab source, Authorization: Bearer otherwise")
		fs.StringVar(&f.user, "username", os.Getenv("MLFLOW_TRACKING_USERNAME"), "HTTP basic auth user of the source (MLFLOW_TRACKING_USERNAME)")
		fs.StringVar(&f.pass, "password", os.Getenv("MLFLOW_TRACKING_PASSWORD"), "HTTP basic auth password of the source (MLFLOW_TRACKING_PASSWORD)")
		fs.StringVar(&f.project, "project", "", "the mlgate project to import into (created when missing)")
		fs.StringVar(&f.s3Endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "endpoint for s3:// artifact locations "+
			"on an S3-compatible server (AWS_ENDPOINT_URL_S3); credentials come from the standard AWS variables")
		fs.IntVar(&f.parallel, "parallel", 4, "runs and files imported at once")
		fs.BoolVar(&f.asJSON, "json", false, "print the report as JSON")
		if !verifyOnly {
			fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (every experiment's model name, collisions, counts, bytes) and write nothing")
			fs.BoolVar(&f.verify, "verify", true, "verify the import against the source when it ends")
			fs.BoolVar(&f.readOnly, "read-only", false, "read everything an import reads and discard it: a baseline for import speed")
		}
		return func(ctx context.Context, fs *flag.FlagSet, stdout, stderr io.Writer) error {
			if f.from == "" || f.project == "" {
				return usageErrorf("--from and --project are required")
			}
			if f.token != "" && (f.user != "" || f.pass != "") {
				return usageErrorf("give --token or --username/--password, not both")
			}
			if err := f.cfg.loadFile(explicitFlags(fs)); err != nil {
				return err
			}
			f.cfg.MaxFileSize = int64(byteSize(gateway.DefaultMaxFileSize))
			ok, err := runImportMLflow(ctx, f, stdout, stderr, verifyOnly)
			if err == nil && !ok {
				return errProblems
			}
			return err
		}
	}
}

// runImportMLflow imports (or with verifyOnly, only verifies) as f says; false when entities could not be
// imported or differ.
func runImportMLflow(ctx context.Context, f *importFlags, stdout, stderr io.Writer, verifyOnly bool) (bool, error) {
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		return false, err
	}
	src, err := source.Open(ctx, source.Config{URL: f.from, Token: f.token, Username: f.user, Password: f.pass,
		S3Endpoint: f.s3Endpoint, Log: log})
	if err != nil {
		return false, fmt.Errorf("source %s: %w", f.from, err)
	}
	if f.dryRun || f.readOnly && !verifyOnly {
		return runImportWithoutStore(ctx, f, src, stdout, stderr)
	}
	st, err := openStorage(ctx, &f.cfg, log)
	if err != nil {
		if errors.Is(err, boltstore.ErrLocked) {
			return false, fmt.Errorf("%w\nA running mlgate server holds the store at %s: stop it, then run the import again (an offline import writes into the store directly)", err, f.cfg.dbPath())
		}
		return false, err
	}
	defer st.Close()
	files := artifact.New(artifact.Deps{Store: st.store, Current: func() artifact.Storage { return st.set.storage },
		Log: log, MaxFileSize: f.cfg.MaxFileSize})
	deps := importer.Deps{Store: st.store, Artifacts: files, Log: log}
	opts := importer.Options{Project: f.project, Parallel: f.parallel}
	ok := true
	if !verifyOnly {
		deps.Progress = newImportProgress(stderr)
		rep, err := importer.Import(ctx, src, deps, opts)
		if rep != nil {
			printImportReport(stdout, rep, f.asJSON)
		}
		if err != nil && !errors.Is(err, importer.ErrIncomplete) {
			return false, err
		}
		ok = err == nil
		if !f.verify {
			return ok, nil
		}
		deps.Progress = nil
	}
	vr, err := importer.Verify(ctx, src, deps, opts)
	if vr != nil {
		printVerifyReport(stdout, vr, f.asJSON)
	}
	if err != nil && !errors.Is(err, importer.ErrDifferent) {
		return false, err
	}
	return ok && err == nil, nil
}

// runImportWithoutStore plans (--dry-run) or reads (--read-only) without opening the store for
// writing: a dry run reads the store's names when it exists, to report collisions with them.
func runImportWithoutStore(ctx context.Context, f *importFlags, src *source.Client, stdout, stderr io.Writer) (bool, error) {
	if f.readOnly {
		rep, err := importer.Import(ctx, src, importer.Deps{Progress: newImportProgress(stderr)},
			importer.Options{Project: f.project, Parallel: f.parallel, ReadOnly: true})
		if rep != nil {
			printImportReport(stdout, rep, f.asJSON)
		}
		return err == nil, err
	}
	var plan *importer.Plan
	mc, err := f.cfg.metadataConfig()
	if err != nil {
		return false, err
	}
	_, statErr := os.Stat(f.cfg.dbPath())
	if mc.Type == metadataPostgres || statErr == nil {
		store, _, err := openMetadata(ctx, &f.cfg, false, nil)
		if err != nil {
			return false, err
		}
		defer store.Close()
		plan, err = importer.MakePlan(ctx, src, store, f.project)
		if err != nil {
			return false, err
		}
	} else if plan, err = importer.MakePlan(ctx, src, nil, f.project); err != nil {
		return false, err
	}
	if f.asJSON {
		return true, json.NewEncoder(stdout).Encode(plan)
	}
	importer.PrintPlan(stdout, plan)
	return len(plan.Problems) == 0, nil
}

// defineImportStatus is `mlgate import status`.
func defineImportStatus(fs *flag.FlagSet) runFunc {
	cfg := &config{}
	addDataDirFlag(fs, cfg)
	addConfigFlag(fs, cfg)
	project := fs.String("project", "", "the mlgate project imported into")
	return func(ctx context.Context, fs *flag.FlagSet, stdout, _ io.Writer) error {
		if *project == "" {
			return usageErrorf("--project is required")
		}
		if err := cfg.loadFile(explicitFlags(fs)); err != nil {
			return err
		}
		store, _, err := openMetadata(ctx, cfg, true, nil)
		if err != nil {
			return err
		}
		defer store.Close()
		recs, err := importer.StatusOf(ctx, store, *project)
		if err != nil {
			return err
		}
		importer.PrintStatus(ctx, stdout, store, recs)
		return nil
	}
}

func printImportReport(w io.Writer, r *importer.Report, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(w).Encode(r)
		return
	}
	c, s := r.Imported, r.Skipped
	fmt.Fprintf(w, "imported from %s into %q in %s: %d experiments, %d runs, %d metric points, %d files (%s), %d logged models, %d registered models, %d versions\n",
		r.Source, r.Project, r.Elapsed.Round(time.Millisecond), c.Experiments, c.Runs, c.MetricPoints, c.Files, importer.HumanBytes(r.Bytes),
		c.LoggedModels, c.RegisteredModels, c.Versions)
	if s != (importer.Counts{}) {
		fmt.Fprintf(w, "already imported by an earlier run: %d experiments, %d runs, %d metric points, %d files, %d logged models, %d registered models, %d versions\n",
			s.Experiments, s.Runs, s.MetricPoints, s.Files, s.LoggedModels, s.RegisteredModels, s.Versions)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "NOT IMPORTED: %s\n", f)
	}
}

func printVerifyReport(w io.Writer, r *importer.VerifyReport, asJSON bool) {
	if asJSON {
		_ = json.NewEncoder(w).Encode(r)
		return
	}
	c := r.Checked
	fmt.Fprintf(w, "verified %s against %q: %d experiments, %d runs, %d metric points, %d files (%s read back from each side), %d logged models, %d registered models, %d versions: ",
		r.Source, r.Project, c.Experiments, c.Runs, c.MetricPoints, c.Files, importer.HumanBytes(r.Bytes/2), c.LoggedModels, c.RegisteredModels, c.Versions)
	if len(r.Differences) == 0 {
		fmt.Fprintln(w, "no difference")
		return
	}
	fmt.Fprintf(w, "%d differences\n", len(r.Differences))
	for _, d := range r.Differences {
		fmt.Fprintf(w, "DIFFERENT: %s\n", d)
	}
}

// importProgress shows entities and bytes with an ETA: a progress bar on a terminal, a plain line
// every few seconds otherwise (a CI log).
type importProgress struct {
	mu        sync.Mutex
	w         io.Writer
	bar       *progressbar.ProgressBar // nil when w is not a terminal
	entities  int
	bytes     int64
	doneEnt   int
	doneBytes int64
	start     time.Time
	last      time.Time
}

func newImportProgress(w io.Writer) *importProgress {
	p := &importProgress{w: w}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("importing"), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *importProgress) Start(entities int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entities, p.bytes, p.start, p.last = entities, bytes, time.Now(), time.Now()
	if p.bar != nil {
		p.bar.ChangeMax64(max(bytes, 1))
		p.bar.Describe(fmt.Sprintf("importing: 0/%d entities", entities))
	} else {
		fmt.Fprintf(p.w, "importing %d entities and %s\n", entities, importer.HumanBytes(bytes))
	}
}

func (p *importProgress) Entity() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneEnt++
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("importing: %d/%d entities", p.doneEnt, p.entities))
	}
	p.lineLocked()
}

func (p *importProgress) Bytes(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneBytes += n
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
	p.lineLocked()
}

// lineLocked prints a plain progress line at most every five seconds when there is no bar.
func (p *importProgress) lineLocked() {
	if p.bar != nil || time.Since(p.last) < 5*time.Second {
		return
	}
	p.last = time.Now()
	elapsed := time.Since(p.start)
	eta := "unknown"
	if p.doneBytes > 0 && p.bytes > p.doneBytes {
		eta = (time.Duration(float64(elapsed) * float64(p.bytes-p.doneBytes) / float64(p.doneBytes))).Round(time.Second).String()
	} else if p.bytes == 0 && p.doneEnt > 0 && p.entities > p.doneEnt {
		eta = (time.Duration(float64(elapsed) * float64(p.entities-p.doneEnt) / float64(p.doneEnt))).Round(time.Second).String()
	}
	rate := float64(p.doneBytes) / max(elapsed.Seconds(), 0.001)
	fmt.Fprintf(p.w, "import: %d/%d entities, %s/%s, %s/s, ETA %s\n", p.doneEnt, p.entities,
		importer.HumanBytes(p.doneBytes), importer.HumanBytes(p.bytes), importer.HumanBytes(int64(rate)), eta)
}

func (p *importProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}
