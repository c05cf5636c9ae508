package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// maxPointsPerCommit bounds one history page's commit: MLflow's own log-batch limit.
const maxPointsPerCommit = 1000

func msTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func tags(ts []source.Tag) []metadata.Tag {
	out := make([]metadata.Tag, 0, len(ts))
	for _, t := range ts {
		out = append(out, metadata.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func params(ps []source.Param) []metadata.Param {
	out := make([]metadata.Param, 0, len(ps))
	for _, p := range ps {
		out = append(out, metadata.Param{Key: p.Key, Value: p.Value})
	}
	return out
}

func lifecycle(stage string) metadata.Lifecycle {
	if strings.EqualFold(stage, "deleted") {
		return metadata.Deleted
	}
	return metadata.Active
}

// importExperiments creates the model of every experiment (active for now: finishExperiments deletes
// those deleted in the source once their runs are in, so that their candidates are deleted with them).
func (im *importer) importExperiments(ctx context.Context) error {
	for _, ep := range im.plan.Experiments {
		m, skipped, err := im.importExperiment(ctx, ep)
		if err != nil {
			if isEntityError(err) {
				im.fail(fmt.Sprintf("experiment %s (%q)", ep.Source.ID, ep.Source.Name), err)
				continue
			}
			return err
		}
		im.models[ep.Source.ID] = m
		im.count(skipped, func(c *Counts) { c.Experiments++ })
		im.deps.Progress.Entity()
	}
	return nil
}

func (im *importer) importExperiment(ctx context.Context, ep *ExperimentPlan) (*metadata.Model, bool, error) {
	st := im.deps.Store
	if r, err := im.journal(ctx, metadata.ImportExperiment, ep.Source.ID); err != nil || r != nil {
		if err != nil {
			return nil, false, err
		}
		m, err := st.Model(ctx, metadata.ModelRef{ID: r.TargetID})
		return m, true, err
	}
	var out *metadata.Model
	err := st.Update(ctx, func(ctx context.Context) error {
		if ep.IID == 0 {
			m, err := st.EnsureDefaultModel(ctx, im.project.ID)
			if err != nil {
				return err
			}
			if len(ep.Source.Tags) > 0 {
				if m, err = st.UpdateModel(ctx, m.ID, metadata.ModelUpdate{SetTags: tags(ep.Source.Tags)}); err != nil {
					return err
				}
			}
			out = m
		} else {
			m := &metadata.Model{Project: im.project.ID, Name: ep.Name, DisplayName: ep.DisplayName, Tags: tags(ep.Source.Tags),
				CreatedAt: msTime(ep.Source.CreationTime), UpdatedAt: msTime(ep.Source.LastUpdateTime)}
			if ep.IID > 0 {
				m.IID = ep.IID
			}
			if err := st.CreateModel(ctx, m); err != nil {
				return err
			}
			out = m
		}
		return st.PutImportRecord(ctx, im.record(metadata.ImportExperiment, ep.Source.ID, out.ID, out.IID, metadata.ImportDone, 0, ""))
	})
	if errors.Is(err, metadata.ErrExists) && ep.IID > 0 {
		// The iid was free when planned; another writer took it since. Take the next one.
		ep.IID = -1
		return im.importExperiment(ctx, ep)
	}
	return out, false, err
}

// importRuns creates every run's candidate with its params and tags.
func (im *importer) importRuns(ctx context.Context) error {
	var runs []*RunPlan
	owner := map[*RunPlan]*metadata.Model{}
	for _, ep := range im.plan.Experiments {
		m := im.models[ep.Source.ID]
		if m == nil {
			continue // reported with its experiment
		}
		for _, rp := range ep.Runs {
			runs = append(runs, rp)
			owner[rp] = m
		}
	}
	return forEach(ctx, im.opts.parallel(), runs, func(ctx context.Context, rp *RunPlan) error {
		c, skipped, err := im.importRun(ctx, owner[rp], rp)
		if err != nil {
			if isEntityError(err) {
				im.fail("run "+rp.Run.ID, err)
				return nil
			}
			return err
		}
		im.mu.Lock()
		im.runs[rp.Run.ID] = c
		im.mu.Unlock()
		im.count(skipped, func(c *Counts) { c.Runs++ })
		im.deps.Progress.Entity()
		return nil
	})
}

func (im *importer) importRun(ctx context.Context, m *metadata.Model, rp *RunPlan) (*metadata.Candidate, bool, error) {
	st := im.deps.Store
	if r, err := im.journal(ctx, metadata.ImportRun, rp.Run.ID); err != nil || r != nil {
		if err != nil {
			return nil, false, err
		}
		c, err := st.Candidate(ctx, metadata.CandidateRef{ID: r.TargetID})
		return c, true, err
	}
	run := rp.Run
	status, ok := metadata.ParseRunStatus(run.Status)
	if !ok {
		status = metadata.Finished
		if run.EndTime == 0 {
			status = metadata.Running
		}
	}
	c := &metadata.Candidate{Project: im.project.ID, ModelID: m.ID, IID: rp.IID, Name: run.Name, UserID: run.UserID,
		Status: status, StartTime: run.StartTime, EndTime: run.EndTime, Lifecycle: lifecycle(run.LifecycleStage),
		CreatedAt: msTime(run.StartTime)}
	note := ""
	if eid, ok := parseRunID(run.ID); ok {
		c.EID = eid
	} else {
		note = fmt.Sprintf("run id %q is not 32 hex digits nor a UUID: the candidate has a new run id", run.ID)
	}
	for {
		var attempt metadata.Candidate
		err := st.Update(ctx, func(ctx context.Context) error {
			// Each run of fn starts from the wanted values: a run that was rolled back filled them in.
			attempt = *c
			if err := st.CreateCandidate(ctx, &attempt, tags(rp.Tags)); err != nil {
				return err
			}
			if len(run.Params) > 0 {
				if err := st.LogBatch(ctx, attempt.ID, params(run.Params), nil, nil); err != nil {
					return err
				}
			}
			return st.PutImportRecord(ctx, im.record(metadata.ImportRun, run.ID, attempt.ID, attempt.IID, metadata.ImportDone, 0, note))
		})
		switch {
		case err == nil:
			return &attempt, false, nil
		case errors.Is(err, metadata.ErrExists) && c.IID != 0:
			c.IID = 0 // the GitLab iid is taken in the project: the mapping table gives the new one
		case errors.Is(err, metadata.ErrExists) && c.EID != (metadata.EID{}):
			// The run id is another candidate's (this source imported into another project, say).
			c.EID = metadata.EID{}
			note = "run id already used in this mlgate: the candidate has a new run id"
		default:
			return nil, false, err
		}
	}
}

// parseRunID accepts MLflow's 32 hex digits and GitLab's UUIDs (the same 128 bits with dashes).
func parseRunID(id string) (metadata.EID, bool) { return metadata.ParseEID(id) }

// importLoggedModels creates every logged model with its params and tags; its files come later.
func (im *importer) importLoggedModels(ctx context.Context) error {
	for _, ep := range im.plan.Experiments {
		m := im.models[ep.Source.ID]
		if m == nil {
			continue
		}
		for _, lp := range ep.LoggedModels {
			lm, skipped, err := im.importLoggedModel(ctx, m, lp)
			if err != nil {
				if isEntityError(err) {
					im.fail("logged model "+lp.LoggedModel.ID, err)
					continue
				}
				return err
			}
			im.lms[lp.LoggedModel.ID] = lm
			im.count(skipped, func(c *Counts) { c.LoggedModels++ })
			im.deps.Progress.Entity()
		}
	}
	return nil
}

func (im *importer) importLoggedModel(ctx context.Context, m *metadata.Model, lp *LoggedModelPlan) (*metadata.LoggedModel, bool, error) {
	st := im.deps.Store
	src := lp.LoggedModel
	if r, err := im.journal(ctx, metadata.ImportLoggedModel, src.ID); err != nil || r != nil {
		if err != nil {
			return nil, false, err
		}
		lm, err := st.LoggedModel(ctx, metadata.LoggedModelRef{ID: r.TargetID})
		return lm, true, err
	}
	lmid, ok := metadata.ParseLMID(src.ID)
	if !ok {
		return nil, false, entityErr(fmt.Errorf("logged model id %q is not m- and 32 hex digits", src.ID))
	}
	status, ok := metadata.ParseLoggedModelStatus(src.Status)
	if !ok {
		status = metadata.LoggedModelReady
	}
	lm := &metadata.LoggedModel{LMID: lmid, Project: im.project.ID, ModelID: m.ID, Name: src.Name, Status: status,
		StatusMessage: src.StatusMessage, ModelType: src.ModelType, Params: params(src.Params), Tags: tags(src.Tags),
		CreatedAt: msTime(src.CreationTime), UpdatedAt: msTime(src.LastUpdatedTime)}
	if src.SourceRunID != "" {
		im.mu.Lock()
		c := im.runs[src.SourceRunID]
		im.mu.Unlock()
		if c != nil {
			lm.SourceRunID = c.ID
		}
	}
	var out metadata.LoggedModel
	err := st.Update(ctx, func(ctx context.Context) error {
		out = *lm
		if err := st.CreateLoggedModel(ctx, &out); err != nil {
			return err
		}
		return st.PutImportRecord(ctx, im.record(metadata.ImportLoggedModel, src.ID, out.ID, 0, metadata.ImportDone, 0, ""))
	})
	return &out, false, err
}

// importRunContents imports each run's metric histories, inputs, outputs and files.
func (im *importer) importRunContents(ctx context.Context) error {
	var runs []*RunPlan
	for _, ep := range im.plan.Experiments {
		runs = append(runs, ep.Runs...)
	}
	return forEach(ctx, im.opts.parallel(), runs, func(ctx context.Context, rp *RunPlan) error {
		im.mu.Lock()
		c := im.runs[rp.Run.ID]
		im.mu.Unlock()
		if c == nil {
			return nil // reported when its candidate failed
		}
		what := "run " + rp.Run.ID
		for _, key := range metricKeys(rp.Run) {
			if err := im.importHistory(ctx, c, rp.Run.ID, key); err != nil {
				if !isEntityError(err) {
					return err
				}
				im.fail(fmt.Sprintf("%s metric %q", what, key), err)
			}
		}
		if err := im.importInputsOutputs(ctx, c, rp.Run); err != nil {
			if !isEntityError(err) {
				return err
			}
			im.fail(what+" inputs and outputs", err)
		}
		return im.importFiles(ctx, what, rp.Run.ID, c.ID, rp.ArtifactURI, rp.Files)
	})
}

func metricKeys(r source.Run) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range r.LatestMetrics {
		if !seen[m.Key] {
			seen[m.Key] = true
			keys = append(keys, m.Key)
		}
	}
	return keys
}

// importHistory imports every point of one metric, page by page; each page commits with the count of
// points done, and a resumed import skips that many.
func (im *importer) importHistory(ctx context.Context, c *metadata.Candidate, runID, key string) error {
	st := im.deps.Store
	id := runID + "/" + key
	r, err := im.journal(ctx, metadata.ImportMetric, id)
	if err != nil {
		return err
	}
	var done int64
	if r != nil {
		if r.State == metadata.ImportDone {
			im.count(true, func(n *Counts) { n.MetricPoints += r.Progress })
			return nil
		}
		done = r.Progress
	}
	var seen, added int64
	err = im.src.MetricHistory(ctx, runID, key, func(page []source.Metric) error {
		for len(page) > 0 {
			chunk := page[:min(len(page), maxPointsPerCommit)]
			page = page[len(chunk):]
			if seen+int64(len(chunk)) <= done {
				seen += int64(len(chunk))
				continue
			}
			skip := max(done-seen, 0)
			points, err := im.points(chunk[skip:])
			if err != nil {
				return err
			}
			seen += int64(len(chunk))
			err = st.Update(ctx, func(ctx context.Context) error {
				if err := st.LogBatch(ctx, c.ID, nil, points, nil); err != nil {
					return err
				}
				return st.PutImportRecord(ctx, im.record(metadata.ImportMetric, id, c.ID, 0, metadata.ImportPending, seen, ""))
			})
			if err != nil {
				return err
			}
			added += int64(len(points))
		}
		return nil
	})
	if err != nil {
		return classify(err)
	}
	if seen < done {
		return entityErr(fmt.Errorf("the source now has %d points, fewer than the %d imported earlier", seen, done))
	}
	im.count(false, func(n *Counts) { n.MetricPoints += added })
	im.count(true, func(n *Counts) { n.MetricPoints += done })
	return st.PutImportRecord(ctx, im.record(metadata.ImportMetric, id, c.ID, 0, metadata.ImportDone, seen, ""))
}

func (im *importer) points(ms []source.Metric) ([]metadata.Metric, error) {
	out := make([]metadata.Metric, 0, len(ms))
	for _, m := range ms {
		p := metadata.Metric{Key: m.Key, Value: m.Value, Timestamp: m.Timestamp, Step: m.Step,
			DatasetName: m.DatasetName, DatasetDigest: m.DatasetDigest}
		if m.ModelID != "" {
			lmid, ok := metadata.ParseLMID(m.ModelID)
			if !ok {
				return nil, entityErr(fmt.Errorf("metric %q links to logged model %q, which is not an MLflow logged model id", m.Key, m.ModelID))
			}
			p.LoggedModel = lmid
		}
		out = append(out, p)
	}
	return out, nil
}

func (im *importer) importInputsOutputs(ctx context.Context, c *metadata.Candidate, run source.Run) error {
	st := im.deps.Store
	if len(run.DatasetInputs) > 0 || len(run.ModelInputs) > 0 {
		var ds []metadata.DatasetInput
		for _, d := range run.DatasetInputs {
			ds = append(ds, metadata.DatasetInput{Dataset: metadata.Dataset{Name: d.Name, Digest: d.Digest,
				SourceType: d.SourceType, Source: d.Source, Schema: d.Schema, Profile: d.Profile}, Tags: tags(d.Tags)})
		}
		var models []metadata.LMID
		for _, id := range run.ModelInputs {
			if lmid, ok := metadata.ParseLMID(id); ok {
				models = append(models, lmid)
			}
		}
		if err := st.LogInputs(ctx, c.ID, ds, models); err != nil {
			return classify(err)
		}
	}
	if len(run.ModelOutputs) > 0 {
		var outs []metadata.ModelOutput
		for _, o := range run.ModelOutputs {
			if lmid, ok := metadata.ParseLMID(o.ModelID); ok {
				outs = append(outs, metadata.ModelOutput{LoggedModel: lmid, Step: o.Step})
			}
		}
		if err := st.LogOutputs(ctx, c.ID, outs); err != nil {
			return classify(err)
		}
	}
	return nil
}

// importLoggedModelFiles imports the files of every logged model.
func (im *importer) importLoggedModelFiles(ctx context.Context) error {
	var lps []*LoggedModelPlan
	for _, ep := range im.plan.Experiments {
		lps = append(lps, ep.LoggedModels...)
	}
	return forEach(ctx, im.opts.parallel(), lps, func(ctx context.Context, lp *LoggedModelPlan) error {
		lm := im.lms[lp.LoggedModel.ID]
		if lm == nil {
			return nil
		}
		return im.importFiles(ctx, "logged model "+lp.LoggedModel.ID, lp.LoggedModel.ID, lm.ID, lp.LoggedModel.ArtifactLocation, lp.Files)
	})
}

// importFiles streams an owner's files into storage, each committing with its journal record.
func (im *importer) importFiles(ctx context.Context, what, sourceOwner string, owner uint64, uri string, files []source.FileInfo) error {
	for _, f := range files {
		id := sourceOwner + "/" + f.Path
		fwhat := fmt.Sprintf("%s artifact %q", what, f.Path)
		r, err := im.journal(ctx, metadata.ImportArtifact, id)
		if err != nil {
			return err
		}
		if r != nil && r.State == metadata.ImportDone {
			im.count(true, func(c *Counts) { c.Files++ })
			im.deps.Progress.Bytes(max(f.Size, 0))
			continue
		}
		if err := pkgtypes.ValidateFilePath(f.Path); err != nil {
			im.fail(fwhat, fmt.Errorf("not a file path mlgate accepts: %w", err))
			continue
		}
		n, err := im.importFile(ctx, id, owner, uri, f)
		if err != nil {
			if ctx.Err() != nil || !isEntityError(err) {
				return err
			}
			im.fail(fwhat, err)
			continue
		}
		im.count(false, func(c *Counts) { c.Files++ })
		im.mu.Lock()
		im.report.Bytes += n
		im.mu.Unlock()
	}
	return nil
}

func (im *importer) importFile(ctx context.Context, id string, owner uint64, uri string, f source.FileInfo) (int64, error) {
	body, size, err := im.src.OpenArtifact(ctx, uri, f.Path)
	if err != nil {
		return 0, classify(err)
	}
	defer body.Close()
	counted := &countingReader{r: body, progress: im.deps.Progress}
	stored, err := im.deps.Artifacts.Store(ctx, artifact.Upload{
		OwnerID: owner,
		Path:    f.Path,
		Body:    counted,
		Size:    size,
		AlsoCommit: func(ctx context.Context) error {
			return im.deps.Store.PutImportRecord(ctx, im.record(metadata.ImportArtifact, id, owner, 0, metadata.ImportDone, max(size, counted.n), ""))
		},
	})
	if err != nil {
		return counted.n, classify(err)
	}
	return stored.Size, nil
}

// countingReader reports the bytes read from the source as they arrive.
type countingReader struct {
	r        io.Reader
	n        int64
	progress Progress
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 {
		c.progress.Bytes(int64(n))
	}
	return n, err
}

// finishExperiments deletes the models of experiments deleted in the source, with their candidates.
func (im *importer) finishExperiments(ctx context.Context) error {
	deleted := metadata.Deleted
	for _, ep := range im.plan.Experiments {
		m := im.models[ep.Source.ID]
		if m == nil || lifecycle(ep.Source.LifecycleStage) != metadata.Deleted || m.Lifecycle == metadata.Deleted || m.IID == 0 {
			continue
		}
		if _, err := im.deps.Store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{Lifecycle: &deleted}); err != nil {
			return err
		}
	}
	return nil
}

// entityError marks an error as one entity's: it is reported and the import goes on.
type entityError struct{ err error }

func (e entityError) Error() string { return e.err.Error() }
func (e entityError) Unwrap() error { return e.err }

func entityErr(err error) error { return entityError{err} }

// isEntityError reports whether err concerns one entity only (the source cannot give it, or the store
// refuses it as invalid), as opposed to the store or the context failing, which ends the import.
func isEntityError(err error) bool {
	var ee entityError
	return errors.As(err, &ee) || errors.Is(err, metadata.ErrInvalid) || errors.Is(err, metadata.ErrExists) ||
		errors.Is(err, metadata.ErrConflict) || errors.Is(err, metadata.ErrNotFound) || isSourceError(err)
}

func isSourceError(err error) bool {
	return errors.Is(err, source.ErrNotFound) || errors.Is(err, source.ErrUnavailable) ||
		errors.Is(err, source.ErrUnsupportedScheme) || errors.Is(err, source.ErrIncomplete)
}

// classify marks the source's errors and the store's refusals of one entity as entity errors.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isEntityError(err) {
		return entityErr(err)
	}
	return err
}
