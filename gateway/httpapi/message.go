package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// What a client is told about an error, decided here once for every surface. The error's own text is
// for the log: below the gateway it names blob keys, backend operations and internal numeric ids
// ("candidate 4 in project 1"), which tell a client nothing it sent and, across projects, tell it what
// exists. The client's message is, in order:
//
//  1. the text given with WithClientMessage (or by any error with a ClientMessage method) nearest the
//     top of the chain: what resolvers say of a miss, worded from what the client sent, so that a record
//     of another project and one that does not exist get the same answer;
//  2. else the text of the outermost error that wraps a client-text sentinel directly: the gateway's own
//     (ErrBadRequest and the others of this package, the name, path and filter grammars), whose messages
//     are written from the request, and the store's ErrInvalid, ErrExists and ErrConflict, whose
//     messages the metadata contract keeps to the values the caller passed;
//  3. else a fixed text for its sentinel (fixedMessages; the status text for others), after
//     "backend <name>: " when a backend operation failed (backends.OpError; the admin chose the name).
//
// The full error goes to the log with the request id whenever the client is told less.

// ClientMessager is an error that carries the message a client is shown for it.
type ClientMessager interface {
	error
	ClientMessage() string
}

// clientMessageError is WithClientMessage's error.
type clientMessageError struct {
	msg string
	err error
}

func (e *clientMessageError) Error() string         { return e.msg + ": " + e.err.Error() }
func (e *clientMessageError) Unwrap() error         { return e.err }
func (e *clientMessageError) ClientMessage() string { return e.msg }

// WithClientMessage returns err (a sentinel of the error table, or an error wrapping one) with the
// message a client is shown for it, formatted from what the client sent. errors.Is and the error table
// see err; the log sees the message followed by err's text.
func WithClientMessage(err error, format string, args ...any) error {
	return &clientMessageError{msg: fmt.Sprintf(format, args...), err: err}
}

// NotFound is a metadata.ErrNotFound whose client message is the formatted text: what a resolver answers
// for a reference that names nothing the caller may see.
func NotFound(format string, args ...any) error {
	return WithClientMessage(metadata.ErrNotFound, format, args...)
}

// clientTextSentinels are the sentinels whose direct wrappers write their messages for clients (rule 2
// above).
var clientTextSentinels = []error{
	ErrTooLarge, ErrBadRequest, ErrNotImplemented, ErrRouteNotFound, ErrMethodNotAllowed, ErrUnauthenticated,
	ErrPermissionDenied, ErrBadSignature, ErrLengthRequired, ErrManifestUnknown, ErrBlobUnknown, ErrDigestInvalid,
	pkgtypes.ErrInvalidName, pkgtypes.ErrInvalidVersion, pkgtypes.ErrInvalidPath,
	mlflowfilter.ErrInvalid,
	metadata.ErrInvalid, metadata.ErrExists, metadata.ErrConflict, metadata.ErrAliasNotFound,
}

// fixedMessages are what a client is told about an error that carries no message for it (rule 3), by
// sentinel, walked in order with errors.Is.
var fixedMessages = []struct {
	target error
	msg    string
}{
	{metadata.ErrAliasNotFound, "alias not found"},
	{backends.ErrUploadNotFound, "multipart upload not found: it was completed, aborted or has expired"},
	{metadata.ErrNotFound, "not found"},
	{backends.ErrNotFound, "not found"},
	{metadata.ErrExists, "already exists"},
	{metadata.ErrConflict, "conflict"},
	{backends.ErrChecksum, "checksum mismatch: the bytes received do not have the sha256 the request declared"},
	{backends.ErrSizeMismatch, "size mismatch: the bytes received are not as many as the request declared"},
	{backends.ErrInvalidPart, "invalid multipart upload: every part must be listed with its ETag, and every part but " +
		"the last must have at least the backend's minimum part size"},
	{backends.ErrInvalidRange, "the requested range is not satisfiable"},
	{backends.ErrUnsupported, "not supported by the storage backend"},
	{backends.ErrUnavailable, "storage is unavailable; retry later"},
}

// ClientMessage is what a client is told about err, of class: see the rules above.
func ClientMessage(err error, class Class) string {
	if m, ok := findInChain(err, func(e error) (string, bool) {
		if cm, ok := e.(ClientMessager); ok {
			return cm.ClientMessage(), true
		}
		return "", false
	}); ok {
		return m
	}
	if m, ok := findInChain(err, func(e error) (string, bool) {
		for _, inner := range unwrapOnce(e) {
			for _, s := range clientTextSentinels {
				if inner == s {
					return e.Error(), true
				}
			}
		}
		for _, s := range clientTextSentinels {
			if e == s {
				return e.Error(), true
			}
		}
		return "", false
	}); ok {
		return m
	}
	msg := strings.ToLower(http.StatusText(class.Status))
	for _, f := range fixedMessages {
		if errors.Is(err, f.target) {
			msg = f.msg
			break
		}
	}
	var op *backends.OpError
	if errors.As(err, &op) {
		msg = "backend " + op.Backend + ": " + msg
	}
	return msg
}

// findInChain walks err's chain from the top, depth first, and returns what match finds first.
func findInChain(err error, match func(error) (string, bool)) (string, bool) {
	if err == nil {
		return "", false
	}
	if m, ok := match(err); ok {
		return m, true
	}
	for _, inner := range unwrapOnce(err) {
		if m, ok := findInChain(inner, match); ok {
			return m, true
		}
	}
	return "", false
}

func unwrapOnce(err error) []error {
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return []error{inner}
		}
	case interface{ Unwrap() []error }:
		return u.Unwrap()
	}
	return nil
}
