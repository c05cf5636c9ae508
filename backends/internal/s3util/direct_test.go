package s3util

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// prompt bounds every wait for something that should happen "at once" (a cancellation, a close). It
// is generous on purpose: the tests must not flake on a loaded two-core machine.
const prompt = 5 * time.Second

// testData returns n deterministic pseudo-random bytes; different seeds give different bytes.
func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	c := rand.NewChaCha8([32]byte{'d', 'i', 'r', 'e', 'c', 't', seed})
	_, _ = c.Read(b)
	return b
}

// sameBytes reports a difference between got and want by length and sha256, not by dumping MiBs.
func sameBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x); first difference at %d",
			what, len(got), sha256.Sum256(got), len(want), sha256.Sum256(want), i)
	}
}

// isShort reports whether err is the error of a body shorter than its Content-Length.
func isShort(err error) bool {
	return errors.Is(err, backends.ErrUnavailable) && errors.Is(err, io.ErrUnexpectedEOF)
}

// within runs fn and fails the test when it takes longer than prompt.
func within[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- fn() }()
	select {
	case v := <-ch:
		return v
	case <-time.After(prompt):
		t.Fatalf("%s: still running after %v", what, prompt)
		panic("unreachable")
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// directGet is DirectGet that must succeed; the body is closed at the end of the test.
func directGet(t *testing.T, ctx context.Context, u *url.URL, rng string) (*DirectBody, *http.Response) {
	t.Helper()
	b, resp, err := DirectGet(ctx, u, rng, nil)
	if err != nil {
		t.Fatalf("DirectGet %s (range %q): %v", u, rng, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, resp
}

// --- destinations ---------------------------------------------------------------------------------

// errSetup stands for a sink that could not be set up (already reported with t.Errorf).
var errSetup = errors.New("sink setup failed")

// A sink is a kind of destination of DirectBody.WriteTo. run calls WriteTo once and returns its
// results and the bytes that arrived at the destination. want is the number of bytes the caller
// expects WriteTo to write (the http sink announces it as the response's Content-Length). run may be
// called from a goroutine other than the test's: it reports problems with t.Errorf only.
type sink struct {
	name string
	run  func(t *testing.T, b *DirectBody, want int64) (n int64, got []byte, err error)
}

func sinks() []sink {
	return []sink{
		{"buffer", runBuffer},
		{"plain-writer", runPlain},
		{"file", runFile},
		{"tcp", runTCP},
		{"unix-socketpair", runUnixPair},
		{"unix-listener", runUnixListener},
		{"http-response", runHTTP(false)},
		{"http-response-chunked", runHTTP(true)},
	}
}

// A bytes.Buffer is an io.ReaderFrom: WriteTo hands it an io.LimitedReader of the connection.
func runBuffer(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	var buf bytes.Buffer
	n, err := b.WriteTo(&buf)
	return n, buf.Bytes(), err
}

// A writer that is neither an io.ReaderFrom nor a socket: the buffered copy.
func runPlain(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	var buf bytes.Buffer
	n, err := b.WriteTo(struct{ io.Writer }{&buf})
	return n, buf.Bytes(), err
}

// An *os.File is an io.ReaderFrom that splices from a socket.
func runFile(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	dir, err := os.MkdirTemp("", "s3util-direct")
	if err != nil {
		t.Errorf("file sink: %v", err)
		return 0, nil, errSetup
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, "sink"))
	if err != nil {
		t.Errorf("file sink: %v", err)
		return 0, nil, errSetup
	}
	n, werr := b.WriteTo(f)
	if err := f.Close(); err != nil {
		t.Errorf("file sink: close: %v", err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Errorf("file sink: %v", err)
	}
	return n, got, werr
}

// readAllAsync reads c to its end in a goroutine; the returned function waits for the bytes.
func readAllAsync(t *testing.T, what string, c net.Conn) func() []byte {
	type result struct {
		data []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		data, err := io.ReadAll(c)
		ch <- result{data, err}
	}()
	return func() []byte {
		r := <-ch
		if r.err != nil {
			t.Errorf("%s: reading the destination's other side: %v", what, r.err)
		}
		return r.data
	}
}

// A *net.TCPConn: WriteTo's LimitedReader goes to its ReadFrom, which splices.
func runTCP(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Errorf("tcp sink: %v", err)
		return 0, nil, errSetup
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Errorf("tcp sink: accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Errorf("tcp sink: %v", err)
		return 0, nil, errSetup
	}
	peer, ok := <-accepted
	if !ok {
		_ = c.Close()
		return 0, nil, errSetup
	}
	defer peer.Close()
	wait := readAllAsync(t, "tcp sink", peer)
	tc, ok := c.(*net.TCPConn)
	if !ok {
		t.Errorf("tcp sink: %T is no *net.TCPConn", c)
	}
	n, werr := b.WriteTo(tc)
	_ = tc.Close()
	return n, wait(), werr
}

// socketpair returns the two ends of a connected AF_UNIX stream socket pair as *net.UnixConns.
func socketpair(t *testing.T) (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var ends [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			return nil, nil, err
		}
		uc, ok := c.(*net.UnixConn)
		if !ok {
			return nil, nil, fmt.Errorf("net.FileConn gave a %T", c)
		}
		ends[i] = uc
	}
	return ends[0], ends[1], nil
}

// A *net.UnixConn from socketpair(2), as a plugin's brokered connection.
func runUnixPair(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	w, r, err := socketpair(t)
	if err != nil {
		t.Errorf("unix sink: %v", err)
		return 0, nil, errSetup
	}
	defer r.Close()
	wait := readAllAsync(t, "unix sink", r)
	n, werr := b.WriteTo(w)
	_ = w.Close()
	return n, wait(), werr
}

// A *net.UnixConn dialled to a listening socket in the file system.
func runUnixListener(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	// Not t.TempDir: a socket path must stay under 108 bytes, and test names are long.
	dir, err := os.MkdirTemp("", "s3u")
	if err != nil {
		t.Errorf("unix listener sink: %v", err)
		return 0, nil, errSetup
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		t.Errorf("unix listener sink: %v", err)
		return 0, nil, errSetup
	}
	defer ln.Close()
	accepted := make(chan *net.UnixConn, 1)
	go func() {
		c, err := ln.AcceptUnix()
		if err != nil {
			t.Errorf("unix listener sink: accept: %v", err)
			close(accepted)
			return
		}
		accepted <- c
	}()
	w, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Errorf("unix listener sink: %v", err)
		return 0, nil, errSetup
	}
	r, ok := <-accepted
	if !ok {
		_ = w.Close()
		return 0, nil, errSetup
	}
	defer r.Close()
	wait := readAllAsync(t, "unix listener sink", r)
	n, werr := b.WriteTo(w)
	_ = w.Close()
	return n, wait(), werr
}

// runHTTP is the gateway's case: WriteTo into the http.ResponseWriter of a real server's handler,
// with the Content-Length announced (ReadFrom splices to the client's connection) or without (a
// chunked response, which the ResponseWriter copies).
func runHTTP(chunked bool) func(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
	return func(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
		type result struct {
			n   int64
			err error
		}
		ch := make(chan result, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !chunked {
				w.Header().Set("Content-Length", strconv.FormatInt(want, 10))
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.WriteHeader(http.StatusOK)
			n, err := b.WriteTo(w)
			ch <- result{n, err}
			if err != nil {
				panic(http.ErrAbortHandler)
			}
		}))
		defer srv.Close()
		var got []byte
		resp, err := srv.Client().Get(srv.URL)
		if err == nil {
			// (net/http itself announces the length of a small unannounced body.)
			got, _ = io.ReadAll(resp.Body) // a cut response fails here; the handler's error is what counts
			_ = resp.Body.Close()
		}
		r := <-ch
		return r.n, got, r.err
	}
}

