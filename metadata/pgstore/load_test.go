package pgstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/storetest"
)

func exportAll(t *testing.T, e metadata.Exporter) []metadata.Record {
	t.Helper()
	var out []metadata.Record
	if err := e.Export(t.Context(), func(r metadata.Record) error { out = append(out, r); return nil }); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return out
}

// populatedBolt returns a bbolt store filled by storetest.Populate.
func populatedBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	src, err := boltstore.Open(filepath.Join(t.TempDir(), "mlgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	storetest.Populate(t, src)
	return src
}

// load copies recs into dst in batches of n, as `mlgate metadata migrate` does.
func load(t *testing.T, dst *Store, source string, recs []metadata.Record, n int) {
	t.Helper()
	ctx := t.Context()
	p, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: source, Generation: 1})
	if err != nil {
		t.Fatalf("BeginMigration: %v", err)
	}
	for from := p.Records; from < int64(len(recs)); from += int64(n) {
		end := min(from+int64(n), int64(len(recs)))
		if err := dst.LoadBatch(ctx, source, from, recs[from:end]); err != nil {
			t.Fatalf("LoadBatch at %d: %v", from, err)
		}
	}
}

// diffRecords lists the first differences between two exports.
func diffRecords(want, got []metadata.Record) []string {
	var out []string
	for i := 0; i < max(len(want), len(got)) && len(out) < 10; i++ {
		switch {
		case i >= len(got):
			out = append(out, fmt.Sprintf("record %d missing: %s", i, want[i]))
		case i >= len(want):
			out = append(out, fmt.Sprintf("record %d extra: %s", i, got[i]))
		case !metadata.EqualRecords(want[i], got[i]):
			out = append(out, fmt.Sprintf("record %d:\n  want %s\n  got  %s", i, want[i], got[i]))
		}
	}
	return out
}

