package plugins

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlgate/mlgate/backends"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// server is the plugin side of the bridge: it serves one backend, built by factory on the first
// Configure call.
type server struct {
	pb.UnimplementedBackendServer
	factory backends.Factory
	broker  *plugin.GRPCBroker // nil: no raw Gets or uploads

	mu     sync.Mutex
	b      backends.Backend
	config []byte // the config b was built from
}

func (s *server) backend() (backends.Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b == nil {
		return nil, status.Error(codes.FailedPrecondition, "plugin backend is not configured yet")
	}
	return s.b, nil
}

func (s *server) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.Descriptor, error) {
	s.mu.Lock()
	switch {
	case s.b == nil && s.factory == nil:
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "plugin has no backend factory")
	case s.b == nil:
		b, err := s.factory(ctx, req.GetConfigJson())
		if err != nil {
			s.mu.Unlock()
			// A config the backend rejects is the admin's mistake: InvalidArgument, with the message.
			if isSentinel(err) {
				return nil, toStatus(err)
			}
			return nil, status.Errorf(codes.InvalidArgument, "configure: %v", err)
		}
		s.b, s.config = b, bytes.Clone(req.GetConfigJson())
	case s.config != nil && !bytes.Equal(s.config, req.GetConfigJson()):
		s.mu.Unlock()
		return nil, status.Error(codes.FailedPrecondition, "plugin backend is already configured with another config")
	}
	b := s.b
	s.mu.Unlock()
	return describe(ctx, b)
}

// describe describes b, adding what the bridge itself supports.
func describe(ctx context.Context, b backends.Backend) (*pb.Descriptor, error) {
	d, err := b.Describe(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := descToPB(d)
	out.RawPut = true // this server understands broker_id in upload headers (it may still answer "chunks")
	return out, nil
}

func (s *server) Describe(ctx context.Context, _ *pb.Empty) (*pb.Descriptor, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	return describe(ctx, b)
}

// chunkReader reads the chunks of a client stream after its header.
type chunkReader struct {
	recv func() ([]byte, error)
	buf  []byte
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.buf, r.err = r.recv()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (s *server) Put(st grpc.ClientStreamingServer[pb.PutRequest, pb.Info]) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	msg := &pb.PutRequest{}
	if err := st.RecvMsg(msg); err != nil {
		return err
	}
	h := msg.GetHeader()
	if h == nil {
		return errProtocol("put stream did not start with a header")
	}
	key, size, opts := h.GetKey(), h.GetSize(), optsFromPB(h.GetOptions())
	r, release, err := s.uploadBody(st, h.GetBrokerId(), func() ([]byte, *pb.PutEnd, error) {
		if err := st.RecvMsg(msg); err != nil {
			return nil, nil, err
		}
		switch m := msg.GetMsg().(type) {
		case *pb.PutRequest_Chunk:
			return m.Chunk, nil, nil
		case *pb.PutRequest_End:
			return nil, m.End, nil
		}
		return nil, nil, errProtocol("unexpected message in put stream")
	})
	if err != nil {
		return err
	}
	defer release()
	info, err := b.Put(st.Context(), key, r, size, opts)
	if err != nil {
		return toStatus(err)
	}
	return st.SendAndClose(infoToPB(info))
}

func (s *server) PutPart(st grpc.ClientStreamingServer[pb.PutPartRequest, pb.Part]) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	msg := &pb.PutPartRequest{}
	if err := st.RecvMsg(msg); err != nil {
		return err
	}
	h := msg.GetHeader()
	if h == nil {
		return errProtocol("put part stream did not start with a header")
	}
	key, id, n, size := h.GetKey(), h.GetUploadId(), int(h.GetNumber()), h.GetSize()
	r, release, err := s.uploadBody(st, h.GetBrokerId(), func() ([]byte, *pb.PutEnd, error) {
		if err := st.RecvMsg(msg); err != nil {
			return nil, nil, err
		}
		switch m := msg.GetMsg().(type) {
		case *pb.PutPartRequest_Chunk:
			return m.Chunk, nil, nil
		case *pb.PutPartRequest_End:
			return nil, m.End, nil
		}
		return nil, nil, errProtocol("unexpected message in put part stream")
	})
	if err != nil {
		return err
	}
	defer release()
	p, err := b.PutPart(st.Context(), key, id, n, r, size)
	if err != nil {
		return toStatus(err)
	}
	return st.SendAndClose(&pb.Part{Number: int64(p.Number), Size: p.Size, Etag: p.ETag})
}

