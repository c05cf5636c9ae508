package pgstore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema step: migrations[i] takes the database from version i to i+1.
type migration struct {
	version int
	name    string
	sql     string
}

// additiveMarker, as a line of its own in a migration file, declares that the migration only adds
// (tables, columns with defaults, indexes) so that a binary that knows only the versions before it can
// still serve on the migrated database: the old replicas of a rolling upgrade.
const additiveMarker = "-- mlgate: additive"

// oldestBinary is the lowest schema version a binary must know to serve on a database m has migrated:
// the one before m for an additive migration, m's own otherwise.
func (m migration) oldestBinary() int {
	for _, line := range strings.Split(m.sql, "\n") {
		if strings.TrimSpace(line) == additiveMarker {
			return m.version - 1
		}
	}
	return m.version
}

// oldestBinary returns the lowest schema version a binary must know to serve on the database, considering
// the migrations above known (those a binary knowing up to known has not seen): the highest of their
// oldest_binary. Migrations recorded before the column existed count as not additive.
func oldestBinary(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, known int) (int, error) {
	var hasColumn bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'schema_migrations' AND column_name = 'oldest_binary')`).Scan(&hasColumn); err != nil {
		return 0, err
	}
	var oldest int
	col := "version"
	if hasColumn {
		col = "COALESCE(oldest_binary, version)"
	}
	err := q.QueryRow(ctx, `SELECT COALESCE(max(`+col+`), 0) FROM schema_migrations WHERE version > $1`, known).Scan(&oldest)
	return oldest, err
}

// migrations are the embedded files NNNN_name.sql, in order. Schema changes are additive first and
// destructive only a release later (expand, then contract), so that two consecutive mlgate versions can
// serve one database during a rolling upgrade.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []migration {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		panic(err)
	}
	var out []migration
	for i, name := range names { // fs.Glob sorts
		base := path.Base(name)
		num, rest, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != i+1 {
			panic(fmt.Sprintf("pgstore: migration %s: want %04d_name.sql", base, i+1))
		}
		data, err := migrationFiles.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(rest, ".sql"), sql: string(data)})
	}
	return out
}

// migrationLock is the first key of the advisory lock that serializes migrations; the second is the hash
// of the schema being migrated, so that stores in different schemas of one database (tests) do not wait for
// each other.
const migrationLock = 0x6d6c6761 // "mlga"

// schemaVersion returns the version recorded in schema_migrations, 0 when the table does not exist.
func schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	// pg_class is read with the statement's snapshot, not through to_regclass's relation cache: a
	// transaction that waited for the migration lock must see the table another one just committed.
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = 'schema_migrations' AND n.nspname = current_schema())`).Scan(&exists); err != nil {
		return 0, err
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// migrate applies the pending migrations of ms, each in one transaction that first takes the advisory
// lock and reads the version again: a replica that waited for another's migration finds it done. A
// database at a version above len(ms) is refused with metadata.ErrTooNew.
func (s *Store) migrate(ctx context.Context, ms []migration) error {
	latest := len(ms)
	v, err := schemaVersion(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	if v > latest {
		oldest, err := oldestBinary(ctx, s.pool, latest)
		if err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if oldest > latest {
			return fmt.Errorf("schema version %d, this binary knows up to %d, and migration %d changed what it reads; run a newer mlgate: %w",
				v, latest, oldest, metadata.ErrTooNew)
		}
		// A rolling upgrade: a newer replica migrated, and every migration since only added.
		s.log.Warn("the metadata schema is newer than this binary, by additive migrations only: serving on it (a rolling upgrade)",
			"schema_version", v, "binary_knows", latest)
		return nil
	}
	for ; v < latest; v++ {
		m := ms[v]
		done, err := s.applyMigration(ctx, m)
		if err != nil {
			return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
		}
		if done {
			s.log.Info("metadata schema migrated", "version", m.version, "name", m.name)
		}
	}
	return nil
}

// applyMigration runs m unless another process did meanwhile; done reports whether this call applied it.
func (s *Store) applyMigration(ctx context.Context, m migration) (done bool, err error) {
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLock); err != nil {
			return err
		}
		v, err := schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if v >= m.version {
			return nil // another replica got here first
		}
		if v != m.version-1 {
			return fmt.Errorf("schema version %d, expected %d", v, m.version-1)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		// oldest_binary came with rolling upgrades (see oldestBinary); NULL, in rows written before it, is the
		// strict reading: the migration's own version.
		if _, err := tx.Exec(ctx, `ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS oldest_binary integer`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, oldest_binary) VALUES ($1, $2, $3)`,
			m.version, m.name, m.oldestBinary()); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}