// TestLoadKeepsEverything copies a bbolt store holding every kind of entity into PostgreSQL and checks
// that PostgreSQL exports the same records, that reads through the Store API agree, and that both stores
// issue the same numbers next: the counters came along.
func TestLoadKeepsEverything(t *testing.T) {
	src := populatedBolt(t)
	ctx := t.Context()
	want := exportAll(t, src)
	kinds := map[metadata.RecordKind]bool{}
	last := -1
	for _, r := range want {
		i := indexOf(metadata.ExportOrder, r.Kind())
		if i < last {
			t.Fatalf("bbolt export: %s after a later kind", r)
		}
		last = i
		kinds[r.Kind()] = true
	}
	t.Logf("bbolt exports %d records of %d kinds", len(want), len(kinds))
	for _, k := range metadata.ExportOrder {
		if !kinds[k] {
			t.Errorf("the populated store exports no %s: Populate misses a kind", k)
		}
	}

	dst := openEmpty(t)
	defer dst.Close()
	load(t, dst, "bolt-a", want, 7) // small batches: boundaries fall inside and between kinds
	if d := diffRecords(want, exportAll(t, dst)); len(d) > 0 {
		t.Fatalf("PostgreSQL exports other records than bbolt:\n%s", strings.Join(d, "\n"))
	}
	sameReads(t, src, dst, want)

	// The next numbers either store issues are the same.
	type next struct {
		project                 int64
		modelID                 uint64
		modelIID                int64
		candID                  uint64
		candIID                 int64
		versionID, versionSeq   int64
		lmID, reserved          uint64
		pkgModelIID, pkgCandIID int64
	}
	draw := func(s metadata.Store) next {
		var n next
		p, err := s.EnsureProject(ctx, "brand/new")
		if err != nil {
			t.Fatal(err)
		}
		n.project = p.ID
		pa, err := s.Project(ctx, metadata.ProjectRef{Path: "team/vision"})
		if err != nil {
			t.Fatal(err)
		}
		m := &metadata.Model{Project: pa.ID, Name: "later"}
		if err := s.CreateModel(ctx, m); err != nil {
			t.Fatal(err)
		}
		n.modelID, n.modelIID = m.ID, m.IID
		exp, err := s.Model(ctx, metadata.ModelRef{Project: pa.ID, DisplayName: "Resnet Exp"})
		if err != nil {
			t.Fatal(err)
		}
		c := &metadata.Candidate{ModelID: exp.ID}
		if err := s.CreateCandidate(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		n.candID, n.candIID = c.ID, c.IID
		v := &metadata.Version{ModelID: exp.ID, CandidateID: c.ID}
		if err := s.CreateVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
		n.versionID, n.versionSeq = v.ID, v.Seq
		lm := &metadata.LoggedModel{ModelID: exp.ID, Name: "later"}
		if err := s.CreateLoggedModel(ctx, lm); err != nil {
			t.Fatal(err)
		}
		n.lmID = lm.ID
		if n.reserved, err = s.ReserveOwnerID(ctx); err != nil {
			t.Fatal(err)
		}
		pb, err := s.Project(ctx, metadata.ProjectRef{Path: "team/nlp"})
		if err != nil {
			t.Fatal(err)
		}
		pv, err := s.EnsurePackageVersion(ctx, pb.ID, "pkg2", "1.0.0", 0)
		if err != nil {
			t.Fatal(err)
		}
		n.pkgModelIID, n.pkgCandIID = pv.Model.IID, pv.Candidate.IID
		return n
	}
	fromBolt, fromPG := draw(src), draw(dst)
	if fromBolt != fromPG {
		t.Errorf("after the copy, bbolt issues %+v next and PostgreSQL %+v", fromBolt, fromPG)
	}
}

func indexOf[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// sameReads compares what the Store API reads from both stores for every model and candidate of recs.
func sameReads(t *testing.T, a, b metadata.Store, recs []metadata.Record) {
	t.Helper()
	ctx := t.Context()
	read := func(what string, fn func(s metadata.Store) (any, error)) {
		t.Helper()
		va, errA := fn(a)
		vb, errB := fn(b)
		sa, sb := fmt.Sprintf("%+v %v", va, errA), fmt.Sprintf("%+v %v", vb, errB)
		if sa != sb {
			t.Errorf("%s:\n  bbolt      %s\n  PostgreSQL %s", what, sa, sb)
		}
	}
	for _, r := range recs {
		switch {
		case r.Model != nil:
			id := r.Model.ID
			read(fmt.Sprintf("model %d", id), func(s metadata.Store) (any, error) { return s.Model(ctx, metadata.ModelRef{ID: id}) })
			for _, key := range []string{"loss", "odd", "acc"} {
				for _, desc := range []bool{false, true} {
					read(fmt.Sprintf("runs of model %d by %s desc=%t", id, key, desc), func(s metadata.Store) (any, error) {
						cs, _, err := s.SearchCandidates(ctx, metadata.CandidateQuery{ModelIDs: []uint64{id}, View: metadata.AllLifecycles,
							OrderByMetric: &metadata.MetricOrder{Key: key, Desc: desc}})
						return ids(cs, func(c *metadata.Candidate) uint64 { return c.ID }), err
					})
				}
			}
			read(fmt.Sprintf("logged models of %d", id), func(s metadata.Store) (any, error) {
				lms, _, err := s.SearchLoggedModels(ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{id},
					OrderByMetric: &metadata.MetricOrder{Key: "val_acc"}})
				return ids(lms, func(lm *metadata.LoggedModel) uint64 { return lm.ID }), err
			})
			read(fmt.Sprintf("versions of %d", id), func(s metadata.Store) (any, error) {
				vs, _, err := s.ListVersions(ctx, id, metadata.Page{})
				return ids(vs, func(v *metadata.Version) string { return fmt.Sprint(v.ID, v.Seq, v.Semver, v.Stage) }), err
			})
			read(fmt.Sprintf("aliases of %d", id), func(s metadata.Store) (any, error) { return s.Aliases(ctx, id) })
			read(fmt.Sprintf("datasets of %d", id), func(s metadata.Store) (any, error) { return s.SearchDatasets(ctx, []uint64{id}) })
		case r.Candidate != nil:
			id := r.Candidate.ID
			read(fmt.Sprintf("run data of %d", id), func(s metadata.Store) (any, error) { return s.RunData(ctx, id) })
			read(fmt.Sprintf("history of odd of %d", id), func(s metadata.Store) (any, error) {
				h, _, err := s.MetricHistory(ctx, id, "odd", metadata.Page{})
				return h, err
			})
			read(fmt.Sprintf("files of %d", id), func(s metadata.Store) (any, error) {
				fs, _, err := s.ListFiles(ctx, id, "", metadata.Page{})
				return ids(fs, func(f *metadata.File) string { return f.Path + " " + f.BlobKey + " " + f.Backend }), err
			})
		case r.LoggedModel != nil:
			id := r.LoggedModel.ID
			read(fmt.Sprintf("metrics of logged model %d", id), func(s metadata.Store) (any, error) { return s.LoggedModelMetrics(ctx, id) })
		}
	}
	read("tokens", func(s metadata.Store) (any, error) {
		ts, err := s.ListTokens(ctx)
		return ids(ts, func(t *metadata.Token) string {
			return fmt.Sprint(t.ID, t.Revoked, t.Instance, t.ExpiresAt.UnixMilli())
		}), err
	})
	read("signing key", func(s metadata.Store) (any, error) { return s.SigningKey(ctx) })
}

func ids[T, K any](xs []T, key func(T) K) []K {
	out := make([]K, len(xs))
	for i, x := range xs {
		out[i] = key(x)
	}
	return out
}

// TestBeginMigrationRefuses checks the guards of a copy: a non-empty target, another source, a source
// that changed, and a batch out of turn. A failed batch keeps nothing.
func TestBeginMigrationRefuses(t *testing.T) {
	ctx := t.Context()
	dst := openEmpty(t)
	defer dst.Close()
	if _, err := dst.MigrationProgress(ctx); !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("MigrationProgress of a fresh store: %v, want ErrNotFound", err)
	}
	// A signing key drawn by a server started on the empty store does not make it non-empty.
	if _, err := dst.SigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	recs := exportAll(t, populatedBolt(t))
	p, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: "a", Generation: 3})
	if err != nil || p.Records != 0 {
		t.Fatalf("BeginMigration: %+v, %v", p, err)
	}
	if err := dst.LoadBatch(ctx, "a", 0, recs[:10]); err != nil {
		t.Fatal(err)
	}
	if err := dst.LoadBatch(ctx, "a", 5, recs[10:12]); !errors.Is(err, metadata.ErrConflict) {
		t.Errorf("LoadBatch out of turn: %v, want ErrConflict", err)
	}
	if err := dst.LoadBatch(ctx, "a", 10, []metadata.Record{recs[10], recs[10]}); !errors.Is(err, metadata.ErrExists) {
		t.Errorf("LoadBatch of a duplicate: %v, want ErrExists", err)
	}
	if p, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: "a", Generation: 3}); err != nil || p.Records != 10 {
		t.Errorf("BeginMigration resumed: %+v, %v; want 10 records in (the failed batches kept nothing)", p, err)
	}
	if _, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: "a", Generation: 4}); !errors.Is(err, metadata.ErrConflict) ||
		!strings.Contains(err.Error(), "changed") {
		t.Errorf("BeginMigration of a changed source: %v, want ErrConflict saying it changed", err)
	}
	if _, err := dst.BeginMigration(ctx, metadata.MigrationProgress{Source: "b", Generation: 3}); !errors.Is(err, metadata.ErrConflict) {
		t.Errorf("BeginMigration of another source: %v, want ErrConflict", err)
	}

	full := openEmpty(t)
	defer full.Close()
	storetest.Populate(t, full)
	_, err = full.BeginMigration(ctx, metadata.MigrationProgress{Source: "a", Generation: 3})
	if !errors.Is(err, metadata.ErrConflict) || !strings.Contains(err.Error(), "2 projects") {
		t.Errorf("BeginMigration into a populated store: %v, want ErrConflict naming its 2 projects", err)
	}
	if err := full.FinishMigration(ctx, "a"); !errors.Is(err, metadata.ErrConflict) {
		t.Errorf("FinishMigration without a migration: %v, want ErrConflict", err)
	}
}
