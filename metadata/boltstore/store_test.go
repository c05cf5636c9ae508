package boltstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/storetest"
	bolt "go.etcd.io/bbolt"
)

func tempPath(t *testing.T) string { return filepath.Join(t.TempDir(), "mlgate.db") }

func openStore(t *testing.T, path string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// checkedStore runs Verify and checks that no read transaction is left open before closing, so every
// contract test also proves the indexes consistent with the records it wrote.
type checkedStore struct {
	*Store
	t *testing.T
}

func (c checkedStore) Close() error {
	if n := c.db.Stats().OpenTxN; n != 0 {
		c.t.Errorf("%d read transactions open after the test", n)
	}
	if err := c.Verify(context.Background()); err != nil {
		c.t.Errorf("Verify after the test: %v", err)
	}
	return c.Store.Close()
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		return checkedStore{openStore(t, tempPath(t)), t}
	})
}

func TestPersistenceAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := openStore(t, path)
	p, _ := s.EnsureProject(ctx, "team/a")
	m := &metadata.Model{Project: p.ID, DisplayName: "Churn"}
	must(t, s.CreateModel(ctx, m))
	c := &metadata.Candidate{ModelID: m.ID}
	must(t, s.CreateCandidate(ctx, c, []metadata.Tag{{Key: "t", Value: "v"}}))
	must(t, s.LogBatch(ctx, c.ID, []metadata.Param{{Key: "lr", Value: "1"}}, []metadata.Metric{{Key: "loss", Value: 2, Step: 3}}, nil))
	v := &metadata.Version{ModelID: m.ID, CandidateID: c.ID}
	must(t, s.CreateVersion(ctx, v))
	_, err := s.CommitFile(ctx, &metadata.File{OwnerID: c.ID, Path: "a/b", SHA256: strings.Repeat("0", 64), BlobKey: "k"}, false)
	must(t, err)
	must(t, s.Close())

	s = openStore(t, path)
	defer s.Close()
	got, err := s.Model(ctx, metadata.ModelRef{Project: p.ID, Name: "churn"})
	if err != nil || got.ID != m.ID || !got.InRegistry {
		t.Fatalf("model after reopen: %+v, %v", got, err)
	}
	rd, err := s.RunData(ctx, c.ID)
	if err != nil || len(rd.Params) != 1 || len(rd.Metrics) != 1 || len(rd.Tags) != 1 {
		t.Errorf("run data after reopen: %+v, %v", rd, err)
	}
	if _, err := s.File(ctx, c.ID, "a/b"); err != nil {
		t.Errorf("file after reopen: %v", err)
	}
	// Counters continue where they stopped.
	p2, _ := s.EnsureProject(ctx, "team/b")
	m2 := &metadata.Model{Project: p.ID, Name: "second"}
	must(t, s.CreateModel(ctx, m2))
	c2 := &metadata.Candidate{ModelID: m.ID}
	must(t, s.CreateCandidate(ctx, c2, nil))
	v2 := &metadata.Version{ModelID: m.ID, CandidateID: c2.ID}
	must(t, s.CreateVersion(ctx, v2))
	if got := fmt.Sprintln(p2.ID, m2.IID, m2.ID > m.ID, c2.IID, c2.ID > c.ID, v2.Seq, v2.ID, v2.Semver); got != "2 2 true 2 true 2 2 1.1.0\n" {
		t.Errorf("numbers after reopen: %s", got)
	}
	must(t, s.Verify(ctx))
}

func TestLockTimeout(t *testing.T) {
	path := tempPath(t)
	s := openStore(t, path)
	defer s.Close()
	start := time.Now()
	_, err := Open(path, WithTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want ErrLocked naming the path", err)
	}
	// bbolt gives up one 50ms retry interval before the timeout.
	if d := time.Since(start); d < 40*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 100ms", d)
	}
}

