// Package oci serves model versions to OCI clients (oras, KitOps, Docker Model Runner, KServe's
// storage initializer): the pull side of the OCI Distribution Spec v1.1 under /v2/, with each version
// as a CNCF ModelPack artifact whose layers are the version's stored files, byte for byte. Nothing is
// copied or repacked: a layer's digest is the file's sha256, and a layer blob is served from the
// file's backend by the artifact service, as every download is. Manifests and configs are generated
// from immutable facts, so they are the same on every request and replica (see Build).
//
// Repositories are <project path>/<model name>; tags are semvers (with "+" written "_"), aliases and
// "latest" (modelversion.PickLatest). Push is refused with 405.
package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Deps is what the OCI routes need.
type Deps struct {
	Store     metadata.Store
	Artifacts *artifact.Service
	Log       *slog.Logger
	// Signing derives the key of the token endpoint's bearers; nil draws a random one (tests only).
	Signing *signing.Secret
}

// API serves the /v2/ routes.
type API struct {
	store     metadata.Store
	artifacts *artifact.Service
	log       *slog.Logger
	bearers   *Bearers
	versions  digestIndex
}

// New builds the OCI API.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Signing == nil {
		d.Signing = signing.Random()
	}
	return &API{store: d.Store, artifacts: d.Artifacts, log: d.Log, bearers: NewBearers(d.Signing),
		versions: digestIndex{m: map[digestKey]int64{}}}
}

// IsPath reports whether an escaped request path is an OCI route, whose errors use the OCI body and
// whose 401s carry the Bearer challenge.
func IsPath(escapedPath string) bool {
	return escapedPath == "/v2" || strings.HasPrefix(escapedPath, "/v2/")
}

// WriteError answers an OCI request with the distribution spec's error body,
// {"errors":[{"code","message"}]}; the status and the code come from the gateway's one error table
// (httpapi.Classify). The optional "detail" is left out: oras prints an empty one as "map[]".
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	class, msg := httpapi.PrepareError(w, r, log, err)
	w.Header().Set("Docker-Distribution-API-Version", apiVersion)
	httpapi.WriteJSON(w, class.Status, map[string]any{
		"errors": []map[string]any{{"code": class.OCICode, "message": msg}},
	})
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) { WriteError(w, r, a.log, err) }

// apiVersion is sent with every answer: Docker clients check it on /v2/ to know a registry speaks v2.
const apiVersion = "registry/2.0"

type routeKind int

const (
	routeUnknown routeKind = iota
	routeBase
	routeToken
	routeManifest
	routeBlob
	routeTags
	routeReferrers
	routeUpload // blob uploads: push, refused
)

type route struct {
	kind routeKind
	name string // the repository
	arg  string // the reference or digest
}

var markers = []struct {
	suffix string
	kind   routeKind
}{{"/manifests", routeManifest}, {"/blobs", routeBlob}, {"/referrers", routeReferrers}}

// parseRoute splits what follows /v2 in an escaped path. The repository name is everything before the
// last /manifests/, /blobs/, /referrers/ or /tags/list: names have slashes, so no router pattern can
// split them.
func parseRoute(rest string) route {
	rest = strings.TrimPrefix(rest, "/")
	switch rest {
	case "":
		return route{kind: routeBase}
	case "token":
		return route{kind: routeToken}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		return route{kind: routeTags, name: name}
	}
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		if tail := rest[i+len("/blobs/uploads"):]; tail == "" || tail[0] == '/' {
			return route{kind: routeUpload, name: rest[:i]}
		}
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return route{kind: routeUnknown}
	}
	before, arg := rest[:i], rest[i+1:]
	for _, m := range markers {
		if name, ok := strings.CutSuffix(before, m.suffix); ok && name != "" {
			return route{kind: m.kind, name: name, arg: arg}
		}
	}
	return route{kind: routeUnknown, name: guessName(rest)}
}

// guessName is the repository a path that matches no route seems to address, for the check that
// another project's token learns nothing: the text before the first marker segment, or all of it.
func guessName(rest string) string {
	for _, m := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.Index(rest, m); i > 0 {
			return rest[:i]
		}
	}
	return rest
}

