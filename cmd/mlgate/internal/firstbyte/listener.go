// Package firstbyte makes a new connection wait for its first request as long as an idle kept-alive
// connection waits for its next one.
//
// net/http gives the first request of a connection only Server.ReadHeaderTimeout to arrive, counted
// from the accept, while it gives every later request Server.IdleTimeout before its first byte and
// ReadHeaderTimeout after. A client that opens a connection ahead of need (Go's transport dials while
// it waits for a busy pooled connection, and pools the dialed one if it is not used) sees that
// connection closed after ReadHeaderTimeout, and a request written just then fails with a broken pipe
// that the client cannot retry safely. Clients keep their idle timeout below the server's so that they
// never reuse a connection the server closed; a ReadHeaderTimeout of seconds breaks that for new
// connections. The Listener hands a connection to the server only once its first byte has arrived,
// so that both kinds of connection wait alike, and the header timeout bounds only the header.
package firstbyte

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Listener wraps a net.Listener: Accept returns a connection once it is readable (its first byte has
// arrived, or the peer closed it). A connection that stays silent for the idle timeout is closed
// without ever being returned. Connections are returned unwrapped, so that the server keeps their
// optimizations (sendfile, splice, half-close).
type Listener struct {
	inner net.Listener
	idle  time.Duration

	accepted chan acceptResult
	done     chan struct{}
	closing  sync.Once

	mu      sync.Mutex
	waiting map[net.Conn]struct{} // accepted, not yet readable
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// New starts accepting on inner. idle <= 0 waits without limit. The Listener owns inner: Close
// closes it.
func New(inner net.Listener, idle time.Duration) *Listener {
	l := &Listener{
		inner:    inner,
		idle:     idle,
		accepted: make(chan acceptResult),
		done:     make(chan struct{}),
		waiting:  make(map[net.Conn]struct{}),
	}
	go l.acceptLoop()
	return l
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			// The error waits for the server's next Accept, which net/http delays after a temporary
			// error (too many open files), so that this loop does not spin on it.
			select {
			case l.accepted <- acceptResult{err: err}:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !l.track(c) {
			_ = c.Close()
			return
		}
		go l.await(c)
	}
}

// track records c as waiting; false once the Listener is closed.
func (l *Listener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting == nil {
		return false
	}
	l.waiting[c] = struct{}{}
	return true
}

// untrack removes c from the waiting set; false when Close has taken it (and closes it).
func (l *Listener) untrack(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.waiting == nil {
		return false
	}
	delete(l.waiting, c)
	return true
}

func (l *Listener) await(c net.Conn) {
	readable := waitReadable(c, l.idle)
	if !l.untrack(c) {
		return
	}
	if !readable {
		_ = c.Close()
		return
	}
	select {
	case l.accepted <- acceptResult{conn: c}:
	case <-l.done:
		_ = c.Close()
	}
}

// Accept returns the next connection that has something to read. Its error is the inner listener's
// (net/http retries the temporary ones), or net.ErrClosed after Close.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case r := <-l.accepted:
		return r.conn, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the connections that are still silent, as a server's shutdown
// closes its idle ones. Its error is the inner listener's.
func (l *Listener) Close() error {
	l.closing.Do(func() {
		close(l.done)
		l.mu.Lock()
		for c := range l.waiting {
			_ = c.Close()
		}
		l.waiting = nil
		l.mu.Unlock()
	})
	return l.inner.Close()
}

// Addr is the inner listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }
