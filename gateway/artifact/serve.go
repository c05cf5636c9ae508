package artifact

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// Serve streams f to w, honouring Range, If-Range, If-None-Match and HEAD through http.ServeContent.
// Metadata is read before this call, so no transaction is open while bytes flow. Errors before the
// first byte are answered with fail (the route's error body); a failure after it cuts the response
// short, so the client sees a truncated body rather than a complete-looking one. A Range that cannot be
// served is 416 with "Content-Range: bytes */<size>" (see normalizeRange).
//
// A whole-file GET of a file whose backend redirects downloads (backends.CheckedBackend.Redirect) is
// answered with 307 to a presigned URL instead, unless the client sent X-Mlgate-No-Redirect: 1; HEAD,
// ranges and conditional requests are always served here, as they are cheap or need mlgate's own
// answers (416 bodies, 304s). This is the one place that decides, for every surface that serves files.
func (a *Service) Serve(w http.ResponseWriter, r *http.Request, f *metadata.File, fail httpapi.ErrorWriter) {
	if a.redirect(w, r, f) {
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+f.SHA256+`"`)
	h.Set("X-Checksum-SHA256", f.SHA256)
	h.Set("Content-Type", contentTypeOf(f))
	h.Set("Content-Disposition", attachment(path.Base(f.Path)))
	h.Set("X-Content-Type-Options", "nosniff")
	if !a.normalizeRangeHeader(w, r, f, fail) {
		return
	}
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

// NoRedirectHeader, set to "1" on a download, asks for the bytes from mlgate even when the file's
// backend redirects downloads (a client that cannot reach the storage server).
const NoRedirectHeader = "X-Mlgate-No-Redirect"

// redirect answers r with 307 to a presigned URL of f's blob when r is a whole-file GET that may be
// redirected and f's backend redirects downloads, and reports whether it did. The blob is held (see
// blobReaders.hold) for the URL's expiry plus the backend's grace before the redirect is sent, so that
// replacing or deleting the file meanwhile cannot delete the bytes the client is about to fetch. When
// the URL cannot be signed the download is proxied instead: the client still gets its file.
func (a *Service) redirect(w http.ResponseWriter, r *http.Request, f *metadata.File) bool {
	if r.Method != http.MethodGet || !isPlainRead(r) || r.Header.Get(NoRedirectHeader) == "1" {
		return false
	}
	backend, err := a.backendOf(r.Context(), f)
	if err != nil {
		return false // Serve answers the same error
	}
	policy, ok := backend.Redirect()
	if !ok {
		return false
	}
	a.readers.hold(f.BlobKey, policy.Expiry+policy.Grace)
	u, err := backend.PresignGet(r.Context(), f.BlobKey, policy.Expiry, attachment(path.Base(f.Path)))
	if err != nil {
		a.log.Warn("could not presign a download; proxying it", "backend", f.Backend, "err", err)
		return false
	}
	h := w.Header()
	h.Set("Location", u)
	// The URL expires and grants access by itself: no cache may keep it or hand it to someone else.
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Checksum-SHA256", f.SHA256)
	w.WriteHeader(http.StatusTemporaryRedirect)
	return true
}

// attachment is the Content-Disposition of a download of a file called name: RFC 6266's
// "attachment; filename=…", with, for a name that is not plain ASCII, an ASCII fallback in filename
// and the exact name in filename* (RFC 5987's UTF-8 percent-encoding), which every current browser and
// curl's -J prefer.
func attachment(name string) string {
	ascii := true
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c >= 0x7f {
			ascii = false
			break
		}
	}
	if ascii {
		if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
			return v
		}
	}
	fallback := []rune(name)
	for i, c := range fallback {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			fallback[i] = '_'
		}
	}
	var enc strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			enc.WriteByte(c)
		} else {
			fmt.Fprintf(&enc, "%%%02X", c)
		}
	}
	return `attachment; filename="` + string(fallback) + `"; filename*=UTF-8''` + enc.String()
}

// normalizeRangeHeader replaces r's Range header with its normalized form (normalizeRange), which
// http.ServeContent serves as RFC 9110 says, or answers 416 itself, in the route's error body, when the
// Range cannot be served and no precondition could change that. With preconditions present it leaves
// the 416 to ServeContent, which evaluates them first (a matching If-None-Match is a 304 whatever the
// Range). It reports whether serving goes on.
func (a *Service) normalizeRangeHeader(w http.ResponseWriter, r *http.Request, f *metadata.File, fail httpapi.ErrorWriter) bool {
	header := r.Header.Get("Range")
	if header == "" || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return true
	}
	value, outcome := normalizeRange(header, f.Size)
	switch outcome {
	case rangeIgnored:
		r.Header.Del("Range")
	case rangeSatisfiable:
		r.Header.Set("Range", value)
	case rangeUnsatisfiable:
		for _, p := range []string{"If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
			if r.Header.Get(p) != "" {
				// A range starting at the size is one ServeContent answers 416 for, with Content-Range.
				r.Header.Set("Range", "bytes="+strconv.FormatInt(f.Size, 10)+"-")
				return true
			}
		}
		w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(f.Size, 10))
		fail(w, r, a.log, fmt.Errorf("%w: the Range header asks for no byte within the file's %d bytes, is malformed, "+
			"or asks for more than %d ranges", backends.ErrInvalidRange, f.Size, maxRanges))
		return false
	}
	return true
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
func (a *Service) serveWhole(w http.ResponseWriter, r *http.Request, backend backends.Backend, f *metadata.File, fail httpapi.ErrorWriter) {
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
