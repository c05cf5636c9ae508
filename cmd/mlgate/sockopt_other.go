//go:build !unix

package main

import "syscall"

// largeSendBuffer keeps the platform's default buffers where the socket option differs.
func largeSendBuffer(_, _ string, _ syscall.RawConn) error { return nil }
