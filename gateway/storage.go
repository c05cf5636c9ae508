package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"sort"
	"sync/atomic"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

// Storage chooses the backend of each file. New files go where the routes say; existing files are read
// and deleted on the backend their row records, so a later change of routes never hides old files.
type Storage interface {
	// ForUpload returns the backend a new file of model (its slug) in project (its path) is stored on,
	// and that backend's name, which the file's row records.
	ForUpload(project, model string) (name string, b backends.Backend)
	// Get returns the backend called name; "" is the default backend (rows written before backends were
	// recorded per file). An unknown name is an error wrapping backends.ErrUnavailable: the file exists
	// but its storage is not configured, which is an operator's problem, not the client's (503).
	Get(name string) (backends.Backend, error)
}

// Route sends new files of matching projects and models to a backend. Project and Model are path.Match
// patterns over the project path and the model slug. In a pattern "*" stops at "/" ("team/*" matches
// "team/a", not "team/a/b"), but an empty pattern or a lone "*" matches every value.
type Route struct {
	Project string
	Model   string
	Backend string
}

// matches reports whether the route applies. Patterns were validated by NewStaticStorage.
func (r Route) matches(project, model string) bool {
	return glob(r.Project, project) && glob(r.Model, model)
}

func glob(pattern, s string) bool {
	if pattern == "" || pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// StaticStorage is a fixed set of named backends with ordered routes and a default. It is immutable; a
// config reload builds a new one and swaps it in with Server.SwapStorage.
type StaticStorage struct {
	backends map[string]backends.Backend
	routes   []Route
	def      string
}

// ErrStorageConfig marks an invalid storage configuration: an unknown default or route backend, or a
// malformed route pattern.
var ErrStorageConfig = errors.New("invalid storage configuration")

// NewStaticStorage builds a StaticStorage. Every backend must already be wrapped with backends.Checked.
// The first route that matches an upload wins; none matching means def. Errors wrap ErrStorageConfig: def
// or a route naming a backend that is not in bs, a malformed pattern, or an empty backend name.
func NewStaticStorage(bs map[string]backends.Backend, def string, routes []Route) (*StaticStorage, error) {
	for name, b := range bs {
		if name == "" || b == nil {
			return nil, fmt.Errorf("%w: backend %q: empty name or nil backend", ErrStorageConfig, name)
		}
	}
	if _, ok := bs[def]; !ok {
		return nil, fmt.Errorf("%w: default backend %q is not configured (have %s)", ErrStorageConfig, def, names(bs))
	}
	for i, r := range routes {
		if _, ok := bs[r.Backend]; !ok {
			return nil, fmt.Errorf("%w: route %d (project %q, model %q) names backend %q, which is not configured (have %s)",
				ErrStorageConfig, i+1, r.Project, r.Model, r.Backend, names(bs))
		}
		for _, p := range []string{r.Project, r.Model} {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%w: route %d: pattern %q: %v", ErrStorageConfig, i+1, p, err)
			}
		}
	}
	m := make(map[string]backends.Backend, len(bs))
	for k, v := range bs {
		m[k] = v
	}
	return &StaticStorage{backends: m, routes: append([]Route(nil), routes...), def: def}, nil
}

func names(bs map[string]backends.Backend) string {
	out := make([]string, 0, len(bs))
	for n := range bs {
		out = append(out, fmt.Sprintf("%q", n))
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "none"
	}
	return fmt.Sprint(out)
}

// SingleStorage is a StaticStorage of one backend and no routes: every file goes to b, recorded as name.
func SingleStorage(name string, b backends.Backend) *StaticStorage {
	return &StaticStorage{backends: map[string]backends.Backend{name: b}, def: name}
}

// ForUpload implements Storage.
func (s *StaticStorage) ForUpload(project, model string) (string, backends.Backend) {
	for _, r := range s.routes {
		if r.matches(project, model) {
			return r.Backend, s.backends[r.Backend]
		}
	}
	return s.def, s.backends[s.def]
}

// Get implements Storage.
func (s *StaticStorage) Get(name string) (backends.Backend, error) {
	if name == "" {
		name = s.def
	}
	if b, ok := s.backends[name]; ok {
		return b, nil
	}
	return nil, fmt.Errorf("%w: the file is stored on backend %q, which is not configured any more; "+
		"add it back to the config (or migrate its files with mlgate backends migrate)", backends.ErrUnavailable, name)
}

// Default returns the default backend's name.
func (s *StaticStorage) Default() string { return s.def }

// Backends returns the configured backends by name; the map is a copy.
func (s *StaticStorage) Backends() map[string]backends.Backend {
	m := make(map[string]backends.Backend, len(s.backends))
	for k, v := range s.backends {
		m[k] = v
	}
	return m
}

// Storage generations.
//
// A config reload swaps the Storage while transfers run. Every request pins the generation that was
// current when it started (storageGen.acquire in the middleware New installs) and releases it when its
// handler returns, after the last byte was streamed. The old generation's drained channel closes once it
// is no longer current and no request holds it, which is when cmd closes the backends the new
// generation dropped. Reference counting was chosen over a grace period: a 10 GiB download on a slow
// link can outlive any fixed grace, and closing a backend under it would cut the transfer short.

// storageGen is one Storage with a count of its users. refs starts at 1 for being current; it never
// rises again once it reached 0.
type storageGen struct {
	st      Storage
	refs    atomic.Int64
	drained chan struct{}
}

func newStorageGen(st Storage) *storageGen {
	g := &storageGen{st: st, drained: make(chan struct{})}
	g.refs.Store(1)
	return g
}

// tryAcquire takes a reference unless the generation already drained.
func (g *storageGen) tryAcquire() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (g *storageGen) release() {
	if g.refs.Add(-1) == 0 {
		close(g.drained)
	}
}

// acquireStorage pins the current generation. release must be called exactly once.
func (s *Server) acquireStorage() (*storageGen, func()) {
	for {
		g := s.storage.Load()
		if g.tryAcquire() {
			return g, g.release
		}
		// g was swapped out and drained between Load and tryAcquire: the next Load sees its successor.
	}
}

// SwapStorage makes st the Storage of requests that start from now on. Requests already running keep
// the previous Storage; the returned channel is closed once none of them uses it any more, at which point
// the caller may close the backends st does not share with it.
func (s *Server) SwapStorage(st Storage) (previousDrained <-chan struct{}) {
	old := s.storage.Swap(newStorageGen(st))
	old.release()
	return old.drained
}

// CurrentStorage returns the Storage new requests use.
func (s *Server) CurrentStorage() Storage { return s.storage.Load().st }

type storageCtxKey struct{}

// withStorage records the request's pinned Storage in ctx.
func withStorage(ctx context.Context, st Storage) context.Context {
	return context.WithValue(ctx, storageCtxKey{}, st)
}

// pinStorage is the middleware that pins a Storage generation for the whole request.
func (s *Server) pinStorage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, release := s.acquireStorage()
		defer release()
		next.ServeHTTP(w, r.WithContext(withStorage(r.Context(), g.st)))
	})
}

// fileBackend returns the backend holding f.
func fileBackend(st Storage, f *metadata.File) (backends.Backend, error) {
	return st.Get(f.Backend)
}
