// Package pgstore is the PostgreSQL implementation of metadata.Store, so that several mlgate replicas can
// share one registry.
//
// Transactions run at SERIALIZABLE. metadata.Store promises that a decision read inside Update (the highest
// seq, whether a tag or alias exists) still holds when the writes depending on it commit: that is
// serializability. REPEATABLE READ (snapshot isolation) would let two such transactions each decide on a
// snapshot without the other's write and both commit (write skew). PostgreSQL's SERIALIZABLE detects that
// and fails one with SQLSTATE 40001; so does REPEATABLE READ for two updates of one counter row, so a retry
// loop is needed at either level, and the store retries the whole transaction (see Update).
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mlgate/mlgate/metadata"
)

// Store is the PostgreSQL implementation of metadata.Store. It is safe for concurrent use, also by
// several processes on one database.
type Store struct {
	pool  *pgxpool.Pool
	clock metadata.Clock
	log   *slog.Logger
	// maxAttempts bounds how often a transaction is run when it keeps failing to serialize.
	maxAttempts int
	observe     func(TxStats) // nil: no observer
}

var _ metadata.Store = (*Store)(nil)

var (
	// ErrContended is returned when a transaction still failed to serialize, or deadlocked, after every
	// attempt: concurrent writers kept touching the same rows. Nothing of it is kept; the caller may retry
	// later.
	ErrContended = fmt.Errorf("pgstore: transaction kept conflicting with concurrent writers: %w", metadata.ErrUnavailable)
)

// DefaultMaxAttempts is how many times a transaction runs at most when it fails to serialize.
const DefaultMaxAttempts = 50

type config struct {
	clock       metadata.Clock
	log         *slog.Logger
	maxAttempts int
	maxConns    int32
	observe     func(TxStats)
}

// TxStats describes one transaction the store ran, over all its attempts.
type TxStats struct {
	// ReadOnly is true for the read transactions of reads made of several statements; false for
	// writes and Update.
	ReadOnly bool
	// Duration runs from the first BEGIN to the end of the last COMMIT or ROLLBACK, pauses between
	// attempts included: what the caller waited for the database.
	Duration time.Duration
	// Attempts is how many times the transaction ran: 1, plus one per serialization failure or deadlock
	// that was retried. It is 0 when ctx was done before the first attempt began.
	Attempts int
	// Err is nil when the transaction committed. Otherwise it is what the caller got: a refused write
	// (metadata.ErrNotFound, ErrInvalid, …), ErrContended after the last attempt, metadata.ErrUnavailable
	// when the database could not be reached, or ctx's error.
	Err error
}

// WithTxObserver has fn called after every transaction the store runs (see TxStats), on the goroutine
// that ran it, so that a server can expose transaction latency, retries and failures (metrics) without
// the store knowing how. Reads of one statement run outside a transaction and are not observed. fn must
// be quick: the caller waits for it.
func WithTxObserver(fn func(TxStats)) Option { return func(cfg *config) { cfg.observe = fn } }

// Option configures Open.
type Option func(*config)

// WithClock replaces time.Now as the source of CreatedAt, UpdatedAt and default start times.
func WithClock(c metadata.Clock) Option {
	return func(cfg *config) {
		if c != nil {
			cfg.clock = c
		}
	}
}

// WithLogger receives migration progress. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) {
		if l != nil {
			cfg.log = l
		}
	}
}

// WithMaxAttempts sets how many times a transaction runs at most when it fails to serialize or deadlocks
// (default DefaultMaxAttempts); values below 1 keep the default.
func WithMaxAttempts(n int) Option {
	return func(cfg *config) {
		if n >= 1 {
			cfg.maxAttempts = n
		}
	}
}

// WithMaxConns bounds the connection pool (default: pgxpool's, or pool_max_conns in the DSN).
func WithMaxConns(n int32) Option {
	return func(cfg *config) {
		if n >= 1 {
			cfg.maxConns = n
		}
	}
}

