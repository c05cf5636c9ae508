// Package memory is an in-memory backends.Backend: the reference implementation for unit tests and for
// the plugin bridge tests. It holds every blob in memory, so it is not for production data.
package memory

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/streamio"
)

// DefaultMinPartSize is S3's minimum, so code tested against memory works against S3.
const DefaultMinPartSize = 5 << 20

const (
	maxPartSize = 5 << 30
	maxParts    = 10000
	// maxPrealloc caps how much a declared size may reserve up front, so a lying client cannot make
	// Put allocate gigabytes before sending a byte.
	maxPrealloc = 64 << 20
)

// Backend is the in-memory backend. Its zero value is not usable; call New.
type Backend struct {
	minPartSize int64

	mu      sync.RWMutex
	blobs   map[string]*blob
	uploads map[string]*upload
	closed  bool
}

// blob is immutable once stored: readers keep the slice they opened, so an overwrite (which swaps
// the map entry) never changes bytes under them.
type blob struct {
	data []byte
	info backends.Info
}

type upload struct {
	key   string
	opts  backends.PutOptions
	parts map[int]part
}

type part struct {
	data []byte
	etag string
}

// New returns an empty backend with DefaultMinPartSize.
func New() *Backend { return NewWithMinPartSize(DefaultMinPartSize) }

// NewWithMinPartSize returns an empty backend whose multipart uploads accept middle parts of n bytes,
// so tests need not move 5 MiB parts.
func NewWithMinPartSize(n int64) *Backend {
	return &Backend{minPartSize: n, blobs: map[string]*blob{}, uploads: map[string]*upload{}}
}

// Factory builds a memory backend; the config is ignored.
func Factory(context.Context, json.RawMessage) (backends.Backend, error) { return New(), nil }

var errClosed = fmt.Errorf("memory backend closed: %w", backends.ErrUnavailable)

// read drains r into memory, honouring ctx and the declared size.
func read(ctx context.Context, r io.Reader, size int64) ([]byte, error) {
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(min(size, maxPrealloc)))
	}
	if size >= 0 {
		// One byte past the declared size is enough to detect a longer body.
		r = io.LimitReader(r, size+1)
	}
	if _, err := streamio.Copy(ctx, &buf, r); err != nil {
		return nil, err
	}
	if size >= 0 && int64(buf.Len()) != size {
		return nil, fmt.Errorf("%w: body has %s bytes, declared %d", backends.ErrSizeMismatch, describeLen(buf.Len(), size), size)
	}
	return buf.Bytes(), nil
}

func describeLen(n int, size int64) string {
	if int64(n) > size {
		return fmt.Sprintf("more than %d", size)
	}
	return fmt.Sprint(n)
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Put stores r under key. Errors: ErrSizeMismatch when r does not yield size bytes (size >= 0),
// ErrChecksum when opts.SHA256 is set and differs, ctx's error, r's error, ErrUnavailable after
// Close. Nothing changes under key on error.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	data, err := read(ctx, r, size)
	if err != nil {
		return backends.Info{}, fmt.Errorf("memory put: %w", err)
	}
	// Hashing here (Checked already has) is affordable for a test backend and keeps it conformant bare.
	sum := sha256hex(data)
	if opts.SHA256 != "" && sum != opts.SHA256 {
		return backends.Info{}, fmt.Errorf("memory put: %w", backends.ErrChecksum)
	}
	return b.store(ctx, key, data, sum, opts.ContentType)
}

func (b *Backend) store(ctx context.Context, key string, data []byte, sum, contentType string) (backends.Info, error) {
	info := backends.Info{
		Key:         key,
		Size:        int64(len(data)),
		ModTime:     time.Now(),
		ETag:        md5hex(data),
		ContentType: contentType,
		SHA256:      sum,
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return backends.Info{}, errClosed
	}
	// The last check before commit: a cancelled upload must not become visible.
	if err := ctx.Err(); err != nil {
		return backends.Info{}, err
	}
	b.blobs[key] = &blob{data: data, info: info}
	return info, nil
}

