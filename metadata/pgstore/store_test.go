package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/storetest"
)

// testDSN returns the test server's DSN, or skips: .ci/postgres.sh start exports it, and .ci/run will.
func testDSN(t testing.TB) string {
	dsn := os.Getenv("MLGATE_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("MLGATE_TEST_POSTGRES_DSN is unset: eval \"$(.ci/postgres.sh start)\" starts a test server")
	}
	return dsn
}

// emptySchema creates a schema of its own for one test, dropped when the test ends, and returns a DSN
// whose connections use it. A schema is much cheaper than a database (CREATE DATABASE copies a template
// and checkpoints), and the store's unqualified table names follow search_path.
func emptySchema(t testing.TB) string {
	t.Helper()
	dsn := testDSN(t)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect to the test server: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("connect to drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return withParam(t, dsn, "search_path", schema)
}

func withParam(t testing.TB, dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Fatalf("MLGATE_TEST_POSTGRES_DSN must be a postgres:// URL")
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func openEmpty(t testing.TB, opts ...Option) *Store {
	t.Helper()
	// A few connections per store: storetest runs its subtests in parallel, each with a store of its own.
	s, err := Open(t.Context(), emptySchema(t), append([]Option{WithMaxConns(4)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestContract runs the whole metadata.Store contract: every storetest group.
func TestContract(t *testing.T) {
	testDSN(t)
	storetest.Run(t, func(t *testing.T) metadata.Store { return openEmpty(t) })
}

// TestBlobDeletionQueue runs the contract of the queue that replicas share (metadata.BlobDeletionQueue).
func TestBlobDeletionQueue(t *testing.T) {
	testDSN(t)
	storetest.RunBlobDeletionQueue(t, func(t *testing.T) metadata.Store { return openEmpty(t) })
}

// TestEachMigration applies the migrations one at a time, as a database that stopped at each version
// would meet them, checks what each creates, and that a reopen at the same version applies nothing.
func TestEachMigration(t *testing.T) {
	creates := map[int][]string{
		1:  {"counters", "projects", "models", "candidates", "candidate_tags", "params", "files", "tokens"},
		2:  {"settings"},
		3:  {"metrics"},
		4:  {"versions", "aliases"},
		5:  {"logged_models", "lm_metrics"},
		6:  {"datasets", "run_datasets", "dataset_contexts", "run_model_inputs", "run_model_outputs"},
		7:  {"import_records"},
		8:  {"blob_deletions"},
		9:  {"metadata_migration"},
		10: {"latest_metrics", "latest_lm_metrics"},
	}
	if len(creates) != len(migrations) {
		t.Fatalf("%d migrations, %d checked here: add a check for each new migration", len(migrations), len(creates))
	}
	dsn := emptySchema(t)
	ctx := t.Context()
	for n := 1; n <= len(migrations); n++ {
		for range 2 {
			s, err := open(ctx, dsn, migrations[:n])
			if err != nil {
				t.Fatalf("open at migration %d: %v", n, err)
			}
			for _, table := range creates[n] {
				var ok bool
				if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok); err != nil || !ok {
					t.Errorf("after migration %d: no table %s (%v)", n, table, err)
				}
			}
			var rows, v int
			if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &v); err != nil || rows != n || v != n {
				t.Errorf("after migration %d: schema_migrations has %d rows up to %d, %v", n, rows, v, err)
			}
			s.Close()
		}
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	dsn := emptySchema(t)
	ctx := t.Context()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	newer := len(migrations) + 1
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')`, newer); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, dsn)
	if !errors.Is(err, metadata.ErrTooNew) {
		t.Fatalf("Open on a newer schema: %v, want ErrTooNew", err)
	}
	for _, v := range []int{newer, len(migrations)} {
		if !strings.Contains(err.Error(), " "+strconv.Itoa(v)) {
			t.Errorf("error %q does not name version %d", err, v)
		}
	}
}

// TestServesAfterAdditiveMigrations: a database migrated by a newer binary is served by an older one
// while every migration it does not know is additive (a rolling upgrade), and refused, naming the
// versions, once one is not. Migration 8 is additive, so a binary that knows 7 serves on 8.
func TestServesAfterAdditiveMigrations(t *testing.T) {
	dsn := emptySchema(t)
	ctx := t.Context()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	latest := len(migrations)
	// The binary of the previous release serves on this schema exactly when the newest migration only adds.
	additive := migrations[latest-1].oldestBinary() == latest-1
	prev, err := open(ctx, dsn, migrations[:latest-1])
	if additive != (err == nil) {
		t.Fatalf("the previous binary on this schema (newest migration additive: %v): %v", additive, err)
	}
	if err == nil {
		prev.Close()
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, oldest_binary) VALUES ($1, 'adds', $2)`,
		latest+1, latest); err != nil {
		t.Fatal(err)
	}
	older, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open after an additive migration it does not know: %v", err)
	}
	older.Close()
	if _, err := open(ctx, dsn, migrations[:latest-1]); !errors.Is(err, metadata.ErrTooNew) {
		t.Fatalf("a binary two releases behind, on a database whose newest migration needs the previous one: %v, want ErrTooNew", err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, oldest_binary) VALUES ($1, 'drops', $1)`,
		latest+2); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dsn)
	if !errors.Is(err, metadata.ErrTooNew) || !strings.Contains(err.Error(), strconv.Itoa(latest+2)) ||
		!strings.Contains(err.Error(), "up to "+strconv.Itoa(latest)) {
		t.Fatalf("Open after a contracting migration it does not know: %v, want ErrTooNew naming both versions", err)
	}
	for n := 1; n <= latest; n++ {
		want := n
		if n >= 8 {
			want = n - 1 // from 8 on, each migration says whether it only adds; 8 does
		}
		var got int
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(oldest_binary, version) FROM schema_migrations WHERE version = $1`, n).Scan(&got); err != nil || (n == 8 && got != want) {
			t.Errorf("migration %d: oldest binary %d, %v", n, got, err)
		}
	}
}

// TestConcurrentOpenMigratesOnce starts several stores at once on an empty schema, as replicas starting
// together do: the advisory lock lets one migrate and the others find it done.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := emptySchema(t)
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			s, err := Open(ctx, dsn, WithMaxConns(2))
			if err == nil {
				s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent Open: %v", err)
		}
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(migrations) {
		t.Errorf("schema_migrations has %d rows, %v; want %d", rows, err, len(migrations))
	}
}

// TestConcurrentCountersNeitherReuseNorSkip has writers race for one project's iid counter: serialization
// failures are retried inside the store, never returned, and the iids come out 1…n without a gap.
func TestConcurrentCountersNeitherReuseNorSkip(t *testing.T) {
	s := openEmpty(t, WithMaxConns(16))
	defer s.Close()
	ctx := t.Context()
	p, err := s.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 10
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				m := &metadata.Model{Project: p.ID, Name: "m" + strconv.Itoa(w) + "_" + strconv.Itoa(i)}
				if err := s.CreateModel(ctx, m); err != nil {
					t.Errorf("CreateModel: %v", err)
					return
				}
				mu.Lock()
				if seen[m.IID] {
					t.Errorf("iid %d issued twice", m.IID)
				}
				seen[m.IID] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for iid := int64(1); iid <= writers*each; iid++ {
		if !seen[iid] {
			t.Errorf("iid %d skipped", iid)
		}
	}
}

// BenchmarkStore runs storetest.Bench in a schema of its own. The test server runs with fsync off (see
// .ci/postgres.sh): its commits cost no disk flush, where bbolt's benchmark syncs each one.
func BenchmarkStore(b *testing.B) {
	testDSN(b)
	storetest.Bench(b, func(b *testing.B) metadata.Store {
		s, err := Open(b.Context(), emptySchema(b))
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		return s
	})
}
