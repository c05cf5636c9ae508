// Package backendtest is the conformance suite of backends.Backend: one set of tests that every backend
// passes, in-process or through the plugin bridge, in this module or outside it.
//
// The suite assumes nothing about how a backend stores data. Every subtest works under its own random
// key prefix and deletes what it stored in t.Cleanup, so backends may share one bucket with other tests.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// Run runs the conformance suite. newBackend is called once per subtest, with that subtest's t, and
// may register its own t.Cleanup (for instance to close the backend or to check for leftovers): it runs
// after the suite has removed what the subtest stored. Subtests run in parallel.
//
// Backends with a large Descriptor.MinPartSize (S3's 5 MiB) work, at the cost of moving parts of that
// size; test backends should allow small parts.
func Run(t *testing.T, newBackend func(t *testing.T) backends.Backend) {
	tests := []struct {
		name string
		fn   func(*suite)
	}{
		{"Describe", testDescribe},
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"OverwriteConcurrent", testOverwriteConcurrent},
		{"Range", testRange},
		{"Stat", testStat},
		{"Delete", testDelete},
		{"List", testList},
		{"Checksum", testChecksum},
		{"SizeMismatch", testSizeMismatch},
		{"ReaderError", testReaderError},
		{"ConcurrentGets", testConcurrentGets},
		{"EarlyClose", testEarlyClose},
		{"CancelPut", testCancelPut},
		{"Multipart", testMultipart},
		{"MultipartAbort", testMultipartAbort},
		{"MultipartInvalid", testMultipartInvalid},
		{"MultipartChecksum", testMultipartChecksum},
		{"MultipartUnknown", testMultipartUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(newSuite(t, newBackend))
		})
	}
}

// suite is one subtest's view of a backend: its prefix and the uploads to abort at the end.
type suite struct {
	*testing.T
	b      backends.Backend
	ctx    context.Context
	prefix string

	mu      sync.Mutex
	uploads [][2]string // key, upload id
}

func newSuite(t *testing.T, newBackend func(t *testing.T) backends.Backend) *suite {
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	s := &suite{T: t, b: newBackend(t), ctx: t.Context(), prefix: hex.EncodeToString(raw[:]) + "/"}
	t.Cleanup(s.cleanup)
	return s
}

// cleanup aborts the subtest's uploads and deletes its blobs, then checks that the prefix is empty:
// a blob that Delete cannot remove or List still shows is a bug too.
func (s *suite) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // t.Context() is done by now
	defer cancel()
	s.mu.Lock()
	uploads := s.uploads
	s.mu.Unlock()
	for _, u := range uploads {
		_ = s.b.AbortMultipart(ctx, u[0], u[1])
	}
	after := ""
	for range 1000 {
		items, next, err := s.b.List(ctx, s.prefix, after, 1000)
		if err != nil {
			s.Errorf("cleanup: list %s: %v", s.prefix, err)
			return
		}
		for _, it := range items {
			if err := s.b.Delete(ctx, it.Key); err != nil {
				s.Errorf("cleanup: delete %s: %v", it.Key, err)
			}
		}
		if next == "" {
			break
		}
		after = next
	}
	items, _, err := s.b.List(ctx, s.prefix, "", 10)
	if err != nil || len(items) > 0 {
		s.Errorf("cleanup: %s not empty after deleting everything: %v, %v", s.prefix, keys(items), err)
	}
}

func (s *suite) key(name string) string { return s.prefix + name }

// ---------------------------------------------------------------------------------------------------
// data and readers

var (
	poolOnce sync.Once
	pool     []byte
)

// data returns n pseudo-random bytes; different seeds give different bytes. One random pool is cut
// at seed-dependent offsets, so tests do not spend their time generating data.
func data(n int, seed int) []byte {
	poolOnce.Do(func() {
		pool = make([]byte, 4<<20+1) // odd length: cuts of equal seeds at n-byte strides differ
		r := mrand.NewChaCha8([32]byte{'m', 'l', 'g', 'a', 't', 'e'})
		_, _ = r.Read(pool)
	})
	b := make([]byte, n)
	off := (seed*7919 + seed*seed*104729) % len(pool)
	for i := 0; i < n; {
		c := copy(b[i:], pool[off:])
		i += c
		off = (off + c) % len(pool)
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// chunked yields at most max bytes per Read and hides any WriterTo, like a network body.
type chunked struct {
	r   io.Reader
	max int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(p) > c.max {
		p = p[:c.max]
	}
	return c.r.Read(p)
}

func body(b []byte) io.Reader { return &chunked{r: bytes.NewReader(b), max: 64<<10 + 13} }

var errBoom = errors.New("backendtest: reader failed on purpose")

// failing yields b, then fails with errBoom.
type failing struct{ r io.Reader }

func (f *failing) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, errBoom
	}
	return n, err
}

// ---------------------------------------------------------------------------------------------------
// assertions

