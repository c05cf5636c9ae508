// Package localfs is the default backends.Backend: blobs as files under one directory, opened as an
// os.Root so that no name can reach outside it.
//
// On-disk layout, relative to the root:
//
//	<key>                    a committed blob, e.g. c/000000000000002a/9f1c…; the key's '/' are directories
//	.staging/                work in progress, never listed; everything here is disposable:
//	  put-<rand>               the body of a Put being written
//	  part-<rand>              the body of a PutPart being written
//	  complete-<rand>          the concatenation of a CompleteMultipart being written
//	  upload-<id>/             an upload record being created (renamed into .uploads when complete)
//	  trash-<rand>/            an upload directory moved aside to be deleted (abort, complete)
//	.uploads/<id>/           one multipart upload; <id> is 32 lowercase hex
//	  upload.json              its record: target key, content type, expected sha256, creation time
//	  00001 … 10000            its parts: a 33-byte header (hex md5 of the data, then '\n'), then the data
//
// Keys never start with '.', so the two private directories cannot collide with a blob. Every file is
// written under .staging, fsynced, and renamed into place, and the directory that received it is
// fsynced, so a reader sees an old blob or the complete new one, and a crash leaves at most disposable
// leftovers under .staging or .uploads, which StagingOrphans finds and CleanStaging removes.
//
// Keys map to paths one to one, so unlike an object store a key cannot be both a blob and a directory
// of other blobs ("a" and "a/b"): Put fails with ErrInvalidKey on such a clash. mlgate's keys all have
// the same depth, so it never happens in practice.
//
// Content types and sha256 sums are not persisted (the metadata store keeps them): Info.ContentType and
// Info.SHA256 are empty on Get, Stat and List. A blob's ETag is derived from its modification time and
// size, so Put never hashes what Checked already hashes.
package localfs

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/streamio"
)

const (
	stagingDir = ".staging"
	uploadsDir = ".uploads"
	recordName = "upload.json"

	// DefaultMinPartSize is S3's minimum, so clients behave the same against every backend.
	DefaultMinPartSize = 5 << 20
	maxPartSize        = 5 << 30
	maxParts           = 10000

	dirPerm  = 0o750
	filePerm = 0o640

	// partHeaderLen is the hex md5 of a part plus a newline, stored in front of its data so that the
	// ETag and the bytes it describes are replaced together by one rename.
	partHeaderLen = 2*md5.Size + 1
)

var (
	segmentPattern  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	uploadIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	partNamePattern = regexp.MustCompile(`^[0-9]{5}$`)
)

// Backend stores blobs under a root directory. It is safe for concurrent use, within one process: two
// processes must not share a root.
type Backend struct {
	root        *os.Root
	minPartSize int64
	closed      atomic.Bool

	// uploadsMu serialises the short steps that change or consume an upload directory (a part renamed
	// in, an abort, the commit of a complete), so that none of them acts on an upload another has just
	// removed. Data is never copied while it is held.
	uploadsMu sync.Mutex
}

// Option tunes a Backend.
type Option func(*Backend)

// WithMinPartSize sets the smallest middle part CompleteMultipart accepts (default DefaultMinPartSize).
// Tests use small values so they need not move 5 MiB parts.
func WithMinPartSize(n int64) Option { return func(b *Backend) { b.minPartSize = n } }

// Config is the JSON configuration Factory reads.
type Config struct {
	Root        string `json:"root"`                    // directory of the blobs; created if missing
	MinPartSize int64  `json:"min_part_size,omitempty"` // 0: DefaultMinPartSize
}

// Factory builds a Backend from a JSON Config. Unknown fields and a missing root are errors.
func Factory(_ context.Context, config json.RawMessage) (backends.Backend, error) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(config)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("localfs config: %w", err)
	}
	if cfg.Root == "" {
		return nil, errors.New("localfs config: root is required")
	}
	if cfg.MinPartSize < 0 {
		return nil, errors.New("localfs config: min_part_size must not be negative")
	}
	var opts []Option
	if cfg.MinPartSize > 0 {
		opts = append(opts, WithMinPartSize(cfg.MinPartSize))
	}
	return New(cfg.Root, opts...)
}

