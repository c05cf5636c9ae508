package backends

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"
)

// DefaultListLimit is the page size Checked uses when List is called with limit <= 0.
const DefaultListLimit = 1000

// defaultMaxParts applies when a backend's Descriptor reports no MaxParts: S3's limit, the tightest
// any backend has, so a client that works here works everywhere.
const defaultMaxParts = 10000

// maxUploadIDLen bounds upload ids; real ones (S3's included) are far shorter, and the bound keeps a
// hostile id out of error messages and plugin frames.
const maxUploadIDLen = 1024

// cleanupTimeout bounds the deletes Checked issues to undo a bad Put. They run detached from the
// request's context, which is often the very thing that was cancelled.
const cleanupTimeout = 30 * time.Second

// ValidateKey reports whether key is a valid blob key: it matches KeyPattern and is at most MaxKeyLen
// bytes. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !KeyPattern.MatchString(key) {
		return fmt.Errorf("%w: does not match %s", ErrInvalidKey, KeyPattern)
	}
	return nil
}

// validatePrefix accepts "" and every string that is the beginning of some valid key: exactly those
// for which appending "0" (legal after any key character) yields a valid key. A List prefix or
// startAfter outside that set could only be an attempt to reach a backend's private areas.
func validatePrefix(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxKeyLen || !KeyPattern.MatchString(s+"0") {
		return fmt.Errorf("%w: %q is not the beginning of a valid key", ErrInvalidKey, s)
	}
	return nil
}

