// Package s3util holds what the s3 and minio backends share: the guard that keeps a bad body from
// ever reaching an S3 server complete, upload ids that carry an expected sha256, the part-list rules,
// and spooling of parts of unknown size.
package s3util

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/mlgate/mlgate/backends"
)

// Guard passes a body to the SDK and judges it before its last byte leaves: the bytes that complete a
// declared size (or the bytes that came with io.EOF when the size is unknown) are withheld until the
// body has proved to end there and, when a sha256 is expected, to hash to it. A bad body therefore
// never reaches the server complete, so S3 cannot commit it, whatever the HTTP stack does with an
// error that arrives together with data.
type Guard struct {
	ctx  context.Context
	r    io.Reader
	size int64 // declared size, -1 when unknown
	want string
	h    hash.Hash // nil unless want is set

	n      int64
	done   bool  // state is final: err is io.EOF or a failure
	err    error // Verdict once done
	peek   [1]byte
	failed error // the failure, for error reporting after the request
}

func NewGuard(ctx context.Context, r io.Reader, size int64, wantSHA256 string) *Guard {
	g := &Guard{ctx: ctx, r: r, size: size, want: wantSHA256}
	if wantSHA256 != "" {
		g.h = sha256.New()
	}
	return g
}

func (g *Guard) Read(p []byte) (int, error) {
	if g.done {
		return 0, g.err
	}
	// The SDK does not look at the context between reads; checking here stops a body that keeps
	// yielding after cancellation.
	if err := g.ctx.Err(); err != nil {
		return 0, g.Fail(err)
	}
	if g.size >= 0 {
		rem := g.size - g.n
		if rem == 0 {
			return 0, g.Settle()
		}
		if int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := g.r.Read(p)
	if n > 0 {
		if g.h != nil {
			g.h.Write(p[:n])
		}
		g.n += int64(n)
	}
	switch {
	case err == io.EOF && g.size >= 0 && g.n < g.size:
		return 0, g.Fail(fmt.Errorf("%w: body has %d bytes, declared %d", backends.ErrSizeMismatch, g.n, g.size))
	case err == io.EOF:
		if verr := g.Verdict(); verr != io.EOF {
			return 0, verr // the final bytes are withheld
		}
		return n, nil // io.EOF follows on the next call
	case err != nil:
		return 0, g.Fail(err)
	case g.size >= 0 && g.n == g.size:
		if verr := g.Settle(); verr != io.EOF {
			return 0, verr
		}
		return n, nil
	}
	return n, nil
}

// Settle reaches the verdict once the declared size has been read, peeking one byte past it so that
// a longer body is caught.
func (g *Guard) Settle() error {
	if g.done {
		return g.err
	}
	for range 100 { // io.Reader allows (0, nil); a source that keeps doing that is broken
		n, err := g.r.Read(g.peek[:])
		if n > 0 {
			return g.Fail(fmt.Errorf("%w: body is longer than the declared %d bytes", backends.ErrSizeMismatch, g.size))
		}
		if err == io.EOF {
			return g.Verdict()
		}
		if err != nil {
			return g.Fail(err)
		}
	}
	return g.Fail(io.ErrNoProgress)
}

func (g *Guard) Verdict() error {
	if g.h != nil {
		if sum := hex.EncodeToString(g.h.Sum(nil)); sum != g.want {
			return g.Fail(fmt.Errorf("%w: body has sha256 %s, expected %s", backends.ErrChecksum, sum, g.want))
		}
	}
	g.done, g.err = true, io.EOF
	return io.EOF
}

func (g *Guard) Fail(err error) error {
	g.done, g.err, g.failed = true, err, err
	return err
}

// Complete reports whether the whole body passed, for a request the server accepted: a body the SDK
// stopped reading early was not stored whole.
func (g *Guard) Complete() error {
	if g.failed != nil {
		return g.failed
	}
	if !g.done {
		if g.size < 0 || g.n < g.size {
			return fmt.Errorf("%w: upload stopped after %d bytes", backends.ErrSizeMismatch, g.n)
		}
		if err := g.Settle(); err != io.EOF {
			return err
		}
	}
	return nil
}

// Blame prefers the body's own failure over the error the transfer reported because of it: the
// caller needs ErrSizeMismatch or its reader's error, not a broken-connection error.
func (g *Guard) Blame(err error) error {
	if g.failed != nil && !errors.Is(err, g.failed) {
		return fmt.Errorf("%w (%v)", g.failed, err)
	}
	return err
}

// N is the number of body bytes read so far.
func (g *Guard) N() int64 { return g.n }
