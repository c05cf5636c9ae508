package s3util

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/mlgate/mlgate/backends"
)

func TestMapErr(t *testing.T) {
	sentinels := []error{backends.ErrNotFound, backends.ErrInvalidRange, backends.ErrChecksum, backends.ErrUploadNotFound,
		backends.ErrInvalidPart, backends.ErrUnavailable}
	cases := []struct {
		api  APIError
		want error // nil: no sentinel, the SDK's error as it is
	}{
		{APIError{Code: "NoSuchKey", Status: 404}, backends.ErrNotFound},
		{APIError{Code: "NotFound", Status: 404}, backends.ErrNotFound},
		{APIError{Status: 404}, backends.ErrNotFound},
		{APIError{Code: "NoSuchBucket", Status: 404}, backends.ErrUnavailable},
		{APIError{Code: "NoSuchUpload", Status: 404}, backends.ErrUploadNotFound},
		{APIError{Code: "InvalidPart", Status: 400}, backends.ErrInvalidPart},
		{APIError{Code: "InvalidPartOrder", Status: 400}, backends.ErrInvalidPart},
		{APIError{Code: "EntityTooSmall", Status: 400}, backends.ErrInvalidPart},
		{APIError{Code: "BadDigest", Status: 400}, backends.ErrChecksum},
		{APIError{Code: "XAmzContentChecksumMismatch", Status: 400}, backends.ErrChecksum},
		{APIError{Code: "InvalidRange", Status: 416}, backends.ErrInvalidRange},
		{APIError{Status: 416}, backends.ErrInvalidRange},
		{APIError{Code: "MalformedXML", Status: 400}, nil},
		{APIError{Code: "SlowDown", Status: 429}, backends.ErrUnavailable},
		{APIError{Code: "SlowDown", Status: 400}, backends.ErrUnavailable},
		{APIError{Code: "AccessDenied", Status: 403}, backends.ErrUnavailable},
		{APIError{Status: 401}, backends.ErrUnavailable},
		{APIError{Code: "InternalError", Status: 500}, backends.ErrUnavailable},
		{APIError{Status: 503}, backends.ErrUnavailable},
		{APIError{}, backends.ErrUnavailable}, // no response at all: refused, timed out
		{APIError{Code: "InvalidArgument", Local: true}, nil},
		{APIError{Code: "NoSuchKey", Local: true}, backends.ErrNotFound}, // codes come first
	}
	for _, c := range cases {
		sdkErr := fmt.Errorf("sdk says %+v", c.api)
		err := MapErr(sdkErr, func(e error) APIError {
			if e != sdkErr {
				t.Errorf("describe got %v, want the SDK's error", e)
			}
			return c.api
		})
		if !errors.Is(err, sdkErr) {
			t.Errorf("%+v: %v lost the SDK's error", c.api, err)
		}
		for _, s := range sentinels {
			if got := errors.Is(err, s); got != (s == c.want) {
				t.Errorf("%+v: %v; errors.Is(%v) = %v", c.api, err, s, got)
			}
		}
	}

	if MapErr(nil, nil) != nil {
		t.Error("nil mapped to an error")
	}
	for _, cerr := range []error{context.Canceled, context.DeadlineExceeded} {
		wrapped := fmt.Errorf("op: %w", cerr)
		if err := MapErr(wrapped, func(error) APIError { return APIError{Status: 503} }); err != wrapped {
			t.Errorf("context error mapped to %v, want it unchanged", err)
		}
	}
}