// --- an origin that is a real net/http server --------------------------------------------------------

// origin serves data at any path with http.ServeContent (so Range works) and records the Range
// header of each request.
type origin struct {
	srv    *httptest.Server
	data   []byte
	ranges chan string
}

func newOrigin(t *testing.T, data []byte) *origin {
	o := &origin{data: data, ranges: make(chan string, 1000)}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.ranges <- r.Header.Get("Range")
		w.Header().Set("ETag", `"etag-1"`)
		w.Header().Set("Content-Type", "application/x-test")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(o.data))
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *origin) url(t *testing.T) *url.URL {
	return mustParse(t, o.srv.URL+"/bucket/key?X-Amz-Signature=abc")
}

func (o *origin) lastRange(t *testing.T) string {
	t.Helper()
	select {
	case r := <-o.ranges:
		return r
	default:
		t.Fatal("the origin saw no request")
		return ""
	}
}

// sizes straddle the 16 KiB header buffer: bodies entirely in it, just beyond it and far beyond it.
var sizes = []int{0, 1, 1000, directHeaderBuf - 300, directHeaderBuf, directHeaderBuf + 1, 200_003, 1<<20 + 17}

// readLoop reads b to its end through Read only, with a buffer of bufSize bytes; io.EOF is nil.
func readLoop(b io.Reader, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := b.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 && bufSize > 0 {
			return out, errors.New("Read returned 0, nil")
		}
	}
}

func TestDirectGetRead(t *testing.T) {
	t.Parallel()
	for _, size := range sizes {
		data := testData(size, 1)
		o := newOrigin(t, data)
		for _, bufSize := range []int{777, 64 << 10, 4 << 20} {
			t.Run(fmt.Sprintf("%d/buf%d", size, bufSize), func(t *testing.T) {
				b, resp := directGet(t, t.Context(), o.url(t), "")
				if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(size) {
					t.Errorf("response: status %d, Content-Length %d; want 200, %d", resp.StatusCode, resp.ContentLength, size)
				}
				if resp.Body != http.NoBody {
					t.Errorf("resp.Body is %T, want http.NoBody (the bytes are the DirectBody's)", resp.Body)
				}
				if got := resp.Header.Get("ETag"); got != `"etag-1"` {
					t.Errorf("ETag %q", got)
				}
				if r := o.lastRange(t); r != "" {
					t.Errorf("a whole get sent Range %q", r)
				}
				got, err := readLoop(b, bufSize)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				sameBytes(t, "read", got, data)
				// The end is sticky.
				for range 2 {
					if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
						t.Errorf("read after the end: %d, %v; want 0, EOF", n, err)
					}
				}
				if n, err := b.WriteTo(&bytes.Buffer{}); n != 0 || err != nil {
					t.Errorf("WriteTo after the end: %d, %v; want 0, nil", n, err)
				}
			})
		}
	}
}

func TestDirectGetWriteTo(t *testing.T) {
	t.Parallel()
	for _, size := range sizes {
		data := testData(size, 2)
		o := newOrigin(t, data)
		for _, s := range sinks() {
			t.Run(fmt.Sprintf("%d/%s", size, s.name), func(t *testing.T) {
				b, _ := directGet(t, t.Context(), o.url(t), "")
				n, got, err := s.run(t, b, int64(size))
				if err != nil {
					t.Fatalf("WriteTo: %d, %v", n, err)
				}
				if n != int64(size) {
					t.Errorf("WriteTo returned n = %d, want %d", n, size)
				}
				sameBytes(t, "destination", got, data)
				if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
					t.Errorf("read after WriteTo: %d, %v; want 0, EOF", n, err)
				}
				if n, err := b.WriteTo(&bytes.Buffer{}); n != 0 || err != nil {
					t.Errorf("second WriteTo: %d, %v; want 0, nil", n, err)
				}
			})
		}
	}
}

