package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

// artifactService owns the file semantics shared by every route that stores or serves candidate files:
// blob keys, the order of writes, replacement and idempotent re-uploads.
type artifactService struct {
	store   metadata.Store
	current func() Storage // the Storage of code running outside a request (pinStorage sets the request's)
	log     *slog.Logger
	readers blobReaders // downloads in progress, which a replaced blob outlives
}

// storage returns the Storage pinned for the request of ctx, else the current one.
func (a *artifactService) storage(ctx context.Context) Storage {
	if st, ok := ctx.Value(storageCtxKey{}).(Storage); ok {
		return st
	}
	return a.current()
}

// route picks the backend a new file of a candidate is stored on: Storage.ForUpload with the candidate's
// project path and model slug. Errors are the store's (ErrNotFound for a candidate deleted meanwhile).
func (a *artifactService) route(ctx context.Context, candidateID uint64) (string, backends.Backend, error) {
	c, err := a.store.Candidate(ctx, metadata.CandidateRef{ID: candidateID})
	if err != nil {
		return "", nil, err
	}
	m, err := a.store.Model(ctx, metadata.ModelRef{ID: c.ModelID})
	if err != nil {
		return "", nil, err
	}
	p, err := a.store.Project(ctx, metadata.ProjectRef{ID: m.Project})
	if err != nil {
		return "", nil, err
	}
	name, b := a.storage(ctx).ForUpload(p.Path, m.Name)
	return name, b, nil
}

// backendOf returns the backend holding f: the one its row records, whatever the routes say now.
// An unknown backend is an error wrapping backends.ErrUnavailable.
func (a *artifactService) backendOf(ctx context.Context, f *metadata.File) (backends.Backend, error) {
	b, err := fileBackend(a.storage(ctx), f)
	if err != nil {
		return nil, fmt.Errorf("file %q: %w", f.Path, err)
	}
	return b, nil
}

// upload is one incoming file.
type upload struct {
	candidateID uint64
	path        string    // validated file path inside the candidate
	body        io.Reader // already limited to the configured maximum size
	size        int64     // -1 when unknown
	contentType string
	sha256      string // expected lowercase hex digest; "" when the client gave none
}

// blobKey returns a fresh key for a new file of a candidate. The random uid makes every upload land on
// its own blob, so a replacement never overwrites bytes a reader may be streaming, and user-supplied
// names never reach storage.
func blobKey(candidateID uint64) string {
	var uid [16]byte
	_, _ = rand.Read(uid[:])
	return fmt.Sprintf("c/%016x/%s", candidateID, hex.EncodeToString(uid[:]))
}

// Store streams u into a new blob, then commits its metadata row, replacing any earlier file at the
// same path. Identical bytes at the same path change nothing. On any failure nothing becomes visible
// and the new blob is removed. Errors: backends.ErrChecksum and ErrSizeMismatch for a body that does not
// match what the client declared, ErrTooLarge from the body, backends.ErrUnavailable, and
// metadata.ErrConflict for a file/directory clash. The file goes to the backend Storage.ForUpload picks,
// and its row records that backend.
func (a *artifactService) Store(ctx context.Context, u upload) (*metadata.File, error) {
	name, backend, err := a.route(ctx, u.candidateID)
	if err != nil {
		return nil, err
	}
	key := blobKey(u.candidateID)
	info, err := backend.Put(ctx, key, u.body, u.size, backends.PutOptions{ContentType: u.contentType, SHA256: u.sha256})
	if err != nil {
		return nil, err
	}
	if info.SHA256 == "" {
		// Checked always fills it; an unwrapped backend is a wiring bug we must not paper over.
		a.discardBlob(backend, key)
		return nil, fmt.Errorf("backend returned no sha256 for %s", key)
	}
	if existing, err := a.store.File(ctx, u.candidateID, u.path); err == nil &&
		existing.SHA256 == info.SHA256 && existing.Size == info.Size {
		a.discardBlob(backend, key)
		return existing, nil
	}
	f := &metadata.File{
		CandidateID: u.candidateID,
		Path:        u.path,
		Size:        info.Size,
		SHA256:      info.SHA256,
		ContentType: u.contentType,
		BlobKey:     key,
		Backend:     name,
	}
	replaced, err := a.store.CommitFile(ctx, f, true)
	if err != nil {
		a.discardBlob(backend, key)
		return nil, err
	}
	a.discardReplaced(ctx, replaced)
	return f, nil
}

// discardReplaced deletes the blob of a row that a commit replaced or deleted (nil: none), on that
// row's backend, once the downloads reading it have ended.
func (a *artifactService) discardReplaced(ctx context.Context, replaced *metadata.File) {
	if replaced == nil {
		return
	}
	b, err := a.backendOf(ctx, replaced)
	if err != nil {
		a.log.Warn("could not delete a replaced blob; fsck --repair on its backend will", "key", replaced.BlobKey, "err", err)
		return
	}
	a.readers.discard(replaced.BlobKey, func() { a.discardBlob(b, replaced.BlobKey) })
}

