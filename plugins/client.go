package plugins

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-plugin"

	"github.com/mlgate/mlgate/backends"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// Client is the host side of the bridge: a backends.Backend whose calls go to a plugin. It holds no
// process; Launch's supervised backend owns the process and Close of a Client is a no-op.
//
// Errors wrap the sentinel the plugin's backend returned. A broken connection wraps
// backends.ErrUnavailable.
type Client struct {
	c      pb.BackendClient
	broker *plugin.GRPCBroker // nil: Get and uploads stream chunks
	rawPut atomic.Bool        // the plugin takes raw uploads (Descriptor.raw_put of its last description)
}

var _ backends.Backend = (*Client)(nil)

// Configure builds the plugin's backend from config (the backend's own JSON) and describes it.
func (c *Client) Configure(ctx context.Context, config []byte) (backends.Descriptor, error) {
	d, err := c.c.Configure(ctx, &pb.ConfigureRequest{ConfigJson: config})
	if err != nil {
		return backends.Descriptor{}, wrapErr("plugin configure", err)
	}
	c.rawPut.Store(d.GetRawPut())
	return descFromPB(d), nil
}

// Describe implements backends.Backend.
func (c *Client) Describe(ctx context.Context) (backends.Descriptor, error) {
	d, err := c.c.Describe(ctx, &pb.Empty{})
	if err != nil {
		return backends.Descriptor{}, wrapErr("plugin describe", err)
	}
	c.rawPut.Store(d.GetRawPut())
	return descFromPB(d), nil
}

// Close implements backends.Backend; it does nothing (see Client).
func (c *Client) Close() error { return nil }

// Put implements backends.Backend. It sends r over a raw connection when the plugin agrees (see
// rawput.go), else in chunks. An error reading r is returned wrapped, after cancelling the call so
// that the plugin stores nothing; a dead plugin or a broken connection wraps backends.ErrUnavailable.
func (c *Client) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.c.Put(ctx, streamCallOptions()...)
	if err != nil {
		return backends.Info{}, wrapErr("plugin put", err)
	}
	msg := &pb.PutRequest{}
	chunk := &pb.PutRequest_Chunk{}
	u := upload{
		op:   "plugin put",
		call: st,
		sendHeader: func(brokerID uint32) error {
			return st.Send(&pb.PutRequest{Msg: &pb.PutRequest_Header{Header: &pb.PutHeader{
				Key: key, Size: size, Options: optsToPB(opts), BrokerId: brokerID}}})
		},
		sendChunk: func(b []byte) error {
			chunk.Chunk, msg.Msg = b, chunk
			return st.Send(msg)
		},
		sendEnd: func(n int64) error {
			return st.Send(&pb.PutRequest{Msg: &pb.PutRequest_End{End: &pb.PutEnd{Size: n}}})
		},
		status: func() error { _, err := st.CloseAndRecv(); return err },
	}
	if err := c.sendBody(ctx, cancel, u, r, size); err != nil {
		return backends.Info{}, err
	}
	info, err := st.CloseAndRecv()
	if err != nil {
		return backends.Info{}, wrapErr("plugin put", err)
	}
	return infoFromPB(info), nil
}

// closeErrOf turns a failed Send into the real error: io.EOF from Send means the plugin ended the
// call, and its status comes from the final receive (status, which is CloseAndRecv's error).
func closeErrOf(op string, status func() error, sendErr error) error {
	if errors.Is(sendErr, io.EOF) {
		if err := status(); err != nil {
			return wrapErr(op, err)
		}
	}
	return wrapErr(op, sendErr)
}

