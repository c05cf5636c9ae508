package plugins

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/connbody"
	"github.com/mlgate/mlgate/backends/s3test"
	pb "github.com/mlgate/mlgate/plugins/proto"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unixPair is a connected pair of Unix stream sockets as *net.UnixConn.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// tcpBody serves payload (after a header-like preamble the body skips) on a loopback connection that
// the server closes at the end, and returns a connbody.Body of it whose first preLen bytes were
// "already read".
func tcpBody(t *testing.T, payload []byte, preLen int) *connbody.Body {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write(payload[preLen:])
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return connbody.New(context.Background(), c.(*net.TCPConn), append([]byte(nil), payload[:preLen]...), int64(len(payload)-preLen), true)
}

// TestHandoffRoundTrip hands a body over a Unix socket pair and reads it on the other side, by Read
// and by WriteTo to a TCP connection, for prefixes from none to many bytes.
func TestHandoffRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("handoff!"), 3<<20/8+5)
	for _, preLen := range []int{0, 1, 4096, 16 << 10} {
		for _, how := range []string{"read", "writeto-tcp"} {
			t.Run(fmt.Sprintf("prefix-%d/%s", preLen, how), func(t *testing.T) {
				body := tcpBody(t, payload, preLen)
				plugin, host := unixPair(t)
				var sent *pb.GetResponse
				errc := make(chan error, 1)
				go func() {
					errc <- sendHandoff(plugin, body, &pb.Info{Key: "k", Size: int64(len(payload))}, func(m *pb.GetResponse) error { sent = m; return nil })
				}()
				// sendHandoff sends the Info before the descriptor; wait for both.
				if err := <-errc; err != nil {
					t.Fatalf("send: %v", err)
				}
				if sent == nil || !sent.GetRaw() || sent.GetHandoff() == nil || sent.GetInfo().GetSize() != int64(len(payload)) {
					t.Fatalf("info message: %v", sent)
				}
				if h := sent.GetHandoff(); h.GetPrefixLen() != int64(preLen) || h.GetRemain() != int64(len(payload)-preLen) || !h.GetUntilEof() {
					t.Fatalf("handoff: %v", h)
				}
				got, err := receiveHandoff(t.Context(), host, sent.GetHandoff())
				if err != nil {
					t.Fatalf("receive: %v", err)
				}
				defer got.Close()
				var data []byte
				switch how {
				case "read":
					data, err = io.ReadAll(struct{ io.Reader }{got})
				case "writeto-tcp":
					data, err = writeToTCP(t, got)
				}
				if err != nil || !bytes.Equal(data, payload) {
					t.Fatalf("body: %d of %d bytes, equal %v, err %v", len(data), len(payload), bytes.Equal(data, payload), err)
				}
			})
		}
	}
}

// writeToTCP runs wt.WriteTo into one end of a loopback TCP connection and returns what the other end
// read.
func writeToTCP(t *testing.T, wt io.WriterTo) ([]byte, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		data []byte
		err  error
	}
	rc := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			rc <- res{nil, err}
			return
		}
		defer c.Close()
		d, err := io.ReadAll(c)
		rc <- res{d, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, werr := wt.WriteTo(c)
	_ = c.Close()
	r := <-rc
	return r.data, errors.Join(werr, r.err)
}

// TestHandoffTruncated: a connection that ends before the announced length fails the host's read with
// ErrUnavailable, although the plugin is out of the transfer.
func TestHandoffTruncated(t *testing.T) {
	payload := bytes.Repeat([]byte{7}, 1<<20)
	body := tcpBody(t, payload, 10)
	d, err := body.Detach()
	if err != nil {
		t.Fatal(err)
	}
	d.Remain += 100 // the server sends 100 bytes less than this says
	got, err := connbody.Rebuild(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	n, err := io.Copy(io.Discard, struct{ io.Reader }{got})
	if !errors.Is(err, backends.ErrUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) || n != int64(len(payload)) {
		t.Fatalf("read %d bytes, err %v; want %d then ErrUnavailable", n, err, len(payload))
	}
}

// isProtocolErr reports whether err is the bridge's protocol error.
func isProtocolErr(err error) bool {
	return status.Code(err) == codes.InvalidArgument && strings.Contains(err.Error(), "plugin protocol")
}

// sendRights writes data with fd as SCM_RIGHTS on c, then closes c; the returned channel is closed
// when it is done.
func sendRights(c *net.UnixConn, data []byte, fd int) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = c.WriteMsgUnix(data, syscall.UnixRights(fd), nil)
		_ = c.Close()
	}()
	return done
}

