package s3util

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

func TestVerifySum(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	data := []byte("completed object")
	if _, err := b.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := verifySum(ctx, b, "k", hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("matching sum: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if err := verifySum(ctx, b, "k", hex.EncodeToString(other[:])); !errors.Is(err, backends.ErrChecksum) {
		t.Fatalf("wrong sum: %v, want ErrChecksum", err)
	}
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("an object with the wrong sum was kept: %v", err)
	}
	if err := verifySum(ctx, b, "missing", hex.EncodeToString(sum[:])); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}

// idDecoding is the memory backend with ids made by EncodeUploadID, as an S3 backend's ListParts sees
// them.
type idDecoding struct{ *memory.Backend }

func (d idDecoding) ListParts(ctx context.Context, key, id string) ([]backends.Part, error) {
	s3ID, _ := DecodeUploadID(id)
	return d.Backend.ListParts(ctx, key, s3ID)
}

func TestCompleteMultipart(t *testing.T) {
	ctx := t.Context()
	data := []byte("one part, the last, so below the minimum size is fine")
	sum := sha256.Sum256(data)
	good, bad := hex.EncodeToString(sum[:]), strings.Repeat("0", 64)
	cases := []struct {
		name    string
		sum     string
		etag    func(string) string
		err     error
		s3Calls int
	}{
		{"no-sum", "", nil, nil, 1},
		{"sum", good, nil, nil, 1},
		{"wrong-sum", bad, nil, backends.ErrChecksum, 1},
		{"wrong-etag", "", func(string) string { return "nope" }, backends.ErrInvalidPart, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem := memory.New()
			b := idDecoding{mem}
			memID, err := mem.CreateMultipart(ctx, "k", backends.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p, err := mem.PutPart(ctx, "k", memID, 1, bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if c.etag != nil {
				p.ETag = c.etag(p.ETag)
			}
			calls := 0
			complete := func(ctx context.Context, key, s3ID string, parts []backends.Part) error {
				calls++
				if s3ID != memID {
					t.Errorf("complete got upload id %q, want the S3 one %q", s3ID, memID)
				}
				_, err := mem.CompleteMultipart(ctx, key, s3ID, parts)
				return err
			}
			info, err := CompleteMultipart(ctx, b, complete, "k", EncodeUploadID(memID, c.sum), []backends.Part{p})
			if calls != c.s3Calls {
				t.Fatalf("S3 complete called %d times, want %d", calls, c.s3Calls)
			}
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("complete: %v, want %v", err, c.err)
				}
				if _, err := mem.Stat(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
					t.Fatalf("a failed complete left the object: %v", err)
				}
				return
			}
			if err != nil || info.Size != int64(len(data)) || info.SHA256 != c.sum || info.Key != "k" {
				t.Fatalf("complete: %+v, %v", info, err)
			}
		})
	}

	// An unknown upload is the contract's ErrUploadNotFound, whatever S3's complete would have said.
	called := false
	_, err := CompleteMultipart(ctx, idDecoding{memory.New()}, func(context.Context, string, string, []backends.Part) error {
		called = true
		return nil
	}, "k", "no-such-upload", []backends.Part{{Number: 1, ETag: "x"}})
	if !errors.Is(err, backends.ErrUploadNotFound) || called {
		t.Fatalf("unknown upload: %v (S3 complete called: %v), want ErrUploadNotFound before any S3 call", err, called)
	}
}
