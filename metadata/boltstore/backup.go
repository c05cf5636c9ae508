package boltstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNotAStore is returned by CheckBackup for a file that is not an mlgate database: not a bbolt file, or
// one without mlgate's schema version.
var ErrNotAStore = errors.New("not an mlgate metadata database")

var _ metadata.Snapshotter = (*Store)(nil)

// Snapshot pins a bbolt read transaction: its WriteTo is bbolt's transactional copy (tx.WriteTo), a
// consistent image of the database as of the moment Snapshot was called, while writes go on. While a
// snapshot is open, bbolt cannot reuse the pages it sees (the file may grow by what is written meanwhile),
// and a commit that must grow the memory map waits for it to close: close it as soon as it is written.
// Errors: the store is closed, or ctx is done.
func (s *Store) Snapshot(ctx context.Context) (metadata.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tx, err := s.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("boltstore: snapshot: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct {
	tx   *bolt.Tx
	db   *bolt.DB // closed with the snapshot when OpenSnapshot opened it
	once sync.Once
}

func (sn *snapshot) Size() int64 { return sn.tx.Size() }

func (sn *snapshot) WriteTo(w io.Writer) (int64, error) { return sn.tx.WriteTo(w) }

func (sn *snapshot) Close() error {
	var err error
	sn.once.Do(func() {
		err = sn.tx.Rollback()
		if sn.db != nil {
			err = errors.Join(err, sn.db.Close())
		}
	})
	return err
}

// BackupInfo describes a database file CheckBackup accepted.
type BackupInfo struct {
	Version uint64 // its schema version (db_version); Open migrates an older one
	Size    int64
}

// CheckBackup checks that the file at path is a whole mlgate database this binary can open: a bbolt
// file as long as its header says, whose pages are all reachable and well formed, with mlgate's schema
// at a version this binary knows. With indexes, it also checks that records and indexes agree (Verify
// at the current version, the buckets of each migration at an older one): that reads every record,
// about 10 s for 100 000 runs where the rest takes a fraction of a second. It opens the file read-only
// and changes nothing. Errors wrap ErrNotAStore for a file that is not an mlgate
// database, metadata.ErrTooNew for one written by a newer mlgate, ErrCorrupt for a damaged one, and
// ErrLocked when another process holds it.
func CheckBackup(ctx context.Context, path string, indexes bool) (info BackupInfo, err error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultTimeout})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return BackupInfo{}, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return BackupInfo{}, fmt.Errorf("%s: %v: %w", path, err, ErrNotAStore)
	}
	defer db.Close()
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, err
	}
	// bbolt asserts (panics) on a page that is not what its parent says: in a file under test, that is
	// a corrupt file, not a bug of this process.
	defer func() {
		if p := recover(); p != nil {
			info, err = BackupInfo{}, fmt.Errorf("%s: %v: %w", path, p, ErrCorrupt)
		}
	}()
	err = db.View(func(tx *bolt.Tx) error {
		info.Size = tx.Size()
		// bbolt trusts its meta page: pages past the end of a cut file would fault when read.
		if st.Size() < info.Size {
			return fmt.Errorf("the file has %d bytes, its header says %d: it was cut short: %w", st.Size(), info.Size, ErrCorrupt)
		}
		ver, err := readDBVersion(tx)
		if err != nil {
			return err
		}
		if ver == 0 {
			return fmt.Errorf("no schema version: %w", ErrNotAStore)
		}
		if ver > knownVersion() {
			return fmt.Errorf("schema version %d, this binary knows up to %d; restore it with a newer mlgate: %w",
				ver, knownVersion(), metadata.ErrTooNew)
		}
		info.Version = ver
		for cerr := range tx.Check() {
			return fmt.Errorf("bbolt check: %v: %w", cerr, ErrCorrupt)
		}
		if !indexes {
			return nil
		}
		if ver == knownVersion() {
			return verifyTx(ctx, tx)
		}
		for _, m := range migrations {
			if m.version <= ver {
				if err := m.verify(tx); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%s: %w", path, err)
	}
	return info, nil
}

// backupOpenTimeout is how long OpenSnapshot waits for the lock: a running server holds it for good.
const backupOpenTimeout = 2 * time.Second

// OpenSnapshot opens the database at path read-only and pins a snapshot of it, for an offline backup
// when no server holds it; closing the snapshot closes the database. The error wraps ErrLocked when a
// process (a running server) holds the database, ErrNotAStore when path is not a bbolt file.
func OpenSnapshot(path string) (metadata.Snapshot, error) {
	bo := *bolt.DefaultOptions
	bo.Timeout = backupOpenTimeout
	bo.ReadOnly = true
	db, err := bolt.Open(path, 0o600, &bo)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: open %s: no lock after %s; a running server holds it (back it up through the server with --url): %w",
			path, backupOpenTimeout, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	tx, err := db.Begin(false)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("boltstore: snapshot %s: %w", path, err)
	}
	return &snapshot{tx: tx, db: db}, nil
}
