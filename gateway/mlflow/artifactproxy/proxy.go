// Package artifactproxy serves MLflow's mlflow-artifacts proxy. Every path is relative to the artifact
// root, and mlgate only serves the run level of it: <experiment id>/<run id>/artifacts[/<file path>], where the experiment id is a model
// iid and the run id a candidate eid. Files written here are the candidate's files, the same rows the
// package API serves.
//
// Routes (after .../api/2.0/mlflow-artifacts/):
//
//	PUT    artifacts/<run root>/<path>         upload, streamed → {}
//	GET    artifacts/<run root>/<path>         download (Range, HEAD)
//	GET    artifacts?path=<run root>[/<dir>]   list one level → {"files": [...]}; a file or a missing path → {}
//	DELETE artifacts/<run root>[/<path>]       delete a file, or every file under a directory → {}
//	POST   mpu/create/<run root>[/<dir>]       multipart upload of <dir>/<basename of body.path>
//	PUT    mpu/part/<upload id>/<n>?exp&sig    one part, to the signed URL create handed out
//	POST   mpu/complete/<run root>[/<dir>]     → {}
//	POST   mpu/abort/<run root>[/<dir>]        → {}
package artifactproxy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
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
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Deps is what the proxy needs.
type Deps struct {
	Store     metadata.Store
	Artifacts *artifact.Service
	Log       *slog.Logger
	// Budget bounds the large JSON bodies (multipart completions) read at once, with the MLflow RPCs'.
	Budget *httpapi.BodyBudget
	// Signing is the instance's signing secret, from which the keys of upload ids and part URLs derive.
	// Proxies with the same secret (replicas, or one process before and after a restart) accept each
	// other's. nil draws a random one, valid for this Proxy only: for tests.
	Signing *signing.Secret
}

// Proxy serves the mlflow-artifacts API.
type Proxy struct {
	store     metadata.Store
	artifacts *artifact.Service
	log       *slog.Logger
	budget    *httpapi.BodyBudget
	mpu       *mpuKeys
}

// New builds the proxy.
func New(d Deps) *Proxy {
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Signing == nil {
		d.Signing = signing.Random()
	}
	return &Proxy{store: d.Store, artifacts: d.Artifacts, log: d.Log, budget: d.Budget, mpu: newMPUKeys(d.Signing)}
}

// runArtifactsSegment is the literal between the run id (or logged model id) and the file path of
// every proxy path.
const runArtifactsSegment = "artifacts"

// loggedModelsSegment is the literal between the experiment id and a logged model's id.
const loggedModelsSegment = "models"

// mpuPartTTL is how long a part URL stays valid. The client asks for every URL at create time and then
// uploads the parts from a thread pool, so this bounds the duration of the whole transfer: an hour is
// 500 MB at 140 kB/s, or a 10 GiB file (mlgate's default limit) at 3 MB/s.
const mpuPartTTL = time.Hour

// maxMPUUploadID bounds the upload id accepted from a client before any decoding: the sealed token
// holds a file path of at most 1 KiB plus a few ids.
const maxMPUUploadID = 8 << 10

