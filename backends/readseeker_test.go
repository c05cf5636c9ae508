package backends_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/memory"
)

// counting records the Gets issued through it and how many of their readers are still open.
type counting struct {
	backends.Backend
	mu   sync.Mutex
	gets []backends.Range
	open int
}

func (c *counting) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	rc, info, err := c.Backend.Get(ctx, key, rng)
	if err != nil {
		return nil, info, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets = append(c.gets, rng)
	c.open++
	return &tracked{ReadCloser: rc, c: c}, info, nil
}

func (c *counting) stats() (gets, open int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.gets), c.open
}

type tracked struct {
	io.ReadCloser
	c      *counting
	closed bool
}

func (t *tracked) Close() error {
	t.c.mu.Lock()
	if !t.closed {
		t.closed = true
		t.c.open--
	}
	t.c.mu.Unlock()
	return t.ReadCloser.Close()
}

func newCounting(t *testing.T, blob []byte) *counting {
	t.Helper()
	m := memory.New()
	if _, err := m.Put(t.Context(), "k", bytes.NewReader(blob), int64(len(blob)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	return &counting{Backend: m}
}

func testBlob(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i/251)
	}
	return b
}

func TestReadSeekerPatterns(t *testing.T) {
	blob := testBlob(100_000)
	size := int64(len(blob))
	c := newCounting(t, blob)
	rs := backends.NewReadSeeker(t.Context(), c, "k", size)

	seek := func(off int64, whence int, want int64) {
		t.Helper()
		got, err := rs.Seek(off, whence)
		if err != nil || got != want {
			t.Fatalf("seek(%d, %d) = %d, %v; want %d", off, whence, got, err, want)
		}
	}
	read := func(n int, want []byte) {
		t.Helper()
		buf := make([]byte, n)
		got, err := io.ReadFull(rs, buf)
		if err != nil || !bytes.Equal(buf[:got], want) {
			t.Fatalf("read %d: %d bytes, %v", n, got, err)
		}
	}
	wantGets := func(gets, open int) {
		t.Helper()
		if g, o := c.stats(); g != gets || o != open {
			t.Fatalf("%d gets (%d open), want %d (%d open): %v", g, o, gets, open, c.gets)
		}
	}

	seek(0, io.SeekEnd, size) // what ServeContent does first
	if n, err := rs.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read at the end: %d, %v; want io.EOF", n, err)
	}
	wantGets(0, 0)
	seek(0, io.SeekStart, 0)
	wantGets(0, 0) // lazy
	read(10, blob[:10])
	read(10, blob[10:20])
	wantGets(1, 1)
	seek(20, io.SeekStart, 20) // no move: keep the open reader
	seek(0, io.SeekCurrent, 20)
	read(5, blob[20:25])
	wantGets(1, 1)
	seek(5000, io.SeekStart, 5000)
	wantGets(1, 0) // the old reader is closed at once, the new one opened on demand
	read(100, blob[5000:5100])
	wantGets(2, 1)
	if c.gets[1] != (backends.Range{Offset: 5000, Length: -1}) {
		t.Fatalf("get after seek: %+v", c.gets[1])
	}
	seek(-10, io.SeekCurrent, 5090)
	read(10, blob[5090:5100])
	wantGets(3, 1)
	seek(-1, io.SeekEnd, size-1)
	read(1, blob[size-1:])
	wantGets(4, 0) // reaching the end releases the reader before Close
	if n, err := rs.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read past the last byte: %d, %v", n, err)
	}
	seek(size+10, io.SeekStart, size+10)
	if _, err := rs.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read beyond size: %v", err)
	}
	wantGets(4, 0)
	if _, err := rs.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek to a negative offset succeeded")
	}
	if _, err := rs.Seek(0, 42); err == nil {
		t.Fatal("seek with a bad whence succeeded")
	}
	seek(0, io.SeekStart, 0)
	all, err := io.ReadAll(rs)
	if err != nil || !bytes.Equal(all, blob) {
		t.Fatalf("read all: %d bytes, %v", len(all), err)
	}
	seek(10, io.SeekStart, 10)
	read(1, blob[10:11])
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}
	wantGets(6, 0)
	if _, err := rs.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := rs.Seek(0, io.SeekStart); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("seek after close: %v", err)
	}
	if err := rs.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestReadSeekerErrors(t *testing.T) {
	blob := testBlob(1000)
	c := newCounting(t, blob)

	rs := backends.NewReadSeeker(t.Context(), c, "k", 1500) // metadata says more than the blob has
	got, err := io.ReadAll(rs)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !bytes.Equal(got, blob) {
		t.Fatalf("short blob: %d bytes, %v; want the blob, then io.ErrUnexpectedEOF", len(got), err)
	}
	rs.Close()

	rs = backends.NewReadSeeker(t.Context(), c, "k", 500) // never serve more than size
	got, err = io.ReadAll(rs)
	if err != nil || !bytes.Equal(got, blob[:500]) {
		t.Fatalf("size below the blob's: %d bytes, %v", len(got), err)
	}
	rs.Close()

	rs = backends.NewReadSeeker(t.Context(), c, "missing", 10)
	if _, err := rs.Read(make([]byte, 1)); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	rs.Close()

	rs = backends.NewReadSeeker(t.Context(), c, "missing", 0)
	if got, err := io.ReadAll(rs); err != nil || len(got) != 0 {
		t.Fatalf("empty blob: %d bytes, %v; want no Get at all", len(got), err)
	}
	rs.Close()
	if _, open := c.stats(); open != 0 {
		t.Fatalf("%d readers left open", open)
	}
}