// A part of the body read with Read, the rest with WriteTo: from within the header buffer's bytes and
// from beyond them.
func TestDirectGetReadThenWriteTo(t *testing.T) {
	t.Parallel()
	const size = 300_017
	data := testData(size, 3)
	o := newOrigin(t, data)
	for _, k := range []int{1, 5000, directHeaderBuf + 5000} {
		for _, s := range sinks() {
			t.Run(fmt.Sprintf("%d/%s", k, s.name), func(t *testing.T) {
				b, _ := directGet(t, t.Context(), o.url(t), "")
				head := make([]byte, k)
				if _, err := io.ReadFull(b, head); err != nil {
					t.Fatalf("read %d: %v", k, err)
				}
				sameBytes(t, "head", head, data[:k])
				n, got, err := s.run(t, b, int64(size-k))
				if err != nil || n != int64(size-k) {
					t.Fatalf("WriteTo: %d, %v; want %d, nil", n, err, size-k)
				}
				sameBytes(t, "rest", got, data[k:])
			})
		}
	}
}

func TestDirectGetRange(t *testing.T) {
	t.Parallel()
	const size = 300_017
	data := testData(size, 4)
	o := newOrigin(t, data)
	for _, c := range []struct {
		header     string
		start, end int // data[start:end]
	}{
		{"bytes=0-0", 0, 1},
		{"bytes=100-199", 100, 200},
		{"bytes=5-", 5, size},
		{"bytes=1000-250000", 1000, 250001},
		{"bytes=-500", size - 500, size},
		{fmt.Sprintf("bytes=%d-%d", size-1, size+100), size - 1, size},
	} {
		want := data[c.start:c.end]
		contentRange := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end-1, size)
		t.Run(c.header+"/read", func(t *testing.T) {
			b, resp := directGet(t, t.Context(), o.url(t), c.header)
			if got := o.lastRange(t); got != c.header {
				t.Errorf("the server received Range %q, want %q", got, c.header)
			}
			if resp.StatusCode != http.StatusPartialContent || resp.ContentLength != int64(len(want)) || resp.Header.Get("Content-Range") != contentRange {
				t.Errorf("response: %d, Content-Length %d, Content-Range %q; want 206, %d, %q",
					resp.StatusCode, resp.ContentLength, resp.Header.Get("Content-Range"), len(want), contentRange)
			}
			got, err := readLoop(b, 32<<10)
			if err != nil {
				t.Fatal(err)
			}
			sameBytes(t, "range", got, want)
		})
		for _, s := range sinks() {
			t.Run(c.header+"/"+s.name, func(t *testing.T) {
				b, resp := directGet(t, t.Context(), o.url(t), c.header)
				if got := o.lastRange(t); got != c.header {
					t.Errorf("the server received Range %q, want %q", got, c.header)
				}
				if resp.StatusCode != http.StatusPartialContent {
					t.Errorf("status %d, want 206", resp.StatusCode)
				}
				n, got, err := s.run(t, b, int64(len(want)))
				if err != nil || n != int64(len(want)) {
					t.Fatalf("WriteTo: %d, %v; want %d, nil", n, err, len(want))
				}
				sameBytes(t, "range", got, want)
			})
		}
	}
}

// An unsatisfiable range is refused by the server: 416, so no direct get.
func TestDirectGetRangeNotSatisfiable(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, testData(100, 5))
	b, resp, err := DirectGet(t.Context(), o.url(t), "bytes=100-", nil)
	if !errors.Is(err, ErrNoDirect) || b != nil || resp != nil {
		t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, ErrNoDirect", b, resp, err)
	}
	if got := o.lastRange(t); got != "bytes=100-" {
		t.Errorf("the server received Range %q", got)
	}
}

// --- a hand-written server ---------------------------------------------------------------------------

// fakeServer accepts connections, reads one request from each and hands the connection to handle,
// then closes it.
type fakeServer struct {
	ln      net.Listener
	url     *url.URL
	reqs    chan seenRequest
	accepts atomic.Int32
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

// seenRequest is a request as the server received it.
type seenRequest struct {
	raw      []byte // the bytes read while parsing the request
	req      *http.Request
	buffered int // bytes that arrived after the request's header
	err      error
}

func newFakeServer(t *testing.T, handle func(c net.Conn, req *http.Request)) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, url: mustParse(t, "http://"+ln.Addr().String()+"/bucket/key"), reqs: make(chan seenRequest, 100)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepts.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				var raw bytes.Buffer
				br := bufio.NewReader(io.TeeReader(c, &raw))
				_ = c.SetReadDeadline(time.Now().Add(prompt))
				req, err := http.ReadRequest(br)
				_ = c.SetReadDeadline(time.Time{})
				seen := seenRequest{req: req, err: err, buffered: br.Buffered()}
				seen.raw = append([]byte(nil), raw.Bytes()...)
				s.reqs <- seen
				if err != nil {
					return
				}
				handle(c, req)
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) request(t *testing.T) seenRequest {
	t.Helper()
	select {
	case r := <-s.reqs:
		if r.err != nil {
			t.Fatalf("the server could not read the request: %v (%q)", r.err, r.raw)
		}
		return r
	case <-time.After(prompt):
		t.Fatal("the server received no request")
		return seenRequest{}
	}
}

// awaitClose reads c until the client closes it and returns the error that ended the read (nil for
// EOF; a reset is also a close, when the client had unread bytes).
func awaitClose(c net.Conn) error {
	_, err := io.Copy(io.Discard, c)
	return err
}

// write writes the parts to c in one write.
func write(c net.Conn, parts ...[]byte) {
	_, _ = c.Write(bytes.Join(parts, nil))
}

func header(format string, args ...any) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", "\r\n"))
}

// assertNoDial checks that nobody connected to ln (a dial would be in the accept queue already, so a
// short wait suffices).
func assertNoDial(t *testing.T, ln net.Listener) {
	t.Helper()
	tl := ln.(*net.TCPListener)
	_ = tl.SetDeadline(time.Now().Add(100 * time.Millisecond))
	c, err := tl.Accept()
	if err == nil {
		_ = c.Close()
		t.Error("DirectGet connected to the server")
		return
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("accept: %v", err)
	}
}

