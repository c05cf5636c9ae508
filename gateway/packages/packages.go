// Package packages serves the package-registry routes of ml_model packages, GitLab-style: uploads,
// downloads, listings and deletes of a model version's or a candidate's files under every naming GitLab
// clients use (<model>/<semver>, <model>/candidate_<iid>, candidate:<iid>, a version id, and the legacy
// ml_experiment_<iid>/<candidate iid>, also as a generic package), and an MLflow 3 logged model's files
// (m-<32 hex>/files/<path>).
package packages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Kind tells the package handler which URL grammar its catch-all ("rest") follows.
type Kind int

const (
	MLModels Kind = iota // …/packages/ml_models/<name>/<version>/files/<path>, <id>/files/<path>, m-<hex>/files/<path>
	Generic              // …/packages/generic/ml_experiment_<iid>/<candidate iid>/<path>
)

// Deps is what the package routes need.
type Deps struct {
	Store     metadata.Store
	Artifacts *artifact.Service
	Log       *slog.Logger
}

// API serves the package routes.
type API struct {
	store     metadata.Store
	artifacts *artifact.Service
	log       *slog.Logger
	pending   pendingVersions
}

// New builds the package API.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &API{store: d.Store, artifacts: d.Artifacts, log: d.Log, pending: pendingVersions{byKey: map[pendingKey]*pendingVersion{}}}
}

// pendingVersions are the versions that package uploads are creating: a version created by an upload
// appears only with its first committed file, so until then it exists only here, with the owner id its
// candidate will have (blob keys are derived from the owner id, so the bytes are stored under it before
// the candidate exists). Concurrent first uploads of one version share the id, so that whichever
// commits first creates the candidate the others' blobs belong to. A crash loses nothing but the id
// (no record has it) and the blobs stored under it, which no row references: fsck finds them.
type pendingVersions struct {
	mu    sync.Mutex
	byKey map[pendingKey]*pendingVersion
}

type pendingKey struct {
	project       int64
	model, semver string
}

type pendingVersion struct {
	ownerID uint64
	uploads int // in flight
}

// join returns the owner id of a pending version, reserving one in the store for its first upload, and
// the function that ends this upload's part in it. Errors are the store's.
func (p *pendingVersions) join(ctx context.Context, store metadata.Store, key pendingKey) (uint64, func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pv := p.byKey[key]
	if pv == nil {
		id, err := store.ReserveOwnerID(ctx)
		if err != nil {
			return 0, nil, err
		}
		pv = &pendingVersion{ownerID: id}
		p.byKey[key] = pv
	}
	pv.uploads++
	return pv.ownerID, sync.OnceFunc(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if pv.uploads--; pv.uploads == 0 {
			delete(p.byKey, key)
		}
	}), nil
}

// filesSegment separates a package from the file path in the canonical ml_models form.
const filesSegment = "files"

// packageRequest is a package URL resolved down to the owner of the files it addresses: a candidate, or
// an MLflow 3 logged model.
type packageRequest struct {
	project *metadata.Project
	target  pkgtypes.Target
	list    bool // the URL names the package's file list, not one file
	write   bool // the request changes files
	owner   fileOwner
	subpath string // directory inside the owner that the package's paths are relative to
	// newVersion is set for an upload to a version that does not exist yet: owner.id is reserved, and
	// the version is created with the file (createVersion).
	newVersion *pendingKey
	done       func() // ends the request's part in a pending version; nil otherwise
}

// fileOwner is the candidate or logged model whose files a package request reads or writes.
type fileOwner struct {
	id          uint64 // the owner id files are stored under
	description string // "candidate 7" or "logged model m-…", for messages
	deleted     bool   // a soft-deleted candidate: readable, not writable
}

func candidateOwner(c *metadata.Candidate) fileOwner {
	return fileOwner{id: c.ID, description: "candidate " + strconv.FormatInt(c.IID, 10), deleted: c.Lifecycle == metadata.Deleted}
}

func loggedModelOwner(lm *metadata.LoggedModel) fileOwner {
	return fileOwner{id: lm.ID, description: "logged model " + lm.LMID.String()}
}

