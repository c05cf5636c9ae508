//go:build unix

package firstbyte

import (
	"net"
	"syscall"
	"time"
)

// waitReadable waits, for idle at most (<= 0: no limit), until c has a byte to read or its peer has
// closed it, without consuming anything: the byte is peeked. False when the wait timed out or failed.
func waitReadable(c net.Conn, idle time.Duration) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	if idle > 0 {
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil {
			return false
		}
		defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	}
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		// EAGAIN: nothing yet, so the poller waits for readability (or the deadline) and calls again.
		// Anything else (a byte, the peer's FIN, a reset) is for the server to read.
		return rerr != syscall.EAGAIN && rerr != syscall.EINTR
	})
	return err == nil
}
