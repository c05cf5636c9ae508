package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/localfs"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// recordingBackend reports the result of every Put and PutPart of the plugin side, so that a test can
// wait until the plugin has finished with an upload before checking that nothing was stored.
type recordingBackend struct {
	backends.Backend
	done chan error
}

func (b *recordingBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	info, err := b.Backend.Put(ctx, key, r, size, opts)
	b.done <- err
	return info, err
}

func (b *recordingBackend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (backends.Part, error) {
	p, err := b.Backend.PutPart(ctx, key, uploadID, n, r, size)
	b.done <- err
	return p, err
}

// refusingBackend fails every Put at once, without reading the body.
type refusingBackend struct{ backends.Backend }

func (refusingBackend) Put(context.Context, string, io.Reader, int64, backends.PutOptions) (backends.Info, error) {
	return backends.Info{}, backends.ErrUnsupported
}

// rawBridge is an in-process bridge (real gRPC and a real go-plugin broker over unix sockets) to a
// localfs backend whose uploads are recorded.
type rawBridge struct {
	c    *Client
	grpc *plugin.GRPCClient
	done chan error // results of the plugin side's Put and PutPart
}

func newRawBridge(t *testing.T, wrap func(backends.Backend) backends.Backend) *rawBridge {
	t.Helper()
	done := make(chan error, 16)
	factory := func(context.Context, json.RawMessage) (backends.Backend, error) {
		b, err := localfs.New(t.TempDir(), localfs.WithMinPartSize(1<<10))
		if err != nil {
			return nil, err
		}
		rb := &recordingBackend{Backend: b, done: done}
		if wrap != nil {
			return wrap(rb), nil
		}
		return rb, nil
	}
	client, _ := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{pluginName: &GRPCPlugin{Factory: factory}})
	t.Cleanup(func() { _ = client.Close() })
	d, err := client.Dispense(pluginName)
	if err != nil {
		t.Fatal(err)
	}
	c := d.(*Client)
	if _, err := c.Configure(t.Context(), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if !c.rawPut.Load() {
		t.Fatal("the plugin does not advertise raw uploads")
	}
	allRaw(t)
	return &rawBridge{c: c, grpc: client, done: done}
}

// pluginResult waits for the plugin side's next upload result.
func (b *rawBridge) pluginResult(t *testing.T) error {
	t.Helper()
	select {
	case err := <-b.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin did not finish the upload")
		return nil
	}
}

// notStored checks that key is absent.
func (b *rawBridge) notStored(t *testing.T, key string) {
	t.Helper()
	if _, err := b.c.Stat(context.Background(), key); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("stat after a failed upload: %v; want ErrNotFound", err)
	}
}

// counted runs f and reports how many uploads went raw and in chunks meanwhile.
func counted(f func()) (raw, chunked int64) {
	r0, c0 := rawUploads.Load(), chunkedUploads.Load()
	f()
	return rawUploads.Load() - r0, chunkedUploads.Load() - c0
}

