// Package httpapi is what every HTTP surface of mlgate shares without importing the gateway: the one
// table that turns errors into statuses and bodies, JSON answers, the request id and the principal in a
// request's context, and the resolution of the project a URL names.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Sentinels of the HTTP layer. Handlers wrap them with %w; the error table maps them.
var (
	ErrTooLarge         = errors.New("request body too large")
	ErrBadRequest       = errors.New("bad request")
	ErrNotImplemented   = errors.New("not implemented")
	ErrRouteNotFound    = errors.New("no such endpoint")
	ErrMethodNotAllowed = errors.New("method not allowed")
	// ErrUnauthenticated: no token, or one that is unknown, expired or revoked (401).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: a valid token whose scope does not allow the request (403).
	ErrPermissionDenied = errors.New("permission denied")
	// ErrBadSignature: a signed URL (a multipart part upload) that this server did not sign, or that
	// expired. 403, as S3 answers an expired presigned URL, so that clients do not retry it.
	ErrBadSignature = errors.New("URL signature")
	// ErrLengthRequired: an upload that must declare its Content-Length did not (411).
	ErrLengthRequired = errors.New("length required")
	// ErrTooManyUploads: the server runs as many uploads as it accepts at once (429, Retry-After).
	ErrTooManyUploads = errors.New("too many concurrent uploads")
	// ErrBodyStalled: no byte of a request body arrived for the body read timeout (408).
	ErrBodyStalled = errors.New("request body stalled")

	// The OCI distribution routes' own misses and refusals, so that each gets its spec code. Elsewhere
	// they read as the package API's not_found and invalid_argument.

	// ErrManifestUnknown: the repository exists, the reference names no manifest of it (404).
	ErrManifestUnknown = errors.New("manifest unknown")
	// ErrBlobUnknown: the repository exists, the digest names no blob of it (404).
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrDigestInvalid: a digest that is not <algorithm>:<hex> of a supported algorithm (400).
	ErrDigestInvalid = errors.New("invalid digest")
)

// Class is one row of the error table: how a family of errors looks on the wire.
type Class struct {
	Status     int    // HTTP status on package and UI routes
	Code       string // package routes: the "error" field
	MLflowCode string // MLflow routes: the "error_code" field
	// MLflowStatus overrides the status MLflow gives MLflowCode (0: MLflow's, from mlflowStatus).
	MLflowStatus int
	// OCICode is the "code" of the OCI distribution error body on /v2/ routes (one of the spec's codes;
	// UNKNOWN, as registries answer, for server-side failures).
	OCICode    string
	RetryAfter bool
}

