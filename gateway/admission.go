package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/ui"
)

// DefaultMaxConcurrentUploads and DefaultBodyReadTimeout are what mlgate serve runs with unless told
// otherwise; a Config left at zero has no limit.
const (
	DefaultMaxConcurrentUploads = 64
	// DefaultBodyReadTimeout is far above any pause of a client that is still sending, and short enough
	// that a stalled one does not hold a graceful shutdown for long.
	DefaultBodyReadTimeout = 60 * time.Second
)

// SpaceGuard keeps metadata writable when the data directory's filesystem fills up. The gateway tells
// it of every write that found storage full (every 507), and refuses the writes that need new space
// while it says so, which leaves the little room that remains (it may hold some in reserve) to the
// metadata commits of deletes, so that space can be freed through mlgate.
type SpaceGuard interface {
	// Full is called after a request failed for lack of space.
	Full()
	// Refusing returns an error wrapping backends.ErrInsufficientStorage or
	// metadata.ErrInsufficientStorage while writes that need new space are to be refused, else nil.
	Refusing() error
}

// withAdmission refuses, before any byte of the body is read, API writes that need new space while
// cfg.Space refuses them (507), and uploads beyond cfg.MaxConcurrentUploads (429 with Retry-After).
//
// An upload is a request that streams a file body into storage: a PUT on the package routes (ml_models
// and generic) or on mlflow-artifacts (a whole file, or one part of a multipart upload). JSON RPCs,
// downloads, listings and deletes are not uploads.
func (s *Server) withAdmission(next http.Handler) http.Handler {
	var slots chan struct{}
	if s.cfg.MaxConcurrentUploads > 0 {
		slots = make(chan struct{}, s.cfg.MaxConcurrentUploads)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		if ui.IsUIPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		fail := httpapi.WriteError
		if isMLflowPath(path) {
			fail = httpapi.WriteMLflowError
		}
		if space := s.cfg.Space; space != nil {
			r = r.WithContext(httpapi.WithStorageFullHook(r.Context(), space.Full))
			if requestWrites(r.Method, path) && !requestFrees(r.Method, path) {
				if err := space.Refusing(); err != nil {
					fail(w, r, s.log, err)
					drainRefused(w, r)
					return
				}
			}
		}
		if isUpload(r.Method, path) {
			if slots != nil {
				select {
				case slots <- struct{}{}:
					defer func() { <-slots }()
				default:
					fail(w, r, s.log, fmt.Errorf("%w: %d uploads are running, as many as this server takes at once; retry shortly",
						httpapi.ErrTooManyUploads, cap(slots)))
					drainRefused(w, r)
					return
				}
			}
			if obs := s.cfg.Observer; obs != nil {
				obs.UploadsInFlight(1)
				defer obs.UploadsInFlight(-1)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isUpload reports whether a request streams a file body into storage (see withAdmission).
func isUpload(method, escapedPath string) bool {
	if method != http.MethodPut {
		return false
	}
	if _, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow-artifacts/"); ok {
		return true
	}
	rest, ok := strings.CutPrefix(escapedPath, "/api/v4/projects/")
	if !ok {
		return false
	}
	_, rest, _ = strings.Cut(rest, "/")
	return strings.HasPrefix(rest, "packages/ml_models/") || strings.HasPrefix(rest, "packages/generic/")
}

// requestFrees reports whether a write removes something (and so may run on a full disk): a DELETE,
// an MLflow RPC named delete or delete-tag, the abort of a multipart upload.
func requestFrees(method, escapedPath string) bool {
	if method == http.MethodDelete {
		return true
	}
	if method != http.MethodPost {
		return false
	}
	if rest, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow-artifacts/"); ok {
		return strings.HasPrefix(rest, "mpu/abort/")
	}
	rpc, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow/")
	if !ok {
		return false
	}
	rpc = strings.Trim(rpc, "/")
	last := rpc[strings.LastIndexByte(rpc, '/')+1:]
	return last == "delete" || last == "delete-tag"
}

// maxDrainedRefusal is how much of a refused request's body is read and discarded after the refusal.
// Many clients (Python's urllib3 among them, under MLflow's client) send the whole body before they
// read the answer: if the server hangs up on an unread body, such a client sees a broken pipe instead
// of the 429 or 507 it could have acted on. Bodies up to this size are read to their end so that the
// answer arrives; a larger one is cut after it, as net/http would cut it at once.
const maxDrainedRefusal = 64 << 20

// drainRefused sends a refusal already written to w, then reads and discards the request body, up to
// maxDrainedRefusal bytes, at the pace the client sends it (the body read timeout still applies).
func drainRefused(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush()
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxDrainedRefusal))
}
