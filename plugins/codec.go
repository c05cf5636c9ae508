package plugins

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	pb "github.com/mlgate/mlgate/plugins/proto"
)

// chunkCodecName is the gRPC content-subtype of the streaming calls. The host asks for it per call
// (grpc.CallContentSubtype) and the plugin, which registers the same codec, answers in kind.
const chunkCodecName = "mlgate-chunk"

// Frame tags of chunkCodec. A chunk message goes on the wire as tagChunk followed by its raw bytes; any
// other message as tagProto followed by its protobuf encoding.
const (
	tagProto byte = 0
	tagChunk byte = 1
)

// gRPC finds a server-side codec by content-subtype only in its process-wide registry, so this is the
// one init registration in mlgate: it changes no mlgate wiring, and both sides of the bridge need it.
func init() { encoding.RegisterCodecV2(chunkCodec{}) }

// chunkCodec carries the chunk messages of Put, PutPart and Get as raw bytes instead of protobuf.
//
// Why: the protobuf codec copies every chunk twice on the receiving side (into a pooled buffer, then
// into a freshly allocated []byte per message) and allocates per chunk, which on 2 cores shows up as
// CPU-seconds per GiB. This codec copies once on each side and, on receive, reuses the chunk slice of
// the message it decodes into, so a receiver that passes the same message to every RecvMsg allocates
// nothing per chunk. Messages other than chunks fall back to plain protobuf, so the codec is safe for
// every message of the streaming RPCs (their headers, the ends of raw uploads and replies too).
type chunkCodec struct{}

func (chunkCodec) Name() string { return chunkCodecName }

func (chunkCodec) Marshal(v any) (mem.BufferSlice, error) {
	var chunk []byte
	isChunk := false
	switch m := v.(type) {
	case *pb.PutRequest:
		if c, ok := m.GetMsg().(*pb.PutRequest_Chunk); ok {
			chunk, isChunk = c.Chunk, true
		}
	case *pb.PutPartRequest:
		if c, ok := m.GetMsg().(*pb.PutPartRequest_Chunk); ok {
			chunk, isChunk = c.Chunk, true
		}
	case *pb.GetResponse:
		if c, ok := m.GetMsg().(*pb.GetResponse_Chunk); ok {
			chunk, isChunk = c.Chunk, true
		}
	default:
		return marshalProto(v, false)
	}
	if !isChunk {
		return marshalProto(v, true)
	}
	// Copy into a pooled buffer: gRPC writes it after SendMsg returns, and the sender reuses its chunk
	// buffer at once. The transport frees the pooled buffer when written.
	pool := mem.DefaultBufferPool()
	buf := pool.Get(1 + len(chunk))
	(*buf)[0] = tagChunk
	copy((*buf)[1:], chunk)
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func marshalProto(v any, tagged bool) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%s codec: cannot marshal %T", chunkCodecName, v)
	}
	var prefix []byte
	if tagged {
		prefix = []byte{tagProto}
	}
	b, err := proto.MarshalOptions{}.MarshalAppend(prefix, m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (chunkCodec) Unmarshal(data mem.BufferSlice, v any) error {
	var dst *[]byte // the chunk field to fill, when v is a stream message
	switch m := v.(type) {
	case *pb.PutRequest:
		c, ok := m.GetMsg().(*pb.PutRequest_Chunk)
		if !ok {
			c = &pb.PutRequest_Chunk{}
		}
		m.Msg, dst = c, &c.Chunk
	case *pb.PutPartRequest:
		c, ok := m.GetMsg().(*pb.PutPartRequest_Chunk)
		if !ok {
			c = &pb.PutPartRequest_Chunk{}
		}
		m.Msg, dst = c, &c.Chunk
	case *pb.GetResponse:
		c, ok := m.GetMsg().(*pb.GetResponse_Chunk)
		if !ok {
			c = &pb.GetResponse_Chunk{}
		}
		m.Msg, dst = c, &c.Chunk
	default:
		pm, ok := v.(proto.Message)
		if !ok {
			return fmt.Errorf("%s codec: cannot unmarshal into %T", chunkCodecName, v)
		}
		return proto.Unmarshal(data.Materialize(), pm)
	}
	n := data.Len()
	if n == 0 {
		return fmt.Errorf("%s codec: empty frame", chunkCodecName)
	}
	tag := firstByte(data)
	switch tag {
	case tagChunk:
		out := *dst
		if cap(out) < n-1 {
			out = make([]byte, n-1)
		}
		out = out[:n-1]
		skip := 1
		off := 0
		for _, b := range data {
			p := b.ReadOnlyData()
			if skip > 0 {
				if len(p) == 0 {
					continue
				}
				p, skip = p[1:], 0
			}
			off += copy(out[off:], p)
		}
		*dst = out
		return nil
	case tagProto:
		raw := data.Materialize()[1:]
		pm := v.(proto.Message)
		proto.Reset(pm)
		return proto.Unmarshal(raw, pm)
	default:
		return fmt.Errorf("%s codec: unknown frame tag %d", chunkCodecName, tag)
	}
}

func firstByte(data mem.BufferSlice) byte {
	for _, b := range data {
		if p := b.ReadOnlyData(); len(p) > 0 {
			return p[0]
		}
	}
	return 0
}
