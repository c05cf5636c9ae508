package metadata

import "errors"

// Sentinels returned (wrapped with context through %w) by every Store. The gateway maps them to HTTP
// statuses in one table.
//
// The messages of errors wrapping ErrInvalid, ErrExists, ErrConflict and ErrAliasNotFound are shown to
// API clients: they name the values the caller passed (names, paths, keys, semvers), never internal
// numeric ids or blob keys. Those of ErrNotFound and of every other error are for logs only, and may name
// anything.
var (
	ErrNotFound      = errors.New("not found")
	ErrExists        = errors.New("already exists")
	ErrInvalid       = errors.New("invalid argument")
	ErrConflict      = errors.New("conflict")
	ErrAliasNotFound = errors.New("alias not found")
	// ErrTooNew is returned by Open when the database was written by a newer mlgate.
	ErrTooNew = errors.New("database schema is newer than this binary")
	// ErrInsufficientStorage is returned by writes that could not be committed because the filesystem
	// holding the metadata is full. Nothing of the write is kept.
	ErrInsufficientStorage = errors.New("insufficient storage for metadata")
	// ErrUnavailable is returned when the store cannot serve the call now but may shortly: a database
	// server that is unreachable, or a write that kept conflicting with concurrent writers after the
	// store's own retries. Nothing of a failed write is kept; the caller may retry it.
	ErrUnavailable = errors.New("metadata store unavailable")
)
