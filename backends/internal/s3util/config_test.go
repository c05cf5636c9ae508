package s3util

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{},
		{Bucket: "b", Endpoint: "ftp://x"},
		{Bucket: "b", Endpoint: "127.0.0.1:9000"},
		{Bucket: "b", Endpoint: "http://127.0.0.1:9000/some/path"},
		{Bucket: "b", Prefix: "/abs"},
		{Bucket: "b", Prefix: "a//b"},
		{Bucket: "b", AccessKeyEnv: "A"},
		{Bucket: "b", PartSize: 1 << 20},
		{Bucket: "b", Concurrency: -1},
		{Bucket: "b", Concurrency: 65},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	c := Config{Bucket: "b", Prefix: "p"}
	if err := c.Validate(); err != nil || c.Prefix != "p/" || c.Region == "" || c.PartSize == 0 || c.Concurrency == 0 {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	if c.Where() != "AWS S3 (us-east-1)" {
		t.Errorf("where: %q", c.Where())
	}
	c = Config{Bucket: "b", Endpoint: "http://127.0.0.1:9000/"}
	if err := c.Validate(); err != nil || c.Where() != "http://127.0.0.1:9000/" {
		t.Errorf("endpoint with a bare slash: %v, where %q", err, c.Where())
	}
}

func TestChecksumPut(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	hexSum, b64 := hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:])
	on, off := Config{}, Config{DisableChecksumPut: true}
	for _, c := range []struct {
		cfg  Config
		size int64
		sum  string
		want string
	}{
		{on, 1, hexSum, b64},
		{on, MaxPutSize, hexSum, b64},
		{on, MaxPutSize + 1, hexSum, ""}, // multipart
		{on, 0, hexSum, ""},              // nothing to cut
		{on, -1, hexSum, ""},             // unknown size
		{on, 1, "", ""},
		{on, 1, "not-hex", ""},
		{off, 1, hexSum, ""},
	} {
		if got := c.cfg.ChecksumPut(c.size, c.sum); got != c.want {
			t.Errorf("%+v size %d sum %q: %q, want %q", c.cfg, c.size, c.sum, got, c.want)
		}
	}
}

func TestVerifySum(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	data := []byte("completed object")
	if _, err := b.Put(ctx, "k", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if err := VerifySum(ctx, b, "k", hex.EncodeToString(sum[:])); err != nil {
		t.Fatalf("matching sum: %v", err)
	}
	other := sha256.Sum256([]byte("other"))
	if err := VerifySum(ctx, b, "k", hex.EncodeToString(other[:])); !errors.Is(err, backends.ErrChecksum) {
		t.Fatalf("wrong sum: %v, want ErrChecksum", err)
	}
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("an object with the wrong sum was kept: %v", err)
	}
	if err := VerifySum(ctx, b, "missing", hex.EncodeToString(sum[:])); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
}
