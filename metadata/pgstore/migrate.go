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
		return fmt.Errorf("schema version %d, this binary knows up to %d; run a newer mlgate: %w", v, latest, metadata.ErrTooNew)
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
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
			return err
		}
		done = true
		return nil
	})
	return done, err
}
