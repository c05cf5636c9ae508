package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// Readiness timing. A load balancer probes every few seconds from several places: caching the result
// for a second keeps the probes' cost on the store and on object storage constant, and the timeout
// answers well within a probe's own (Kubernetes' default is 1 s, typical ones 2–5 s) with a verdict
// rather than a hang.
const (
	readyCacheFor     = time.Second
	readyCheckTimeout = 2 * time.Second
)

// readiness caches the outcome of the last readiness check.
type readiness struct {
	// mu is held across a check, so that concurrent probes wait for one check and share its outcome.
	mu      sync.Mutex
	at      time.Time
	failed  map[string]string // component -> what failed; empty when ready
	checked bool
}

// NamedStorage is implemented by Storages that can list their backends (artifact.StaticStorage), which
// the readiness check probes each of.
type NamedStorage interface {
	Names() []string
}

// ready answers 200 {"status":"ready"} when the store answers and every backend of the current
// storage answers a Stat, else 503 {"status":"unavailable","failed":{component: reason}}. Reasons are
// coarse because the route is public; the log has the errors.
func (s *Server) ready(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	failed := s.readinessFailures()
	if len(failed) > 0 {
		w.Header().Set("Retry-After", "1")
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failed": failed})
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// readinessFailures returns the components that failed the last check, checking again when that is
// older than readyCacheFor.
func (s *Server) readinessFailures() map[string]string {
	rd := &s.readiness
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.checked && time.Since(rd.at) < readyCacheFor {
		return rd.failed
	}
	// Not the request's context: the outcome is shared, and one prober hanging up must not make it a
	// failure for the others.
	ctx, cancel := context.WithTimeout(context.Background(), readyCheckTimeout)
	defer cancel()
	rd.failed, rd.at, rd.checked = s.checkReadiness(ctx), time.Now(), true
	return rd.failed
}

// checkReadiness reads one project from the store (a missing one is an answer) and Stats an absent
// probe key on every backend at once (backends.ErrNotFound is the healthy answer, as in `mlgate backends
// list`). It returns what failed, logging why.
func (s *Server) checkReadiness(ctx context.Context) map[string]string {
	var (
		mu     sync.Mutex
		failed = map[string]string{}
		wg     sync.WaitGroup
	)
	fail := func(component string, err error) {
		reason := "check failed"
		if errors.Is(err, context.DeadlineExceeded) {
			reason = fmt.Sprintf("no answer within %s", readyCheckTimeout)
		}
		s.log.Warn("readiness check failed", "component", component, "err", err)
		mu.Lock()
		failed[component] = reason
		mu.Unlock()
	}
	wg.Go(func() {
		if _, err := s.store.Project(ctx, metadata.ProjectRef{ID: 1}); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			fail("store", err)
		}
	})
	st := s.CurrentStorage()
	var names []string
	if ns, ok := st.(NamedStorage); ok {
		names = ns.Names()
	}
	sort.Strings(names)
	for _, name := range names {
		b, err := st.Get(name)
		if err != nil {
			fail("backend "+name, err)
			continue
		}
		wg.Go(func() {
			if _, err := b.Stat(ctx, blobkey.Probe()); !errors.Is(err, backends.ErrNotFound) {
				if err == nil {
					err = errors.New("stat of an absent probe key succeeded")
				}
				fail("backend "+name, err)
			}
		})
	}
	wg.Wait()
	return failed
}
