package importer

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/importer/source"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Version tags that name a version's semver, as mlgate's and GitLab's registries read them.
const (
	versionTag       = "mlgate.version"
	gitlabVersionTag = "gitlab.version"
	// semverTag is the read-only tag through which an mlgate source shows a version's semver; it is the
	// semver, not a tag to store.
	semverTag = "mlgate.semver"
	// SourceRunTag keeps the source run of a version whose run was imported into another model.
	SourceRunTag = "mlgate.source_run_id"
)

// importRegistry imports every registered model with its versions and aliases.
func (im *importer) importRegistry(ctx context.Context) error {
	for _, rp := range im.plan.RegisteredModels {
		m, skipped, err := im.importRegisteredModel(ctx, rp)
		if err != nil {
			if isEntityError(err) {
				im.fail(fmt.Sprintf("registered model %q", rp.Source.Name), err)
				continue
			}
			return err
		}
		im.count(skipped, func(c *Counts) { c.RegisteredModels++ })
		im.deps.Progress.Entity()
		seqs := map[string]int64{}
		for i, v := range rp.Versions {
			seq, skipped, err := im.importVersion(ctx, m, rp, i, v)
			if err != nil {
				if isEntityError(err) {
					im.fail(fmt.Sprintf("version %s of registered model %q", v.Version, rp.Source.Name), err)
					continue
				}
				return err
			}
			seqs[v.Version] = seq
			im.count(skipped, func(c *Counts) { c.Versions++ })
			im.deps.Progress.Entity()
		}
		for _, a := range rp.Source.Aliases {
			if im.src.Kind() == source.KindGitLab && pkgtypes.ValidateSemver(a.Alias) == nil {
				continue // GitLab shows each version's semver as an alias: it is the version itself
			}
			seq, ok := seqs[a.Version]
			if !ok {
				im.fail(fmt.Sprintf("alias %q of registered model %q", a.Alias, rp.Source.Name),
					entityErr(fmt.Errorf("it points at version %s, which was not imported", a.Version)))
				continue
			}
			if err := im.deps.Store.SetAlias(ctx, m.ID, a.Alias, seq); err != nil {
				if !isEntityError(err) {
					return err
				}
				im.fail(fmt.Sprintf("alias %q of registered model %q", a.Alias, rp.Source.Name), err)
			}
		}
	}
	return nil
}

func (im *importer) importRegisteredModel(ctx context.Context, rp *RegisteredModelPlan) (*metadata.Model, bool, error) {
	st := im.deps.Store
	if r, err := im.journal(ctx, metadata.ImportRegisteredModel, rp.Source.Name); err != nil || r != nil {
		if err != nil {
			return nil, false, err
		}
		m, err := st.Model(ctx, metadata.ModelRef{ID: r.TargetID})
		return m, true, err
	}
	var out *metadata.Model
	inRegistry := true
	desc := rp.Source.Description
	err := st.Update(ctx, func(ctx context.Context) error {
		if rp.Experiment != nil {
			m := im.models[rp.Experiment.Source.ID]
			if m == nil {
				return entityErr(fmt.Errorf("its experiment %s was not imported", rp.Experiment.Source.ID))
			}
			u := metadata.ModelUpdate{InRegistry: &inRegistry, SetTags: tags(rp.Source.Tags)}
			if desc != "" {
				u.Description = &desc
			}
			var err error
			if out, err = st.UpdateModel(ctx, m.ID, u); err != nil {
				return err
			}
		} else {
			out = &metadata.Model{Project: im.project.ID, Name: rp.Name, DisplayName: rp.DisplayName, Description: desc,
				Tags: tags(rp.Source.Tags), InRegistry: true, CreatedAt: msTime(rp.Source.CreationTime), UpdatedAt: msTime(rp.Source.LastUpdatedTime)}
			if err := st.CreateModel(ctx, out); err != nil {
				return err
			}
		}
		return st.PutImportRecord(ctx, im.record(metadata.ImportRegisteredModel, rp.Source.Name, out.ID, out.IID, metadata.ImportDone, 0, ""))
	})
	return out, false, err
}

// importVersion creates one version, backed by its run's candidate or its logged model. Its number is
// kept as the seq for an MLflow source; a GitLab source's numbers are database ids, so its versions
// take seqs in creation order (index+1).
func (im *importer) importVersion(ctx context.Context, m *metadata.Model, rp *RegisteredModelPlan, index int, v source.ModelVersion) (int64, bool, error) {
	st := im.deps.Store
	id := rp.Source.Name + "/" + v.Version
	if r, err := im.journal(ctx, metadata.ImportModelVersion, id); err != nil {
		return 0, false, err
	} else if r != nil {
		return r.TargetIID, true, nil
	}
	ver := &metadata.Version{Project: im.project.ID, ModelID: m.ID, Description: v.Description, Source: v.Source,
		RunLink: v.RunLink, UserID: v.UserID, Stage: stage(v.CurrentStage), Tags: versionTags(v.Tags),
		CreatedAt: msTime(v.CreationTime), UpdatedAt: msTime(v.LastUpdatedTime)}
	semver, err := versionSemver(im.src.Kind(), index, v)
	if err != nil {
		return 0, false, entityErr(err)
	}
	ver.Semver = semver
	if im.src.Kind() == source.KindGitLab {
		ver.Seq = int64(index + 1)
	} else if n, err := strconv.ParseInt(v.Version, 10, 64); err == nil && n > 0 {
		ver.Seq = n
	}
	if err := im.backVersion(ctx, m, v, ver); err != nil {
		return 0, false, err
	}
	var out metadata.Version
	err = st.Update(ctx, func(ctx context.Context) error {
		out = *ver
		if err := st.CreateVersion(ctx, &out); err != nil {
			return err
		}
		return st.PutImportRecord(ctx, im.record(metadata.ImportModelVersion, id, m.ID, out.Seq, metadata.ImportDone, 0, ""))
	})
	return out.Seq, false, err
}

