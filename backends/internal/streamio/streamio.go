// Package streamio holds the small streaming helpers shared by the in-tree backends.
package streamio

import (
	"context"
	"io"
	"sync"
)

// BufferSize is the copy buffer. Large buffers turn a multi-GiB upload into few, large write calls,
// which is what lets localfs run at disk speed.
const BufferSize = 1 << 20

var buffers = sync.Pool{New: func() any { b := make([]byte, BufferSize); return &b }}

// Copy copies src to dst through a pooled BufferSize buffer until src reports io.EOF, and stops with
// ctx's error as soon as ctx is done, checked between reads: a source that keeps yielding bytes cannot
// carry an upload past its cancellation. It fills the buffer before each write so that a source
// yielding small chunks (a network body) still produces large writes. It never uses dst's ReadFrom or
// src's WriteTo, which would bypass both the buffer and the cancellation checks.
//
// Errors: ctx.Err(), or the first error of src (other than io.EOF) or dst, unchanged. Bytes that src
// returned together with an error are written before the error is returned.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	var written int64
	for {
		filled := 0
		var rerr error
		for filled < len(buf) && rerr == nil {
			if err := ctx.Err(); err != nil {
				rerr = err
				break
			}
			var n int
			n, rerr = src.Read(buf[filled:])
			filled += n
		}
		if filled > 0 {
			n, err := dst.Write(buf[:filled])
			written += int64(n)
			if err != nil {
				return written, err
			}
			if n != filled {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}