// Handler serves the mlflow-artifacts proxy of one prefix (its catch-all parameter is "rest"). fixedProject is the project path for
// the unprefixed routes, "" when the route carries :project. Errors are MLflow bodies: unknown
// experiment or run (or a run of another experiment) 404 RESOURCE_DOES_NOT_EXIST, a bad path 400
// INVALID_PARAMETER_VALUE, an oversize body 400 INVALID_PARAMETER_VALUE (the MLflow error table has no
// 413 code), a bad or expired part URL 403 PERMISSION_DENIED, an unknown route ENDPOINT_NOT_FOUND.
func (p *Proxy) Handler(fixedProject string) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		rest := strings.TrimPrefix(ps.ByName("rest"), "/")
		projectRef := fixedProject
		if projectRef == "" {
			projectRef = ps.ByName("project")
		}
		req := &artifactRequest{p: p, w: w, r: r, projectRef: projectRef, fixed: fixedProject != "", rest: ps.ByName("rest")}
		area, tail, _ := strings.Cut(rest, "/")
		var err error
		switch area {
		case "artifacts":
			err = req.artifacts(tail)
		case "mpu":
			op, tail, _ := strings.Cut(tail, "/")
			switch {
			case op == "part" && r.Method == http.MethodPut:
				err = req.mpuPart(tail)
			case op == "create" && r.Method == http.MethodPost:
				err = req.mpuCreate(tail)
			case op == "complete" && r.Method == http.MethodPost:
				err = req.mpuComplete(tail)
			case op == "abort" && r.Method == http.MethodPost:
				err = req.mpuAbort(tail)
			default:
				err = fmt.Errorf("%w: %s mlflow-artifacts/%s", httpapi.ErrRouteNotFound, r.Method, rest)
			}
		default:
			err = fmt.Errorf("%w: %s mlflow-artifacts/%s", httpapi.ErrRouteNotFound, r.Method, rest)
		}
		if err != nil {
			httpapi.WriteMLflowError(w, r, p.log, err)
		}
	}
}

// artifactRequest is one request to the proxy.
type artifactRequest struct {
	p          *Proxy
	w          http.ResponseWriter
	r          *http.Request
	projectRef string // escaped
	fixed      bool   // unprefixed route: the project is created on first use, as the dispatcher does
	rest       string // the escaped catch-all, with its leading "/"
}

// runArtifacts is a proxy path resolved to the owner of the files it names: a run (candidate), or an
// MLflow 3 logged model.
type runArtifacts struct {
	project   *metadata.Project
	model     *metadata.Model
	candidate *metadata.Candidate   // nil for a logged model's files
	logged    *metadata.LoggedModel // nil for a run's files
	path      string                // validated file or directory path inside the owner; "" = its root
}

// owner is the id the files are stored under.
func (ra *runArtifacts) owner() uint64 {
	if ra.logged != nil {
		return ra.logged.ID
	}
	return ra.candidate.ID
}

// String names the owner in messages.
func (ra *runArtifacts) String() string {
	if ra.logged != nil {
		return "logged model " + ra.logged.LMID.String()
	}
	return "run " + ra.candidate.EID.String()
}

// escapedSegments decodes the "/"-separated escaped segments of a routed path one by one, so that an
// encoded "/" (%2F) can never make two segments out of one.
func escapedSegments(escaped string) ([]string, error) {
	if escaped == "" {
		return nil, nil
	}
	segs := strings.Split(escaped, "/")
	for i, seg := range segs {
		v, err := url.PathUnescape(seg)
		if err != nil {
			return nil, fmt.Errorf("%w: malformed escape in artifact path segment %q", pkgtypes.ErrInvalidPath, seg)
		}
		if strings.Contains(v, "/") {
			return nil, fmt.Errorf("%w: artifact path segment %q contains an encoded '/'", pkgtypes.ErrInvalidPath, seg)
		}
		segs[i] = v
	}
	return segs, nil
}

