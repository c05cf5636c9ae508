package s3util

import (
	"context"
	"errors"
	"fmt"

	"github.com/mlgate/mlgate/backends"
)

// APIError is what an SDK tells about a failed request, all that MapErr needs from it.
// Each backend extracts it from its own SDK's error type.
type APIError struct {
	Code   string // S3's error code, "" when there is none
	Status int    // the response's HTTP status, 0 when no response came
	// Local marks an error the SDK made up itself without asking the server (minio-go's argument
	// checks carry a code but no status): a bug here, not an outage.
	Local bool
}

// codeSentinels are the S3 error codes with a contract meaning.
var codeSentinels = map[string]error{
	// A body that does not match its x-amz-checksum-sha256 (versitygw, AWS; MinIO).
	"BadDigest":                   backends.ErrChecksum,
	"XAmzContentChecksumMismatch": backends.ErrChecksum,
	"NoSuchKey":                   backends.ErrNotFound,
	"NotFound":                    backends.ErrNotFound,
	"NoSuchUpload":                backends.ErrUploadNotFound,
	"InvalidPart":                 backends.ErrInvalidPart,
	"InvalidPartOrder":            backends.ErrInvalidPart,
	"EntityTooSmall":              backends.ErrInvalidPart,
	"InvalidRange":                backends.ErrInvalidRange,
}

// IsContextErr reports whether err is (or wraps) a context's cancellation or deadline.
func IsContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// MapErr translates an SDK error into the backends sentinels, keeping the SDK's text; describe extracts
// the APIError from it. Context errors pass through unwrapped, nil stays nil. Then, in order: a code
// with a contract meaning wraps its sentinel (NoSuchKey: ErrNotFound, NoSuchUpload: ErrUploadNotFound,
// InvalidPart: ErrInvalidPart, BadDigest: ErrChecksum, ...); status 404 (not NoSuchBucket) wraps
// ErrNotFound and 416 ErrInvalidRange; any other 4xx but 401, 403, NoSuchBucket and SlowDown is
// returned as it is, as is a Local error: a request this backend built was refused, which is a bug
// here or an incompatible server, not an outage, and surfaces as an internal error. Everything else
// that stops the server from serving (refused connections, timeouts, 5xx, throttling, a vanished
// bucket, revoked credentials) wraps ErrUnavailable, so that the gateway answers 503 with Retry-After.
// Each sentinel is wrapped together with err, so errors.Is finds both.
func MapErr(err error, describe func(error) APIError) error {
	if err == nil {
		return nil
	}
	if IsContextErr(err) {
		return err
	}
	e := describe(err)
	if s, ok := codeSentinels[e.Code]; ok {
		return fmt.Errorf("%w: %w", s, err)
	}
	switch {
	case e.Status == 404 && e.Code != "NoSuchBucket":
		return fmt.Errorf("%w: %w", backends.ErrNotFound, err)
	case e.Status == 416:
		return fmt.Errorf("%w: %w", backends.ErrInvalidRange, err)
	case e.Status >= 400 && e.Status < 500 && e.Status != 401 && e.Status != 403 && e.Code != "NoSuchBucket" && e.Code != "SlowDown":
		return err
	case e.Local:
		return err
	}
	return fmt.Errorf("%w: %w", backends.ErrUnavailable, err)
}
