// Package s3 is the S3 backend, on aws-sdk-go-v2. It works with AWS and with S3-compatible servers
// (MinIO, versitygw, ...), over HTTPS or plain HTTP.
//
// Blobs are objects under Config.Prefix in one bucket; multipart uploads map one to one to S3
// multipart uploads. Overwrites are atomic because S3 PUTs are.
package s3

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

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/s3util"
)

// Config is the backend's JSON config, shared with backends/minio: the fields are documented at
// backends/internal/s3util.Config, and mlgate.example.yaml shows each one.
type Config = s3util.Config

// Backend is an S3 bucket (or a prefix of one) as a backends.Backend.
type Backend struct {
	cfg    Config
	client *s3.Client
	// manager is deprecated in favour of feature/s3/transfermanager, which is still v0.x and not in
	// go.mod; manager is stable and does what unknown-size uploads need.
	//lint:ignore SA1019 see above
	uploader *manager.Uploader
	// presign signs the URLs of direct gets; signing stays in the SDK.
	presign *s3.PresignClient
	proxy   func(*http.Request) (*url.URL, error) // the SDK transport's; direct gets never bypass a proxy
}

var _ backends.Backend = (*Backend)(nil)

// Factory builds a Backend from its JSON Config (unknown fields are refused).
func Factory(ctx context.Context, raw json.RawMessage) (backends.Backend, error) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("s3: config: %w", err)
	}
	return New(ctx, cfg)
}

// New validates cfg, connects and checks that the bucket exists and the credentials work, so that a
// misconfiguration fails at startup rather than as an error on every request. The errors say
// "bucket ... does not exist at ...", "credentials rejected by ...", or wrap backends.ErrUnavailable
// when the server cannot be reached.
func New(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		// Bounded retries with short backoff: an outage must reach the client as a prompt 503, which
		// it retries itself.
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = time.Second
			})
		}),
	}
	if cfg.AccessKeyEnv != "" {
		ak, sk := os.Getenv(cfg.AccessKeyEnv), os.Getenv(cfg.SecretKeyEnv)
		if ak == "" || sk == "" {
			return nil, fmt.Errorf("s3: environment variables %s and %s must hold the credentials", cfg.AccessKeyEnv, cfg.SecretKeyEnv)
		}
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(ak, sk, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS config: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// Checksums only where S3 requires them: bodies are verified by our own sha256, and a CRC
		// trailer needs aws-chunked encoding that not every S3-compatible server implements.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		// "Expect: 100-continue" costs a round trip per upload for nothing: bodies are streamed once.
		o.ContinueHeaderThresholdBytes = -1
	})
	b := &Backend{cfg: cfg, client: client, presign: s3.NewPresignClient(client), proxy: transportProxy(client.Options().HTTPClient)}
	//lint:ignore SA1019 see Backend.uploader
	b.uploader = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = cfg.PartSize
		u.Concurrency = cfg.Concurrency
		u.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		u.ClientOptions = append(u.ClientOptions, streamingBody)
	})
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, b.startupError(err)
	}
	return b, nil
}

// startupError explains a failed HeadBucket.
func (b *Backend) startupError(err error) error {
	e := apiError(err)
	switch {
	case e.Status == 404 || e.Code == "NoSuchBucket" || e.Code == "NotFound":
		return fmt.Errorf("s3: bucket %q does not exist at %s", b.cfg.Bucket, b.cfg.Where())
	case e.Status == 401 || e.Status == 403 || e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch" || e.Code == "AccessDenied":
		return fmt.Errorf("s3: credentials rejected by %s: %w", b.cfg.Where(), err)
	case s3util.IsContextErr(err):
		return err
	}
	return fmt.Errorf("s3: %w: cannot reach bucket %q at %s: %w", backends.ErrUnavailable, b.cfg.Bucket, b.cfg.Where(), err)
}

// transportProxy returns the proxy function of the SDK's HTTP client, so that a direct get goes
// through no proxy the SDK would use. A client whose transport cannot be seen (a custom
// aws.HTTPClient) is assumed to follow the environment, like the SDK's default one.
func transportProxy(hc aws.HTTPClient) func(*http.Request) (*url.URL, error) {
	var tr *http.Transport
	switch c := hc.(type) {
	case *awshttp.BuildableClient:
		tr = c.GetTransport() // a copy, hence only called once
	case *http.Client:
		tr, _ = c.Transport.(*http.Transport)
	}
	if tr == nil {
		return http.ProxyFromEnvironment
	}
	return tr.Proxy
}