// versionTags are the tags to store of a source version: all but an mlgate source's semver.
func versionTags(ts []source.Tag) []metadata.Tag {
	out := tags(ts)
	return slices.DeleteFunc(out, func(t metadata.Tag) bool { return t.Key == semverTag })
}

// versionSemver is the semver a version gets: an mlgate source's own (mlgate.semver), its
// mlgate.version or gitlab.version tag, else GitLab's own (a GitLab version is a semver), else <n>.0.0
// for MLflow's version n.
func versionSemver(kind source.Kind, index int, v source.ModelVersion) (string, error) {
	for _, t := range v.Tags {
		if t.Key == semverTag || t.Key == versionTag || t.Key == gitlabVersionTag {
			if err := pkgtypes.ValidateSemver(t.Value); err != nil {
				return "", fmt.Errorf("tag %s: %w", t.Key, err)
			}
			return t.Value, nil
		}
	}
	if kind == source.KindGitLab {
		// GitLab's version field is a database id; the semver is the version's one alias.
		for _, a := range v.Aliases {
			if pkgtypes.ValidateSemver(a) == nil {
				return a, nil
			}
		}
		if pkgtypes.ValidateSemver(v.Version) == nil {
			return v.Version, nil
		}
	}
	if n, err := strconv.ParseInt(v.Version, 10, 64); err == nil && n > 0 {
		return strconv.FormatInt(n, 10) + ".0.0", nil
	}
	return strconv.Itoa(index+1) + ".0.0", nil
}

func stage(s string) string {
	for _, st := range metadata.VersionStages {
		if strings.EqualFold(s, st) {
			return st
		}
	}
	return ""
}

// backVersion sets the version's owner: the logged model it names, else its run's candidate, with
// the directory inside the run's files that its source names. A run imported into another model backs
// the version where it is, as mlgate's model-versions/create does: the bytes are stored once and keep
// one owner, so that no delete of one model can remove the files of another. The source run id is kept
// as a tag.
func (im *importer) backVersion(ctx context.Context, m *metadata.Model, v source.ModelVersion, ver *metadata.Version) error {
	if lmID := versionLoggedModel(v); lmID != "" {
		if lm := im.lms[lmID]; lm != nil {
			ver.LoggedModelID = lm.ID
			return nil
		}
		if lmid, ok := metadata.ParseLMID(lmID); ok {
			if lm, err := im.deps.Store.LoggedModel(ctx, metadata.LoggedModelRef{LMID: lmid, Project: im.project.ID}); err == nil {
				ver.LoggedModelID = lm.ID
				return nil
			}
		}
		return entityErr(fmt.Errorf("its logged model %s was not imported", lmID))
	}
	runID, sub := v.RunID, ""
	if rest, ok := strings.CutPrefix(v.Source, "runs:/"); ok {
		id, path, _ := strings.Cut(rest, "/")
		if runID == "" {
			runID = id
		}
		if id == runID {
			sub = path
		}
	}
	if runID == "" {
		return entityErr(fmt.Errorf("its source %q names no run or logged model, so there are no files to back it", v.Source))
	}
	im.mu.Lock()
	c := im.runs[runID]
	im.mu.Unlock()
	if c == nil {
		if eid, ok := parseRunID(runID); ok {
			if found, err := im.deps.Store.Candidate(ctx, metadata.CandidateRef{EID: eid}); err == nil && found.Project == im.project.ID {
				c = found
			}
		}
	}
	if c == nil {
		return entityErr(fmt.Errorf("its run %s was not imported", runID))
	}
	if sub == "" {
		sub = subpathInRun(im.plan, runID, v.Source)
	}
	sub = strings.Trim(sub, "/")
	if sub != "" {
		if err := pkgtypes.ValidateFilePath(sub); err != nil {
			return entityErr(fmt.Errorf("source %q: %w", v.Source, err))
		}
	}
	ver.CandidateID, ver.Subpath = c.ID, sub
	if c.ModelID != m.ID {
		ver.Tags = append(ver.Tags, metadata.Tag{Key: SourceRunTag, Value: runID})
	}
	return nil
}

// subpathInRun is the directory of the run's files that source names when source lies under the
// run's artifact location as the source server gave it; "" (the whole run) otherwise.
func subpathInRun(p *Plan, runID, src string) string {
	for _, ep := range p.Experiments {
		for _, rp := range ep.Runs {
			if rp.Run.ID != runID || rp.Run.ArtifactURI == "" {
				continue
			}
			root := strings.TrimRight(rp.Run.ArtifactURI, "/")
			if rest, ok := strings.CutPrefix(src, root); ok && (rest == "" || rest[0] == '/') {
				return rest
			}
		}
	}
	return ""
}

// versionLoggedModel is the MLflow 3 logged model a version is, "" for none: its model_id, or the
// models:/m-… source that the 3.6 reference server gives without a model_id.
func versionLoggedModel(v source.ModelVersion) string {
	if v.ModelID != "" {
		return v.ModelID
	}
	if rest, ok := strings.CutPrefix(v.Source, "models:/"); ok && strings.HasPrefix(rest, metadata.LMIDPrefix) {
		return strings.Trim(rest, "/")
	}
	return ""
}
