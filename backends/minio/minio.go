// Package minio is an S3 backend on minio-go v7, for MinIO and any other S3-compatible server (or
// AWS). It has the same capabilities and contract as backends/s3 and exists because minio-go is
// lighter and faster than the AWS SDK on the hot paths.
//
// Blobs are objects under Config.Prefix in one bucket; multipart uploads map one to one to S3
// multipart uploads (through minio.Core).
package minio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/s3util"
)

// Config is the backend's JSON config, shared with backends/s3: the fields are documented at
// backends/internal/s3util.Config, and mlgate.example.yaml shows each one.
type Config = s3util.Config

// Backend is an S3 bucket (or a prefix of one) as a backends.Backend.
type Backend struct {
	cfg   Config
	core  *mgo.Core
	proxy func(*http.Request) (*url.URL, error) // the transport's; direct gets never bypass a proxy
}

var _ backends.Backend = (*Backend)(nil)

// Factory builds a Backend from its JSON Config (unknown fields are refused).
func Factory(ctx context.Context, raw json.RawMessage) (backends.Backend, error) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("minio: config: %w", err)
	}
	return New(ctx, cfg)
}

// New validates cfg, connects and checks that the bucket exists and the credentials work, so that a
// misconfiguration fails at startup. The errors say "bucket ... does not exist at ...",
// "credentials rejected by ...", or wrap backends.ErrUnavailable when the server cannot be reached.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("minio: %w", err)
	}
	host, secure := "s3.amazonaws.com", true
	if cfg.Endpoint != "" {
		u, _ := url.Parse(cfg.Endpoint) // checked by Validate
		host, secure = u.Host, u.Scheme == "https"
	}
	var creds *credentials.Credentials
	if cfg.AccessKeyEnv != "" {
		ak, sk := os.Getenv(cfg.AccessKeyEnv), os.Getenv(cfg.SecretKeyEnv)
		if ak == "" || sk == "" {
			return nil, fmt.Errorf("minio: environment variables %s and %s must hold the credentials", cfg.AccessKeyEnv, cfg.SecretKeyEnv)
		}
		creds = credentials.NewStaticV4(ak, sk, "")
	} else {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{},
			&credentials.FileMinioClient{}, &credentials.IAM{},
		})
	}
	lookup := mgo.BucketLookupAuto
	if cfg.ForcePathStyle {
		lookup = mgo.BucketLookupPath
	}
	tr, err := mgo.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("minio: transport: %w", err)
	}
	// net/http's 4 KiB connection buffers turn a GiB into a quarter million syscalls each way.
	tr.ReadBufferSize, tr.WriteBufferSize = 256<<10, 256<<10
	core, err := mgo.NewCore(host, &mgo.Options{
		Creds: creds, Secure: secure, Region: cfg.Region, BucketLookup: lookup, Transport: tr,
		// Few retries: an outage must reach the client as a prompt 503, which it retries itself.
		MaxRetries: 2,
	})
	if err != nil {
		return nil, fmt.Errorf("minio: client for %s: %w", cfg.Where(), err)
	}
	b := &Backend{cfg: cfg, core: core, proxy: tr.Proxy}
	ok, err := core.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, b.startupError(err)
	}
	if !ok {
		return nil, fmt.Errorf("minio: bucket %q does not exist at %s", cfg.Bucket, cfg.Where())
	}
	return b, nil
}

func (b *Backend) startupError(err error) error {
	r := mgo.ToErrorResponse(err)
	switch {
	case r.StatusCode == 404 || r.Code == "NoSuchBucket":
		return fmt.Errorf("minio: bucket %q does not exist at %s", b.cfg.Bucket, b.cfg.Where())
	case r.StatusCode == 401 || r.StatusCode == 403 || r.Code == "InvalidAccessKeyId" || r.Code == "SignatureDoesNotMatch" || r.Code == "AccessDenied":
		return fmt.Errorf("minio: credentials rejected by %s: %w", b.cfg.Where(), err)
	case s3util.IsContextErr(err):
		return err
	}
	return fmt.Errorf("minio: %w: cannot reach bucket %q at %s: %w", backends.ErrUnavailable, b.cfg.Bucket, b.cfg.Where(), err)
}

func (b *Backend) objectKey(key string) string { return b.cfg.Prefix + key }

