package metadata

import "errors"

// Sentinels returned (wrapped with context through %w) by every Store. The gateway maps them to HTTP
// statuses in one table.
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
)
