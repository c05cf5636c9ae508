// Package hf serves model versions to the Hugging Face client (huggingface_hub: snapshot_download,
// hf_hub_download, HfApi.model_info, list_repo_files, and the libraries built on them such as
// transformers' from_pretrained), read-only, under /hf/<project path>/: the client is pointed there
// with HF_ENDPOINT=http://HOST:PORT/hf/<project path> and names a model by its name as repo_id.
//
// A revision is a version's semver, an alias, "main" (the version modelversion.Latest names, as the
// OCI routes' "latest") or the version's revision sha (RevisionSHA: 40 hex digits derived from its
// file list, the "commit" the client caches a snapshot under). Files are served by the artifact
// service as every download is (ranges, redirects to presigned URLs): nothing is copied. Every file
// is described as a Git LFS file whose sha256 is the stored file's, and no Xet header is ever sent,
// so the client downloads over plain HTTP.
//
// Errors carry the Hub's X-Error-Code and X-Error-Message headers and {"error": message} bodies (see
// WriteError), which the client turns into RepositoryNotFoundError, RevisionNotFoundError and
// EntryNotFoundError.
package hf

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
)

// PathPrefix is where the Hugging Face routes live; HF_ENDPOINT is this followed by a project path.
const PathPrefix = "/hf/"

// IsPath reports whether an escaped request path is a Hugging Face route, whose errors use WriteError.
func IsPath(escapedPath string) bool { return strings.HasPrefix(escapedPath, PathPrefix) }

// Deps is what the Hugging Face routes need.
type Deps struct {
	Store     metadata.Store
	Artifacts *artifact.Service
	Log       *slog.Logger
}

// API serves the /hf/ routes.
type API struct {
	store     metadata.Store
	artifacts *artifact.Service
	log       *slog.Logger
	shas      *ShaIndex
}

// New builds the Hugging Face API.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &API{store: d.Store, artifacts: d.Artifacts, log: d.Log, shas: NewShaIndex()}
}

// The misses the client tells apart by X-Error-Code. Each wraps metadata.ErrNotFound, so the gateway's
// error table answers them 404; WriteError adds the code.
var (
	// ErrRepoNotFound: no model of that name in a project the caller may see (X-Error-Code:
	// RepoNotFound). A model of another project than the token's is this too.
	ErrRepoNotFound = fmt.Errorf("repository not found: %w", metadata.ErrNotFound)
	// ErrEntryNotFound: the version has no such file or folder (X-Error-Code: EntryNotFound).
	ErrEntryNotFound = fmt.Errorf("entry not found: %w", metadata.ErrNotFound)
)

// errorCodes is the Hub's X-Error-Code for each miss, walked in order with errors.Is. The status comes
// from the gateway's one error table (httpapi.Classify); this only names the miss for the client.
var errorCodes = []struct {
	target error
	code   string
}{
	{ErrRepoNotFound, "RepoNotFound"},
	{ErrRevisionNotFound, "RevisionNotFound"},
	{ErrEntryNotFound, "EntryNotFound"},
}

// invalidCredentials is the Hub's X-Error-Message for a token it does not know. The client reads a 401
// carrying it as a bad token (HfHubHTTPError with this message) rather than as a missing repository.
const invalidCredentials = "Invalid credentials in Authorization header"

// WriteError answers a Hugging Face request with the Hub's error shape: the status of the gateway's
// error table, X-Error-Code for the misses of errorCodes, X-Error-Message and {"error": message}.
//
// A 401 is answered as the Hub answers it: without credentials, as a missing repository (X-Error-Code:
// RepoNotFound, which the client raises as RepositoryNotFoundError, with its hint to authenticate);
// with credentials it does not accept, with the message the client shows as a bad token.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	class, msg := httpapi.PrepareError(w, r, log, err)
	h := w.Header()
	for _, c := range errorCodes {
		if errors.Is(err, c.target) {
			h.Set("X-Error-Code", c.code)
			break
		}
	}
	h.Set("X-Error-Message", headerText(msg))
	if errors.Is(err, httpapi.ErrUnauthenticated) {
		if r.Header.Get("Authorization") != "" || r.Header.Get("PRIVATE-TOKEN") != "" {
			h.Set("X-Error-Message", invalidCredentials)
		} else {
			h.Set("X-Error-Code", "RepoNotFound")
			msg = "this server requires a token: set HF_TOKEN (or pass token=) to an mlgate token of the project"
			h.Set("X-Error-Message", msg)
		}
	}
	httpapi.WriteJSON(w, class.Status, map[string]string{"error": msg})
}

