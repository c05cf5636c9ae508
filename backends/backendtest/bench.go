package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// Bench measures Put and Get throughput of whole blobs of each size (default 1 MiB and 64 MiB), with
// the same constructor Run uses. Bodies come from a reader that copies from a 1 MiB pattern, like a
// network body, so the numbers are the backend's (plus Checked's, if newBackend wraps it).
func Bench(b *testing.B, newBackend func(b *testing.B) backends.Backend, sizes ...int64) {
	if len(sizes) == 0 {
		sizes = []int64{1 << 20, 64 << 20}
	}
	be := newBackend(b)
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	prefix := hex.EncodeToString(raw[:]) + "/"
	ctx := context.Background()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		items, _, _ := be.List(ctx, prefix, "", 1000)
		for _, it := range items {
			_ = be.Delete(ctx, it.Key)
		}
	})
	for _, size := range sizes {
		key := fmt.Sprintf("%sbench/%d", prefix, size)
		b.Run(fmt.Sprintf("Put/%s", human(size)), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := be.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Get/%s", human(size)), func(b *testing.B) {
			if _, err := be.Put(ctx, key, &pattern{n: size}, size, backends.PutOptions{}); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			for b.Loop() {
				rc, _, err := be.Get(ctx, key, backends.All)
				if err != nil {
					b.Fatal(err)
				}
				// Plain reads into a 1 MiB buffer, as a handler copying to a client would do.
				n, err := io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{rc}, buf)
				_ = rc.Close()
				if err != nil || n != size {
					b.Fatalf("get: %d bytes, %v", n, err)
				}
			}
		})
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dB", n)
}

var benchPattern = sync.OnceValue(func() []byte { return data(1<<20, 1) })

// pattern yields n bytes cut from a 1 MiB random pattern.
type pattern struct {
	n, off int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	src := benchPattern()
	i := int(p.off % int64(len(src)))
	m := min(int64(len(b)), p.n-p.off, int64(len(src)-i))
	copy(b, src[i:i+int(m)])
	p.off += m
	return int(m), nil
}
