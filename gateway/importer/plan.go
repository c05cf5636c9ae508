package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Plan is what an import will do: every experiment with the model it becomes, every run, logged
// model, registered model and version, the files with their sizes, and the collisions and how they
// were resolved. MakePlan builds it from the source and the target project as they are now; a dry run
// prints it.
type Plan struct {
	Source, Project  string
	Experiments      []*ExperimentPlan
	RegisteredModels []*RegisteredModelPlan
	// Collisions says, in order, each name or iid the plan could not take as the source has it, and
	// what it took instead.
	Collisions []string
	// Problems are what the plan could not list (a run whose artifact location has an unsupported
	// scheme, a listing that kept failing); the import reports them again as failures.
	Problems []Failure

	Runs, LoggedModels, Versions, Files int
	Bytes                               int64
}

// ExperimentPlan is one experiment and the model it becomes.
type ExperimentPlan struct {
	Source source.Experiment
	// Name and DisplayName are the model's; IID is the iid it asks for (0 for the Default experiment,
	// which becomes the project's default model; -1 to take the next free one).
	Name, DisplayName string
	IID               int64
	// Done is true when an earlier run imported it: Name and DisplayName are then the model's.
	Done         bool
	Runs         []*RunPlan
	LoggedModels []*LoggedModelPlan
}

// RunPlan is one run and its files.
type RunPlan struct {
	Run source.Run
	// ArtifactURI is where the run's files are read (see runSource), Files what is there.
	ArtifactURI string
	Files       []source.FileInfo
	// IID is the candidate iid the run asks for: a GitLab candidate's own iid (read from its artifact
	// address) or an mlgate source's, so that its package addresses keep working; 0 takes the next
	// free one.
	IID int64
	// Tags are the run's tags to store: the source's, less the read-only ones of an mlgate source.
	Tags []source.Tag
}

// candidateIIDTag is the read-only tag through which an mlgate source shows a run's candidate iid.
const candidateIIDTag = "mlgate.candidate_iid"

// runSource derives from a run as the source gave it where its files are read, the candidate iid it
// asks for, and the tags to store. A GitLab-style source hands out package addresses as artifact
// locations; one that hands out mlflow-artifacts: locations on its GitLab routes (mlgate does) is read
// through the same generic-package address a GitLab candidate has, ml_experiment_<iid>/<candidate
// iid>, built from the experiment id and the candidate iid it shows (candidate:<iid> in experiment 0).
func runSource(src *source.Client, r source.Run) (uri string, iid int64, ts []source.Tag) {
	uri, iid = r.ArtifactURI, gitlabCandidateIID(r.ArtifactURI)
	for _, t := range r.Tags {
		if t.Key == candidateIIDTag {
			if n, err := strconv.ParseInt(t.Value, 10, 64); err == nil && n > 0 && iid == 0 {
				iid = n
			}
			continue
		}
		ts = append(ts, t)
	}
	if src.Kind() == source.KindGitLab && strings.HasPrefix(uri, "mlflow-artifacts:") && iid > 0 && isDigits(r.ExperimentID) {
		if root, ok := strings.CutSuffix(src.Identity(), "/ml/mlflow"); ok {
			uri = fmt.Sprintf("%s/packages/generic/ml_experiment_%s/%d/", root, r.ExperimentID, iid)
			if r.ExperimentID == "0" {
				// GitLab has no experiment 0, so no generic package names it: the default experiment's
				// runs are read at GitLab's newer candidate address.
				uri = fmt.Sprintf("%s/packages/ml_models/candidate:%d/files/", root, iid)
			}
		}
	}
	return uri, iid, ts
}

// LoggedModelPlan is one MLflow 3 logged model and its files.
type LoggedModelPlan struct {
	LoggedModel source.LoggedModel
	Files       []source.FileInfo
}

// RegisteredModelPlan is one registered model, the model it becomes and its versions.
type RegisteredModelPlan struct {
	Source source.RegisteredModel
	// Experiment is the imported experiment whose model this registered model joins (its name or
	// slug equals the registered model's name); nil for a model of its own named Name/DisplayName.
	Experiment        *ExperimentPlan
	Name, DisplayName string
	Done              bool
	Versions          []source.ModelVersion
}

// Entities counts what the plan imports, for progress.
func (p *Plan) Entities() int {
	return len(p.Experiments) + p.Runs + p.LoggedModels + len(p.RegisteredModels) + p.Versions
}

// target is what the project holds already: names, display names and iids taken by models that
// this source's journal does not account for.
type target struct {
	names, displays map[string]bool
	iids            map[int64]bool
	journal         map[string]*metadata.ImportRecord // kind/source id → record
}

