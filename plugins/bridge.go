// Package plugins runs storage backends out of process, over hashicorp/go-plugin and gRPC.
//
// A plugin is a Go program whose main is Serve(factory); see plugins/example. The host starts one with
// Launch, which verifies the binary's sha256, negotiates the protocol version, configures the backend
// and supervises the process (health pings, restarts with backoff). The returned backends.Backend
// behaves like an in-process one: errors wrap the same sentinels, and a dead or unreachable plugin
// yields errors wrapping backends.ErrUnavailable (HTTP 503 at the gateway).
//
// Bytes travel over raw connections brokered by go-plugin (rawget.go, rawput.go) or, where those cannot
// be made, as streams of ChunkSize chunks; never as one message, and neither side buffers a payload.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlgate/mlgate/backends"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// ChunkSize is the size of the chunks of every byte stream. BenchmarkBridge (bench_test.go, 1 GiB per
// operation, 5 runs, localfs on tmpfs in a real child process over go-plugin's unix socket, 2 shared
// cores, raw-bytes codec, 16 MiB windows) measured, in MB/s and host+plugin CPU-seconds per GiB:
//
//	chunk     Put MB/s  CPU-s/GiB   Get MB/s  CPU-s/GiB
//	64 KiB       520      2.86        1013      1.66
//	256 KiB      678      2.45        1005      1.73
//	1 MiB        685      2.47        1050      1.65
//	4 MiB        669      2.64        1085      1.65
//	1 MiB, protobuf codec  574 MB/s 3.00 | 882 MB/s 1.98
//	in process (no bridge) 1253 MB/s 1.28 | 10494 MB/s 0.11
//
// 256 KiB to 4 MiB are equal within the noise (which reaches 20-40 % here; two earlier runs under
// heavier load ranked them differently), 64 KiB costs Put a quarter of its throughput. 1 MiB is the
// smallest size at the plateau: every concurrent stream holds one pooled buffer of this size on each
// side, so smaller is better for memory once throughput is flat.
const ChunkSize = 1 << 20

const (
	// minChunkSize and maxChunkSize bound the chunk size a host may ask for in GetRequest.
	minChunkSize = 16 << 10
	maxChunkSize = 4 << 20
	// maxMsgSize is the message limit on both sides: room for the largest chunk plus framing, yet small
	// enough that a broken peer cannot make the other allocate without bound. grpc-go's default receive
	// limit (4 MiB) would reject a 4 MiB chunk plus its frame, so it is set explicitly everywhere.
	maxMsgSize = 2 * maxChunkSize
)

// pluginName is the name of the only plugin in the plugin set of protocol version 1.
const pluginName = "backend"

// Handshake is go-plugin's handshake between mlgate and its backend plugins. The cookie keeps people
// from running a plugin binary by hand; it is not a security measure, and it must never change.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "MLGATE_BACKEND_PLUGIN",
	MagicCookieValue: "5c1f0e9b7d2a4c8e9f3b6a1d0e7c4b2a",
}

// Tuning knobs, variables only so that the benchmark can compare designs; production never changes them.
var (
	chunkSize     = ChunkSize // host side: chunks of Put and PutPart, and the size asked for in Get
	useChunkCodec = true      // host side: raw-bytes codec on streaming calls instead of protobuf
	useWindows    = true      // both sides: static HTTP/2 windows instead of grpc-go's dynamic ones
	// streamWindow and connWindow are the static HTTP/2 flow-control windows. A static window turns
	// off grpc-go's BDP estimation, which starts at 64 KiB and may grow every stream's window to
	// 16 MiB; the stream window bounds what one slow reader leaves buffered on the receiving side.
	streamWindow int32 = 16 << 20
	connWindow   int32 = 16 << 20
)

// pluginSets maps protocol versions to plugin sets. p serves (plugin side) or dispenses (host side).
func pluginSets(p *GRPCPlugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{1: {pluginName: p}}
}

// GRPCPlugin is the go-plugin glue of a backend (gRPC only). On the plugin side it serves the backend
// that Factory builds on the first Configure call (or Backend, when set: tests); on the host side it
// dispenses a *Client.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Factory backends.Factory
	Backend backends.Backend
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the backend service.
func (p *GRPCPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterBackendServer(s, &server{factory: p.Factory, b: p.Backend, broker: broker})
	return nil
}

// GRPCClient returns a *Client over c.
func (p *GRPCPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{c: pb.NewBackendClient(c), broker: broker}, nil
}

// dialOptions are the host's gRPC options for a plugin connection.
func dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{grpc.WithDefaultCallOptions(
		grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize))}
	if useWindows {
		opts = append(opts, grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow))
	}
	return opts
}

// serverOptions are the plugin's gRPC server options.
func serverOptions() []grpc.ServerOption {
	opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize)}
	if useWindows {
		opts = append(opts, grpc.InitialWindowSize(streamWindow), grpc.InitialConnWindowSize(connWindow))
	}
	return opts
}

