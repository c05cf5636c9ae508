package httpapi

import (
	"errors"
	"fmt"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/metadata"
)

func TestErrorTable(t *testing.T) {
	cases := []struct {
		err    error
		status int
	}{
		{fmt.Errorf("x: %w", metadata.ErrNotFound), 404},
		{fmt.Errorf("x: %w", backends.ErrNotFound), 404},
		{fmt.Errorf("x: %w", metadata.ErrExists), 409},
		{fmt.Errorf("x: %w", metadata.ErrConflict), 409},
		{fmt.Errorf("x: %w", metadata.ErrInvalid), 400},
		{fmt.Errorf("x: %w", backends.ErrChecksum), 400},
		{fmt.Errorf("x: %w", ErrTooLarge), 413},
		{fmt.Errorf("x: %w", backends.ErrInvalidRange), 416},
		{fmt.Errorf("x: %w", backends.ErrUnavailable), 503},
		{fmt.Errorf("x: %w", metadata.ErrUnavailable), 503},
		{fmt.Errorf("x: %w", backends.ErrInsufficientStorage), 507},
		{fmt.Errorf("x: %w", metadata.ErrInsufficientStorage), 507},
		{fmt.Errorf("x: %w", ErrTooManyUploads), 429},
		{fmt.Errorf("%w: reading request body: %w", ErrBadRequest, ErrBodyStalled), 408},
		{fmt.Errorf("x: %w", backends.ErrInvalidKey), 500},
		{errors.New("boom"), 500},
	}
	for _, c := range cases {
		if got, _ := Classify(c.err); got.Status != c.status {
			t.Errorf("%v: %d, want %d", c.err, got.Status, c.status)
		}
	}
}

func TestAuthErrorsInTable(t *testing.T) {
	if c, _ := Classify(ErrUnauthenticated); c.Status != 401 || c.MLflowCode != "UNAUTHENTICATED" || MLflowStatusOf(c) != 401 {
		t.Errorf("ErrUnauthenticated → %+v", c)
	}
	if c, _ := Classify(ErrPermissionDenied); c.Status != 403 || c.MLflowCode != "PERMISSION_DENIED" || MLflowStatusOf(c) != 403 {
		t.Errorf("ErrPermissionDenied → %+v", c)
	}
}

// TestMLflowRetryableStatuses: the MLflow client retries 408, 429, 500, 502, 503 and 504. A full disk must
// not be among them, too many uploads must, and every status comes with MLflow's body.
func TestMLflowRetryableStatuses(t *testing.T) {
	for _, c := range []struct {
		err        error
		status     int
		code       string
		retryAfter bool
	}{
		{backends.ErrInsufficientStorage, 507, "RESOURCE_EXHAUSTED", false},
		{metadata.ErrInsufficientStorage, 507, "RESOURCE_EXHAUSTED", false},
		{ErrTooManyUploads, 429, "RESOURCE_EXHAUSTED", true},
		{ErrBodyStalled, 408, "DEADLINE_EXCEEDED", false},
		{backends.ErrInvalidRange, 416, "INVALID_PARAMETER_VALUE", false},
	} {
		class, _ := Classify(c.err)
		if MLflowStatusOf(class) != c.status || class.MLflowCode != c.code || class.RetryAfter != c.retryAfter {
			t.Errorf("%v: MLflow %d %s, Retry-After %v; want %d %s, %v", c.err, MLflowStatusOf(class), class.MLflowCode,
				class.RetryAfter, c.status, c.code, c.retryAfter)
		}
	}
}
