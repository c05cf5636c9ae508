package backends

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
)

// NewReadSeeker returns a seekable view of the blob key of size bytes, for http.ServeContent: it serves
// Range requests straight from b without buffering the blob.
//
// No Get is issued until the first Read, and then it starts at the current offset and runs to the end
// of the blob. A Seek to another offset closes the open reader; the next Read opens a new one there.
// Reading at or past size returns io.EOF without calling Get, so a Seek to the end (which ServeContent
// does to learn the size) costs nothing.
//
// Errors: Read returns Get's error unchanged (ErrNotFound when the blob is gone), and
// io.ErrUnexpectedEOF when the blob ends before size. Seek fails on an invalid whence or a negative
// result. After Close, Read and Seek return fs.ErrClosed. Close returns the open reader's Close error.
func NewReadSeeker(ctx context.Context, b Backend, key string, size int64) io.ReadSeekCloser {
	return &readSeeker{ctx: ctx, b: b, key: key, size: size}
}

type readSeeker struct {
	ctx    context.Context
	b      Backend
	key    string
	size   int64
	off    int64
	rc     io.ReadCloser // positioned at off; nil until the next Read needs it
	closed bool
}

func (r *readSeeker) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fs.ErrClosed
	}
	if r.off >= r.size {
		r.drop()
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.rc == nil {
		rc, _, err := r.b.Get(r.ctx, r.key, Range{Offset: r.off, Length: -1})
		if err != nil {
			return 0, err
		}
		r.rc = rc
	}
	// Never hand out bytes past size: the metadata's size is what ServeContent promised the client.
	if rem := r.size - r.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	switch {
	case err == io.EOF && r.off < r.size:
		r.drop()
		return n, fmt.Errorf("blob %q ended at %d of %d bytes: %w", r.key, r.off, r.size, io.ErrUnexpectedEOF)
	case err == io.EOF || (err == nil && r.off == r.size):
		// Done: release the backend's stream now rather than when the caller gets round to Close. The
		// next Read reports io.EOF.
		r.drop()
		return n, nil
	case err != nil:
		r.drop() // a later Read starts afresh at the offset reached
	}
	return n, err
}

func (r *readSeeker) Seek(offset int64, whence int) (int64, error) {
	if r.closed {
		return 0, fs.ErrClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.off + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return 0, fmt.Errorf("seek %q: invalid whence %d", r.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %q: negative position %d", r.key, abs)
	}
	if abs != r.off {
		r.drop()
		r.off = abs
	}
	return abs, nil
}

// drop closes the open reader, if any. Its Close error is of no interest: the bytes read so far were
// delivered and the rest are unwanted.
func (r *readSeeker) drop() {
	if r.rc != nil {
		_ = r.rc.Close()
		r.rc = nil
	}
}

func (r *readSeeker) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	if err != nil && !errors.Is(err, fs.ErrClosed) {
		return err
	}
	return nil
}
