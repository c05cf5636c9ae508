package backends_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

// fake records what reaches it. Its Put behaviour is pluggable, to play backends that read a body in
// the different ways real ones do; by default it reads to io.EOF and commits only if that succeeded.
type fake struct {
	backends.Backend // memory, for everything fake does not override

	mu        sync.Mutex
	calls     []string
	committed map[string][]byte
	deleted   []string
	putOpts   backends.PutOptions
	createOpt backends.PutOptions
	listLimit int
	getRange  backends.Range
	describes int
	put       func(r io.Reader, size int64) ([]byte, error) // the bytes to commit, or an error
	info      func(info backends.Info) backends.Info        // tampers with Put's result
	err       error                                         // returned by every call when set
	// serverChecksums is what Describe says of Descriptor.ServerChecksums.
	serverChecksums bool
	// partSizeBlind makes PutPart read the body to its end whatever the declared size, as a backend
	// trusting its reader would, so only Checked can notice a mismatch.
	partSizeBlind bool
}

func newFake() *fake {
	return &fake{Backend: memory.NewWithMinPartSize(1), committed: map[string][]byte{}}
}

func (f *fake) record(op string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
}

func (f *fake) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	f.record("put")
	if f.err != nil {
		return backends.Info{}, f.err
	}
	f.putOpts = opts
	read := f.put
	if read == nil {
		read = func(r io.Reader, _ int64) ([]byte, error) { return io.ReadAll(r) }
	}
	b, err := read(r, size)
	if err != nil {
		return backends.Info{}, err
	}
	f.committed[key] = b
	info := backends.Info{Key: key, Size: int64(len(b))}
	if f.info != nil {
		info = f.info(info)
	}
	return info, nil
}

func (f *fake) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	f.record("get")
	f.getRange = rng
	if f.err != nil {
		return nil, backends.Info{}, f.err
	}
	return f.Backend.Get(ctx, key, rng)
}

func (f *fake) Stat(ctx context.Context, key string) (backends.Info, error) {
	f.record("stat")
	if f.err != nil {
		return backends.Info{}, f.err
	}
	return f.Backend.Stat(ctx, key)
}

func (f *fake) Delete(ctx context.Context, key string) error {
	f.record("delete")
	f.deleted = append(f.deleted, key)
	delete(f.committed, key)
	return nil
}

func (f *fake) List(ctx context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	f.record("list")
	f.listLimit = limit
	return f.Backend.List(ctx, prefix, startAfter, limit)
}

func (f *fake) CreateMultipart(ctx context.Context, key string, opts backends.PutOptions) (string, error) {
	f.record("create")
	f.createOpt = opts
	return f.Backend.CreateMultipart(ctx, key, opts)
}

func (f *fake) PutPart(ctx context.Context, key, id string, n int, r io.Reader, size int64) (backends.Part, error) {
	f.record("putpart")
	if f.partSizeBlind {
		b, err := io.ReadAll(r)
		if err != nil {
			return backends.Part{}, err
		}
		return f.Backend.PutPart(ctx, key, id, n, bytes.NewReader(b), -1)
	}
	return f.Backend.PutPart(ctx, key, id, n, r, size)
}

func (f *fake) ListParts(ctx context.Context, key, id string) ([]backends.Part, error) {
	f.record("listparts")
	return f.Backend.ListParts(ctx, key, id)
}

func (f *fake) CompleteMultipart(ctx context.Context, key, id string, parts []backends.Part) (backends.Info, error) {
	f.record("complete")
	return f.Backend.CompleteMultipart(ctx, key, id, parts)
}

func (f *fake) AbortMultipart(ctx context.Context, key, id string) error {
	f.record("abort")
	return f.Backend.AbortMultipart(ctx, key, id)
}

func (f *fake) Describe(ctx context.Context) (backends.Descriptor, error) {
	f.mu.Lock()
	f.describes++
	f.mu.Unlock()
	return backends.Descriptor{Name: "fake", MinPartSize: 1, MaxPartSize: 1000, MaxParts: 100, ServerChecksums: f.serverChecksums}, nil
}

