package gateway

import (
	"net/http"
	"sync/atomic"

	"github.com/mlgate/mlgate/gateway/artifact"
)

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
	st      artifact.Storage
	refs    atomic.Int64
	drained chan struct{}
}

func newStorageGen(st artifact.Storage) *storageGen {
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
func (s *Server) SwapStorage(st artifact.Storage) (previousDrained <-chan struct{}) {
	old := s.storage.Swap(newStorageGen(st))
	old.release()
	return old.drained
}

// CurrentStorage returns the Storage new requests use.
func (s *Server) CurrentStorage() artifact.Storage { return s.storage.Load().st }

// pinStorage is the middleware that pins a Storage generation for the whole request.
func (s *Server) pinStorage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, release := s.acquireStorage()
		defer release()
		next.ServeHTTP(w, r.WithContext(artifact.WithStorage(r.Context(), g.st)))
	})
}
