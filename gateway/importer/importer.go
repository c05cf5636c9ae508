// Package importer brings an MLflow tracking server (2.x or 3.x) or a GitLab project's ML experiment
// tracking and model registry into an mlgate project, over the source's REST API.
//
// The mapping is the merged data model's: each experiment becomes a model (its name the display name,
// its slug the model name, its id the model's iid where free), each run a candidate of that model with
// its run id kept, each registered model a model (the same one as an imported experiment of that name
// or slug), each model version a version of it backed by the run's candidate or the logged model, and
// each MLflow 3 logged model a logged model with its id kept.
//
// Nothing is lost or half-visible, whatever happens to the importer:
//   - every entity commits together with its journal record (metadata.ImportRecord) in one store
//     transaction, so a killed import resumes where it stopped and a second complete run changes nothing;
//   - a metric history commits page by page, each page with the count of points done, so a resumed
//     import skips exactly what it committed;
//   - a file streams into a new blob and becomes visible only with its row, which commits with its
//     journal record (artifact.Upload.AlsoCommit);
//   - what cannot be fetched or stored is reported by name, and the import ends in error; Verify then
//     compares source and mlgate entity by entity.
package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata"
)

// ErrIncomplete is wrapped by Import's error when some entities could not be imported; the Report
// names each of them.
var ErrIncomplete = errors.New("import incomplete")

// Deps is what an import needs from its surroundings.
type Deps struct {
	Store metadata.Store
	// Artifacts stores files on the backend that the routing rules choose for the target project and
	// model. Nil only for a dry run or a read-only run.
	Artifacts *artifact.Service
	Log       *slog.Logger
	// Progress is told of entities and bytes as they complete; nil reports nothing.
	Progress Progress
}

// Options select what an import does.
type Options struct {
	// Project is the target project's path; it is created when missing.
	Project string
	// Parallel is how many runs (and so files) are imported at once; <= 0 means 4.
	Parallel int
	// ReadOnly reads every entity, history page and file from the source exactly as an import does,
	// and discards them: the baseline that import speed is measured against. Nothing is written.
	ReadOnly bool
}

func (o Options) parallel() int {
	if o.Parallel <= 0 {
		return 4
	}
	return o.Parallel
}

// Progress receives an import's progress. Implementations must be safe for concurrent use.
type Progress interface {
	// Start announces the totals: entities (experiments, runs, logged models, registered models,
	// versions) and file bytes.
	Start(entities int, bytes int64)
	// Entity reports one entity done (imported or found done by an earlier run).
	Entity()
	// Bytes reports n more file bytes read from the source.
	Bytes(n int64)
	// Done ends the progress display.
	Done()
}

type noProgress struct{}

func (noProgress) Start(int, int64) {}
func (noProgress) Entity()          {}
func (noProgress) Bytes(int64)      {}
func (noProgress) Done()            {}

// Failure is one entity that could not be imported, or one difference Verify found.
type Failure struct {
	What string // e.g. `run 3f2a… artifact "model/model.pkl"`
	Err  error
}

func (f Failure) String() string { return f.What + ": " + f.Err.Error() }

// Report is what an import did.
type Report struct {
	Source  string
	Project string
	// Imported counts what this run created; Skipped what an earlier run had already imported.
	Imported, Skipped Counts
	Bytes             int64 // file bytes this run stored (or read, in a read-only run)
	Elapsed           time.Duration
	Failures          []Failure
}

// Counts tallies entities by kind.
type Counts struct {
	Experiments, Runs, MetricPoints, Files, LoggedModels, RegisteredModels, Versions int64
}

// importer is one import's state.
type importer struct {
	deps    Deps
	src     *source.Client
	opts    Options
	source  string // the journal's key for this source
	project *metadata.Project
	plan    *Plan

	mu     sync.Mutex
	report Report
	// models maps experiment ids to the model each became; runs maps run ids to candidates; lms
	// maps logged model ids to logged models. Filled as entities are imported or found in the journal.
	models map[string]*metadata.Model
	runs   map[string]*metadata.Candidate
	lms    map[string]*metadata.LoggedModel
}