// streamCallOptions apply to every streaming call. The limits repeat the dial options so that a
// connection made elsewhere (plugin.TestPluginGRPCConn) behaves the same.
func streamCallOptions() []grpc.CallOption {
	opts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsgSize), grpc.MaxCallSendMsgSize(maxMsgSize)}
	if useChunkCodec {
		opts = append(opts, grpc.CallContentSubtype(chunkCodecName))
	}
	return opts
}

// bufPool holds chunk buffers of chunkSize bytes (or larger) for Put and Get streams.
var bufPool sync.Pool

func getBuf(n int) *[]byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n)
	return &b
}

func putBuf(p *[]byte) { bufPool.Put(p) }

// sendChunks reads r in chunks of n bytes and passes each to send, reusing one buffer. It returns
// (readErr, nil) when r fails or ctx ends (readErr is then ctx's error, see fill), (nil, sendErr) when
// send fails, and (nil, nil) at the end of r.
func sendChunks(ctx context.Context, r io.Reader, n int, send func([]byte) error) (readErr, sendErr error) {
	bp := getBuf(n)
	defer putBuf(bp)
	buf := *bp
	for {
		k, err := fill(ctx, r, buf)
		if k > 0 {
			if serr := send(buf[:k]); serr != nil {
				return nil, serr
			}
		}
		switch {
		case err == io.EOF:
			return nil, nil
		case err != nil:
			return err, nil
		}
	}
}

// fill reads r into buf until buf is full (nil), r ends (io.EOF, whatever the count) or fails (its
// error), or ctx is done (ctx's error), and returns the bytes read.
//
// Unlike io.ReadFull it checks ctx before every Read, so a cancelled upload ends with ctx's error
// whatever the body does next. A body may keep yielding bytes after a cancellation and fail only
// later with an error of its own (a request body torn down with its request); the other sign of the
// cancellation, a raw connection closed by context.AfterFunc, arrives asynchronously and cannot be
// relied on to come first.
func fill(ctx context.Context, r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// --- conversions ---

func infoFromPB(i *pb.Info) backends.Info {
	out := backends.Info{Key: i.GetKey(), Size: i.GetSize(), ETag: i.GetEtag(), ContentType: i.GetContentType(), SHA256: i.GetSha256()}
	if ns := i.GetModTimeUnixNano(); ns != 0 {
		out.ModTime = time.Unix(0, ns).UTC()
	}
	return out
}

func infoToPB(i backends.Info) *pb.Info {
	out := &pb.Info{Key: i.Key, Size: i.Size, Etag: i.ETag, ContentType: i.ContentType, Sha256: i.SHA256}
	if !i.ModTime.IsZero() {
		out.ModTimeUnixNano = i.ModTime.UnixNano()
	}
	return out
}

func descFromPB(d *pb.Descriptor) backends.Descriptor {
	return backends.Descriptor{Name: d.GetName(), Version: d.GetVersion(), MinPartSize: d.GetMinPartSize(),
		MaxPartSize: d.GetMaxPartSize(), MaxParts: int(d.GetMaxParts()), ServerChecksums: d.GetServerChecksums()}
}

func descToPB(d backends.Descriptor) *pb.Descriptor {
	return &pb.Descriptor{Name: d.Name, Version: d.Version, MinPartSize: d.MinPartSize,
		MaxPartSize: d.MaxPartSize, MaxParts: int64(d.MaxParts), ServerChecksums: d.ServerChecksums}
}

func partsFromPB(ps []*pb.Part) []backends.Part {
	out := make([]backends.Part, len(ps))
	for i, p := range ps {
		out[i] = backends.Part{Number: int(p.GetNumber()), Size: p.GetSize(), ETag: p.GetEtag()}
	}
	return out
}

func partsToPB(ps []backends.Part) []*pb.Part {
	out := make([]*pb.Part, len(ps))
	for i, p := range ps {
		out[i] = &pb.Part{Number: int64(p.Number), Size: p.Size, Etag: p.ETag}
	}
	return out
}

func optsToPB(o backends.PutOptions) *pb.PutOptions {
	return &pb.PutOptions{ContentType: o.ContentType, Sha256: o.SHA256}
}

func optsFromPB(o *pb.PutOptions) backends.PutOptions {
	return backends.PutOptions{ContentType: o.GetContentType(), SHA256: o.GetSha256()}
}

// errProtocol reports a peer that broke the stream protocol (for instance a chunk before the header).
func errProtocol(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "plugin protocol: "+format, args...)
}

// wrapErr converts a call error into a backends error naming the operation.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", op, fromStatus(err))
}

// isTransport reports whether err says the connection to the plugin failed (see errTransport).
func isTransport(err error) bool { return errors.Is(err, errTransport) }