// Handler serves every method of the /v2/*rest catch-all. Errors are OCI error bodies.
func (a *API) Handler() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header().Set("Docker-Distribution-API-Version", apiVersion)
		rt := parseRoute(ps.ByName("rest"))
		if rt.kind == routeToken {
			a.serveToken(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			a.refuseWrite(w, r, rt)
			return
		}
		switch rt.kind {
		case routeBase:
			httpapi.WriteJSON(w, http.StatusOK, struct{}{})
			return
		case routeUnknown:
			a.fail(w, r, fmt.Errorf("%w: %s is not an OCI distribution endpoint", httpapi.ErrRouteNotFound, httpapi.EscapedPath(r)))
			return
		case routeUpload:
			a.refuseWrite(w, r, rt)
			return
		}
		repo, err := a.repository(r.Context(), rt.name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		switch rt.kind {
		case routeManifest:
			a.serveManifest(w, r, repo, rt.arg)
		case routeBlob:
			a.serveBlob(w, r, repo, rt.arg)
		case routeTags:
			a.serveTags(w, r, repo)
		case routeReferrers:
			a.serveReferrers(w, r, repo, rt.arg)
		}
	}
}

// refuseWrite answers a push (or any method but GET and HEAD) with 405 UNSUPPORTED, except that a
// token of another project gets the 404 a missing repository gets, so that a write learns no more
// than a read would.
func (a *API) refuseWrite(w http.ResponseWriter, r *http.Request, rt route) {
	if tok := httpapi.Principal(r.Context()); tok != nil && rt.name != "" && !strings.HasPrefix(rt.name, tok.ProjectPath+"/") {
		a.fail(w, r, repositoryNotFound(rt.name))
		return
	}
	w.Header().Set("Allow", "GET, HEAD")
	a.fail(w, r, fmt.Errorf("%w: push is not supported: mlgate serves model versions over OCI read-only; upload files with "+
		"the package API (PUT /api/v4/projects/<project>/packages/ml_models/<model>/<version>/files/<path>) or MLflow",
		httpapi.ErrMethodNotAllowed))
}

// repo is a resolved repository.
type repo struct {
	name    string
	project *metadata.Project
	model   *metadata.Model
}

func repositoryNotFound(name string) error {
	return httpapi.NotFound("repository %q not found", name)
}

// maxNameLen bounds a repository name: a project path and a model name, each at most 255 bytes.
const maxNameLen = 511

// validateName checks the syntax of a repository name: at least two segments (a project path and a
// model name), none empty, "." or "..", of the characters project paths and model names use. Names
// that OCI clients would refuse (capitals, "+") are still served to clients that send them. The error
// wraps httpapi.ErrBadRequest (400 NAME_INVALID).
func validateName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("%w: repository name must be 1–%d bytes", httpapi.ErrBadRequest, maxNameLen)
	}
	segs := strings.Split(name, "/")
	if len(segs) < 2 {
		return fmt.Errorf("%w: repository name %q: must be <project path>/<model name>", httpapi.ErrBadRequest, name)
	}
	for _, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: repository name %q: empty, \".\" or \"..\" segment", httpapi.ErrBadRequest, name)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._+-", c) >= 0) {
				return fmt.Errorf("%w: repository name %q: character %q is not allowed", httpapi.ErrBadRequest, name, c)
			}
		}
	}
	return nil
}

// RepositoryName is the OCI-valid alias of a model name: lowercased, with every character other than
// a-z, 0-9, '.', '_', '-' and '/' replaced by '-'. A model is reachable under its own name and under
// this one.
func RepositoryName(modelName string) string {
	b := []byte(strings.ToLower(modelName))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			b[i] = '-'
		}
	}
	return string(b)
}

// repository resolves a repository name to a project and one of its models. The name splits into a
// project path and a model name at one of its slashes; splits are tried from the longest project path
// to the shortest, and the first whose project exists and has the model wins. With auth, only the
// token's project is tried, so another project's repository and a missing one get the same 404
// NAME_UNKNOWN. Within a project, a model's exact name wins over another model's RepositoryName
// alias; an alias that two models share resolves to neither (404, naming the clash).
func (a *API) repository(ctx context.Context, name string) (*repo, error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	tok := httpapi.Principal(ctx)
	segs := strings.Split(name, "/")
	for i := len(segs) - 1; i >= 1; i-- {
		projectPath, modelName := strings.Join(segs[:i], "/"), strings.Join(segs[i:], "/")
		if tok != nil && projectPath != tok.ProjectPath {
			continue
		}
		p, err := a.store.Project(ctx, metadata.ProjectRef{Path: projectPath})
		if errors.Is(err, metadata.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("project %q: %w", projectPath, err)
		}
		m, err := a.model(ctx, p, modelName)
		var clash *nameClash
		if errors.Is(err, metadata.ErrNotFound) && !errors.As(err, &clash) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &repo{name: name, project: p, model: m}, nil
	}
	return nil, repositoryNotFound(name)
}

