package plugins

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlgate/mlgate/backends"
)

// allSentinels must list every sentinel of backends/errors.go; a new one without a row in the status
// table fails TestStatusRoundTrip.
var allSentinels = []error{
	backends.ErrNotFound, backends.ErrInvalidKey, backends.ErrInvalidRange, backends.ErrChecksum,
	backends.ErrSizeMismatch, backends.ErrUploadNotFound, backends.ErrInvalidPart, backends.ErrUnsupported,
	backends.ErrUnavailable, backends.ErrInsufficientStorage,
}

func TestStatusRoundTrip(t *testing.T) {
	for _, sentinel := range allSentinels {
		err := fmt.Errorf("localfs get %q: %w", "k", sentinel)
		st := toStatus(err)
		if status.Code(st) == codes.Unknown {
			t.Errorf("%v: no gRPC code", sentinel)
		}
		back := fromStatus(st)
		if !errors.Is(back, sentinel) {
			t.Errorf("%v: round trip lost the sentinel: %v", sentinel, back)
		}
		for _, other := range allSentinels {
			if other != sentinel && errors.Is(back, other) {
				t.Errorf("%v: round trip also matches %v", sentinel, other)
			}
		}
		if back.Error() != "plugin: "+err.Error() {
			t.Errorf("message changed: %q", back.Error())
		}
		if sentinel == backends.ErrUnavailable && isTransport(back) {
			t.Error("a backend's ErrUnavailable looks like a dead plugin")
		}
	}
}

func TestStatusCodes(t *testing.T) {
	cases := []struct {
		err  error
		code codes.Code
	}{
		{backends.ErrNotFound, codes.NotFound},
		{backends.ErrUploadNotFound, codes.NotFound},
		{backends.ErrInvalidKey, codes.InvalidArgument},
		{backends.ErrInvalidPart, codes.InvalidArgument},
		{backends.ErrInvalidRange, codes.OutOfRange},
		{backends.ErrChecksum, codes.DataLoss},
		{backends.ErrSizeMismatch, codes.DataLoss},
		{backends.ErrUnsupported, codes.Unimplemented},
		{backends.ErrUnavailable, codes.Unavailable},
		{backends.ErrInsufficientStorage, codes.ResourceExhausted},
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{io.ErrUnexpectedEOF, codes.Unknown},
	}
	for _, c := range cases {
		if got := status.Code(toStatus(fmt.Errorf("x: %w", c.err))); got != c.code {
			t.Errorf("%v: code %v, want %v", c.err, got, c.code)
		}
	}
}

func TestStatusOther(t *testing.T) {
	if toStatus(nil) != nil || fromStatus(nil) != nil {
		t.Fatal("nil is not nil")
	}
	// A dead connection (Unavailable without detail, or no status at all) is ErrUnavailable.
	for _, err := range []error{status.Error(codes.Unavailable, "connection closed"), errors.New("broken pipe")} {
		got := fromStatus(err)
		if !errors.Is(got, backends.ErrUnavailable) || !isTransport(got) {
			t.Errorf("%v -> %v", err, got)
		}
	}
	if got := fromStatus(status.Error(codes.Canceled, "x")); !errors.Is(got, context.Canceled) {
		t.Errorf("canceled -> %v", got)
	}
	if got := fromStatus(status.Error(codes.DeadlineExceeded, "x")); !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("deadline -> %v", got)
	}
	got := fromStatus(toStatus(errors.New("disk on fire")))
	for _, s := range allSentinels {
		if errors.Is(got, s) {
			t.Errorf("unknown error matches %v", s)
		}
	}
	if got.Error() != "plugin: disk on fire (Unknown)" {
		t.Errorf("unknown error: %q", got.Error())
	}
}
