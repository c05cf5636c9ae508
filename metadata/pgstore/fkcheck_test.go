package pgstore

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mlgate/mlgate/metadata"
)

// wantPgCode fails unless err is a PostgreSQL error with code (and, when constraint is set, that
// constraint).
func wantPgCode(t *testing.T, what string, err error, code, constraint string) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code || (constraint != "" && pgErr.ConstraintName != constraint) {
		t.Errorf("%s: %v, want SQLSTATE %s %s", what, err, code, constraint)
	}
}

// TestMigration11MetricsCandidateCheck checks that the triggers of migration 11 give the answers of the
// foreign key they replace, for writers that bypass the store (a hand-run INSERT, COPY, an update), and
// that the previous release's binary still opens the migrated schema.
func TestMigration11MetricsCandidateCheck(t *testing.T) {
	dsn := emptySchema(t)
	ctx := t.Context()
	s := openAt(t, dsn, 11)
	if old := openAt(t, dsn, 10); old == nil {
		t.Fatal("the previous release refuses the schema")
	}
	p, err := s.EnsureProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	a, b := &metadata.Candidate{ModelID: m.ID, Name: "a"}, &metadata.Candidate{ModelID: m.ID, Name: "b"}
	for _, c := range []*metadata.Candidate{a, b} {
		if err := s.CreateCandidate(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.LogBatch(ctx, a.ID, nil, []metadata.Metric{{Key: "acc", Value: 1, Timestamp: 1}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.LogBatch(ctx, 1<<40, nil, []metadata.Metric{{Key: "acc", Value: 1}}, nil); !errors.Is(err, metadata.ErrNotFound) {
		t.Errorf("LogBatch of an unknown candidate: %v", err)
	}

	const insert = `INSERT INTO metrics (candidate_id, key, step, ts, value, dataset_name, dataset_digest)
		SELECT c, 'k', 0, 0, 1, '', '' FROM unnest($1::bigint[]) c`
	_, err = s.pool.Exec(ctx, insert, []int64{1 << 40})
	wantPgCode(t, "INSERT of a point of an unknown candidate", err, "23503", "metrics_candidate_id_fkey")
	_, err = s.pool.Exec(ctx, insert, []int64{int64(a.ID), 1 << 40, int64(b.ID)})
	wantPgCode(t, "INSERT of points of known and unknown candidates", err, "23503", "metrics_candidate_id_fkey")
	_, err = s.pool.CopyFrom(ctx, pgx.Identifier{"metrics"}, []string{"candidate_id", "key", "step", "ts", "value", "dataset_name", "dataset_digest"},
		pgx.CopyFromRows([][]any{{int64(1 << 40), "k", int64(0), int64(0), 1.0, "", ""}}))
	wantPgCode(t, "COPY of a point of an unknown candidate", err, "23503", "metrics_candidate_id_fkey")
	_, err = s.pool.Exec(ctx, `UPDATE metrics SET candidate_id = $1 WHERE candidate_id = $2`, int64(1<<40), int64(a.ID))
	wantPgCode(t, "UPDATE of a point to an unknown candidate", err, "23503", "metrics_candidate_id_fkey")
	_, err = s.pool.Exec(ctx, `UPDATE candidates SET id = $1 WHERE id = $2`, int64(1<<40), int64(a.ID))
	wantPgCode(t, "UPDATE of the id of a candidate with points", err, "23503", "")
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM metrics`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("points after the refused writes: %d, %v; want a's one", n, err)
	}

	// A transaction inserting points of b holds b against deletion, as the key's check did; once it
	// commits, the deletion goes through and takes the points with it.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, insert, []int64{int64(b.ID)}); err != nil {
		t.Fatal(err)
	}
	del, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = del.Rollback(ctx) }()
	if _, err := del.Exec(ctx, `SET LOCAL lock_timeout = '200ms'`); err != nil {
		t.Fatal(err)
	}
	_, err = del.Exec(ctx, `DELETE FROM candidates WHERE id = $1`, int64(b.ID))
	wantPgCode(t, "DELETE of a candidate whose points are being inserted", err, "55P03", "")
	_ = del.Rollback(ctx)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM candidates WHERE id = $1`, int64(b.ID)); err != nil {
		t.Fatalf("DELETE of a candidate: %v", err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM metrics WHERE candidate_id = $1`, int64(b.ID)).Scan(&n); err != nil || n != 0 {
		t.Errorf("points of a deleted candidate: %d, %v", n, err)
	}
	if rd, err := s.RunData(ctx, a.ID); err != nil || len(rd.Metrics) != 1 {
		t.Errorf("RunData of a: %+v, %v", rd, err)
	}
}

// openAt opens the store at dsn with the first n migrations, closed when the test ends.
func openAt(t *testing.T, dsn string, n int) *Store {
	t.Helper()
	s, err := open(t.Context(), dsn, migrations[:n])
	if err != nil {
		t.Fatalf("open at migration %d: %v", n, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
