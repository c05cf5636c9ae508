package boltstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is the bbolt implementation of metadata.Store. It is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	writes *commitQueue // every write transaction goes through it
	clock  metadata.Clock
	log    *slog.Logger
}

var _ metadata.Store = (*Store)(nil)

var (
	// ErrLocked is returned by Open when another process (typically a running mlgate server) holds the
	// database file's lock for longer than the open timeout.
	ErrLocked = errors.New("database is locked by another process")
	// ErrCorrupt is returned by Verify, and by methods that meet undecodable data, when records and indexes
	// disagree.
	ErrCorrupt = errors.New("database is inconsistent")
)

// DefaultTimeout is how long Open waits for the file lock unless WithTimeout says otherwise.
const DefaultTimeout = time.Second

type config struct {
	clock    metadata.Clock
	timeout  time.Duration
	log      *slog.Logger
	noSync   bool
	maxGroup int
	rehearse bool
	observe  func(CommitStats)
}

// CommitStats describes one commit of the group commit: how long the bbolt transaction took, fsyncs
// included, and how many writes it held.
type CommitStats struct {
	Duration time.Duration
	Writes   int
	Err      error // nil for a commit that went through
}

// WithCommitObserver has fn called after every commit attempt, on the goroutine that committed it, so
// that a server can expose commit latency and group sizes (metrics) without the store knowing how. fn
// must be quick: writes queue behind it.
func WithCommitObserver(fn func(CommitStats)) Option { return func(cfg *config) { cfg.observe = fn } }

// WithoutSync skips fsync on commit. Only for bulk loads by tools, such as seeding a benchmark: a crash
// can lose or corrupt recent transactions. mlgate serve never uses it.
func WithoutSync() Option { return func(cfg *config) { cfg.noSync = true } }

// WithMaxGroup sets how many concurrent writes one commit takes at most (default DefaultMaxGroup); 1
// commits every write alone. Values below 1 keep the default.
func WithMaxGroup(n int) Option {
	return func(cfg *config) {
		if n >= 1 {
			cfg.maxGroup = n
		}
	}
}

// WithRehearsal is for tests: every commit attempt first runs its writes in a transaction that is rolled
// back, then runs them again for real. A write that keeps state across runs (appends to a caller's slice,
// keeps a value it derived from the store the first time) then shows, as it would when a group commit runs
// it again after another write of the group failed. Every write costs twice as much.
func WithRehearsal() Option { return func(cfg *config) { cfg.rehearse = true } }

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

// WithTimeout sets how long Open waits for the file lock (default DefaultTimeout). As in bbolt, 0 waits
// forever.
func WithTimeout(d time.Duration) Option { return func(cfg *config) { cfg.timeout = d } }

// WithLogger receives migration progress. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) {
		if l != nil {
			cfg.log = l
		}
	}
}

// Open opens or creates the database at path and runs pending migrations, each in its own transaction.
// It returns an error wrapping ErrLocked if another process holds the file past the timeout, and one
// wrapping metadata.ErrTooNew if the file was migrated by a newer binary. When no migration is pending, Open
// writes nothing.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{clock: time.Now, timeout: DefaultTimeout, log: slog.New(slog.DiscardHandler), maxGroup: DefaultMaxGroup}
	for _, o := range opts {
		o(&cfg)
	}
	bo := *bolt.DefaultOptions // keep bbolt's durable defaults; only the lock wait changes
	bo.Timeout = cfg.timeout
	bo.NoSync = cfg.noSync
	db, err := bolt.Open(path, 0o600, &bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: no lock after %s; is another mlgate (a running server?) using it: %w",
			path, cfg.timeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	if err := runMigrations(db, migrations, cfg.log); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	return &Store{db: db, writes: newCommitQueue(db, cfg.maxGroup, cfg.rehearse, cfg.observe), clock: cfg.clock, log: cfg.log}, nil
}

// Close closes the database. Writes already submitted are finished first (committed, or failed as they
// would have), and running read transactions too; writes submitted from then on fail with an error
// wrapping bbolt's ErrDatabaseNotOpen.
func (s *Store) Close() error {
	s.writes.close()
	return s.db.Close()
}

// now is the store's time at millisecond precision: MLflow speaks milliseconds, and a time that survives a
// JSON round trip unchanged keeps records comparable.
func (s *Store) now() time.Time { return s.clock().UTC().Truncate(time.Millisecond) }

// view runs fn in a read transaction, or in the transaction of an Update that ctx carries.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		return fn(st.tx)
	}
	return s.db.View(fn)
}