// Get opens key at rng. Errors: ErrNotFound, ErrInvalidRange when rng.Offset is past the end,
// ErrUnavailable after Close. A Length past the end is clamped.
func (b *Backend) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, backends.Info{}, errClosed
	}
	bl, ok := b.blobs[key]
	if !ok {
		return nil, backends.Info{}, fmt.Errorf("memory get: %w", backends.ErrNotFound)
	}
	size := int64(len(bl.data))
	if rng.Offset < 0 || rng.Offset > size {
		return nil, backends.Info{}, fmt.Errorf("memory get: offset %d of %d bytes: %w", rng.Offset, size, backends.ErrInvalidRange)
	}
	end := size
	if rng.Length >= 0 && rng.Length < size-rng.Offset {
		end = rng.Offset + rng.Length
	}
	return io.NopCloser(bytes.NewReader(bl.data[rng.Offset:end])), bl.info, nil
}

// Stat returns key's Info. Errors: ErrNotFound, ErrUnavailable after Close.
func (b *Backend) Stat(_ context.Context, key string) (backends.Info, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return backends.Info{}, errClosed
	}
	bl, ok := b.blobs[key]
	if !ok {
		return backends.Info{}, fmt.Errorf("memory stat: %w", backends.ErrNotFound)
	}
	return bl.info, nil
}

// Delete removes key. Errors: ErrNotFound, ErrUnavailable after Close.
func (b *Backend) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errClosed
	}
	if _, ok := b.blobs[key]; !ok {
		return fmt.Errorf("memory delete: %w", backends.ErrNotFound)
	}
	delete(b.blobs, key)
	return nil
}

// List pages through keys with prefix after startAfter, in key order. Errors: ErrUnavailable after
// Close.
func (b *Backend) List(_ context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	b.mu.RLock()
	keys := make([]string, 0)
	for k := range b.blobs {
		if strings.HasPrefix(k, prefix) && k > startAfter {
			keys = append(keys, k)
		}
	}
	closed := b.closed
	b.mu.RUnlock()
	if closed {
		return nil, "", errClosed
	}
	sort.Strings(keys)
	next := ""
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
		next = keys[limit-1]
	}
	items := make([]backends.Info, 0, len(keys))
	b.mu.RLock()
	for _, k := range keys {
		if bl, ok := b.blobs[k]; ok { // deleted since the scan: skip, as a later scan would
			items = append(items, bl.info)
		}
	}
	b.mu.RUnlock()
	return items, next, nil
}

// CreateMultipart starts an upload to key. Errors: ErrUnavailable after Close.
func (b *Backend) CreateMultipart(_ context.Context, key string, opts backends.PutOptions) (string, error) {
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	id := hex.EncodeToString(raw[:])
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", errClosed
	}
	b.uploads[id] = &upload{key: key, opts: opts, parts: map[int]part{}}
	return id, nil
}

// lookup finds an upload of key; an id of another key is as unknown as a missing one. The caller
// holds b.mu.
func (b *Backend) lookup(key, uploadID string) (*upload, error) {
	if b.closed {
		return nil, errClosed
	}
	u, ok := b.uploads[uploadID]
	if !ok || u.key != key {
		return nil, fmt.Errorf("memory upload %q: %w", uploadID, backends.ErrUploadNotFound)
	}
	return u, nil
}