// New opens (creating it if needed) the directory root as a blob store.
func New(root string, opts ...Option) (*Backend, error) {
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, fmt.Errorf("localfs: %w", err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("localfs: %w", err)
	}
	for _, dir := range []string{stagingDir, uploadsDir} {
		if err := r.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			_ = r.Close()
			return nil, fmt.Errorf("localfs: %w", err)
		}
	}
	b := &Backend{root: r, minPartSize: DefaultMinPartSize}
	for _, o := range opts {
		o(b)
	}
	return b, nil
}

var errClosed = fmt.Errorf("localfs closed: %w", backends.ErrUnavailable)

func (b *Backend) check() error {
	if b.closed.Load() {
		return errClosed
	}
	return nil
}

// native turns a slash-separated name into the platform's form for os.Root.
func native(name string) string { return filepath.FromSlash(name) }

// isMissing reports whether err means "no such file", including a path running through a file.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func randomHex(n int) string {
	raw := make([]byte, n)
	_, _ = rand.Read(raw)
	return hex.EncodeToString(raw)
}

// etagOf derives a blob's ETag from what the filesystem already knows. A replacement gets a new
// modification time, so the ETag changes with the content without anyone hashing it.
func etagOf(fi fs.FileInfo) string {
	return strconv.FormatInt(fi.ModTime().UnixNano(), 16) + "-" + strconv.FormatInt(fi.Size(), 16)
}

func infoOf(key string, fi fs.FileInfo) backends.Info {
	return backends.Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), ETag: etagOf(fi)}
}

// tempFile is a file under .staging that removes itself unless it was committed.
type tempFile struct {
	b    *Backend
	f    *os.File
	name string // slash-separated, relative to the root
	done bool   // renamed away; nothing to clean up
}

func (b *Backend) createTemp(kind string) (*tempFile, error) {
	name := stagingDir + "/" + kind + "-" + randomHex(8)
	f, err := b.root.OpenFile(native(name), os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	return &tempFile{b: b, f: f, name: name}, nil
}

// seal makes the written data durable and closes the file, returning its final FileInfo.
func (t *tempFile) seal() (fs.FileInfo, error) {
	if err := t.f.Sync(); err != nil {
		return nil, fmt.Errorf("sync staging file: %w", err)
	}
	fi, err := t.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat staging file: %w", err)
	}
	err = t.f.Close()
	t.f = nil
	if err != nil {
		return nil, fmt.Errorf("close staging file: %w", err)
	}
	return fi, nil
}

// discard removes the file unless it was committed. Deferred on every path, panics included, so no
// error or cancellation leaves a staging file behind.
func (t *tempFile) discard() {
	if t.f != nil {
		_ = t.f.Close()
	}
	if !t.done {
		_ = t.b.root.Remove(native(t.name))
	}
}

