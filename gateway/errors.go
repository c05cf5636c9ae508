package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Gateway-level sentinels. Handlers wrap them with %w; writeError maps them.
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
)

// errorClass is one row of the error table: how a family of errors looks on the wire.
type errorClass struct {
	status     int
	code       string // package routes: the "error" field
	mlflowCode string // MLflow routes: the "error_code" field
	retryAfter bool
}

// errorTable is the one place where errors become HTTP statuses. It is walked in order with errors.Is,
// so more specific sentinels come first. Anything unmatched is a 500 and is logged.
var errorTable = []struct {
	targets []error
	class   errorClass
}{
	{[]error{ErrUnauthenticated}, errorClass{http.StatusUnauthorized, "unauthenticated", "UNAUTHENTICATED", false}},
	{[]error{ErrPermissionDenied}, errorClass{http.StatusForbidden, "permission_denied", "PERMISSION_DENIED", false}},
	{[]error{ErrRouteNotFound}, errorClass{http.StatusNotFound, "not_found", "ENDPOINT_NOT_FOUND", false}},
	{[]error{ErrMethodNotAllowed}, errorClass{http.StatusMethodNotAllowed, "method_not_allowed", "ENDPOINT_NOT_FOUND", false}},
	{[]error{metadata.ErrAliasNotFound}, errorClass{http.StatusNotFound, "not_found", "INVALID_PARAMETER_VALUE", false}},
	{[]error{metadata.ErrNotFound, backends.ErrNotFound, backends.ErrUploadNotFound},
		errorClass{http.StatusNotFound, "not_found", "RESOURCE_DOES_NOT_EXIST", false}},
	{[]error{metadata.ErrExists}, errorClass{http.StatusConflict, "already_exists", "RESOURCE_ALREADY_EXISTS", false}},
	{[]error{metadata.ErrConflict}, errorClass{http.StatusConflict, "conflict", "INVALID_PARAMETER_VALUE", false}},
	// On MLflow routes an oversize file is INVALID_PARAMETER_VALUE (400): MLflow's RESOURCE_EXHAUSTED would
	// be a 429, which the client retries for a minute.
	{[]error{ErrTooLarge}, errorClass{http.StatusRequestEntityTooLarge, "too_large", "INVALID_PARAMETER_VALUE", false}},
	{[]error{backends.ErrChecksum}, errorClass{http.StatusBadRequest, "checksum_mismatch", "INVALID_PARAMETER_VALUE", false}},
	{[]error{backends.ErrSizeMismatch}, errorClass{http.StatusBadRequest, "size_mismatch", "INVALID_PARAMETER_VALUE", false}},
	{[]error{metadata.ErrInvalid, pkgtypes.ErrInvalidName, pkgtypes.ErrInvalidVersion, pkgtypes.ErrInvalidPath,
		backends.ErrInvalidPart, ErrBadRequest, mlflowfilter.ErrInvalid},
		errorClass{http.StatusBadRequest, "invalid_argument", "INVALID_PARAMETER_VALUE", false}},
	{[]error{backends.ErrInvalidRange}, errorClass{http.StatusRequestedRangeNotSatisfiable, "invalid_range", "INVALID_PARAMETER_VALUE", false}},
	{[]error{ErrNotImplemented, backends.ErrUnsupported}, errorClass{http.StatusNotImplemented, "not_implemented", "NOT_IMPLEMENTED", false}},
	{[]error{backends.ErrUnavailable, context.DeadlineExceeded},
		errorClass{http.StatusServiceUnavailable, "unavailable", "TEMPORARILY_UNAVAILABLE", true}},
}

var internalError = errorClass{http.StatusInternalServerError, "internal", "INTERNAL_ERROR", false}

// classify finds err's row in the error table.
func classify(err error) (errorClass, bool) {
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

// prepareError classifies err for a response: it logs internal errors with the request id (hiding
// their text from the client), logs backend outages, and sets Retry-After. send is false when the client
// went away and nothing should be written.
func prepareError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) (class errorClass, msg string, send bool) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		log.Debug("client went away", "err", err, "request_id", requestID(r))
		return class, "", false
	}
	class, known := classify(err)
	msg = err.Error()
	if !known {
		log.Error("internal error", "err", err, "method", r.Method, "path", r.URL.EscapedPath(), "request_id", requestID(r))
		msg = "internal error, request id " + requestID(r)
	} else if class.status == http.StatusServiceUnavailable {
		log.Warn("backend unavailable", "err", err, "request_id", requestID(r))
	}
	if class.retryAfter {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	return class, msg, true
}

// writeError answers a package-API request with {"error","message"}.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if class, msg, send := prepareError(w, r, log, err); send {
		writeJSON(w, class.status, map[string]string{"error": class.code, "message": msg})
	}
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
	"INTERNAL_ERROR":          http.StatusInternalServerError,
}

// writeMLflowError answers an MLflow RPC with {"error_code","message"} and MLflow's status for the code.
func writeMLflowError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	class, msg, send := prepareError(w, r, log, err)
	if !send {
		return
	}
	status, ok := mlflowStatus[class.mlflowCode]
	if !ok {
		status = class.status
	}
	writeJSON(w, status, map[string]string{"error_code": class.mlflowCode, "message": msg})
}

// writeJSON writes v as a JSON response with status, in one write with a Content-Length: a small answer
// leaves in one TCP segment instead of a header packet followed by a body packet, which matters for
// clients that log thousands of small calls.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a handler bug gets here (an unsupported value such as a raw NaN float).
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","error_code":"INTERNAL_ERROR","message":"response could not be encoded"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