// resolveRun parses <experiment id>/<run id>/artifacts[/<path>], or a logged model's
// <experiment id>/models/<model id>/artifacts[/<path>] (decoded segments), and finds the owner. write
// lets the request create the project. A malformed path is httpapi.ErrBadRequest or ErrInvalidPath; an
// unknown experiment, run or logged model, or one of another experiment, is metadata.ErrNotFound.
func (q *artifactRequest) resolveRun(segs []string, write bool) (*runArtifacts, error) {
	ctx := q.r.Context()
	rootLen := 3
	if len(segs) >= 4 && segs[1] == loggedModelsSegment {
		rootLen = 4
	}
	if len(segs) < rootLen || segs[rootLen-1] != runArtifactsSegment {
		return nil, fmt.Errorf("%w: artifact path %q is neither <experiment id>/<run id>/artifacts[/<path>] nor "+
			"<experiment id>/models/<model id>/artifacts[/<path>]", httpapi.ErrBadRequest, strings.Join(segs, "/"))
	}
	iid, err := strconv.ParseInt(segs[0], 10, 64)
	if err != nil || iid < 0 {
		return nil, fmt.Errorf("%w: experiment id %q in the artifact path is not a valid experiment id", httpapi.ErrBadRequest, segs[0])
	}
	out := &runArtifacts{path: strings.Join(segs[rootLen:], "/")}
	if out.path != "" {
		if err := pkgtypes.ValidateFilePath(out.path); err != nil {
			return nil, err
		}
	}
	if out.project, err = httpapi.ResolveProject(ctx, q.p.store, q.projectRef, write || q.fixed); err != nil {
		return nil, err
	}
	if iid == 0 {
		out.model, err = q.p.store.EnsureDefaultModel(ctx, out.project.ID)
	} else {
		out.model, err = q.p.store.Model(ctx, metadata.ModelRef{Project: out.project.ID, IID: iid})
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, mlflow.ExperimentNotFound(segs[0], err)
	}
	if err != nil {
		return nil, fmt.Errorf("experiment %d: %w", iid, err)
	}
	if rootLen == 4 {
		if out.logged, err = httpapi.LoggedModelOf(ctx, q.p.store, out.project.ID, segs[2]); err != nil {
			return nil, err
		}
		if out.logged.ModelID != out.model.ID {
			return nil, httpapi.LoggedModelNotFound(segs[2],
				fmt.Errorf("logged model %s is not in experiment %d: %w", segs[2], iid, metadata.ErrNotFound))
		}
		return out, nil
	}
	// One answer whether the run exists in another experiment, in another project, or not at all.
	eid, ok := metadata.ParseEID(segs[1])
	if !ok || eid == (metadata.EID{}) { // the zero EID means "unset" to the store
		return nil, mlflow.RunNotFound(segs[1], metadata.ErrNotFound)
	}
	out.candidate, err = q.p.store.Candidate(ctx, metadata.CandidateRef{EID: eid, Project: out.project.ID})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, mlflow.RunNotFound(segs[1], err)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", segs[1], err)
	}
	if out.candidate.Project != out.project.ID || out.candidate.ModelID != out.model.ID {
		return nil, mlflow.RunNotFound(segs[1], fmt.Errorf("run %s is not in experiment %d: %w", segs[1], iid, metadata.ErrNotFound))
	}
	return out, nil
}

// writable refuses new files in a deleted run, as logging to a deleted run is refused.
func (ra *runArtifacts) writable() error {
	if ra.candidate != nil && ra.candidate.Lifecycle == metadata.Deleted {
		return fmt.Errorf("%w: run %s is deleted; restore it before logging artifacts", httpapi.ErrBadRequest, ra.candidate.EID)
	}
	return nil
}

// artifacts serves artifacts[/<run root>/<path>] (tail is escaped).
func (q *artifactRequest) artifacts(tail string) error {
	r := q.r
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if strings.TrimSuffix(tail, "/") == "" {
			return q.list()
		}
		segs, err := escapedSegments(tail)
		if err != nil {
			return err
		}
		ra, err := q.resolveRun(segs, false)
		if err != nil {
			return err
		}
		if ra.path == "" {
			return httpapi.NotFound("artifact path %q is a directory, not a file", tail)
		}
		f, err := q.p.store.File(r.Context(), ra.owner(), ra.path)
		if errors.Is(err, metadata.ErrNotFound) {
			return httpapi.WithClientMessage(err, "artifact %q of %s not found", ra.path, ra)
		}
		if err != nil {
			return fmt.Errorf("artifact %q of %s: %w", ra.path, ra, err)
		}
		q.p.artifacts.Serve(q.w, r, f, httpapi.WriteMLflowError)
		return nil
	case http.MethodPut:
		segs, err := escapedSegments(tail)
		if err != nil {
			return err
		}
		ra, err := q.resolveRun(segs, true)
		if err != nil {
			return err
		}
		return q.put(ra)
	case http.MethodDelete:
		// delete_artifacts() without a path sends the run root with a trailing "/".
		segs, err := escapedSegments(strings.TrimSuffix(tail, "/"))
		if err != nil {
			return err
		}
		ra, err := q.resolveRun(segs, true)
		if err != nil {
			return err
		}
		if err := q.p.artifacts.DeleteTree(r.Context(), ra.owner(), ra.path); err != nil {
			return err
		}
		httpapi.WriteJSON(q.w, http.StatusOK, struct{}{})
		return nil
	}
	return fmt.Errorf("%w: %s mlflow-artifacts/artifacts", httpapi.ErrRouteNotFound, r.Method)
}