// syncDir fsyncs a directory so that renames into it survive a crash.
func (b *Backend) syncDir(dir string) error {
	d, err := b.root.Open(native(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// commit renames the staging file tmp to key, creating its directories and making the rename durable.
// Errors: ErrInvalidKey when key clashes with another blob's path; the filesystem's error otherwise.
func (b *Backend) commit(tmp, key string) error {
	dir := path.Dir(key)
	// Directories made for this blob must be fsynced up to one that already existed, or a crash could
	// lose the blob's path even though the blob itself is durable.
	syncFrom := dir
	for attempt := 0; ; attempt++ {
		if dir != "." {
			if fi, err := b.root.Stat(native(dir)); err != nil || !fi.IsDir() {
				if err := b.root.MkdirAll(native(dir), dirPerm); err != nil {
					if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
						return fmt.Errorf("%w: a parent of the key is a blob", backends.ErrInvalidKey)
					}
					return fmt.Errorf("create directories: %w", err)
				}
				syncFrom = "."
			}
		}
		err := b.root.Rename(native(tmp), native(key))
		if err == nil {
			break
		}
		if attempt >= 3 {
			return fmt.Errorf("rename into place: %w", err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			// A concurrent Delete removed the (then empty) directory between MkdirAll and Rename.
			continue
		}
		if fi, serr := b.root.Lstat(native(key)); serr == nil && fi.IsDir() {
			// An empty directory left by deletes may stand where the blob goes; a non-empty one is a
			// real clash.
			if rerr := b.root.Remove(native(key)); rerr != nil {
				return fmt.Errorf("%w: the key is a directory of other blobs", backends.ErrInvalidKey)
			}
			continue
		}
		return fmt.Errorf("rename into place: %w", err)
	}
	for d := dir; ; d = path.Dir(d) {
		if err := b.syncDir(d); err != nil {
			return fmt.Errorf("sync directory: %w", err)
		}
		if d == syncFrom || d == "." {
			return nil
		}
	}
}

// markFull marks *err with ErrInsufficientStorage when the filesystem ran out of space or quota, which
// can surface from any step of a write: creating the staging file, writing or fsyncing it, making the
// key's directories.
func markFull(err *error) {
	if *err != nil && !errors.Is(*err, backends.ErrInsufficientStorage) &&
		(errors.Is(*err, syscall.ENOSPC) || errors.Is(*err, syscall.EDQUOT)) {
		*err = fmt.Errorf("%w: %w", backends.ErrInsufficientStorage, *err)
	}
}

// hashWriter feeds a hash from the write side, so the file and the hash see the same bytes.
type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

// writeBody copies r (of size bytes, -1 unknown) to w. Errors: ErrSizeMismatch, ctx's or r's or the
// file's error.
func writeBody(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	if size >= 0 {
		// One byte past the declared size is enough to detect a longer body.
		r = io.LimitReader(r, size+1)
	}
	n, err := streamio.Copy(ctx, w, r)
	if err != nil {
		return n, err
	}
	if size >= 0 && n != size {
		if n > size {
			return n, fmt.Errorf("%w: body is longer than the declared %d bytes", backends.ErrSizeMismatch, size)
		}
		return n, fmt.Errorf("%w: body has %d bytes, declared %d", backends.ErrSizeMismatch, n, size)
	}
	return n, nil
}

// Put writes r to a staging file, fsyncs it and renames it to key. Errors: ErrSizeMismatch when r
// does not yield size bytes (size >= 0); ErrChecksum when opts.SHA256 is set and differs (Checked
// clears it, having verified the stream itself, so only a bare Backend hashes here); ctx's or r's
// error; ErrInvalidKey when key clashes with another blob's path; ErrInsufficientStorage when the
// filesystem is full; ErrUnavailable after Close. On every error the staging file is removed and key is
// untouched.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (_ backends.Info, err error) {
	defer markFull(&err)
	if err := b.check(); err != nil {
		return backends.Info{}, err
	}
	tmp, err := b.createTemp("put")
	if err != nil {
		return backends.Info{}, fmt.Errorf("localfs put: %w", err)
	}
	defer tmp.discard()
	var w io.Writer = tmp.f
	var h hash.Hash
	if opts.SHA256 != "" {
		h = sha256.New()
		w = hashWriter{w: tmp.f, h: h}
	}
	if _, err := writeBody(ctx, w, r, size); err != nil {
		return backends.Info{}, fmt.Errorf("localfs put: %w", err)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != opts.SHA256 {
			return backends.Info{}, fmt.Errorf("localfs put: body has sha256 %s: %w", got, backends.ErrChecksum)
		}
	}
	fi, err := tmp.seal()
	if err != nil {
		return backends.Info{}, fmt.Errorf("localfs put: %w", err)
	}
	// The last moment a cancellation can still stop the blob from appearing.
	if err := ctx.Err(); err != nil {
		return backends.Info{}, fmt.Errorf("localfs put: %w", err)
	}
	if err := b.commit(tmp.name, key); err != nil {
		return backends.Info{}, fmt.Errorf("localfs put: %w", err)
	}
	tmp.done = true
	return infoOf(key, fi), nil
}

// fileReader is a ranged view of an open blob file.
type fileReader struct {
	f  *os.File
	lr io.LimitedReader // over f, positioned at the range
}

func (r *fileReader) Read(p []byte) (int, error) { return r.lr.Read(p) }

// WriteTo lets io.Copy to a network connection or a file hand the *io.LimitedReader of an *os.File to
// the destination's ReadFrom, which the runtime turns into sendfile or copy_file_range.
func (r *fileReader) WriteTo(w io.Writer) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(&r.lr)
	}
	return streamio.Copy(context.Background(), w, &r.lr)
}

