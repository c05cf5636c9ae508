package backends

import "errors"

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