func TestWithClock(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600))
	s := openStore(t, tempPath(t), WithClock(func() time.Time { return at }), WithLogger(nil))
	defer s.Close()
	ctx := t.Context()
	p, _ := s.EnsureProject(ctx, "p")
	m := &metadata.Model{Project: p.ID, Name: "m"}
	must(t, s.CreateModel(ctx, m))
	c := &metadata.Candidate{ModelID: m.ID}
	must(t, s.CreateCandidate(ctx, c, nil))
	want := at.UTC().Truncate(time.Millisecond)
	if !p.CreatedAt.Equal(want) || !m.CreatedAt.Equal(want) || c.StartTime != want.UnixMilli() {
		t.Errorf("times %v %v %d, want %v", p.CreatedAt, m.CreatedAt, c.StartTime, want)
	}
	got, _ := s.Model(ctx, metadata.ModelRef{ID: m.ID})
	if got.CreatedAt != m.CreatedAt {
		t.Errorf("stored time %#v differs from returned %#v", got.CreatedAt, m.CreatedAt)
	}
}

func TestCanceledContext(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.EnsureProject(ctx, "p"); !errors.Is(err, context.Canceled) {
		t.Errorf("EnsureProject: %v", err)
	}
	if _, _, err := s.ListModels(ctx, 1, metadata.Page{}); !errors.Is(err, context.Canceled) {
		t.Errorf("ListModels: %v", err)
	}
	if err := s.Verify(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify: %v", err)
	}
}

// TestForEachFileBatches writes rows straight into bbolt (one commit instead of thousands) to cross several
// batch boundaries, and checks that fn runs with no transaction open and may write to the store.
func TestForEachFileBatches(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, tempPath(t))
	defer s.Close()
	p, _ := s.EnsureProject(ctx, "p")
	m := &metadata.Model{Project: p.ID, Name: "m"}
	must(t, s.CreateModel(ctx, m))
	var cands []uint64
	for range 3 {
		c := &metadata.Candidate{ModelID: m.ID}
		must(t, s.CreateCandidate(ctx, c, nil))
		cands = append(cands, c.ID)
	}
	const perCand = 2*forEachBatch/3 + 7
	must(t, s.db.Update(func(tx *bolt.Tx) error {
		for _, c := range cands[:2] {
			for i := range perCand {
				f := &metadata.File{OwnerID: c, Path: fmt.Sprintf("f/%05d", i), SHA256: strings.Repeat("a", 64), BlobKey: "k"}
				if err := putJSON(bk(tx, bucketFiles), idStrKey(c, f.Path), f); err != nil {
					return err
				}
			}
		}
		return nil
	}))
	var seen []string
	err := s.ForEachFile(ctx, func(f *metadata.File) error {
		if n := s.db.Stats().OpenTxN; n != 0 {
			return fmt.Errorf("%d read transactions open inside fn", n)
		}
		seen = append(seen, fmt.Sprint(f.OwnerID, f.Path))
		if len(seen) == 1 { // behind no position yet: a row of the last candidate is ahead of the walk
			_, err := s.CommitFile(ctx, &metadata.File{OwnerID: cands[2], Path: "late", SHA256: strings.Repeat("b", 64), BlobKey: "k"}, false)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2*perCand+1 || seen[len(seen)-1] != fmt.Sprint(cands[2], "late") {
		t.Fatalf("walked %d rows ending %q, want %d ending with the late row", len(seen), seen[len(seen)-1], 2*perCand+1)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i-1] >= seen[i] {
			t.Fatalf("order broken at %d: %q then %q", i, seen[i-1], seen[i])
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestContractRehearsed runs the contract with every write run twice, the first time rolled back: the
// group commit runs writes again when another write of their group fails, and every write must then do
// exactly what it does when it runs once.
func TestContractRehearsed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) metadata.Store {
		return checkedStore{openStore(t, tempPath(t), WithRehearsal()), t}
	})
}

// BenchmarkStore runs storetest.Bench on a store that syncs each commit, as mlgate serve opens it.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) metadata.Store {
		s, err := Open(filepath.Join(b.TempDir(), "mlgate.db"))
		if err != nil {
			b.Fatalf("Open: %v", err)
		}
		return s
	})
}
