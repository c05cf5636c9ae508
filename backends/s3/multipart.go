package s3

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/s3util"
)

// CreateMultipart starts an S3 multipart upload of key. Errors: ErrUnavailable, context errors.
func (b *Backend) CreateMultipart(ctx context.Context, key string, opts backends.PutOptions) (string, error) {
	in := &s3.CreateMultipartUploadInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key))}
	if opts.ContentType != "" {
		in.ContentType = aws.String(opts.ContentType)
	}
	out, err := b.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return "", mapErr(err)
	}
	return s3util.EncodeUploadID(aws.ToString(out.UploadId), opts.SHA256), nil
}

// PutPart uploads part n. A part of unknown size is first spooled to a temporary file, because S3
// needs every part's length up front; memory stays flat either way. Errors: ErrUploadNotFound,
// ErrSizeMismatch, r's error, ErrUnavailable, context errors; a failed part is not stored.
func (b *Backend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (backends.Part, error) {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	if size < 0 {
		f, err := s3util.Spool(ctx, r, "s3")
		if err != nil {
			return backends.Part{}, err
		}
		defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
		st, err := f.Stat()
		if err != nil {
			return backends.Part{}, fmt.Errorf("s3: spool part: %w", err)
		}
		r, size = f, st.Size()
	}
	g := s3util.NewGuard(ctx, r, size, "")
	if size == 0 {
		if err := g.Settle(); err != io.EOF {
			return backends.Part{}, err
		}
	}
	out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), UploadId: aws.String(s3ID),
		PartNumber: sdkPartNumber(n), Body: g, ContentLength: aws.Int64(size),
	}, streamingBody)
	if err != nil {
		return backends.Part{}, g.Blame(mapErr(err))
	}
	if err := g.Complete(); err != nil {
		return backends.Part{}, err
	}
	return backends.Part{Number: n, Size: size, ETag: trimETag(out.ETag)}, nil
}

// ListParts lists the upload's parts in number order. Errors: ErrUploadNotFound, ErrUnavailable.
func (b *Backend) ListParts(ctx context.Context, key, uploadID string) ([]backends.Part, error) {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	var parts []backends.Part
	in := &s3.ListPartsInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), UploadId: aws.String(s3ID)}
	for {
		out, err := b.client.ListParts(ctx, in)
		if err != nil {
			return nil, mapErr(err)
		}
		for _, p := range out.Parts {
			parts = append(parts, backends.Part{Number: int(aws.ToInt32(p.PartNumber)), Size: aws.ToInt64(p.Size), ETag: trimETag(p.ETag)})
		}
		if !aws.ToBool(out.IsTruncated) || out.NextPartNumberMarker == nil {
			return parts, nil
		}
		in.PartNumberMarker = out.NextPartNumberMarker
	}
}

// CompleteMultipart completes the S3 upload after checking the part list against ListParts, and
// verifies a sha256 given at CreateMultipart by reading the object back (see s3util.CompleteMultipart).
// Errors: ErrInvalidPart (missing part, wrong ETag, middle part below 5 MiB), ErrUploadNotFound,
// ErrChecksum, ErrUnavailable.
func (b *Backend) CompleteMultipart(ctx context.Context, key, uploadID string, parts []backends.Part) (backends.Info, error) {
	return s3util.CompleteMultipart(ctx, b, func(ctx context.Context, key, s3ID string, parts []backends.Part) error {
		_, err := b.complete(ctx, key, s3ID, parts)
		return err
	}, key, uploadID, parts)
}

func (b *Backend) complete(ctx context.Context, key, s3ID string, parts []backends.Part) (*s3.CompleteMultipartUploadOutput, error) {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: sdkPartNumber(p.Number), ETag: aws.String(`"` + strings.Trim(p.ETag, `"`) + `"`)}
	}
	out, err := b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), UploadId: aws.String(s3ID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	if err != nil {
		return nil, mapErr(err)
	}
	return out, nil
}

// putMultipart streams a body of known size through a multipart upload, part after part straight
// from g (no buffering), and completes it only after g has verified the whole body. Any failure
// aborts the upload, so nothing becomes visible.
func (b *Backend) putMultipart(ctx context.Context, in *s3.PutObjectInput, g *backends.Body, size int64) (etag *string, err error) {
	created, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, ContentType: in.ContentType})
	if err != nil {
		return nil, mapErr(err)
	}
	id := created.UploadId
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = b.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: id})
		}
	}()
	// One part up to S3's maximum; beyond, the fewest parts of at least PartSize within 10000.
	partLen := size
	if size > s3util.MaxPartSize {
		partLen = max(b.cfg.PartSize, (size+s3util.MaxParts-1)/s3util.MaxParts)
	}
	var parts []backends.Part
	for n, off := 1, int64(0); off < size; n, off = n+1, off+partLen {
		l := min(partLen, size-off)
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: in.Bucket, Key: in.Key, UploadId: id, PartNumber: sdkPartNumber(n),
			Body: io.LimitReader(g, l), ContentLength: aws.Int64(l),
		}, streamingBody)
		if err != nil {
			return nil, g.Blame(mapErr(err))
		}
		parts = append(parts, backends.Part{Number: n, Size: l, ETag: trimETag(out.ETag)})
	}
	if err := g.Complete(); err != nil {
		return nil, err
	}
	out, err := b.complete(ctx, aws.ToString(in.Key)[len(b.cfg.Prefix):], aws.ToString(id), parts)
	if err != nil {
		return nil, err
	}
	return out.ETag, nil
}

// AbortMultipart aborts the S3 upload. Errors: ErrUploadNotFound, ErrUnavailable.
//
// MinIO (like AWS for a while after an abort) answers success for an unknown upload, so the upload's
// existence is checked first with a one-part ListParts.
func (b *Backend) AbortMultipart(ctx context.Context, key, uploadID string) error {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	in := &s3.ListPartsInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), UploadId: aws.String(s3ID), MaxParts: aws.Int32(1)}
	if _, err := b.client.ListParts(ctx, in); err != nil {
		return mapErr(err)
	}
	_, err := b.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b.bucket(), Key: aws.String(b.objectKey(key)), UploadId: aws.String(s3ID)})
	return mapErr(err)
}