// PutPart stores part n. Errors: ErrUploadNotFound, ErrSizeMismatch, ctx's or r's error,
// ErrUnavailable after Close.
func (b *Backend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (backends.Part, error) {
	b.mu.RLock()
	_, err := b.lookup(key, uploadID)
	b.mu.RUnlock()
	if err != nil { // fail before reading a body that has nowhere to go
		return backends.Part{}, err
	}
	data, err := read(ctx, r, size)
	if err != nil {
		return backends.Part{}, fmt.Errorf("memory put part %d: %w", n, err)
	}
	p := part{data: data, etag: md5hex(data)}
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.lookup(key, uploadID) // it may have been aborted meanwhile
	if err != nil {
		return backends.Part{}, err
	}
	u.parts[n] = p
	return backends.Part{Number: n, Size: int64(len(data)), ETag: p.etag}, nil
}

// ListParts returns the upload's parts in number order. Errors: ErrUploadNotFound, ErrUnavailable
// after Close.
func (b *Backend) ListParts(_ context.Context, key, uploadID string) ([]backends.Part, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	u, err := b.lookup(key, uploadID)
	if err != nil {
		return nil, err
	}
	parts := make([]backends.Part, 0, len(u.parts))
	for n, p := range u.parts {
		parts = append(parts, backends.Part{Number: n, Size: int64(len(p.data)), ETag: p.etag})
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].Number < parts[j].Number })
	return parts, nil
}

// CompleteMultipart concatenates parts into key. Errors: ErrUploadNotFound; ErrInvalidPart for a
// missing part, a wrong ETag, a middle part below the minimum size or parts out of order;
// ErrChecksum when the upload's PutOptions.SHA256 differs (the upload stays, to be aborted);
// ErrUnavailable after Close.
func (b *Backend) CompleteMultipart(ctx context.Context, key, uploadID string, parts []backends.Part) (backends.Info, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	u, err := b.lookup(key, uploadID)
	if err != nil {
		return backends.Info{}, err
	}
	if len(parts) == 0 {
		return backends.Info{}, fmt.Errorf("memory complete: no parts: %w", backends.ErrInvalidPart)
	}
	var total int
	for i, want := range parts {
		p, ok := u.parts[want.Number]
		switch {
		case i > 0 && want.Number <= parts[i-1].Number:
			return backends.Info{}, fmt.Errorf("memory complete: part %d out of order: %w", want.Number, backends.ErrInvalidPart)
		case !ok:
			return backends.Info{}, fmt.Errorf("memory complete: part %d missing: %w", want.Number, backends.ErrInvalidPart)
		case p.etag != want.ETag:
			return backends.Info{}, fmt.Errorf("memory complete: part %d has etag %s, not %s: %w", want.Number, p.etag, want.ETag, backends.ErrInvalidPart)
		case i < len(parts)-1 && int64(len(p.data)) < b.minPartSize:
			return backends.Info{}, fmt.Errorf("memory complete: part %d has %d bytes, minimum %d: %w", want.Number, len(p.data), b.minPartSize, backends.ErrInvalidPart)
		}
		total += len(p.data)
	}
	data := make([]byte, 0, total)
	for _, want := range parts {
		data = append(data, u.parts[want.Number].data...)
	}
	sum := sha256hex(data)
	if u.opts.SHA256 != "" && sum != u.opts.SHA256 {
		return backends.Info{}, fmt.Errorf("memory complete: %w", backends.ErrChecksum)
	}
	if err := ctx.Err(); err != nil {
		return backends.Info{}, err
	}
	info := backends.Info{Key: key, Size: int64(total), ModTime: time.Now(), ETag: md5hex(data), ContentType: u.opts.ContentType, SHA256: sum}
	b.blobs[key] = &blob{data: data, info: info}
	delete(b.uploads, uploadID)
	return info, nil
}

// AbortMultipart discards the upload. Errors: ErrUploadNotFound, ErrUnavailable after Close.
func (b *Backend) AbortMultipart(_ context.Context, key, uploadID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.lookup(key, uploadID); err != nil {
		return err
	}
	delete(b.uploads, uploadID)
	return nil
}

// Describe reports "memory" and its multipart limits.
func (b *Backend) Describe(context.Context) (backends.Descriptor, error) {
	return backends.Descriptor{Name: "memory", Version: "1", MinPartSize: b.minPartSize, MaxPartSize: maxPartSize, MaxParts: maxParts}, nil
}

// Close drops every blob and upload; later calls fail with ErrUnavailable. Readers already open keep
// working, since they hold their own slices.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.blobs, b.uploads = nil, nil
	return nil
}

var _ backends.Backend = (*Backend)(nil)