// discardBlob deletes a blob that no metadata row references. It runs on a fresh context because the
// request's may already be cancelled; a failure only leaves an orphan that fsck finds and removes.
func (a *artifactService) discardBlob(b backends.Backend, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Delete(ctx, key); err != nil && !errors.Is(err, backends.ErrNotFound) {
		a.log.Warn("could not delete unreferenced blob; fsck --repair will", "key", key, "err", err)
	}
}

// errorWriter answers a request with an error in its route's body shape: writeError or writeMLflowError.
type errorWriter func(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)

// Serve streams f to w, honouring Range, If-Range, If-None-Match and HEAD through http.ServeContent.
// Metadata is read before this call, so no transaction is open while bytes flow.
func (a *artifactService) Serve(w http.ResponseWriter, r *http.Request, f *metadata.File, fail errorWriter) {
	h := w.Header()
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("X-Checksum-SHA256", f.SHA256)
	h.Set("Content-Type", contentTypeOf(f))
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": path.Base(f.Path)}))
	h.Set("X-Content-Type-Options", "nosniff")
	backend, err := a.backendOf(r.Context(), f)
	if err != nil {
		fail(w, r, a.log, err)
		return
	}
	defer a.readers.acquire(f.BlobKey)()
	if isPlainRead(r) {
		a.serveWhole(w, r, backend, f, fail)
		return
	}
	body := backends.NewReadSeeker(r.Context(), backend, f.BlobKey, f.Size)
	defer body.Close()
	http.ServeContent(w, r, "", f.CreatedAt, body)
}

// isPlainRead reports whether r is a GET or HEAD with no range or precondition: the common case of a
// whole-file download, which serveWhole answers without http.ServeContent.
func isPlainRead(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, h := range []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	return true
}

// serveWhole streams a whole file with one backend Get. Unlike http.ServeContent, whose io.CopyN
// hides the blob reader behind an io.LimitedReader, it hands the reader to io.Copy directly, so a
// localfs blob goes out through sendfile and a remote blob through large copies. This is what keeps a
// multi-GiB download at disk and network speed.
func (a *artifactService) serveWhole(w http.ResponseWriter, r *http.Request, backend backends.Backend, f *metadata.File, fail errorWriter) {
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Last-Modified", f.CreatedAt.UTC().Format(http.TimeFormat))
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	rc, _, err := backend.Get(r.Context(), f.BlobKey, backends.All)
	if err != nil {
		h.Del("Content-Length")
		fail(w, r, a.log, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(http.StatusOK)
	if n, err := copyBody(w, rc); err != nil && r.Context().Err() == nil {
		// The status is sent; all that is left is to cut the response short so the client sees a
		// truncated body rather than a complete-looking one.
		a.log.Warn("download interrupted", "key", f.BlobKey, "sent", n, "size", f.Size, "err", err)
		panic(http.ErrAbortHandler)
	}
}

// copyBufferPool holds the buffers of copyBody.
var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// copyBody sends a blob reader to the client. A reader that can write itself (localfs: sendfile) does;
// any other (an S3 response body, a plugin stream) goes through a 1 MiB buffer, because the response's
// own ReadFrom would fall back to 32 KiB reads and writes: 64 k syscalls per GiB.
func copyBody(w http.ResponseWriter, rc io.Reader) (int64, error) {
	if wt, ok := rc.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	bp := copyBufferPool.Get().(*[]byte)
	defer copyBufferPool.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{rc}, *bp)
}

// Delete removes a file row, then its blob from the backend the row records. A row whose backend is no
// longer configured is still deleted (the user asked for it gone); its blob stays for fsck to find.
func (a *artifactService) Delete(ctx context.Context, candidateID uint64, filePath string) error {
	f, err := a.store.DeleteFile(ctx, candidateID, filePath)
	if err != nil {
		return err
	}
	a.discardReplaced(ctx, f)
	return nil
}

// contentTypeOf picks the type a download is served with: the stored one, else one guessed from the
// extension, else bytes.
func contentTypeOf(f *metadata.File) string {
	if f.ContentType != "" {
		return f.ContentType
	}
	return guessContentType(f.Path)
}

func guessContentType(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// cleanContentType keeps a client-declared type only when it parses, so a header cannot smuggle
// arbitrary text into later responses.
func cleanContentType(declared, filePath string) string {
	declared = strings.TrimSpace(declared)
	if declared == "" || len(declared) > metadata.MaxContentTypeLen {
		return guessContentType(filePath)
	}
	mediaType, params, err := mime.ParseMediaType(declared)
	if err != nil || mediaType == "application/x-www-form-urlencoded" {
		return guessContentType(filePath)
	}
	return mime.FormatMediaType(mediaType, params)
}