// streamingBody lets a request carry a body that cannot be rewound, over plain HTTP too: SigV4 would
// otherwise hash the payload up front (reading it twice), so the payload is sent unsigned (the
// request itself stays signed). Retries are off because the body cannot be replayed; the caller
// retries the whole transfer.
func streamingBody(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	o.Retryer = aws.NopRetryer{}
}

func (b *Backend) objectKey(key string) string { return b.cfg.Prefix + key }

func (b *Backend) bucket() *string { return aws.String(b.cfg.Bucket) }

// Put streams r to key: a known size with a known sha256 as one PutObject the server checks against
// the sum (see Config.DisableChecksumPut), any other known size as a one-part multipart upload (or one
// PutObject, see Config.SinglePut), an unknown size through the upload manager, which holds at most
// PartSize*Concurrency bytes. Errors: ErrSizeMismatch, ErrChecksum, r's error,
// context errors, ErrUnavailable; nothing is committed in any error case.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	checksum := b.cfg.ChecksumPut(size, opts.SHA256)
	want := opts.SHA256
	if checksum != "" {
		want = "" // the server checks it (Descriptor.ServerChecksums)
	}
	g := s3util.NewGuard(ctx, r, size, want)
	if size == 0 {
		// The SDK may send an empty body without reading it: judge it first.
		if err := g.Settle(); err != io.EOF {
			return backends.Info{}, err
		}
	}
	in := &s3.PutObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), Body: g}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	var etag *string
	switch {
	case checksum != "":
		in.ContentLength = aws.Int64(size)
		in.ChecksumSHA256 = aws.String(checksum)
		out, err := b.client.PutObject(ctx, in, streamingBody)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = out.ETag
	case size > 0 && !(b.cfg.SinglePut && size <= s3util.MaxPutSize):
		e, err := b.putMultipart(ctx, in, g, size)
		if err != nil {
			return backends.Info{}, err
		}
		etag = e
	case size >= 0 && size <= s3util.MaxPutSize:
		in.ContentLength = aws.Int64(size)
		out, err := b.client.PutObject(ctx, in, streamingBody)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = out.ETag
	default:
		//lint:ignore SA1019 see Backend.uploader
		out, err := b.uploader.Upload(ctx, in)
		if err != nil {
			return backends.Info{}, g.Blame(mapErr(err))
		}
		etag = out.ETag
	}
	if err := g.Complete(); err != nil {
		// Unreachable with a conforming SDK; undo rather than keep a blob we cannot vouch for.
		b.discard(ctx, key)
		return backends.Info{}, err
	}
	info := backends.Info{Key: key, Size: g.N(), ModTime: time.Now(), ETag: trimETag(etag), ContentType: opts.ContentType, SHA256: opts.SHA256}
	return info, nil
}

func (b *Backend) discard(ctx context.Context, key string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, _ = b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))})
}

// Get opens a range of key with one GetObject in the common case; from a plain-HTTP endpoint that is
// a direct get (see Config.DisableDirectGet) whose reader is an *s3util.DirectBody, and the SDK's
// GetObject whenever that does not work out. Errors: ErrNotFound, ErrInvalidRange (offset past the
// end), ErrUnavailable, context errors.
func (b *Backend) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	if rng.Length == 0 {
		// An empty range cannot be asked of S3; only the offset needs checking.
		info, err := b.Stat(ctx, key)
		if err != nil {
			return nil, backends.Info{}, err
		}
		if rng.Offset > info.Size {
			return nil, backends.Info{}, fmt.Errorf("%w: offset %d beyond size %d", backends.ErrInvalidRange, rng.Offset, info.Size)
		}
		return io.NopCloser(strings.NewReader("")), info, nil
	}
	in := &s3.GetObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))}
	ranged := rng.Offset > 0 || rng.Length > 0
	rangeHeader := ""
	if ranged {
		rangeHeader = "bytes=" + strconv.FormatInt(rng.Offset, 10) + "-"
		if rng.Length > 0 {
			rangeHeader += strconv.FormatInt(rng.Offset+rng.Length-1, 10)
		}
		in.Range = aws.String(rangeHeader)
	}
	if !b.cfg.DisableDirectGet {
		rc, info, err := b.directGet(ctx, key, rangeHeader)
		if !errors.Is(err, s3util.ErrNoDirect) {
			return rc, info, err
		}
	}
	out, err := b.client.GetObject(ctx, in)
	if err != nil {
		err = mapErr(err)
		if !errors.Is(err, backends.ErrInvalidRange) {
			return nil, backends.Info{}, err
		}
		// S3 answers 416 for a range starting at the size too, which the contract reads as empty.
		info, serr := b.Stat(ctx, key)
		if serr != nil {
			return nil, backends.Info{}, serr
		}
		if rng.Offset == info.Size {
			return io.NopCloser(strings.NewReader("")), info, nil
		}
		return nil, backends.Info{}, fmt.Errorf("%w: offset %d beyond size %d", backends.ErrInvalidRange, rng.Offset, info.Size)
	}
	info := backends.Info{
		Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified),
		ETag: trimETag(out.ETag), ContentType: aws.ToString(out.ContentType),
	}
	if ranged {
		total, ok := rangeTotal(aws.ToString(out.ContentRange))
		if !ok {
			_ = out.Body.Close()
			return nil, backends.Info{}, fmt.Errorf("%w: unparsable Content-Range %q", backends.ErrUnavailable, aws.ToString(out.ContentRange))
		}
		info.Size = total
	}
	return out.Body, info, nil
}