// fileError words a miss of the requested file with what the client asked for; other errors pass
// unchanged.
func (p *packageRequest) fileError(err error) error {
	if !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	return httpapi.WithClientMessage(err, "file %q not found in package %s", p.target.Path, p.target.Ref)
}

// filePath is the owner-relative path of the requested file.
func (p *packageRequest) filePath() string {
	if p.subpath == "" {
		return p.target.Path
	}
	return p.subpath + "/" + p.target.Path
}

// Handler serves every method on one package catch-all route (parameters "project" and "rest"). Errors
// are package-API bodies {"error","message"}; see the README for the statuses.
func (s *API) Handler(kind Kind) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		req, err := s.resolvePackage(r, ps, kind)
		if err != nil {
			httpapi.WriteError(w, r, s.log, err)
			return
		}
		if req.done != nil {
			defer req.done()
		}
		switch {
		case req.list && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			s.listPackageFiles(w, r, req)
		case r.Method == http.MethodPut:
			s.putPackageFile(w, r, req)
		case r.Method == http.MethodDelete:
			if err := s.artifacts.Delete(r.Context(), req.owner.id, req.filePath()); err != nil {
				httpapi.WriteError(w, r, s.log, req.fileError(err))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			f, err := s.store.File(r.Context(), req.owner.id, req.filePath())
			if err != nil {
				httpapi.WriteError(w, r, s.log, req.fileError(err))
				return
			}
			s.artifacts.Serve(w, r, f, httpapi.WriteError)
		}
	}
}

// resolvePackage parses a package URL and finds the owner of its files. A PUT of <model>/<semver> to a
// version that does not exist creates the model, the version and its backing candidate with the file
// (resolveModelVersion); every other form needs them to exist.
func (s *API) resolvePackage(r *http.Request, ps httprouter.Params, kind Kind) (*packageRequest, error) {
	ctx := r.Context()
	write := r.Method == http.MethodPut
	target, list, err := parsePackageRoute(strings.TrimPrefix(ps.ByName("rest"), "/"), kind)
	if err != nil {
		return nil, err
	}
	if list && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return nil, fmt.Errorf("%w: a file path is required after /%s/", pkgtypes.ErrInvalidPath, filesSegment)
	}
	project, err := httpapi.ResolveProject(ctx, s.store, ps.ByName("project"), write)
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
			return nil, modelNotFound(ref.Model, err)
		}
		c, err := httpapi.CandidateOf(ctx, s.store, project.ID, ref.CandidateIID, model)
		if err != nil {
			return nil, err
		}
		req.owner = candidateOwner(c)
	case pkgtypes.LegacyCandidate:
		model, err := s.store.Model(ctx, metadata.ModelRef{Project: project.ID, IID: ref.ModelIID})
		if err != nil {
			return nil, modelNotFound(fmt.Sprintf("ml_experiment_%d", ref.ModelIID), err)
		}
		c, err := httpapi.CandidateOf(ctx, s.store, project.ID, ref.CandidateIID, model)
		if err != nil {
			return nil, err
		}
		req.owner = candidateOwner(c)
	case pkgtypes.CandidateRef:
		c, err := httpapi.CandidateOf(ctx, s.store, project.ID, ref.CandidateIID, nil)
		if err != nil {
			return nil, err
		}
		req.owner = candidateOwner(c)
	case pkgtypes.LoggedModelRef:
		lm, err := httpapi.LoggedModelOf(ctx, s.store, project.ID, ref.LoggedModelID)
		if err != nil {
			return nil, err
		}
		req.owner = loggedModelOwner(lm)
	case pkgtypes.VersionID:
		v, err := s.store.Version(ctx, metadata.VersionRef{Project: project.ID, ID: ref.VersionID})
		if errors.Is(err, metadata.ErrNotFound) {
			return nil, httpapi.WithClientMessage(err, "model version %d not found", ref.VersionID)
		}
		if err != nil {
			return nil, fmt.Errorf("model version %d: %w", ref.VersionID, err)
		}
		if err := s.bindVersion(ctx, req, v); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: unsupported package reference", pkgtypes.ErrInvalidName)
	}
	if write && req.owner.deleted {
		return nil, fmt.Errorf("%s is deleted: %w", req.owner.description, metadata.ErrConflict)
	}
	return req, nil
}