// The request is a plain GET of the URL's path and query with "Connection: close", the Range asked
// for, and no body.
func TestDirectGetRequest(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.1 200 OK\nContent-Length: 2\nConnection: close\n\n"), []byte("ok"))
	})
	for _, rng := range []string{"", "bytes=10-20"} {
		t.Run("range="+rng, func(t *testing.T) {
			u := *s.url
			u.Path = "/bucket/a key/b+c"
			u.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ak%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=0123abcd"
			b, _ := directGet(t, t.Context(), &u, rng)
			got, err := readLoop(b, 10)
			if err != nil || string(got) != "ok" {
				t.Errorf("body %q, %v", got, err)
			}
			r := s.request(t)
			wantLine := "GET " + u.RequestURI() + " HTTP/1.1\r\n"
			if !bytes.HasPrefix(r.raw, []byte(wantLine)) {
				t.Errorf("request line: got %q, want %q", bytes.SplitAfter(r.raw, []byte("\n"))[0], wantLine)
			}
			if r.req.Method != http.MethodGet || r.req.URL.Path != u.Path || r.req.URL.RawQuery != u.RawQuery {
				t.Errorf("request: %s %s?%s; want GET %s?%s", r.req.Method, r.req.URL.Path, r.req.URL.RawQuery, u.Path, u.RawQuery)
			}
			if r.req.Host != u.Host {
				t.Errorf("Host %q, want %q", r.req.Host, u.Host)
			}
			if !r.req.Close || r.req.Header.Get("Connection") != "close" {
				t.Errorf("Connection header %q (Close %v), want close", r.req.Header.Get("Connection"), r.req.Close)
			}
			if got := r.req.Header.Get("Range"); got != rng {
				t.Errorf("Range %q, want %q", got, rng)
			}
			if _, ok := r.req.Header["Range"]; rng == "" && ok {
				t.Error("a Range header was sent for a whole get")
			}
			if r.req.ContentLength != 0 || len(r.req.TransferEncoding) != 0 || r.req.Header.Get("Content-Length") != "" {
				t.Errorf("the request has a body: Content-Length %d, Transfer-Encoding %v", r.req.ContentLength, r.req.TransferEncoding)
			}
			if r.buffered != 0 || !bytes.HasSuffix(r.raw, []byte("\r\n\r\n")) {
				t.Errorf("bytes after the request's header: %d buffered, raw request %q", r.buffered, r.raw)
			}
		})
	}
}

// Statuses other than 200 and 206 are left to the SDK, which reports them properly; the connection
// is closed.
func TestDirectGetRefused(t *testing.T) {
	// Not parallel, and without garbage collection: the finalizer of a leaked connection would close
	// it too and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, status := range []int{404, 403, 500, 503, 301, 304, 416, 204} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			closed := make(chan error, 1)
			s := newFakeServer(t, func(c net.Conn, req *http.Request) {
				body := "<Error><Code>NoSuchKey</Code></Error>"
				if status == 204 || status == 304 {
					body = ""
				}
				write(c, header("HTTP/1.1 %d %s\nContent-Type: application/xml\nContent-Length: %d\n\n%s",
					status, http.StatusText(status), len(body), body))
				// No Connection: close, so only the client's close ends this.
				closed <- awaitClose(c)
			})
			b, resp, err := DirectGet(t.Context(), s.url, "", nil)
			if !errors.Is(err, ErrNoDirect) || b != nil || resp != nil {
				t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, ErrNoDirect", b, resp, err)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(status)) {
				t.Errorf("the error does not name the status: %v", err)
			}
			within(t, "the server seeing the connection closed", func() error { return <-closed })
		})
	}
}

// Responses whose end only the connection's close or chunk framing marks are no direct gets, nor are
// broken responses.
func TestDirectGetUnusableResponse(t *testing.T) {
	t.Parallel()
	for name, resp := range map[string][]byte{
		"chunked":                 header("HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n"),
		"chunked-206":             header("HTTP/1.1 206 Partial Content\nContent-Range: bytes 0-4/10\nTransfer-Encoding: chunked\n\n5\nhello\n0\n\n"),
		"no-length-close":         header("HTTP/1.1 200 OK\nConnection: close\n\nhello"),
		"no-length-http10":        header("HTTP/1.0 200 OK\n\nhello"),
		"garbage":                 []byte("hello there\r\n\r\n"),
		"bad-content-length":      header("HTTP/1.1 200 OK\nContent-Length: five\n\nhello"),
		"negative-content-length": header("HTTP/1.1 200 OK\nContent-Length: -5\n\nhello"),
		"nothing":                 nil,
		"half-header":             []byte("HTTP/1.1 200 OK\r\nContent-Len"),
	} {
		t.Run(name, func(t *testing.T) {
			s := newFakeServer(t, func(c net.Conn, req *http.Request) { write(c, resp) })
			b, r, err := DirectGet(t.Context(), s.url, "", nil)
			if !errors.Is(err, ErrNoDirect) || b != nil || r != nil {
				t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, ErrNoDirect", b, r, err)
			}
		})
	}
}

func TestDirectGetNotHTTP(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {})
	for _, scheme := range []string{"https", "ftp", "unix", ""} {
		u := *s.url
		u.Scheme = scheme
		b, r, err := DirectGet(t.Context(), &u, "", nil)
		if err != ErrNoDirect || b != nil || r != nil {
			t.Errorf("%q: %v, %v, %v; want nil, nil, ErrNoDirect", u.String(), b, r, err)
		}
	}
	if n := s.accepts.Load(); n != 0 {
		t.Errorf("the server accepted %d connections", n)
	}
}