// update runs fn in a write transaction, or joins the transaction of an Update that ctx carries. The
// transaction may be shared with concurrent writes (the commit queue groups them, to share the fsyncs), and
// nil means it committed, fsync included. fn runs once per commit attempt, and runs again only when an
// attempt was rolled back: because another write of its group failed (fn then sees the same state again),
// or because the commit itself failed (each write is then tried alone). So fn must rebuild, on every run,
// everything it fills in (caller structs, slices it appends to, values it derives from the store), which
// every write of this package does and TestContractRehearsed checks.
func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if st := s.txOf(ctx); st != nil {
		err := fn(st.tx)
		if err != nil && st.failed == nil {
			// fn may have written part of its work before failing; only a rollback undoes that, so the
			// whole transaction must fail even if the caller's fn carries on.
			st.failed = err
		}
		return err
	}
	return s.writes.submit(ctx, fn)
}

// refuse returns err, a write refused before it touched the store, and fails the transaction ctx carries
// with it as update does: the importer's entity and its journal record must commit together or not at all,
// even when fn ignores the error.
func (s *Store) refuse(ctx context.Context, err error) error {
	if st := s.txOf(ctx); st != nil && st.failed == nil {
		st.failed = err
	}
	return err
}

// storageFull marks a commit that failed for lack of space with metadata.ErrInsufficientStorage, so that
// callers can tell a full disk (free space and retry) from a broken store. bbolt rolls such a
// transaction back whole, and the database stays readable. Some of bbolt's I/O errors (a failed file
// resize or sync) keep only the errno's text, hence the fallback on the message.
func storageFull(err error) error {
	if err == nil || errors.Is(err, metadata.ErrInsufficientStorage) {
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error()) {
		return fmt.Errorf("%w: %w", metadata.ErrInsufficientStorage, err)
	}
	return err
}

// txState is the write transaction an Update carries in its context.
type txState struct {
	store  *Store
	tx     *bolt.Tx
	failed error // the first failure of a write method inside the transaction
}

type txKey struct{}

// txOf returns the transaction of this store that ctx carries, if any.
func (s *Store) txOf(ctx context.Context) *txState {
	if st, ok := ctx.Value(txKey{}).(*txState); ok && st.store == s {
		return st
	}
	return nil
}

// Update implements metadata.Store. bbolt has one writer at a time, so concurrent Updates (and every other
// write) run one after the other, and several may share one commit. fn runs once per commit attempt; as
// metadata.Store allows, it runs again only when an attempt is rolled back because another write grouped
// with it failed, or because the shared commit failed (see update).
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.txOf(ctx) != nil {
		return fn(ctx) // nested: part of the enclosing transaction
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		st := &txState{store: s, tx: tx}
		if err := fn(context.WithValue(ctx, txKey{}, st)); err != nil {
			return err
		}
		if st.failed != nil {
			return fmt.Errorf("a write inside the transaction failed, so none of it is kept: %w", st.failed)
		}
		return nil
	})
}

// getJSON decodes the record at k into v. Decoding copies, so v stays valid after the transaction.
func getJSON(b *bolt.Bucket, k []byte, v any) (bool, error) {
	data := b.Get(k)
	if data == nil {
		return false, nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("record %x: %v: %w", k, err, ErrCorrupt)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, k []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(k, data)
}

// getU64 reads an 8-byte value; ok is false if the key is absent.
func getU64(b *bolt.Bucket, k []byte) (v uint64, ok bool, err error) {
	data := b.Get(k)
	if data == nil {
		return 0, false, nil
	}
	if len(data) != 8 {
		return 0, false, fmt.Errorf("value of %x: %d bytes, want 8: %w", k, len(data), ErrCorrupt)
	}
	return decodeU64(data), true, nil
}

// nextCounter increments the counter at k and returns the new value, the number to issue.
func nextCounter(tx *bolt.Tx, k []byte) (int64, error) {
	b := bk(tx, bucketCounters)
	last, _, err := getU64(b, k)
	if err != nil {
		return 0, err
	}
	last++
	return int64(last), b.Put(k, idKey(last))
}

// raiseCounter moves the counter at k up to v when it is below, so that a number taken out of turn (an
// import's preset iid or seq) is never issued by nextCounter later.
func raiseCounter(tx *bolt.Tx, k []byte, v int64) error {
	b := bk(tx, bucketCounters)
	last, _, err := getU64(b, k)
	if err != nil || int64(last) >= v {
		return err
	}
	return b.Put(k, idKey(uint64(v)))
}

// presetTime is t as the store keeps a caller's time (UTC, millisecond precision, like now), or now when t
// is zero.
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

// lookup is Get that tells an empty value from an absent key: Get returns nil for both, and index entries
// and parameters may have empty values.
func lookup(b *bolt.Bucket, k []byte) ([]byte, bool) {
	ck, v := b.Cursor().Seek(k)
	return v, ck != nil && bytes.Equal(ck, k)
}