// Put streams r to key. A known size with a known sha256 goes as one PutObject the server checks
// against the sum (see Config.DisableChecksumPut); any other known size through a one-part multipart
// upload streamed from r (see Config.SinglePut); an unknown size through minio-go's multipart stream,
// which buffers a part.
// Errors: ErrSizeMismatch, ErrChecksum, r's error, context errors, ErrUnavailable; nothing is
// committed in any error case.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	checksum := b.cfg.ChecksumPut(size, opts.SHA256)
	want := opts.SHA256
	if checksum != "" {
		want = "" // the server checks it (Descriptor.ServerChecksums)
	}
	g := s3util.NewGuard(ctx, r, size, want)
	if size == 0 {
		if err := g.Settle(); err != io.EOF {
			return backends.Info{}, err
		}
	}
	popts := mgo.PutObjectOptions{ContentType: opts.ContentType, DisableContentSha256: true}
	var etag string
	switch {
	case checksum != "":
		popts.UserMetadata = map[string]string{"x-amz-checksum-sha256": checksum}
		up, err := b.core.PutObject(ctx, b.cfg.Bucket, b.objectKey(key), g, size, "", "", popts)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = up.ETag
	case size > 0 && !(b.cfg.SinglePut && size <= s3util.MaxPutSize):
		e, err := b.putMultipart(ctx, key, g, size, popts)
		if err != nil {
			return backends.Info{}, err
		}
		etag = e
	case size >= 0:
		up, err := b.core.PutObject(ctx, b.cfg.Bucket, b.objectKey(key), g, size, "", "", popts)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = up.ETag
	default:
		popts.PartSize = uint64(b.cfg.PartSize)
		popts.NumThreads = uint(b.cfg.Concurrency)
		popts.ConcurrentStreamParts = b.cfg.Concurrency > 1
		up, err := b.core.Client.PutObject(ctx, b.cfg.Bucket, b.objectKey(key), g, -1, popts)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = up.ETag
	}
	if err := g.Complete(); err != nil {
		b.discard(ctx, key)
		return backends.Info{}, err
	}
	return backends.Info{Key: key, Size: g.N(), ModTime: time.Now(), ETag: strings.Trim(etag, `"`), ContentType: opts.ContentType, SHA256: opts.SHA256}, nil
}

func (b *Backend) discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = b.core.RemoveObject(ctx, b.cfg.Bucket, b.objectKey(key), mgo.RemoveObjectOptions{})
}

// Get opens a range of key with one eager GetObject (minio.Core's, so a missing key fails here and
// not on the first Read as with Client.GetObject). Errors: ErrNotFound, ErrInvalidRange,
// ErrUnavailable, context errors.
func (b *Backend) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	if rng.Length == 0 {
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, backends.Info{}, err
		}
		if rng.Offset > info.Size {
			return nil, backends.Info{}, fmt.Errorf("%w: offset %d beyond size %d", backends.ErrInvalidRange, rng.Offset, info.Size)
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	var gopts mgo.GetObjectOptions
	ranged := rng.Offset > 0 || rng.Length > 0
	rangeHeader := ""
	if ranged {
		// Set directly: SetRange cannot say "bytes=0-N" apart from "bytes=0-0" semantics we need.
		rangeHeader = "bytes=" + strconv.FormatInt(rng.Offset, 10) + "-"
		if rng.Length > 0 {
			rangeHeader += strconv.FormatInt(rng.Offset+rng.Length-1, 10)
		}
		gopts.Set("Range", rangeHeader)
	}
	if !b.cfg.DisableDirectGet {
		rc, info, err := b.directGet(ctx, key, rangeHeader)
		if !errors.Is(err, s3util.ErrNoDirect) {
			return rc, info, err
		}
	}
	rc, oi, hdr, err := b.core.GetObject(ctx, b.cfg.Bucket, b.objectKey(key), gopts)
	if err != nil {
		err = mapErr(err)
		if !errors.Is(err, backends.ErrInvalidRange) {
			return nil, backends.Info{}, err
		}
		info, serr := b.Stat(ctx, key)
		if serr != nil {
			return nil, backends.Info{}, serr
		}
		if rng.Offset == info.Size {
			return io.NopCloser(strings.NewReader("")), info, nil
		}
		return nil, backends.Info{}, fmt.Errorf("%w: offset %d beyond size %d", backends.ErrInvalidRange, rng.Offset, info.Size)
	}
	info := toInfo(key, oi)
	if ranged {
		total, ok := rangeTotal(hdr)
		if !ok {
			_ = rc.Close()
			return nil, backends.Info{}, fmt.Errorf("%w: unparsable Content-Range %q", backends.ErrUnavailable, hdr.Get("Content-Range"))
		}
		info.Size = total
	}
	return rc, info, nil
}

// directGet is Get over s3util.DirectGet. Errors: s3util.ErrNoDirect when the SDK must do the Get
// (including every refused request, so that its error mapping stays the only one), context errors.
func (b *Backend) directGet(ctx context.Context, key, rangeHeader string) (io.ReadCloser, backends.Info, error) {
	if b.cfg.Endpoint == "" || !strings.HasPrefix(b.cfg.Endpoint, "http:") {
		return nil, backends.Info{}, s3util.ErrNoDirect
	}
	u, err := b.core.Client.PresignedGetObject(ctx, b.cfg.Bucket, b.objectKey(key), directGetExpiry, nil)
	if err != nil {
		return nil, backends.Info{}, fmt.Errorf("%w: presign: %v", s3util.ErrNoDirect, err)
	}
	body, resp, err := s3util.DirectGet(ctx, u, rangeHeader, b.proxy)
	if err != nil {
		return nil, backends.Info{}, err
	}
	// A server that ignored the Range answers 200 with the whole object; minio-go's request then
	// decides what the range gives, as it would without direct gets.
	if rangeHeader != "" && resp.StatusCode != http.StatusPartialContent {
		_ = body.Close()
		return nil, backends.Info{}, fmt.Errorf("%w: status %s for a range", s3util.ErrNoDirect, resp.Status)
	}
	oi, err := mgo.ToObjectInfo(b.cfg.Bucket, b.objectKey(key), resp.Header)
	if err != nil {
		_ = body.Close()
		return nil, backends.Info{}, fmt.Errorf("%w: %v", s3util.ErrNoDirect, err)
	}
	info := toInfo(key, oi)
	if rangeHeader != "" {
		total, ok := rangeTotal(resp.Header)
		if !ok {
			_ = body.Close()
			return nil, backends.Info{}, fmt.Errorf("%w: unparsable Content-Range %q", backends.ErrUnavailable, resp.Header.Get("Content-Range"))
		}
		info.Size = total
	}
	return body, info, nil
}

