package source

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Reader holds the S3 client, built on first use from the standard AWS environment.
type s3Reader struct {
	once sync.Once
	cli  *s3.Client
	err  error
}

var s3Mu sync.Mutex

func (c *Client) s3Client(ctx context.Context) (*s3.Client, error) {
	s3Mu.Lock()
	if c.s3 == nil {
		c.s3 = &s3Reader{}
	}
	r := c.s3
	s3Mu.Unlock()
	r.once.Do(func() {
		cfg, err := config.LoadDefaultConfig(context.WithoutCancel(ctx), config.WithRetryMaxAttempts(c.retry.Attempts))
		if err != nil {
			r.err = fmt.Errorf("loading the AWS configuration for s3:// artifacts: %w", err)
			return
		}
		if cfg.Region == "" {
			// S3-compatible servers ignore the region but the signer needs one.
			cfg.Region = "us-east-1"
		}
		r.cli = s3.NewFromConfig(cfg, func(o *s3.Options) {
			if c.cfg.S3Endpoint != "" {
				o.BaseEndpoint = aws.String(c.cfg.S3Endpoint)
				o.UsePathStyle = true
			}
		})
	})
	return r.cli, r.err
}

type s3Store struct {
	c      *Client
	bucket string
	prefix string // without trailing slash; "" for the whole bucket
}

func (c *Client) s3Store(u *url.URL) (artifactStore, error) {
	if u.Host == "" {
		return nil, fmt.Errorf("artifact URI %q: no bucket", u.String())
	}
	return &s3Store{c: c, bucket: u.Host, prefix: strings.Trim(u.Path, "/")}, nil
}

func (s *s3Store) key(rel string) string {
	if s.prefix == "" {
		return rel
	}
	return s.prefix + "/" + rel
}

func (s *s3Store) walk(ctx context.Context, fn func(FileInfo) error) error {
	cli, err := s.c.s3Client(ctx)
	if err != nil {
		return err
	}
	prefix := ""
	if s.prefix != "" {
		prefix = s.prefix + "/"
	}
	pg := s3.NewListObjectsV2Paginator(cli, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", s.bucket, prefix, s3Err(err))
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			rel := strings.TrimPrefix(key, prefix)
			if rel == "" || strings.HasSuffix(rel, "/") {
				continue // a directory marker
			}
			if err := checkRel(rel); err != nil {
				return fmt.Errorf("s3://%s/%s: %w", s.bucket, key, err)
			}
			if err := fn(FileInfo{Path: rel, Size: aws.ToInt64(o.Size)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *s3Store) open(ctx context.Context, rel string, offset int64) (opened, error) {
	cli, err := s.c.s3Client(ctx)
	if err != nil {
		return opened{}, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(rel))}
	if offset > 0 {
		in.Range = aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-")
	}
	out, err := cli.GetObject(ctx, in)
	if err != nil {
		return opened{}, fmt.Errorf("s3://%s/%s: %w", s.bucket, s.key(rel), s3Err(err))
	}
	o := opened{body: out.Body, size: -1, etag: aws.ToString(out.ETag)}
	if offset > 0 {
		if start, total, ok := parseContentRange(aws.ToString(out.ContentRange)); ok && start == offset {
			o.size = total
		} else {
			out.Body.Close()
			return opened{}, fmt.Errorf("s3://%s/%s: asked for bytes from %d, got Content-Range %q", s.bucket, s.key(rel), offset, aws.ToString(out.ContentRange))
		}
	} else if out.ContentLength != nil {
		o.size = *out.ContentLength
	}
	return o, nil
}

// s3Err classifies an SDK error: missing objects are ErrNotFound, transport failures (after the SDK's
// retries) ErrUnavailable, refusals stay as they are.
func s3Err(err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket":
			return fmt.Errorf("%w: %w", ErrNotFound, err)
		case "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout":
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
