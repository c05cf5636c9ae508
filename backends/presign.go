package backends

import (
	"context"
	"fmt"
	"time"
)

// Presigner is the optional capability of a backend whose server can hand a blob to a client without
// mlgate in between: a URL that anyone holding it may GET for a limited time (an S3 presigned URL).
// backends/s3 and backends/minio implement it; localfs, memory and plugins do not (the plugin protocol
// has no such call), so their downloads are always proxied.
type Presigner interface {
	// PresignGet returns a URL that GETs the whole blob key until expiry has passed, answered with
	// Content-Disposition: disposition (S3's response-content-disposition) when disposition is not
	// empty. It is computed locally: the blob's existence is not checked, and a URL of a blob deleted
	// before it is used answers 404 from the storage server. Errors are the backend's (credentials that
	// cannot be loaded wrap ErrUnavailable).
	PresignGet(ctx context.Context, key string, expiry time.Duration, disposition string) (url string, err error)
}

// MaxPresignExpiry is the longest validity a presigned URL may have: SigV4's limit of seven days.
const MaxPresignExpiry = 7 * 24 * time.Hour

// RedirectPolicy says that whole-file downloads of a backend's blobs are answered with a redirect to
// a presigned URL rather than proxied.
type RedirectPolicy struct {
	// Expiry is how long a presigned URL is valid (1s..MaxPresignExpiry).
	Expiry time.Duration
	// Grace is how long, beyond Expiry, a transfer started through a redirect may still be running; a
	// blob replaced or deleted meanwhile is kept until Expiry+Grace after the last redirect to it.
	Grace time.Duration
}

// WithDownloadRedirect makes the checked backend redirect downloads as p says, when the backend it
// wraps is a Presigner (see CheckedBackend.Redirect). It is an option of Checked, and not the
// backend's own setting, so that the decision stays with whoever configures backends (cmd) and a
// backend only has to know how to sign.
func WithDownloadRedirect(p RedirectPolicy) CheckedOption {
	return func(c *CheckedBackend) { c.redirect = &p }
}

// Redirect returns the redirect policy of the backend and true when its downloads are to be
// redirected: the policy was set with WithDownloadRedirect and the wrapped backend is a Presigner.
func (c *CheckedBackend) Redirect() (RedirectPolicy, bool) {
	if c.redirect == nil {
		return RedirectPolicy{}, false
	}
	if _, ok := c.b.(Presigner); !ok {
		return RedirectPolicy{}, false
	}
	return *c.redirect, true
}

// PresignGet validates key and expiry and asks the wrapped backend for a presigned URL. Errors:
// ErrInvalidKey, ErrUnsupported when the wrapped backend is not a Presigner or expiry is outside
// 1s..MaxPresignExpiry, and the backend's, all decorated as an *OpError like every other operation.
func (c *CheckedBackend) PresignGet(ctx context.Context, key string, expiry time.Duration, disposition string) (string, error) {
	const op = "presign get"
	if err := ValidateKey(key); err != nil {
		return "", c.fail(ctx, op, key, err)
	}
	p, ok := c.b.(Presigner)
	if !ok {
		return "", c.fail(ctx, op, key, fmt.Errorf("%w: the backend cannot presign URLs", ErrUnsupported))
	}
	if expiry < time.Second || expiry > MaxPresignExpiry {
		return "", c.fail(ctx, op, key, fmt.Errorf("%w: expiry %v outside 1s..%v", ErrUnsupported, expiry, MaxPresignExpiry))
	}
	u, err := p.PresignGet(ctx, key, expiry, disposition)
	if err != nil {
		return "", c.fail(ctx, op, key, err)
	}
	return u, nil
}

var _ Presigner = (*CheckedBackend)(nil)
