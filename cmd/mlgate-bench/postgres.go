package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata/pgstore"
)

// pgSeedChunk is how many runs (or logged models) the PostgreSQL seeding writes per transaction.
const pgSeedChunk = 1000

// pgSchema is a fresh schema of the benchmark's own in the database of a DSN, dropped by drop.
type pgSchema struct {
	admin string // the DSN as given
	name  string
	dsn   string // the DSN whose connections use the schema (search_path)
}

// newPGSchema creates a schema named after what with a random suffix, so that runs never share data and
// the database may hold other schemas (the tests'). The DSN must be a postgres:// URL.
func newPGSchema(dsn, what string) (*pgSchema, error) {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		return nil, fmt.Errorf("the PostgreSQL DSN must be a postgres:// URL")
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "bench_" + what + "_" + hex.EncodeToString(b)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%s: %w", u.Hostname(), u.Port(), err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return nil, err
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return &pgSchema{admin: dsn, name: name, dsn: u.String()}, nil
}

// drop removes the schema and everything in it.
func (s *pgSchema) drop() error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP SCHEMA "+s.name+" CASCADE")
	return err
}

// writePGConfig writes a serve config for the PostgreSQL store at dsn into dir. Its one backend is the
// in-memory one: the PostgreSQL store refuses localfs (replicas could not share it), and the MLflow
// calls measured here store no blob, so no S3 server is needed. The DSN goes in the file rather than
// MLGATE_METADATA_DSN so that the command line shows what each replica runs.
func writePGConfig(dir, dsn string) (string, error) {
	path := filepath.Join(dir, "mlgate-pg.yaml")
	cfg := fmt.Sprintf("metadata:\n  type: postgres\n  dsn: %q\nbackends:\n  - name: mem\n    type: memory\ndefault_backend: mem\n", dsn)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// benchMLflowPG is benchMLflow against PostgreSQL: the same seed, written through pgstore in
// transactions of pgSeedChunk, into a fresh schema that is dropped afterwards, and the same calls to a
// real mlgate serve whose config selects that store.
func benchMLflowPG(bin, dir, dsn string, candidates, loggedModels int) (mlflowFigures, bool, error) {
	var fig mlflowFigures
	schema, err := newPGSchema(dsn, "mlflow")
	if err != nil {
		return fig, false, err
	}
	defer func() {
		if err := schema.drop(); err != nil {
			fmt.Fprintf(os.Stderr, "dropping schema %s: %v\n", schema.name, err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := pgstore.Open(ctx, schema.dsn)
	if err != nil {
		return fig, false, err
	}
	seeded, err := seedSearch(store, candidates, loggedModels, pgSeedChunk)
	store.Close()
	if err != nil {
		return fig, false, fmt.Errorf("seeding: %w", err)
	}
	if err := analyze(schema.dsn); err != nil {
		return fig, false, err
	}
	fmt.Printf("\nMLflow API on PostgreSQL (schema %s)\n", schema.name)
	printSeeded(seeded, candidates, loggedModels)
	dataDir := filepath.Join(dir, "mlflow-pg-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fig, false, err
	}
	cfg, err := writePGConfig(dir, schema.dsn)
	if err != nil {
		return fig, false, err
	}
	return measureMLflow(bin, "postgres", []string{"--data-dir", dataDir, "--config", cfg}, nil, seeded.iid, candidates, loggedModels)
}

// analyze refreshes the planner's statistics after a bulk load, as autovacuum would shortly after: the
// benchmark measures the steady state, not the first minute after 100 000 inserts.
func analyze(dsn string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ANALYZE")
	return err
}

// printSideBySide prints the figures of both stores with PostgreSQL's as a ratio to bbolt's.
func printSideBySide(bolt, pg mlflowFigures) {
	fmt.Printf("\nMLflow API, bbolt and PostgreSQL side by side (PG/bbolt: above 1 is slower on PostgreSQL)\n")
	fmt.Printf("%-34s %10s %10s %8s   %10s %10s %8s\n", "", "bbolt p50", "PG p50", "PG/bbolt", "bbolt p99", "PG p99", "PG/bbolt")
	row := func(name string, a, b []time.Duration) {
		if len(a) == 0 || len(b) == 0 {
			return
		}
		fmt.Printf("%-34s %10s %10s %8.2f   %10s %10s %8.2f\n", name,
			percentile(a, 50).Round(time.Microsecond), percentile(b, 50).Round(time.Microsecond), ratio(b, a, 50),
			percentile(a, 99).Round(time.Microsecond), percentile(b, 99).Round(time.Microsecond), ratio(b, a, 99))
	}
	row("log-metric (1000 sequential)", bolt.logMetric, pg.logMetric)
	row("log-batch of 1000 metrics", bolt.logBatch, pg.logBatch)
	row("runs/search by metric, page 100", bolt.search, pg.search)
	row("logged-models/search by metric", bolt.lmSearch, pg.lmSearch)
}