func (r *fileReader) Close() error { return r.f.Close() }

// openBlob opens key's file. Errors: ErrNotFound (also for a directory of other blobs), ErrUnavailable.
func (b *Backend) openBlob(key string) (*os.File, fs.FileInfo, error) {
	if err := b.check(); err != nil {
		return nil, nil, err
	}
	f, err := b.root.Open(native(key))
	if err != nil {
		if isMissing(err) {
			return nil, nil, backends.ErrNotFound
		}
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, nil, backends.ErrNotFound
	}
	return f, fi, nil
}

// Get opens key at rng; a Length past the end is clamped. The open file keeps its bytes even if the
// blob is replaced or deleted meanwhile. Errors: ErrNotFound, ErrInvalidRange when rng.Offset is past
// the end, ErrUnavailable after Close.
func (b *Backend) Get(_ context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	f, fi, err := b.openBlob(key)
	if err != nil {
		return nil, backends.Info{}, fmt.Errorf("localfs get: %w", err)
	}
	size := fi.Size()
	if rng.Offset < 0 || rng.Offset > size {
		_ = f.Close()
		return nil, backends.Info{}, fmt.Errorf("localfs get: offset %d of %d bytes: %w", rng.Offset, size, backends.ErrInvalidRange)
	}
	n := size - rng.Offset
	if rng.Length >= 0 && rng.Length < n {
		n = rng.Length
	}
	if rng.Offset > 0 {
		if _, err := f.Seek(rng.Offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, backends.Info{}, fmt.Errorf("localfs get: %w", err)
		}
	}
	return &fileReader{f: f, lr: io.LimitedReader{R: f, N: n}}, infoOf(key, fi), nil
}

// Stat returns key's size, modification time and ETag. Errors: ErrNotFound, ErrUnavailable after
// Close.
func (b *Backend) Stat(_ context.Context, key string) (backends.Info, error) {
	if err := b.check(); err != nil {
		return backends.Info{}, err
	}
	fi, err := b.root.Stat(native(key))
	if err != nil {
		if isMissing(err) {
			return backends.Info{}, fmt.Errorf("localfs stat: %w", backends.ErrNotFound)
		}
		return backends.Info{}, fmt.Errorf("localfs stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return backends.Info{}, fmt.Errorf("localfs stat: %w", backends.ErrNotFound)
	}
	return infoOf(key, fi), nil
}

// Delete removes key, then the directories it leaves empty (best effort). Errors: ErrNotFound,
// ErrUnavailable after Close.
func (b *Backend) Delete(_ context.Context, key string) error {
	if err := b.check(); err != nil {
		return err
	}
	// Remove would also take an empty directory; a directory is never a blob.
	fi, err := b.root.Lstat(native(key))
	if err == nil && !fi.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err == nil {
		err = b.root.Remove(native(key))
	}
	if err != nil {
		if isMissing(err) {
			return fmt.Errorf("localfs delete: %w", backends.ErrNotFound)
		}
		return fmt.Errorf("localfs delete: %w", err)
	}
	// Not fsynced: a delete lost in a crash resurrects a blob no metadata references, which is exactly
	// what a sweep removes.
	for dir := path.Dir(key); dir != "."; dir = path.Dir(dir) {
		if b.root.Remove(native(dir)) != nil { // not empty (or in use by a Put, which retries)
			break
		}
	}
	return nil
}

// List walks the tree in key order, descending only into directories that can hold keys with prefix
// after startAfter, and never into .staging or .uploads. Errors: ctx's error, ErrUnavailable after
// Close, a directory that cannot be read.
func (b *Backend) List(ctx context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	if err := b.check(); err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = backends.DefaultListLimit
	}
	l := lister{b: b, ctx: ctx, prefix: prefix, startAfter: startAfter, want: limit + 1}
	// Every key with the prefix lies under the prefix's directory part.
	base := prefix[:strings.LastIndexByte(prefix, '/')+1]
	if err := l.walk(base); err != nil {
		return nil, "", fmt.Errorf("localfs list: %w", err)
	}
	items, next := l.items, ""
	if len(items) > limit {
		items = items[:limit]
		next = items[limit-1].Key
	}
	return items, next, nil
}