func keys(items []backends.Info) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Key
	}
	return out
}

func (s *suite) wantErr(err, target error, what string) {
	s.Helper()
	if !errors.Is(err, target) {
		s.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func (s *suite) put(key string, b []byte, size int64, opts backends.PutOptions) backends.Info {
	s.Helper()
	info, err := s.b.Put(s.ctx, key, body(b), size, opts)
	if err != nil {
		s.Fatalf("put %s (%d bytes): %v", key, len(b), err)
	}
	if info.Key != key || info.Size != int64(len(b)) {
		s.Fatalf("put %s: info has key %q size %d, want %q %d", key, info.Key, info.Size, key, len(b))
	}
	if info.SHA256 != "" && info.SHA256 != sha(b) {
		s.Fatalf("put %s: info.SHA256 %s, want %s", key, info.SHA256, sha(b))
	}
	return info
}

func (s *suite) get(key string, rng backends.Range) ([]byte, backends.Info) {
	s.Helper()
	rc, info, err := s.b.Get(s.ctx, key, rng)
	if err != nil {
		s.Fatalf("get %s %+v: %v", key, rng, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		s.Fatalf("get %s %+v: read: %v", key, rng, err)
	}
	return got, info
}

func (s *suite) wantContent(key string, want []byte) {
	s.Helper()
	got, info := s.get(key, backends.All)
	if !bytes.Equal(got, want) {
		s.Fatalf("get %s: got %d bytes (sha256 %.12s), want %d bytes (sha256 %.12s)", key, len(got), sha(got), len(want), sha(want))
	}
	if info.Size != int64(len(want)) {
		s.Fatalf("get %s: info.Size %d, want %d", key, info.Size, len(want))
	}
}

// wantAbsent checks that key is invisible to Stat, Get and List.
func (s *suite) wantAbsent(key string) {
	s.Helper()
	_, err := s.b.Stat(s.ctx, key)
	s.wantErr(err, backends.ErrNotFound, "stat "+key)
	_, _, err = s.b.Get(s.ctx, key, backends.All)
	s.wantErr(err, backends.ErrNotFound, "get "+key)
	items, _, err := s.b.List(s.ctx, key, "", 10)
	if err != nil {
		s.Fatalf("list %s: %v", key, err)
	}
	for _, it := range items {
		if it.Key == key {
			s.Fatalf("list shows %s, which must not exist", key)
		}
	}
}

// ---------------------------------------------------------------------------------------------------
// blobs

func testDescribe(s *suite) {
	d, err := s.b.Describe(s.ctx)
	if err != nil {
		s.Fatalf("describe: %v", err)
	}
	if d.Name == "" || d.MaxParts <= 0 || d.MinPartSize < 0 || (d.MaxPartSize != 0 && d.MaxPartSize < d.MinPartSize) {
		s.Fatalf("describe: implausible %+v", d)
	}
}

func testPutGet(s *suite) {
	cases := []struct {
		name     string
		n        int
		unknown  bool
		checksum bool
	}{
		{"0", 0, false, false},
		{"1", 1, false, false},
		{"1MiB", 1 << 20, false, true},
		{"3MiB+17", 3<<20 + 17, false, false},
		{"unknown-size-0", 0, true, false},
		{"unknown-size-1MiB+5", 1<<20 + 5, true, true},
	}
	for i, c := range cases {
		s.Run(c.name, func(t *testing.T) {
			s := &suite{T: t, b: s.b, ctx: s.ctx, prefix: s.prefix}
			key := s.key(fmt.Sprintf("putget/%d", i))
			want := data(c.n, i)
			size := int64(c.n)
			if c.unknown {
				size = -1
			}
			var opts backends.PutOptions
			if c.checksum {
				opts.SHA256 = sha(want)
			}
			put := s.put(key, want, size, opts)
			s.wantContent(key, want)
			st, err := s.b.Stat(s.ctx, key)
			if err != nil {
				s.Fatalf("stat: %v", err)
			}
			if st.Key != key || st.Size != int64(c.n) || st.ModTime.IsZero() {
				s.Fatalf("stat: %+v, want key %s size %d and a modification time", st, key, c.n)
			}
			if put.ETag != "" && st.ETag != "" && put.ETag != st.ETag {
				s.Fatalf("etag: put said %q, stat says %q", put.ETag, st.ETag)
			}
		})
	}
}

func testOverwrite(s *suite) {
	key := s.key("overwrite")
	v1, v2 := data(256<<10+1, 1), data(128<<10+7, 2)
	s.put(key, v1, int64(len(v1)), backends.PutOptions{})
	rc, _, err := s.b.Get(s.ctx, key, backends.All)
	if err != nil {
		s.Fatalf("get: %v", err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil {
		s.Fatalf("read head: %v", err)
	}
	s.put(key, v2, int64(len(v2)), backends.PutOptions{})
	rest, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		s.Fatalf("read rest after overwrite: %v", err)
	}
	got := append(head, rest...)
	if !bytes.Equal(got, v1) && !bytes.Equal(got, v2) {
		s.Fatalf("reader opened before the overwrite got %d bytes that are neither the old blob nor the new one", len(got))
	}
	s.wantContent(key, v2)
	st, err := s.b.Stat(s.ctx, key)
	if err != nil || st.Size != int64(len(v2)) {
		s.Fatalf("stat after overwrite: %+v, %v", st, err)
	}
}

func testOverwriteConcurrent(s *suite) {
	key := s.key("overwrite-concurrent")
	versions := [][]byte{data(64<<10, 3), data(96<<10+3, 4)}
	s.put(key, versions[0], int64(len(versions[0])), backends.PutOptions{})
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				rc, _, err := s.b.Get(s.ctx, key, backends.All)
				if err != nil {
					errs <- fmt.Errorf("get: %w", err)
					return
				}
				got, err := io.ReadAll(rc)
				_ = rc.Close()
				if err != nil {
					errs <- fmt.Errorf("read: %w", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					errs <- fmt.Errorf("read %d bytes that are no complete version", len(got))
					return
				}
			}
		})
	}
	for i := range 20 {
		v := versions[(i+1)%2]
		if _, err := s.b.Put(s.ctx, key, body(v), int64(len(v)), backends.PutOptions{}); err != nil {
			close(done)
			wg.Wait()
			s.Fatalf("put %d: %v", i, err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		s.Error(err)
	}
}

func testRange(s *suite) {
	key := s.key("range")
	const size = 100_003
	blob := data(size, 5)
	s.put(key, blob, size, backends.PutOptions{})
	cases := []struct {
		name       string
		rng        backends.Range
		start, end int // the expected bytes, blob[start:end]
		err        error
	}{
		{"whole", backends.Range{Offset: 0, Length: -1}, 0, size, nil},
		{"start", backends.Range{Offset: 0, Length: 10}, 0, 10, nil},
		{"middle", backends.Range{Offset: 50_000, Length: 1234}, 50_000, 51_234, nil},
		{"tail", backends.Range{Offset: size - 100, Length: -1}, size - 100, size, nil},
		{"tail-exact", backends.Range{Offset: size - 100, Length: 100}, size - 100, size, nil},
		{"length-past-end-is-clamped", backends.Range{Offset: size - 10, Length: 100}, size - 10, size, nil},
		{"last-byte", backends.Range{Offset: size - 1, Length: 1}, size - 1, size, nil},
		{"zero-length", backends.Range{Offset: 50, Length: 0}, 50, 50, nil},
		{"offset-at-size", backends.Range{Offset: size, Length: -1}, size, size, nil},
		{"offset-at-size-zero-length", backends.Range{Offset: size, Length: 0}, size, size, nil},
		{"beyond-end", backends.Range{Offset: size + 1, Length: -1}, 0, 0, backends.ErrInvalidRange},
		{"far-beyond-end", backends.Range{Offset: size + 1000, Length: 10}, 0, 0, backends.ErrInvalidRange},
	}
	for _, c := range cases {
		rc, info, err := s.b.Get(s.ctx, key, c.rng)
		if c.err != nil {
			if rc != nil {
				_ = rc.Close()
			}
			s.wantErr(err, c.err, c.name)
			continue
		}
		if err != nil {
			s.Fatalf("%s: get %+v: %v", c.name, c.rng, err)
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			s.Fatalf("%s: read: %v", c.name, err)
		}
		if !bytes.Equal(got, blob[c.start:c.end]) {
			s.Fatalf("%s: got %d bytes, want blob[%d:%d]", c.name, len(got), c.start, c.end)
		}
		if info.Size != size {
			s.Fatalf("%s: info.Size %d, want the blob's size %d", c.name, info.Size, size)
		}
	}

	empty := s.key("range-empty")
	s.put(empty, nil, 0, backends.PutOptions{})
	if got, _ := s.get(empty, backends.Range{Offset: 0, Length: -1}); len(got) != 0 {
		s.Fatalf("empty blob: got %d bytes", len(got))
	}
	_, _, err := s.b.Get(s.ctx, empty, backends.Range{Offset: 1, Length: -1})
	s.wantErr(err, backends.ErrInvalidRange, "empty blob at offset 1")
}

func testStat(s *suite) {
	key := s.key("stat/x/blob")
	before := time.Now()
	s.put(key, data(1234, 6), 1234, backends.PutOptions{})
	st, err := s.b.Stat(s.ctx, key)
	if err != nil {
		s.Fatalf("stat: %v", err)
	}
	// Loose bounds: the backend's clock may be another machine's.
	if st.Key != key || st.Size != 1234 || st.ModTime.Before(before.Add(-time.Hour)) || st.ModTime.After(time.Now().Add(time.Hour)) {
		s.Fatalf("stat: %+v", st)
	}
	_, err = s.b.Stat(s.ctx, s.key("stat/missing"))
	s.wantErr(err, backends.ErrNotFound, "stat of a missing key")
	// A prefix of other keys is not a blob.
	for _, k := range []string{s.key("stat/x"), s.key("stat")} {
		_, err = s.b.Stat(s.ctx, k)
		s.wantErr(err, backends.ErrNotFound, "stat of "+k+", a prefix of a key")
		_, _, err = s.b.Get(s.ctx, k, backends.All)
		s.wantErr(err, backends.ErrNotFound, "get of "+k+", a prefix of a key")
		err = s.b.Delete(s.ctx, k)
		s.wantErr(err, backends.ErrNotFound, "delete of "+k+", a prefix of a key")
	}
	if _, err := s.b.Stat(s.ctx, key); err != nil {
		s.Fatalf("stat after deleting a prefix of the key: %v", err)
	}
}

func testDelete(s *suite) {
	a, b := s.key("delete/d/a"), s.key("delete/d/b")
	s.put(a, data(100, 7), 100, backends.PutOptions{})
	s.put(b, data(200, 8), 200, backends.PutOptions{})
	if err := s.b.Delete(s.ctx, a); err != nil {
		s.Fatalf("delete: %v", err)
	}
	s.wantAbsent(a)
	s.wantErr(s.b.Delete(s.ctx, a), backends.ErrNotFound, "second delete")
	s.wantErr(s.b.Delete(s.ctx, s.key("delete/never")), backends.ErrNotFound, "delete of a missing key")
	_, _, err := s.b.Get(s.ctx, s.key("delete/never"), backends.All)
	s.wantErr(err, backends.ErrNotFound, "get of a missing key")
	s.wantContent(b, data(200, 8))
	// Deleting the last blob under a prefix must not stop new blobs from appearing there.
	if err := s.b.Delete(s.ctx, b); err != nil {
		s.Fatalf("delete: %v", err)
	}
	s.wantAbsent(b)
	s.put(b, data(300, 9), 300, backends.PutOptions{})
	s.wantContent(b, data(300, 9))
}

func testList(s *suite) {
	names := []string{
		// Byte order: '-' < '.' < '/' < '0' < 'c', so keys under p/a/b/ sort between p/a/b.z and p/a/b0.
		"p/a/b-x", "p/a/b.z", "p/a/b/1", "p/a/b/2", "p/a/b/3/deep", "p/a/b0", "p/a/bc", "p/z", "q",
	}
	sizes := map[string]int64{}
	for i, n := range names {
		sizes[s.key(n)] = int64(i * 3)
		s.put(s.key(n), data(i*3, 100+i), int64(i*3), backends.PutOptions{})
	}
	all := make([]string, len(names))
	for i, n := range names {
		all[i] = s.key(n)
	}
	if !sort.StringsAreSorted(all) {
		s.Fatalf("test bug: names not sorted")
	}
	list := func(prefix, after string, limit int) ([]string, string) {
		s.Helper()
		items, next, err := s.b.List(s.ctx, prefix, after, limit)
		if err != nil {
			s.Fatalf("list %q after %q limit %d: %v", prefix, after, limit, err)
		}
		for _, it := range items {
			if want, ok := sizes[it.Key]; ok && it.Size != want {
				s.Fatalf("list: %s has size %d, want %d", it.Key, it.Size, want)
			}
		}
		if len(items) > limit {
			s.Fatalf("list %q limit %d: %d items", prefix, limit, len(items))
		}
		return keys(items), next
	}
	sel := func(ns ...string) []string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = s.key(n)
		}
		return out
	}
	check := func(what string, got, want []string) {
		s.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			s.Fatalf("%s:\n got %v\nwant %v", what, got, want)
		}
	}

	got, next := list(s.prefix, "", 100)
	check("everything", got, all)
	if next != "" {
		s.Fatalf("single page: next %q, want \"\"", next)
	}
	got, _ = list(s.key("p/a/b/"), "", 100)
	check("prefix with slash (no bleed into p/a/bc, p/a/b-x)", got, sel("p/a/b/1", "p/a/b/2", "p/a/b/3/deep"))
	got, _ = list(s.key("p/a/b"), "", 100)
	check("prefix without slash", got, sel("p/a/b-x", "p/a/b.z", "p/a/b/1", "p/a/b/2", "p/a/b/3/deep", "p/a/b0", "p/a/bc"))
	got, _ = list(s.key("p/a/b/1"), "", 100)
	check("prefix equal to a key", got, sel("p/a/b/1"))
	got, next = list(s.key("nothing/"), "", 100)
	check("prefix matching nothing", got, nil)
	if next != "" {
		s.Fatalf("empty list: next %q", next)
	}

	got, _ = list(s.prefix, s.key("p/a/b/2"), 100)
	check("startAfter a key", got, sel("p/a/b/3/deep", "p/a/b0", "p/a/bc", "p/z", "q"))
	got, _ = list(s.prefix, s.key("p/a/b/15"), 100)
	check("startAfter between keys", got, sel("p/a/b/2", "p/a/b/3/deep", "p/a/b0", "p/a/bc", "p/z", "q"))
	got, _ = list(s.prefix, s.key("p/a/b/"), 100)
	check("startAfter a directory-like prefix", got, sel("p/a/b/1", "p/a/b/2", "p/a/b/3/deep", "p/a/b0", "p/a/bc", "p/z", "q"))
	got, _ = list(s.prefix, s.key("p/a/b"), 100)
	check("startAfter a prefix of keys", got, all)
	got, next = list(s.prefix, s.key("q"), 100)
	check("startAfter the last key", got, nil)
	if next != "" {
		s.Fatalf("after the last key: next %q", next)
	}
	got, _ = list(s.key("p/a/"), s.key("p/a/b/3"), 100)
	check("prefix and startAfter", got, sel("p/a/b/3/deep", "p/a/b0", "p/a/bc"))

	// Keys of other prefixes sort all before or all after ours, so from our prefix on, with a limit of
	// our count, an empty-prefix listing shows exactly ours even in a shared bucket.
	got, _ = list("", s.prefix, len(all))
	check("empty prefix", got, all)

	for _, limit := range []int{1, 2, 3, 4, len(all) - 1, len(all), 100} {
		var collected []string
		after := ""
		for page := 0; ; page++ {
			if page > len(all)+1 {
				s.Fatalf("limit %d: paging does not end", limit)
			}
			got, next := list(s.prefix, after, limit)
			collected = append(collected, got...)
			if next == "" {
				break
			}
			if len(got) == 0 {
				s.Fatalf("limit %d: empty page with next %q", limit, next)
			}
			after = next
		}
		check(fmt.Sprintf("paging with limit %d", limit), collected, all)
	}
	if _, next := list(s.prefix, "", 2); next == "" {
		s.Fatalf("first of several pages: next is empty")
	}
}