// headerText makes msg fit a header value: printable ASCII, at most 500 bytes.
func headerText(msg string) string {
	b := []byte(msg)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	if len(b) > 500 {
		b = b[:500]
	}
	return string(b)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { WriteError(w, r, a.log, err) }

// Handler serves every method of the /hf/*rest catch-all. Only GET and HEAD are served; errors are
// WriteError's.
func (a *API) Handler() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		rest := ps.ByName("rest")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.refuseWrite(w, r, rest)
			return
		}
		ts, err := parseRoute(rest)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if len(ts) == 0 {
			if a.foreign(r.Context(), guessName(rest)) {
				a.fail(w, r, httpapi.WithClientMessage(ErrRepoNotFound, "repository not found"))
				return
			}
			a.fail(w, r, fmt.Errorf("%w: %s is not a Hugging Face endpoint mlgate serves (/api/models/<repo>, "+
				"…/revision/<rev>, …/tree/<rev>[/<path>], /<repo>/resolve/<rev>/<path>)", httpapi.ErrRouteNotFound, httpapi.EscapedPath(r)))
			return
		}
		t, rp, err := a.find(r.Context(), ts)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		rev := t.rev
		if rev == "" {
			rev = Main
		}
		snap, err := Resolve(r.Context(), a.store, a.shas, rp.model.ID, rev)
		if err != nil {
			if errors.Is(err, ErrRevisionNotFound) {
				err = httpapi.WithClientMessage(err, "revision %q not found in repository %q: a revision is a semver, an alias, "+
					"%q (the highest version) or a revision sha", rev, rp.id, Main)
			}
			a.fail(w, r, err)
			return
		}
		switch t.kind {
		case routeInfo:
			a.serveInfo(w, r, rp, snap)
		case routeTree:
			a.serveTree(w, r, rp, snap, t.path)
		case routeResolve:
			a.serveResolve(w, r, rp, snap, t.path)
		}
	}
}

// foreign reports whether a request names something outside its token's project: such a request is
// answered like a missing repository, whatever it asks, so that a token learns nothing of others.
func (a *API) foreign(ctx context.Context, name string) bool {
	tok := httpapi.Principal(ctx)
	return tok != nil && !strings.HasPrefix(name, tok.ProjectPath+"/")
}

// refuseWrite answers any method but GET and HEAD with 405: uploads go through the package API or
// MLflow. A token of another project gets the 404 a missing repository gets.
func (a *API) refuseWrite(w http.ResponseWriter, r *http.Request, rest string) {
	if a.foreign(r.Context(), guessName(rest)) {
		a.fail(w, r, httpapi.WithClientMessage(ErrRepoNotFound, "repository not found"))
		return
	}
	w.Header().Set("Allow", "GET, HEAD")
	a.fail(w, r, fmt.Errorf("%w: mlgate serves the Hugging Face protocol read-only; upload files with the package API "+
		"(PUT /api/v4/projects/<project>/packages/ml_models/<model>/<version>/files/<path>) or MLflow", httpapi.ErrMethodNotAllowed))
}

// repo is a resolved repository.
type repo struct {
	id      string // the repository id as the client names it
	project *metadata.Project
	model   *metadata.Model
}

// find returns the first reading of the path whose repository exists, with that repository. None is
// ErrRepoNotFound, named after the first reading.
func (a *API) find(ctx context.Context, ts []target) (target, *repo, error) {
	projects := map[string]*metadata.Project{} // lookups of this request, misses as nil
	for _, t := range ts {
		rp, err := a.repository(ctx, t, projects)
		if err != nil {
			return target{}, nil, err
		}
		if rp != nil {
			return t, rp, nil
		}
	}
	id := ts[0].repoID
	if id == "" {
		id = ts[0].name
	}
	return target{}, nil, httpapi.WithClientMessage(ErrRepoNotFound, "repository %q not found", id)
}

// repository finds the model t names. t.name is a project path and a model name joined by "/"; it
// is split at each of its slashes, from the longest project path to the shortest, and the first split
// whose project exists and has a model of exactly that name wins. So HF_ENDPOINT=…/hf/team/vision
// with repo_id "fraud-xgb" and HF_ENDPOINT=…/hf/team with repo_id "vision/fraud-xgb" both name
// model fraud-xgb of project team/vision, as the OCI repository team/vision/fraud-xgb does. With
// auth only the token's project is tried, so another project's model and a missing one are the same
// miss. nil for none; other errors are the store's.
func (a *API) repository(ctx context.Context, t target, projects map[string]*metadata.Project) (*repo, error) {
	tok := httpapi.Principal(ctx)
	segs := strings.Split(t.name, "/")
	for i := len(segs) - 1; i >= 1; i-- {
		projectPath, modelName := strings.Join(segs[:i], "/"), strings.Join(segs[i:], "/")
		if tok != nil && projectPath != tok.ProjectPath {
			continue
		}
		p, seen := projects[projectPath]
		if !seen {
			var err error
			p, err = a.store.Project(ctx, metadata.ProjectRef{Path: projectPath})
			if isMiss(err) {
				p, err = nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("project %q: %w", projectPath, err)
			}
			projects[projectPath] = p
		}
		if p == nil {
			continue
		}
		m, err := a.store.Model(ctx, metadata.ModelRef{Project: p.ID, Name: modelName})
		if isMiss(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("model %q of project %q: %w", modelName, projectPath, err)
		}
		id := t.repoID
		if id == "" {
			id = m.Name
		}
		return &repo{id: id, project: p, model: m}, nil
	}
	return nil, nil
}