// directGetExpiry is the lifetime of a direct get's presigned URL, which is used at once.
const directGetExpiry = 5 * time.Minute

func rangeTotal(h http.Header) (int64, bool) {
	cr := h.Get("Content-Range")
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil && n >= 0
}

func toInfo(key string, oi mgo.ObjectInfo) backends.Info {
	return backends.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified, ETag: strings.Trim(oi.ETag, `"`), ContentType: oi.ContentType}
}

// Stat returns key's Info, or ErrNotFound.
func (b *Backend) Stat(ctx context.Context, key string) (backends.Info, error) {
	oi, err := b.core.StatObject(ctx, b.cfg.Bucket, b.objectKey(key), mgo.StatObjectOptions{})
	if err != nil {
		return backends.Info{}, mapErr(err)
	}
	return toInfo(key, oi), nil
}

// Delete removes key. S3 deletes are idempotent, so a StatObject first returns ErrNotFound as the
// contract asks (a concurrent delete between the two is not detected).
func (b *Backend) Delete(ctx context.Context, key string) error {
	if _, err := b.Stat(ctx, key); err != nil {
		return err
	}
	return mapErr(b.core.RemoveObject(ctx, b.cfg.Bucket, b.objectKey(key), mgo.RemoveObjectOptions{}))
}

// List pages with ListObjectsV2's StartAfter. Objects whose names are no valid key are skipped.
func (b *Backend) List(ctx context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	if limit <= 0 {
		limit = backends.DefaultListLimit
	}
	after := ""
	if startAfter != "" {
		after = b.objectKey(startAfter)
	}
	// Core.ListObjectsV2 takes no context; the call is bounded by the transport's timeouts.
	res, err := b.core.ListObjectsV2(b.cfg.Bucket, b.objectKey(prefix), after, "", "", min(limit, 1000))
	if err != nil {
		return nil, "", mapErr(err)
	}
	items := make([]backends.Info, 0, len(res.Contents))
	last := ""
	for _, o := range res.Contents {
		k := strings.TrimPrefix(o.Key, b.cfg.Prefix)
		last = k
		if backends.ValidateKey(k) != nil {
			continue
		}
		items = append(items, backends.Info{Key: k, Size: o.Size, ModTime: o.LastModified, ETag: strings.Trim(o.ETag, `"`)})
	}
	next := ""
	if res.IsTruncated && last != "" {
		next = last
	}
	return items, next, nil
}

// Describe reports S3's multipart limits.
func (b *Backend) Describe(ctx context.Context) (backends.Descriptor, error) {
	return backends.Descriptor{
		Name: "minio", Version: "minio-go/v7 " + b.cfg.Where(),
		MinPartSize: s3util.MinPartSize, MaxPartSize: s3util.MaxPartSize, MaxParts: s3util.MaxParts,
		ServerChecksums: !b.cfg.DisableChecksumPut,
	}, nil
}

// Close is a no-op: connections are pooled by net/http.
func (b *Backend) Close() error { return nil }

// apiError extracts what minio-go tells of a failed request. minio-go makes up error responses for its
// own argument checks, with a code but no status.
func apiError(err error) s3util.APIError {
	r := mgo.ToErrorResponse(err)
	return s3util.APIError{Code: r.Code, Status: r.StatusCode, Local: r.StatusCode == 0 && r.Code != ""}
}

// mapErr translates a minio-go error into the backends sentinels by s3util.MapErr's rules.
func mapErr(err error) error { return s3util.MapErr(err, apiError) }

// PresignGet implements backends.Presigner with minio-go's presigning (SigV4 in the query, computed
// locally since the region is configured). A failure to sign (no credentials) wraps
// backends.ErrUnavailable.
func (b *Backend) PresignGet(ctx context.Context, key string, expiry time.Duration, disposition string) (string, error) {
	var params url.Values
	if disposition != "" {
		params = url.Values{"response-content-disposition": {disposition}}
	}
	u, err := b.core.Client.PresignedGetObject(ctx, b.cfg.Bucket, b.objectKey(key), expiry, params)
	if err != nil {
		if s3util.IsContextErr(err) {
			return "", err
		}
		return "", fmt.Errorf("%w: presign: %v", backends.ErrUnavailable, err)
	}
	return u.String(), nil
}

var _ backends.Presigner = (*Backend)(nil)