// Open connects to the database at dsn (a postgres:// URL or key=value string, as libpq reads it) and
// runs pending migrations, each in its own transaction, under an advisory lock so that replicas starting
// together migrate once. It returns an error wrapping metadata.ErrTooNew, naming both versions, if the
// database was migrated by a newer binary. When no migration is pending, Open writes nothing.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	return open(ctx, dsn, migrations, opts...)
}

// open is Open with the migrations to apply: tests stop at each version.
func open(ctx context.Context, dsn string, ms []migration, opts ...Option) (*Store, error) {
	cfg := config{clock: time.Now, log: slog.New(slog.DiscardHandler), maxAttempts: DefaultMaxAttempts}
	for _, o := range opts {
		o(&cfg)
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: name no part of it.
		return nil, fmt.Errorf("pgstore: parse the DSN: %w", err)
	}
	if cfg.maxConns > 0 {
		pcfg.MaxConns = cfg.maxConns
	}
	where := fmt.Sprintf("%s:%d/%s", pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect to %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: connect to %s: %w", where, err)
	}
	s := &Store{pool: pool, clock: cfg.clock, log: cfg.log, maxAttempts: cfg.maxAttempts, observe: cfg.observe}
	if err := s.migrate(ctx, ms); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgstore: %s: %w", where, err)
	}
	return s, nil
}

// Stat is a snapshot of the connection pool's statistics (connections acquired, idle and in total,
// waits for a connection), for metrics.
func (s *Store) Stat() *pgxpool.Stat { return s.pool.Stat() }

// Close closes the pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// now is the store's time at millisecond precision, as boltstore's: MLflow speaks milliseconds.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Millisecond) }

// txState is the transaction an Update carries in its context.
type txState struct {
	store  *Store
	tx     pgx.Tx
	failed error // the first failure of a method inside the transaction
}

type txKey struct{}

// txOf returns the transaction of this store that ctx carries, if any.
func (s *Store) txOf(ctx context.Context) *txState {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.store == s {
		return st
	}
	return nil
}

// Update implements metadata.Store. fn runs in a SERIALIZABLE transaction; when the commit (or any
// statement) fails to serialize or deadlocks, the transaction is rolled back and fn runs again, up to the
// store's attempt limit, after a short random pause that grows with each attempt so that the writers that
// collided do not collide again. A ctx that already carries a transaction joins it.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.txOf(ctx) != nil {
		return fn(ctx) // nested: part of the enclosing transaction
	}
	return s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(st *txState) error {
		if err := fn(context.WithValue(ctx, txKey{}, st)); err != nil {
			return err
		}
		if st.failed != nil {
			return fmt.Errorf("a write inside the transaction failed, so none of it is kept: %w", st.failed)
		}
		return nil
	})
}

// update runs fn in a write transaction of its own, retried as Update's are, or in the transaction ctx
// carries. An error fails that transaction, as metadata.Store requires, even when the caller's fn goes on.
func (s *Store) update(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		err := fn(st.tx)
		if err != nil && st.failed == nil {
			st.failed = err
		}
		return err
	}
	return s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(st *txState) error { return fn(st.tx) })
}

// view runs fn in a read-only REPEATABLE READ transaction, so that its several statements see one
// snapshot (a read-only transaction at that level never fails to serialize), or in the transaction ctx
// carries. A database error inside that transaction fails it: PostgreSQL has aborted it anyway.
func (s *Store) view(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		err := fn(st.tx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && st.failed == nil {
			st.failed = err
		}
		return err
	}
	return s.inTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(st *txState) error { return fn(st.tx) })
}

// queryer sends one statement: a pgx.Tx, or the pool outside a transaction.
type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// viewOne runs fn, which reads with exactly one statement, on the pool outside an explicit transaction,
// or in the transaction ctx carries, with view's error rules. One statement sees one snapshot of its own,
// so it needs no BEGIN and COMMIT: two round trips fewer than view, on lookups that most requests make
// (the run and model of every MLflow call, the token of every authenticated one, the versions of each
// logged model a search returns).
func (s *Store) viewOne(ctx context.Context, fn func(q queryer) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		err := fn(st.tx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && st.failed == nil {
			st.failed = err
		}
		return err
	}
	return mapErr(fn(s.pool))
}