// An https URL must not be dialled at all (as plain HTTP it would send the presigned URL in clear).
func TestDirectGetHTTPSNoDial(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Bounded: a dial would otherwise wait for a response header that never comes.
	ctx, cancel := context.WithTimeout(t.Context(), prompt)
	defer cancel()
	b, r, err := DirectGet(ctx, mustParse(t, "https://"+ln.Addr().String()+"/b/k?X-Amz-Signature=s"), "", nil)
	if !errors.Is(err, ErrNoDirect) || b != nil || r != nil {
		t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, ErrNoDirect", b, r, err)
	}
	assertNoDial(t, ln)
}

func TestDirectGetProxy(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	u := mustParse(t, "http://"+ln.Addr().String()+"/b/k?X-Amz-Signature=s")
	var seen []string
	proxy := func(req *http.Request) (*url.URL, error) {
		seen = append(seen, req.URL.String())
		return url.Parse("http://proxy.invalid:3128")
	}
	// Bounded: a dial would otherwise wait for a response header that never comes.
	ctx, cancel := context.WithTimeout(t.Context(), prompt)
	defer cancel()
	b, r, err := DirectGet(ctx, u, "", proxy)
	if !errors.Is(err, ErrNoDirect) || b != nil || r != nil {
		t.Fatalf("a proxied URL: %v, %v, %v; want nil, nil, ErrNoDirect", b, r, err)
	}
	if len(seen) != 1 || seen[0] != u.String() {
		t.Errorf("the proxy function saw %q, want [%q]", seen, u.String())
	}
	failing := func(*http.Request) (*url.URL, error) { return nil, errors.New("bad proxy config") }
	if b, r, err := DirectGet(ctx, u, "", failing); !errors.Is(err, ErrNoDirect) || b != nil || r != nil {
		t.Fatalf("a failing proxy function: %v, %v, %v; want nil, nil, ErrNoDirect", b, r, err)
	}
	assertNoDial(t, ln)

	// A proxy function that says "no proxy" lets the get go direct.
	data := testData(50_000, 6)
	o := newOrigin(t, data)
	calls := 0
	b, _, err = DirectGet(t.Context(), o.url(t), "", func(*http.Request) (*url.URL, error) { calls++; return nil, nil })
	if err != nil {
		t.Fatalf("no proxy: %v", err)
	}
	defer b.Close()
	got, err := readLoop(b, 1<<16)
	if err != nil || calls != 1 {
		t.Fatalf("no proxy: %v, %d calls", err, calls)
	}
	sameBytes(t, "no proxy", got, data)
}

func TestDirectGetConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	b, r, err := DirectGet(t.Context(), mustParse(t, "http://"+addr+"/b/k"), "", nil)
	if !errors.Is(err, ErrNoDirect) || b != nil || r != nil {
		t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, ErrNoDirect", b, r, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a refused connection reported as a context error: %v", err)
	}
}

// A server that accepts the request and never answers: the context ends the wait.
func TestDirectGetNoAnswer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"cancel", "deadline"} {
		t.Run(mode, func(t *testing.T) {
			got := make(chan struct{}, 1)
			closed := make(chan error, 1)
			s := newFakeServer(t, func(c net.Conn, req *http.Request) {
				got <- struct{}{}
				closed <- awaitClose(c)
			})
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			want := context.Canceled
			if mode == "deadline" {
				ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				want = context.DeadlineExceeded
			} else {
				go func() {
					select {
					case <-got:
						cancel()
					case <-time.After(prompt):
					}
				}()
			}
			type result struct {
				b   *DirectBody
				r   *http.Response
				err error
			}
			res := within(t, "DirectGet after the context ended", func() result {
				b, r, err := DirectGet(ctx, s.url, "", nil)
				return result{b, r, err}
			})
			if res.err != want || res.b != nil || res.r != nil {
				t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, %v", res.b, res.r, res.err, want)
			}
			within(t, "the server seeing the connection closed", func() error { return <-closed })
		})
	}
}

func TestDirectGetContextAlreadyDone(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"))
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b, r, err := DirectGet(ctx, s.url, "", nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoDirect) || b != nil || r != nil {
		t.Fatalf("DirectGet: %v, %v, %v; want nil, nil, context.Canceled", b, r, err)
	}
}

// A header larger than the header buffer still parses, and the body that follows it is whole.
func TestDirectGetLargeHeader(t *testing.T) {
	t.Parallel()
	data := testData(100_000, 7)
	big := strings.Repeat("x", directHeaderBuf+4000)
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.1 200 OK\nX-Amz-Meta-Big: %s\nContent-Length: %d\nConnection: close\n\n", big, len(data)), data)
	})
	for _, sk := range append(sinks(), sink{"read", func(t *testing.T, b *DirectBody, want int64) (int64, []byte, error) {
		got, err := readLoop(b, 1000)
		return int64(len(got)), got, err
	}}) {
		t.Run(sk.name, func(t *testing.T) {
			b, resp := directGet(t, t.Context(), s.url, "")
			if resp.Header.Get("X-Amz-Meta-Big") != big {
				t.Errorf("the big header is %d bytes, want %d", len(resp.Header.Get("X-Amz-Meta-Big")), len(big))
			}
			n, got, err := sk.run(t, b, int64(len(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("%d, %v; want %d, nil", n, err, len(data))
			}
			sameBytes(t, "body", got, data)
		})
	}
}

// A server that keeps the connection open after the body (no Connection: close in its response):
// every destination, a Unix socket too, stops at the Content-Length.
func TestDirectGetKeepAliveServer(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1000, 300_000} {
		data := testData(size, 8)
		closed := make(chan error, 100)
		s := newFakeServer(t, func(c net.Conn, req *http.Request) {
			write(c, header("HTTP/1.1 200 OK\nContent-Length: %d\n\n", len(data)), data)
			closed <- awaitClose(c)
		})
		for _, sk := range sinks() {
			t.Run(fmt.Sprintf("%d/%s", size, sk.name), func(t *testing.T) {
				b, resp, err := DirectGet(t.Context(), s.url, "", nil)
				if err != nil {
					t.Fatal(err)
				}
				if resp.Close {
					t.Fatal("the response says Connection: close")
				}
				type result struct {
					n   int64
					got []byte
					err error
				}
				r := within(t, "WriteTo from a server that keeps the connection", func() result {
					n, got, err := sk.run(t, b, int64(size))
					return result{n, got, err}
				})
				if r.err != nil || r.n != int64(size) {
					t.Fatalf("WriteTo: %d, %v; want %d, nil", r.n, r.err, size)
				}
				sameBytes(t, "body", r.got, data)
				if err := b.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
				within(t, "the server seeing the connection closed", func() error { return <-closed })
			})
		}
	}
}