func getSum(t *testing.T, be backends.Backend, key string) string {
	t.Helper()
	rc, _, err := be.Get(t.Context(), key, backends.All)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestRawPutRoundTrip(t *testing.T) {
	b := newRawBridge(t, nil)
	for _, size := range []int64{0, 1, 1 << 20, 1<<20 + 1, 24<<20 + 12345} {
		key := "raw/blob"
		want := patternSum(size)
		var info backends.Info
		var err error
		raw, chunked := counted(func() {
			info, err = b.c.Put(t.Context(), key, &pattern{n: size}, size, backends.PutOptions{SHA256: want})
		})
		if err != nil {
			t.Fatalf("put %d bytes: %v", size, err)
		}
		if perr := b.pluginResult(t); perr != nil {
			t.Fatal(perr)
		}
		if raw != 1 || chunked != 0 {
			t.Fatalf("put %d bytes: %d raw, %d chunked uploads; want one raw", size, raw, chunked)
		}
		if info.Size != size {
			t.Fatalf("put %d bytes: info %+v", size, info)
		}
		if got := getSum(t, b.c, key); got != want {
			t.Fatalf("put %d bytes: sha256 %s, want %s", size, got, want)
		}
	}
	// Unknown size.
	const size = 5<<20 + 7
	if _, err := b.c.Put(t.Context(), "raw/unknown", &pattern{n: size}, -1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if perr := b.pluginResult(t); perr != nil {
		t.Fatal(perr)
	}
	if got := getSum(t, b.c, "raw/unknown"); got != patternSum(size) {
		t.Fatal("unknown-size put changed the bytes")
	}
}

func TestRawPutPart(t *testing.T) {
	b := newRawBridge(t, nil)
	ctx := t.Context()
	const key, partSize = "raw/multi", 3<<20 + 5
	id, err := b.c.CreateMultipart(ctx, key, backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []backends.Part
	var all bytes.Buffer
	for n := 1; n <= 2; n++ {
		data := make([]byte, partSize)
		_, _ = io.ReadFull(&pattern{n: partSize}, data)
		data[0] = byte(n) // parts differ
		all.Write(data)
		var p backends.Part
		raw, _ := counted(func() { p, err = b.c.PutPart(ctx, key, id, n, bytes.NewReader(data), partSize) })
		if err != nil {
			t.Fatal(err)
		}
		if perr := b.pluginResult(t); perr != nil {
			t.Fatal(perr)
		}
		if raw != 1 {
			t.Fatal("the part did not go raw")
		}
		parts = append(parts, p)
	}
	// A part whose body fails is not stored.
	_, err = b.c.PutPart(ctx, key, id, 3, &failingReader{r: &pattern{n: 4 << 20}, after: 2 << 20}, 4<<20)
	if !errors.Is(err, errBody) {
		t.Fatalf("put part with a failing body: %v", err)
	}
	if perr := b.pluginResult(t); perr == nil {
		t.Fatal("the plugin stored a part whose body failed")
	}
	listed, err := b.c.ListParts(ctx, key, id)
	if err != nil || len(listed) != 2 {
		t.Fatalf("parts after a failed part: %+v %v", listed, err)
	}
	if _, err := b.c.CompleteMultipart(ctx, key, id, parts); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(all.Bytes())
	if got := getSum(t, b.c, key); got != hex.EncodeToString(sum[:]) {
		t.Fatal("multipart blob changed")
	}
}

var errBody = errors.New("client went away")

// failingReader fails with errBody after yielding after bytes of r.
type failingReader struct {
	r     io.Reader
	after int64
	n     int64
	hook  func() // called instead of failing, when set
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		if f.hook != nil {
			f.hook()
			f.hook = nil
		} else {
			return 0, errBody
		}
	}
	if int64(len(p)) > f.after-f.n && f.after > f.n {
		p = p[:f.after-f.n]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// TestRawPutBodyError: the host's body fails mid-upload; Put returns that error (not ErrUnavailable)
// and the plugin stores nothing.
func TestRawPutBodyError(t *testing.T) {
	b := newRawBridge(t, nil)
	const key, size = "raw/broken", 16 << 20
	var err error
	raw, _ := counted(func() {
		_, err = b.c.Put(t.Context(), key, &failingReader{r: &pattern{n: size}, after: 5 << 20}, size, backends.PutOptions{})
	})
	if raw != 1 {
		t.Fatal("the upload did not go raw")
	}
	if !errors.Is(err, errBody) || errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("put with a failing body: %v; want the body's error", err)
	}
	if perr := b.pluginResult(t); perr == nil {
		t.Fatal("the plugin's backend stored a failed body")
	}
	b.notStored(t, key)
}

// TestRawPutCancel: the host's context ends mid-upload, raw and in chunks. The body goes on yielding
// bytes after the cancellation and then fails, as a request body torn down with its request does:
// Put must still report the cancellation.
func TestRawPutCancel(t *testing.T) {
	for _, raw := range []bool{true, false} {
		name := map[bool]string{true: "raw", false: "chunks"}[raw]
		t.Run(name, func(t *testing.T) {
			b := newRawBridge(t, nil)
			if !raw {
				useRawPut = false
				t.Cleanup(func() { useRawPut = true })
			}
			const key, size = "raw/cancelled", 16 << 20
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var err error
			rawN, chunkedN := counted(func() {
				_, err = b.c.Put(ctx, key, &failingReader{r: &pattern{n: size}, after: 3 << 20, hook: cancel}, size, backends.PutOptions{})
			})
			if raw && rawN != 1 || !raw && chunkedN != 1 {
				t.Fatalf("%d raw, %d chunked uploads; want one %s", rawN, chunkedN, name)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("put with a cancelled context: %v", err)
			}
			if perr := b.pluginResult(t); perr == nil {
				t.Fatal("the plugin's backend stored a cancelled body")
			}
			b.notStored(t, key)
		})
	}
}

// TestRawSendCancelled pins what TestRawPutCancel sees only when scheduling allows: both senders stop
// at a cancellation before reading on, even when nothing else would stop them (a writer and a send
// that never fail, where a bridge's raw connection would be closed on cancellation).
func TestRawSendCancelled(t *testing.T) {
	senders := map[string]func(context.Context, io.Reader) error{
		"raw": func(ctx context.Context, r io.Reader) error {
			_, readErr, writeErr := copyRaw(ctx, io.Discard, r)
			return errors.Join(readErr, writeErr)
		},
		"chunks": func(ctx context.Context, r io.Reader) error {
			readErr, sendErr := sendChunks(ctx, r, chunkSize, func([]byte) error { return nil })
			return errors.Join(readErr, sendErr)
		},
	}
	for name, send := range senders {
		ctx, cancel := context.WithCancel(t.Context())
		err := send(ctx, &failingReader{r: &pattern{n: 8 << 20}, after: 3 << 20, hook: cancel})
		cancel()
		if !errors.Is(err, context.Canceled) || errors.Is(err, errBody) {
			t.Errorf("%s: a body cancelled mid-copy: %v; want context.Canceled", name, err)
		}
	}
}

func TestRawPutSizeMismatch(t *testing.T) {
	b := newRawBridge(t, nil)
	for _, tc := range []struct{ declared, actual int64 }{{1 << 20, 2 << 20}, {2 << 20, 1 << 20}, {0, 1}, {1, 0}} {
		var err error
		raw, _ := counted(func() {
			_, err = b.c.Put(t.Context(), "raw/mismatch", &pattern{n: tc.actual}, tc.declared, backends.PutOptions{})
		})
		if !errors.Is(err, backends.ErrSizeMismatch) {
			t.Fatalf("declared %d, sent %d: %v; want ErrSizeMismatch", tc.declared, tc.actual, err)
		}
		if raw != 1 {
			t.Fatal("the upload did not go raw")
		}
		_ = b.pluginResult(t)
		b.notStored(t, "raw/mismatch")
	}
}

// TestRawPutRefused: a backend that fails before reading the body; the host, writing a large body,
// gets the backend's error, not a broken connection.
func TestRawPutRefused(t *testing.T) {
	b := newRawBridge(t, func(be backends.Backend) backends.Backend { return refusingBackend{be} })
	const size = 32 << 20
	done := make(chan error, 1)
	go func() {
		_, err := b.c.Put(t.Context(), "raw/refused", &pattern{n: size}, size, backends.PutOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, backends.ErrUnsupported) || errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("put to a refusing backend: %v; want ErrUnsupported", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("put to a refusing backend hangs")
	}
}

// TestRawPutFallback: uploads go in chunks, and work, when the plugin cannot connect, when the host
// does not ask, and when the plugin does not advertise raw uploads (an older plugin).
func TestRawPutFallback(t *testing.T) {
	cases := map[string]func(*rawBridge) (restore func()){
		"plugin cannot dial": func(*rawBridge) func() {
			dialRawPut = false
			return func() { dialRawPut = true }
		},
		"host does not ask": func(*rawBridge) func() {
			useRawPut = false
			return func() { useRawPut = true }
		},
		"older plugin": func(b *rawBridge) func() {
			b.c.rawPut.Store(false)
			return func() {}
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			b := newRawBridge(t, nil)
			defer setup(b)()
			const size = 9<<20 + 3
			want := patternSum(size)
			var err error
			raw, chunked := counted(func() {
				_, err = b.c.Put(t.Context(), "fb/blob", &pattern{n: size}, size, backends.PutOptions{SHA256: want})
			})
			if err != nil {
				t.Fatal(err)
			}
			if perr := b.pluginResult(t); perr != nil {
				t.Fatal(perr)
			}
			if raw != 0 || chunked != 1 {
				t.Fatalf("%d raw, %d chunked uploads; want one chunked", raw, chunked)
			}
			if got := getSum(t, b.c, "fb/blob"); got != want {
				t.Fatal("sha256 changed")
			}
			// A failing body still stores nothing.
			_, err = b.c.Put(t.Context(), "fb/broken", &failingReader{r: &pattern{n: size}, after: 3 << 20}, size, backends.PutOptions{})
			if !errors.Is(err, errBody) {
				t.Fatalf("failing body: %v", err)
			}
			if perr := b.pluginResult(t); perr == nil {
				t.Fatal("stored a failed body")
			}
			b.notStored(t, "fb/broken")
		})
	}
}

// TestBridgeConformanceFallback runs the suite with uploads in chunks because the plugin answers
// "chunks" (its dial failed).
func TestBridgeConformanceFallback(t *testing.T) {
	dialRawPut = false
	t.Cleanup(func() { dialRawPut = true })
	allRaw(t) // would be, but for the plugin
	checkUploads(t, false, true)
	backendtest.Run(t, func(t *testing.T) backends.Backend { return newBridge(t, smallPartMemory) })
}

// checkUploads makes t fail unless it made raw uploads exactly when raw is set and chunked ones
// exactly when chunked is, counted when t ends (after its parallel subtests). Tests using it must not
// run in parallel with other uploads.
func checkUploads(t *testing.T, raw, chunked bool) {
	r0, c0 := rawUploads.Load(), chunkedUploads.Load()
	t.Cleanup(func() {
		r, c := rawUploads.Load()-r0, chunkedUploads.Load()-c0
		if raw != (r > 0) || chunked != (c > 0) {
			t.Errorf("%d raw and %d chunked uploads; want raw ones: %v, chunked ones: %v", r, c, raw, chunked)
		}
	})
}

// allRaw makes the host ask for raw uploads of every size until t ends, so that the edge cases of
// small bodies (0 bytes, one byte too many) cross the raw path too.
func allRaw(t *testing.T) {
	rawPutMinSize = 0
	t.Cleanup(func() { rawPutMinSize = 1 << 20 })
}

// TestRawPutMinSize: small bodies of a known size go in chunks, large and unknown ones raw.
func TestRawPutMinSize(t *testing.T) {
	b := newRawBridge(t, nil)
	rawPutMinSize = 1 << 20 // as in production
	for _, tc := range []struct {
		size, declared int64
		raw            bool
	}{{0, 0, false}, {1 << 10, 1 << 10, false}, {1<<20 - 1, 1<<20 - 1, false}, {1 << 20, 1 << 20, true}, {1 << 10, -1, true}} {
		raw, chunked := counted(func() {
			if _, err := b.c.Put(t.Context(), "min/x", &pattern{n: tc.size}, tc.declared, backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		})
		_ = b.pluginResult(t)
		if tc.raw != (raw == 1) || tc.raw == (chunked == 1) {
			t.Errorf("%d bytes (declared %d): %d raw, %d chunked uploads; want raw=%v", tc.size, tc.declared, raw, chunked, tc.raw)
		}
	}
}

// startRawPut starts a raw Put by hand, as a misbehaving or dying host would, and returns the call and
// the plugin's raw connection.
func startRawPut(t *testing.T, ctx context.Context, c *Client, key string, size int64) (grpc.ClientStreamingClient[pb.PutRequest, pb.Info], net.Conn) {
	t.Helper()
	id := c.broker.NextId()
	ln, err := c.broker.Accept(id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.c.Put(ctx, streamCallOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: key, Size: size, BrokerId: id}}}); err != nil {
		t.Fatal(err)
	}
	md, err := st.Header()
	if err != nil || len(md.Get(putBodyKey)) != 1 || md.Get(putBodyKey)[0] != putBodyRaw {
		t.Fatalf("answer to a raw put: %v %v", md, err)
	}
	conn, err := acceptRaw(ctx, ln)
	if err != nil {
		t.Fatal(err)
	}
	return st, conn
}

// TestRawPutEndRules: the plugin takes a raw body as complete only with a PutEnd that matches what
// arrived; any other end of the body stores nothing.
func TestRawPutEndRules(t *testing.T) {
	const key, size = "raw/rules", 3 << 20
	body := func(t *testing.T, conn net.Conn, n int64) {
		t.Helper()
		if _, err := io.Copy(conn, &pattern{n: n}); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
	}
	end := func(n int64) *pb.PutRequest { return &pb.PutRequest{Msg: &pb.PutRequest_End{End: &pb.PutEnd{Size: n}}} }
	cases := []struct {
		name   string
		finish func(t *testing.T, b *rawBridge, st grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, cancel func())
		stored bool
	}{
		{"matching end", func(t *testing.T, _ *rawBridge, st grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, _ func()) {
			body(t, conn, size)
			_ = st.Send(end(size))
			if _, err := st.CloseAndRecv(); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"cancelled after the bytes", func(t *testing.T, _ *rawBridge, _ grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, cancel func()) {
			body(t, conn, size)
			cancel()
		}, false},
		{"cancelled midway", func(t *testing.T, _ *rawBridge, _ grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, cancel func()) {
			if _, err := io.Copy(conn, &pattern{n: size / 2}); err != nil {
				t.Fatal(err)
			}
			cancel() // the connection stays open: the plugin must not wait on it
		}, false},
		{"closed without an end", func(t *testing.T, _ *rawBridge, st grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, _ func()) {
			body(t, conn, size)
			if _, err := st.CloseAndRecv(); err == nil {
				t.Fatal("a body without an end was stored")
			}
		}, false},
		{"end disagrees", func(t *testing.T, _ *rawBridge, st grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, _ func()) {
			body(t, conn, size-1) // a byte got lost
			_ = st.Send(end(size))
			if _, err := st.CloseAndRecv(); err == nil {
				t.Fatal("a body whose end disagrees was stored")
			}
		}, false},
		{"chunk after raw bytes", func(t *testing.T, _ *rawBridge, st grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, _ func()) {
			body(t, conn, size-1)
			_ = st.Send(&pb.PutRequest{Msg: &pb.PutRequest_Chunk{Chunk: []byte{0}}})
			_ = st.Send(end(size))
			if _, err := st.CloseAndRecv(); err == nil {
				t.Fatal("a raw body with a chunk was stored")
			}
		}, false},
		{"host dies", func(t *testing.T, b *rawBridge, _ grpc.ClientStreamingClient[pb.PutRequest, pb.Info], conn net.Conn, _ func()) {
			if _, err := io.Copy(conn, &pattern{n: size / 2}); err != nil {
				t.Fatal(err)
			}
			// As when the process dies: both its sockets close, the raw one cleanly.
			_ = conn.Close()
			_ = b.grpc.Conn.Close()
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newRawBridge(t, nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			st, conn := startRawPut(t, ctx, b.c, key, size)
			defer conn.Close()
			tc.finish(t, b, st, conn, cancel)
			perr := b.pluginResult(t)
			if tc.stored != (perr == nil) {
				t.Fatalf("plugin's put: %v; want stored=%v", perr, tc.stored)
			}
			if tc.stored || tc.name == "host dies" {
				return // the host is gone: nothing to ask; the backend's error is the check
			}
			b.notStored(t, key)
		})
	}
}

// TestRawPutAnswerThenChunks: a host that got "raw" but sends chunks without accepting the connection
// (its listener closed) fails the upload; the plugin neither hangs on the connection nor stores.
func TestRawPutAnswerThenChunks(t *testing.T) {
	b := newRawBridge(t, nil)
	id := b.c.broker.NextId()
	ln, err := b.c.broker.Accept(id)
	if err != nil {
		t.Fatal(err)
	}
	st, err := b.c.c.Put(t.Context(), streamCallOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{Key: "raw/x", Size: 1, BrokerId: id}}}); err != nil {
		t.Fatal(err)
	}
	if md, err := st.Header(); err != nil || md.Get(putBodyKey)[0] != putBodyRaw {
		t.Fatalf("answer: %v %v", md, err)
	}
	_ = ln.Close() // the plugin's queued connection is reset
	_ = st.Send(&pb.PutRequest{Msg: &pb.PutRequest_Chunk{Chunk: []byte{1}}})
	done := make(chan error, 1)
	go func() { _, err := st.CloseAndRecv(); done <- err }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("hangs")
	}
	if err == nil {
		t.Fatal("chunks after a raw answer were stored")
	}
	t.Log(err)
	if perr := b.pluginResult(t); perr == nil {
		t.Fatal("stored")
	}
	b.notStored(t, "raw/x")
}