// errorTable is the one place where errors become HTTP statuses. It is walked in order with errors.Is,
// so more specific sentinels come first. Anything unmatched is a 500 and is logged.
var errorTable = []struct {
	targets []error
	class   Class
}{
	{[]error{ErrUnauthenticated}, Class{OCICode: "UNAUTHORIZED", Status: http.StatusUnauthorized, Code: "unauthenticated", MLflowCode: "UNAUTHENTICATED"}},
	{[]error{ErrPermissionDenied, ErrBadSignature}, Class{OCICode: "DENIED", Status: http.StatusForbidden, Code: "permission_denied", MLflowCode: "PERMISSION_DENIED"}},
	{[]error{ErrManifestUnknown}, Class{OCICode: "MANIFEST_UNKNOWN", Status: http.StatusNotFound, Code: "not_found", MLflowCode: "RESOURCE_DOES_NOT_EXIST"}},
	{[]error{ErrBlobUnknown}, Class{OCICode: "BLOB_UNKNOWN", Status: http.StatusNotFound, Code: "not_found", MLflowCode: "RESOURCE_DOES_NOT_EXIST"}},
	{[]error{ErrDigestInvalid}, Class{OCICode: "DIGEST_INVALID", Status: http.StatusBadRequest, Code: "invalid_argument", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{ErrRouteNotFound}, Class{OCICode: "NAME_UNKNOWN", Status: http.StatusNotFound, Code: "not_found", MLflowCode: "ENDPOINT_NOT_FOUND"}},
	// A full disk does not pass by waiting, so no Retry-After. MLflow's ErrorCode documents
	// RESOURCE_EXHAUSTED as covering "the entire file system is out of space", but MLflow answers it with
	// 429, which its client retries (it retries 408, 429, 500, 502, 503 and 504): 507 keeps the code and
	// stops the retries.
	{[]error{backends.ErrInsufficientStorage, metadata.ErrInsufficientStorage},
		Class{OCICode: "UNKNOWN", Status: http.StatusInsufficientStorage, Code: "insufficient_storage", MLflowCode: "RESOURCE_EXHAUSTED",
			MLflowStatus: http.StatusInsufficientStorage}},
	{[]error{ErrTooManyUploads}, Class{OCICode: "TOOMANYREQUESTS", Status: http.StatusTooManyRequests, Code: "too_many_requests", MLflowCode: "RESOURCE_EXHAUSTED", RetryAfter: true}},
	// Before ErrBadRequest, which wraps every failure to read a body. 408 on MLflow routes too: the
	// server's deadline for the body passed (DEADLINE_EXCEEDED), not MLflow's 504 for a slow server.
	{[]error{ErrBodyStalled}, Class{OCICode: "UNKNOWN", Status: http.StatusRequestTimeout, Code: "request_timeout", MLflowCode: "DEADLINE_EXCEEDED",
		MLflowStatus: http.StatusRequestTimeout}},
	{[]error{ErrMethodNotAllowed}, Class{OCICode: "UNSUPPORTED", Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", MLflowCode: "ENDPOINT_NOT_FOUND"}},
	{[]error{metadata.ErrAliasNotFound}, Class{OCICode: "MANIFEST_UNKNOWN", Status: http.StatusNotFound, Code: "not_found", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{metadata.ErrNotFound, backends.ErrNotFound, backends.ErrUploadNotFound},
		Class{OCICode: "NAME_UNKNOWN", Status: http.StatusNotFound, Code: "not_found", MLflowCode: "RESOURCE_DOES_NOT_EXIST"}},
	{[]error{metadata.ErrExists}, Class{OCICode: "UNSUPPORTED", Status: http.StatusConflict, Code: "already_exists", MLflowCode: "RESOURCE_ALREADY_EXISTS"}},
	{[]error{metadata.ErrConflict}, Class{OCICode: "UNSUPPORTED", Status: http.StatusConflict, Code: "conflict", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	// On MLflow routes an oversize file is INVALID_PARAMETER_VALUE (400): MLflow's RESOURCE_EXHAUSTED would
	// be a 429, which the client retries for a minute.
	{[]error{ErrTooLarge}, Class{OCICode: "SIZE_INVALID", Status: http.StatusRequestEntityTooLarge, Code: "too_large", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{ErrLengthRequired}, Class{OCICode: "SIZE_INVALID", Status: http.StatusLengthRequired, Code: "length_required", MLflowCode: "INVALID_PARAMETER_VALUE",
		MLflowStatus: http.StatusLengthRequired}},
	{[]error{backends.ErrChecksum}, Class{OCICode: "DIGEST_INVALID", Status: http.StatusBadRequest, Code: "checksum_mismatch", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{backends.ErrSizeMismatch}, Class{OCICode: "SIZE_INVALID", Status: http.StatusBadRequest, Code: "size_mismatch", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{metadata.ErrInvalid, pkgtypes.ErrInvalidName, pkgtypes.ErrInvalidVersion, pkgtypes.ErrInvalidPath,
		backends.ErrInvalidPart, ErrBadRequest, mlflowfilter.ErrInvalid},
		Class{OCICode: "NAME_INVALID", Status: http.StatusBadRequest, Code: "invalid_argument", MLflowCode: "INVALID_PARAMETER_VALUE"}},
	{[]error{backends.ErrInvalidRange}, Class{OCICode: "UNSUPPORTED", Status: http.StatusRequestedRangeNotSatisfiable, Code: "invalid_range", MLflowCode: "INVALID_PARAMETER_VALUE",
		MLflowStatus: http.StatusRequestedRangeNotSatisfiable}},
	{[]error{ErrNotImplemented, backends.ErrUnsupported}, Class{OCICode: "UNSUPPORTED", Status: http.StatusNotImplemented, Code: "not_implemented", MLflowCode: "NOT_IMPLEMENTED"}},
	{[]error{backends.ErrUnavailable, metadata.ErrUnavailable, context.DeadlineExceeded},
		Class{OCICode: "UNKNOWN", Status: http.StatusServiceUnavailable, Code: "unavailable", MLflowCode: "TEMPORARILY_UNAVAILABLE", RetryAfter: true}},
}

var internalError = Class{Status: http.StatusInternalServerError, Code: "internal", MLflowCode: "INTERNAL_ERROR", OCICode: "UNKNOWN"}

// Classify finds err's row in the error table; known is false for an internal error.
func Classify(err error) (class Class, known bool) {
	for _, row := range errorTable {
		for _, target := range row.targets {
			if errors.Is(err, target) {
				return row.class, true
			}
		}
	}
	return internalError, false
}

// retryAfterSeconds is what a 503 asks clients to wait.
const retryAfterSeconds = 5

// PrepareError classifies err for a response: it logs internal errors with the request id (hiding
// their text from the client), logs backend outages and full disks (reporting the latter to the
// request's storage-full hook), and sets Retry-After. The message is ClientMessage's: when it tells
// less than err, err is logged with the request id.
//
// A request whose work was abandoned because its client went away in the middle of sending it (its
// context is cancelled, which the gateway does only then) is not answered at all: PrepareError panics
// with http.ErrAbortHandler, so that net/http closes the connection instead of sending the implicit 200
// of a handler that writes nothing. A stalled body is answered (408): its client may still listen.
func PrepareError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) (class Class, msg string) {
	if r.Context().Err() != nil && !errors.Is(err, ErrBodyStalled) {
		log.Debug("client went away; response aborted", "err", err, "request_id", RequestID(r))
		panic(http.ErrAbortHandler)
	}
	class, known := Classify(err)
	msg = ClientMessage(err, class)
	switch {
	case !known:
		log.Error("internal error", "err", err, "method", r.Method, "path", EscapedPath(r), "request_id", RequestID(r))
		msg = "internal error, request id " + RequestID(r)
	case class.Status == http.StatusServiceUnavailable:
		log.Warn("backend unavailable", "err", err, "request_id", RequestID(r))
	case class.Status == http.StatusInsufficientStorage:
		log.Warn("storage full", "err", err, "method", r.Method, "path", EscapedPath(r), "request_id", RequestID(r))
		// The details name files and blob keys of the server, not anything the client sent.
		msg = "insufficient storage: the server has no space left for this write; deleting files still works " +
			"and frees space (request id " + RequestID(r) + ")"
		storageFull(r.Context())
	case msg != err.Error():
		log.Info("request refused", "status", class.Status, "message", msg, "err", err, "request_id", RequestID(r))
	}
	if class.RetryAfter {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	return class, msg
}

// ErrorWriter answers a request with an error in its route's body shape: WriteError or WriteMLflowError.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)

// WriteError answers a package-API request with {"error","message"}.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	class, msg := PrepareError(w, r, log, err)
	WriteJSON(w, class.Status, map[string]string{"error": class.Code, "message": msg})
}

// mlflowStatus is MLflow's own HTTP status for each error_code; it differs from the package API's
// (RESOURCE_ALREADY_EXISTS is 400, not 409), and the client branches on both.
var mlflowStatus = map[string]int{
	"INVALID_PARAMETER_VALUE": http.StatusBadRequest,
	"RESOURCE_ALREADY_EXISTS": http.StatusBadRequest,
	"RESOURCE_DOES_NOT_EXIST": http.StatusNotFound,
	"ENDPOINT_NOT_FOUND":      http.StatusNotFound,
	"UNAUTHENTICATED":         http.StatusUnauthorized,
	"PERMISSION_DENIED":       http.StatusForbidden,
	"NOT_IMPLEMENTED":         http.StatusNotImplemented,
	"TEMPORARILY_UNAVAILABLE": http.StatusServiceUnavailable,
	"RESOURCE_EXHAUSTED":      http.StatusTooManyRequests,
	"INTERNAL_ERROR":          http.StatusInternalServerError,
}

// MLflowStatusOf is the HTTP status an MLflow route answers class with.
func MLflowStatusOf(class Class) int {
	if class.MLflowStatus != 0 {
		return class.MLflowStatus
	}
	if status, ok := mlflowStatus[class.MLflowCode]; ok {
		return status
	}
	return class.Status
}

// WriteMLflowError answers an MLflow RPC with {"error_code","message"} and MLflow's status for the code.
func WriteMLflowError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	class, msg := PrepareError(w, r, log, err)
	WriteJSON(w, MLflowStatusOf(class), map[string]string{"error_code": class.MLflowCode, "message": msg})
}