// put streams the request body into the run's file at ra.path, replacing it atomically; identical
// bytes change nothing.
func (q *artifactRequest) put(ra *runArtifacts) error {
	r := q.r
	if ra.path == "" {
		return fmt.Errorf("%w: a file path is required after <run id>/artifacts/", pkgtypes.ErrInvalidPath)
	}
	if err := ra.writable(); err != nil {
		return err
	}
	expected, err := artifact.ChecksumHeader(r)
	if err != nil {
		return err
	}
	body, err := q.p.artifacts.OpenUpload(r)
	if err != nil {
		return err
	}
	_, err = q.p.artifacts.Store(r.Context(), artifact.Upload{
		OwnerID:     ra.owner(),
		Path:        ra.path,
		Body:        body.Reader,
		Size:        body.Size,
		ContentType: artifact.CleanContentType(body.ContentType, ra.path),
		SHA256:      expected,
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, struct{}{})
	return nil
}

// list answers GET artifacts?path=<run root>[/<dir>] with one level of the directory. A file, a missing
// directory or an empty run lists as {}: download_artifacts lists first and takes an empty answer for
// "a file".
func (q *artifactRequest) list() error {
	p := q.r.URL.Query().Get("path")
	if p == "" {
		return rpc.Required("path")
	}
	// The client joins the root and a user-given sub-path, which may end in "/".
	ra, err := q.resolveRun(strings.Split(strings.TrimSuffix(p, "/"), "/"), false)
	if err != nil {
		return err
	}
	entries, err := q.p.artifacts.ListDir(q.r.Context(), ra.owner(), ra.path)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, struct {
		Files []message.FileInfo `json:"files,omitempty"`
	}{mlflow.FileInfos("", entries)})
	return nil
}

// Multipart uploads.
//
// The design is stateless: the upload id handed to the client is a token sealed with AES-GCM. It holds
// the project, candidate, file path, blob key and backend upload id, so parts, complete and abort need no
// metadata row, and the client learns neither blob keys nor backend ids. Part URLs are mlgate's own (the
// client sends no Authorization header to them) and carry an HMAC-SHA256 over (upload id, part number,
// expiry) and the expiry itself, mpuPartTTL ahead.
//
// Both keys derive from the instance's signing secret (Deps.Signing), which replicas share and which
// outlives a restart: any replica accepts the upload ids and part URLs of any other, before and after a
// restart. A changed secret invalidates the uploads in flight: the client then fails the upload (its
// abort is refused as well), and the backend upload it leaves behind holds no visible blob: on localfs
// the sweeper removes it (and mlgate fsck reports it), on S3 a lifecycle rule for incomplete multipart
// uploads does.
//
// Upload ids are sealed under random 96-bit nonces. The key now lives as long as the instance rather than
// a process, but a nonce repeats with a chance of 2^-32 only after some 2^32 uploads (NIST SP 800-38D's
// bound), which no registry reaches.

// Purposes of the keys derived from the signing secret. Changing one invalidates every upload in flight,
// as a new secret does.
const (
	mpuTokenKeyPurpose = "mlgate mlflow-artifacts mpu upload-id aes-256-gcm v1"
	mpuPartKeyPurpose  = "mlgate mlflow-artifacts mpu part-url hmac-sha256 v1"
)

// mpuKeys seals upload ids (aead) and signs part URLs (macKey).
type mpuKeys struct {
	aead   cipher.AEAD
	macKey []byte
}

