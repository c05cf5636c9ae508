package s3util

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
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