// isMiss reports whether a lookup found nothing: a miss, or a name that no record can have.
func isMiss(err error) bool {
	return errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrInvalid)
}

// hubTime is the Hub's timestamp format, the one the client parses.
func hubTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type lfsInfo struct {
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	PointerSize int    `json:"pointerSize"`
}

type sibling struct {
	RFilename string  `json:"rfilename"`
	Size      int64   `json:"size"`
	BlobID    string  `json:"blobId"`
	LFS       lfsInfo `json:"lfs"`
}

// modelInfo is the answer to /api/models/{repo}[/revision/{rev}]: the fields HfApi.model_info reads
// (id and sha are required; siblings are the files, with sizes and sha256 whatever ?blobs says),
// plus what mlgate adds under "mlgate".
type modelInfo struct {
	ID           string    `json:"id"`
	ModelID      string    `json:"modelId"`
	Author       string    `json:"author"`
	SHA          string    `json:"sha"`
	LastModified string    `json:"lastModified"`
	CreatedAt    string    `json:"createdAt"`
	Private      bool      `json:"private"`
	Disabled     bool      `json:"disabled"`
	Gated        bool      `json:"gated"`
	Downloads    int       `json:"downloads"`
	Likes        int       `json:"likes"`
	Tags         []string  `json:"tags"`
	Siblings     []sibling `json:"siblings"`
	UsedStorage  int64     `json:"usedStorage"`
	MLgate       mlgateRef `json:"mlgate"`
}

// mlgateRef says which version a revision named.
type mlgateRef struct {
	Project string `json:"project"`
	Model   string `json:"model"`
	Version string `json:"version"`
}

// serveInfo answers model_info / repo_info. Query parameters (blobs, expand, securityStatus) are
// accepted and ignored: every field is always sent, and the client keeps what it asked for.
func (a *API) serveInfo(w http.ResponseWriter, r *http.Request, rp *repo, s *Snapshot) {
	info := modelInfo{
		ID: rp.id, ModelID: rp.id, Author: rp.project.Path, SHA: s.SHA,
		LastModified: hubTime(s.Version.CreatedAt), CreatedAt: hubTime(rp.model.CreatedAt),
		Tags: []string{}, Siblings: make([]sibling, 0, len(s.Files)),
		MLgate: mlgateRef{Project: rp.project.Path, Model: rp.model.Name, Version: s.Version.Semver},
	}
	for _, f := range s.Files {
		info.Siblings = append(info.Siblings, sibling{RFilename: f.Path, Size: f.Size, BlobID: blobID(f.SHA256, f.Size),
			LFS: lfsInfo{Size: f.Size, SHA256: f.SHA256, PointerSize: len(lfsPointer(f.SHA256, f.Size))}})
		info.UsedStorage += f.Size
	}
	w.Header().Set("X-Repo-Commit", s.SHA)
	httpapi.WriteJSON(w, http.StatusOK, info)
}

// treeEntry is one entry of a tree listing, as HfApi.list_repo_tree reads it: type "file" (path,
// size, oid, lfs with oid = sha256) or "directory" (path, oid); lastCommit only with expand=true.
type treeEntry struct {
	Type       string      `json:"type"`
	OID        string      `json:"oid"`
	Size       int64       `json:"size"`
	Path       string      `json:"path"`
	LFS        *treeLFS    `json:"lfs,omitempty"`
	LastCommit *lastCommit `json:"lastCommit,omitempty"`
}

type treeLFS struct {
	OID         string `json:"oid"`
	Size        int64  `json:"size"`
	PointerSize int    `json:"pointerSize"`
}

type lastCommit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Date  string `json:"date"`
}

// treePageSize is how many entries one page of a tree listing holds, as on the Hub; the rest follows
// the Link rel="next" URL, which the client follows.
var treePageSize = 1000

