package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mlgate/mlgate/metadata"
)

// TestMapErrMarksAnUnreachableDatabaseUnavailable: losing the database (no connection, a dropped one, a
// server shutting down) is metadata.ErrUnavailable, which the gateway answers with 503 and Retry-After;
// a statement's own failure keeps its meaning. Needs no database.
func TestMapErrMarksAnUnreachableDatabaseUnavailable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want error // nil: neither sentinel
	}{
		{"connection lost mid-query", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), metadata.ErrUnavailable},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, metadata.ErrUnavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, metadata.ErrUnavailable},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, metadata.ErrUnavailable},
		{"connection failure", &pgconn.PgError{Code: "08006"}, metadata.ErrUnavailable},
		// pgx closing a connection the server dropped, as seen in CI while PostgreSQL stopped.
		{"statement cache on a closed connection", fmt.Errorf("failed to deallocate cached statement(s): %w", pgconn.ErrConnClosed), metadata.ErrUnavailable},
		{"unique violation", &pgconn.PgError{Code: "23505"}, metadata.ErrExists},
		{"foreign key violation", &pgconn.PgError{Code: "23503"}, metadata.ErrNotFound},
		{"disk full", &pgconn.PgError{Code: "53100"}, metadata.ErrInsufficientStorage},
		{"syntax error", &pgconn.PgError{Code: "42601"}, nil},
		{"caller gave up", context.Canceled, nil},
		{"plain", errors.New("boom"), nil},
	} {
		got := mapErr(c.err)
		if !errors.Is(got, c.err) && !errors.Is(got, metadata.ErrExists) && !errors.Is(got, metadata.ErrNotFound) {
			t.Errorf("%s: %v lost the original error", c.name, got)
		}
		for _, s := range []error{metadata.ErrUnavailable, metadata.ErrExists, metadata.ErrInsufficientStorage, metadata.ErrNotFound} {
			if errors.Is(got, s) != (s == c.want) {
				t.Errorf("%s: %v: errors.Is(%v) = %v", c.name, got, s, errors.Is(got, s))
			}
		}
	}
}
