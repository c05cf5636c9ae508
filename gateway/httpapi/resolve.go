package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/mlgate/mlgate/metadata"
)

// UnescapeParam decodes one routed segment. The router matches on the escaped path (so that an encoded
// "/" stays inside its segment) and leaves decoding to the handlers. A malformed escape is ErrBadRequest.
func UnescapeParam(s string) (string, error) {
	v, err := url.PathUnescape(s)
	if err != nil {
		return "", fmt.Errorf("%w: malformed escape in %q", ErrBadRequest, s)
	}
	return v, nil
}

// ResolveProject finds the project an escaped URL segment names: a numeric id or a URL-encoded path
// (metadata.ParseProjectRef tells them apart). Without auth, the first write (create) to an unknown path
// creates the project; an unknown numeric id is always metadata.ErrNotFound. With auth (a Principal in
// ctx), a project other than the token's is ErrNotFound with the same message as a real miss, so a
// token learns nothing about other projects; only a write or admin token creates its own project. A
// malformed segment, or one that is neither an id nor a path ("0", "007", an overflowing number, a
// leading "-"), is ErrBadRequest.
func ResolveProject(ctx context.Context, store metadata.Store, escaped string, create bool) (*metadata.Project, error) {
	ref, err := UnescapeParam(escaped)
	if err != nil {
		return nil, err
	}
	parsed, err := metadata.ParseProjectRef(ref)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	tok := Principal(ctx)
	if id := parsed.ID; id != 0 {
		notFound := NotFound("project %d not found", id)
		p, err := store.Project(ctx, metadata.ProjectRef{ID: id})
		if errors.Is(err, metadata.ErrNotFound) || (err == nil && tok != nil && p.Path != tok.ProjectPath) {
			return nil, notFound
		}
		if err != nil {
			return nil, fmt.Errorf("project %d: %w", id, err)
		}
		return p, nil
	}
	notFound := NotFound("project %q not found", ref)
	if tok != nil {
		if ref != tok.ProjectPath {
			return nil, notFound
		}
		create = create && tok.Scope >= metadata.ScopeWrite
	}
	p, err := store.Project(ctx, metadata.ProjectRef{Path: ref})
	if create && errors.Is(err, metadata.ErrNotFound) {
		// Only a miss pays for a write transaction: most writes go to projects that exist.
		p, err = store.EnsureProject(ctx, ref)
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("project %q: %w", ref, err)
	}
	return p, nil
}

// CandidateOf finds a project's candidate by iid and, when model is given, checks that it belongs to
// that model. An unknown candidate, or one of another model, is metadata.ErrNotFound, with one message
// for both.
func CandidateOf(ctx context.Context, store metadata.Store, project int64, iid int64, model *metadata.Model) (*metadata.Candidate, error) {
	notFound := func(err error) error {
		if model != nil {
			return WithClientMessage(err, "candidate %d of model %q not found", iid, model.Name)
		}
		return WithClientMessage(err, "candidate %d not found", iid)
	}
	c, err := store.Candidate(ctx, metadata.CandidateRef{Project: project, IID: iid})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, notFound(err)
	}
	if err != nil {
		return nil, fmt.Errorf("candidate %d: %w", iid, err)
	}
	if model != nil && c.ModelID != model.ID {
		return nil, notFound(fmt.Errorf("candidate %d belongs to model %d: %w", iid, c.ModelID, metadata.ErrNotFound))
	}
	return c, nil
}

// LoggedModelOf finds a project's MLflow 3 logged model by its model_id ("m-" and 32 hex). A malformed or
// unknown id, or one of another project, is metadata.ErrNotFound, worded as MLflow words it.
func LoggedModelOf(ctx context.Context, store metadata.Store, project int64, modelID string) (*metadata.LoggedModel, error) {
	lmid, ok := metadata.ParseLMID(modelID)
	if !ok {
		return nil, LoggedModelNotFound(modelID, metadata.ErrNotFound)
	}
	lm, err := store.LoggedModel(ctx, metadata.LoggedModelRef{LMID: lmid, Project: project})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, LoggedModelNotFound(modelID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("logged model %s: %w", modelID, err)
	}
	return lm, nil
}

// LoggedModelNotFound is MLflow's answer for a model_id that names no logged model the caller may see;
// err (a metadata.ErrNotFound) is kept for the log.
func LoggedModelNotFound(modelID string, err error) error {
	return WithClientMessage(err, "Logged model with ID '%s' not found", modelID)
}
