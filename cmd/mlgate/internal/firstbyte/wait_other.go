//go:build !unix

package firstbyte

import (
	"net"
	"time"
)

// waitReadable does not wait where peeking at a socket is not supported: the server's own timeouts
// apply as they would without the Listener.
func waitReadable(net.Conn, time.Duration) bool { return true }
