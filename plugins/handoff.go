package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/mlgate/mlgate/backends/connbody"
	pb "github.com/mlgate/mlgate/plugins/proto"
)

// Handoff: when a plugin's Get reader is the rest of an HTTP response on a TCP connection of its own
// (an S3 backend's direct get, backends/connbody), the plugin does not copy the bytes to the host at
// all. It passes the connection's descriptor over the raw get connection (a Unix socket, SCM_RIGHTS)
// with the few body bytes already read, and the host reads the body off the S3 server's socket itself,
// which its WriteTo splices to the client. See GetResponse.handoff in backend.proto.
//
// Why: each copy between processes costs about 0.3 CPU-seconds per GiB in the kernel even when it is
// spliced, and on 2 cores a GET is CPU-bound; the plugin path would otherwise pay the S3 server's
// socket, the plugin's socket and the client's socket, against two for an in-process backend.
//
// The plugin cannot vouch for bytes it never sees, so the host checks the length itself (connbody's
// errors). A plugin that dies after the handoff does not break the download.

// useHandoff is a tuning knob (host side): accept handed-over connections in raw gets.
var useHandoff = true

// handoffs counts the handoffs the host took, so that tests can tell that the path really ran.
var handoffs atomic.Int64

// handoffMaxPrefix bounds the prefix a plugin may send: an S3 direct get's is at most the response
// header buffer (16 KiB).
const handoffMaxPrefix = 1 << 20

// detacher is what a Get reader implements when its bytes can be handed over.
type detacher interface {
	Detach() (connbody.Detached, error)
}

// canHandOff reports whether the plugin can hand rc's source over on conn.
func canHandOff(conn net.Conn, rc io.Reader) bool {
	_, unix := conn.(*net.UnixConn)
	_, ok := rc.(detacher)
	return unix && ok
}

// sendHandoff (plugin side) detaches rc and describes it to the host in the Info message; send sends
// that message. It then passes the descriptor and the prefix on conn and closes conn. Errors: the
// detach's, send's and conn's.
func sendHandoff(conn net.Conn, rc io.Reader, info *pb.Info, send func(*pb.GetResponse) error) error {
	defer conn.Close()
	d, err := rc.(detacher).Detach()
	if err != nil {
		return err
	}
	defer d.File.Close()
	msg := &pb.GetResponse{
		Msg: &pb.GetResponse_Info{Info: info}, Raw: true,
		Handoff: &pb.Handoff{Remain: d.Remain, UntilEof: d.UntilEOF, PrefixLen: int64(len(d.Prefix))},
	}
	if err := send(msg); err != nil {
		return err
	}
	// SCM_RIGHTS needs at least one byte of data on a stream socket: the marker.
	data := append([]byte{1}, d.Prefix...)
	n, oobn, err := conn.(*net.UnixConn).WriteMsgUnix(data, syscall.UnixRights(int(d.File.Fd())), nil)
	if err != nil {
		return fmt.Errorf("handoff: %w", err)
	}
	if oobn == 0 {
		return errors.New("handoff: descriptor not sent")
	}
	if n < len(data) {
		if _, err := conn.Write(data[n:]); err != nil {
			return fmt.Errorf("handoff: %w", err)
		}
	}
	return nil
}

// receiveHandoff (host side) reads a handoff off conn, closes conn and rebuilds the body, reading it
// in ctx. Errors: a protocol error when the message or descriptor is missing or malformed, conn's
// errors.
func receiveHandoff(ctx context.Context, conn net.Conn, h *pb.Handoff) (*connbody.Body, error) {
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, errProtocol(fmt.Sprintf("handoff over a %T", conn))
	}
	if h.GetPrefixLen() < 0 || h.GetPrefixLen() > handoffMaxPrefix || h.GetRemain() < 0 {
		return nil, errProtocol(fmt.Sprintf("handoff of %d + %d bytes", h.GetPrefixLen(), h.GetRemain()))
	}
	data := make([]byte, 1+h.GetPrefixLen())
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(data, oob)
	if err != nil {
		return nil, fmt.Errorf("handoff: %w", err)
	}
	file, err := parseRights(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if n == 0 || data[0] != 1 {
		_ = file.Close()
		return nil, errProtocol("handoff without its marker")
	}
	if _, err := io.ReadFull(uc, data[n:]); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("handoff prefix: %w", err)
	}
	return connbody.Rebuild(ctx, connbody.Detached{File: file, Prefix: data[1:], Remain: h.GetRemain(), UntilEOF: h.GetUntilEof()})
}

// parseRights takes the one descriptor of an SCM_RIGHTS message; any other descriptors are closed.
func parseRights(oob []byte) (*os.File, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, errProtocol("handoff control message: " + err.Error())
	}
	var fds []int
	for i := range msgs {
		if got, err := syscall.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, got...)
		}
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			_ = syscall.Close(fd)
		}
		return nil, errProtocol(fmt.Sprintf("handoff carried %d descriptors, want 1", len(fds)))
	}
	return os.NewFile(uintptr(fds[0]), "handoff"), nil
}