// An HTTP/1.0 response with a Content-Length: its connection closes after the body.
func TestDirectGetHTTP10(t *testing.T) {
	t.Parallel()
	data := testData(200_000, 9)
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.0 200 OK\nContent-Length: %d\n\n", len(data)), data)
	})
	for _, sk := range sinks() {
		t.Run(sk.name, func(t *testing.T) {
			b, resp := directGet(t, t.Context(), s.url, "")
			if !resp.Close {
				t.Error("an HTTP/1.0 response without keep-alive is not marked Close")
			}
			n, got, err := sk.run(t, b, int64(len(data)))
			if err != nil || n != int64(len(data)) {
				t.Fatalf("WriteTo: %d, %v; want %d, nil", n, err, len(data))
			}
			sameBytes(t, "body", got, data)
		})
	}
}

func TestDirectGetEmptyBody(t *testing.T) {
	t.Parallel()
	s := newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.1 200 OK\nContent-Length: 0\nConnection: close\n\n"))
	})
	b, resp := directGet(t, t.Context(), s.url, "")
	if resp.ContentLength != 0 {
		t.Errorf("Content-Length %d", resp.ContentLength)
	}
	if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read: %d, %v; want 0, EOF", n, err)
	}
	for _, sk := range sinks() {
		b, _ := directGet(t, t.Context(), s.url, "")
		if n, got, err := sk.run(t, b, 0); n != 0 || len(got) != 0 || err != nil {
			t.Errorf("%s: WriteTo: %d, %d bytes, %v; want 0, 0, nil", sk.name, n, len(got), err)
		}
	}
}

// A body shorter than its Content-Length fails, whatever reads it, with ErrUnavailable and
// io.ErrUnexpectedEOF, after passing on every byte that came.
func TestDirectGetShortBody(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ length, sent int }{
		{1000, 500},
		{1000, 0},
		{directHeaderBuf + 1000, directHeaderBuf + 999},
		{500_000, 100_000},
		{500_000, 499_999},
	} {
		data := testData(c.length, 10)
		for _, connClose := range []bool{true, false} {
			s := newFakeServer(t, func(cn net.Conn, req *http.Request) {
				h := "HTTP/1.1 200 OK\nContent-Length: %d\n\n"
				if connClose {
					h = "HTTP/1.1 200 OK\nContent-Length: %d\nConnection: close\n\n"
				}
				write(cn, header(h, c.length), data[:c.sent])
			})
			name := fmt.Sprintf("%d-of-%d/close=%v", c.sent, c.length, connClose)
			t.Run(name+"/read", func(t *testing.T) {
				b, _ := directGet(t, t.Context(), s.url, "")
				got, err := readLoop(b, 4096)
				if !isShort(err) {
					t.Errorf("read: %v; want ErrUnavailable and io.ErrUnexpectedEOF", err)
				}
				sameBytes(t, "read", got, data[:c.sent])
				if n, err2 := b.Read(make([]byte, 10)); n != 0 || !isShort(err2) {
					t.Errorf("read again: %d, %v; want the same error", n, err2)
				}
				if n, err2 := b.WriteTo(&bytes.Buffer{}); n != 0 || !isShort(err2) {
					t.Errorf("WriteTo after the failed read: %d, %v; want the same error", n, err2)
				}
			})
			for _, sk := range sinks() {
				t.Run(name+"/"+sk.name, func(t *testing.T) {
					b, _ := directGet(t, t.Context(), s.url, "")
					n, got, err := sk.run(t, b, int64(c.length))
					if !isShort(err) {
						t.Errorf("WriteTo: %v; want ErrUnavailable and io.ErrUnexpectedEOF", err)
					}
					if n != int64(c.sent) {
						t.Errorf("WriteTo returned n = %d, want %d", n, c.sent)
					}
					if !strings.HasPrefix(sk.name, "http") {
						sameBytes(t, "destination", got, data[:c.sent])
					} else if !bytes.Equal(got, data[:len(got)]) {
						t.Errorf("the client got %d bytes that are not the body's", len(got))
					}
					if n, err2 := b.Read(make([]byte, 10)); n != 0 || !isShort(err2) {
						t.Errorf("read after the failed WriteTo: %d, %v; want the same error", n, err2)
					}
				})
			}
		}
	}
}

