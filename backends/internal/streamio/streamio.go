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

// Copy copies src to dst through two pooled BufferSize buffers until src reports io.EOF, and stops
// with ctx's error as soon as ctx is done, checked between reads: a source that keeps yielding bytes
// cannot carry an upload past its cancellation. Reading (which, behind backends.Checked, includes
// hashing) runs in a second goroutine while the caller's goroutine writes, so a large upload keeps
// both a network/hash stage and a disk stage busy. Each buffer is filled before it is written, so a
// source yielding small chunks (a network body) still produces large writes. It never uses dst's
// ReadFrom or src's WriteTo, which would bypass both the buffers and the cancellation checks. The
// reading goroutine has finished with src when Copy returns.
//
// Errors: ctx.Err(), or the first error of src (other than io.EOF) or dst, unchanged. Bytes that src
// returned together with an error are written before the error is returned.
func Copy(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	type chunk struct {
		buf *[]byte
		n   int
		err error
	}
	const depth = 2
	free := make(chan *[]byte, depth)
	full := make(chan chunk, depth) // never blocks: at most depth buffers exist
	stop := make(chan struct{})
	for range depth {
		free <- buffers.Get().(*[]byte)
	}
	go func() {
		defer close(full)
		for {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-stop:
				return
			}
			buf := *bp
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
			full <- chunk{bp, filled, rerr}
			if rerr != nil {
				return
			}
		}
	}()

	var written int64
	var result error
	finished := false
	for c := range full {
		if !finished && c.n > 0 {
			n, err := dst.Write((*c.buf)[:c.n])
			written += int64(n)
			if err == nil && n != c.n {
				err = io.ErrShortWrite
			}
			if err != nil {
				result, finished = err, true
				close(stop)
			}
		}
		if !finished && c.err != nil {
			if c.err != io.EOF {
				result = c.err
			}
			finished = true
		}
		if finished {
			buffers.Put(c.buf)
		} else {
			free <- c.buf
		}
	}
	// Buffers still parked in free were never handed back by the loop above.
	for {
		select {
		case bp := <-free:
			buffers.Put(bp)
		default:
			return written, result
		}
	}
}