// validSHA256 accepts lowercase hex of 32 bytes, the only form PutOptions.SHA256 may take.
func validSHA256(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Checked wraps b with the rules every backend shares, so that backends stay small. cmd wraps each
// backend where it opens it, in-process and plugin alike, and code that must never see an unwrapped
// backend asks for a *CheckedBackend. Wrapping twice changes nothing: when b already is a
// *CheckedBackend, Checked returns b itself (keeping its name), so no rule runs twice and no error is
// decorated twice.
//
// Arguments are validated before b sees them: an invalid key or List prefix fails with ErrInvalidKey, a
// negative Range.Offset with ErrInvalidRange, a size below -1 with ErrSizeMismatch, a malformed
// PutOptions.SHA256 with ErrChecksum, a part number outside 1..MaxParts, a part larger than MaxPartSize
// or an empty or non-ascending part list with ErrInvalidPart, and an empty upload id with
// ErrUploadNotFound. List with limit <= 0 uses DefaultListLimit. The limits come from b.Describe, asked
// once and cached.
//
// Put bodies are hashed with sha256 and counted on their way to b, exactly once, and the returned
// Info.SHA256 is always that hash. The verdict is delivered through the reader b consumes (a Body,
// which does not withhold), before b can commit: instead of io.EOF (and together with the last bytes
// when the size is declared, for backends that stop reading at the declared size) b's Read returns
// ErrSizeMismatch for a short or long body, or ErrChecksum when PutOptions.SHA256 is set and differs,
// so b aborts and leaves nothing. Because Checked verifies, it passes PutOptions.SHA256 to b cleared,
// so b never hashes the stream a second time, unless b's Descriptor reports ServerChecksums (its
// server checks the sum at no cost to b). Should b report success anyway (it ignored the reader's
// error, stopped early, or reports another size or sha256), Checked deletes the blob and returns the
// sentinel. PutPart bodies are counted the same way. Multipart checksums (CreateMultipart's
// PutOptions.SHA256) are passed through: only the backend sees the whole object.
//
// Every error is returned as "backend <name>: <op> <key>: <cause>", wrapping the cause so errors.Is
// still finds the sentinels, and context.Canceled or context.DeadlineExceeded when ctx ended during
// the call.
//
// Options add what Checked reports about its traffic (WithObserver).
func Checked(name string, b Backend, opts ...CheckedOption) *CheckedBackend {
	if c, ok := b.(*CheckedBackend); ok {
		return c
	}
	c := &CheckedBackend{name: name, b: b, obs: noObserver{}}
	for _, o := range opts {
		o(c)
	}
	return c
}

// CheckedOption configures Checked.
type CheckedOption func(*CheckedBackend)

// Observer learns what a checked backend transferred and how it failed, for metrics. Its methods are
// called on the request's goroutine, so they must be cheap and safe for concurrent use.
type Observer interface {
	// Transferred reports n bytes that went into the backend (Put, PutPart bodies) or came out of it
	// (Get bodies, as the caller reads them).
	Transferred(backend string, dir Direction, n int64)
	// Failed reports an operation ("put", "get", …) that failed for the backend's own reasons: not for
	// an answer such as ErrNotFound, a client's bad body or key, or a cancelled request.
	Failed(backend, op string)
}

// Direction is the way bytes crossed a backend's boundary.
type Direction string

const (
	Into  Direction = "in"  // stored into the backend
	OutOf Direction = "out" // read out of the backend
)

// WithObserver makes Checked report its traffic and failures to o.
func WithObserver(o Observer) CheckedOption {
	return func(c *CheckedBackend) {
		if o != nil {
			c.obs = o
		}
	}
}

type noObserver struct{}

func (noObserver) Transferred(string, Direction, int64) {}
func (noObserver) Failed(string, string)                {}

// answers are the errors that are a backend's regular answer or a caller's mistake, not its failure.
var answers = []error{ErrNotFound, ErrUploadNotFound, ErrInvalidKey, ErrInvalidRange, ErrChecksum,
	ErrSizeMismatch, ErrInvalidPart, context.Canceled, context.DeadlineExceeded}

// observeFailure reports err to the observer unless it is one of answers.
func (c *CheckedBackend) observeFailure(op string, err error) {
	for _, a := range answers {
		if errors.Is(err, a) {
			return
		}
	}
	c.obs.Failed(c.name, op)
}

// countedReader reports the bytes read through it as read out of the backend.
type countedReader struct {
	rc   io.ReadCloser
	obs  Observer
	name string
}

func (r *countedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 {
		r.obs.Transferred(r.name, OutOf, int64(n))
	}
	return n, err
}

func (r *countedReader) Close() error { return r.rc.Close() }

// countedWriterTo is countedReader for a body that writes itself (localfs's sendfile, a spliced S3
// socket): hiding its WriteTo would turn a zero-copy download into a buffered one.
type countedWriterTo struct{ countedReader }

func (r *countedWriterTo) WriteTo(w io.Writer) (int64, error) {
	n, err := r.rc.(io.WriterTo).WriteTo(w)
	if n > 0 {
		r.obs.Transferred(r.name, OutOf, n)
	}
	return n, err
}

// counted wraps a Get body so that what is read of it is reported, keeping its WriteTo if it has one.
func (c *CheckedBackend) counted(rc io.ReadCloser) io.ReadCloser {
	if _, ok := c.obs.(noObserver); ok {
		return rc
	}
	cr := countedReader{rc: rc, obs: c.obs, name: c.name}
	if _, ok := rc.(io.WriterTo); ok {
		return &countedWriterTo{cr}
	}
	return &cr
}

// CheckedBackend is a Backend wrapped by Checked, the only way to make one; its methods follow the
// Backend contract with the rules Checked describes.
type CheckedBackend struct {
	name string
	b    Backend
	obs  Observer
	// redirect is the download redirect policy (WithDownloadRedirect); nil: downloads are proxied.
	redirect *RedirectPolicy

	mu   sync.Mutex
	desc *Descriptor // cached after the first successful Describe
}

var _ Backend = (*CheckedBackend)(nil)

// fail decorates err with the backend, operation and key (an *OpError). When ctx ended during the call but the
// backend's error does not say so (a plugin may only report a broken stream), the context's error is
// attached so that callers can still tell a cancellation from a failure.
func (c *CheckedBackend) fail(ctx context.Context, op, key string, err error) error {
	if ctx.Err() == nil {
		c.observeFailure(op, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%w)", err, cerr)
	}
	return &OpError{Backend: c.name, Op: op, Key: key, Err: err}
}

// limits returns the cached multipart limits, asking the backend the first time.
func (c *CheckedBackend) limits(ctx context.Context) (Descriptor, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.desc != nil {
		return *c.desc, nil
	}
	d, err := c.b.Describe(ctx)
	if err != nil {
		return Descriptor{}, err
	}
	c.desc = &d
	return d, nil
}

// discard deletes a blob Put should not have committed. A failure leaves an orphan for a sweep, which
// the returned error cannot improve on, so it is dropped.
func (c *CheckedBackend) discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_ = c.b.Delete(ctx, key)
}

