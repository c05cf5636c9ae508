package boltstore

import (
	"encoding/binary"
	"fmt"
	"log/slog"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// migration moves the layout from version-1 to version. migrate and verify run in the same write
// transaction, so a failed verify rolls the migration back. A migration must be idempotent: a crash before
// the commit means it runs again on the next Open. One that must rewrite much data would instead run in
// batches with a checkpoint in meta; none does yet.
type migration struct {
	version uint64
	name    string
	migrate func(*bolt.Tx) error
	verify  func(*bolt.Tx) error
}

// migrations is ordered by version, starting at 1, without gaps. Every entry needs a case in
// migrations_test.go; the test fails otherwise.
var migrations = []migration{
	{version: 1, name: "initial layout", migrate: migrate1, verify: verify1},
	{version: 2, name: "aliases bucket", migrate: migrate2, verify: verify2},
	{version: 3, name: "token buckets", migrate: migrate3, verify: verify3},
	{version: 4, name: "logged models, datasets and run inputs/outputs", migrate: migrate4, verify: verify4},
	{version: 5, name: "import journal", migrate: migrate5, verify: verify5},
	{version: 6, name: "instance settings", migrate: migrate6, verify: verify6},
}

// knownVersion is the newest db_version this binary understands.
func knownVersion() uint64 { return migrations[len(migrations)-1].version }

// v1Buckets is frozen: it is what migration 1 creates, whatever later migrations add.
var v1Buckets = []string{
	"counters", "projects", "projects_by_path",
	"models", "models_by_name", "models_by_display", "models_by_iid",
	"candidates", "candidates_by_eid", "candidates_by_iid", "candidates_by_model",
	"params", "tags", "metrics", "metrics_latest", "candidates_by_metric",
	"versions", "versions_by_id", "versions_by_semver", "versions_order", "versions_by_candidate",
	"files",
}

func migrate1(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketMeta); err != nil {
		return err
	}
	root, err := tx.CreateBucketIfNotExists(bucketRoot)
	if err != nil {
		return err
	}
	for _, name := range v1Buckets {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

func verify1(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		return fmt.Errorf("bucket meta missing: %w", ErrCorrupt)
	}
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range v1Buckets {
		if root.Bucket([]byte(name)) == nil {
			return fmt.Errorf("bucket v1/%s missing: %w", name, ErrCorrupt)
		}
	}
	return nil
}

// v2Buckets is frozen: it is what migration 2 adds to v1.
var v2Buckets = []string{"aliases"}

func migrate2(tx *bolt.Tx) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range v2Buckets {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

func verify2(tx *bolt.Tx) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range v2Buckets {
		if root.Bucket([]byte(name)) == nil {
			return fmt.Errorf("bucket v1/%s missing: %w", name, ErrCorrupt)
		}
	}
	return nil
}

// v3Buckets is frozen: it is what migration 3 adds to v1.
var v3Buckets = []string{"tokens", "tokens_by_hash"}

func migrate3(tx *bolt.Tx) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range v3Buckets {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

func verify3(tx *bolt.Tx) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range v3Buckets {
		if root.Bucket([]byte(name)) == nil {
			return fmt.Errorf("bucket v1/%s missing: %w", name, ErrCorrupt)
		}
	}
	return nil
}

// v4Buckets is frozen: it is what migration 4 adds to v1.
var v4Buckets = []string{
	"logged_models", "logged_models_by_lmid", "logged_models_by_model",
	"lm_metrics", "lm_metrics_latest", "lms_by_metric",
	"datasets", "dataset_contexts", "run_io",
}

func migrate4(tx *bolt.Tx) error { return addBuckets(tx, v4Buckets) }

func verify4(tx *bolt.Tx) error { return hasBuckets(tx, v4Buckets) }

// v5Buckets is frozen: it is what migration 5 adds to v1.
var v5Buckets = []string{"imports"}

func migrate5(tx *bolt.Tx) error { return addBuckets(tx, v5Buckets) }

func verify5(tx *bolt.Tx) error { return hasBuckets(tx, v5Buckets) }

// v6Buckets is frozen: it is what migration 6 adds to v1. The signing secret is not drawn here but by the
// first SigningKey call, as in any store.
var v6Buckets = []string{"settings"}

func migrate6(tx *bolt.Tx) error { return addBuckets(tx, v6Buckets) }

func verify6(tx *bolt.Tx) error { return hasBuckets(tx, v6Buckets) }

// addBuckets creates names under v1, leaving existing buckets and data alone.
func addBuckets(tx *bolt.Tx, names []string) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range names {
		if _, err := root.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	return nil
}

// hasBuckets checks that names exist under v1.
func hasBuckets(tx *bolt.Tx, names []string) error {
	root := tx.Bucket(bucketRoot)
	if root == nil {
		return fmt.Errorf("bucket v1 missing: %w", ErrCorrupt)
	}
	for _, name := range names {
		if root.Bucket([]byte(name)) == nil {
			return fmt.Errorf("bucket v1/%s missing: %w", name, ErrCorrupt)
		}
	}
	return nil
}

// readDBVersion returns 0 for a database without meta (new, or never migrated).
func readDBVersion(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	data := meta.Get(keyDBVersion)
	if data == nil {
		return 0, nil
	}
	v, n := binary.Uvarint(data)
	if n != len(data) {
		return 0, fmt.Errorf("meta/db_version %x is not a uvarint: %w", data, ErrCorrupt)
	}
	return v, nil
}

func writeDBVersion(tx *bolt.Tx, v uint64) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return meta.Put(keyDBVersion, binary.AppendUvarint(nil, v))
}

// runMigrations applies the pending entries of ms, each in one Update. Reading the version is a View, so an
// up-to-date database sees no commit at all.
func runMigrations(db *bolt.DB, ms []migration, log *slog.Logger) error {
	var current uint64
	if err := db.View(func(tx *bolt.Tx) (err error) {
		current, err = readDBVersion(tx)
		return err
	}); err != nil {
		return err
	}
	known := ms[len(ms)-1].version
	if current > known {
		return fmt.Errorf("database is at schema version %d, this binary knows up to %d; upgrade mlgate: %w",
			current, known, metadata.ErrTooNew)
	}
	for _, m := range ms {
		if m.version <= current {
			continue
		}
		err := db.Update(func(tx *bolt.Tx) error {
			if err := m.migrate(tx); err != nil {
				return err
			}
			if err := m.verify(tx); err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			return writeDBVersion(tx, m.version)
		})
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		log.Info("boltstore: migrated", "version", m.version, "name", m.name)
	}
	return nil
}
