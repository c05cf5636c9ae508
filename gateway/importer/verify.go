package importer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sync"

	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// VerifyReport is what Verify compared and the differences it found.
type VerifyReport struct {
	Source, Project string
	// Checked counts the entities compared.
	Checked     Counts
	Bytes       int64 // file bytes read back from both sides
	Differences []Failure
}

// ErrDifferent is wrapped by Verify's error when source and mlgate differ; the report lists how.
var ErrDifferent = errors.New("source and mlgate differ")

type verifier struct {
	deps   Deps
	src    *source.Client
	source string
	proj   *metadata.Project

	mu     sync.Mutex
	report VerifyReport
}

func (v *verifier) differ(what string, format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.report.Differences = append(v.report.Differences, Failure{What: what, Err: fmt.Errorf(format, args...)})
}

func (v *verifier) checked(f func(*Counts)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f(&v.report.Checked)
}

// Verify compares the source with what the journal says it became in opts.Project, entity by entity:
// counts, params, tags, latest values and full histories of every metric, registered models,
// versions and aliases, and every file's list entry, size and sha256, recomputed from the bytes of
// both sides. A difference makes the error wrap ErrDifferent; the store's and the source's failures
// are returned as they are (an entity the source can no longer give is a difference).
func Verify(ctx context.Context, src *source.Client, deps Deps, opts Options) (*VerifyReport, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	v := &verifier{deps: deps, src: src, source: src.Identity()}
	v.report.Source, v.report.Project = v.source, opts.Project
	p, err := deps.Store.Project(ctx, metadata.ProjectRef{Path: opts.Project})
	if err != nil {
		return nil, fmt.Errorf("project %q: %w", opts.Project, err)
	}
	v.proj = p
	if err := v.experiments(ctx, opts.parallel()); err != nil {
		return &v.report, err
	}
	if err := v.registry(ctx); err != nil {
		return &v.report, err
	}
	if n := len(v.report.Differences); n > 0 {
		return &v.report, fmt.Errorf("%w: %d differences", ErrDifferent, n)
	}
	return &v.report, nil
}

func (v *verifier) journal(ctx context.Context, kind metadata.ImportKind, id string) (*metadata.ImportRecord, error) {
	r, err := v.deps.Store.ImportRecord(ctx, v.proj.ID, v.source, kind, id)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, nil
	}
	return r, err
}

type runCheck struct {
	run   source.Run
	model *metadata.Model
}

