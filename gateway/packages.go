package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// routeKind tells the package handler which URL grammar its catch-all follows.
type routeKind int

const (
	routeMLModels routeKind = iota // …/packages/ml_models/<name>/<version>/files/<path>, <id>/files/<path>
	routeGeneric                   // …/packages/generic/ml_experiment_<iid>/<candidate iid>/<path>
)

// filesSegment separates a package from the file path in the canonical ml_models form.
const filesSegment = "files"

// packageRequest is a package URL resolved down to the candidate whose files it addresses.
type packageRequest struct {
	project   *metadata.Project
	target    pkgtypes.Target
	list      bool // the URL names the package's file list, not one file
	write     bool // the request changes files
	candidate *metadata.Candidate
	subpath   string // directory inside the candidate that the package's paths are relative to
}

// filePath is the candidate-relative path of the requested file.
func (p *packageRequest) filePath() string {
	if p.subpath == "" {
		return p.target.Path
	}
	return p.subpath + "/" + p.target.Path
}

// packageFile serves every method on one package catch-all route.
func (s *Server) packageFile(kind routeKind) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		req, err := s.resolvePackage(r, ps, kind)
		if err != nil {
			writeError(w, r, s.log, err)
			return
		}
		switch {
		case req.list && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			s.listPackageFiles(w, r, req)
		case r.Method == http.MethodPut:
			s.putPackageFile(w, r, req)
		case r.Method == http.MethodDelete:
			if err := s.artifacts.Delete(r.Context(), req.candidate.ID, req.filePath()); err != nil {
				writeError(w, r, s.log, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			f, err := s.store.File(r.Context(), req.candidate.ID, req.filePath())
			if err != nil {
				writeError(w, r, s.log, err)
				return
			}
			s.artifacts.Serve(w, r, f, writeError)
		}
	}
}

// resolvePackage parses a package URL and finds its candidate. A PUT of <model>/<semver> creates the
// model, the version and its backing candidate when missing; every other form needs them to exist.
func (s *Server) resolvePackage(r *http.Request, ps httprouter.Params, kind routeKind) (*packageRequest, error) {
	ctx := r.Context()
	write := r.Method == http.MethodPut
	target, list, err := parsePackageRoute(strings.TrimPrefix(ps.ByName("rest"), "/"), kind)
	if err != nil {
		return nil, err
	}
	if list && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, fmt.Errorf("%w: a file path is required after /%s/", pkgtypes.ErrInvalidPath, filesSegment)
	}
	project, err := s.resolveProject(ctx, ps.ByName("project"), write)
	if err != nil {
		return nil, err
	}
	req := &packageRequest{project: project, target: target, list: list, write: write || r.Method == http.MethodDelete}
	ref := target.Ref
	switch ref.Kind {
	case pkgtypes.ModelVersion:
		if err := s.resolveModelVersion(ctx, req, write && !list); err != nil {
			return nil, err
		}
	case pkgtypes.ModelCandidate:
		model, err := s.store.Model(ctx, metadata.ModelRef{Project: project.ID, Name: ref.Model})
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", ref.Model, err)
		}
		if req.candidate, err = s.candidateOf(ctx, project.ID, ref.CandidateIID, model); err != nil {
			return nil, err
		}
	case pkgtypes.LegacyCandidate:
		model, err := s.store.Model(ctx, metadata.ModelRef{Project: project.ID, IID: ref.ModelIID})
		if err != nil {
			return nil, fmt.Errorf("ml_experiment_%d: %w", ref.ModelIID, err)
		}
		if req.candidate, err = s.candidateOf(ctx, project.ID, ref.CandidateIID, model); err != nil {
			return nil, err
		}
	case pkgtypes.CandidateRef:
		if req.candidate, err = s.candidateOf(ctx, project.ID, ref.CandidateIID, nil); err != nil {
			return nil, err
		}
	case pkgtypes.VersionID:
		v, err := s.store.Version(ctx, metadata.VersionRef{Project: project.ID, ID: ref.VersionID})
		if err != nil {
			return nil, fmt.Errorf("model version %d: %w", ref.VersionID, err)
		}
		if err := s.bindVersion(ctx, req, v); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unsupported package reference", pkgtypes.ErrInvalidName)
	}
	if write && req.candidate.Lifecycle == metadata.Deleted {
		return nil, fmt.Errorf("candidate %d is deleted: %w", req.candidate.IID, metadata.ErrConflict)
	}
	return req, nil
}

