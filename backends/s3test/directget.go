package s3test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/connbody"
)

func blobData(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// getAll Gets rng of key and reads it whole, checking the reader's kind: a *connbody.Body or not.
func getAll(t *testing.T, b backends.Backend, key string, rng backends.Range, wantDirect bool) ([]byte, backends.Info) {
	t.Helper()
	rc, info, err := b.Get(t.Context(), key, rng)
	if err != nil {
		t.Fatalf("get %s %+v: %v", key, rng, err)
	}
	defer rc.Close()
	if _, direct := rc.(*connbody.Body); direct != wantDirect {
		t.Errorf("get %+v: the reader is a %T; want a direct body: %v", rng, rc, wantDirect)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s %+v: %v", key, rng, err)
	}
	return got, info
}

// sameInfo reports whether a direct get's Info is the SDK path's, field by field (ModTime as an
// instant: the two parsers may pick different *time.Location values for UTC).
func sameInfo(a, b backends.Info) bool {
	return a.Key == b.Key && a.Size == b.Size && a.ModTime.Equal(b.ModTime) && a.ETag == b.ETag &&
		a.ContentType == b.ContentType && a.SHA256 == b.SHA256
}

// RunDirectGet checks a backend's direct gets (backends/internal/s3util.DirectGet) against its SDK
// gets: direct and sdk are the same backend on the same server and prefix, with direct gets on and off.
// Whole and ranged gets give the same bytes and Info both ways, direct ones as a *connbody.Body; empty
// ranges, empty blobs and missing keys behave alike; io.Copy of a body into TCP and Unix sockets (where a
// direct body splices) delivers it whole.
func RunDirectGet(t *testing.T, direct, sdk backends.Backend) {
	t.Helper()
	{
		const size = 3<<20 + 17
		data := blobData(size)
		const key = "blob"
		sum := sha256.Sum256(data)
		put, err := direct.Put(t.Context(), key, bytes.NewReader(data), size, backends.PutOptions{ContentType: "application/x-mlgate-test"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = direct.Delete(t.Context(), key) })

		for _, c := range []struct {
			name  string
			rng   backends.Range
			start int64
			end   int64
		}{
			{"all", backends.All, 0, size},
			{"whole-as-range", backends.Range{Offset: 0, Length: size}, 0, size},
			{"first-byte", backends.Range{Offset: 0, Length: 1}, 0, 1},
			{"middle", backends.Range{Offset: 1000, Length: 2 << 20}, 1000, 1000 + 2<<20},
			{"tail", backends.Range{Offset: size - 17, Length: -1}, size - 17, size},
			{"last-byte", backends.Range{Offset: size - 1, Length: 1}, size - 1, size},
			{"past-the-end", backends.Range{Offset: 5, Length: size + 100}, 5, size},
		} {
			t.Run(c.name, func(t *testing.T) {
				want := data[c.start:c.end]
				got, info := getAll(t, direct, key, c.rng, true)
				if !bytes.Equal(got, want) {
					t.Errorf("direct: %d bytes (sha256 %x), want %d", len(got), sha256.Sum256(got), len(want))
				}
				got2, info2 := getAll(t, sdk, key, c.rng, false)
				if !bytes.Equal(got2, want) {
					t.Errorf("sdk: %d bytes (sha256 %x), want %d", len(got2), sha256.Sum256(got2), len(want))
				}
				if info.Size != size || info.Key != key || info.ETag != put.ETag || info.ContentType != "application/x-mlgate-test" || info.ModTime.IsZero() {
					t.Errorf("direct info %+v: want size %d, key %s, etag %s and a time", info, size, key, put.ETag)
				}
				if !sameInfo(info, info2) {
					t.Errorf("info: direct %+v, sdk %+v", info, info2)
				}
			})
		}

		t.Run("empty-range", func(t *testing.T) {
			for _, b := range []backends.Backend{direct, sdk} {
				rc, info, err := b.Get(t.Context(), key, backends.Range{Offset: size, Length: -1})
				if err != nil {
					t.Fatalf("offset == size: %v", err)
				}
				got, err := io.ReadAll(rc)
				_ = rc.Close()
				if err != nil || len(got) != 0 || info.Size != size {
					t.Errorf("offset == size: %d bytes, %v, size %d", len(got), err, info.Size)
				}
				if _, _, err := b.Get(t.Context(), key, backends.Range{Offset: size + 1, Length: -1}); !errors.Is(err, backends.ErrInvalidRange) {
					t.Errorf("offset beyond the size: %v, want ErrInvalidRange", err)
				}
			}
		})

		t.Run("empty-blob", func(t *testing.T) {
			const empty = "empty"
			if _, err := direct.Put(t.Context(), empty, bytes.NewReader(nil), 0, backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = direct.Delete(t.Context(), empty) })
			got, info := getAll(t, direct, empty, backends.All, true)
			got2, info2 := getAll(t, sdk, empty, backends.All, false)
			if len(got) != 0 || len(got2) != 0 || info.Size != 0 || !sameInfo(info, info2) {
				t.Errorf("direct: %d bytes, %+v; sdk: %d bytes, %+v", len(got), info, len(got2), info2)
			}
		})

		t.Run("missing", func(t *testing.T) {
			for _, rng := range []backends.Range{backends.All, {Offset: 10, Length: 10}} {
				for _, b := range []backends.Backend{direct, sdk} {
					rc, _, err := b.Get(t.Context(), "no-such-blob", rng)
					if !errors.Is(err, backends.ErrNotFound) || rc != nil {
						t.Errorf("get of a missing blob %+v: %v, %v; want ErrNotFound", rng, rc, err)
					}
				}
			}
		})

		// io.Copy hands a direct body's WriteTo the socket: splice to TCP and to a Unix socket.
		for _, kind := range []string{"tcp", "unix", "unix-listener"} {
			for _, d := range []struct {
				name string
				b    backends.Backend
			}{{"direct", direct}, {"sdk", sdk}} {
				t.Run("copy-to-"+kind+"/"+d.name, func(t *testing.T) {
					rc, _, err := d.b.Get(t.Context(), key, backends.All)
					if err != nil {
						t.Fatal(err)
					}
					defer rc.Close()
					if _, ok := rc.(*connbody.Body); ok != (d.b == direct) {
						t.Errorf("the reader is a %T", rc)
					}
					w, r := connPair(t, kind)
					type result struct {
						sum [32]byte
						n   int64
						err error
					}
					ch := make(chan result, 1)
					go func() {
						h := sha256.New()
						n, err := io.Copy(h, r)
						var res result
						copy(res.sum[:], h.Sum(nil))
						res.n, res.err = n, err
						ch <- res
					}()
					n, err := io.Copy(w, rc)
					_ = w.Close()
					if err != nil || n != size {
						t.Errorf("io.Copy: %d, %v; want %d, nil", n, err, size)
					}
					var res result
					select {
					case res = <-ch:
					case <-time.After(30 * time.Second):
						t.Fatal("the reading side did not finish")
					}
					if res.err != nil || res.n != size || res.sum != sum {
						t.Errorf("the other side read %d bytes (sha256 %x), %v; want %d (sha256 %x)", res.n, res.sum, res.err, size, sum)
					}
				})
			}
		}
	}
}

// connPair returns a connected pair of the kind ("tcp", "unix" for a socketpair, "unix-listener"),
// the first end to write to; both are closed at the end of the test. Every Unix end is a
// *net.UnixConn, which is what io.Copy must hand to the body's WriteTo for a splice.
func connPair(t *testing.T, kind string) (w, r net.Conn) {
	t.Helper()
	switch kind {
	case "unix":
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ends [2]net.Conn
		for i, fd := range fds {
			f := os.NewFile(uintptr(fd), "socketpair")
			c, err := net.FileConn(f)
			_ = f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := c.(*net.UnixConn); !ok {
				t.Fatalf("net.FileConn gave a %T", c)
			}
			ends[i] = c
		}
		w, r = ends[0], ends[1]
	case "unix-listener":
		dir, err := os.MkdirTemp("", "sdt")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		ln, err := net.Listen("unix", filepath.Join(dir, "s"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if w, err = net.Dial("unix", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		if r, err = ln.Accept(); err != nil {
			t.Fatal(err)
		}
	default:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if w, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		if r, err = ln.Accept(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = w.Close(); _ = r.Close() })
	return w, r
}