func (v *verifier) experiments(ctx context.Context, parallel int) error {
	st := v.deps.Store
	var exps []source.Experiment
	if err := v.src.Experiments(ctx, func(e source.Experiment) error { exps = append(exps, e); return nil }); err != nil {
		return fmt.Errorf("listing experiments: %w", err)
	}
	var runs []runCheck
	for _, e := range exps {
		what := fmt.Sprintf("experiment %s (%q)", e.ID, e.Name)
		r, err := v.journal(ctx, metadata.ImportExperiment, e.ID)
		if err != nil {
			return err
		}
		if r == nil {
			v.differ(what, "not imported")
			continue
		}
		m, err := st.Model(ctx, metadata.ModelRef{ID: r.TargetID})
		if err != nil {
			v.differ(what, "its model (id %d) cannot be read: %v", r.TargetID, err)
			continue
		}
		v.checked(func(c *Counts) { c.Experiments++ })
		if want := lifecycle(e.LifecycleStage); want != m.Lifecycle && m.IID != 0 {
			v.differ(what, "lifecycle %s in the source, %s in mlgate", want, m.Lifecycle)
		}
		v.compareTags(what+" tags", e.Tags, m.Tags)
		n := 0
		err = v.src.Runs(ctx, e.ID, func(run source.Run) error {
			runs = append(runs, runCheck{run: run, model: m})
			n++
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the runs of experiment %s: %w", e.ID, err)
		}
		if err := v.loggedModels(ctx, e.ID, m, what); err != nil {
			return err
		}
	}
	return forEach(ctx, parallel, runs, func(ctx context.Context, rc runCheck) error {
		return v.run(ctx, rc.run, rc.model)
	})
}

func (v *verifier) run(ctx context.Context, run source.Run, m *metadata.Model) error {
	st := v.deps.Store
	what := "run " + run.ID
	r, err := v.journal(ctx, metadata.ImportRun, run.ID)
	if err != nil {
		return err
	}
	if r == nil {
		v.differ(what, "not imported")
		return nil
	}
	c, err := st.Candidate(ctx, metadata.CandidateRef{ID: r.TargetID})
	if err != nil {
		v.differ(what, "its candidate cannot be read: %v", err)
		return nil
	}
	v.checked(func(n *Counts) { n.Runs++ })
	if c.ModelID != m.ID {
		v.differ(what, "is in model %d, not in its experiment's model %d", c.ModelID, m.ID)
	}
	if eid, ok := parseRunID(run.ID); ok && c.EID != eid && r.Note == "" {
		v.differ(what, "has run id %s in mlgate", c.EID)
	}
	if status, ok := metadata.ParseRunStatus(run.Status); ok && status != c.Status {
		v.differ(what, "status %s in the source, %s in mlgate", status, c.Status)
	}
	if run.StartTime != c.StartTime || run.EndTime != c.EndTime {
		v.differ(what, "times %d–%d in the source, %d–%d in mlgate", run.StartTime, run.EndTime, c.StartTime, c.EndTime)
	}
	if want, got := lifecycle(run.LifecycleStage), c.Lifecycle; want != got && !(got == metadata.Deleted && c.DeletedWithModel) {
		v.differ(what, "lifecycle %s in the source, %s in mlgate", want, got)
	}
	data, err := st.RunData(ctx, c.ID)
	if err != nil {
		return err
	}
	uri, iid, runTags := runSource(v.src, run)
	if iid > 0 && c.IID != iid && r.Note == "" && r.TargetIID == iid {
		v.differ(what, "candidate iid %d in mlgate, %d in the source", c.IID, iid)
	}
	v.compareParams(what+" params", run.Params, data.Params)
	v.compareTags(what+" tags", runTags, data.Tags)
	latest := map[string]metadata.Metric{}
	for _, p := range data.Metrics {
		latest[p.Key] = p
	}
	for _, want := range run.LatestMetrics {
		got, ok := latest[want.Key]
		if !ok {
			v.differ(what, "metric %q missing", want.Key)
			continue
		}
		if !sameValue(want.Value, got.Value) || want.Step != got.Step || want.Timestamp != got.Timestamp {
			v.differ(what, "latest %q is %v at step %d (%d) in the source, %v at step %d (%d) in mlgate",
				want.Key, want.Value, want.Step, want.Timestamp, got.Value, got.Step, got.Timestamp)
		}
	}
	if len(latest) != len(metricKeys(run)) {
		v.differ(what, "%d metrics in the source, %d in mlgate", len(metricKeys(run)), len(latest))
	}
	for _, key := range metricKeys(run) {
		if err := v.history(ctx, what, run.ID, key, c.ID); err != nil {
			return err
		}
	}
	return v.files(ctx, what, uri, c.ID)
}

// history compares every point of a metric on both sides, in a canonical order (MLflow does not fix
// the order of points that share a step and timestamp).
func (v *verifier) history(ctx context.Context, what, runID, key string, cand uint64) error {
	var want, got []metadata.Metric
	err := v.src.MetricHistory(ctx, runID, key, func(page []source.Metric) error {
		for _, m := range page {
			want = append(want, metadata.Metric{Key: m.Key, Value: m.Value, Step: m.Step, Timestamp: m.Timestamp})
		}
		return nil
	})
	if err != nil {
		if isSourceError(err) {
			v.differ(fmt.Sprintf("%s metric %q", what, key), "the source cannot give its history: %v", err)
			return nil
		}
		return err
	}
	page := metadata.Page{Limit: 10000}
	for {
		pts, next, err := v.deps.Store.MetricHistory(ctx, cand, key, page)
		if err != nil {
			return err
		}
		for _, m := range pts {
			got = append(got, metadata.Metric{Key: m.Key, Value: m.Value, Step: m.Step, Timestamp: m.Timestamp})
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	order := func(a, b metadata.Metric) int {
		return cmp.Or(cmp.Compare(a.Step, b.Step), cmp.Compare(a.Timestamp, b.Timestamp), cmp.Compare(a.Value, b.Value))
	}
	slices.SortFunc(want, order)
	slices.SortFunc(got, order)
	v.checked(func(c *Counts) { c.MetricPoints += int64(len(want)) })
	if len(want) != len(got) {
		v.differ(fmt.Sprintf("%s metric %q", what, key), "%d points in the source, %d in mlgate", len(want), len(got))
		return nil
	}
	for i := range want {
		if want[i].Step != got[i].Step || want[i].Timestamp != got[i].Timestamp || !sameValue(want[i].Value, got[i].Value) {
			v.differ(fmt.Sprintf("%s metric %q", what, key), "point %d is %+v in the source, %+v in mlgate", i, want[i], got[i])
			return nil
		}
	}
	return nil
}

func sameValue(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

// files compares an owner's files: the same paths with the same sizes, and the sha256 of the source's
// bytes equal to the sha256 of the bytes mlgate's backend holds (both read again).
func (v *verifier) files(ctx context.Context, what, uri string, owner uint64) error {
	stored := map[string]*metadata.File{}
	page := metadata.Page{Limit: 1000}
	for {
		fs, next, err := v.deps.Store.ListFiles(ctx, owner, "", page)
		if err != nil {
			return err
		}
		for _, f := range fs {
			stored[f.Path] = f
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	if uri == "" {
		return nil
	}
	var files []source.FileInfo
	if err := v.src.Artifacts(ctx, uri, func(f source.FileInfo) error { files = append(files, f); return nil }); err != nil {
		if isSourceError(err) {
			v.differ(what, "the source cannot list its artifacts: %v", err)
			return nil
		}
		return err
	}
	for _, f := range files {
		fwhat := fmt.Sprintf("%s artifact %q", what, f.Path)
		got := stored[f.Path]
		delete(stored, f.Path)
		if got == nil {
			v.differ(fwhat, "missing in mlgate")
			continue
		}
		if f.Size >= 0 && f.Size != got.Size {
			v.differ(fwhat, "%d bytes in the source, %d in mlgate", f.Size, got.Size)
			continue
		}
		want, n, err := v.sourceSum(ctx, uri, f.Path)
		if err != nil {
			if isSourceError(err) {
				v.differ(fwhat, "the source cannot give it: %v", err)
				continue
			}
			return err
		}
		have, err := v.deps.Artifacts.HashFile(ctx, got)
		if err != nil {
			v.differ(fwhat, "mlgate's copy cannot be read: %v", err)
			continue
		}
		v.mu.Lock()
		v.report.Bytes += 2 * n
		v.report.Checked.Files++
		v.mu.Unlock()
		if want != have || have != got.SHA256 {
			v.differ(fwhat, "sha256 %s in the source, %s in mlgate's backend, %s in its metadata", want, have, got.SHA256)
		}
	}
	for p := range stored {
		v.differ(fmt.Sprintf("%s artifact %q", what, p), "in mlgate but not in the source")
	}
	return nil
}

func (v *verifier) sourceSum(ctx context.Context, uri, path string) (string, int64, error) {
	rc, _, err := v.src.OpenArtifact(ctx, uri, path)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func (v *verifier) loggedModels(ctx context.Context, expID string, m *metadata.Model, expWhat string) error {
	return v.src.LoggedModels(ctx, []string{expID}, func(lm source.LoggedModel) error {
		what := "logged model " + lm.ID
		r, err := v.journal(ctx, metadata.ImportLoggedModel, lm.ID)
		if err != nil {
			return err
		}
		if r == nil {
			v.differ(what, "not imported")
			return nil
		}
		got, err := v.deps.Store.LoggedModel(ctx, metadata.LoggedModelRef{ID: r.TargetID})
		if err != nil {
			v.differ(what, "cannot be read: %v", err)
			return nil
		}
		v.checked(func(c *Counts) { c.LoggedModels++ })
		if got.ModelID != m.ID {
			v.differ(what, "is not in the model of %s", expWhat)
		}
		if got.Name != lm.Name || got.LMID.String() != lm.ID {
			v.differ(what, "is %s %q in mlgate", got.LMID, got.Name)
		}
		v.compareParams(what+" params", lm.Params, got.Params)
		v.compareTags(what+" tags", lm.Tags, got.Tags)
		return v.files(ctx, what, lm.ArtifactLocation, got.ID)
	})
}

func (v *verifier) registry(ctx context.Context) error {
	st := v.deps.Store
	return v.src.RegisteredModels(ctx, func(rm source.RegisteredModel) error {
		what := fmt.Sprintf("registered model %q", rm.Name)
		r, err := v.journal(ctx, metadata.ImportRegisteredModel, rm.Name)
		if err != nil {
			return err
		}
		if r == nil {
			v.differ(what, "not imported")
			return nil
		}
		m, err := st.Model(ctx, metadata.ModelRef{ID: r.TargetID})
		if err != nil {
			v.differ(what, "its model cannot be read: %v", err)
			return nil
		}
		v.checked(func(c *Counts) { c.RegisteredModels++ })
		if !m.InRegistry {
			v.differ(what, "model %q is not in the registry", m.Name)
		}
		if rm.Description != "" && rm.Description != m.Description {
			v.differ(what, "description differs")
		}
		v.compareTags(what+" tags", rm.Tags, m.Tags)
		seqs := map[string]int64{}
		err = v.src.ModelVersions(ctx, rm.Name, func(sv source.ModelVersion) error {
			vwhat := fmt.Sprintf("version %s of %s", sv.Version, what)
			r, err := v.journal(ctx, metadata.ImportModelVersion, rm.Name+"/"+sv.Version)
			if err != nil {
				return err
			}
			if r == nil {
				v.differ(vwhat, "not imported")
				return nil
			}
			got, err := st.Version(ctx, metadata.VersionRef{ModelID: m.ID, Seq: r.TargetIID})
			if err != nil {
				v.differ(vwhat, "cannot be read: %v", err)
				return nil
			}
			seqs[sv.Version] = got.Seq
			v.checked(func(c *Counts) { c.Versions++ })
			if sv.Description != got.Description {
				v.differ(vwhat, "description differs")
			}
			if s := stage(sv.CurrentStage); s != "" && s != got.Stage && !(s == "None" && got.Stage == "") {
				v.differ(vwhat, "stage %s in the source, %s in mlgate", s, got.Stage)
			}
			var want []source.Tag
			for _, t := range sv.Tags {
				if t.Key == semverTag {
					if t.Value != got.Semver {
						v.differ(vwhat, "semver %s in the source, %s in mlgate", t.Value, got.Semver)
					}
					continue
				}
				want = append(want, t)
			}
			v.compareTags(vwhat+" tags", want, got.Tags)
			return v.versionOwner(ctx, vwhat, sv, got)
		})
		if err != nil {
			return err
		}
		aliases, err := st.Aliases(ctx, m.ID)
		if err != nil {
			return err
		}
		have := map[string]int64{}
		for _, a := range aliases {
			have[a.Alias] = a.Seq
		}
		for _, a := range rm.Aliases {
			if v.src.Kind() == source.KindGitLab && pkgtypes.ValidateSemver(a.Alias) == nil {
				continue // a GitLab version's semver, shown as an alias: checked as the version itself
			}
			if seq, ok := have[a.Alias]; !ok || seq != seqs[a.Version] {
				v.differ(what, "alias %q points at version %s in the source, seq %d in mlgate", a.Alias, a.Version, seq)
			}
		}
		return nil
	})
}

func (v *verifier) versionOwner(ctx context.Context, what string, sv source.ModelVersion, got *metadata.Version) error {
	if lmID := versionLoggedModel(sv); lmID != "" {
		lm, err := v.deps.Store.LoggedModel(ctx, metadata.LoggedModelRef{ID: got.LoggedModelID})
		if err != nil || lm.LMID.String() != lmID {
			v.differ(what, "is not backed by logged model %s", lmID)
		}
		return nil
	}
	if sv.RunID == "" {
		return nil
	}
	r, err := v.journal(ctx, metadata.ImportRun, sv.RunID)
	if err != nil {
		return err
	}
	if r == nil || got.CandidateID != r.TargetID {
		v.differ(what, "is not backed by the candidate of run %s", sv.RunID)
	}
	return nil
}

// compareTags checks that every source tag is in mlgate with its value. mlgate may hold more: a model
// that is both an experiment and a registered model holds the tags of both.
func (v *verifier) compareTags(what string, want []source.Tag, got []metadata.Tag) {
	have := map[string]string{}
	for _, t := range got {
		have[t.Key] = t.Value
	}
	for _, t := range want {
		if val, ok := have[t.Key]; !ok || val != t.Value {
			v.differ(what, "tag %q is %q in the source, %q in mlgate", t.Key, t.Value, val)
		}
	}
}

func (v *verifier) compareParams(what string, want []source.Param, got []metadata.Param) {
	have := map[string]string{}
	for _, p := range got {
		have[p.Key] = p.Value
	}
	if len(want) != len(got) {
		v.differ(what, "%d params in the source, %d in mlgate", len(want), len(got))
	}
	for _, p := range want {
		if val, ok := have[p.Key]; !ok || val != p.Value {
			v.differ(what, "param %q is %q in the source, %q in mlgate", p.Key, p.Value, val)
		}
	}
}
