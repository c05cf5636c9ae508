// Package connbody is a blob reader whose bytes are the rest of one HTTP response body on a TCP
// connection of its own: what an S3 backend's direct get returns (backends/internal/s3util.DirectGet),
// and what mlgate rebuilds when a plugin hands such a connection over (plugins: raw get handoff).
//
// Its point is WriteTo, which lets the kernel move the bytes: splice(2) to a TCP destination (an
// http.ResponseWriter of mlgate's client) or to a Unix socket (a plugin's brokered connection), so the
// bytes never pass through user space.
package connbody

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"

	"github.com/mlgate/mlgate/backends"
)

// Body is the rest of a response body on conn. Read for ordinary use, WriteTo for a zero-copy
// transfer, Detach to hand the connection to another process. It is not safe for concurrent use,
// except Close, which ends a Read or WriteTo in progress.
//
// Errors of Read and WriteTo: a body shorter than its length fails with an error wrapping
// backends.ErrUnavailable and io.ErrUnexpectedEOF, a longer one (with untilEOF) with an error wrapping
// backends.ErrUnavailable; a failed connection wraps backends.ErrUnavailable; ctx's error once the
// context ends; a destination's write error comes back wrapped like a read error, as the two cannot be
// told apart in a splice.
type Body struct {
	conn     *net.TCPConn
	pre      []byte // body bytes read before the Body was made (with the response header)
	remain   int64  // body bytes still to come from conn
	untilEOF bool   // the sender closes the connection after the body
	ctx      context.Context
	stop     func() bool
	err      error       // sticky; owned by Read and WriteTo
	closed   atomic.Bool // set by Close, which may run concurrently with Read and WriteTo
}

// errClosed is the error of a Read or WriteTo on a closed Body.
var errClosed = errors.New("connbody: read of a closed body")

// New makes a Body of the remain bytes that follow pre on conn. untilEOF says that the sender closes
// the connection after the body (the response said "Connection: close"), which lets WriteTo splice to
// a Unix socket. The Body closes conn when ctx ends and on Close.
func New(ctx context.Context, conn *net.TCPConn, pre []byte, remain int64, untilEOF bool) *Body {
	return &Body{
		conn: conn, pre: pre, remain: remain, untilEOF: untilEOF, ctx: ctx,
		stop: context.AfterFunc(ctx, func() { _ = conn.Close() }),
	}
}

func (b *Body) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errClosed
	}
	if len(b.pre) > 0 {
		n := copy(p, b.pre)
		b.pre = b.pre[n:]
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.conn.Read(p)
	b.remain -= int64(n)
	if err != nil {
		b.err = b.mapErr(err)
		if b.remain == 0 && err == io.EOF {
			b.err = io.EOF
		}
		if n > 0 {
			return n, nil
		}
		return 0, b.err
	}
	return n, nil
}

// WriteTo sends the rest of the body to w. To a TCP connection (directly, or behind an
// http.ResponseWriter) the bytes move by splice(2), bounded by the length; to a Unix socket by splice
// until the sender closes, then checked against the length. Anything else gets a buffered copy.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	if b.closed.Load() {
		return 0, errClosed
	}
	var total int64
	if len(b.pre) > 0 {
		n, err := w.Write(b.pre)
		total += int64(n)
		b.pre = b.pre[n:]
		if err != nil {
			return total, err
		}
	}
	if b.err != nil {
		if b.err == io.EOF {
			return total, nil
		}
		return total, b.err
	}
	if b.remain <= 0 {
		return total, nil
	}
	var n int64
	var err error
	uc, toUnix := w.(*net.UnixConn)
	switch rf, ok := w.(io.ReaderFrom); {
	case toUnix && b.untilEOF:
		n, err = b.conn.WriteTo(uc)
	case ok:
		n, err = rf.ReadFrom(&io.LimitedReader{R: b.conn, N: b.remain})
	default:
		buf := make([]byte, 256<<10)
		n, err = io.CopyBuffer(struct{ io.Writer }{w}, io.LimitReader(struct{ io.Reader }{b.conn}, b.remain), buf)
	}
	b.remain -= n
	total += n
	switch {
	case err != nil:
		b.err = b.mapErr(err)
	case b.remain > 0:
		b.err = b.mapErr(io.EOF)
	case b.remain < 0:
		b.err = fmt.Errorf("%w: the sender sent %d bytes beyond the body's length", backends.ErrUnavailable, -b.remain)
	default:
		b.err = io.EOF
		return total, nil
	}
	return total, b.err
}

// mapErr turns a read error of the connection into the body's error.
func (b *Body) mapErr(err error) error {
	if cerr := b.ctx.Err(); cerr != nil {
		return cerr
	}
	if b.closed.Load() {
		return errClosed
	}
	if err == io.EOF {
		return fmt.Errorf("%w: body ended %d bytes short: %w", backends.ErrUnavailable, b.remain, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %w", backends.ErrUnavailable, err)
}

// Close releases the connection.
func (b *Body) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.stop()
	if err := b.conn.Close(); err != nil && b.ctx.Err() == nil {
		return err
	}
	return nil // the context's end closed the connection already
}

// Detached is a Body given up by Detach: everything another process needs to rebuild it with New.
type Detached struct {
	File     *os.File // a duplicate of the connection's descriptor; the receiver closes it
	Prefix   []byte   // body bytes not yet delivered, read off the connection already
	Remain   int64    // body bytes still to come on the connection
	UntilEOF bool     // the sender closes the connection after the body
}

// Detach hands the rest of the body over, to be sent to another process (over a Unix socket with
// SCM_RIGHTS) and rebuilt there with New. The Body is closed by it, whatever the outcome; the
// connection stays open through the returned descriptor. Errors: the Body's sticky error if it has
// failed or been read to its end already, the error of duplicating the descriptor.
func (b *Body) Detach() (Detached, error) {
	defer b.Close()
	if b.closed.Load() {
		return Detached{}, fmt.Errorf("connbody: detach: %w", errClosed)
	}
	if b.err != nil {
		return Detached{}, fmt.Errorf("connbody: detach: %w", b.err)
	}
	f, err := b.conn.File()
	if err != nil {
		return Detached{}, fmt.Errorf("connbody: detach: %w", err)
	}
	return Detached{File: f, Prefix: b.pre, Remain: b.remain, UntilEOF: b.untilEOF}, nil
}

// Rebuild makes a Body from a Detached received from another process, taking ownership of d.File.
// Errors: the descriptor is no TCP connection.
func Rebuild(ctx context.Context, d Detached) (*Body, error) {
	c, err := net.FileConn(d.File)
	_ = d.File.Close()
	if err != nil {
		return nil, fmt.Errorf("connbody: rebuild: %w", err)
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("connbody: rebuild: descriptor is a %T, not a TCP connection", c)
	}
	return New(ctx, tc, d.Prefix, d.Remain, d.UntilEOF), nil
}