// directGet is Get over s3util.DirectGet, with the Info built from the response header as the SDK
// builds GetObjectOutput. Errors: s3util.ErrNoDirect when the SDK must do the Get (including every
// refused request, a 416 among them, so that mapErr and Get's range handling stay the only ones),
// ErrUnavailable for an unparsable Content-Range (as from the SDK), context errors.
func (b *Backend) directGet(ctx context.Context, key, rangeHeader string) (io.ReadCloser, backends.Info, error) {
	// Only plain-HTTP endpoints go direct: TLS bytes cannot be spliced, and AWS (no endpoint) is https.
	if !strings.HasPrefix(b.cfg.Endpoint, "http:") {
		return nil, backends.Info{}, s3util.ErrNoDirect
	}
	// The Range stays out of the signature: only host is signed, and SigV4 ignores unsigned headers,
	// so DirectGet's Range is honoured (MinIO and versitygw, see TestDirectGet). A signed Range would
	// have to match the sent one byte for byte: both servers refuse a missing or different one.
	req, err := b.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))},
		func(o *s3.PresignOptions) { o.Expires = directGetExpiry })
	if err != nil {
		return nil, backends.Info{}, fmt.Errorf("%w: presign: %v", s3util.ErrNoDirect, err)
	}
	// DirectGet sends no header but Range: a URL whose signature covers more than Host would be refused.
	for h := range req.SignedHeader {
		if !strings.EqualFold(h, "Host") {
			return nil, backends.Info{}, fmt.Errorf("%w: presigned URL signs %s", s3util.ErrNoDirect, h)
		}
	}
	u, err := url.Parse(req.URL)
	if err != nil || req.Method != http.MethodGet {
		return nil, backends.Info{}, fmt.Errorf("%w: presigned %s %q: %v", s3util.ErrNoDirect, req.Method, req.URL, err)
	}
	body, resp, err := s3util.DirectGet(ctx, u, rangeHeader, b.proxy)
	if err != nil {
		return nil, backends.Info{}, err
	}
	fail := func(err error) (io.ReadCloser, backends.Info, error) {
		_ = body.Close()
		return nil, backends.Info{}, err
	}
	// A server that ignored the Range answers 200 with the whole object; the SDK's request then
	// decides what the range gives, as it would without direct gets.
	if rangeHeader != "" && resp.StatusCode != http.StatusPartialContent {
		return fail(fmt.Errorf("%w: status %s for a range", s3util.ErrNoDirect, resp.Status))
	}
	info := backends.Info{
		Key: key, Size: resp.ContentLength,
		ETag: strings.Trim(resp.Header.Get("ETag"), `"`), ContentType: resp.Header.Get("Content-Type"),
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		t, err := http.ParseTime(lm)
		if err != nil {
			// The SDK either knows the form (it accepts more than net/http) or fails on it too and
			// reports the error: either way its answer is the one to give.
			return fail(fmt.Errorf("%w: Last-Modified %q: %v", s3util.ErrNoDirect, lm, err))
		}
		info.ModTime = t
	}
	if rangeHeader != "" {
		total, ok := rangeTotal(resp.Header.Get("Content-Range"))
		if !ok {
			return fail(fmt.Errorf("%w: unparsable Content-Range %q", backends.ErrUnavailable, resp.Header.Get("Content-Range")))
		}
		info.Size = total
	}
	return body, info, nil
}