func (c *CheckedBackend) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) (Info, error) {
	const op = "put"
	if err := ValidateKey(key); err != nil {
		return Info{}, c.fail(ctx, op, key, err)
	}
	if size < -1 {
		return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: invalid size %d", ErrSizeMismatch, size))
	}
	if opts.SHA256 != "" && !validSHA256(opts.SHA256) {
		return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: malformed sha256 %q", ErrChecksum, opts.SHA256))
	}
	v := NewBody(ctx, r, size, BodyOptions{SHA256: opts.SHA256, Hash: true})
	// A backend may store an empty blob without ever calling Read, so judge an empty body up front.
	if size == 0 {
		if err := v.Settle(); err != io.EOF {
			return Info{}, c.fail(ctx, op, key, err)
		}
	}
	bopts := opts
	if d, err := c.limits(ctx); err != nil || !d.ServerChecksums {
		// The backend would hash the body a second time.
		bopts.SHA256 = ""
	}
	info, err := c.b.Put(ctx, key, v, size, bopts)
	c.obs.Transferred(c.name, Into, v.N())
	if err != nil {
		if verr := v.Failure(); verr != nil && !errors.Is(err, verr) {
			// The backend lost our sentinel (a plugin flattening errors): ours is the real cause. Unlike
			// Body.Blame, both stay visible to errors.Is (a context error among them).
			err = fmt.Errorf("%w (%w)", verr, err)
		}
		return Info{}, c.fail(ctx, op, key, err)
	}
	// The backend claims success. Everything below only catches backends that break the contract, at the
	// price of a delete after the blob was briefly visible.
	if verr := v.Complete(); verr != nil {
		c.discard(ctx, key)
		return Info{}, c.fail(ctx, op, key, verr)
	}
	if info.Size != v.N() {
		c.discard(ctx, key)
		return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: backend stored %d bytes, body had %d", ErrSizeMismatch, info.Size, v.N()))
	}
	if info.SHA256 != "" && info.SHA256 != v.Sum() {
		c.discard(ctx, key)
		return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: backend stored sha256 %s, body had %s", ErrChecksum, info.SHA256, v.Sum()))
	}
	info.SHA256 = v.Sum()
	if info.Key == "" {
		info.Key = key
	}
	return info, nil
}

func (c *CheckedBackend) Get(ctx context.Context, key string, rng Range) (io.ReadCloser, Info, error) {
	const op = "get"
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, c.fail(ctx, op, key, err)
	}
	if rng.Offset < 0 {
		return nil, Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: negative offset %d", ErrInvalidRange, rng.Offset))
	}
	if rng.Length < 0 || rng.Length > math.MaxInt64-rng.Offset {
		// A range running past any possible end is one to the end; backends that compute
		// Offset+Length-1 (an S3 Range header) would overflow on it.
		rng.Length = -1
	}
	rc, info, err := c.b.Get(ctx, key, rng)
	if err != nil {
		return nil, Info{}, c.fail(ctx, op, key, err)
	}
	return c.counted(rc), info, nil
}

func (c *CheckedBackend) Stat(ctx context.Context, key string) (Info, error) {
	const op = "stat"
	if err := ValidateKey(key); err != nil {
		return Info{}, c.fail(ctx, op, key, err)
	}
	info, err := c.b.Stat(ctx, key)
	if err != nil {
		return Info{}, c.fail(ctx, op, key, err)
	}
	return info, nil
}

func (c *CheckedBackend) Delete(ctx context.Context, key string) error {
	const op = "delete"
	if err := ValidateKey(key); err != nil {
		return c.fail(ctx, op, key, err)
	}
	if err := c.b.Delete(ctx, key); err != nil {
		return c.fail(ctx, op, key, err)
	}
	return nil
}

