package plugins

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/mlgate/mlgate/plugins/proto"
)

// Raw uploads: the body of a Put or PutPart goes over a connection brokered like a raw Get's (see
// rawget.go), written and read with plain 1 MiB writes and reads, while the gRPC call keeps the header,
// the end of the body and the final status. The exchange (see also PutHeader.broker_id in
// backend.proto):
//
//  1. The host asks only plugins whose Descriptor says raw_put (a plugin that does not know the field
//     would wait for chunks while the host waited for its answer), and only for bodies of unknown size
//     or of at least rawPutMinSize. It listens on a new broker id and sends the header with that id.
//  2. The plugin dials the id, then answers with the response header putBodyKey: "raw" once it has
//     connected, "chunks" when it could not (no broker, a failed dial). The answer is explicit so that
//     neither side ever guesses the mode from a timeout: a host that gave up waiting for a connection
//     the plugin then made would send chunks to a plugin reading a socket.
//  3. "raw": the host accepts the connection (already queued on its listener), writes the body, closes
//     the connection and sends PutEnd{size: bytes written}. "chunks": the host closes its listener and
//     sends chunks as if it had not asked.
//  4. The plugin's body reader returns io.EOF only after the connection ended cleanly AND PutEnd arrived
//     with the number of bytes read. Backends commit only after their reader returned io.EOF, so a body
//     that ends any other way stores nothing: the host's reader failed (the host cancels the call and
//     never sends PutEnd), the host died (the connection ends, the call fails), bytes went missing
//     (PutEnd disagrees).
//
// Why: a chunked upload costs HTTP/2 framing, flow-control updates, a codec copy and a goroutine
// hand-off per chunk on each side, which on 2 cores bounds throughput. BenchmarkBridge (1 GiB, localfs
// on tmpfs in a real plugin process, 4 runs) measured raw uploads at 1300 MB/s and 1.18 CPU-s/GiB
// (host 0.54 + plugin 0.63) against 980 MB/s and 1.68 (0.78 + 0.90) for 1 MiB chunks; in process,
// 1530 MB/s and 1.06. The host's figures include making the body (about 0.38 CPU-s/GiB).

// Tuning knobs (host side), variables so that tests and the benchmark can change them.
var (
	// useRawPut: ask for raw uploads when the plugin supports them and a broker is available.
	useRawPut = true
	// rawPutMinSize: bodies of a known size below it go in chunks. Setting up the raw connection (a
	// listener, two broker messages, the plugin's gRPC dial, one more round trip) costs about 0.5 ms
	// and 0.8 CPU-ms (host and plugin) per upload; BenchmarkBridgeSmallPut (memory plugin) found raw
	// 4.7x slower at 1 KiB, 1.4x at 256 KiB, even at 1 MiB and ahead from 4 MiB. Unknown sizes go
	// raw, as they may be large.
	rawPutMinSize int64 = 1 << 20
)

// dialRawPut (plugin side) lets tests make the plugin answer "chunks" as if its dial had failed.
var dialRawPut = true

// rawUploads and chunkedUploads count the upload bodies the host sent each way, so that tests can tell
// that the raw path really ran (a silent fallback would pass every functional test).
var rawUploads, chunkedUploads atomic.Int64

// putBodyKey is the response header in which the plugin answers a raw upload request.
const putBodyKey = "mlgate-put-body"

const (
	putBodyRaw    = "raw"
	putBodyChunks = "chunks"
)

// rawAnswerWait bounds how long the host waits for the plugin's answer to a raw upload request; the
// plugin answers after its dial, which takes at most the broker's 5 s for the address plus rawDialWait.
// It also bounds the wait for the status after a failed write to the raw connection.
const rawAnswerWait = 30 * time.Second

// upload is one Put or PutPart call on the host side, seen through the operations sendBody needs.
type upload struct {
	op         string            // "plugin put", for errors
	call       grpc.ClientStream // for the plugin's response header
	sendHeader func(brokerID uint32) error
	sendChunk  func([]byte) error
	sendEnd    func(size int64) error
	status     func() error // CloseAndRecv's error: the call's final status
}