// parsePackageRoute splits a catch-all into a package target and whether it names the file list.
// The ml_models grammar is <name>/<version>/files/<path>; GitLab 16.x's <name>/<version>/<file> (one
// segment) is accepted too, so old clients keep working.
func parsePackageRoute(rest string, kind Kind) (pkgtypes.Target, bool, error) {
	if kind == Generic {
		t, err := pkgtypes.ParseGenericRoute(rest)
		return t, err == nil && t.Path == "", err
	}
	t, err := pkgtypes.ParseRoute(rest)
	if err != nil {
		return t, false, err
	}
	switch t.Ref.Kind {
	case pkgtypes.CandidateRef, pkgtypes.VersionID, pkgtypes.LoggedModelRef:
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

// modelNotFound words a miss of the model a package URL names; other errors pass unchanged.
func modelNotFound(name string, err error) error {
	if !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("model %q: %w", name, err)
	}
	return httpapi.WithClientMessage(err, "model %q not found", name)
}

// resolveModelVersion binds a <model>/<semver> request to the owner of the version's files. When create
// is set and the version does not exist, the request joins the pending version (see pendingVersions):
// the model, version and candidate are created with the file, by createVersion. A model that is deleted,
// or whose name is another model's display name, is refused now rather than after the upload
// (metadata.ErrConflict).
func (s *API) resolveModelVersion(ctx context.Context, req *packageRequest, create bool) error {
	ref := req.target.Ref
	model, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, Name: ref.Model})
	if err == nil {
		v, err := s.store.Version(ctx, metadata.VersionRef{ModelID: model.ID, Semver: ref.Version})
		if err == nil {
			return s.bindVersion(ctx, req, v)
		}
		if errors.Is(err, metadata.ErrNotFound) && !create {
			return httpapi.WithClientMessage(err, "version %s of model %q not found", ref.Version, ref.Model)
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return fmt.Errorf("model %q version %s: %w", ref.Model, ref.Version, err)
		}
		if model.Lifecycle == metadata.Deleted {
			return fmt.Errorf("package %q: model is deleted: %w", ref.Model, metadata.ErrConflict)
		}
	} else if !create || !errors.Is(err, metadata.ErrNotFound) {
		return modelNotFound(ref.Model, err)
	} else if other, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, DisplayName: ref.Model}); err == nil &&
		other.Name != ref.Model {
		// A model named ref.Model found here, by its display name, was created by a concurrent first
		// upload between the two lookups: it is this package's model, and the join below finds it.
		return fmt.Errorf("package %q: another model has this display name: %w", ref.Model, metadata.ErrConflict)
	}
	key := pendingKey{project: req.project.ID, model: ref.Model, semver: ref.Version}
	id, done, err := s.pending.join(ctx, s.store, key)
	if err != nil {
		return fmt.Errorf("package %s/%s: %w", ref.Model, ref.Version, err)
	}
	// Another upload may have created the version and left the pending set between the lookup above
	// and the join; its version is the one to upload to. Looking again after joining closes that gap:
	// an upload that commits later has joined the same pending version.
	if model, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, Name: ref.Model}); err == nil {
		if v, err := s.store.Version(ctx, metadata.VersionRef{ModelID: model.ID, Semver: ref.Version}); err == nil {
			done()
			return s.bindVersion(ctx, req, v)
		}
	}
	req.owner = fileOwner{id: id, description: fmt.Sprintf("version %s of %q", ref.Version, ref.Model)}
	req.newVersion, req.done = &key, done
	return nil
}

// createVersion creates the pending version req uploads to, with its backing candidate under the
// reserved owner id, inside the transaction of ctx that commits the first file. If the version appeared
// meanwhile backed by another owner (created through MLflow or the UI), the upload is refused
// (metadata.ErrConflict): its bytes are stored under the wrong owner, and a retry finds the version.
// Other errors are the store's.
func (s *API) createVersion(ctx context.Context, req *packageRequest) (*metadata.PackageVersion, error) {
	key := req.newVersion
	pv, err := s.store.EnsurePackageVersion(ctx, key.project, key.model, key.semver, req.owner.id)
	if err != nil {
		return nil, fmt.Errorf("package %s/%s: %w", key.model, key.semver, err)
	}
	if pv.Version.CandidateID != req.owner.id {
		return nil, fmt.Errorf("version %s of %q was created by another request during this upload; upload again: %w",
			key.semver, key.model, metadata.ErrConflict)
	}
	return pv, nil
}