// A server that sends more than its Content-Length: Read and every bounded destination stop at the
// Content-Length; the splice to a Unix socket, which runs until the server closes, reports the excess.
func TestDirectGetLongBody(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ length, extra int }{
		{1000, 500},
		{300_000, 1},
		{300_000, 70_000},
	} {
		data := testData(c.length+c.extra, 11)
		s := newFakeServer(t, func(cn net.Conn, req *http.Request) {
			write(cn, header("HTTP/1.1 200 OK\nContent-Length: %d\nConnection: close\n\n", c.length), data)
		})
		want := data[:c.length]
		t.Run(fmt.Sprintf("%d+%d/read", c.length, c.extra), func(t *testing.T) {
			b, _ := directGet(t, t.Context(), s.url, "")
			got, err := readLoop(b, 4096)
			if err != nil {
				t.Errorf("read: %v", err)
			}
			sameBytes(t, "read", got, want)
			if n, err := b.Read(make([]byte, 10)); n != 0 || err != io.EOF {
				t.Errorf("read after the end: %d, %v; want 0, EOF", n, err)
			}
		})
		for _, sk := range sinks() {
			t.Run(fmt.Sprintf("%d+%d/%s", c.length, c.extra, sk.name), func(t *testing.T) {
				b, _ := directGet(t, t.Context(), s.url, "")
				n, got, err := sk.run(t, b, int64(c.length))
				unix := strings.HasPrefix(sk.name, "unix")
				switch {
				case err == nil:
					// Success means exactly the body arrived.
					if n != int64(c.length) {
						t.Errorf("WriteTo returned n = %d, want %d", n, c.length)
					}
					sameBytes(t, "destination", got, want)
					if unix && c.length > directHeaderBuf {
						t.Errorf("the excess beyond the Content-Length went unreported")
					}
				case unix:
					if !errors.Is(err, backends.ErrUnavailable) || errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("WriteTo: %v; want ErrUnavailable (excess bytes)", err)
					}
					if !strings.Contains(err.Error(), fmt.Sprintf("%d bytes beyond", c.extra)) {
						t.Errorf("the error does not count the %d excess bytes: %v", c.extra, err)
					}
					if n != int64(len(data)) {
						t.Errorf("WriteTo returned n = %d, want %d (everything the server sent)", n, len(data))
					}
					sameBytes(t, "destination", got, data)
				default:
					t.Errorf("WriteTo: %d, %v; want %d, nil (bounded by the Content-Length)", n, err, c.length)
				}
			})
		}
	}
}

// stallServer sends a header announcing total bytes and the first part of them, then waits until the
// client closes the connection, which it reports on closed.
func stallServer(t *testing.T, data []byte, part int) (s *fakeServer, sent <-chan struct{}, closed <-chan error) {
	sentc := make(chan struct{}, 100)
	closedc := make(chan error, 100)
	s = newFakeServer(t, func(c net.Conn, req *http.Request) {
		write(c, header("HTTP/1.1 200 OK\nContent-Length: %d\nConnection: close\n\n", len(data)), data[:part])
		sentc <- struct{}{}
		closedc <- awaitClose(c)
	})
	return s, sentc, closedc
}

// The context ends in the middle of a body: Read returns its error promptly and the connection is
// closed.
func TestDirectGetCancelMidBodyRead(t *testing.T) {
	t.Parallel()
	for _, part := range []int{1000, 64 << 10} {
		t.Run(strconv.Itoa(part), func(t *testing.T) {
			data := testData(4<<20, 12)
			s, sent, closed := stallServer(t, data, part)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			b, _ := directGet(t, ctx, s.url, "")
			within(t, "the server sending", func() struct{} { return <-sent })
			head := make([]byte, part)
			if _, err := io.ReadFull(b, head); err != nil {
				t.Fatalf("read the part that was sent: %v", err)
			}
			sameBytes(t, "part", head, data[:part])
			time.AfterFunc(50*time.Millisecond, cancel) // most likely while the next Read waits
			type result struct {
				n   int
				err error
			}
			r := within(t, "Read after cancel", func() result {
				n, err := b.Read(make([]byte, 1000))
				return result{n, err}
			})
			if r.n != 0 || !errors.Is(r.err, context.Canceled) || errors.Is(r.err, backends.ErrUnavailable) {
				t.Errorf("read: %d, %v; want 0, context.Canceled", r.n, r.err)
			}
			if n, err := b.Read(make([]byte, 10)); n != 0 || !errors.Is(err, context.Canceled) {
				t.Errorf("read again: %d, %v; want context.Canceled", n, err)
			}
			within(t, "the server seeing the connection closed", func() error { return <-closed })
		})
	}
}

func TestDirectGetCancelMidBodyWriteTo(t *testing.T) {
	t.Parallel()
	const part = 100_000
	data := testData(4<<20, 13)
	for _, sk := range sinks() {
		t.Run(sk.name, func(t *testing.T) {
			s, sent, closed := stallServer(t, data, part)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			b, _ := directGet(t, ctx, s.url, "")
			type result struct {
				n   int64
				got []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				n, got, err := sk.run(t, b, int64(len(data)))
				done <- result{n, got, err}
			}()
			within(t, "the server sending", func() struct{} { return <-sent })
			// A pause, so that the cancellation most likely finds WriteTo waiting for more. Nothing
			// observable says when it waits: the sinks do not report how far the bytes got, and a
			// goroutine parked on a socket shows only in stack dumps, which the transfers of parallel
			// tests fill too. Cancelling earlier or later must pass as well.
			time.Sleep(50 * time.Millisecond)
			cancel()
			var r result
			select {
			case r = <-done:
			case <-time.After(prompt):
				t.Fatalf("WriteTo still running %v after cancel", prompt)
			}
			if !errors.Is(r.err, context.Canceled) || errors.Is(r.err, backends.ErrUnavailable) {
				t.Errorf("WriteTo: %v; want context.Canceled", r.err)
			}
			if r.n > part {
				t.Errorf("WriteTo returned n = %d, more than the %d bytes sent", r.n, part)
			}
			if !bytes.Equal(r.got, data[:len(r.got)]) || len(r.got) > part {
				t.Errorf("the destination got %d bytes that are not the body's first %d", len(r.got), part)
			}
			if n, err := b.Read(make([]byte, 10)); n != 0 || !errors.Is(err, context.Canceled) {
				t.Errorf("read after: %d, %v; want context.Canceled", n, err)
			}
			within(t, "the server seeing the connection closed", func() error { return <-closed })
		})
	}
}

