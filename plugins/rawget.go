package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	pb "github.com/mlgate/mlgate/plugins/proto"
)

// Raw Get: the gRPC Get stream carries only the blob's Info and the final status, and the bytes go
// over a connection brokered by go-plugin's GRPCBroker, written with plain writes and read with plain
// reads. The host listens (broker.Accept) and names the broker id in GetRequest; the plugin dials it,
// sets GetResponse.raw on the Info message, copies the range and closes the connection, then ends the
// call with the status of the copy. The host trusts the bytes only when the call then ends OK, so a
// truncated stream (a read error in the plugin, a dead plugin) is the reader's error.
//
// Why: with 1 MiB gRPC chunks a Get costs HTTP/2 framing, flow-control updates and two copies plus a
// goroutine hand-off per chunk on each side, which on 2 cores bounds throughput.

// useRawGet is a tuning knob (host side): ask for raw Gets when a broker is available.
var useRawGet = true

const (
	rawBufSize    = 1 << 20          // copy buffer of the sending side (the plugin's for Get, the host's for uploads)
	rawDialWait   = 5 * time.Second  // how long the plugin waits for its brokered connection
	rawAcceptWait = 10 * time.Second // how long the host waits for the plugin to connect after it said it has
)

var errHijacked = errors.New("mlgate: connection taken over for a raw transfer")

// hijackCreds takes the raw connection of a brokered gRPC dial: go-plugin's GRPCBroker only dials gRPC
// connections, so the plugin dials one whose handshake keeps a duplicate of the socket and fails. The
// ClientConn is closed right away, before gRPC's reconnect backoff (1 s) could dial again, and the
// host accepts exactly one connection per broker id anyway.
type hijackCreds struct{ ch chan net.Conn }

func (h *hijackCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	fc, ok := c.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, nil, fmt.Errorf("%w: %T has no file descriptor", errHijacked, c)
	}
	f, err := fc.File()
	if err != nil {
		return nil, nil, err
	}
	dup, err := net.FileConn(f) // gRPC closes c on the error below; dup keeps the socket open
	_ = f.Close()
	if err != nil {
		return nil, nil, err
	}
	select {
	case h.ch <- dup:
	default:
		_ = dup.Close()
	}
	return nil, nil, errHijacked
}

func (h *hijackCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errHijacked
}
func (h *hijackCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
}
func (h *hijackCreds) Clone() credentials.TransportCredentials { return &hijackCreds{ch: h.ch} }
func (h *hijackCreds) OverrideServerName(string) error         { return nil }

// dialRaw opens the raw connection the host listens for on broker id (plugin side), for a raw Get or
// a raw upload.
func dialRaw(ctx context.Context, broker *plugin.GRPCBroker, id uint32) (net.Conn, error) {
	h := &hijackCreds{ch: make(chan net.Conn, 1)}
	cc, err := broker.DialWithOptions(id, grpc.WithTransportCredentials(h))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	cc.Connect()
	t := time.NewTimer(rawDialWait)
	defer t.Stop()
	select {
	case c := <-h.ch:
		return c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, errors.New("timeout dialing the host's raw connection")
	}
}

// acceptRaw accepts one connection on ln, giving up when ctx ends or after rawAcceptWait. It closes ln.
func acceptRaw(ctx context.Context, ln net.Listener) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	t := time.NewTimer(rawAcceptWait)
	defer t.Stop()
	var r res
	select {
	case r = <-ch:
		_ = ln.Close()
	case <-ctx.Done():
		_ = ln.Close()
		if r = <-ch; r.c != nil {
			_ = r.c.Close()
		}
		return nil, ctx.Err()
	case <-t.C:
		_ = ln.Close()
		if r = <-ch; r.c != nil {
			_ = r.c.Close()
		}
		return nil, errProtocol("plugin did not make its raw connection")
	}
	return r.c, r.err
}

// rawReader is the host's reader of a raw Get: bytes from conn, then the call's final status.
type rawReader struct {
	conn   net.Conn
	recv   func(any) error
	cancel context.CancelFunc
	stop   func() bool // stops closing conn when the context ends
	err    error       // sticky error

	closeOnce sync.Once
}

func (r *rawReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.conn.Read(p)
	if err == nil {
		return n, nil
	}
	r.finish(err)
	return n, r.err
}

// WriteTo hands the connection to w's ReadFrom: behind an http.ResponseWriter of a TCP connection the
// kernel splices the bytes from the plugin's socket to the client's, and they never enter mlgate's
// memory. As with Read, the bytes count only if the call then ends OK.
func (r *rawReader) WriteTo(w io.Writer) (int64, error) {
	if r.err != nil {
		if r.err == io.EOF {
			return 0, nil
		}
		return 0, r.err
	}
	var n int64
	var err error
	if rf, ok := w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r.conn)
	} else {
		bp := getBuf(rawBufSize)
		n, err = io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{r.conn}, *bp)
		putBuf(bp)
	}
	if err == nil {
		err = io.EOF // the plugin closed the connection
	}
	r.finish(err)
	if r.err == io.EOF {
		return n, nil
	}
	return n, r.err
}

// finish settles the reader once the connection has ended with err (io.EOF: closed by the plugin):
// the bytes are complete only if the call ends OK.
func (r *rawReader) finish(err error) {
	if err != io.EOF {
		// A failed read, or a failed write to w: either way the plugin's status cannot make the
		// transfer whole, and waiting for it could wait for a plugin that is still writing.
		r.err = wrapErr("plugin get", status.Errorf(codes.Unavailable, "raw get connection: %v", err))
		r.release()
		return
	}
	msg := &pb.GetResponse{}
	switch rerr := r.recv(msg); {
	case rerr == io.EOF:
		r.err = io.EOF
	case rerr != nil:
		r.err = wrapErr("plugin get", rerr)
	default:
		r.err = wrapErr("plugin get", errProtocol("unexpected message in raw get stream"))
	}
	r.release()
}

func (r *rawReader) release() {
	r.closeOnce.Do(func() {
		r.stop()
		r.cancel()
		_ = r.conn.Close()
	})
}

func (r *rawReader) Close() error {
	r.release()
	return nil
}

// serveRaw is the plugin side: copy rc to conn, close conn. It returns the read error (nil at EOF) and
// the write error.
func serveRaw(ctx context.Context, conn net.Conn, rc io.Reader) (readErr, writeErr error) {
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	defer conn.Close()
	if wt, ok := rc.(io.WriterTo); ok {
		// A reader that can hand its source to the kernel (an S3 direct get: splice from the server's
		// socket to this one) does. Its errors cannot be told apart into reading and writing ones; both
		// end the call with a failure, which is all the host needs.
		if _, err := wt.WriteTo(conn); err != nil {
			return err, nil
		}
		return nil, nil
	}
	bp := getBuf(rawBufSize)
	defer putBuf(bp)
	buf := *bp
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}