// parsePackageRoute splits a catch-all into a package target and whether it names the file list.
// The ml_models grammar is <name>/<version>/files/<path>; GitLab 16.x's <name>/<version>/<file> (one
// segment) is accepted too, so old clients keep working.
func parsePackageRoute(rest string, kind routeKind) (pkgtypes.Target, bool, error) {
	if kind == routeGeneric {
		t, err := pkgtypes.ParseGenericRoute(rest)
		return t, err == nil && t.Path == "", err
	}
	t, err := pkgtypes.ParseRoute(rest)
	if err != nil {
		return t, false, err
	}
	switch t.Ref.Kind {
	case pkgtypes.CandidateRef, pkgtypes.VersionID:
		return t, t.Path == "", nil
	}
	switch {
	case t.Path == "" || t.Path == filesSegment:
		t.Path = ""
		return t, true, nil
	case strings.HasPrefix(t.Path, filesSegment+"/"):
		t.Path = strings.TrimPrefix(t.Path, filesSegment+"/")
		return t, false, nil
	case !strings.Contains(t.Path, "/"):
		return t, false, nil
	default:
		return t, false, fmt.Errorf("%w: %q: file paths go after %s/%s/%s/",
			pkgtypes.ErrInvalidPath, t.Path, t.Ref.PackageName(), t.Ref.PackageVersion(), filesSegment)
	}
}

// resolveModelVersion binds a <model>/<semver> request to the version's candidate, creating the
// model, version and candidate first when create is set.
func (s *Server) resolveModelVersion(ctx context.Context, req *packageRequest, create bool) error {
	ref := req.target.Ref
	if create {
		pv, err := s.store.EnsurePackageVersion(ctx, req.project.ID, ref.Model, ref.Version)
		if err != nil {
			return fmt.Errorf("package %s/%s: %w", ref.Model, ref.Version, err)
		}
		if pv.Created {
			s.log.Info("created model version", "project", req.project.Path, "model", ref.Model,
				"version", ref.Version, "candidate_iid", pv.Candidate.IID)
		}
		return s.bindVersion(ctx, req, pv.Version)
	}
	model, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, Name: ref.Model})
	if err != nil {
		return fmt.Errorf("model %q: %w", ref.Model, err)
	}
	v, err := s.store.Version(ctx, metadata.VersionRef{ModelID: model.ID, Semver: ref.Version})
	if err != nil {
		return fmt.Errorf("model %q version %s: %w", ref.Model, ref.Version, err)
	}
	return s.bindVersion(ctx, req, v)
}

// bindVersion points req at a version's backing candidate and sub-path.
func (s *Server) bindVersion(ctx context.Context, req *packageRequest, v *metadata.Version) error {
	c, err := s.store.Candidate(ctx, metadata.CandidateRef{ID: v.CandidateID})
	if err != nil {
		return fmt.Errorf("candidate backing version %s: %w", v.Semver, err)
	}
	if req.write && c.ModelID != v.ModelID {
		// A version promoted from another model's run shares that run's files; writing through the
		// version would silently change the other model's run.
		return fmt.Errorf("version %s is backed by a run of another model and is read-only here: %w",
			v.Semver, metadata.ErrConflict)
	}
	req.candidate, req.subpath = c, v.Subpath
	return nil
}

// candidateOf finds a project's candidate by iid and, when model is given, checks it belongs to it.
func (s *Server) candidateOf(ctx context.Context, project int64, iid int64, model *metadata.Model) (*metadata.Candidate, error) {
	c, err := s.store.Candidate(ctx, metadata.CandidateRef{Project: project, IID: iid})
	if err != nil {
		return nil, fmt.Errorf("candidate %d: %w", iid, err)
	}
	if model != nil && c.ModelID != model.ID {
		return nil, fmt.Errorf("candidate %d does not belong to model %q: %w", iid, model.Name, metadata.ErrNotFound)
	}
	return c, nil
}