// MakePlan lists the source and decides every name: store may be nil (a dry run before the store
// exists), and project need not exist yet. Errors: the source's (source.ErrUnavailable when it kept
// failing, and so on) and the store's; entities that cannot be listed are Plan.Problems instead.
func MakePlan(ctx context.Context, src *source.Client, store metadata.Store, project string) (*Plan, error) {
	p := &Plan{Source: src.Identity(), Project: project}
	tg, err := loadTarget(ctx, store, project, p.Source)
	if err != nil {
		return nil, err
	}
	var exps []source.Experiment
	if err := src.Experiments(ctx, func(e source.Experiment) error { exps = append(exps, e); return nil }); err != nil {
		return nil, fmt.Errorf("listing experiments: %w", err)
	}
	sortedByID(exps, func(e source.Experiment) string { return e.ID })
	byName := map[string]*ExperimentPlan{}
	for _, e := range exps {
		ep := &ExperimentPlan{Source: e, IID: -1}
		p.Experiments = append(p.Experiments, ep)
		if err := p.listExperiment(ctx, src, ep); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(p.Problems, func(a, b Failure) int { return strings.Compare(a.What, b.What) })
	// Names are decided after listing, experiments first in id order, so that the result does not depend
	// on how fast the source answered.
	for _, ep := range p.Experiments {
		p.nameExperiment(ctx, store, tg, ep)
		byName[ep.Source.Name] = ep
		byName[ep.Name] = ep
	}
	var regs []source.RegisteredModel
	if err := src.RegisteredModels(ctx, func(r source.RegisteredModel) error { regs = append(regs, r); return nil }); err != nil {
		return nil, fmt.Errorf("listing registered models: %w", err)
	}
	sortedByID(regs, func(r source.RegisteredModel) string { return r.Name })
	for _, r := range regs {
		rp := &RegisteredModelPlan{Source: r, Experiment: byName[r.Name]}
		if rp.Experiment == nil {
			rp.Experiment = byName[pkgtypes.Slugify(r.Name)]
		}
		if err := src.ModelVersions(ctx, r.Name, func(v source.ModelVersion) error { rp.Versions = append(rp.Versions, v); return nil }); err != nil {
			return nil, fmt.Errorf("listing the versions of registered model %q: %w", r.Name, err)
		}
		sortVersions(rp.Versions)
		p.Versions += len(rp.Versions)
		p.nameRegisteredModel(ctx, store, tg, rp)
		p.RegisteredModels = append(p.RegisteredModels, rp)
	}
	return p, nil
}

// listExperiment lists an experiment's runs and logged models with their files.
func (p *Plan) listExperiment(ctx context.Context, src *source.Client, ep *ExperimentPlan) error {
	err := src.Runs(ctx, ep.Source.ID, func(r source.Run) error {
		rp := &RunPlan{Run: r}
		rp.ArtifactURI, rp.IID, rp.Tags = runSource(src, r)
		ep.Runs = append(ep.Runs, rp)
		p.Runs++
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("listing the runs of experiment %s: %w", ep.Source.ID, err)
	}
	// Listing files costs a round trip per directory: runs are listed several at a time.
	var mu sync.Mutex
	err = forEach(ctx, planParallel, ep.Runs, func(ctx context.Context, rp *RunPlan) error {
		var local Plan
		files := local.listFiles(ctx, src, "run "+rp.Run.ID, rp.ArtifactURI)
		mu.Lock()
		defer mu.Unlock()
		rp.Files = files
		p.Files += local.Files
		p.Bytes += local.Bytes
		p.Problems = append(p.Problems, local.Problems...)
		return nil
	})
	if err != nil {
		return err
	}
	err = src.LoggedModels(ctx, []string{ep.Source.ID}, func(lm source.LoggedModel) error {
		lp := &LoggedModelPlan{LoggedModel: lm}
		lp.Files = p.listFiles(ctx, src, "logged model "+lm.ID, lm.ArtifactLocation)
		ep.LoggedModels = append(ep.LoggedModels, lp)
		p.LoggedModels++
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("listing the logged models of experiment %s: %w", ep.Source.ID, err)
	}
	return nil
}

// planParallel is how many artifact locations a plan lists at once.
const planParallel = 4

// listFiles lists the files under an artifact location; a failure is a Problem, not the end of the
// plan, so that one unreachable location does not hide the rest.
func (p *Plan) listFiles(ctx context.Context, src *source.Client, owner, uri string) []source.FileInfo {
	if uri == "" {
		return nil
	}
	var files []source.FileInfo
	err := src.Artifacts(ctx, uri, func(f source.FileInfo) error {
		files = append(files, f)
		p.Files++
		p.Bytes += max(f.Size, 0)
		return nil
	})
	if err != nil && ctx.Err() == nil {
		p.Problems = append(p.Problems, Failure{What: owner + " artifacts at " + uri, Err: err})
	}
	return files
}

func loadTarget(ctx context.Context, store metadata.Store, project, src string) (*target, error) {
	tg := &target{names: map[string]bool{}, displays: map[string]bool{}, iids: map[int64]bool{}, journal: map[string]*metadata.ImportRecord{}}
	if store == nil {
		return tg, nil
	}
	proj, err := store.Project(ctx, metadata.ProjectRef{Path: project})
	if errors.Is(err, metadata.ErrNotFound) {
		return tg, nil
	}
	if err != nil {
		return nil, err
	}
	page := metadata.Page{Limit: 1000}
	for {
		recs, next, err := store.ListImportRecords(ctx, proj.ID, src, "", page)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			tg.journal[string(r.Kind)+"/"+r.SourceID] = r
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	page = metadata.Page{Limit: 1000}
	for {
		models, next, err := store.ListModels(ctx, proj.ID, page)
		if err != nil {
			return nil, err
		}
		for _, m := range models {
			tg.names[m.Name], tg.displays[m.DisplayName], tg.iids[m.IID] = true, true, true
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	return tg, nil
}

// doneModel returns the model a journal record of kind and id says an earlier run created, if any.
func doneModel(ctx context.Context, store metadata.Store, tg *target, kind metadata.ImportKind, id string) *metadata.Model {
	r := tg.journal[string(kind)+"/"+id]
	if r == nil || store == nil {
		return nil
	}
	m, err := store.Model(ctx, metadata.ModelRef{ID: r.TargetID})
	if err != nil {
		return nil
	}
	return m
}

func (p *Plan) nameExperiment(ctx context.Context, store metadata.Store, tg *target, ep *ExperimentPlan) {
	if m := doneModel(ctx, store, tg, metadata.ImportExperiment, ep.Source.ID); m != nil {
		ep.Done, ep.Name, ep.DisplayName, ep.IID = true, m.Name, m.DisplayName, m.IID
		return
	}
	if ep.Source.ID == "0" {
		// MLflow's Default experiment is the project's default model, which mlgate's MLflow API shows as
		// experiment 0: runs logged without an experiment keep landing beside the imported ones.
		ep.IID, ep.DisplayName, ep.Name = 0, "Default", "default"
		return
	}
	what := fmt.Sprintf("experiment %s (%q)", ep.Source.ID, ep.Source.Name)
	ep.DisplayName = p.freeDisplay(tg, what, cleanDisplayName(ep.Source.Name))
	ep.Name = p.freeName(tg, what, cleanDisplayName(ep.Source.Name))
	if id, err := strconv.ParseInt(ep.Source.ID, 10, 64); err == nil && id > 0 {
		if tg.iids[id] {
			p.Collisions = append(p.Collisions, fmt.Sprintf("%s: iid %d is taken in the project; the model gets the next free iid (see `mlgate import status`)", what, id))
		} else {
			ep.IID = id
			tg.iids[id] = true
		}
	}
}

func (p *Plan) nameRegisteredModel(ctx context.Context, store metadata.Store, tg *target, rp *RegisteredModelPlan) {
	if m := doneModel(ctx, store, tg, metadata.ImportRegisteredModel, rp.Source.Name); m != nil {
		rp.Done, rp.Name, rp.DisplayName = true, m.Name, m.DisplayName
		return
	}
	if ep := rp.Experiment; ep != nil {
		rp.Name, rp.DisplayName = ep.Name, ep.DisplayName
		return
	}
	what := fmt.Sprintf("registered model %q", rp.Source.Name)
	rp.DisplayName = p.freeDisplay(tg, what, cleanDisplayName(rp.Source.Name))
	rp.Name = p.freeName(tg, what, cleanDisplayName(rp.Source.Name))
}

// freeDisplay returns display, or "display (import N)" for the first N ≥ 2 that no model of the
// project or of the plan has, reporting the change.
func (p *Plan) freeDisplay(tg *target, what, display string) string {
	d := display
	for n := 2; tg.displays[d]; n++ {
		suffix := fmt.Sprintf(" (import %d)", n)
		d = truncateRunes(display, metadata.MaxDisplayNameLen-utf8.RuneCountInString(suffix)) + suffix
	}
	if d != display {
		p.Collisions = append(p.Collisions, fmt.Sprintf("%s: display name %q is taken in the project; the model is shown as %q", what, display, d))
	}
	tg.displays[d] = true
	return d
}

// freeName returns the slug of display (the rule experiments/create uses), or its _2, _3… form that no
// model of the project or of the plan has, reporting the change.
func (p *Plan) freeName(tg *target, what, display string) string {
	base := pkgtypes.Slugify(display)
	name := base
	for n := 2; tg.names[name]; n++ {
		suffix := "_" + strconv.Itoa(n)
		name = strings.TrimRight(base[:min(len(base), 255-len(suffix))], "_.-") + suffix
		if pkgtypes.IsReservedModelName(name) {
			name = "x_" + name
		}
	}
	if name != base {
		p.Collisions = append(p.Collisions, fmt.Sprintf("%s: model name %q is taken in the project or by another entity of this import; the model is named %q", what, base, name))
	}
	tg.names[name] = true
	return name
}

// cleanDisplayName makes a source name a valid display name: control characters become spaces,
// invalid UTF-8 is replaced, and it is cut to the limit. MLflow allows what mlgate's display names do
// not; the slug is derived from the result.
func cleanDisplayName(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if strings.TrimSpace(s) == "" {
		s = "unnamed"
	}
	return truncateRunes(s, metadata.MaxDisplayNameLen)
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// gitlabCandidateIID reads a GitLab candidate's iid from its artifact address:
// …/packages/generic/ml_experiment_<iid>/<candidate iid>/ (legacy) or
// …/packages/ml_models/candidate:<candidate iid>/files/. 0 when the address is neither.
func gitlabCandidateIID(uri string) int64 {
	if _, rest, ok := strings.Cut(uri, "/packages/generic/ml_experiment_"); ok {
		parts := strings.Split(strings.Trim(rest, "/"), "/")
		if len(parts) >= 2 && isDigits(parts[0]) {
			if n, err := strconv.ParseInt(parts[1], 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	for _, marker := range []string{"/packages/ml_models/candidate:", "/packages/ml_models/candidate%3A", "/packages/ml_models/candidate%3a"} {
		if _, rest, ok := strings.Cut(uri, marker); ok {
			digits, _, _ := strings.Cut(rest, "/")
			if n, err := strconv.ParseInt(digits, 10, 64); err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// sortVersions orders versions by their number when numeric (MLflow), else by creation time (GitLab,
// whose version is a database id that says nothing of order across models but does within one).
func sortVersions(vs []source.ModelVersion) {
	sortedByID(vs, func(v source.ModelVersion) string { return v.Version })
}

// PrintPlan writes the plan for a dry run: every experiment and the model it becomes, the registered
// models, the collisions and how they were resolved, the counts and the bytes.
func PrintPlan(w io.Writer, p *Plan) {
	fmt.Fprintf(w, "import plan: %s → project %q\n\n", p.Source, p.Project)
	fmt.Fprintf(w, "experiments → models (%d):\n", len(p.Experiments))
	for _, ep := range p.Experiments {
		state := ""
		if ep.Done {
			state = "  [imported earlier]"
		}
		if ep.Source.LifecycleStage == "deleted" {
			state += "  [deleted]"
		}
		iid := "next free iid"
		if ep.IID >= 0 {
			iid = "iid " + strconv.FormatInt(ep.IID, 10)
		}
		files, bytes := 0, int64(0)
		for _, r := range ep.Runs {
			files += len(r.Files)
			for _, f := range r.Files {
				bytes += max(f.Size, 0)
			}
		}
		fmt.Fprintf(w, "  %-8s %-40q → %-40s %s, %d runs, %d logged models, %d files, %s%s\n", ep.Source.ID, ep.Source.Name,
			ep.Name+" ("+strconv.Quote(ep.DisplayName)+")", iid, len(ep.Runs), len(ep.LoggedModels), files, HumanBytes(bytes), state)
	}
	fmt.Fprintf(w, "\nregistered models → models (%d):\n", len(p.RegisteredModels))
	for _, rp := range p.RegisteredModels {
		joins := ""
		if rp.Experiment != nil {
			joins = "  [same model as experiment " + rp.Experiment.Source.ID + "]"
		}
		fmt.Fprintf(w, "  %-40q → %s, %d versions%s\n", rp.Source.Name, rp.Name, len(rp.Versions), joins)
	}
	fmt.Fprintf(w, "\ncollisions (%d):\n", len(p.Collisions))
	for _, c := range p.Collisions {
		fmt.Fprintf(w, "  %s\n", c)
	}
	if len(p.Problems) > 0 {
		fmt.Fprintf(w, "\ncannot be listed (%d):\n", len(p.Problems))
		for _, f := range p.Problems {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	fmt.Fprintf(w, "\ntotal: %d experiments, %d runs, %d logged models, %d registered models, %d versions, %d files, %s\n",
		len(p.Experiments), p.Runs, p.LoggedModels, len(p.RegisteredModels), p.Versions, p.Files, HumanBytes(p.Bytes))
}

// HumanBytes writes n bytes with a binary unit (512 B, 1.5 MiB), as plans and reports show sizes.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