func TestReadSeekerServeContent(t *testing.T) {
	blob := testBlob(100_000)
	size := len(blob)
	c := newCounting(t, blob)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs := backends.NewReadSeeker(r.Context(), c, "k", int64(size))
		defer rs.Close()
		// As the gateway does. Without it ServeContent sniffs the first 512 bytes and seeks back,
		// which costs one more Get.
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), rs)
	}))
	defer srv.Close()

	type want struct {
		status int
		ranges [][2]int // expected byte ranges [start, end)
		gets   int
	}
	cases := []struct {
		method, rng string
		want        want
	}{
		{"GET", "", want{200, [][2]int{{0, size}}, 1}},
		{"HEAD", "", want{200, nil, 0}},
		{"GET", "bytes=0-9", want{206, [][2]int{{0, 10}}, 1}},
		{"GET", "bytes=1000-", want{206, [][2]int{{1000, size}}, 1}},
		{"GET", "bytes=-10", want{206, [][2]int{{size - 10, size}}, 1}},
		{"GET", "bytes=99990-200000", want{206, [][2]int{{99990, size}}, 1}},
		{"GET", "bytes=50000-50000", want{206, [][2]int{{50000, 50001}}, 1}},
		{"GET", fmt.Sprintf("bytes=%d-", size), want{416, nil, 0}},
		{"GET", "bytes=0-1,50-59,99999-", want{206, [][2]int{{0, 2}, {50, 60}, {99999, size}}, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.rng, func(t *testing.T) {
			gets0, _ := c.stats()
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, srv.URL, nil)
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want.status)
			}
			var parts [][]byte
			mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if mt == "multipart/byteranges" {
				mr := multipart.NewReader(resp.Body, params["boundary"])
				for {
					p, err := mr.NextPart()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					b, err := io.ReadAll(p)
					if err != nil {
						t.Fatal(err)
					}
					parts = append(parts, b)
				}
			} else if b, err := io.ReadAll(resp.Body); err != nil {
				t.Fatal(err)
			} else if tc.want.ranges != nil {
				parts = [][]byte{b}
			}
			if len(parts) != len(tc.want.ranges) {
				t.Fatalf("%d ranges in the response, want %d", len(parts), len(tc.want.ranges))
			}
			for i, r := range tc.want.ranges {
				if !bytes.Equal(parts[i], blob[r[0]:r[1]]) {
					t.Fatalf("range %d: %d bytes, want blob[%d:%d]", i, len(parts[i]), r[0], r[1])
				}
			}
			// The handler has returned once the body is read; its deferred Close has run by then or
			// very soon after.
			var gets int
			poll.UntilOK(t, 5*time.Second, "every reader to be closed", func() error {
				var open int
				if gets, open = c.stats(); open != 0 {
					return fmt.Errorf("%d readers still open", open)
				}
				return nil
			})
			if gets-gets0 != tc.want.gets {
				t.Fatalf("%d Gets, want %d", gets-gets0, tc.want.gets)
			}
		})
	}
}