func testChecksum(s *suite) {
	key := s.key("checksum")
	good, other := data(100_000, 10), data(100_000, 11)
	_, err := s.b.Put(s.ctx, key, body(good), int64(len(good)), backends.PutOptions{SHA256: sha(other)})
	s.wantErr(err, backends.ErrChecksum, "put with a wrong sha256")
	s.wantAbsent(key)
	_, err = s.b.Put(s.ctx, key, body(good), -1, backends.PutOptions{SHA256: sha(other)})
	s.wantErr(err, backends.ErrChecksum, "put of unknown size with a wrong sha256")
	s.wantAbsent(key)

	s.put(key, good, int64(len(good)), backends.PutOptions{SHA256: sha(good)})
	_, err = s.b.Put(s.ctx, key, body(other), int64(len(other)), backends.PutOptions{SHA256: sha(good)})
	s.wantErr(err, backends.ErrChecksum, "overwrite with a wrong sha256")
	s.wantContent(key, good)
}

func testSizeMismatch(s *suite) {
	cases := []struct {
		name     string
		n        int
		declared int64
	}{
		{"short", 999, 1000},
		{"long", 1001, 1000},
		{"long-by-a-buffer", 1<<20 + 1, 1 << 20},
		{"short-empty", 0, 1},
		{"long-from-empty", 1, 0},
	}
	for i, c := range cases {
		key := s.key("size/" + c.name)
		_, err := s.b.Put(s.ctx, key, body(data(c.n, 20+i)), c.declared, backends.PutOptions{})
		s.wantErr(err, backends.ErrSizeMismatch, c.name)
		s.wantAbsent(key)
	}
	key := s.key("size/existing")
	old := data(500, 30)
	s.put(key, old, 500, backends.PutOptions{})
	_, err := s.b.Put(s.ctx, key, body(data(501, 31)), 500, backends.PutOptions{})
	s.wantErr(err, backends.ErrSizeMismatch, "overwrite with a long body")
	_, err = s.b.Put(s.ctx, key, body(data(499, 32)), 500, backends.PutOptions{})
	s.wantErr(err, backends.ErrSizeMismatch, "overwrite with a short body")
	s.wantContent(key, old)
}

