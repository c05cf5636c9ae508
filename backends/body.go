package backends

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// BodyOptions say what a Body checks beyond the declared size, and how it delivers its verdict.
type BodyOptions struct {
	// SHA256, when set (lowercase hex), is the sum the body must hash to, else the verdict is
	// ErrChecksum.
	SHA256 string
	// Hash computes the body's sha256 (Sum) even when SHA256 is empty.
	Hash bool
	// Withhold keeps back the bytes that end the body until it has proved to end there and to hash to
	// SHA256. Without it the verdict comes together with the last bytes, which suits a consumer that
	// stops at the first error; with it a bad body never reaches the consumer complete, which suits one
	// that might act on bytes delivered together with an error (an HTTP stack that sends what it has
	// read and lets the server commit it).
	Withhold bool
}

// Body counts a body on its way to a backend (or to a storage server), hashes it when asked, and turns
// its end into a verdict: io.EOF when it has the declared size and the expected sha256, otherwise a
// sticky error that the consumer receives from Read before it can commit.
//
// The verdict comes no later than the read that delivers the last declared byte: a consumer that reads
// exactly the declared size and then commits without asking for io.EOF still sees a mismatch first. To
// judge that last byte, Body peeks one byte past the declared size, so a body longer than declared is
// caught too. With BodyOptions.Withhold the bytes of that final read are returned only once the verdict
// is io.EOF (a failure returns 0 and the error instead), and the io.EOF itself follows on the next
// call. Read also ends the body with ctx's error once ctx is done, so a consumer that never looks at its
// context between reads still stops at cancellation.
//
// Body is not safe for concurrent use; like any reader, it has one consumer.
type Body struct {
	ctx      context.Context
	r        io.Reader
	size     int64     // declared size, -1 when unknown
	want     string    // expected sha256 hex, "" for none
	h        hash.Hash // nil: count only
	withhold bool

	n    int64  // bytes read from r (with Withhold, some may not have been delivered yet)
	done bool   // the verdict is in err
	err  error  // io.EOF on success
	sum  string // hex sha256 of the body, once done and hashing
	peek [1]byte
}

// NewBody wraps r, declared to hold size bytes (-1: unknown).
func NewBody(ctx context.Context, r io.Reader, size int64, opts BodyOptions) *Body {
	b := &Body{ctx: ctx, r: r, size: size, want: opts.SHA256, withhold: opts.Withhold}
	if opts.Hash || opts.SHA256 != "" {
		b.h = sha256.New()
	}
	return b
}

// Read passes the body on; see Body for when it returns the verdict instead of io.EOF.
func (b *Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.err
	}
	if err := b.ctx.Err(); err != nil {
		return 0, b.finish(err)
	}
	if b.size >= 0 {
		rem := b.size - b.n
		if rem == 0 {
			return 0, b.Settle()
		}
		if int64(len(p)) > rem {
			p = p[:rem]
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.r.Read(p)
	if n > 0 {
		if b.h != nil {
			b.h.Write(p[:n])
		}
		b.n += int64(n)
	}
	switch {
	case err == io.EOF:
		return b.deliver(n, b.verdict())
	case err != nil:
		return b.deliver(n, b.finish(err))
	case b.size >= 0 && b.n == b.size:
		// The last declared byte: the verdict goes with it (see Body).
		return b.deliver(n, b.Settle())
	}
	return n, nil
}

// deliver returns the n bytes of a read that ended the body, with its verdict. With Withhold a failure
// keeps them back, and a success returns them alone: io.EOF is sticky and comes on the next call.
func (b *Body) deliver(n int, verdict error) (int, error) {
	if !b.withhold {
		return n, verdict
	}
	if verdict != io.EOF {
		return 0, verdict
	}
	return n, nil
}

// Settle reaches the verdict once the declared size has been read, peeking one byte past it so that a
// longer body is caught, and returns it (io.EOF on success). Called earlier (the declared size not
// reached, or unknown and the body not ended), it fails with ErrSizeMismatch: the consumer stopped
// before the body ended, so it cannot have taken all of it. A consumer's caller calls it up front for a
// declared size of 0, which a consumer may store without reading at all.
func (b *Body) Settle() error {
	if b.done {
		return b.err
	}
	if b.size < 0 || b.n < b.size {
		return b.finish(fmt.Errorf("%w: reading stopped after %d bytes, before the body ended", ErrSizeMismatch, b.n))
	}
	for range 100 { // io.Reader allows (0, nil); a source that keeps doing that is broken
		n, err := b.r.Read(b.peek[:])
		if n > 0 {
			return b.finish(fmt.Errorf("%w: body is longer than the declared %d bytes", ErrSizeMismatch, b.size))
		}
		if err == io.EOF {
			return b.verdict()
		}
		if err != nil {
			return b.finish(err)
		}
	}
	return b.finish(io.ErrNoProgress)
}

// verdict judges a body that has ended.
func (b *Body) verdict() error {
	if b.size >= 0 && b.n != b.size {
		return b.finish(fmt.Errorf("%w: body has %d bytes, declared %d", ErrSizeMismatch, b.n, b.size))
	}
	if b.h != nil {
		b.sum = hex.EncodeToString(b.h.Sum(nil))
		if b.want != "" && b.sum != b.want {
			return b.finish(fmt.Errorf("%w: body has sha256 %s, expected %s", ErrChecksum, b.sum, b.want))
		}
	}
	return b.finish(io.EOF)
}

func (b *Body) finish(err error) error {
	b.done, b.err = true, err
	return err
}

// Failure is the verdict if it is a failure; nil while undecided or on success.
func (b *Body) Failure() error {
	if !b.done || b.err == io.EOF {
		return nil
	}
	return b.err
}

// Complete judges the body after its consumer reported success, and returns nil only if the whole
// body passed: a body the consumer stopped reading early fails with ErrSizeMismatch (see Settle).
func (b *Body) Complete() error {
	if !b.done {
		b.Settle()
	}
	return b.Failure()
}

// Blame prefers the body's own failure over the error its consumer reported because of it: the caller
// needs ErrSizeMismatch, ErrChecksum or the source's error, not a broken-connection error. Only the
// failure stays visible to errors.Is; err's text is kept.
func (b *Body) Blame(err error) error {
	if f := b.Failure(); f != nil && !errors.Is(err, f) {
		return fmt.Errorf("%w (%v)", f, err)
	}
	return err
}

// N is the number of body bytes read so far, including any Withhold keeps back.
func (b *Body) N() int64 { return b.n }

// Sum is the body's lowercase hex sha256 once the verdict is io.EOF and hashing was asked for
// (BodyOptions.Hash or SHA256), else "".
func (b *Body) Sum() string {
	if !b.done || b.err != io.EOF {
		return ""
	}
	return b.sum
}