type lister struct {
	b          *Backend
	ctx        context.Context
	prefix     string
	startAfter string
	want       int
	items      []backends.Info
}

type dirEntry struct {
	name string
	dir  bool
	// order is the name as its keys sort: a directory's keys all continue with '/', which sorts
	// after '-' and '.', so "a-x" < "a.x" < "a/…" although "a" < "a-x" as names.
	order string
	entry fs.DirEntry
}

// walk lists the directory holding keys that start with dirKey ("" or ending in '/').
func (l *lister) walk(dirKey string) error {
	if err := l.ctx.Err(); err != nil {
		return err
	}
	name := "."
	if dirKey != "" {
		name = strings.TrimSuffix(dirKey, "/")
	}
	d, err := l.b.root.Open(native(name))
	if err != nil {
		if isMissing(err) {
			return nil
		}
		return err
	}
	raw, err := d.ReadDir(-1)
	_ = d.Close()
	if err != nil {
		if isMissing(err) {
			// The directory was removed between Open and ReadDir (its last blob deleted): it holds no keys.
			return nil
		}
		return err
	}
	ents := make([]dirEntry, 0, len(raw))
	for _, e := range raw {
		// Only names a key segment can have: this skips .staging, .uploads and anything foreign
		// (lost+found on a mount point).
		if !segmentPattern.MatchString(e.Name()) {
			continue
		}
		switch t := e.Type(); {
		case t.IsDir():
			ents = append(ents, dirEntry{name: e.Name(), dir: true, order: e.Name() + "/", entry: e})
		case t.IsRegular():
			ents = append(ents, dirEntry{name: e.Name(), order: e.Name(), entry: e})
		}
	}
	slices.SortFunc(ents, func(a, b dirEntry) int { return strings.Compare(a.order, b.order) })
	for _, e := range ents {
		key := dirKey + e.name
		if e.dir {
			sub := key + "/"
			if !strings.HasPrefix(sub, l.prefix) && !strings.HasPrefix(l.prefix, sub) {
				continue
			}
			// Every key below sub sorts before startAfter unless startAfter lies within sub.
			if sub < l.startAfter && !strings.HasPrefix(l.startAfter, sub) {
				continue
			}
			if err := l.walk(sub); err != nil {
				return err
			}
		} else {
			if !strings.HasPrefix(key, l.prefix) || key <= l.startAfter {
				continue
			}
			fi, err := e.entry.Info()
			if err != nil {
				if isMissing(err) { // deleted since ReadDir
					continue
				}
				return err
			}
			l.items = append(l.items, infoOf(key, fi))
		}
		if len(l.items) >= l.want {
			return nil
		}
	}
	return nil
}

// Describe reports "localfs" and its multipart limits.
func (b *Backend) Describe(context.Context) (backends.Descriptor, error) {
	return backends.Descriptor{Name: "localfs", Version: "1", MinPartSize: b.minPartSize, MaxPartSize: maxPartSize, MaxParts: maxParts}, nil
}

// Close releases the root. Later calls fail with ErrUnavailable; open readers keep working.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	return b.root.Close()
}

// Root returns the directory the backend stores blobs in.
func (b *Backend) Root() string { return b.root.Name() }

var _ backends.Backend = (*Backend)(nil)
