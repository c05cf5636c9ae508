package backends

import (
	"errors"
	"fmt"
)

// Sentinels returned (wrapped with context through %w) by every Backend. Callers test them with
// errors.Is; the gateway maps them to HTTP statuses in one table.
var (
	ErrNotFound       = errors.New("blob not found")
	ErrInvalidKey     = errors.New("invalid blob key")
	ErrInvalidRange   = errors.New("invalid range")
	ErrChecksum       = errors.New("checksum mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrUploadNotFound = errors.New("multipart upload not found")
	ErrInvalidPart    = errors.New("invalid multipart part")
	ErrUnsupported    = errors.New("operation not supported by backend")
	ErrUnavailable    = errors.New("backend unavailable")
	// ErrInsufficientStorage: the storage is full (ENOSPC or a quota). Unlike ErrUnavailable it does not
	// pass by itself: space has to be freed.
	ErrInsufficientStorage = errors.New("insufficient storage")
)

// OpError is a failed operation of a configured backend, as Checked reports it: the backend's name, the
// operation and the key, around the error (which wraps one of the sentinels above). Its text is for
// logs and operators; the gateway tells clients the backend's name and what went wrong, never the key.
type OpError struct {
	Backend string // the name the configuration gives the backend
	Op      string // "put", "get", …
	Key     string // the blob key, or the prefix of a list
	Err     error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("backend %s: %s %q: %v", e.Backend, e.Op, e.Key, e.Err)
}
func (e *OpError) Unwrap() error { return e.Err }