// Close releases the connection: the server sees it closed, and the body fails from then on.
func TestDirectGetClose(t *testing.T) {
	t.Parallel()
	const part = 20_000
	data := testData(1<<20, 14)
	for _, readFirst := range []int{0, 1000, part} {
		t.Run(strconv.Itoa(readFirst), func(t *testing.T) {
			s, sent, closed := stallServer(t, data, part)
			b, _, err := DirectGet(t.Context(), s.url, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			within(t, "the server sending", func() struct{} { return <-sent })
			if readFirst > 0 {
				if _, err := io.ReadFull(b, make([]byte, readFirst)); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			// EOF, or a reset when the client left bytes unread: either way the connection is gone.
			within(t, "the server seeing the connection closed", func() error { return <-closed })
			// Bytes read with the header are not handed out after Close either.
			if n, err := b.Read(make([]byte, 10)); n != 0 || err == nil || err == io.EOF {
				t.Errorf("read after close: %d, %v; want an error", n, err)
			}
			var buf bytes.Buffer
			if n, err := b.WriteTo(&buf); n != 0 || err == nil || buf.Len() != 0 {
				t.Errorf("WriteTo after close: %d, %v, %d bytes; want an error", n, err, buf.Len())
			}
		})
	}
}

// Close may run while a Read or WriteTo is blocked on the connection (go test -race checks it): the
// transfer ends with an error, not a hang or a race.
func TestDirectGetConcurrentClose(t *testing.T) {
	t.Parallel()
	const part = 1000
	for _, how := range []string{"read", "writeto"} {
		t.Run(how, func(t *testing.T) {
			s, sent, _ := stallServer(t, testData(4<<20, 12), part)
			b, _, err := DirectGet(t.Context(), s.url, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			within(t, "the server sending", func() struct{} { return <-sent })
			dst := &discardCounting{}
			done := make(chan error, 1)
			go func() {
				var err error
				if how == "read" {
					_, err = io.Copy(dst, struct{ io.Reader }{b})
				} else {
					_, err = b.WriteTo(dst)
				}
				done <- err
			}()
			// Once every byte the server sent has arrived, the transfer's next read waits on the
			// stalled connection (or is about to): the moment a concurrent Close is meant to hit.
			poll.Until(t, prompt, "the bytes sent to reach the destination", func() bool { return dst.n.Load() == part })
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			if err := within(t, "the transfer ending", func() error { return <-done }); err == nil || err == io.EOF {
				t.Errorf("transfer after a concurrent close: %v; want an error", err)
			}
		})
	}
}

// discardCounting discards what it is given, like io.Discard and with the same methods (so a
// WriteTo into it takes io.Discard's path), and counts the bytes.
type discardCounting struct{ n atomic.Int64 }

func (d *discardCounting) Write(p []byte) (int, error) {
	d.n.Add(int64(len(p)))
	return len(p), nil
}

func (d *discardCounting) ReadFrom(r io.Reader) (int64, error) {
	return io.Discard.(io.ReaderFrom).ReadFrom(readCounting{r, &d.n})
}

type readCounting struct {
	r io.Reader
	n *atomic.Int64
}

func (r readCounting) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	return n, err
}

// Close after the whole body, and a context cancelled after Close, are harmless.
func TestDirectGetCloseAfterEnd(t *testing.T) {
	t.Parallel()
	data := testData(100_000, 15)
	o := newOrigin(t, data)
	ctx, cancel := context.WithCancel(t.Context())
	b, _, err := DirectGet(ctx, o.url(t), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readLoop(b, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	sameBytes(t, "body", got, data)
	if err := b.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	cancel()
	if n, err := b.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Errorf("read after close: %d, %v; want an error", n, err)
	}
}

// A destination's own failure ends WriteTo with an error that carries it.
func TestDirectGetDestinationFails(t *testing.T) {
	t.Parallel()
	data := testData(1<<20, 16)
	o := newOrigin(t, data)
	boom := errors.New("destination broke")
	for _, failAt := range []int{0, 10, directHeaderBuf + 10_000} {
		t.Run(strconv.Itoa(failAt), func(t *testing.T) {
			b, _ := directGet(t, t.Context(), o.url(t), "")
			w := &failingWriter{left: failAt, err: boom}
			n, err := b.WriteTo(w)
			if !errors.Is(err, boom) {
				t.Errorf("WriteTo: %v; want the destination's error", err)
			}
			if n != int64(w.n) || n > int64(failAt) {
				t.Errorf("WriteTo returned n = %d; the destination took %d, failing after %d", n, w.n, failAt)
			}
		})
	}
	// Socket destinations whose reader went away: the splice fails with EPIPE or ECONNRESET.
	for _, kind := range []string{"tcp", "unix"} {
		t.Run(kind+"-peer-gone", func(t *testing.T) {
			w := deadPeer(t, kind)
			b, _ := directGet(t, t.Context(), o.url(t), "")
			type result struct {
				n   int64
				err error
			}
			r := within(t, "WriteTo a connection whose peer is gone", func() result {
				n, err := b.WriteTo(w)
				return result{n, err}
			})
			if !errors.Is(r.err, syscall.EPIPE) && !errors.Is(r.err, syscall.ECONNRESET) {
				t.Errorf("WriteTo: %d, %v; want EPIPE or ECONNRESET", r.n, r.err)
			}
		})
	}
}

// deadPeer returns a connection ("tcp" or "unix") whose peer has closed, and on which a write has
// already failed, so that every further write fails at once.
func deadPeer(t *testing.T, kind string) net.Conn {
	t.Helper()
	var w, r net.Conn
	switch kind {
	case "unix":
		a, b, err := socketpair(t)
		if err != nil {
			t.Fatal(err)
		}
		w, r = a, b
	default:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		w, err = net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if r, err = ln.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = w.Close() })
	_ = r.Close()
	poll.Until(t, prompt, "a write to a "+kind+" connection whose peer closed to fail", func() bool {
		_, err := w.Write([]byte("x"))
		return err != nil
	})
	return w
}

type failingWriter struct {
	left, n int
	err     error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		k := w.left
		w.left, w.n = 0, w.n+k
		return k, w.err
	}
	w.left -= len(p)
	w.n += len(p)
	return len(p), nil
}
