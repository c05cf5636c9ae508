//go:build unix

package main

import "syscall"

// sendBufferBytes is the kernel send buffer of accepted connections. Measured on loopback with 1 GiB
// downloads (sendfile from localfs): 4 MiB raised throughput by about 4% over autotuning, with fewer
// wake-ups on both sides; larger buffers gained nothing. It costs kernel memory only while a
// connection has unsent data.
const sendBufferBytes = 4 << 20

// largeSendBuffer is a net.ListenConfig Control hook; accepted sockets inherit the listener's buffer.
func largeSendBuffer(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, sendBufferBytes)
	})
	if err != nil {
		return err
	}
	return serr
}