// sendBody sends the header of u and then the body r of size bytes (-1: unknown), raw when the plugin
// agrees, else in chunks. cancel cancels ctx, the context of the call.
//
// It returns nil when the body went out and the caller may CloseAndRecv for the result. Otherwise the
// returned error is final: an error reading r, or ctx's error when ctx ends while r is being read
// (checked before every read), is returned wrapped as is, after cancelling the call so that the
// plugin stores nothing; anything else is the call's status converted by wrapErr (a dead plugin or a
// broken raw connection wraps backends.ErrUnavailable).
func (c *Client) sendBody(ctx context.Context, cancel context.CancelFunc, u upload, r io.Reader, size int64) error {
	var ln net.Listener
	var id uint32
	if size < 0 || size >= rawPutMinSize {
		ln, id = c.rawListener()
	}
	if err := u.sendHeader(id); err != nil {
		if ln != nil {
			_ = ln.Close()
		}
		return closeErrOf(u.op, u.status, err)
	}
	if size >= 0 && size < math.MaxInt64 {
		// One byte more than declared is enough for the plugin to report ErrSizeMismatch; the rest of a
		// lying body need not cross the socket.
		r = io.LimitReader(r, size+1)
	}
	if ln != nil {
		conn, err := awaitRaw(ctx, cancel, u, ln)
		if err != nil {
			return err
		}
		if conn != nil {
			rawUploads.Add(1)
			return sendRaw(ctx, cancel, u, conn, r)
		}
	}
	chunkedUploads.Add(1)
	readErr, sendErr := sendChunks(ctx, r, chunkSize, u.sendChunk)
	if readErr != nil {
		cancel() // the plugin sees a cancelled stream and discards what it received
		return fmt.Errorf("%s: reading body: %w", u.op, readErr)
	}
	if sendErr != nil {
		return closeErrOf(u.op, u.status, sendErr)
	}
	return nil
}

// rawListener listens on a new broker id for a raw upload, or returns (nil, 0) when the upload goes
// in chunks: raw uploads are off, there is no broker, or the plugin does not support them.
func (c *Client) rawListener() (net.Listener, uint32) {
	if !useRawPut || c.broker == nil || !c.rawPut.Load() {
		return nil, 0
	}
	id := c.broker.NextId()
	ln, err := c.broker.Accept(id)
	if err != nil {
		return nil, 0 // chunks will do
	}
	return ln, id
}

// awaitRaw waits for the plugin's answer to a raw upload request and returns the accepted connection,
// or nil when the plugin answered "chunks". It closes ln. An error is final (see sendBody).
func awaitRaw(ctx context.Context, cancel context.CancelFunc, u upload, ln net.Listener) (net.Conn, error) {
	type answer struct {
		md  metadata.MD
		err error
	}
	ch := make(chan answer, 1)
	go func() {
		// Header returns when the plugin sends its response header or the call ends (ctx included).
		md, err := u.call.Header()
		ch <- answer{md, err}
	}()
	t := time.NewTimer(rawAnswerWait)
	defer t.Stop()
	var a answer
	select {
	case a = <-ch:
	case <-t.C:
		cancel()
		<-ch
		_ = ln.Close()
		return nil, wrapErr(u.op, status.Error(codes.Unavailable, "plugin did not answer a raw upload request"))
	}
	v := a.md.Get(putBodyKey)
	switch {
	case len(v) == 1 && v[0] == putBodyRaw:
		conn, err := acceptRaw(ctx, ln)
		if err != nil {
			cancel() // the plugin waits for raw bytes that will not come; a cancelled call stores nothing
			return nil, wrapErr(u.op, err)
		}
		return conn, nil
	case len(v) == 1 && v[0] == putBodyChunks:
		_ = ln.Close()
		return nil, nil
	case a.err != nil || a.md == nil:
		// The call ended before the plugin answered (a plugin that fails before looking at the body,
		// a cancelled ctx): its status says why. (Header returns nil metadata only for an ended call.)
		_ = ln.Close()
		err := u.status()
		if err == nil {
			err = errProtocol("plugin ended an upload before taking its body")
		}
		return nil, wrapErr(u.op, err)
	default:
		cancel()
		_ = ln.Close()
		return nil, wrapErr(u.op, errProtocol("unknown answer %q to a raw upload request", v))
	}
}

// sendRaw copies r to conn, closes it and sends the end of the body (host side). See sendBody for the
// error contract.
func sendRaw(ctx context.Context, cancel context.CancelFunc, u upload, conn net.Conn, r io.Reader) error {
	if sb, ok := conn.(interface{ SetWriteBuffer(int) error }); ok {
		// A send buffer of one copy buffer (Linux doubles it, within net.core.wmem_max) instead of the
		// default 208 KiB lets the host read the next MiB of the body while the plugin stores the last,
		// instead of blocking five times per write. BenchmarkBridge: about +10 % MB/s and -0.05 to
		// -0.2 host CPU-s/GiB, within a noisy 2-core machine. It is kernel memory only while the plugin
		// lags, per upload.
		_ = sb.SetWriteBuffer(rawBufSize)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() }) // unblocks a write to a plugin that stopped reading
	n, readErr, writeErr := copyRaw(ctx, conn, r)
	stop()
	if readErr != nil {
		// Cancel before closing: the plugin, seeing the connection end, waits for PutEnd and gets the
		// cancellation instead, so it stores nothing.
		cancel()
		_ = conn.Close()
		return fmt.Errorf("%s: reading body: %w", u.op, readErr)
	}
	_ = conn.Close()
	if writeErr != nil {
		// The plugin closed its end (its backend failed, or it died) or ctx ended; the call's status says
		// which, and a plugin that is alive sends it at once. The bound is for one that hangs.
		t := time.AfterFunc(rawAnswerWait, cancel)
		err := u.status()
		if !t.Stop() || err == nil {
			err = status.Errorf(codes.Unavailable, "raw upload connection: %v", writeErr)
		}
		return wrapErr(u.op, err)
	}
	if err := u.sendEnd(n); err != nil {
		return closeErrOf(u.op, u.status, err)
	}
	return nil
}