// TestHandoffMalformed: the host refuses handoffs without a descriptor, without the marker, or with
// impossible sizes, as protocol errors and without hanging.
func TestHandoffMalformed(t *testing.T) {
	t.Run("no-descriptor", func(t *testing.T) {
		plugin, host := unixPair(t)
		go func() { _, _ = plugin.Write([]byte{1, 'a', 'b'}); _ = plugin.Close() }()
		_, err := receiveHandoff(t.Context(), host, &pb.Handoff{PrefixLen: 2, Remain: 5})
		if !isProtocolErr(err) || !strings.Contains(err.Error(), "descriptors") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("bad-marker", func(t *testing.T) {
		plugin, host := unixPair(t)
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		done := sendRights(plugin, []byte{9}, int(f.Fd()))
		_, err = receiveHandoff(t.Context(), host, &pb.Handoff{Remain: 5})
		<-done
		if !isProtocolErr(err) || !strings.Contains(err.Error(), "marker") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("not-tcp", func(t *testing.T) {
		plugin, host := unixPair(t)
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		done := sendRights(plugin, []byte{1}, int(f.Fd()))
		_, err = receiveHandoff(t.Context(), host, &pb.Handoff{Remain: 5})
		<-done
		if err == nil || !strings.Contains(err.Error(), "connbody: rebuild") {
			t.Fatalf("a handed-over file that is no connection: err %v", err)
		}
	})
	t.Run("sizes", func(t *testing.T) {
		_, host := unixPair(t)
		for _, h := range []*pb.Handoff{{PrefixLen: -1}, {PrefixLen: handoffMaxPrefix + 1}, {Remain: -1}} {
			if _, err := receiveHandoff(t.Context(), host, h); !isProtocolErr(err) {
				t.Errorf("handoff %v: err %v", h, err)
			}
		}
	})
}

// launchS3 starts cmd/mlgate-backend serving the S3 backend of type typ ("minio" or "s3", which take
// the same config) on s, under a prefix of its own.
func launchS3(t *testing.T, s s3test.Server, typ string) *Supervised {
	t.Helper()
	path, sum := build(t, "github.com/mlgate/mlgate/cmd/mlgate-backend")
	cfg, _ := json.Marshal(map[string]any{
		"endpoint": s.Endpoint, "bucket": s.Bucket, "path_style": true,
		"prefix":         fmt.Sprintf("plugins-handoff-%d-%d/", os.Getpid(), time.Now().UnixNano()),
		"access_key_env": s3test.AccessKeyEnv, "secret_key_env": s3test.SecretKeyEnv,
	})
	b, err := Launch(context.Background(), Spec{Name: "s3", Path: path, SHA256: sum, Args: []string{typ}, Config: cfg}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b.(*Supervised)
}

// TestHandoffS3Plugin: a real plugin process of each S3 backend type on each S3 server hands its
// direct-get connections over. Whole and ranged gets give the right bytes by Read and by WriteTo, the
// host took handoffs, a download survives the plugin's death once handed over, and a missing key is
// still ErrNotFound.
func TestHandoffS3Plugin(t *testing.T) {
	for _, typ := range []string{"minio", "s3"} {
		t.Run(typ, func(t *testing.T) {
			s3test.ForEach(t, func(t *testing.T, s s3test.Server) {
				testHandoffS3Plugin(t, launchS3(t, s, typ))
			})
		})
	}
}

// testHandoffS3Plugin is TestHandoffS3Plugin on one plugin process b.
func testHandoffS3Plugin(t *testing.T, b *Supervised) {
	ctx := t.Context()
	const size = 8<<20 + 17
	const key = "c/0000000000000001/handoff"
	want := patternSum(size)
	if _, err := b.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{SHA256: want}); err != nil {
		t.Fatal(err)
	}
	payload, err := io.ReadAll(&pattern{n: size})
	if err != nil {
		t.Fatal(err)
	}
	before := handoffs.Load()

	rc, info, err := b.Get(ctx, key, backends.All)
	if err != nil || info.Size != size {
		t.Fatalf("get: %+v %v", info, err)
	}
	data, err := writeToTCP(t, rc.(io.WriterTo))
	_ = rc.Close()
	if err != nil || sum(data) != want {
		t.Fatalf("whole get by WriteTo: %d bytes, err %v", len(data), err)
	}

	rng := backends.Range{Offset: 1<<20 + 3, Length: 2 << 20}
	rc, info, err = b.Get(ctx, key, rng)
	if err != nil || info.Size != size {
		t.Fatalf("ranged get: %+v %v", info, err)
	}
	data, err = io.ReadAll(struct{ io.Reader }{rc})
	_ = rc.Close()
	if err != nil || !bytes.Equal(data, payload[rng.Offset:rng.Offset+rng.Length]) {
		t.Fatalf("ranged get by Read: %d bytes, err %v", len(data), err)
	}
	if n := handoffs.Load() - before; n != 2 {
		t.Fatalf("%d handoffs for 2 gets", n)
	}

	// Once handed over, the body no longer depends on the plugin.
	rc, _, err = b.Get(ctx, key, backends.All)
	if err != nil {
		t.Fatal(err)
	}
	kill(t, b)
	data, err = io.ReadAll(struct{ io.Reader }{rc})
	_ = rc.Close()
	if err != nil || sum(data) != want {
		t.Fatalf("get across the plugin's death: %d bytes, err %v", len(data), err)
	}
	waitRestarts(t, b, 1)
	if _, _, err := b.Get(ctx, "c/0000000000000001/missing", backends.All); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := b.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffDeclined: with handoffs off on the host, the same plugin copies the bytes over the raw
// connection (spliced from its S3 socket) and the host takes none.
func TestHandoffDeclined(t *testing.T) {
	s := s3test.Lookup(t, "versitygw")
	useHandoff = false
	t.Cleanup(func() { useHandoff = true })
	b := launchS3(t, s, "minio")
	ctx := t.Context()
	const size = 3<<20 + 5
	const key = "c/0000000000000001/declined"
	if _, err := b.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	before := handoffs.Load()
	rc, _, err := b.Get(ctx, key, backends.All)
	if err != nil {
		t.Fatal(err)
	}
	data, err := writeToTCP(t, rc.(io.WriterTo))
	_ = rc.Close()
	if err != nil || sum(data) != patternSum(size) {
		t.Fatalf("get: %d bytes, err %v", len(data), err)
	}
	if n := handoffs.Load() - before; n != 0 {
		t.Fatalf("%d handoffs although the host declines them", n)
	}
	_ = b.Delete(ctx, key)
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
