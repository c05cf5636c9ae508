package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/metadata"
)

// backendInst is one opened backend. A config reload keeps an instance whose spec did not change, so an
// instance can belong to several backendSets at once (the current one and older ones whose requests are
// still running); users counts them, and the last set to let go closes it.
type backendInst struct {
	spec backendSpec
	b    *backends.CheckedBackend // the backend, wrapped where it was opened: all anything else sees
	// staging is the raw backend's own staging area (localfs), for fsck; nil when it keeps none.
	staging maintenance.StagingSweeper
	users   int // guarded by instMu
}

var instMu sync.Mutex

// backendSet is the opened backends and routes of one configuration.
type backendSet struct {
	insts   map[string]*backendInst
	order   []string // config order, for listings
	def     string
	storage *artifact.StaticStorage
	log     *slog.Logger
}

// openBackend builds a backend from its spec, launching a plugin or calling an in-process factory, and
// wraps it in backends.Checked right here, so that nothing in cmd ever holds an unwrapped backend.
// Errors name the backend; an unknown type wraps ErrConfig.
// metrics (nil: none) counts its traffic and failures.
func openBackend(ctx context.Context, spec backendSpec, metrics *serveMetrics, log *slog.Logger) (*backendInst, error) {
	redirect, factoryConfig, err := spec.redirect()
	if err != nil {
		return nil, fmt.Errorf("backend %q: %w", spec.Name, err)
	}
	var raw backends.Backend
	if spec.Plugin != nil {
		// The plugin outlives the command's context (a SIGTERM cancels that first): Close stops it.
		b, err := launchPlugin(context.WithoutCancel(ctx), spec.Name, *spec.Plugin, spec.Config.raw(), log)
		if err != nil {
			return nil, fmt.Errorf("backend %q: plugin %s: %w", spec.Name, spec.Plugin.Path, err)
		}
		raw = b
	} else {
		f, ok := inProcess[spec.Type]
		if !ok {
			return nil, fmt.Errorf("%w: backend %q: unknown type %q (have %v)", ErrConfig, spec.Name, spec.Type, backendTypes())
		}
		b, err := f(ctx, factoryConfig)
		if err != nil {
			return nil, fmt.Errorf("backend %q (%s): %w", spec.Name, spec.Type, err)
		}
		raw = b
	}
	var opts []backends.CheckedOption
	if metrics != nil {
		metrics.opened(spec.Name)
		opts = append(opts, backends.WithObserver(metrics))
	}
	if redirect != nil {
		opts = append(opts, backends.WithDownloadRedirect(*redirect))
	}
	in := &backendInst{spec: spec, b: backends.Checked(spec.Name, raw, opts...), users: 1}
	in.staging, _ = raw.(maintenance.StagingSweeper)
	return in, nil
}

// openBackendSet opens specs and builds their Storage. Instances of prev (nil: none) whose spec is
// unchanged are shared rather than opened twice: reopening a plugin on every SIGHUP would restart its
// process, and two localfs instances on one root would not coordinate their multipart uploads. On error
// nothing stays open that was not open before. metrics (nil: none) counts the new backends' traffic.
func openBackendSet(ctx context.Context, specs []backendSpec, def string, routes []artifact.Route, prev *backendSet, metrics *serveMetrics, log *slog.Logger) (*backendSet, error) {
	s := &backendSet{insts: map[string]*backendInst{}, def: def, log: log}
	for _, spec := range specs {
		if old := prev.inst(spec.Name); old != nil && old.spec.identity() == spec.identity() {
			instMu.Lock()
			old.users++
			instMu.Unlock()
			s.insts[spec.Name], s.order = old, append(s.order, spec.Name)
			continue
		}
		in, err := openBackend(ctx, spec, metrics, log)
		if err != nil {
			s.release()
			return nil, err
		}
		s.insts[spec.Name], s.order = in, append(s.order, spec.Name)
	}
	bs := make(map[string]*backends.CheckedBackend, len(s.insts))
	for name, in := range s.insts {
		bs[name] = in.b
	}
	st, err := artifact.NewStaticStorage(bs, def, routes)
	if err != nil {
		s.release()
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s.storage = st
	return s, nil
}

// inst returns the named instance, nil for an unknown name or a nil set.
func (s *backendSet) inst(name string) *backendInst {
	if s == nil {
		return nil
	}
	return s.insts[name]
}

// maintenance is the set with store, as the maintenance commands work on it.
func (s *backendSet) maintenance(store metadata.Store) maintenance.Storage {
	ms := maintenance.Storage{Store: store, Default: s.def}
	for _, name := range s.order {
		ms.Backends = append(ms.Backends, s.insts[name].maintenance())
	}
	return ms
}

// maintenance is the instance as the maintenance commands see it.
func (in *backendInst) maintenance() maintenance.Backend {
	return maintenance.Backend{Name: in.spec.Name, Blobs: in.b, Staging: in.staging}
}

// retain takes one more hold on every backend of the set, for work outside requests (the sweeper)
// that must not see them closed by a config reload meanwhile, and returns the set's backends as the
// maintenance library sees them and the function that drops the hold (closing backends no set uses
// any more). The set must still be current, or at least not released, when retain is called.
func (s *backendSet) retain(store metadata.Store) (maintenance.Storage, func()) {
	held := make([]*backendInst, 0, len(s.insts))
	instMu.Lock()
	for _, name := range s.order {
		in := s.insts[name]
		in.users++
		held = append(held, in)
	}
	instMu.Unlock()
	ms := s.maintenance(store)
	return ms, func() {
		for _, in := range held {
			instMu.Lock()
			in.users--
			last := in.users == 0
			instMu.Unlock()
			if last {
				if err := in.b.Close(); err != nil && s.log != nil {
					s.log.Warn("closing backend", "backend", in.spec.Name, "err", err)
				}
			}
		}
	}
}

// release drops the set's hold on its instances and closes those no other set uses.
func (s *backendSet) release() error {
	var errs []error
	for _, name := range s.sortedNames() {
		in := s.insts[name]
		instMu.Lock()
		in.users--
		last := in.users == 0
		instMu.Unlock()
		if last {
			if err := in.b.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing backend %q: %w", name, err))
			} else if s.log != nil {
				s.log.Debug("closed backend", "backend", name)
			}
		}
	}
	s.insts = nil
	return errors.Join(errs...)
}

func (s *backendSet) sortedNames() []string {
	out := make([]string, 0, len(s.insts))
	for n := range s.insts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