// resolveProject accepts a numeric id or a URL-encoded path. Without auth, the first write to an
// unknown path creates the project; an unknown numeric id is always 404. With auth (a principal in ctx),
// a project other than the token's is ErrNotFound with the same message as a real miss, so a token
// learns nothing about other projects; only a write or admin token creates its own project.
func (s *Server) resolveProject(ctx context.Context, escaped string, create bool) (*metadata.Project, error) {
	ref, err := unescapeParam(escaped)
	if err != nil {
		return nil, err
	}
	tok := principal(ctx)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		notFound := fmt.Errorf("project %d: %w", id, metadata.ErrNotFound)
		p, err := s.store.Project(ctx, metadata.ProjectRef{ID: id})
		if errors.Is(err, metadata.ErrNotFound) || (err == nil && tok != nil && p.Path != tok.ProjectPath) {
			return nil, notFound
		}
		if err != nil {
			return nil, fmt.Errorf("project %d: %w", id, err)
		}
		return p, nil
	}
	notFound := fmt.Errorf("project %q: %w", ref, metadata.ErrNotFound)
	if tok != nil {
		if ref != tok.ProjectPath {
			return nil, notFound
		}
		create = create && tok.Scope >= metadata.ScopeWrite
	}
	p, err := s.store.Project(ctx, metadata.ProjectRef{Path: ref})
	if create && errors.Is(err, metadata.ErrNotFound) {
		// Only a miss pays for a write transaction: most writes go to projects that exist.
		p, err = s.store.EnsureProject(ctx, ref)
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("project %q: %w", ref, err)
	}
	return p, nil
}

// fileJSON is a file as the package API shows it.
type fileJSON struct {
	Path      string    `json:"path"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

// listPackageFiles answers with a JSON array of the package's files. More pages are announced with
// X-Next-Page-Token, which the client passes back as ?page_token=.
func (s *Server) listPackageFiles(w http.ResponseWriter, r *http.Request, req *packageRequest) {
	q := r.URL.Query()
	limit := defaultPageSize
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			writeError(w, r, s.log, fmt.Errorf("%w: per_page must be 1..%d", ErrBadRequest, maxPageSize))
			return
		}
		limit = n
	}
	files, next, err := s.store.ListFiles(r.Context(), req.candidate.ID, req.subpath,
		metadata.Page{Token: q.Get("page_token"), Limit: limit})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	out := make([]fileJSON, 0, len(files))
	for _, f := range files {
		p := f.Path
		if req.subpath != "" {
			p = strings.TrimPrefix(p, req.subpath+"/")
		}
		out = append(out, fileJSON{Path: p, Size: f.Size, SHA256: f.SHA256, CreatedAt: f.CreatedAt})
	}
	if next != "" {
		w.Header().Set("X-Next-Page-Token", next)
	}
	writeJSON(w, http.StatusOK, out)
}

// putPackageFile streams the request body (raw or the multipart "file" field) into the candidate.
func (s *Server) putPackageFile(w http.ResponseWriter, r *http.Request, req *packageRequest) {
	if req.target.Path == "" {
		writeError(w, r, s.log, fmt.Errorf("%w: a file path is required", pkgtypes.ErrInvalidPath))
		return
	}
	filePath := req.filePath()
	expected, err := checksumHeader(r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if expected != "" {
		// A retry of an upload that already landed needs no bytes: answer before reading the body.
		if f, err := s.store.File(r.Context(), req.candidate.ID, filePath); err == nil && f.SHA256 == expected {
			writeJSON(w, http.StatusCreated, fileJSON{Path: req.target.Path, Size: f.Size, SHA256: f.SHA256})
			return
		}
	}
	body, err := s.openUploadBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	f, err := s.artifacts.Store(r.Context(), upload{
		candidateID: req.candidate.ID,
		path:        filePath,
		body:        body.reader,
		size:        body.size,
		contentType: cleanContentType(body.contentType, filePath),
		sha256:      expected,
	})
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, fileJSON{Path: req.target.Path, Size: f.Size, SHA256: f.SHA256})
}

// checksumHeader returns the lowercase X-Checksum-SHA256 value, "" when absent, or ErrBadRequest.
func checksumHeader(r *http.Request) (string, error) {
	v := strings.TrimSpace(r.Header.Get("X-Checksum-SHA256"))
	if v == "" {
		return "", nil
	}
	v = strings.ToLower(v)
	if len(v) != 64 || strings.Trim(v, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: X-Checksum-SHA256 must be 64 hex characters", ErrBadRequest)
	}
	return v, nil
}
