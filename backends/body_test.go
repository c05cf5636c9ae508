package backends_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/mlgate/mlgate/backends"
)

// drain reads b with a buffer of bufLen until Read returns an error, as a consumer that stops at the
// first error would, and returns the bytes it was handed and that error.
func drain(t *testing.T, b io.Reader, bufLen int) ([]byte, error) {
	t.Helper()
	var got []byte
	buf := make([]byte, bufLen)
	for range 10_000 {
		n, err := b.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
	t.Fatal("the body never ended")
	return nil, nil
}

// TestBodyVerdicts checks each verdict in both delivery modes: without Withhold the final bytes come
// with the verdict, with Withhold a failure keeps them back so the consumer never holds the whole body.
func TestBodyVerdicts(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 10)
	const buf = 10
	cases := []struct {
		name string
		src  func() io.Reader
		size int64
		sum  string
		err  error // nil: io.EOF
		// On a failure, the bytes the consumer was handed without and with Withhold.
		handed, withheld int
	}{
		{"exact", func() io.Reader { return bytes.NewReader(body) }, 100, hexsum(body), nil, 0, 0},
		{"unknown-size", func() io.Reader { return bytes.NewReader(body) }, -1, hexsum(body), nil, 0, 0},
		{"eof-with-data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body)) }, -1, hexsum(body), nil, 0, 0},
		{"checksum", func() io.Reader { return bytes.NewReader(body) }, 100, hexsum(body[1:]), backends.ErrChecksum, 100, 90},
		{"checksum-unknown-size", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body)) }, -1, hexsum(nil), backends.ErrChecksum, 100, 90},
		{"long", func() io.Reader { return bytes.NewReader(body) }, 99, "", backends.ErrSizeMismatch, 99, 90},
		// A short body whose end comes apart from its data: nothing to withhold, the server sees a
		// short body whatever happens.
		{"short", func() io.Reader { return bytes.NewReader(body[:95]) }, 100, "", backends.ErrSizeMismatch, 95, 95},
		{"short-eof-with-data", func() io.Reader { return iotest.DataErrReader(bytes.NewReader(body[:95])) }, 100, "", backends.ErrSizeMismatch, 95, 90},
	}
	for _, c := range cases {
		for _, withhold := range []bool{false, true} {
			name := c.name + map[bool]string{false: "/with-verdict", true: "/withhold"}[withhold]
			t.Run(name, func(t *testing.T) {
				b := backends.NewBody(t.Context(), c.src(), c.size, backends.BodyOptions{SHA256: c.sum, Withhold: withhold})
				got, err := drain(t, b, buf)
				if c.err == nil {
					if err != io.EOF || !bytes.Equal(got, body) || b.Failure() != nil || b.Complete() != nil || b.Sum() != hexsum(body) {
						t.Fatalf("got %d bytes, %v (failure %v, sum %q); want the body and io.EOF", len(got), err, b.Failure(), b.Sum())
					}
					return
				}
				if !errors.Is(err, c.err) || !errors.Is(b.Failure(), c.err) || !errors.Is(b.Complete(), c.err) {
					t.Fatalf("verdict %v (failure %v); want %v", err, b.Failure(), c.err)
				}
				if b.Sum() != "" {
					t.Fatalf("Sum %q after a failure", b.Sum())
				}
				want := map[bool]int{false: c.handed, true: c.withheld}[withhold]
				if len(got) != want || !bytes.Equal(got, body[:len(got)]) {
					t.Fatalf("the consumer was handed %d bytes before the verdict, want %d", len(got), want)
				}
				if n, err2 := b.Read(make([]byte, 1)); n != 0 || err2 != err {
					t.Fatalf("after the verdict Read gave %d, %v; want the same verdict again", n, err2)
				}
			})
		}
	}
}