// directGetExpiry is the lifetime of a direct get's presigned URL, which is used at once.
const directGetExpiry = 5 * time.Minute

// rangeTotal parses the total size out of "bytes a-b/total".
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil && n >= 0
}

// Stat returns key's Info, or ErrNotFound.
func (b *Backend) Stat(ctx context.Context, key string) (backends.Info, error) {
	out, err := b.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))})
	if err != nil {
		return backends.Info{}, mapErr(err)
	}
	return backends.Info{
		Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified),
		ETag: trimETag(out.ETag), ContentType: aws.ToString(out.ContentType),
	}, nil
}

// Delete removes key. S3's DeleteObject succeeds for a missing key, so a HeadObject comes first to
// return ErrNotFound as the contract asks (a concurrent delete between the two is not detected).
func (b *Backend) Delete(ctx context.Context, key string) error {
	if _, err := b.Stat(ctx, key); err != nil {
		return err
	}
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))})
	return mapErr(err)
}

// List pages with ListObjectsV2's StartAfter. Objects whose names are no valid key (written by
// something else under the prefix) are skipped.
func (b *Backend) List(ctx context.Context, prefix, startAfter string, limit int) ([]backends.Info, string, error) {
	if limit <= 0 {
		limit = backends.DefaultListLimit
	}
	in := &s3.ListObjectsV2Input{
		Bucket:  b.bucket(),
		Prefix:  aws.String(b.objectKey(prefix)),
		MaxKeys: aws.Int32(int32(min(limit, 1000))),
	}
	if startAfter != "" {
		in.StartAfter = aws.String(b.objectKey(startAfter))
	}
	out, err := b.client.ListObjectsV2(ctx, in)
	if err != nil {
		return nil, "", mapErr(err)
	}
	items := make([]backends.Info, 0, len(out.Contents))
	last := ""
	for _, o := range out.Contents {
		k := strings.TrimPrefix(aws.ToString(o.Key), b.cfg.Prefix)
		last = k
		if backends.ValidateKey(k) != nil {
			continue
		}
		items = append(items, backends.Info{Key: k, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), ETag: trimETag(o.ETag)})
	}
	next := ""
	if aws.ToBool(out.IsTruncated) && last != "" {
		next = last
	}
	return items, next, nil
}

// Describe reports S3's multipart limits.
func (b *Backend) Describe(ctx context.Context) (backends.Descriptor, error) {
	return backends.Descriptor{
		Name: "s3", Version: "aws-sdk-go-v2 " + b.cfg.Where(),
		MinPartSize: s3util.MinPartSize, MaxPartSize: s3util.MaxPartSize, MaxParts: s3util.MaxParts,
		ServerChecksums: !b.cfg.DisableChecksumPut,
	}, nil
}

// Close is a no-op: the SDK's connections are pooled by net/http and die with the process.
func (b *Backend) Close() error { return nil }

func trimETag(s *string) string { return strings.Trim(aws.ToString(s), `"`) }

// apiError extracts S3's error code and HTTP status, if err came from the server.
func apiError(err error) s3util.APIError {
	var e s3util.APIError
	var api interface{ ErrorCode() string }
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
	}
	var st interface{ HTTPStatusCode() int }
	if errors.As(err, &st) {
		e.Status = st.HTTPStatusCode()
	}
	return e
}

// mapErr translates an SDK error into the backends sentinels by s3util.MapErr's rules.
func mapErr(err error) error { return s3util.MapErr(err, apiError) }

// sdkPartNumber converts a contract part number (validated by Checked to fit S3's 1..10000).
func sdkPartNumber(n int) *int32 { return aws.Int32(int32(n)) }

// PresignGet implements backends.Presigner with the SDK's presign client (SigV4 in the query). Only
// Host is signed, so any client can follow the URL with headers of its own. A failure to sign (no
// credentials) wraps backends.ErrUnavailable.
func (b *Backend) PresignGet(ctx context.Context, key string, expiry time.Duration, disposition string) (string, error) {
	in := &s3.GetObjectInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))}
	if disposition != "" {
		in.ResponseContentDisposition = aws.String(disposition)
	}
	req, err := b.presign.PresignGetObject(ctx, in, func(o *s3.PresignOptions) { o.Expires = expiry })
	if err != nil {
		if s3util.IsContextErr(err) {
			return "", err
		}
		return "", fmt.Errorf("%w: presign: %v", backends.ErrUnavailable, err)
	}
	return req.URL, nil
}

var _ backends.Presigner = (*Backend)(nil)
