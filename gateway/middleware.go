package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
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

// statusRecorder remembers the status, counts bytes written and notes a failed write, for the access
// log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	failed bool // a write to the client failed: it did not get the whole response
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
	s.failed = s.failed || (err != nil && !errors.Is(err, http.ErrBodyNotAllowed))
	return n, err
}

// ReadFrom passes io.Copy through to the connection, so sendfile still applies behind the recorder.
func (s *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := io.Copy(s.ResponseWriter, r)
	s.bytes += n
	s.failed = s.failed || err != nil
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (flush, deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// statusNoResponse is what the access log shows for a request that got no response at all: nginx's
// "client closed request", which is also the status of MLflow's CANCELLED.
const statusNoResponse = 499

// withAccessLog logs one structured line per request, saying what the client really got: a request
// whose response was abandoned (http.ErrAbortHandler) or could not be written whole is logged as
// aborted, with status 499 when no status was sent at all. The line names the route template, never
// the query (a multipart part URL carries its signature there), and the token by its public id.
// Then it tells cfg.Observer.
//
// It also refuses to let net/http answer for a handler that wrote nothing once the client has gone:
// net/http would send an implicit 200, a success for work that may not have been done.
func (s *Server) withAccessLog(next http.Handler) http.Handler {
	log := s.log
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		route := s.table.templateOf(r.Method, r.URL.EscapedPath())
		facts := &httpapi.RequestFacts{}
		r = r.WithContext(httpapi.WithRequestFacts(r.Context(), facts))
		defer func() {
			v := recover() // withRecovery, inside, lets only http.ErrAbortHandler through
			aborted := v != nil || rec.failed
			status, level := rec.status, slog.LevelInfo
			if aborted {
				level = slog.LevelWarn
				if status == 0 {
					status = statusNoResponse
				}
			}
			took := time.Since(start)
			// New fields go last, so that the lines keep the prefix scripts already match.
			attrs := []any{"method", r.Method, "path", r.URL.EscapedPath(), "status", status,
				"bytes_out", rec.bytes, "bytes_in", r.ContentLength, "ms", took.Milliseconds(),
				"request_id", httpapi.RequestID(r), "route", route}
			if facts.TokenID != "" {
				attrs = append(attrs, "token_id", facts.TokenID)
			}
			if aborted {
				attrs = append(attrs, "aborted", true)
			}
			log.Log(r.Context(), level, "request", attrs...)
			if s.cfg.Observer != nil {
				s.cfg.Observer.RequestDone(RequestRecord{Method: r.Method, Route: route, Status: status, Duration: took})
			}
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r)
		if rec.status == 0 && r.Context().Err() != nil {
			panic(http.ErrAbortHandler)
		}
	})
}

// escapedRouting makes the router match on the escaped path, so that a URL-encoded project path
// ("team%2Fvision") or model name stays one segment. Handlers unescape their parameters themselves.
func escapedRouting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		escaped := r.URL.EscapedPath()
		if escaped != r.URL.Path {
			r2 := r.Clone(httpapi.WithEscapedPath(r.Context(), r))
			u := *r.URL
			u.Path, u.RawPath = escaped, ""
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// detachedWorkLimit bounds the work of a request whose client went away after sending all of it: the
// work is finished and answered, but gets this long, not forever. It is far longer than any metadata
// commit, so only work that cannot finish (a stuck backend) meets it.
const detachedWorkLimit = 5 * time.Minute

// errPeerGone ends a request's context detachedWorkLimit after its client went away.
var errPeerGone = errors.New("the client went away and the request's work ran out of time")

// withClientBody gives handlers a request whose context ends while the client is still sending its
// body, or detachedWorkLimit after it went away once the body was whole, and whose body fails with
// httpapi.ErrBodyStalled when no byte arrives for timeout (0: no limit).
//
// net/http cancels a request's context as soon as the connection's read side ends. Once the body is
// whole that says nothing about the client: one that half-closes its connection after sending its
// request (shutdown(SHUT_WR), as netcat and some proxies do) is still waiting for the answer. So work
// whose request has fully arrived is finished and answered even if the peer goes away meanwhile;
// handlers stop when writing the answer fails. A client that goes away in the middle of its body still
// cancels the work, and PrepareError then aborts the response rather than answer it; so does work that
// outlives detachedWorkLimit.
//
// The timeout is one of progress, not of the whole body: a 10 GiB upload on a slow link that keeps
// sending never meets it, while a client that promises a body and stops sending loses its
// connection, its goroutine and its staging file after timeout instead of holding them (and a
// graceful shutdown) for as long as it likes.
func withClientBody(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithCancelCause(context.WithoutCancel(r.Context()))
		defer cancel(nil)
		body := &clientBody{rc: r.Body, ctl: http.NewResponseController(w), timeout: timeout, peer: r.Context(), cancel: cancel}
		body.ended = r.Body == nil || r.Body == http.NoBody
		var (
			limitMu sync.Mutex
			limit   *time.Timer
		)
		stop := context.AfterFunc(r.Context(), func() {
			if !body.hasEnded() {
				cancel(context.Cause(r.Context()))
				return
			}
			limitMu.Lock()
			limit = time.AfterFunc(detachedWorkLimit, func() { cancel(errPeerGone) })
			limitMu.Unlock()
		})
		defer func() {
			stop()
			limitMu.Lock()
			if limit != nil {
				limit.Stop()
			}
			limitMu.Unlock()
		}()
		r2 := r.WithContext(ctx)
		if r.Body != nil {
			r2.Body = body
		}
		next.ServeHTTP(w, r2)
		if timeout > 0 && !body.hasEnded() {
			// net/http reads what is left of a small body to reuse the connection; a stalled client must
			// not hold it (or a graceful shutdown) there either.
			_ = body.ctl.SetReadDeadline(time.Now().Add(timeout))
		}
	})
}

// clientBody is a request body that knows whether it has been read to its end, that keeps a read
// deadline timeout ahead of every read, and that cancels the handler's context when a read finds the
// connection gone.
type clientBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	timeout time.Duration
	peer    context.Context // net/http's context of the request: done once the connection's read side ends
	cancel  context.CancelCauseFunc

	// mu is held across each read, so that the end of the body (io.EOF) is recorded before a
	// cancellation that net/http's background read starts right at that end is looked at.
	mu    sync.Mutex
	ended bool
}

func (b *clientBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return b.rc.Read(p)
	}
	if b.timeout > 0 {
		// No deadline once the body has ended: net/http's background read, which watches the idle
		// connection from then on, would take it for the client hanging up.
		_ = b.ctl.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.ended = true
	case err != nil && b.peer.Err() != nil:
		// net/http ended the request's context in this very read: the client is gone (or stalled) in
		// the middle of its body. Cancelling now, not when the AfterFunc gets to run, makes the handler
		// see it with the error this read returns.
		b.cancel(context.Cause(b.peer))
	}
	if err != nil && err != io.EOF && errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("%w: no byte of the request body arrived for %s", httpapi.ErrBodyStalled, b.timeout)
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

func (b *clientBody) hasEnded() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ended
}