// TestCheckedPassesSHA256ToServerChecksums: a backend whose server checks sums gets the expected
// sha256 (Checked still verifies it), any other does not, so that it does not hash a second time.
func TestCheckedPassesSHA256ToServerChecksums(t *testing.T) {
	data := []byte("checked by the server too")
	for _, server := range []bool{false, true} {
		f := newFake()
		f.serverChecksums = server
		c := backends.Checked("fake", f)
		if _, err := c.Put(t.Context(), "c/k", bytes.NewReader(data), int64(len(data)), backends.PutOptions{SHA256: hexsum(data)}); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]string{false: "", true: hexsum(data)}[server]; f.putOpts.SHA256 != want {
			t.Errorf("server checksums %v: the backend saw sha256 %q, want %q", server, f.putOpts.SHA256, want)
		}
		other := []byte("not what the sum says")
		_, err := c.Put(t.Context(), "c/k2", bytes.NewReader(other), int64(len(other)), backends.PutOptions{SHA256: hexsum(data)})
		if !errors.Is(err, backends.ErrChecksum) || f.committed["c/k2"] != nil {
			t.Errorf("server checksums %v: a wrong body gave %v and committed %q; want ErrChecksum and nothing", server, err, f.committed["c/k2"])
		}
	}
}

func hexsum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestValidateKey(t *testing.T) {
	valid := []string{"a", "0", "c/000000000000002a/9f1c", "a.b-c_d/e", "a/b./c..d", strings.Repeat("a", backends.MaxKeyLen)}
	invalid := []string{"", ".a", ".staging/x", "A", "a//b", "a/", "/a", "../x", "a/../b", "a/./b", "a b", "a\x00",
		"a/.b", "_a", "-a", "a/-b", "é", strings.Repeat("a", backends.MaxKeyLen+1)}
	for _, k := range valid {
		if err := backends.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range invalid {
		if err := backends.ValidateKey(k); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestCheckedRejectsInvalidKeys(t *testing.T) {
	ctx := t.Context()
	for _, key := range []string{"", ".staging/put-1", "../etc/passwd", "a/../../b", "A", "a//b", strings.Repeat("a", 513)} {
		f := newFake()
		c := backends.Checked("fake", f)
		errs := map[string]error{}
		_, errs["put"] = c.Put(ctx, key, strings.NewReader("x"), 1, backends.PutOptions{})
		_, _, errs["get"] = c.Get(ctx, key, backends.All)
		_, errs["stat"] = c.Stat(ctx, key)
		errs["delete"] = c.Delete(ctx, key)
		_, errs["create"] = c.CreateMultipart(ctx, key, backends.PutOptions{})
		_, errs["putpart"] = c.PutPart(ctx, key, "id", 1, strings.NewReader("x"), 1)
		_, errs["listparts"] = c.ListParts(ctx, key, "id")
		_, errs["complete"] = c.CompleteMultipart(ctx, key, "id", []backends.Part{{Number: 1}})
		errs["abort"] = c.AbortMultipart(ctx, key, "id")
		for op, err := range errs {
			if !errors.Is(err, backends.ErrInvalidKey) {
				t.Errorf("%s %q: %v, want ErrInvalidKey", op, key, err)
			}
		}
		if len(f.calls) > 0 {
			t.Errorf("key %q reached the backend: %v", key, f.calls)
		}
	}
}

func TestCheckedListArguments(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	c := backends.Checked("fake", f)
	for _, p := range []string{".", ".staging/", "/", "a//", "A", "../", strings.Repeat("a", backends.MaxKeyLen+1)} {
		if _, _, err := c.List(ctx, p, "", 10); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("list prefix %q: %v, want ErrInvalidKey", p, err)
		}
		if _, _, err := c.List(ctx, "", p, 10); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("list startAfter %q: %v, want ErrInvalidKey", p, err)
		}
	}
	if len(f.calls) > 0 {
		t.Fatalf("invalid list arguments reached the backend: %v", f.calls)
	}
	for _, p := range []string{"", "c", "c/", "c/00", "a.", "a-", "a/b/", strings.Repeat("a", backends.MaxKeyLen)} {
		if _, _, err := c.List(ctx, p, p, 10); err != nil {
			t.Errorf("list %q: %v", p, err)
		}
	}
	for _, limit := range []int{0, -5} {
		if _, _, err := c.List(ctx, "", "", limit); err != nil || f.listLimit != backends.DefaultListLimit {
			t.Errorf("list with limit %d: backend saw %d (%v), want %d", limit, f.listLimit, err, backends.DefaultListLimit)
		}
	}
	if _, _, _ = c.List(ctx, "", "", 7); f.listLimit != 7 {
		t.Errorf("list with limit 7: backend saw %d", f.listLimit)
	}
}

func TestCheckedArguments(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	c := backends.Checked("fake", f)
	want := func(what string, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("%s: %v, want %v", what, err, target)
		}
	}
	_, _, err := c.Get(ctx, "a", backends.Range{Offset: -1, Length: -1})
	want("negative offset", err, backends.ErrInvalidRange)
	_, err = c.Put(ctx, "a", strings.NewReader(""), -2, backends.PutOptions{})
	want("size -2", err, backends.ErrSizeMismatch)
	for _, sum := range []string{"abc", strings.ToUpper(hexsum(nil)), hexsum(nil) + "0", strings.Repeat("g", 64)} {
		_, err = c.Put(ctx, "a", strings.NewReader(""), 0, backends.PutOptions{SHA256: sum})
		want("malformed sha256 "+sum, err, backends.ErrChecksum)
		_, err = c.CreateMultipart(ctx, "a", backends.PutOptions{SHA256: sum})
		want("create with malformed sha256 "+sum, err, backends.ErrChecksum)
	}
	if len(f.calls) > 0 {
		t.Fatalf("invalid arguments reached the backend: %v", f.calls)
	}

	f.put = func(r io.Reader, _ int64) ([]byte, error) { return io.ReadAll(r) }
	if _, err := c.Put(ctx, "a", strings.NewReader("hello"), 5, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _ = f.Backend.Put(ctx, "a", strings.NewReader("hello"), 5, backends.PutOptions{})
	rc, _, err := c.Get(ctx, "a", backends.Range{Offset: 1, Length: -7})
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if f.getRange != (backends.Range{Offset: 1, Length: -1}) {
		t.Errorf("negative length reached the backend as %+v, want -1", f.getRange)
	}
	// Offset+Length would overflow int64: to the end, which is what such a range means.
	if rc, _, err = c.Get(ctx, "a", backends.Range{Offset: 3, Length: math.MaxInt64 - 1}); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if f.getRange != (backends.Range{Offset: 3, Length: -1}) {
		t.Errorf("a length past any end reached the backend as %+v, want -1", f.getRange)
	}

	id, err := c.CreateMultipart(ctx, "a", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	for _, n := range []int{0, -1, 101} {
		_, err = c.PutPart(ctx, "a", id, n, strings.NewReader("x"), 1)
		want("part number", err, backends.ErrInvalidPart)
	}
	_, err = c.PutPart(ctx, "a", id, 1, strings.NewReader("x"), 1001)
	want("part above MaxPartSize", err, backends.ErrInvalidPart)
	_, err = c.PutPart(ctx, "a", id, 1, strings.NewReader("x"), -2)
	want("part size -2", err, backends.ErrSizeMismatch)
	_, err = c.PutPart(ctx, "a", "", 1, strings.NewReader("x"), 1)
	want("empty upload id", err, backends.ErrUploadNotFound)
	_, err = c.ListParts(ctx, "a", "")
	want("list parts, empty upload id", err, backends.ErrUploadNotFound)
	err = c.AbortMultipart(ctx, "a", "")
	want("abort, empty upload id", err, backends.ErrUploadNotFound)
	_, err = c.CompleteMultipart(ctx, "a", strings.Repeat("x", 2000), []backends.Part{{Number: 1}})
	want("complete, huge upload id", err, backends.ErrUploadNotFound)
	for _, parts := range [][]backends.Part{nil, {{Number: 2}, {Number: 1}}, {{Number: 1}, {Number: 1}}, {{Number: 0}}, {{Number: 101}}} {
		_, err = c.CompleteMultipart(ctx, "a", id, parts)
		want("complete with bad part list", err, backends.ErrInvalidPart)
	}
	if len(f.calls) > 0 {
		t.Fatalf("invalid multipart arguments reached the backend: %v", f.calls)
	}
	p, err := c.PutPart(ctx, "a", id, 100, strings.NewReader("x"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteMultipart(ctx, "a", id, []backends.Part{p}); err != nil {
		t.Fatal(err)
	}
	if f.describes != 1 {
		t.Errorf("Describe called %d times, want once (cached)", f.describes)
	}
}

// exact plays a backend that reads exactly the declared size and never asks for io.EOF (as with
// io.CopyN into a pre-sized object), committing whatever that yields unless the read fails.
func exact(r io.Reader, size int64) ([]byte, error) {
	var buf bytes.Buffer
	_, err := io.Copy(&buf, io.LimitReader(r, size))
	return buf.Bytes(), err
}

func TestCheckedVerifiesBeforeCommit(t *testing.T) {
	ctx := t.Context()
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	readers := map[string]func(io.Reader, int64) ([]byte, error){
		"to-eof": nil,
		"exact":  exact,
		"small-reads": func(r io.Reader, _ int64) ([]byte, error) {
			var buf bytes.Buffer
			_, err := io.CopyBuffer(struct{ io.Writer }{&buf}, r, make([]byte, 7))
			return buf.Bytes(), err
		},
	}
	cases := []struct {
		name string
		body []byte
		size int64
		sum  string
		err  error
	}{
		{"checksum", body, int64(len(body)), hexsum(body[1:]), backends.ErrChecksum},
		{"checksum-unknown-size", body, -1, hexsum(body[1:]), backends.ErrChecksum},
		{"checksum-empty", nil, 0, hexsum(body), backends.ErrChecksum},
		{"short", body[1:], int64(len(body)), "", backends.ErrSizeMismatch},
		{"long", body, int64(len(body) - 1), "", backends.ErrSizeMismatch},
		{"long-from-empty", body[:1], 0, "", backends.ErrSizeMismatch},
	}
	for rname, read := range readers {
		for _, c := range cases {
			if rname == "exact" && c.size < 0 {
				continue
			}
			t.Run(rname+"/"+c.name, func(t *testing.T) {
				f := newFake()
				f.put = read
				_, err := backends.Checked("fake", f).Put(ctx, "k", bytes.NewReader(c.body), c.size, backends.PutOptions{SHA256: c.sum})
				if !errors.Is(err, c.err) {
					t.Fatalf("put: %v, want %v", err, c.err)
				}
				if len(f.committed) > 0 {
					t.Fatalf("the backend committed %d bytes: verification came too late", len(f.committed["k"]))
				}
				if len(f.deleted) > 0 {
					t.Fatalf("Checked had to delete: the backend saw the error only after committing")
				}
			})
		}
	}
}

func TestCheckedSHA256(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	c := backends.Checked("fake", f)
	body := []byte("some model weights")
	for _, size := range []int64{int64(len(body)), -1} {
		info, err := c.Put(ctx, "k", bytes.NewReader(body), size, backends.PutOptions{SHA256: hexsum(body), ContentType: "text/plain"})
		if err != nil {
			t.Fatal(err)
		}
		if info.SHA256 != hexsum(body) || info.Key != "k" || info.Size != int64(len(body)) {
			t.Fatalf("info %+v: want the sha256 Checked computed", info)
		}
		if f.putOpts.SHA256 != "" || f.putOpts.ContentType != "text/plain" {
			t.Fatalf("backend saw options %+v: want sha256 cleared (verified once, by Checked), content type kept", f.putOpts)
		}
	}
	info, err := c.Put(ctx, "k", bytes.NewReader(nil), 0, backends.PutOptions{})
	if err != nil || info.SHA256 != hexsum(nil) {
		t.Fatalf("empty put: %+v, %v", info, err)
	}
	if _, err := c.CreateMultipart(ctx, "k", backends.PutOptions{SHA256: hexsum(body)}); err != nil {
		t.Fatal(err)
	}
	if f.createOpt.SHA256 != hexsum(body) {
		t.Fatalf("create multipart: backend saw %+v: the backend is the only one who can verify a multipart sum", f.createOpt)
	}
}

// TestCheckedDefenceInDepth plays backends that break the contract: Checked must still not report
// success for a bad body, and must remove what the backend committed.
func TestCheckedDefenceInDepth(t *testing.T) {
	ctx := t.Context()
	body := bytes.Repeat([]byte("x"), 10_000)
	cases := []struct {
		name string
		size int64
		sum  string
		put  func(io.Reader, int64) ([]byte, error)
		info func(backends.Info) backends.Info
		err  error
	}{
		{"ignores-read-errors", int64(len(body)), hexsum(nil), func(r io.Reader, _ int64) ([]byte, error) {
			b, _ := io.ReadAll(r)
			return b, nil
		}, nil, backends.ErrChecksum},
		{"ignores-size-error", int64(len(body)) + 1, "", func(r io.Reader, _ int64) ([]byte, error) {
			b, _ := io.ReadAll(r)
			return b, nil
		}, nil, backends.ErrSizeMismatch},
		{"stops-early-unknown-size", -1, "", func(r io.Reader, _ int64) ([]byte, error) {
			b := make([]byte, 100)
			n, _ := io.ReadFull(r, b)
			return b[:n], nil
		}, nil, backends.ErrSizeMismatch},
		{"read-full-drops-the-verdict", int64(len(body)), hexsum(nil), func(r io.Reader, size int64) ([]byte, error) {
			b := make([]byte, size)
			_, err := io.ReadFull(r, b) // returns nil when it got size bytes, whatever came with them
			return b, err
		}, nil, backends.ErrChecksum},
		{"reports-another-size", int64(len(body)), "", nil, func(i backends.Info) backends.Info { i.Size--; return i }, backends.ErrSizeMismatch},
		{"reports-another-sha256", int64(len(body)), "", nil, func(i backends.Info) backends.Info { i.SHA256 = hexsum(nil); return i }, backends.ErrChecksum},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake()
			f.put, f.info = c.put, c.info
			_, err := backends.Checked("fake", f).Put(ctx, "k", bytes.NewReader(body), c.size, backends.PutOptions{SHA256: c.sum})
			if !errors.Is(err, c.err) {
				t.Fatalf("put: %v, want %v", err, c.err)
			}
			if len(f.deleted) != 1 || f.deleted[0] != "k" || len(f.committed) > 0 {
				t.Fatalf("deleted %v, still committed %d: Checked must remove the bad blob", f.deleted, len(f.committed))
			}
		})
	}
}

func TestCheckedPutPartCounts(t *testing.T) {
	ctx := t.Context()
	f := newFake()
	c := backends.Checked("fake", f)
	id, err := c.CreateMultipart(ctx, "k", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.partSizeBlind = true
	for _, body := range []string{"0123456789", "012345678", "0123456", ""} {
		if _, err := c.PutPart(ctx, "k", id, 1, strings.NewReader(body), 8); !errors.Is(err, backends.ErrSizeMismatch) {
			t.Errorf("part of %d bytes declared 8: %v, want ErrSizeMismatch", len(body), err)
		}
	}
	parts, err := c.ListParts(ctx, "k", id)
	if err != nil || len(parts) > 0 {
		t.Fatalf("parts stored from bad bodies: %+v, %v", parts, err)
	}
	p, err := c.PutPart(ctx, "k", id, 1, strings.NewReader("01234567"), 8)
	if err != nil || p.Size != 8 || p.Number != 1 {
		t.Fatalf("good part: %+v, %v", p, err)
	}
}

func TestCheckedErrors(t *testing.T) {
	f := newFake()
	c := backends.Checked("fake", f)
	_, err := c.Stat(t.Context(), "a/b")
	if !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("stat: %v", err)
	}
	if got, want := err.Error(), `backend fake: stat "a/b": memory stat: blob not found`; got != want {
		t.Fatalf("error text %q, want %q", got, want)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	f.err = errors.New("stream broken") // a plugin may only see its stream die
	_, err = c.Stat(ctx, "a/b")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stat with a cancelled context: %v, want context.Canceled", err)
	}
	f.err = context.DeadlineExceeded
	_, _, err = c.Get(t.Context(), "a/b", backends.All)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get: %v, want context.DeadlineExceeded", err)
	}

	// A plugin that flattens errors loses our sentinel; Checked restores it.
	f.err = nil
	f.put = func(r io.Reader, _ int64) ([]byte, error) {
		if _, err := io.ReadAll(r); err != nil {
			return nil, errors.New("plugin: " + err.Error())
		}
		return nil, nil
	}
	_, err = c.Put(t.Context(), "k", strings.NewReader("abc"), 4, backends.PutOptions{})
	if !errors.Is(err, backends.ErrSizeMismatch) {
		t.Fatalf("put: %v, want ErrSizeMismatch", err)
	}
}

// TestCheckedStopsAtCancellation feeds an endless body: Checked must end it at cancellation even for
// a backend that never looks at its context.
func TestCheckedStopsAtCancellation(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	f := newFake()
	reads := 0
	r := readerFunc(func(p []byte) (int, error) {
		reads++
		if reads == 3 {
			cancel()
		}
		if reads > 3 {
			t.Error("read after cancellation")
		}
		return copy(p, "abc"), nil // endless
	})
	_, err := backends.Checked("fake", f).Put(ctx, "k", r, -1, backends.PutOptions{})
	if !errors.Is(err, context.Canceled) || len(f.committed) > 0 {
		t.Fatalf("put: %v, committed %d", err, len(f.committed))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestCheckedIsIdempotent: wrapping a checked backend again returns it, so its rules run and its errors
// are decorated once, under the name it was first given.
func TestCheckedIsIdempotent(t *testing.T) {
	f := newFake()
	c := backends.Checked("first", f)
	var b backends.Backend = c
	if again := backends.Checked("second", b); again != c {
		t.Fatalf("Checked of a checked backend wrapped it again")
	}
	_, err := backends.Checked("second", b).Stat(t.Context(), "a/b")
	if got, want := err.Error(), `backend first: stat "a/b": memory stat: blob not found`; got != want {
		t.Fatalf("error text %q, want %q", got, want)
	}
	body := []byte("counted once")
	if _, err := backends.Checked("second", b).Put(t.Context(), "k", bytes.NewReader(body), int64(len(body)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if f.describes != 1 {
		t.Fatalf("the backend was asked for its limits %d times, want once", f.describes)
	}
}
