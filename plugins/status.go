package plugins

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/mlgate/mlgate/backends"
)

// errorDomain marks the ErrorInfo details this package writes, so a detail from elsewhere is never
// mistaken for a sentinel name.
const errorDomain = "backends.mlgate"

// sentinels is the table of section 4.4 of the architecture: the gRPC code carries the class of an
// error, the ErrorInfo reason the exact sentinel. Order matters only for errors wrapping several.
var sentinels = []struct {
	name string
	err  error
	code codes.Code
}{
	{"ErrNotFound", backends.ErrNotFound, codes.NotFound},
	{"ErrUploadNotFound", backends.ErrUploadNotFound, codes.NotFound},
	{"ErrInvalidKey", backends.ErrInvalidKey, codes.InvalidArgument},
	{"ErrInvalidPart", backends.ErrInvalidPart, codes.InvalidArgument},
	{"ErrInvalidRange", backends.ErrInvalidRange, codes.OutOfRange},
	{"ErrChecksum", backends.ErrChecksum, codes.DataLoss},
	{"ErrSizeMismatch", backends.ErrSizeMismatch, codes.DataLoss},
	{"ErrUnsupported", backends.ErrUnsupported, codes.Unimplemented},
	{"ErrUnavailable", backends.ErrUnavailable, codes.Unavailable},
	{"ErrInsufficientStorage", backends.ErrInsufficientStorage, codes.ResourceExhausted},
}

// errTransport marks an ErrUnavailable that the connection produced (the plugin died, hung up or never
// answered) rather than one the plugin's backend reported. Only these make the supervisor look at the
// process: a backend saying "S3 is down" is no reason to restart the plugin.
var errTransport = errors.New("plugin connection failed")

// toStatus converts a backend error into the gRPC status the plugin sends. nil stays nil.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isSentinel(err) {
		return err // already a status (from grpc itself); keep it
	}
	code, reason := codes.Unknown, ""
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			code, reason = s.code, s.name
			break
		}
	}
	st := status.New(code, err.Error())
	if reason != "" {
		if withInfo, derr := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain}); derr == nil {
			st = withInfo
		}
	}
	return st.Err()
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return true
		}
	}
	return false
}

// remoteError is an error received from the plugin: its message is the plugin's, and it unwraps to
// the sentinel the plugin named (and to errTransport for connection failures).
type remoteError struct {
	msg  string
	errs []error
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// fromStatus converts an error returned by a gRPC call into a backends error on the host:
//   - a status with an ErrorInfo detail naming a sentinel wraps that sentinel;
//   - Canceled and DeadlineExceeded wrap context.Canceled and context.DeadlineExceeded;
//   - Unavailable without a detail, or any error that is not a status (a broken connection), wraps
//     ErrUnavailable: a dead or unreachable plugin is a 503, never a 500;
//   - everything else keeps the plugin's message and wraps no sentinel.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return &remoteError{msg: "plugin: " + err.Error(), errs: []error{backends.ErrUnavailable, errTransport, err}}
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		for _, s := range sentinels {
			if s.name == info.GetReason() {
				return &remoteError{msg: "plugin: " + st.Message(), errs: []error{s.err}}
			}
		}
	}
	switch st.Code() {
	case codes.Canceled:
		return &remoteError{msg: "plugin: " + st.Message(), errs: []error{context.Canceled}}
	case codes.DeadlineExceeded:
		return &remoteError{msg: "plugin: " + st.Message(), errs: []error{context.DeadlineExceeded}}
	case codes.Unavailable:
		return &remoteError{msg: "plugin: " + st.Message(), errs: []error{backends.ErrUnavailable, errTransport}}
	}
	return fmt.Errorf("plugin: %s (%s)", st.Message(), st.Code())
}
