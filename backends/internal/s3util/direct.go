package s3util

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// Direct GET: a download from a plain-HTTP S3 server whose body bytes are read straight off the TCP
// connection rather than through an HTTP client's body reader, so that DirectBody.WriteTo can hand
// the socket to the kernel: splice(2) to a TCP destination (mlgate's client) or to a Unix socket (a
// plugin's brokered connection). The gateway then never copies the bytes through user space, which on
// two cores is the difference between about 0.3 and about 0.05 CPU-seconds per GiB, and so decides
// how close to the server's own speed a download gets.
//
// The request is presigned by the caller's SDK (signing stays in the SDK), written and its response
// header parsed by net/http. It asks for "Connection: close": a connection is used for one download,
// and the server's closing it marks the end of the body for a splice that runs until EOF.

// ErrNoDirect says that a download cannot or should not go direct; the caller uses its SDK instead,
// which also produces the proper error for a refused request. It is never returned to a backend's
// caller.
var ErrNoDirect = errors.New("s3util: no direct get")

const (
	directDialTimeout   = 10 * time.Second
	directHeaderTimeout = 60 * time.Second
	directHeaderBuf     = 16 << 10
)

// DirectGet GETs a presigned URL on a new connection, with rangeHeader ("" for the whole object).
// proxy is the SDK transport's proxy function (nil for none): a URL that would go through a proxy
// does not go direct.
//
// Errors: ErrNoDirect for an https URL, a proxied one, a refused request (any status but 200 and
// 206, the caller's SDK then reports it properly), a chunked or length-less response or a failure to
// connect or to read the response header (the SDK retries and maps these); ctx's error when ctx ends.
func DirectGet(ctx context.Context, u *url.URL, rangeHeader string, proxy func(*http.Request) (*url.URL, error)) (*DirectBody, *http.Response, error) {
	if u.Scheme != "http" {
		return nil, nil, ErrNoDirect
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoDirect, err)
	}
	if proxy != nil {
		if p, err := proxy(req); err != nil || p != nil {
			return nil, nil, ErrNoDirect
		}
	}
	req.Close = true
	req.Header.Set("User-Agent", "mlgate")
	if rangeHeader != "" {
		req.Header.Set("Range", rangeHeader)
	}
	d := net.Dialer{Timeout: directDialTimeout, KeepAlive: 30 * time.Second}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrNoDirect, err)
	}
	conn := c.(*net.TCPConn)
	if v := os.Getenv("XLOWAT"); v != "" {
		n, _ := strconv.Atoi(v)
		if rc, err := conn.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, n) })
		}
	}
	if v := os.Getenv("XRCVBUF"); v != "" {
		n, _ := strconv.Atoi(v)
		_ = conn.SetReadBuffer(n)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	fail := func(err error) (*DirectBody, *http.Response, error) {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrNoDirect, err)
	}
	_ = conn.SetDeadline(time.Now().Add(directHeaderTimeout))
	if err := req.Write(conn); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, directHeaderBuf)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fail(err)
	}
	_ = conn.SetDeadline(time.Time{})
	switch {
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent:
		return fail(fmt.Errorf("status %s", resp.Status))
	case resp.ContentLength < 0 || len(resp.TransferEncoding) > 0:
		return fail(errors.New("response without a Content-Length"))
	}
	// What the header parser read beyond the header is the start of the body: with one request per
	// connection nothing else can follow it.
	pre, _ := br.Peek(min(br.Buffered(), int(min(resp.ContentLength, directHeaderBuf))))
	body := &DirectBody{
		conn:     conn,
		pre:      append([]byte(nil), pre...),
		remain:   resp.ContentLength - int64(len(pre)),
		untilEOF: resp.Close,
		ctx:      ctx,
		stop:     stop,
	}
	resp.Body = http.NoBody // the bytes are DirectBody's
	return body, resp, nil
}

// DirectBody is the body of a DirectGet: Read for ordinary use, WriteTo for a zero-copy transfer.
// Errors: a body shorter than its Content-Length fails with an error wrapping backends.ErrUnavailable
// and io.ErrUnexpectedEOF; ctx's error once the download's context ends; a destination's write error
// as it is.
type DirectBody struct {
	conn     *net.TCPConn
	pre      []byte // body bytes read with the header
	remain   int64  // body bytes still to come from conn
	untilEOF bool   // the server closes the connection after the body
	ctx      context.Context
	stop     func() bool
	err      error // sticky
}

func (b *DirectBody) Read(p []byte) (int, error) {
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
// http.ResponseWriter) the bytes move by splice(2), bounded by the Content-Length; to a Unix socket by
// splice until the server closes, then checked against the Content-Length. Anything else gets a
// buffered copy.
func (b *DirectBody) WriteTo(w io.Writer) (int64, error) {
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
		b.err = fmt.Errorf("%w: the server sent %d bytes beyond its Content-Length", backends.ErrUnavailable, -b.remain)
	default:
		b.err = io.EOF
		return total, nil
	}
	return total, b.err
}

// mapErr turns a read error of the connection into the body's error.
func (b *DirectBody) mapErr(err error) error {
	if cerr := b.ctx.Err(); cerr != nil {
		return cerr
	}
	if err == io.EOF {
		return fmt.Errorf("%w: body ended %d bytes short: %w", backends.ErrUnavailable, b.remain, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%w: %w", backends.ErrUnavailable, err)
}

// Close releases the connection.
func (b *DirectBody) Close() error {
	b.stop()
	if b.err == nil {
		b.err = errors.New("s3util: read of a closed body")
	}
	return b.conn.Close()
}
