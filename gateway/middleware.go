package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

// withRecovery turns a panic into a logged 500 rather than a dropped connection.
func withRecovery(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpapi.WriteError(w, r, log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and counts bytes written, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

// ReadFrom passes io.Copy through to the connection, so sendfile still applies behind the recorder.
func (s *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := io.Copy(s.ResponseWriter, r)
	s.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// withAccessLog logs one structured line per request.
func withAccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		log.Info("request", "method", r.Method, "path", r.URL.EscapedPath(), "status", rec.status,
			"bytes_out", rec.bytes, "bytes_in", r.ContentLength, "ms", time.Since(start).Milliseconds(),
			"request_id", httpapi.RequestID(r))
	})
}

// escapedRouting makes the router match on the escaped path, so that a URL-encoded project path
// ("team%2Fvision") or model name stays one segment. Handlers unescape their parameters themselves.
func escapedRouting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		escaped := r.URL.EscapedPath()
		if escaped != r.URL.Path {
			r2 := r.Clone(r.Context())
			u := *r.URL
			u.Path, u.RawPath = escaped, ""
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}