// bindVersion points req at the candidate or logged model backing a version, and its sub-path.
func (s *API) bindVersion(ctx context.Context, req *packageRequest, v *metadata.Version) error {
	var ownerModel uint64
	if v.LoggedModelID != 0 {
		lm, err := s.store.LoggedModel(ctx, metadata.LoggedModelRef{ID: v.LoggedModelID})
		if err != nil {
			return fmt.Errorf("logged model backing version %s: %w", v.Semver, err)
		}
		req.owner, ownerModel = loggedModelOwner(lm), lm.ModelID
	} else {
		c, err := s.store.Candidate(ctx, metadata.CandidateRef{ID: v.CandidateID})
		if err != nil {
			return fmt.Errorf("candidate backing version %s: %w", v.Semver, err)
		}
		req.owner, ownerModel = candidateOwner(c), c.ModelID
	}
	if req.write && ownerModel != v.ModelID {
		// A version promoted from another model's run or logged model shares its files; writing through
		// the version would silently change the other model's files.
		return fmt.Errorf("version %s is backed by %s of another model and is read-only here: %w",
			v.Semver, req.owner.description, metadata.ErrConflict)
	}
	req.subpath = v.Subpath
	return nil
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
func (s *API) listPackageFiles(w http.ResponseWriter, r *http.Request, req *packageRequest) {
	q := r.URL.Query()
	limit := defaultPageSize
	if v := q.Get("per_page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			httpapi.WriteError(w, r, s.log, fmt.Errorf("%w: per_page must be 1..%d", httpapi.ErrBadRequest, maxPageSize))
			return
		}
		limit = n
	}
	files, next, err := s.store.ListFiles(r.Context(), req.owner.id, req.subpath,
		metadata.Page{Token: q.Get("page_token"), Limit: limit})
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
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
	httpapi.WriteJSON(w, http.StatusOK, out)
}

// putPackageFile streams the request body (raw or the multipart "file" field) into the owner's files.
func (s *API) putPackageFile(w http.ResponseWriter, r *http.Request, req *packageRequest) {
	if req.target.Path == "" {
		httpapi.WriteError(w, r, s.log, fmt.Errorf("%w: a file path is required", pkgtypes.ErrInvalidPath))
		return
	}
	filePath := req.filePath()
	expected, err := artifact.ChecksumHeader(r)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if expected != "" {
		// A retry of an upload that already landed needs no bytes: answer before reading the body.
		if f, err := s.store.File(r.Context(), req.owner.id, filePath); err == nil && f.SHA256 == expected {
			httpapi.WriteJSON(w, http.StatusCreated, fileJSON{Path: req.target.Path, Size: f.Size, SHA256: f.SHA256})
			return
		}
	}
	body, err := s.artifacts.OpenUpload(r)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	up := artifact.Upload{
		OwnerID:     req.owner.id,
		Path:        filePath,
		Body:        body.Reader,
		Size:        body.Size,
		ContentType: artifact.CleanContentType(body.ContentType, filePath),
		SHA256:      expected,
	}
	var created *metadata.PackageVersion
	if req.newVersion != nil {
		up.Route = &artifact.UploadRoute{ProjectPath: req.project.Path, ModelName: req.newVersion.model}
		up.CreateOwner = func(ctx context.Context) error {
			pv, err := s.createVersion(ctx, req)
			if pv != nil && pv.Created {
				created = pv
			}
			return err
		}
	}
	f, err := s.artifacts.Store(r.Context(), up)
	if err != nil {
		httpapi.WriteError(w, r, s.log, err)
		return
	}
	if created != nil {
		s.log.Info("created model version", "project", req.project.Path, "model", created.Model.Name,
			"version", created.Version.Semver, "candidate_iid", created.Candidate.IID, "request_id", httpapi.RequestID(r))
	}
	httpapi.WriteJSON(w, http.StatusCreated, fileJSON{Path: req.target.Path, Size: f.Size, SHA256: f.SHA256})
}
