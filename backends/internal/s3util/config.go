package s3util

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// S3's limits, and the defaults of Config.
const (
	MaxPartSize = 5 << 30
	MaxParts    = 10000
	// MaxPutSize is the largest single PutObject; larger known-size bodies go through multipart.
	MaxPutSize = 5 << 30

	defaultPartSize    = 8 << 20
	defaultConcurrency = 4
	defaultRegion      = "us-east-1"
)

// Config is the JSON config of both S3 backends, backends/s3 (aws-sdk-go-v2) and backends/minio
// (minio-go): they talk to the same servers with the same settings.
type Config struct {
	// Endpoint is the server's base URL ("http://127.0.0.1:9000"); empty means AWS S3.
	Endpoint string `json:"endpoint,omitempty"`
	// Region defaults to us-east-1, which S3-compatible servers accept.
	Region string `json:"region,omitempty"`
	Bucket string `json:"bucket"`
	// Prefix is prepended to every key; a missing trailing "/" is added.
	Prefix string `json:"prefix,omitempty"`
	// ForcePathStyle addresses the bucket as a path (endpoint/bucket/key), which servers without
	// wildcard DNS need; otherwise the SDK picks (minio-go: virtual-host style for AWS only).
	ForcePathStyle bool `json:"path_style,omitempty"`
	// AccessKeyEnv and SecretKeyEnv name environment variables that hold the credentials. Both or
	// neither; neither means the SDK's standard chain (environment, shared credential files, instance
	// roles; minio-go also reads MINIO_* variables).
	AccessKeyEnv string `json:"access_key_env,omitempty"`
	SecretKeyEnv string `json:"secret_key_env,omitempty"`
	// PartSize is the part size of uploads whose size is unknown (default 8 MiB, 5 MiB..5 GiB). Such
	// an upload holds at most PartSize*Concurrency bytes in memory.
	PartSize int64 `json:"part_size,omitempty"`
	// Concurrency is the number of parts such an upload sends at once (default 4, at most 64).
	Concurrency int `json:"concurrency,omitempty"`
	// SinglePut sends a body of known size as one PutObject instead of a one-part multipart upload
	// (two more requests), completed only after the whole body arrived and was verified. Only safe
	// with servers that discard a body shorter than its Content-Length, as AWS and MinIO do: versitygw
	// 1.8 stores whatever arrived before the connection broke, so a failed or cancelled upload would
	// leave a truncated blob.
	//
	// An aws-chunked PutObject with a CRC32C trailer is no safer there: minio-go sends whole chunks
	// only, so a cut body always ends on a chunk boundary, and versitygw 1.8 stores such a body too.
	SinglePut bool `json:"single_put,omitempty"`
	// DisableDirectGet makes downloads from a plain-HTTP endpoint go through the SDK's HTTP client
	// instead of a connection of their own whose bytes the kernel moves to the destination
	// (DirectGet). Direct gets cost one TCP connection each and a fraction of the CPU.
	DisableDirectGet bool `json:"disable_direct_get,omitempty"`
	// DisableChecksumPut sends a body of known size and known sha256 (the client's X-Checksum-SHA256,
	// a migration) like any other instead of as one PutObject carrying x-amz-checksum-sha256. With the
	// header the server checks the body against the sum before storing it, so a body cut short can
	// never be stored, whatever the server does with short bodies otherwise (MinIO and versitygw check
	// it); turn this off only for a server that ignores the header and keeps short bodies.
	DisableChecksumPut bool `json:"disable_checksum_put,omitempty"`
}

// Validate checks the config without contacting the server and fills in the defaults. Errors name
// the offending field; the backend prefixes its name.
func (c *Config) Validate() error {
	if c.Bucket == "" {
		return errors.New("bucket is required")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("endpoint %q is not an http(s) URL without a path", c.Endpoint)
		}
	}
	if c.Region == "" {
		c.Region = defaultRegion
	}
	if c.Prefix != "" {
		if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "//") {
			return fmt.Errorf("prefix %q must not start with / or contain //", c.Prefix)
		}
		if !strings.HasSuffix(c.Prefix, "/") {
			c.Prefix += "/"
		}
	}
	if (c.AccessKeyEnv == "") != (c.SecretKeyEnv == "") {
		return errors.New("access_key_env and secret_key_env go together")
	}
	switch {
	case c.PartSize == 0:
		c.PartSize = defaultPartSize
	case c.PartSize < MinPartSize || c.PartSize > MaxPartSize:
		return fmt.Errorf("part_size %d outside %d..%d", c.PartSize, MinPartSize, MaxPartSize)
	}
	switch {
	case c.Concurrency == 0:
		c.Concurrency = defaultConcurrency
	case c.Concurrency < 1 || c.Concurrency > 64:
		return fmt.Errorf("concurrency %d outside 1..64", c.Concurrency)
	}
	return nil
}

// Where names the server in messages.
func (c *Config) Where() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	return "AWS S3 (" + c.Region + ")"
}

// ChecksumPut returns the x-amz-checksum-sha256 value a Put of size bytes with the expected hex
// sha256 sends (see Config.DisableChecksumPut), or "" when it goes as any other upload.
func (c *Config) ChecksumPut(size int64, sha256Hex string) string {
	if c.DisableChecksumPut || size <= 0 || size > MaxPutSize {
		return ""
	}
	return ChecksumSHA256(sha256Hex)
}