// newMPUKeys derives the two keys from secret, each under its own purpose, so that neither is the other.
func newMPUKeys(secret *signing.Secret) *mpuKeys {
	block, err := aes.NewCipher(secret.Key(mpuTokenKeyPurpose, 32))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &mpuKeys{aead: aead, macKey: secret.Key(mpuPartKeyPurpose, 32)}
}

// mpuToken is the content of an upload id.
type mpuToken struct {
	Project   int64  `json:"p"`
	Candidate uint64 `json:"c"`
	Path      string `json:"f"`
	Key       string `json:"k"` // blob key the upload completes into
	Upload    string `json:"u"` // backend upload id
	Backend   string `json:"b"` // name of the backend the upload runs on (Storage.Get)
	Parts     int    `json:"n"` // part URLs issued: 1..Parts
}

// multipart is the artifact service's view of the upload.
func (t mpuToken) multipart() artifact.Multipart {
	return artifact.Multipart{Backend: t.Backend, Key: t.Key, UploadID: t.Upload}
}

// mpuTokenAD binds sealed tokens to their purpose.
var mpuTokenAD = []byte("mlgate mlflow mpu upload id v1")

func (k *mpuKeys) seal(t mpuToken) string {
	aead := k.aead
	plain, _ := json.Marshal(t)
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, mpuTokenAD))
}

// open checks and decodes an upload id. Anything not sealed with these keys is httpapi.ErrBadRequest.
func (k *mpuKeys) open(s string) (mpuToken, error) {
	var t mpuToken
	bad := fmt.Errorf("%w: upload_id is not a multipart upload of this server (or its signing key changed "+
		"since the upload was created); start the upload again", httpapi.ErrBadRequest)
	if s == "" {
		return t, rpc.Required("upload_id")
	}
	if len(s) > maxMPUUploadID {
		return t, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	aead := k.aead
	if err != nil || len(raw) < aead.NonceSize() {
		return t, bad
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], mpuTokenAD)
	if err != nil || json.Unmarshal(plain, &t) != nil {
		return t, bad
	}
	return t, nil
}