// Get implements backends.Backend. It returns once the plugin has sent the blob's Info, so a missing
// key or a bad range is Get's error, not the reader's. Closing the reader cancels the stream.
func (c *Client) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	readCtx := ctx // a handed-over body outlives the call
	ctx, cancel := context.WithCancel(ctx)
	req := &pb.GetRequest{Key: key, Offset: rng.Offset, Length: rng.Length, ChunkSize: int64(chunkSize)}
	var ln net.Listener
	if useRawGet && c.broker != nil {
		id := c.broker.NextId()
		if l, err := c.broker.Accept(id); err == nil {
			ln, req.BrokerId, req.AcceptHandoff = l, id, useHandoff
		}
	}
	fail := func(err error) (io.ReadCloser, backends.Info, error) {
		cancel()
		if ln != nil {
			_ = ln.Close()
		}
		return nil, backends.Info{}, wrapErr("plugin get", err)
	}
	st, err := c.c.Get(ctx, req, streamCallOptions()...)
	if err != nil {
		return fail(err)
	}
	msg := &pb.GetResponse{}
	if err := st.RecvMsg(msg); err != nil {
		if err == io.EOF {
			err = errProtocol("get stream ended before the blob info")
		}
		return fail(err)
	}
	info := msg.GetInfo()
	if info == nil {
		return fail(errProtocol("get stream did not start with the blob info"))
	}
	if msg.GetRaw() {
		if ln == nil {
			return fail(errProtocol("raw get without a broker connection"))
		}
		conn, err := acceptRaw(ctx, ln)
		if err != nil {
			cancel()
			return nil, backends.Info{}, wrapErr("plugin get", err)
		}
		if h := msg.GetHandoff(); h != nil {
			if !req.AcceptHandoff {
				_ = conn.Close()
				return fail(errProtocol("handoff the host did not accept"))
			}
			return c.takeHandoff(readCtx, cancel, st.RecvMsg, conn, h, infoFromPB(info))
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		return &rawReader{conn: conn, recv: st.RecvMsg, cancel: cancel, stop: stop}, infoFromPB(info), nil
	}
	if ln != nil {
		_ = ln.Close()
	}
	return &getReader{recv: st.RecvMsg, cancel: cancel, msg: msg}, infoFromPB(info), nil
}

// takeHandoff finishes a Get whose plugin handed its connection over: it rebuilds the body from conn
// and waits for the call to end OK (the plugin ends it right after the handoff).
func (c *Client) takeHandoff(readCtx context.Context, cancel context.CancelFunc, recv func(any) error, conn net.Conn, h *pb.Handoff, info backends.Info) (io.ReadCloser, backends.Info, error) {
	defer cancel()
	handoffs.Add(1)
	body, err := receiveHandoff(readCtx, conn, h)
	if err != nil {
		// The call's status says more than a broken handoff when the plugin failed.
		if serr := recv(&pb.GetResponse{}); serr != nil && serr != io.EOF {
			err = serr
		}
		return nil, backends.Info{}, wrapErr("plugin get", err)
	}
	if serr := recv(&pb.GetResponse{}); serr != io.EOF {
		_ = body.Close()
		if serr == nil {
			serr = errProtocol("unexpected message after a handoff")
		}
		return nil, backends.Info{}, wrapErr("plugin get", serr)
	}
	return body, info, nil
}

// getReader reads the chunks of a Get stream. Read is not safe for concurrent use (io.Reader never
// is); Close may be called concurrently with Read and makes it fail.
type getReader struct {
	recv   func(any) error
	cancel context.CancelFunc
	msg    *pb.GetResponse // reused for every chunk, so the codec reuses its buffer
	buf    []byte          // unread part of the current chunk
	err    error           // sticky error

	closeOnce sync.Once
}

func (r *getReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if err := r.recv(r.msg); err != nil {
			if err == io.EOF {
				r.err = io.EOF
			} else {
				r.err = wrapErr("plugin get", err)
			}
			r.cancel()
			return 0, r.err
		}
		c, ok := r.msg.GetMsg().(*pb.GetResponse_Chunk)
		if !ok {
			r.err = wrapErr("plugin get", errProtocol("unexpected message in get stream"))
			r.cancel()
			return 0, r.err
		}
		r.buf = c.Chunk
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *getReader) Close() error {
	r.closeOnce.Do(r.cancel)
	return nil
}