// serveTree answers list_repo_tree: the entries directly in dir, or with recursive=true every entry
// under it, in path order, paged by ?cursor= (the base64url of the last path of the page before). A
// dir that is no folder of the version (a file, or nothing) is ErrEntryNotFound.
func (a *API) serveTree(w http.ResponseWriter, r *http.Request, rp *repo, s *Snapshot, dir string) {
	w.Header().Set("X-Repo-Commit", s.SHA)
	q := r.URL.Query()
	recursive, err := boolParam(q, "recursive")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	expand, err := boolParam(q, "expand")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	after := ""
	if c := q.Get("cursor"); c != "" {
		b, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil {
			a.fail(w, r, fmt.Errorf("%w: cursor %q is not one this server sent", httpapi.ErrBadRequest, c))
			return
		}
		after = string(b)
	}
	dir = strings.Trim(dir, "/")
	entries, ok := listTree(s, dir, recursive)
	if !ok {
		a.fail(w, r, httpapi.WithClientMessage(ErrEntryNotFound, "folder %q not found in revision %s of repository %q", dir, s.SHA, rp.id))
		return
	}
	start, _ := slices.BinarySearchFunc(entries, after, func(e treeEntry, p string) int { return strings.Compare(e.Path, p) })
	if after != "" && start < len(entries) && entries[start].Path == after {
		start++
	}
	entries = entries[start:]
	if len(entries) > treePageSize {
		entries = entries[:treePageSize]
		// The client requests the next page as given, so the URL is absolute.
		nq := r.URL.Query()
		nq.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(entries[len(entries)-1].Path)))
		next := requestScheme(r) + "://" + r.Host + httpapi.EscapedPath(r) + "?" + nq.Encode()
		w.Header().Set("Link", "<"+next+`>; rel="next"`)
	}
	if expand {
		lc := &lastCommit{ID: s.SHA, Title: "mlgate version " + s.Version.Semver, Date: hubTime(s.Version.CreatedAt)}
		for i := range entries {
			entries[i].LastCommit = lc
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, entries)
}

// requestScheme is the scheme the client used: https behind TLS or a proxy that says so.
func requestScheme(r *http.Request) string {
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return "https"
	}
	return "http"
}

// boolParam reads a query flag as the client sends it (Python's True/False) or as people type it.
// Absent is false; anything else is ErrBadRequest.
func boolParam(q url.Values, name string) (bool, error) {
	switch strings.ToLower(q.Get(name)) {
	case "", "false", "0":
		return false, nil
	case "true", "1":
		return true, nil
	}
	return false, fmt.Errorf("%w: %s must be true or false, not %q", httpapi.ErrBadRequest, name, q.Get(name))
}

// listTree returns the entries of dir ("" for the root), sorted by path: its files and folders, or
// with recursive every file and folder under it. ok is false when dir is no folder of s.
func listTree(s *Snapshot, dir string, recursive bool) (entries []treeEntry, ok bool) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	seen := map[string]bool{}
	found := dir == ""
	for _, f := range s.Files {
		rel, under := strings.CutPrefix(f.Path, prefix)
		if !under {
			continue
		}
		found = true
		// Every folder between dir and the file, or only the first one when not recursive.
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			p := prefix + strings.Join(parts[:i], "/")
			if !seen[p] {
				seen[p] = true
				entries = append(entries, treeEntry{Type: "directory", OID: treeSHA(s.Files, p), Path: p})
			}
			if !recursive {
				break
			}
		}
		if recursive || len(parts) == 1 {
			entries = append(entries, treeEntry{Type: "file", OID: blobID(f.SHA256, f.Size), Size: f.Size, Path: f.Path,
				LFS: &treeLFS{OID: f.SHA256, Size: f.Size, PointerSize: len(lfsPointer(f.SHA256, f.Size))}})
		}
	}
	slices.SortFunc(entries, func(a, b treeEntry) int { return strings.Compare(a.Path, b.Path) })
	return entries, found
}

// serveResolve answers hf_hub_download's HEAD and GET of a file: the artifact service streams the
// stored file (Range, conditional requests, or a 307 to a presigned URL when its backend redirects
// downloads), after the headers the client reads: X-Repo-Commit (the revision sha it caches the file
// under), X-Linked-Etag and ETag (the sha256, the name of its cache blob) and X-Linked-Size (what
// it checks the download's length against). A miss still carries X-Repo-Commit, so that the client
// caches the file's absence under the right revision.
func (a *API) serveResolve(w http.ResponseWriter, r *http.Request, rp *repo, s *Snapshot, p string) {
	h := w.Header()
	h.Set("X-Repo-Commit", s.SHA)
	i, found := slices.BinarySearchFunc(s.Files, p, func(f modelversion.File, p string) int { return strings.Compare(f.Path, p) })
	if !found {
		a.fail(w, r, httpapi.WithClientMessage(ErrEntryNotFound, "file %q not found in revision %s of repository %q", p, s.SHA, rp.id))
		return
	}
	f := s.Files[i]
	h.Set("X-Linked-Etag", `"`+f.SHA256+`"`)
	h.Set("X-Linked-Size", strconv.FormatInt(f.Size, 10))
	a.artifacts.Serve(w, r, f.File, WriteError)
}