func (c *CheckedBackend) List(ctx context.Context, prefix, startAfter string, limit int) ([]Info, string, error) {
	const op = "list"
	if err := validatePrefix(prefix); err != nil {
		return nil, "", c.fail(ctx, op, prefix, err)
	}
	if err := validatePrefix(startAfter); err != nil {
		return nil, "", c.fail(ctx, op, prefix, fmt.Errorf("startAfter: %w", err))
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	items, next, err := c.b.List(ctx, prefix, startAfter, limit)
	if err != nil {
		return nil, "", c.fail(ctx, op, prefix, err)
	}
	return items, next, nil
}

func (c *CheckedBackend) CreateMultipart(ctx context.Context, key string, opts PutOptions) (string, error) {
	const op = "create multipart"
	if err := ValidateKey(key); err != nil {
		return "", c.fail(ctx, op, key, err)
	}
	if opts.SHA256 != "" && !validSHA256(opts.SHA256) {
		return "", c.fail(ctx, op, key, fmt.Errorf("%w: malformed sha256 %q", ErrChecksum, opts.SHA256))
	}
	id, err := c.b.CreateMultipart(ctx, key, opts)
	if err != nil {
		return "", c.fail(ctx, op, key, err)
	}
	return id, nil
}

// checkUpload validates the arguments every call on an existing upload shares.
func checkUpload(key, uploadID string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if uploadID == "" || len(uploadID) > maxUploadIDLen {
		return fmt.Errorf("%w: invalid upload id", ErrUploadNotFound)
	}
	return nil
}

// checkPartNumber validates n against the backend's MaxParts.
func (c *CheckedBackend) checkPartNumber(ctx context.Context, n int) (Descriptor, error) {
	d, err := c.limits(ctx)
	if err != nil {
		return d, err
	}
	maxParts := d.MaxParts
	if maxParts <= 0 {
		maxParts = defaultMaxParts
	}
	if n < 1 || n > maxParts {
		return d, fmt.Errorf("%w: part number %d outside 1..%d", ErrInvalidPart, n, maxParts)
	}
	return d, nil
}

func (c *CheckedBackend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (Part, error) {
	const op = "put part"
	if err := checkUpload(key, uploadID); err != nil {
		return Part{}, c.fail(ctx, op, key, err)
	}
	d, err := c.checkPartNumber(ctx, n)
	if err != nil {
		return Part{}, c.fail(ctx, op, key, err)
	}
	if size < -1 {
		return Part{}, c.fail(ctx, op, key, fmt.Errorf("%w: invalid size %d", ErrSizeMismatch, size))
	}
	if d.MaxPartSize > 0 && size > d.MaxPartSize {
		return Part{}, c.fail(ctx, op, key, fmt.Errorf("%w: part of %d bytes exceeds %d", ErrInvalidPart, size, d.MaxPartSize))
	}
	v := NewBody(ctx, r, size, BodyOptions{})
	if size == 0 {
		if err := v.Settle(); err != io.EOF {
			return Part{}, c.fail(ctx, op, key, err)
		}
	}
	p, err := c.b.PutPart(ctx, key, uploadID, n, v, size)
	c.obs.Transferred(c.name, Into, v.N())
	if err != nil {
		if verr := v.Failure(); verr != nil && !errors.Is(err, verr) {
			err = fmt.Errorf("%w (%w)", verr, err)
		}
		return Part{}, c.fail(ctx, op, key, err)
	}
	// A part cannot be deleted on its own; a bad one stays until it is re-uploaded, the upload is
	// aborted or Complete rejects it. The caller learns of it here either way.
	if verr := v.Complete(); verr != nil {
		return Part{}, c.fail(ctx, op, key, verr)
	}
	if p.Size != v.N() {
		return Part{}, c.fail(ctx, op, key, fmt.Errorf("%w: backend stored %d bytes, body had %d", ErrSizeMismatch, p.Size, v.N()))
	}
	if p.Number == 0 {
		p.Number = n
	}
	return p, nil
}

func (c *CheckedBackend) ListParts(ctx context.Context, key, uploadID string) ([]Part, error) {
	const op = "list parts"
	if err := checkUpload(key, uploadID); err != nil {
		return nil, c.fail(ctx, op, key, err)
	}
	parts, err := c.b.ListParts(ctx, key, uploadID)
	if err != nil {
		return nil, c.fail(ctx, op, key, err)
	}
	return parts, nil
}

func (c *CheckedBackend) CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) (Info, error) {
	const op = "complete multipart"
	if err := checkUpload(key, uploadID); err != nil {
		return Info{}, c.fail(ctx, op, key, err)
	}
	if len(parts) == 0 {
		return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: no parts", ErrInvalidPart))
	}
	for i, p := range parts {
		if _, err := c.checkPartNumber(ctx, p.Number); err != nil {
			return Info{}, c.fail(ctx, op, key, err)
		}
		if i > 0 && p.Number <= parts[i-1].Number {
			return Info{}, c.fail(ctx, op, key, fmt.Errorf("%w: part %d after part %d: parts must be ascending", ErrInvalidPart, p.Number, parts[i-1].Number))
		}
	}
	info, err := c.b.CompleteMultipart(ctx, key, uploadID, parts)
	if err != nil {
		return Info{}, c.fail(ctx, op, key, err)
	}
	if info.Key == "" {
		info.Key = key
	}
	return info, nil
}

func (c *CheckedBackend) AbortMultipart(ctx context.Context, key, uploadID string) error {
	const op = "abort multipart"
	if err := checkUpload(key, uploadID); err != nil {
		return c.fail(ctx, op, key, err)
	}
	if err := c.b.AbortMultipart(ctx, key, uploadID); err != nil {
		return c.fail(ctx, op, key, err)
	}
	return nil
}

func (c *CheckedBackend) Describe(ctx context.Context) (Descriptor, error) {
	d, err := c.b.Describe(ctx)
	if err != nil {
		return Descriptor{}, fmt.Errorf("backend %s: describe: %w", c.name, err)
	}
	return d, nil
}

func (c *CheckedBackend) Close() error {
	if err := c.b.Close(); err != nil {
		return fmt.Errorf("backend %s: close: %w", c.name, err)
	}
	return nil
}
