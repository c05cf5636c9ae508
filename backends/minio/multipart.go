package minio

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	mgo "github.com/minio/minio-go/v7"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/internal/s3util"
)

// CreateMultipart starts an S3 multipart upload of key. Errors: ErrUnavailable, context errors.
func (b *Backend) CreateMultipart(ctx context.Context, key string, opts backends.PutOptions) (string, error) {
	id, err := b.core.NewMultipartUpload(ctx, b.cfg.Bucket, b.objectKey(key), mgo.PutObjectOptions{ContentType: opts.ContentType})
	if err != nil {
		return "", mapErr(err)
	}
	return s3util.EncodeUploadID(id, opts.SHA256), nil
}

// PutPart uploads part n, streamed; a part of unknown size is first spooled to a temporary file, as
// S3 needs its length up front. Errors: ErrUploadNotFound, ErrSizeMismatch, r's error,
// ErrUnavailable, context errors; a failed part is not stored.
func (b *Backend) PutPart(ctx context.Context, key, uploadID string, n int, r io.Reader, size int64) (backends.Part, error) {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	if size < 0 {
		f, err := s3util.Spool(ctx, r, "minio")
		if err != nil {
			return backends.Part{}, err
		}
		defer func() { _ = f.Close(); _ = os.Remove(f.Name()) }()
		st, err := f.Stat()
		if err != nil {
			return backends.Part{}, fmt.Errorf("minio: spool part: %w", err)
		}
		r, size = f, st.Size()
	}
	g := s3util.NewGuard(ctx, r, size, "")
	if size == 0 {
		if err := g.Settle(); err != io.EOF {
			return backends.Part{}, err
		}
	}
	p, err := b.core.PutObjectPart(ctx, b.cfg.Bucket, b.objectKey(key), s3ID, n, g, size, mgo.PutObjectPartOptions{DisableContentSha256: true})
	if err != nil {
		return backends.Part{}, g.Blame(mapErr(err))
	}
	if err := g.Complete(); err != nil {
		return backends.Part{}, err
	}
	return backends.Part{Number: n, Size: size, ETag: strings.Trim(p.ETag, `"`)}, nil
}

// ListParts lists the upload's parts in number order. Errors: ErrUploadNotFound, ErrUnavailable.
func (b *Backend) ListParts(ctx context.Context, key, uploadID string) ([]backends.Part, error) {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	var parts []backends.Part
	marker := 0
	for {
		res, err := b.core.ListObjectParts(ctx, b.cfg.Bucket, b.objectKey(key), s3ID, marker, 1000)
		if err != nil {
			return nil, mapErr(err)
		}
		for _, p := range res.ObjectParts {
			parts = append(parts, backends.Part{Number: p.PartNumber, Size: p.Size, ETag: strings.Trim(p.ETag, `"`)})
		}
		if !res.IsTruncated || res.NextPartNumberMarker <= marker {
			return parts, nil
		}
		marker = res.NextPartNumberMarker
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

func (b *Backend) complete(ctx context.Context, key, s3ID string, parts []backends.Part) (mgo.UploadInfo, error) {
	done := make([]mgo.CompletePart, len(parts))
	for i, p := range parts {
		done[i] = mgo.CompletePart{PartNumber: p.Number, ETag: strings.Trim(p.ETag, `"`)}
	}
	up, err := b.core.CompleteMultipartUpload(ctx, b.cfg.Bucket, b.objectKey(key), s3ID, done, mgo.PutObjectOptions{})
	return up, mapErr(err)
}

// putMultipart streams a body of known size through a multipart upload, part after part straight
// from g, and completes it only after g has verified the whole body; any failure aborts the upload.
func (b *Backend) putMultipart(ctx context.Context, key string, g *backends.Body, size int64, opts mgo.PutObjectOptions) (etag string, err error) {
	obj := b.objectKey(key)
	id, err := b.core.NewMultipartUpload(ctx, b.cfg.Bucket, obj, opts)
	if err != nil {
		return "", mapErr(err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = b.core.AbortMultipartUpload(actx, b.cfg.Bucket, obj, id)
		}
	}()
	partLen := size
	if size > s3util.MaxPartSize {
		partLen = max(b.cfg.PartSize, (size+s3util.MaxParts-1)/s3util.MaxParts)
	}
	var parts []backends.Part
	for n, off := 1, int64(0); off < size; n, off = n+1, off+partLen {
		l := min(partLen, size-off)
		p, err := b.core.PutObjectPart(ctx, b.cfg.Bucket, obj, id, n, io.LimitReader(g, l), l, mgo.PutObjectPartOptions{DisableContentSha256: true})
		if err != nil {
			return "", g.Blame(mapErr(err))
		}
		parts = append(parts, backends.Part{Number: n, Size: l, ETag: p.ETag})
	}
	if err := g.Complete(); err != nil {
		return "", err
	}
	up, err := b.complete(ctx, key, id, parts)
	if err != nil {
		return "", err
	}
	return up.ETag, nil
}

// AbortMultipart aborts the upload. MinIO answers success for an unknown upload, so its existence is
// checked first. Errors: ErrUploadNotFound, ErrUnavailable.
func (b *Backend) AbortMultipart(ctx context.Context, key, uploadID string) error {
	s3ID, _ := s3util.DecodeUploadID(uploadID)
	if _, err := b.core.ListObjectParts(ctx, b.cfg.Bucket, b.objectKey(key), s3ID, 0, 1); err != nil {
		return mapErr(err)
	}
	return mapErr(b.core.AbortMultipartUpload(ctx, b.cfg.Bucket, b.objectKey(key), s3ID))
}