func (im *importer) fail(what string, err error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.report.Failures = append(im.report.Failures, Failure{What: what, Err: err})
	im.deps.Log.Warn("import: not imported", "what", what, "err", err)
}

func (im *importer) count(skipped bool, f func(*Counts)) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if skipped {
		f(&im.report.Skipped)
	} else {
		f(&im.report.Imported)
	}
}

// Import imports everything the plan lists into opts.Project: experiments, runs with their params,
// tags, metric histories, inputs, outputs and files, logged models, registered models, versions and
// aliases. It resumes from the journal of earlier runs. Entities that cannot be imported are reported
// in Report.Failures and make the error wrap ErrIncomplete; other errors (the store failing, ctx ending)
// stop the import and are returned as they are. With opts.ReadOnly it reads what an import would read
// and writes nothing.
func Import(ctx context.Context, src *source.Client, deps Deps, opts Options) (*Report, error) {
	start := time.Now()
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Progress == nil {
		deps.Progress = noProgress{}
	}
	plan, err := MakePlan(ctx, src, deps.Store, opts.Project)
	if err != nil {
		return nil, err
	}
	im := &importer{deps: deps, src: src, opts: opts, source: src.Identity(), plan: plan,
		models: map[string]*metadata.Model{}, runs: map[string]*metadata.Candidate{}, lms: map[string]*metadata.LoggedModel{}}
	im.report.Source, im.report.Project = im.source, opts.Project
	deps.Progress.Start(plan.Entities(), plan.Bytes)
	defer deps.Progress.Done()
	if opts.ReadOnly {
		err = im.readOnly(ctx)
	} else {
		err = im.run(ctx)
	}
	im.report.Elapsed = time.Since(start)
	if err != nil {
		return &im.report, err
	}
	if n := len(im.report.Failures); n > 0 {
		return &im.report, fmt.Errorf("%w: %d entities could not be imported", ErrIncomplete, n)
	}
	return &im.report, nil
}

func (im *importer) run(ctx context.Context) error {
	p, err := im.deps.Store.EnsureProject(ctx, im.opts.Project)
	if err != nil {
		return fmt.Errorf("project %q: %w", im.opts.Project, err)
	}
	im.project = p
	steps := []func(context.Context) error{
		im.importExperiments,
		im.importRuns,
		im.importLoggedModels,
		im.importRunContents,
		im.importLoggedModelFiles,
		im.importRegistry,
		im.finishExperiments,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

// journal returns the record of a source entity, nil when there is none.
func (im *importer) journal(ctx context.Context, kind metadata.ImportKind, id string) (*metadata.ImportRecord, error) {
	r, err := im.deps.Store.ImportRecord(ctx, im.project.ID, im.source, kind, id)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

func (im *importer) record(kind metadata.ImportKind, id string, targetID uint64, targetIID int64, state metadata.ImportState, progress int64, note string) *metadata.ImportRecord {
	return &metadata.ImportRecord{Project: im.project.ID, Source: im.source, Kind: kind, SourceID: id,
		TargetID: targetID, TargetIID: targetIID, State: state, Progress: progress, Note: note}
}

// forEach runs fn over items with opts.Parallel workers and returns the first error that is not an
// entity's own (fn reports those with im.fail and returns nil); the others stop early.
func forEach[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan T)
	var wg sync.WaitGroup
	for range min(n, max(len(items), 1)) {
		wg.Go(func() {
			for it := range work {
				if err := fn(ctx, it); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// sortedByID orders source ids numerically when they are numbers (MLflow's and GitLab's experiment ids
// are), else as strings, so that plans and collision resolution are deterministic.
func sortedByID[T any](items []T, id func(T) string) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := id(items[i]), id(items[j])
		if len(a) != len(b) && isDigits(a) && isDigits(b) {
			return len(a) < len(b)
		}
		return a < b
	})
}

func isDigits(s string) bool { return s != "" && strings.Trim(s, "0123456789") == "" }
