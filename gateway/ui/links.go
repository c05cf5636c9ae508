package ui

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/mlgate/mlgate/metadata"
)

// link is an anchor to another page: Href is empty when the target has no page (it was deleted), and
// the label then says so.
type link struct {
	Href  string
	Label string
	Title string // the full id, shown on hover where Label is shorter
}

// linker builds links to the pages of candidates, logged models and versions of any model of one
// project. Versions and logged models routinely point across models (a registered model's version backed
// by a run or logged model of an experiment), so a record's own model decides its address; each model is
// read once per page.
type linker struct {
	ctx    context.Context
	store  metadata.Store
	p      *metadata.Project
	models map[uint64]*metadata.Model
	runs   map[metadata.EID]link
}

func (s *UI) linker(ctx context.Context, p *metadata.Project) *linker {
	return &linker{ctx: ctx, store: s.store, p: p, models: map[uint64]*metadata.Model{}, runs: map[metadata.EID]link{}}
}

// model returns the model with id, read once. Errors are the store's (ErrNotFound for an unknown id).
func (l *linker) model(id uint64) (*metadata.Model, error) {
	if m, ok := l.models[id]; ok {
		return m, nil
	}
	m, err := l.store.Model(l.ctx, metadata.ModelRef{ID: id})
	if err != nil {
		return nil, err
	}
	l.models[id] = m
	return m, nil
}

// activeModelHref is the page of the model with id, or "" when the model is deleted, gone or in another
// project. Errors other than ErrNotFound are the store's.
func (l *linker) activeModelHref(id uint64) (*metadata.Model, string, error) {
	m, err := l.model(id)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	if m.Lifecycle != metadata.Active || m.Project != l.p.ID {
		return m, "", nil
	}
	return m, modelHref(l.p, m), nil
}

// candidate links the candidate with id by its name (or #iid). A candidate that is gone or deleted gets
// a label without an address. Errors are the store's, never ErrNotFound.
func (l *linker) candidate(id uint64) (link, error) {
	c, err := l.store.Candidate(l.ctx, metadata.CandidateRef{ID: id})
	if errors.Is(err, metadata.ErrNotFound) {
		return link{Label: "deleted run"}, nil
	}
	if err != nil {
		return link{}, err
	}
	return l.candidateLink(c)
}

// run links the candidate whose MLflow run id is eid, read once per page; unknown runs and runs of
// other projects get a label only. Errors are the store's, never ErrNotFound.
func (l *linker) run(eid metadata.EID) (link, error) {
	if out, ok := l.runs[eid]; ok {
		return out, nil
	}
	c, err := l.store.Candidate(l.ctx, metadata.CandidateRef{EID: eid, Project: l.p.ID})
	out := link{Label: eid.String()[:8], Title: eid.String()}
	switch {
	case err == nil:
		if out, err = l.candidateLink(c); err != nil {
			return link{}, err
		}
	case !errors.Is(err, metadata.ErrNotFound):
		return link{}, err
	}
	l.runs[eid] = out
	return out, nil
}

func (l *linker) candidateLink(c *metadata.Candidate) (link, error) {
	out := link{Label: candLabel(c), Title: c.EID.String()}
	_, href, err := l.activeModelHref(c.ModelID)
	if err != nil {
		return link{}, err
	}
	if href == "" || c.Lifecycle != metadata.Active {
		out.Label += " (deleted)"
		return out, nil
	}
	out.Href = href + "/candidates/" + strconv.FormatInt(c.IID, 10)
	return out, nil
}

// loggedModel links a logged model by its name, under the model it was logged in. Errors are the
// store's.
func (l *linker) loggedModel(lm *metadata.LoggedModel) (link, error) {
	out := link{Label: lm.Name, Title: lm.LMID.String()}
	if out.Label == "" {
		out.Label = lm.LMID.String()
	}
	_, href, err := l.activeModelHref(lm.ModelID)
	if err != nil || href == "" {
		return out, err
	}
	out.Href = loggedModelHref(href, lm)
	return out, nil
}

// loggedModelByID links the logged model with id; one that is gone gets a label only. Errors are the
// store's, never ErrNotFound.
func (l *linker) loggedModelByID(id uint64) (link, *metadata.LoggedModel, error) {
	lm, err := l.store.LoggedModel(l.ctx, metadata.LoggedModelRef{ID: id})
	if errors.Is(err, metadata.ErrNotFound) {
		return link{Label: "deleted logged model"}, nil, nil
	}
	if err != nil {
		return link{}, nil, err
	}
	out, err := l.loggedModel(lm)
	return out, lm, err
}

// version links a version as "<model> <semver>" under its own model. Errors are the store's.
func (l *linker) version(v *metadata.Version) (link, error) {
	m, href, err := l.activeModelHref(v.ModelID)
	if err != nil {
		return link{}, err
	}
	out := link{Label: v.Semver, Title: "MLflow version " + strconv.FormatInt(v.Seq, 10)}
	if m != nil {
		out.Label = m.DisplayName + " " + v.Semver
	}
	if href != "" {
		out.Href = href + "/versions/" + url.PathEscape(v.Semver)
	}
	return out, nil
}

// versionsBackedBy links every version, of any model, backed by the candidate or logged model owner.
// Errors are the store's.
func (l *linker) versionsBackedBy(owner uint64) ([]link, error) {
	versions, err := l.store.VersionsBackedBy(l.ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]link, 0, len(versions))
	for _, v := range versions {
		lk, err := l.version(v)
		if err != nil {
			return nil, err
		}
		out = append(out, lk)
	}
	return out, nil
}

func loggedModelHref(modelHref string, lm *metadata.LoggedModel) string {
	return modelHref + "/logged-models/" + lm.LMID.String()
}