func testReaderError(s *suite) {
	key := s.key("reader-error")
	for _, size := range []int64{-1, 1 << 20} {
		_, err := s.b.Put(s.ctx, key, &failing{r: body(data(300<<10, 40))}, size, backends.PutOptions{})
		s.wantErr(err, errBoom, fmt.Sprintf("put (size %d) from a failing reader", size))
		s.wantAbsent(key)
	}
	old := data(1000, 41)
	s.put(key, old, 1000, backends.PutOptions{})
	_, err := s.b.Put(s.ctx, key, &failing{r: body(data(300<<10, 42))}, -1, backends.PutOptions{})
	s.wantErr(err, errBoom, "overwrite from a failing reader")
	s.wantContent(key, old)
}

func testConcurrentGets(s *suite) {
	key := s.key("concurrent")
	blob := data(512<<10+9, 50)
	s.put(key, blob, int64(len(blob)), backends.PutOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Go(func() {
			off := int64(i * 1000)
			for _, rng := range []backends.Range{backends.All, {Offset: off, Length: 4096}} {
				rc, _, err := s.b.Get(s.ctx, key, rng)
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(rc)
				_ = rc.Close()
				end := int64(len(blob))
				if rng.Length >= 0 {
					end = rng.Offset + rng.Length
				}
				if err == nil && !bytes.Equal(got, blob[rng.Offset:end]) {
					err = fmt.Errorf("goroutine %d, range %+v: wrong bytes", i, rng)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.Error(err)
	}
}

func testEarlyClose(s *suite) {
	key := s.key("early-close")
	blob := data(2<<20+1, 60)
	s.put(key, blob, int64(len(blob)), backends.PutOptions{})
	for range 3 {
		rc, _, err := s.b.Get(s.ctx, key, backends.All)
		if err != nil {
			s.Fatalf("get: %v", err)
		}
		buf := make([]byte, 100)
		if _, err := io.ReadFull(rc, buf); err != nil {
			s.Fatalf("read: %v", err)
		}
		if err := rc.Close(); err != nil {
			s.Fatalf("early close: %v", err)
		}
	}
	rc, _, err := s.b.Get(s.ctx, key, backends.Range{Offset: 10, Length: -1})
	if err != nil {
		s.Fatalf("get: %v", err)
	}
	if err := rc.Close(); err != nil { // closed before any read
		s.Fatalf("close unread: %v", err)
	}
	s.wantContent(key, blob)
	if err := s.b.Delete(s.ctx, key); err != nil {
		s.Fatalf("delete after early closes: %v", err)
	}
}

// stalling yields one chunk, reports that it did, then stalls until the context is cancelled, and then
// carries on with more data: a backend must notice the cancellation itself rather than rely on the
// reader failing.
type stalling struct {
	ctx     context.Context
	chunks  [][]byte
	started chan struct{}
	reads   int
	stalled bool
}

func (r *stalling) Read(p []byte) (int, error) {
	switch {
	case r.reads == 1 && !r.stalled:
		r.stalled = true
		close(r.started)
		select {
		case <-r.ctx.Done():
		case <-time.After(10 * time.Second):
			return 0, errors.New("backendtest: the test never cancelled")
		}
	case r.reads >= len(r.chunks):
		return 0, io.EOF
	}
	n := copy(p, r.chunks[r.reads])
	r.chunks[r.reads] = r.chunks[r.reads][n:]
	if len(r.chunks[r.reads]) == 0 {
		r.reads++
	}
	return n, nil
}

func testCancelPut(s *suite) {
	for _, c := range []struct {
		name     string
		existing bool
		size     int64
	}{{"unknown-size", false, -1}, {"known-size", false, 128 << 10}, {"overwrite", true, -1}} {
		key := s.key("cancel/" + c.name)
		var old []byte
		if c.existing {
			old = data(1000, 70)
			s.put(key, old, 1000, backends.PutOptions{})
		}
		ctx, cancel := context.WithCancel(s.ctx)
		r := &stalling{ctx: ctx, chunks: [][]byte{data(64<<10, 71), data(64<<10, 72)}, started: make(chan struct{})}
		go func() {
			select {
			case <-r.started:
			case <-ctx.Done(): // Put returned without reading
			}
			cancel()
		}()
		_, err := s.b.Put(ctx, key, r, c.size, backends.PutOptions{})
		cancel()
		s.wantErr(err, context.Canceled, c.name+": put cancelled midway")
		if c.existing {
			s.wantContent(key, old)
		} else {
			s.wantAbsent(key)
		}
	}
	key := s.key("cancel/before")
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	_, err := s.b.Put(ctx, key, body(data(1000, 73)), 1000, backends.PutOptions{})
	s.wantErr(err, context.Canceled, "put with a cancelled context")
	s.wantAbsent(key)
}

// ---------------------------------------------------------------------------------------------------
// multipart

// partSize is the smallest middle part the backend accepts.
func (s *suite) partSize() int64 {
	s.Helper()
	d, err := s.b.Describe(s.ctx)
	if err != nil {
		s.Fatalf("describe: %v", err)
	}
	return max(d.MinPartSize, 1)
}

func (s *suite) create(key string, opts backends.PutOptions) string {
	s.Helper()
	id, err := s.b.CreateMultipart(s.ctx, key, opts)
	if err != nil {
		s.Fatalf("create multipart %s: %v", key, err)
	}
	if id == "" {
		s.Fatalf("create multipart %s: empty upload id", key)
	}
	s.mu.Lock()
	s.uploads = append(s.uploads, [2]string{key, id})
	s.mu.Unlock()
	return id
}

func (s *suite) putPart(key, id string, n int, b []byte) backends.Part {
	s.Helper()
	p, err := s.b.PutPart(s.ctx, key, id, n, body(b), int64(len(b)))
	if err != nil {
		s.Fatalf("put part %d of %s: %v", n, key, err)
	}
	if p.Number != n || p.Size != int64(len(b)) || p.ETag == "" {
		s.Fatalf("put part %d (%d bytes): got %+v", n, len(b), p)
	}
	return p
}

func testMultipart(s *suite) {
	key := s.key("mp/blob")
	ps := int(s.partSize())
	d1, d2old, d2, d3 := data(ps, 80), data(ps, 81), data(ps, 82), data(17, 83)
	id := s.create(key, backends.PutOptions{ContentType: "application/octet-stream"})

	p3 := s.putPart(key, id, 3, d3) // out of order
	p1 := s.putPart(key, id, 1, d1)
	p2old := s.putPart(key, id, 2, d2old)
	p2 := s.putPart(key, id, 2, d2) // re-upload replaces
	if p2.ETag == p2old.ETag {
		s.Fatalf("re-uploaded part 2 with other bytes kept its etag %q", p2.ETag)
	}
	parts, err := s.b.ListParts(s.ctx, key, id)
	if err != nil {
		s.Fatalf("list parts: %v", err)
	}
	if fmt.Sprint(parts) != fmt.Sprint([]backends.Part{p1, p2, p3}) {
		s.Fatalf("list parts: got %+v, want %+v", parts, []backends.Part{p1, p2, p3})
	}
	s.wantAbsent(key) // nothing visible before Complete

	_, err = s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, p2old, p3})
	s.wantErr(err, backends.ErrInvalidPart, "complete with the etag of a replaced part")
	s.wantAbsent(key)

	info, err := s.b.CompleteMultipart(s.ctx, key, id, parts) // the upload survived the failed complete
	if err != nil {
		s.Fatalf("complete: %v", err)
	}
	want := bytes.Join([][]byte{d1, d2, d3}, nil)
	if info.Key != key || info.Size != int64(len(want)) {
		s.Fatalf("complete: info %+v, want key %s size %d", info, key, len(want))
	}
	if info.SHA256 != "" && info.SHA256 != sha(want) {
		s.Fatalf("complete: info.SHA256 %s, want %s", info.SHA256, sha(want))
	}
	s.wantContent(key, want)
	got, _ := s.get(key, backends.Range{Offset: int64(ps) - 5, Length: 10})
	if !bytes.Equal(got, want[ps-5:ps+5]) {
		s.Fatalf("ranged get across a part boundary: wrong bytes")
	}
	_, err = s.b.ListParts(s.ctx, key, id)
	s.wantErr(err, backends.ErrUploadNotFound, "list parts after complete")
	_, err = s.b.CompleteMultipart(s.ctx, key, id, parts)
	s.wantErr(err, backends.ErrUploadNotFound, "second complete")

	// Completing onto an existing blob replaces it; parts need not be contiguous; one small part is
	// a valid upload.
	id = s.create(key, backends.PutOptions{})
	q1 := s.putPart(key, id, 1, d2)
	q5 := s.putPart(key, id, 5, d3)
	if _, err := s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{q1, q5}); err != nil {
		s.Fatalf("complete with parts 1 and 5: %v", err)
	}
	s.wantContent(key, bytes.Join([][]byte{d2, d3}, nil))
	small := s.key("mp/small")
	id = s.create(small, backends.PutOptions{})
	r1 := s.putPart(small, id, 1, d3)
	if _, err := s.b.CompleteMultipart(s.ctx, small, id, []backends.Part{r1}); err != nil {
		s.Fatalf("complete with one small part: %v", err)
	}
	s.wantContent(small, d3)
}

func testMultipartAbort(s *suite) {
	key := s.key("mp/abort")
	id := s.create(key, backends.PutOptions{})
	p1 := s.putPart(key, id, 1, data(100, 90))
	if err := s.b.AbortMultipart(s.ctx, key, id); err != nil {
		s.Fatalf("abort: %v", err)
	}
	_, err := s.b.ListParts(s.ctx, key, id)
	s.wantErr(err, backends.ErrUploadNotFound, "list parts after abort")
	_, err = s.b.PutPart(s.ctx, key, id, 2, body(data(10, 91)), 10)
	s.wantErr(err, backends.ErrUploadNotFound, "put part after abort")
	_, err = s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1})
	s.wantErr(err, backends.ErrUploadNotFound, "complete after abort")
	s.wantErr(s.b.AbortMultipart(s.ctx, key, id), backends.ErrUploadNotFound, "second abort")
	s.wantAbsent(key)
}

