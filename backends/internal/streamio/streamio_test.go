package streamio

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestCopyMovesEveryByteInLargeWrites(t *testing.T) {
	data := make([]byte, 3*BufferSize+17)
	for i := range data {
		data[i] = byte(i * 31)
	}
	var dst countingWriter
	// OneByteReader-style small reads must still come out as full-buffer writes.
	n, err := Copy(context.Background(), &dst, iotest.HalfReader(bytes.NewReader(data)))
	if err != nil || n != int64(len(data)) || !bytes.Equal(dst.buf.Bytes(), data) {
		t.Fatalf("copied %d, err %v, equal %v", n, err, bytes.Equal(dst.buf.Bytes(), data))
	}
	if dst.writes != 4 {
		t.Fatalf("%d writes, want 4 full-buffer writes", dst.writes)
	}
}

func TestCopyWritesBytesReturnedWithAnError(t *testing.T) {
	boom := errors.New("boom")
	var dst countingWriter
	n, err := Copy(context.Background(), &dst, iotest.DataErrReader(io.MultiReader(bytes.NewReader([]byte("tail")), iotest.ErrReader(boom))))
	if !errors.Is(err, boom) || n != 4 || dst.buf.String() != "tail" {
		t.Fatalf("n %d err %v dst %q", n, err, dst.buf.String())
	}
}

func TestCopyStopsOnWriteErrorAndLeavesSrcAlone(t *testing.T) {
	src := &endlessReader{}
	_, err := Copy(context.Background(), failingWriter{}, src)
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("err %v", err)
	}
	// The reader goroutine has returned: no Read may run after Copy returns.
	before := src.reads
	for range 1000 {
		if src.reads != before {
			t.Fatal("src read after Copy returned")
		}
	}
}

func TestCopyStopsWhenContextIsCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	src := &endlessReader{onRead: func(n int) {
		if n == 10 {
			cancel()
		}
	}}
	_, err := Copy(ctx, io.Discard, src)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

type countingWriter struct {
	buf    bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.buf.Write(p)
}

var errDiskFull = errors.New("disk full")

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

type endlessReader struct {
	reads  int
	onRead func(n int)
}

func (r *endlessReader) Read(p []byte) (int, error) {
	r.reads++
	if r.onRead != nil {
		r.onRead(r.reads)
	}
	n := min(len(p), 4096)
	clear(p[:n])
	return n, nil
}