// Stat implements backends.Backend.
func (c *Client) Stat(ctx context.Context, key string) (backends.Info, error) {
	i, err := c.c.Stat(ctx, &pb.KeyRequest{Key: key})
	if err != nil {
		return backends.Info{}, wrapErr("plugin stat", err)
	}
	return infoFromPB(i), nil
}

// Delete implements backends.Backend.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.c.Delete(ctx, &pb.KeyRequest{Key: key})
	return wrapErr("plugin delete", err)
}

// List implements backends.Backend.
func (c *Client) List(ctx context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	resp, err := c.c.List(ctx, &pb.ListRequest{Prefix: prefix, StartAfter: startAfter, Limit: int64(limit)})
	if err != nil {
		return nil, "", wrapErr("plugin list", err)
	}
	items := make([]backends.Info, len(resp.GetItems()))
	for i, it := range resp.GetItems() {
		items[i] = infoFromPB(it)
	}
	return items, resp.GetNext(), nil
}

// CreateMultipart implements backends.Multipart.
func (c *Client) CreateMultipart(ctx context.Context, key string, opts backends.PutOptions) (string, error) {
	id, err := c.c.CreateMultipart(ctx, &pb.CreateMultipartRequest{Key: key, Options: optsToPB(opts)})
	if err != nil {
		return "", wrapErr("plugin create multipart", err)
	}
	return id.GetUploadId(), nil
}

// PutPart implements backends.Multipart, sending r like Put (with the same error contract).
func (c *Client) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (backends.Part, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.c.PutPart(ctx, streamCallOptions()...)
	if err != nil {
		return backends.Part{}, wrapErr("plugin put part", err)
	}
	msg := &pb.PutPartRequest{}
	chunk := &pb.PutPartRequest_Chunk{}
	u := upload{
		op:   "plugin put part",
		call: st,
		sendHeader: func(brokerID uint32) error {
			return st.Send(&pb.PutPartRequest{Msg: &pb.PutPartRequest_Header{Header: &pb.PutPartHeader{
				Key: key, UploadId: uploadID, Number: int64(n), Size: size, BrokerId: brokerID}}})
		},
		sendChunk: func(b []byte) error {
			chunk.Chunk, msg.Msg = b, chunk
			return st.Send(msg)
		},
		sendEnd: func(n int64) error {
			return st.Send(&pb.PutPartRequest{Msg: &pb.PutPartRequest_End{End: &pb.PutEnd{Size: n}}})
		},
		status: func() error { _, err := st.CloseAndRecv(); return err },
	}
	if err := c.sendBody(ctx, cancel, u, r, size); err != nil {
		return backends.Part{}, err
	}
	p, err := st.CloseAndRecv()
	if err != nil {
		return backends.Part{}, wrapErr("plugin put part", err)
	}
	return backends.Part{Number: int(p.GetNumber()), Size: p.GetSize(), ETag: p.GetEtag()}, nil
}

// ListParts implements backends.Multipart.
func (c *Client) ListParts(ctx context.Context, key, uploadID string) ([]backends.Part, error) {
	pl, err := c.c.ListParts(ctx, &pb.UploadRef{Key: key, UploadId: uploadID})
	if err != nil {
		return nil, wrapErr("plugin list parts", err)
	}
	return partsFromPB(pl.GetParts()), nil
}

// CompleteMultipart implements backends.Multipart.
func (c *Client) CompleteMultipart(ctx context.Context, key, uploadID string, parts []backends.Part) (backends.Info, error) {
	i, err := c.c.CompleteMultipart(ctx, &pb.CompleteRequest{Key: key, UploadId: uploadID, Parts: partsToPB(parts)})
	if err != nil {
		return backends.Info{}, wrapErr("plugin complete multipart", err)
	}
	return infoFromPB(i), nil
}

// AbortMultipart implements backends.Multipart.
func (c *Client) AbortMultipart(ctx context.Context, key, uploadID string) error {
	_, err := c.c.AbortMultipart(ctx, &pb.UploadRef{Key: key, UploadId: uploadID})
	return wrapErr("plugin abort multipart", err)
}
