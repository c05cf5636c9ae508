package s3util

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mlgate/mlgate/backends/connbody"
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
	stop()
	body := connbody.New(ctx, conn, append([]byte(nil), pre...), resp.ContentLength-int64(len(pre)), resp.Close)
	resp.Body = http.NoBody // the bytes are DirectBody's
	return body, resp, nil
}

// DirectBody is the body of a DirectGet (see backends/connbody for its methods and errors).
type DirectBody = connbody.Body