func testMultipartInvalid(s *suite) {
	ps := s.partSize()

	key := s.key("mp/wrong-etag")
	id := s.create(key, backends.PutOptions{})
	p1 := s.putPart(key, id, 1, data(int(ps), 100))
	p2 := s.putPart(key, id, 2, data(10, 101))
	bad := p2
	bad.ETag = "00000000000000000000000000000000"
	_, err := s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, bad})
	s.wantErr(err, backends.ErrInvalidPart, "complete with a wrong etag")
	s.wantAbsent(key)
	_, err = s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, {Number: 3, Size: 10, ETag: p2.ETag}})
	s.wantErr(err, backends.ErrInvalidPart, "complete with a part never uploaded")
	s.wantAbsent(key)

	if ps > 1 {
		key := s.key("mp/small-middle")
		id := s.create(key, backends.PutOptions{})
		p1 := s.putPart(key, id, 1, data(int(ps-1), 102))
		p2 := s.putPart(key, id, 2, data(int(ps), 103))
		_, err := s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, p2})
		s.wantErr(err, backends.ErrInvalidPart, "complete with a middle part below the minimum size")
		s.wantAbsent(key)
	}

	key = s.key("mp/part-size")
	id = s.create(key, backends.PutOptions{})
	_, err = s.b.PutPart(s.ctx, key, id, 1, body(data(99, 104)), 100)
	s.wantErr(err, backends.ErrSizeMismatch, "short part")
	_, err = s.b.PutPart(s.ctx, key, id, 1, body(data(101, 105)), 100)
	s.wantErr(err, backends.ErrSizeMismatch, "long part")
	_, err = s.b.PutPart(s.ctx, key, id, 1, &failing{r: body(data(100, 106))}, -1)
	s.wantErr(err, errBoom, "part from a failing reader")
	parts, err := s.b.ListParts(s.ctx, key, id)
	if err != nil || len(parts) != 0 {
		s.Fatalf("list parts after failed part uploads: %+v, %v", parts, err)
	}
}