// copyRaw copies r to w in writes of up to rawBufSize bytes and returns the bytes written, the read
// error (nil at the end of r; ctx's error once ctx is done, see fill) and the write error.
func copyRaw(ctx context.Context, w io.Writer, r io.Reader) (n int64, readErr, writeErr error) {
	bp := getBuf(rawBufSize)
	defer putBuf(bp)
	buf := *bp
	for {
		// Whole buffers: a request body yields a few KiB per Read, and large writes halve the
		// syscalls of both sides.
		k, err := fill(ctx, r, buf)
		if k > 0 {
			m, werr := w.Write(buf[:k])
			n += int64(m)
			if werr != nil {
				return n, nil, werr
			}
		}
		switch {
		case err == io.EOF:
			return n, nil, nil
		case err != nil:
			return n, err, nil
		}
	}
}

// uploadRecv receives the next message of an upload stream after its header (plugin side): a chunk,
// the end of a raw body, or an error (io.EOF: the host closed its side of the call).
type uploadRecv func() (chunk []byte, end *pb.PutEnd, err error)

// uploadBody returns the reader of an upload's body (plugin side) and a release func to call when
// the backend is done with it. brokerID is the header's broker_id. For a raw upload it dials the
// host, answers with putBodyKey and reads from the connection (see rawBody); otherwise, and when the
// dial fails, it reads chunks. An error (failing to send the answer) ends the call.
func (s *server) uploadBody(st grpc.ServerStream, brokerID uint32, recv uploadRecv) (io.Reader, func(), error) {
	chunks := &chunkReader{recv: func() ([]byte, error) {
		c, end, err := recv()
		if err == nil && end != nil {
			return nil, errProtocol("raw body end in a chunked upload")
		}
		return c, err // io.EOF at the end; a status when the host cancelled
	}}
	if brokerID == 0 {
		return chunks, func() {}, nil
	}
	var conn net.Conn
	if s.broker != nil && dialRawPut {
		if c, err := dialRaw(st.Context(), s.broker, brokerID); err == nil {
			conn = c
		}
	}
	answer := putBodyChunks
	if conn != nil {
		answer = putBodyRaw
	}
	if err := st.SendHeader(metadata.Pairs(putBodyKey, answer)); err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return nil, nil, err
	}
	if conn == nil {
		return chunks, func() {}, nil
	}
	b := &rawBody{ctx: st.Context(), conn: conn, recv: recv}
	stop := context.AfterFunc(b.ctx, b.closeConn) // unblocks a Read when the host cancels or dies
	return b, func() { stop(); b.closeConn() }, nil
}

// rawBody is the plugin's reader of a raw upload body. It returns io.EOF only once the connection
// ended cleanly and the host's PutEnd confirmed the number of bytes read; every other end of the body
// is an error (see the exchange at the top of this file), so the backend stores nothing.
type rawBody struct {
	ctx  context.Context
	conn net.Conn
	recv uploadRecv
	n    int64 // bytes read from conn
	err  error // sticky

	closeOnce sync.Once
}

func (b *rawBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.conn.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF:
		b.err = b.end()
	case b.ctx.Err() != nil:
		b.err = status.FromContextError(b.ctx.Err()).Err()
	default:
		b.err = status.Errorf(codes.Unavailable, "raw upload connection: %v", err)
	}
	b.closeConn()
	return n, b.err
}

// end checks how the body ended after the connection did: io.EOF only for a matching PutEnd.
func (b *rawBody) end() error {
	_, end, err := b.recv()
	switch {
	case err == io.EOF:
		return errProtocol("upload stream closed without the end of its raw body")
	case err != nil:
		return err // the host cancelled (its body failed) or died
	case end == nil:
		return errProtocol("chunk in a raw upload")
	case end.GetSize() != b.n:
		return errProtocol("raw upload: the host sent %d bytes, %d arrived", end.GetSize(), b.n)
	}
	return io.EOF
}

func (b *rawBody) closeConn() {
	b.closeOnce.Do(func() { _ = b.conn.Close() })
}