// TestBodyWithholdsUntilEOF: with Withhold a good body's last bytes come with a nil error, and io.EOF
// on the next call, so an HTTP stack never sees an error together with the final data.
func TestBodyWithholdsUntilEOF(t *testing.T) {
	b := backends.NewBody(t.Context(), bytes.NewReader([]byte("abc")), 3, backends.BodyOptions{Withhold: true})
	p := make([]byte, 8)
	if n, err := b.Read(p); n != 3 || err != nil {
		t.Fatalf("first read: %d, %v; want 3, nil", n, err)
	}
	if n, err := b.Read(p); n != 0 || err != io.EOF {
		t.Fatalf("second read: %d, %v; want 0, io.EOF", n, err)
	}
	// Without Withhold the verdict comes with the last declared byte.
	b = backends.NewBody(t.Context(), bytes.NewReader([]byte("abc")), 3, backends.BodyOptions{})
	if n, err := b.Read(p); n != 3 || err != io.EOF {
		t.Fatalf("read: %d, %v; want 3, io.EOF", n, err)
	}
}

func TestBodySourceErrorAndCancellation(t *testing.T) {
	boom := errors.New("boom")
	for _, withhold := range []bool{false, true} {
		b := backends.NewBody(t.Context(), iotest.TimeoutReader(bytes.NewReader([]byte("abcdef"))), 6, backends.BodyOptions{Withhold: withhold})
		p := make([]byte, 2)
		if n, err := b.Read(p); n != 2 || err != nil {
			t.Fatalf("withhold %v: first read %d, %v", withhold, n, err)
		}
		n, err := b.Read(p)
		if !errors.Is(err, iotest.ErrTimeout) || !errors.Is(b.Failure(), iotest.ErrTimeout) || n != 0 {
			t.Fatalf("withhold %v: second read %d, %v; want 0 and the source's error", withhold, n, err)
		}
		if blamed := b.Blame(boom); !errors.Is(blamed, iotest.ErrTimeout) || errors.Is(blamed, boom) {
			t.Fatalf("withhold %v: Blame gave %v; want the body's failure first, the transfer error as text", withhold, blamed)
		}
	}
	if err := backends.NewBody(t.Context(), nil, 1, backends.BodyOptions{}).Blame(boom); err != boom {
		t.Fatalf("Blame without a failure: %v, want the error unchanged", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	b := backends.NewBody(ctx, bytes.NewReader([]byte("abcdef")), -1, backends.BodyOptions{})
	cancel()
	if n, err := b.Read(make([]byte, 4)); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancellation: %d, %v", n, err)
	}
}

func TestBodySettle(t *testing.T) {
	// Called early, before the declared size or the end: the consumer stopped short.
	b := backends.NewBody(t.Context(), bytes.NewReader([]byte("abcdef")), 6, backends.BodyOptions{})
	if _, err := b.Read(make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(); !errors.Is(err, backends.ErrSizeMismatch) || b.N() != 2 {
		t.Fatalf("Complete after 2 of 6 bytes: %v (N %d); want ErrSizeMismatch", err, b.N())
	}
	// Up front for an empty body: a consumer may store it without reading.
	if err := backends.NewBody(t.Context(), bytes.NewReader(nil), 0, backends.BodyOptions{}).Settle(); err != io.EOF {
		t.Fatalf("empty body: %v, want io.EOF", err)
	}
	if err := backends.NewBody(t.Context(), bytes.NewReader([]byte("x")), 0, backends.BodyOptions{}).Settle(); !errors.Is(err, backends.ErrSizeMismatch) {
		t.Fatalf("one byte declared empty: %v, want ErrSizeMismatch", err)
	}
	empty := backends.NewBody(t.Context(), bytes.NewReader(nil), 0, backends.BodyOptions{Hash: true})
	if err := empty.Settle(); err != io.EOF || empty.Sum() != hexsum(nil) {
		t.Fatalf("hashed empty body: %v, sum %q", err, empty.Sum())
	}
	// A source that keeps returning (0, nil) is broken: Settle gives up instead of spinning.
	stuck := backends.NewBody(t.Context(), readerFunc(func([]byte) (int, error) { return 0, nil }), 0, backends.BodyOptions{})
	if err := stuck.Settle(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("stuck source: %v, want io.ErrNoProgress", err)
	}
}
