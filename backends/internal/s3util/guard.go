// Package s3util holds what the s3 and minio backends share: the guard that keeps a bad body from
// ever reaching an S3 server complete, the mapping of S3's errors to the backends sentinels, upload ids
// that carry an expected sha256, the part-list rules and CompleteMultipart built on them, and spooling
// of parts of unknown size.
package s3util

import (
	"context"
	"io"

	"github.com/mlgate/mlgate/backends"
)

// NewGuard wraps a body for the SDK as a backends.Body that withholds its end: the bytes that complete
// a declared size (or the bytes that came with io.EOF when the size is unknown) are kept back until the
// body has proved to end there and, when wantSHA256 is set, to hash to it. A bad body therefore never
// reaches the server complete, so S3 cannot commit it, whatever the HTTP stack does with an error that
// arrives together with data. After the SDK call, Complete says whether the whole body passed (a body
// the SDK stopped reading early was not stored whole), and Blame puts the body's failure before the
// transfer error it caused.
func NewGuard(ctx context.Context, r io.Reader, size int64, wantSHA256 string) *backends.Body {
	return backends.NewBody(ctx, r, size, backends.BodyOptions{SHA256: wantSHA256, Withhold: true})
}
