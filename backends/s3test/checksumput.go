package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mlgate/mlgate/backends"
)

// RunChecksumPut checks a backend's uploads of a known sha256 on server s: with checksum puts on
// (checksummed) the object carries the server-verified x-amz-checksum-sha256 (so it went as one
// PutObject), and with them off (plain) it does not; either way a body that fails or is cancelled
// midway leaves nothing, and a whole one reads back intact. prefix is the backends' key prefix ("dir/").
func RunChecksumPut(t *testing.T, s Server, prefix string, checksummed, plain backends.Backend) {
	t.Helper()
	mc := client(t, s)
	ctx := t.Context()
	data := make([]byte, 3<<20+5)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	sumHex := hex.EncodeToString(sum[:])
	for _, c := range []struct {
		name         string
		b            backends.Backend
		wantChecksum string
	}{{"checksummed", checksummed, base64.StdEncoding.EncodeToString(sum[:])}, {"plain", plain, ""}} {
		t.Run(c.name, func(t *testing.T) {
			key := "checksum-put-" + c.name
			if _, err := c.b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{SHA256: sumHex}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.b.Delete(context.Background(), key) })
			st, err := mc.StatObject(ctx, s.Bucket, prefix+key, mgo.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.ChecksumSHA256 != c.wantChecksum {
				t.Errorf("stored x-amz-checksum-sha256 %q, want %q", st.ChecksumSHA256, c.wantChecksum)
			}
			rc, _, err := c.b.Get(ctx, key, backends.All)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}

			// A body that breaks off, at a round 1 MiB and at an odd place, is never stored.
			for _, cut := range []int{1 << 20, 1<<20 + 12345} {
				k := key + "-cut"
				_, err := c.b.Put(ctx, k, io.MultiReader(bytes.NewReader(data[:cut]), failing{}), int64(len(data)), backends.PutOptions{SHA256: sumHex})
				if !errors.Is(err, errCut) {
					t.Errorf("put cut at %d: %v, want the body's error", cut, err)
				}
				if _, err := c.b.Stat(ctx, k); !errors.Is(err, backends.ErrNotFound) {
					t.Errorf("stat after a put cut at %d: %v, want ErrNotFound", cut, err)
				}
			}
			// A cancelled one neither.
			k := key + "-cancel"
			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(50*time.Millisecond, cancel)
			_, err = c.b.Put(cctx, k, io.MultiReader(bytes.NewReader(data[:1<<20]), stalled{cctx}), int64(len(data)), backends.PutOptions{SHA256: sumHex})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("cancelled put: %v, want context.Canceled", err)
			}
			if _, err := c.b.Stat(ctx, k); !errors.Is(err, backends.ErrNotFound) {
				t.Errorf("stat after a cancelled put: %v, want ErrNotFound", err)
			}
		})
	}
}

var errCut = errors.New("s3test: body cut")

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errCut }

// stalled blocks until ctx ends, then yields bytes as if nothing happened: the backend must notice
// the cancellation itself.
type stalled struct{ ctx context.Context }

func (s stalled) Read(p []byte) (int, error) {
	<-s.ctx.Done()
	return len(p), nil
}

// client is a minio-go client of s, for looking at objects behind a backend's back.
func client(t *testing.T, s Server) *mgo.Core {
	t.Helper()
	c, err := mgo.NewCore(strings.TrimPrefix(s.Endpoint, "http://"), &mgo.Options{
		Creds:  credentials.NewStaticV4(os.Getenv(AccessKeyEnv), os.Getenv(SecretKeyEnv), ""),
		Region: "us-east-1", BucketLookup: mgo.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