// model finds a project's model by exact name, else by its RepositoryName alias. ErrNotFound for
// none; an alias of several models is a *nameClash (an ErrNotFound whose message names them).
func (a *API) model(ctx context.Context, p *metadata.Project, name string) (*metadata.Model, error) {
	m, err := a.store.Model(ctx, metadata.ModelRef{Project: p.ID, Name: name})
	if err == nil || !errors.Is(err, metadata.ErrNotFound) {
		return m, err
	}
	if RepositoryName(name) != name {
		return nil, err // not an alias's form: no alias can match
	}
	var found []*metadata.Model
	page := metadata.Page{Limit: 1000}
	for {
		ms, next, err := a.store.ListModels(ctx, p.ID, page)
		if err != nil {
			return nil, fmt.Errorf("models of project %q: %w", p.Path, err)
		}
		for _, m := range ms {
			if m.Name != name && RepositoryName(m.Name) == name {
				found = append(found, m)
			}
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	switch len(found) {
	case 0:
		return nil, metadata.ErrNotFound
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, m := range found {
		names[i] = strconv.Quote(m.Name)
	}
	return nil, &nameClash{httpapi.NotFound("repository %q is ambiguous: models %s of project %q all have this OCI name; "+
		"pull them by their exact names", p.Path+"/"+name, strings.Join(names, ", "), p.Path)}
}

// nameClash is model's answer for an OCI name that several models share: a metadata.ErrNotFound
// (404 NAME_UNKNOWN) that repository reports as it is, rather than trying other splits of the name.
type nameClash struct{ error }

func (e *nameClash) Unwrap() error { return e.error }

// tagRE is the OCI tag grammar.
var tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// TagOf is the OCI tag of a semver: "+" (build metadata), which tags cannot hold, becomes "_", as Helm
// writes it. A semver holds no "_", so the tag maps back unambiguously.
func TagOf(semver string) string { return strings.ReplaceAll(semver, "+", "_") }

// resolveTag finds the version a tag names: "latest", a semver (with "_" read as "+"), else an alias.
// A tag that names nothing, or is not a tag at all, is ErrManifestUnknown.
func (a *API) resolveTag(ctx context.Context, rp *repo, tag string) (*metadata.Version, error) {
	unknown := fmt.Errorf("%w: %q names no version of %s", httpapi.ErrManifestUnknown, tag, rp.name)
	if !tagRE.MatchString(tag) {
		return nil, fmt.Errorf("%w: %q is neither a tag nor a digest", httpapi.ErrManifestUnknown, tag)
	}
	var tries []string
	if tag == modelversion.Latest {
		tries = []string{tag}
	} else {
		if sv := strings.ReplaceAll(tag, "_", "+"); pkgtypes.ValidateSemver(sv) == nil {
			tries = append(tries, sv)
		}
		if metadata.ValidateAlias(tag) == nil {
			tries = append(tries, tag)
		}
	}
	for _, ref := range tries {
		v, err := modelversion.Resolve(ctx, a.store, rp.model.ID, ref)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, modelversion.ErrUnknownReference) {
			return nil, err
		}
	}
	return nil, unknown
}

// parseDigest checks a digest's syntax: sha256 and 64 lowercase hex digits. Another well-formed
// algorithm names nothing mlgate stores (ErrManifestUnknown or ErrBlobUnknown, given as unknown);
// anything else is ErrDigestInvalid.
func parseDigest(d string, unknown error) (string, error) {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || alg == "" || hex == "" {
		return "", fmt.Errorf("%w: %q is not <algorithm>:<hex>", httpapi.ErrDigestInvalid, d)
	}
	if alg != "sha256" {
		if !digestAlgRE.MatchString(alg) || !digestHexRE.MatchString(hex) {
			return "", fmt.Errorf("%w: %q is not <algorithm>:<hex>", httpapi.ErrDigestInvalid, d)
		}
		return "", fmt.Errorf("%w: %q: mlgate addresses content by sha256 only", unknown, d)
	}
	if len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: %q: a sha256 digest has 64 lowercase hex digits", httpapi.ErrDigestInvalid, d)
	}
	return d, nil
}

var (
	digestAlgRE = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*$`)
	digestHexRE = regexp.MustCompile(`^[a-zA-Z0-9=_-]+$`)
)

// build makes the manifest of a version and remembers which version each of its digests belongs to.
func (a *API) build(ctx context.Context, rp *repo, v *metadata.Version) (*Built, error) {
	files, err := modelversion.Files(ctx, a.store, v)
	if err != nil {
		return nil, err
	}
	b, err := Build(rp.model, v, files)
	if err != nil {
		return nil, fmt.Errorf("manifest of %s:%s: %w", rp.name, v.Semver, err)
	}
	a.versions.remember(rp.model.ID, v.Seq, b)
	return b, nil
}

// findByDigest returns the manifest of the repository's version for which match(d) holds: first the
// version that last had digest d, then every version, newest first. nil when none matches.
func (a *API) findByDigest(ctx context.Context, rp *repo, d string, match func(b *Built, d string) bool) (*Built, error) {
	if seq, ok := a.versions.lookup(rp.model.ID, d); ok {
		v, err := a.store.Version(ctx, metadata.VersionRef{ModelID: rp.model.ID, Seq: seq})
		if err == nil {
			b, err := a.build(ctx, rp, v)
			if err != nil {
				return nil, err
			}
			if match(b, d) {
				return b, nil
			}
		} else if !errors.Is(err, metadata.ErrNotFound) {
			return nil, fmt.Errorf("version %d of %s: %w", seq, rp.name, err)
		}
	}
	vs, err := modelversion.All(ctx, a.store, rp.model.ID)
	if err != nil {
		return nil, err
	}
	for _, v := range slices.Backward(vs) {
		b, err := a.build(ctx, rp, v)
		if err != nil {
			return nil, err
		}
		if match(b, d) {
			return b, nil
		}
	}
	return nil, nil
}

// isManifest and isBlob are findByDigest's matches for the two routes that take a digest.
func isManifest(b *Built, d string) bool { return b.ManifestDigest == d }
func isBlob(b *Built, d string) bool     { return b.ConfigDigest == d || b.file(d) != nil }

// file returns the file of b whose digest is d, or nil.
func (b *Built) file(d string) *modelversion.File {
	hex := strings.TrimPrefix(d, digestAlgorithmSHA)
	for i := range b.Files {
		if b.Files[i].SHA256 == hex {
			return &b.Files[i]
		}
	}
	return nil
}

// serveManifest answers a manifest by tag or digest. Clients' Accept headers are not consulted: the
// one format served is an OCI image manifest, which every OCI client accepts.
func (a *API) serveManifest(w http.ResponseWriter, r *http.Request, rp *repo, ref string) {
	var b *Built
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref, httpapi.ErrManifestUnknown)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if b, err = a.findByDigest(r.Context(), rp, d, isManifest); err != nil {
			a.fail(w, r, err)
			return
		}
		if b == nil {
			a.fail(w, r, fmt.Errorf("%w: no manifest of %s has digest %s", httpapi.ErrManifestUnknown, rp.name, d))
			return
		}
	} else {
		v, err := a.resolveTag(r.Context(), rp, ref)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if b, err = a.build(r.Context(), rp, v); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	writeContent(w, r, MediaTypeManifest, b.ManifestDigest, b.Manifest)
}

// writeContent answers with generated content (a manifest, a config, an index), HEAD and Range
// included; such content is small and held in memory.
func writeContent(w http.ResponseWriter, r *http.Request, mediaType, digest string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", mediaType)
	h.Set("Docker-Content-Digest", digest)
	h.Set("ETag", `"`+digest+`"`)
	http.ServeContent(w, r, "", zeroTime, bytes.NewReader(body))
}

// serveBlob answers a blob: the generated config, or a file of a version of this repository, streamed
// from its backend by the artifact service (ranges, redirects to presigned URLs, deferred deletion of
// replaced blobs), never a file of another repository.
func (a *API) serveBlob(w http.ResponseWriter, r *http.Request, rp *repo, ref string) {
	d, err := parseDigest(ref, httpapi.ErrBlobUnknown)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, err := a.findByDigest(r.Context(), rp, d, isBlob)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	switch {
	case b != nil && d == b.ConfigDigest:
		writeContent(w, r, "application/octet-stream", d, b.Config)
		return
	case b != nil && b.file(d) != nil:
		w.Header().Set("Docker-Content-Digest", d)
		a.artifacts.Serve(w, r, b.file(d).File, writeBlobError)
		return
	}
	a.fail(w, r, fmt.Errorf("%w: no blob of %s has digest %s", httpapi.ErrBlobUnknown, rp.name, d))
}

// writeBlobError is WriteError for a layer blob: a stored file whose bytes its backend no longer has
// is BLOB_UNKNOWN, as the spec names a missing blob, rather than the repository's NAME_UNKNOWN.
func writeBlobError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if errors.Is(err, backends.ErrNotFound) {
		// The client is told what it asked for, never the backend's key.
		err = httpapi.WithClientMessage(fmt.Errorf("%w: %w", httpapi.ErrBlobUnknown, err),
			"blob unknown: the file's bytes are missing from storage")
	}
	WriteError(w, r, log, err)
}

// serveTags lists the repository's tags in byte order: every version's semver tag, every alias that is
// a valid tag, and "latest" when there is a version. ?n= and ?last= page it as the spec says, with a
// Link header to the next page.
func (a *API) serveTags(w http.ResponseWriter, r *http.Request, rp *repo) {
	q := r.URL.Query()
	n := -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			a.fail(w, r, fmt.Errorf("%w: n must be a non-negative integer", httpapi.ErrBadRequest))
			return
		}
		n = v
	}
	vs, err := modelversion.All(r.Context(), a.store, rp.model.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	aliases, err := a.store.Aliases(r.Context(), rp.model.ID)
	if err != nil {
		a.fail(w, r, fmt.Errorf("aliases of %s: %w", rp.name, err))
		return
	}
	tags := make([]string, 0, len(vs)+len(aliases)+1)
	for _, v := range vs {
		tags = append(tags, TagOf(v.Semver))
	}
	for _, al := range aliases {
		if tagRE.MatchString(al.Alias) {
			tags = append(tags, al.Alias)
		}
	}
	if len(vs) > 0 {
		tags = append(tags, modelversion.Latest)
	}
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if last := q.Get("last"); last != "" {
		i, _ := slices.BinarySearch(tags, last)
		if i < len(tags) && tags[i] == last {
			i++
		}
		tags = tags[i:]
	}
	if n >= 0 && n < len(tags) {
		tags = tags[:n]
		if n > 0 {
			next := fmt.Sprintf("/v2/%s/tags/list?n=%d&last=%s", rp.name, n, tags[n-1])
			w.Header().Set("Link", "<"+next+`>; rel="next"`)
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"name": rp.name, "tags": tags})
}

// serveReferrers answers the referrers of a manifest with an empty index: mlgate holds no signatures
// or attestations yet. The spec wants 200, never 404, for a subject without referrers.
func (a *API) serveReferrers(w http.ResponseWriter, r *http.Request, rp *repo, ref string) {
	if _, err := parseDigest(ref, httpapi.ErrManifestUnknown); err != nil {
		a.fail(w, r, err)
		return
	}
	if r.URL.Query().Get("artifactType") != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeIndex + `","manifests":[]}`)
	writeContent(w, r, MediaTypeIndex, digestOf(body), body)
}

// digestIndex remembers, per model, which version (by Seq) last had each digest it served, so that a
// blob request, which names no version, finds its version with one lookup instead of a walk of every
// version. It is only a hint: the version is read again and its current files checked on every use.
// Bounded: past maxIndexed entries it starts over.
type digestIndex struct {
	mu sync.Mutex
	m  map[digestKey]int64
}

type digestKey struct {
	model  uint64
	digest string
}

const maxIndexed = 100_000

// zeroTime is the modification time of generated content: none, so no Last-Modified is sent.
var zeroTime time.Time

func (x *digestIndex) remember(model uint64, seq int64, b *Built) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.m)+len(b.Files)+2 > maxIndexed {
		x.m = map[digestKey]int64{}
	}
	x.m[digestKey{model, b.ManifestDigest}] = seq
	x.m[digestKey{model, b.ConfigDigest}] = seq
	for _, f := range b.Files {
		x.m[digestKey{model, digestAlgorithmSHA + f.SHA256}] = seq
	}
}

func (x *digestIndex) lookup(model uint64, d string) (int64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	seq, ok := x.m[digestKey{model, d}]
	return seq, ok
}
