package boltstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// migrationCase tests one migration. The harness applies every earlier migration, then setup writes data in
// the old layout, then the migration runs, then its verify and check.
type migrationCase struct {
	setup func(t *testing.T, db *bolt.DB)
	check func(t *testing.T, db *bolt.DB)
}

// migrationCases needs an entry for every migration; TestEveryMigrationHasACase fails otherwise.
var migrationCases = map[uint64]migrationCase{
	1: {
		setup: func(*testing.T, *bolt.DB) {}, // the old layout of migration 1 is an empty file
		check: func(t *testing.T, db *bolt.DB) {
			err := db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if n != len(v1Buckets) {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, len(v1Buckets))
				}
				return err
			})
			if err != nil {
				t.Error(err)
			}
		},
	},
	2: {
		// A v1 database with a model record: the migration only adds the empty aliases bucket and must
		// leave existing data alone.
		setup: func(t *testing.T, db *bolt.DB) {
			must(t, db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketRoot).Bucket(bucketModels).Put(idKey(1), []byte(`{"id":1}`))
			}))
		},
		check: func(t *testing.T, db *bolt.DB) {
			must(t, db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				a := root.Bucket(bucketAliases)
				if a == nil {
					return errors.New("aliases bucket missing")
				}
				if k, _ := a.Cursor().First(); k != nil {
					return fmt.Errorf("aliases bucket not empty: %x", k)
				}
				if got := root.Bucket(bucketModels).Get(idKey(1)); string(got) != `{"id":1}` {
					return fmt.Errorf("model record is now %q", got)
				}
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if n != len(v1Buckets)+len(v2Buckets) {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, len(v1Buckets)+len(v2Buckets))
				}
				return err
			}))
		},
	},
	3: {
		// A v2 database with a project and an alias: the migration only adds the two empty token buckets.
		setup: func(t *testing.T, db *bolt.DB) {
			must(t, db.Update(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				if err := root.Bucket(bucketProjects).Put(idKey(1), []byte(`{"id":1,"path":"p"}`)); err != nil {
					return err
				}
				return root.Bucket(bucketAliases).Put(idStrKey(1, "champion"), idKey(1))
			}))
		},
		check: func(t *testing.T, db *bolt.DB) {
			must(t, db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				for _, name := range [][]byte{bucketTokens, bucketTokensByHash} {
					b := root.Bucket(name)
					if b == nil {
						return fmt.Errorf("%s bucket missing", name)
					}
					if k, _ := b.Cursor().First(); k != nil {
						return fmt.Errorf("%s bucket not empty: %x", name, k)
					}
				}
				if got := root.Bucket(bucketProjects).Get(idKey(1)); string(got) != `{"id":1,"path":"p"}` {
					return fmt.Errorf("project record is now %q", got)
				}
				if got := root.Bucket(bucketAliases).Get(idStrKey(1, "champion")); len(got) != 8 || decodeU64(got) != 1 {
					return fmt.Errorf("alias is now %x", got)
				}
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if want := len(v1Buckets) + len(v2Buckets) + len(v3Buckets); n != want {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, want)
				}
				return err
			}))
		},
	},
	4: {
		// A v3 database with a candidate, a metric point in the history and a file: the migration adds
		// empty buckets for logged models, datasets and run inputs/outputs; the old points keep their
		// empty values, which mean "no logged model, no dataset".
		setup: func(t *testing.T, db *bolt.DB) {
			must(t, db.Update(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				if err := root.Bucket(bucketCandidates).Put(idKey(7), []byte(`{"id":7}`)); err != nil {
					return err
				}
				if err := root.Bucket(bucketMetrics).Put(metricKey(7, latestMetric{key: "loss", step: 1, ts: 2, value: 0.5}), nil); err != nil {
					return err
				}
				return root.Bucket(bucketFiles).Put(idStrKey(7, "model.bin"), []byte(`{"candidate_id":7}`))
			}))
		},
		check: func(t *testing.T, db *bolt.DB) {
			must(t, db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				for _, name := range v4Buckets {
					b := root.Bucket([]byte(name))
					if b == nil {
						return fmt.Errorf("%s bucket missing", name)
					}
					if k, _ := b.Cursor().First(); k != nil {
						return fmt.Errorf("%s bucket not empty: %x", name, k)
					}
				}
				if got := root.Bucket(bucketCandidates).Get(idKey(7)); string(got) != `{"id":7}` {
					return fmt.Errorf("candidate record is now %q", got)
				}
				if v, ok := lookup(root.Bucket(bucketMetrics), metricKey(7, latestMetric{key: "loss", step: 1, ts: 2, value: 0.5})); !ok || len(v) != 0 {
					return fmt.Errorf("history point is now %q (present %v)", v, ok)
				}
				if got := root.Bucket(bucketFiles).Get(idStrKey(7, "model.bin")); string(got) != `{"candidate_id":7}` {
					return fmt.Errorf("file row is now %q", got)
				}
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if want := len(v1Buckets) + len(v2Buckets) + len(v3Buckets) + len(v4Buckets); n != want {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, want)
				}
				return err
			}))
		},
	},
	5: {
		// A v4 database with a model and a logged model: the migration only adds the empty import journal.
		setup: func(t *testing.T, db *bolt.DB) {
			must(t, db.Update(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				if err := root.Bucket(bucketModels).Put(idKey(1), []byte(`{"id":1}`)); err != nil {
					return err
				}
				return root.Bucket(bucketLoggedModels).Put(idKey(2), []byte(`{"id":2,"model_id":1}`))
			}))
		},
		check: func(t *testing.T, db *bolt.DB) {
			must(t, db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				b := root.Bucket(bucketImports)
				if b == nil {
					return errors.New("imports bucket missing")
				}
				if k, _ := b.Cursor().First(); k != nil {
					return fmt.Errorf("imports bucket not empty: %x", k)
				}
				if got := root.Bucket(bucketModels).Get(idKey(1)); string(got) != `{"id":1}` {
					return fmt.Errorf("model record is now %q", got)
				}
				if got := root.Bucket(bucketLoggedModels).Get(idKey(2)); string(got) != `{"id":2,"model_id":1}` {
					return fmt.Errorf("logged model record is now %q", got)
				}
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if want := len(v1Buckets) + len(v2Buckets) + len(v3Buckets) + len(v4Buckets) + len(v5Buckets); n != want {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, want)
				}
				return err
			}))
		},
	},
	6: {
		// A v5 database with a project and an import record: the migration only adds the empty settings
		// bucket; the signing key is drawn by the first SigningKey call, not by the migration.
		setup: func(t *testing.T, db *bolt.DB) {
			must(t, db.Update(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				if err := root.Bucket(bucketProjects).Put(idKey(1), []byte(`{"id":1,"path":"p"}`)); err != nil {
					return err
				}
				return root.Bucket(bucketImports).Put([]byte("k"), []byte(`{}`))
			}))
		},
		check: func(t *testing.T, db *bolt.DB) {
			must(t, db.View(func(tx *bolt.Tx) error {
				root := tx.Bucket(bucketRoot)
				b := root.Bucket(bucketSettings)
				if b == nil {
					return errors.New("settings bucket missing")
				}
				if k, _ := b.Cursor().First(); k != nil {
					return fmt.Errorf("settings bucket not empty: %q", k)
				}
				if got := root.Bucket(bucketProjects).Get(idKey(1)); string(got) != `{"id":1,"path":"p"}` {
					return fmt.Errorf("project record is now %q", got)
				}
				if got := root.Bucket(bucketImports).Get([]byte("k")); string(got) != `{}` {
					return fmt.Errorf("import record is now %q", got)
				}
				n := 0
				err := root.ForEachBucket(func([]byte) error { n++; return nil })
				if want := len(v1Buckets) + len(v2Buckets) + len(v3Buckets) + len(v4Buckets) + len(v5Buckets) + len(v6Buckets); n != want {
					return fmt.Errorf("v1 holds %d buckets, want %d", n, want)
				}
				return err
			}))
		},
	},
}

