package firstbyte

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const headerTimeout = 100 * time.Millisecond

// serve runs an http.Server with a short ReadHeaderTimeout on ln and returns its address and a count
// of the connections it was handed.
func serve(t *testing.T, ln net.Listener) (string, *atomic.Int64) {
	t.Helper()
	var handed atomic.Int64
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }),
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       time.Minute,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				handed.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), &handed
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// getAfterSilence opens a connection, keeps it silent for longer than the header timeout (the time
// passing is what is tested, so this waits on the clock), then sends a request on it.
func getAfterSilence(t *testing.T, addr string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(4 * headerTimeout)
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status + " " + string(b), err
}

func TestNewConnectionWaitsForItsFirstRequestAsLongAsAnIdleOne(t *testing.T) {
	t.Run("net/http alone closes it after the header timeout", func(t *testing.T) {
		addr, _ := serve(t, listen(t))
		if got, err := getAfterSilence(t, addr); err == nil {
			t.Fatalf("got %q: net/http no longer closes a silent new connection after ReadHeaderTimeout, and firstbyte may be unneeded", got)
		}
	})
	t.Run("through the Listener it is served", func(t *testing.T) {
		addr, _ := serve(t, New(listen(t), time.Minute))
		got, err := getAfterSilence(t, addr)
		if err != nil || got != "200 OK ok" {
			t.Fatalf("got %q, %v; want 200 OK ok", got, err)
		}
	})
}

func TestSilentConnectionIsClosedAfterTheIdleTimeoutWithoutReachingTheServer(t *testing.T) {
	addr, handed := serve(t, New(listen(t), 200*time.Millisecond))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read %d bytes, %v; want EOF once the idle timeout closed the connection", n, err)
	}
	if n := handed.Load(); n != 0 {
		t.Fatalf("the server was handed %d connections; a silent one must not reach it", n)
	}
	// A connection that speaks is served as usual afterwards.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || handed.Load() != 1 {
		t.Fatalf("status %d, %d connections handed; want 200 and 1", resp.StatusCode, handed.Load())
	}
}

func TestPeerThatClosesBeforeSpeakingIsLetGo(t *testing.T) {
	l := New(listen(t), time.Minute)
	addr, _ := serve(t, l)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return waitingCount(l) == 1 })
	_ = c.Close()
	waitFor(t, func() bool { return waitingCount(l) == 0 })
}

func TestCloseClosesTheSilentConnections(t *testing.T) {
	l := New(listen(t), time.Minute)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, func() bool { return waitingCount(l) == 1 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("read after Close: %v; want the connection closed", err)
	}
	if conn, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, %v; want net.ErrClosed", conn, err)
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Fatal("dial after Close succeeded; the inner listener must be closed")
	}
}

func isReset(err error) bool { return err != nil && strings.Contains(err.Error(), "reset") }

func waitingCount(l *Listener) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.waiting)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
