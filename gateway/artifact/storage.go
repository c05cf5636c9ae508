package artifact

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/httpapi"
)

// Storage chooses the backend of each file. New files go where the routes say; existing files are read
// and deleted on the backend their row records, so a later change of routes never hides old files.
type Storage interface {
	// ForUpload returns the backend a new file of model (its slug) in project (its path) is stored on,
	// and that backend's name, which the file's row records.
	ForUpload(project, model string) (name string, b *backends.CheckedBackend)
	// Get returns the backend called name; "" is the default backend (rows written before backends were
	// recorded per file). An unknown name is an error wrapping backends.ErrUnavailable: the file exists
	// but its storage is not configured, which is an operator's problem, not the client's (503).
	Get(name string) (*backends.CheckedBackend, error)
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
// config reload builds a new one and swaps it in (gateway.Server.SwapStorage).
type StaticStorage struct {
	backends map[string]*backends.CheckedBackend
	routes   []Route
	def      string
}

// ErrStorageConfig marks an invalid storage configuration: an unknown default or route backend, or a
// malformed route pattern.
var ErrStorageConfig = errors.New("invalid storage configuration")

// NewStaticStorage builds a StaticStorage. Every backend must already be wrapped with backends.Checked.
// The first route that matches an upload wins; none matching means def. Errors wrap ErrStorageConfig: def
// or a route naming a backend that is not in bs, a malformed pattern, or an empty backend name.
func NewStaticStorage(bs map[string]*backends.CheckedBackend, def string, routes []Route) (*StaticStorage, error) {
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
	m := make(map[string]*backends.CheckedBackend, len(bs))
	for k, v := range bs {
		m[k] = v
	}
	return &StaticStorage{backends: m, routes: append([]Route(nil), routes...), def: def}, nil
}

// Names returns the names of the backends, sorted.
func (s *StaticStorage) Names() []string {
	out := make([]string, 0, len(s.backends))
	for n := range s.backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func names(bs map[string]*backends.CheckedBackend) string {
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
func SingleStorage(name string, b *backends.CheckedBackend) *StaticStorage {
	return &StaticStorage{backends: map[string]*backends.CheckedBackend{name: b}, def: name}
}

// ForUpload implements Storage.
func (s *StaticStorage) ForUpload(project, model string) (string, *backends.CheckedBackend) {
	for _, r := range s.routes {
		if r.matches(project, model) {
			return r.Backend, s.backends[r.Backend]
		}
	}
	return s.def, s.backends[s.def]
}

// Get implements Storage.
func (s *StaticStorage) Get(name string) (*backends.CheckedBackend, error) {
	if name == "" {
		name = s.def
	}
	if b, ok := s.backends[name]; ok {
		return b, nil
	}
	return nil, httpapi.WithClientMessage(backends.ErrUnavailable, "the file is stored on backend %q, which is not configured "+
		"any more; add it back to the config (or migrate its files with mlgate backends migrate)", name)
}

// Default returns the default backend's name.
func (s *StaticStorage) Default() string { return s.def }

// Backends returns the configured backends by name; the map is a copy.
func (s *StaticStorage) Backends() map[string]*backends.CheckedBackend {
	m := make(map[string]*backends.CheckedBackend, len(s.backends))
	for k, v := range s.backends {
		m[k] = v
	}
	return m
}

type storageCtxKey struct{}

// WithStorage records in ctx the Storage a request pinned for its whole duration, so that a config
// reload in the middle of a transfer does not move it to other backends.
func WithStorage(ctx context.Context, st Storage) context.Context {
	return context.WithValue(ctx, storageCtxKey{}, st)
}