func TestEveryMigrationHasACase(t *testing.T) {
	if len(migrationCases) != len(migrations) {
		t.Errorf("%d migrations but %d test cases: add a case to migrationCases for each new migration", len(migrations), len(migrationCases))
	}
	for i, m := range migrations {
		if m.version != uint64(i+1) {
			t.Errorf("migration %d has version %d: versions must count 1, 2, 3… without gaps", i, m.version)
		}
		if m.name == "" || m.migrate == nil || m.verify == nil {
			t.Errorf("migration %d is incomplete", m.version)
		}
		if _, ok := migrationCases[m.version]; !ok {
			t.Errorf("migration %d (%s) has no test case", m.version, m.name)
		}
	}
}

func rawDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func dbVersion(t *testing.T, db *bolt.DB) uint64 {
	t.Helper()
	var v uint64
	if err := db.View(func(tx *bolt.Tx) (err error) { v, err = readDBVersion(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	for i, m := range migrations {
		tc, ok := migrationCases[m.version]
		if !ok {
			continue // reported by TestEveryMigrationHasACase
		}
		t.Run(fmt.Sprintf("%d_%s", m.version, strings.ReplaceAll(m.name, " ", "_")), func(t *testing.T) {
			db := rawDB(t, tempPath(t))
			defer db.Close()
			if i > 0 {
				must(t, runMigrations(db, migrations[:i], slog.New(slog.DiscardHandler)))
			}
			tc.setup(t, db)
			must(t, runMigrations(db, migrations[:i+1], slog.New(slog.DiscardHandler)))
			if got := dbVersion(t, db); got != m.version {
				t.Fatalf("db_version %d after migration %d", got, m.version)
			}
			must(t, db.View(m.verify))
			tc.check(t, db)
		})
	}
}

func TestReopenCommitsNothing(t *testing.T) {
	path := tempPath(t)
	s := openStore(t, path)
	_, err := s.EnsureProject(t.Context(), "p")
	must(t, err)
	must(t, s.Close())
	txID := func() int {
		db := rawDB(t, path)
		defer db.Close()
		var id int
		must(t, db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }))
		return id
	}
	before := txID()
	for range 2 {
		must(t, openStore(t, path).Close())
	}
	if after := txID(); after != before {
		t.Errorf("reopening committed: transaction id %d → %d", before, after)
	}
	s = openStore(t, path)
	defer s.Close()
	must(t, s.Verify(t.Context()))
}

func TestRefuseNewerDatabase(t *testing.T) {
	path := tempPath(t)
	must(t, openStore(t, path).Close())
	db := rawDB(t, path)
	must(t, db.Update(func(tx *bolt.Tx) error { return writeDBVersion(tx, knownVersion()+1) }))
	must(t, db.Close())

	_, err := Open(path)
	if !errors.Is(err, metadata.ErrTooNew) {
		t.Fatalf("Open: %v, want ErrTooNew", err)
	}
	for _, v := range []uint64{knownVersion(), knownVersion() + 1} {
		if !strings.Contains(err.Error(), fmt.Sprint(v)) {
			t.Errorf("error %q does not name version %d", err, v)
		}
	}
	db = rawDB(t, path) // the refusal wrote nothing
	defer db.Close()
	if got := dbVersion(t, db); got != knownVersion()+1 {
		t.Errorf("db_version is now %d", got)
	}
}

// TestFailedMigrationRollsBack runs a migration whose verify fails: nothing of it may stay, and the version
// must not move, so the next start retries it.
func TestFailedMigrationRollsBack(t *testing.T) {
	db := rawDB(t, tempPath(t))
	defer db.Close()
	broken := append(migrations[:len(migrations):len(migrations)], migration{
		version: knownVersion() + 1,
		name:    "broken",
		migrate: func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("half_done")); return err },
		verify:  func(*bolt.Tx) error { return errors.New("verify says no") },
	})
	err := runMigrations(db, broken, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("runMigrations: %v, want the broken migration's error", err)
	}
	if got := dbVersion(t, db); got != knownVersion() {
		t.Errorf("db_version %d, want %d", got, knownVersion())
	}
	must(t, db.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("half_done")) != nil {
			return errors.New("the failed migration's bucket survived")
		}
		return nil
	}))
}
