package s3util

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// CompleteFunc is the one SDK call CompleteMultipart needs beyond the contract: S3's complete of upload
// s3ID of key from parts, as given. Its errors are already mapped (MapErr).
type CompleteFunc func(ctx context.Context, key, s3ID string, parts []backends.Part) error

// CompleteMultipart completes upload uploadID (an EncodeUploadID id) of key on b, whose S3 complete
// call is complete; it is the whole of both backends' CompleteMultipart. Errors: ErrInvalidPart
// (missing part, wrong ETag, middle part below MinPartSize), ErrUploadNotFound, ErrChecksum,
// ErrUnavailable, context errors; those of b.ListParts, complete and b.Stat as they are.
//
// The parts are checked against b.ListParts first: servers differ in what they report for a bad list
// (versitygw answers InvalidPart for an unknown upload, and a repeated complete of a finished upload
// may succeed on S3 and versitygw alike), and the contract wants one answer.
//
// S3 cannot compute a whole-object sha256, so one expected at CreateMultipart (carried in the id) is
// verified by reading the completed object back; a mismatch deletes it. That check is not atomic: the
// bad blob is briefly visible, and a blob it replaced is gone. mlgate's gateway never asks for it.
func CompleteMultipart(ctx context.Context, b backends.Backend, complete CompleteFunc, key, uploadID string, parts []backends.Part) (backends.Info, error) {
	s3ID, sum := DecodeUploadID(uploadID)
	stored, err := b.ListParts(ctx, key, uploadID)
	if err != nil {
		return backends.Info{}, err
	}
	if err := CheckParts(parts, stored); err != nil {
		return backends.Info{}, err
	}
	if err := complete(ctx, key, s3ID, parts); err != nil {
		return backends.Info{}, err
	}
	if sum != "" {
		if err := verifySum(ctx, b, key, sum); err != nil {
			return backends.Info{}, err
		}
	}
	info, err := b.Stat(ctx, key)
	if err != nil {
		return backends.Info{}, err
	}
	info.SHA256 = sum
	return info, nil
}

// verifySum reads key back from b and, when it does not hash to sum, deletes it: a completed multipart
// upload whose id carried an expected sha256. Errors: Get's, ErrUnavailable when the read fails,
// ErrChecksum for a mismatch (the object is then gone).
func verifySum(ctx context.Context, b backends.Backend, key, sum string) error {
	rc, _, err := b.Get(ctx, key, backends.All)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	_ = rc.Close()
	if err != nil {
		return fmt.Errorf("%w: read back for sha256: %w", backends.ErrUnavailable, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = b.Delete(dctx, key)
		return fmt.Errorf("%w: completed object has sha256 %s, expected %s", backends.ErrChecksum, got, sum)
	}
	return nil
}