// partSig signs one part URL.
func (k *mpuKeys) partSig(token string, n int, exp int64) string {
	mac := hmac.New(sha256.New, k.macKey)
	fmt.Fprintf(mac, "part\x00%s\x00%d\x00%d", token, n, exp)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// requestOrigin is scheme://host of the request, so part URLs reach this server the way the client did.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// mpuTarget resolves the <run root>[/<dir>] of an mpu URL and the file the upload writes:
// <dir>/<basename of the client's local path>, which is where MLflow's own server puts it.
func (q *artifactRequest) mpuTarget(tail, localPath string) (*runArtifacts, string, error) {
	segs, err := escapedSegments(strings.TrimSuffix(tail, "/"))
	if err != nil {
		return nil, "", err
	}
	if localPath == "" {
		return nil, "", rpc.Required("path")
	}
	ra, err := q.resolveRun(segs, true)
	if err != nil {
		return nil, "", err
	}
	// The client sends its local path; a Windows client's has backslashes.
	base := localPath[strings.LastIndexAny(localPath, `/\`)+1:]
	if base == "" {
		return nil, "", fmt.Errorf("%w: path %q names no file", httpapi.ErrBadRequest, localPath)
	}
	filePath := base
	if ra.path != "" {
		filePath = ra.path + "/" + base
	}
	if err := pkgtypes.ValidateFilePath(filePath); err != nil {
		return nil, "", err
	}
	return ra, filePath, nil
}

// mpuBodyLimits bound the JSON body of an mpu call: a completion lists up to one part per S3 part
// number (10000), each {"part_number", "etag"}.
var mpuBodyLimits = httpapi.BodyLimits{MaxBytes: 1 << 20, MaxItems: 10000}

// decodeBody reads the JSON body of an mpu call into v. Errors are httpapi.ReadJSONBody's and
// rpc.Decode's.
func (q *artifactRequest) decodeBody(v any) error {
	body, release, err := httpapi.ReadJSONBody(q.w, q.r, mpuBodyLimits, q.p.budget)
	if err != nil {
		return err
	}
	// What v holds of the body is bounded by the limits: the budget only covers reading and decoding.
	defer release()
	return rpc.Decode(body, v)
}

// mpuCredential is MLflow's MultipartUploadCredential. The client builds it with all three fields, so
// headers is always sent.
type mpuCredential struct {
	URL        string            `json:"url"`
	PartNumber int               `json:"part_number"`
	Headers    map[string]string `json:"headers"`
}

// mpuCreate starts a backend multipart upload and hands out one signed part URL per part.
// Errors: 400 for a missing path, num_parts outside 1..the backend's part limit or a deleted run.
func (q *artifactRequest) mpuCreate(tail string) error {
	var in struct {
		Path     string  `json:"path"`
		NumParts rpc.I64 `json:"num_parts"`
	}
	if err := q.decodeBody(&in); err != nil {
		return err
	}
	if !in.NumParts.Set {
		return rpc.Required("num_parts")
	}
	ra, filePath, err := q.mpuTarget(tail, in.Path)
	if err != nil {
		return err
	}
	if err := ra.writable(); err != nil {
		return err
	}
	mp, err := q.p.artifacts.CreateMultipart(q.r.Context(), ra.owner(), filePath, in.NumParts.V)
	if err != nil {
		return err
	}
	token := q.p.mpu.seal(mpuToken{
		Project: ra.project.ID, Candidate: ra.owner(), Path: filePath,
		Key: mp.Key, Upload: mp.UploadID, Parts: int(in.NumParts.V), Backend: mp.Backend,
	})
	// The part route is under the same prefix (and so the same project) as this request.
	base := requestOrigin(q.r) + strings.TrimSuffix(q.r.URL.Path, q.rest) + "/mpu/part/" + token + "/"
	exp := time.Now().Add(mpuPartTTL).Unix()
	creds := make([]mpuCredential, in.NumParts.V)
	for i := range creds {
		n := i + 1
		creds[i] = mpuCredential{
			URL:        base + strconv.Itoa(n) + "?exp=" + strconv.FormatInt(exp, 10) + "&sig=" + q.p.mpu.partSig(token, n, exp),
			PartNumber: n,
			Headers:    map[string]string{},
		}
	}
	httpapi.WriteJSON(q.w, http.StatusOK, struct {
		UploadID    string          `json:"upload_id"`
		Credentials []mpuCredential `json:"credentials"`
	}{token, creds})
	return nil
}

// mpuPart stores one part (tail is "<upload id>/<n>"). It answers 200 {} with the part's ETag, which
// the client hands back on complete. Errors: 403 for a bad or expired signature, 411 without
// Content-Length, 400 for a part number the upload was not created with or a body of another length,
// 404 for an upload that was completed or aborted.
func (q *artifactRequest) mpuPart(tail string) error {
	r := q.r
	token, nStr, ok := strings.Cut(tail, "/")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil || n < 1 {
		return fmt.Errorf("%w: part URL must end in /mpu/part/<upload id>/<part number>", httpapi.ErrBadRequest)
	}
	query := r.URL.Query()
	exp, err := strconv.ParseInt(query.Get("exp"), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: part URL has no valid exp", httpapi.ErrBadSignature)
	}
	if !hmac.Equal([]byte(query.Get("sig")), []byte(q.p.mpu.partSig(token, n, exp))) {
		return fmt.Errorf("%w does not match: use the URLs returned by mpu/create unchanged", httpapi.ErrBadSignature)
	}
	if time.Now().Unix() > exp {
		return fmt.Errorf("%w expired at %s: start the upload again", httpapi.ErrBadSignature, time.Unix(exp, 0).UTC().Format(time.RFC3339))
	}
	t, err := q.p.mpu.open(token)
	if err != nil {
		return err
	}
	if n > t.Parts {
		return fmt.Errorf("%w: part %d of an upload created with %d parts", httpapi.ErrBadRequest, n, t.Parts)
	}
	if r.ContentLength < 0 {
		return fmt.Errorf("%w: a part upload needs Content-Length", httpapi.ErrLengthRequired)
	}
	part, err := q.p.artifacts.PutPart(r.Context(), t.multipart(), n, r.Body, r.ContentLength)
	if err != nil {
		return err
	}
	q.w.Header().Set("ETag", `"`+unquoteETag(part.ETag)+`"`)
	httpapi.WriteJSON(q.w, http.StatusOK, struct{}{})
	return nil
}

// unquoteETag accepts an ETag as sent in a header ("abc", W/"abc") or bare.
func unquoteETag(s string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(s), "W/"), `"`)
}

// mpuUpload decodes the upload id of a complete or abort call and checks that it was created for the
// same run and file this URL names, so an upload id cannot be used to write into another run.
func (q *artifactRequest) mpuUpload(tail, localPath, uploadID string) (*runArtifacts, mpuToken, error) {
	t, err := q.p.mpu.open(uploadID)
	if err != nil {
		return nil, t, err
	}
	ra, filePath, err := q.mpuTarget(tail, localPath)
	if err != nil {
		return nil, t, err
	}
	if t.Project != ra.project.ID || t.Candidate != ra.owner() || t.Path != filePath {
		return nil, t, fmt.Errorf("%w: upload_id was created for another artifact than %q of %s",
			httpapi.ErrBadRequest, filePath, ra)
	}
	return ra, t, nil
}

// mpuComplete assembles the parts and commits the file, replacing an earlier file at the path; identical
// bytes change nothing. Errors: 400 for a missing, unknown or mismatched part (ETag), 400 for a
// file over the size limit, 404 for an upload that was aborted. The parts must be exactly 1..num_parts
// of the create call. A retry of a complete that succeeded answers {} again.
func (q *artifactRequest) mpuComplete(tail string) error {
	var in struct {
		Path     string `json:"path"`
		UploadID string `json:"upload_id"`
		Parts    []struct {
			PartNumber rpc.I64 `json:"part_number"`
			ETag       string  `json:"etag"`
		} `json:"parts"`
	}
	if err := q.decodeBody(&in); err != nil {
		return err
	}
	ra, t, err := q.mpuUpload(tail, in.Path, in.UploadID)
	if err != nil {
		return err
	}
	if len(in.Parts) == 0 {
		return rpc.Required("parts")
	}
	parts := make([]backends.Part, len(in.Parts))
	for i, p := range in.Parts {
		if p.PartNumber.V < 1 || p.PartNumber.V > int64(t.Parts) {
			return fmt.Errorf("%w: part_number %d of an upload created with %d parts", httpapi.ErrBadRequest, p.PartNumber.V, t.Parts)
		}
		parts[i] = backends.Part{Number: int(p.PartNumber.V), ETag: unquoteETag(p.ETag)}
	}
	slices.SortFunc(parts, func(a, b backends.Part) int { return a.Number - b.Number })
	// Every part the upload was created with must be listed once: a client that lost a part must not
	// end up with a shorter file.
	for i, p := range parts {
		if p.Number != i+1 || len(parts) != t.Parts {
			return fmt.Errorf("%w: parts must list part_number 1..%d once each, as the upload was created with %d parts",
				backends.ErrInvalidPart, t.Parts, t.Parts)
		}
	}
	if _, err := q.p.artifacts.CompleteMultipart(q.r.Context(), ra.owner(), t.Path, t.multipart(), parts); err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, struct{}{})
	return nil
}

// mpuAbort discards the upload and its parts. An upload that is already gone answers {} too, so the
// client's abort after a failed complete never masks the original error.
func (q *artifactRequest) mpuAbort(tail string) error {
	var in struct {
		Path     string `json:"path"`
		UploadID string `json:"upload_id"`
	}
	if err := q.decodeBody(&in); err != nil {
		return err
	}
	_, t, err := q.mpuUpload(tail, in.Path, in.UploadID)
	if err != nil {
		return err
	}
	if err := q.p.artifacts.AbortMultipart(q.r.Context(), t.multipart()); err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, struct{}{})
	return nil
}