// viewBatch runs the queries that queue puts in a batch, each with the function that reads its result, as
// view runs fn: in a read-only REPEATABLE READ transaction of their own, or in the transaction ctx
// carries. The batch, the BEGIN and the COMMIT go to the server in one round trip, where view's
// statements take one each: a read made of several small queries (RunData's seven) costs about one
// query's latency. A read function's error stops the reading, and is returned.
func (s *Store) viewBatch(ctx context.Context, queue func(b *pgx.Batch)) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	if st := s.txOf(ctx); st != nil {
		queue(b)
		err := st.tx.SendBatch(ctx, b).Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && st.failed == nil {
			st.failed = err
		}
		return err
	}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY`)
	queue(b)
	b.Queue(`COMMIT`)
	if s.observe != nil {
		start := time.Now()
		defer func() { s.observe(TxStats{ReadOnly: true, Duration: time.Since(start), Attempts: 1, Err: err}) }()
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Release()
	err = conn.SendBatch(ctx, b).Close()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// A statement failed, or a read function stopped the batch before its COMMIT: end the transaction
		// before the connection goes back to the pool. A failure here leaves the connection broken, which
		// the pool then discards.
		_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
	}
	err = mapErr(err)
	return err
}

// updateBatch runs the statements that queue puts in a batch as one SERIALIZABLE write transaction whose
// BEGIN, statements and COMMIT go to the server in one round trip (update's take one each), retried as
// inTx retries, or in the transaction ctx carries. It is for writes that need no answer between their
// statements: a LogBatch of points only is BEGIN, one INSERT, COMMIT, at a third of the latency.
func (s *Store) updateBatch(ctx context.Context, queue func(b *pgx.Batch)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		b := &pgx.Batch{}
		queue(b)
		err := st.tx.SendBatch(ctx, b).Close()
		if err != nil && st.failed == nil {
			st.failed = err
		}
		return err
	}
	return s.retried(ctx, false, func() error {
		b := &pgx.Batch{}
		b.Queue(`BEGIN ISOLATION LEVEL SERIALIZABLE`)
		queue(b)
		b.Queue(`COMMIT`)
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		err = conn.SendBatch(ctx, b).Close()
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			// A statement failed: the transaction is aborted and waits for its end. A failure of this
			// ROLLBACK leaves the connection broken, which the pool then discards.
			_, _ = conn.Exec(context.WithoutCancel(ctx), `ROLLBACK`)
		}
		return err
	})
}

// refuse returns err, a write refused before it touched the database, and fails the transaction ctx
// carries with it as update does.
func (s *Store) refuse(ctx context.Context, err error) error {
	if st := s.txOf(ctx); st != nil && st.failed == nil {
		st.failed = err
	}
	return err
}

// inTx runs fn in a new transaction and commits it, retrying the whole of it on serialization failures
// and deadlocks.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(st *txState) error) (err error) {
	return s.retried(ctx, opts.AccessMode == pgx.ReadOnly, func() error { return s.attempt(ctx, opts, fn) })
}

// retried runs once, one attempt of a whole transaction, until it succeeds or fails otherwise than by a
// serialization failure or a deadlock, at most maxAttempts times, and reports it to the observer.
func (s *Store) retried(ctx context.Context, readOnly bool, once func() error) (err error) {
	attempts := 0
	if s.observe != nil {
		start := time.Now()
		defer func() {
			s.observe(TxStats{ReadOnly: readOnly, Duration: time.Since(start), Attempts: attempts, Err: err})
		}()
	}
	for attempt := 0; attempt < s.maxAttempts; attempt++ {
		if attempt > 0 {
			// Full jitter over an exponential window (1 ms … 64 ms): colliding writers spread out.
			window := time.Millisecond << min(attempt-1, 6)
			t := time.NewTimer(rand.N(window) + time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		attempts++
		err = once()
		if !retryable(err) {
			return mapErr(err)
		}
	}
	return fmt.Errorf("%w: %d attempts, the last failed with: %w", ErrContended, s.maxAttempts, err)
}

func (s *Store) attempt(ctx context.Context, opts pgx.TxOptions, fn func(st *txState) error) (err error) {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The rollback's own error adds nothing: the transaction is gone either way.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	st := &txState{store: s, tx: tx}
	if err := fn(st); err != nil {
		if st.failed != nil && retryable(st.failed) {
			return st.failed // the caller's fn may have wrapped or replaced it; the retry is what matters
		}
		return err
	}
	return tx.Commit(ctx)
}

// unreachable reports a failure to reach the database, as opposed to a failure of a statement: no
// connection could be made, or the one in use broke.
func unreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var connect *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connect) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
}

// retryable reports a failure to serialize (40001) or a deadlock (40P01): the transaction did nothing
// wrong and may succeed when run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// mapErr adds the metadata sentinels to database errors the callers must tell apart. A database that
// cannot be reached, or that drops the connection or is shutting down, is metadata.ErrUnavailable: the
// call may succeed shortly, and the gateway answers 503 with Retry-After rather than 500.
func mapErr(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if unreachable(err) {
			return fmt.Errorf("%w: %w", metadata.ErrUnavailable, err)
		}
		return err
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "08"), // connection exception
		pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, crash, cannot connect now
		return fmt.Errorf("%w: %w", metadata.ErrUnavailable, err)
	case pgErr.Code == "23505": // unique_violation: a concurrent writer took the name first
		return fmt.Errorf("%s: %w", pgErr.ConstraintName, metadata.ErrExists)
	case pgErr.Code == "23503": // foreign_key_violation: the row a write refers to does not exist
		return fmt.Errorf("%s: %w", pgErr.ConstraintName, metadata.ErrNotFound)
	case pgErr.Code == "53100": // disk_full
		return fmt.Errorf("%w: %w", metadata.ErrInsufficientStorage, err)
	}
	return err
}

// nextCounter increments the counter (scope, key), creating it at 1, and returns the number to issue.
// The row stays locked until the transaction ends, so concurrent writers take numbers one after the
// other, and a rolled-back transaction's number is issued again.
func nextCounter(ctx context.Context, tx pgx.Tx, scope string, key int64) (int64, error) {
	var v int64
	err := tx.QueryRow(ctx, `INSERT INTO counters (scope, key, value) VALUES ($1, $2, 1)
		ON CONFLICT (scope, key) DO UPDATE SET value = counters.value + 1 RETURNING value`, scope, key).Scan(&v)
	return v, err
}

// raiseCounter moves the counter up to v when it is below, so that a number taken out of turn (an
// import's preset iid or seq) is never issued later.
func raiseCounter(ctx context.Context, tx pgx.Tx, scope string, key, v int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO counters (scope, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (scope, key) DO UPDATE SET value = GREATEST(counters.value, EXCLUDED.value)`, scope, key, v)
	return err
}

// Counter scopes.
const (
	counterProject      = "project"       // key 0
	counterModelIID     = "model_iid"     // key: project id
	counterCandidateIID = "candidate_iid" // key: project id
	counterVersionSeq   = "version_seq"   // key: model id
	counterVersionID    = "version_id"    // key: project id
)

// defaultModelDisplayName is the display name of each project's default model, MLflow's experiment "0"
// (boltstore.DefaultModelDisplayName).
const defaultModelDisplayName = "Default"

// presetTime is t as the store keeps a caller's time (UTC, millisecond precision), or now when t is zero.
func presetTime(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t.UTC().Truncate(time.Millisecond)
}

// exactlyOne reports whether exactly one of the selectors is set.
func exactlyOne(set ...bool) bool {
	n := 0
	for _, s := range set {
		if s {
			n++
		}
	}
	return n == 1
}

// notFound turns pgx.ErrNoRows into metadata.ErrNotFound with what, and leaves other errors alone.
func notFound(err error, what string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf(what+": %w", append(args, metadata.ErrNotFound)...)
	}
	return err
}

func isNotFound(err error) bool { return errors.Is(err, metadata.ErrNotFound) }