func (s *server) Get(req *pb.GetRequest, st grpc.ServerStreamingServer[pb.GetResponse]) error {
	b, err := s.backend()
	if err != nil {
		return err
	}
	rc, info, err := b.Get(st.Context(), req.GetKey(), backends.Range{Offset: req.GetOffset(), Length: req.GetLength()})
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	var conn net.Conn
	if id := req.GetBrokerId(); id != 0 && s.broker != nil {
		// Without the connection, fall back to chunks: the host sees raw unset and closes its listener.
		if c, err := dialRaw(st.Context(), s.broker, id); err == nil {
			conn = c
		}
	}
	if conn != nil && req.GetAcceptHandoff() && canHandOff(conn, rc) {
		if err := sendHandoff(conn, rc, infoToPB(info), st.Send); err != nil {
			return status.Errorf(codes.Unavailable, "raw get handoff: %v", err)
		}
		return nil
	}
	if err := st.Send(&pb.GetResponse{Msg: &pb.GetResponse_Info{Info: infoToPB(info)}, Raw: conn != nil}); err != nil {
		if conn != nil {
			_ = conn.Close()
		}
		return err
	}
	if conn != nil {
		readErr, writeErr := serveRaw(st.Context(), conn, rc)
		if readErr != nil {
			return toStatus(readErr)
		}
		if writeErr != nil {
			return status.Errorf(codes.Unavailable, "raw get connection: %v", writeErr)
		}
		return nil
	}
	n := int(req.GetChunkSize())
	switch {
	case n <= 0:
		n = ChunkSize
	case n < minChunkSize:
		n = minChunkSize
	case n > maxChunkSize:
		n = maxChunkSize
	}
	msg := &pb.GetResponse{}
	chunk := &pb.GetResponse_Chunk{}
	readErr, sendErr := sendChunks(st.Context(), rc, n, func(b []byte) error {
		chunk.Chunk, msg.Msg = b, chunk
		return st.Send(msg)
	})
	if readErr != nil {
		return toStatus(readErr)
	}
	return sendErr
}

func (s *server) Stat(ctx context.Context, req *pb.KeyRequest) (*pb.Info, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	i, err := b.Stat(ctx, req.GetKey())
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToPB(i), nil
}

func (s *server) Delete(ctx context.Context, req *pb.KeyRequest) (*pb.Empty, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	if err := b.Delete(ctx, req.GetKey()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

func (s *server) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	items, next, err := b.List(ctx, req.GetPrefix(), req.GetStartAfter(), int(req.GetLimit()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListResponse{Items: make([]*pb.Info, len(items)), Next: next}
	for i, it := range items {
		out.Items[i] = infoToPB(it)
	}
	return out, nil
}

func (s *server) CreateMultipart(ctx context.Context, req *pb.CreateMultipartRequest) (*pb.UploadID, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	id, err := b.CreateMultipart(ctx, req.GetKey(), optsFromPB(req.GetOptions()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.UploadID{UploadId: id}, nil
}

func (s *server) ListParts(ctx context.Context, req *pb.UploadRef) (*pb.PartList, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	ps, err := b.ListParts(ctx, req.GetKey(), req.GetUploadId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.PartList{Parts: partsToPB(ps)}, nil
}

func (s *server) CompleteMultipart(ctx context.Context, req *pb.CompleteRequest) (*pb.Info, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	i, err := b.CompleteMultipart(ctx, req.GetKey(), req.GetUploadId(), partsFromPB(req.GetParts()))
	if err != nil {
		return nil, toStatus(err)
	}
	return infoToPB(i), nil
}

func (s *server) AbortMultipart(ctx context.Context, req *pb.UploadRef) (*pb.Empty, error) {
	b, err := s.backend()
	if err != nil {
		return nil, err
	}
	if err := b.AbortMultipart(ctx, req.GetKey(), req.GetUploadId()); err != nil {
		return nil, toStatus(err)
	}
	return &pb.Empty{}, nil
}

var _ io.Reader = (*chunkReader)(nil)