func testMultipartChecksum(s *suite) {
	ps := int(s.partSize())
	d1, d2 := data(ps, 110), data(33, 111)
	whole := bytes.Join([][]byte{d1, d2}, nil)

	key := s.key("mp/checksum-bad")
	id := s.create(key, backends.PutOptions{SHA256: sha(d1)})
	p1, p2 := s.putPart(key, id, 1, d1), s.putPart(key, id, 2, d2)
	_, err := s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, p2})
	s.wantErr(err, backends.ErrChecksum, "complete with a wrong sha256")
	s.wantAbsent(key)

	key = s.key("mp/checksum-good")
	id = s.create(key, backends.PutOptions{SHA256: sha(whole)})
	p1, p2 = s.putPart(key, id, 1, d1), s.putPart(key, id, 2, d2)
	info, err := s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{p1, p2})
	if err != nil {
		s.Fatalf("complete with the right sha256: %v", err)
	}
	if info.SHA256 != "" && info.SHA256 != sha(whole) {
		s.Fatalf("complete: info.SHA256 %s, want %s", info.SHA256, sha(whole))
	}
	s.wantContent(key, whole)
}

func testMultipartUnknown(s *suite) {
	key := s.key("mp/unknown")
	// One id shaped like no backend's, one shaped like many (hex).
	for _, id := range []string{"no-such-upload", "0123456789abcdef0123456789abcdef"} {
		_, err := s.b.PutPart(s.ctx, key, id, 1, body(data(10, 120)), 10)
		s.wantErr(err, backends.ErrUploadNotFound, "put part of "+id)
		_, err = s.b.ListParts(s.ctx, key, id)
		s.wantErr(err, backends.ErrUploadNotFound, "list parts of "+id)
		_, err = s.b.CompleteMultipart(s.ctx, key, id, []backends.Part{{Number: 1, Size: 10, ETag: "x"}})
		s.wantErr(err, backends.ErrUploadNotFound, "complete of "+id)
		s.wantErr(s.b.AbortMultipart(s.ctx, key, id), backends.ErrUploadNotFound, "abort of "+id)
	}
	// An upload belongs to its key.
	id := s.create(key, backends.PutOptions{})
	p1 := s.putPart(key, id, 1, data(10, 121))
	other := s.key("mp/other")
	_, err := s.b.ListParts(s.ctx, other, id)
	s.wantErr(err, backends.ErrUploadNotFound, "list parts under another key")
	_, err = s.b.PutPart(s.ctx, other, id, 2, body(data(10, 122)), 10)
	s.wantErr(err, backends.ErrUploadNotFound, "put part under another key")
	_, err = s.b.CompleteMultipart(s.ctx, other, id, []backends.Part{p1})
	s.wantErr(err, backends.ErrUploadNotFound, "complete under another key")
	s.wantErr(s.b.AbortMultipart(s.ctx, other, id), backends.ErrUploadNotFound, "abort under another key")
	s.wantAbsent(other)
	if _, err := s.b.ListParts(s.ctx, key, id); err != nil {
		s.Fatalf("the upload must survive calls under another key: %v", err)
	}
}
