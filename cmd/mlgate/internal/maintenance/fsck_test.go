package maintenance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

type fixture struct {
	store   *boltstore.Store
	local   *localfs.Backend
	backend backends.Backend
	cand    *metadata.Candidate
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	store, err := boltstore.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	local, err := localfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	ctx := context.Background()
	p, err := store.EnsureProject(ctx, "team/vision")
	if err != nil {
		t.Fatal(err)
	}
	pv, err := store.EnsurePackageVersion(ctx, p.ID, "m", "1.0.0", 0)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{store: store, local: local, backend: backends.Checked("localfs", local), cand: pv.Candidate}
}

// addFile stores a blob and, when commit is set, its row: commit=false is a crash between the two.
func (f *fixture) addFile(t *testing.T, key, path string, data []byte, commit bool) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if !commit {
		return
	}
	sum := sha256.Sum256(data)
	row := &metadata.File{OwnerID: f.cand.ID, Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), BlobKey: key}
	if _, err := f.store.CommitFile(ctx, row, true); err != nil {
		t.Fatal(err)
	}
}

func kinds(rep *FsckReport) map[string][]Problem {
	out := map[string][]Problem{}
	for _, p := range rep.Problems {
		out[p.Kind] = append(out[p.Kind], p)
	}
	return out
}

func TestCleanStoreHasNoProblems(t *testing.T) {
	f := newFixture(t)
	f.addFile(t, "c/0000000000000001/00000000000000000000000000000001", "a.txt", []byte("a"), true)
	rep, err := FsckBackend(context.Background(), f.store, f.backend, FsckOptions{Staging: f.local})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || len(rep.Problems) != 0 || rep.FilesChecked != 1 || rep.BlobsChecked != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func TestFindsAndRepairsUnreferencedBlobs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.addFile(t, "c/0000000000000001/00000000000000000000000000000001", "kept.txt", []byte("kept"), true)
	orphan := "c/0000000000000001/00000000000000000000000000000002"
	f.addFile(t, orphan, "", []byte("crashed before commit"), false)

	rep, err := FsckBackend(ctx, f.store, f.backend, FsckOptions{Staging: f.local})
	if err != nil {
		t.Fatal(err)
	}
	found := kinds(rep)["unreferenced_blob"]
	if rep.Clean() || len(found) != 1 || found[0].Key != orphan || found[0].Fixed {
		t.Fatalf("report %+v", rep)
	}
	if _, err := f.backend.Stat(ctx, orphan); err != nil {
		t.Fatal("a check without --repair deleted a blob")
	}

	rep, err = FsckBackend(ctx, f.store, f.backend, FsckOptions{Repair: true, Staging: f.local})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || !kinds(rep)["unreferenced_blob"][0].Fixed {
		t.Fatalf("repair report %+v", rep)
	}
	if _, err := f.backend.Stat(ctx, orphan); err == nil {
		t.Fatal("orphan still there after repair")
	}
	if _, err := f.backend.Stat(ctx, "c/0000000000000001/00000000000000000000000000000001"); err != nil {
		t.Fatalf("repair removed a referenced blob: %v", err)
	}
}

func TestGraceSparesYoungBlobs(t *testing.T) {
	f := newFixture(t)
	f.addFile(t, "c/0000000000000001/00000000000000000000000000000003", "", []byte("in flight"), false)
	rep, err := FsckBackend(context.Background(), f.store, f.backend, FsckOptions{Repair: true, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("a blob younger than the grace period was judged: %+v", rep.Problems)
	}
}

func TestReportsMissingAndWrongSizeBlobsWithoutDeletingRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	missing := "c/0000000000000001/00000000000000000000000000000004"
	f.addFile(t, missing, "gone.bin", []byte("will vanish"), true)
	if err := f.backend.Delete(ctx, missing); err != nil {
		t.Fatal(err)
	}
	wrong := "c/0000000000000001/00000000000000000000000000000005"
	f.addFile(t, wrong, "short.bin", []byte("original"), true)
	if _, err := f.local.Put(ctx, wrong, strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	rep, err := FsckBackend(ctx, f.store, f.backend, FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(rep)
	if len(k["missing_blob"]) != 1 || k["missing_blob"][0].Key != missing || k["missing_blob"][0].Fixed {
		t.Fatalf("missing blob: %+v", rep.Problems)
	}
	if len(k["size_mismatch"]) != 1 || k["size_mismatch"][0].Key != wrong {
		t.Fatalf("size mismatch: %+v", rep.Problems)
	}
	if rep.Clean() {
		t.Fatal("a report with a missing blob is not clean")
	}
	if _, err := f.store.File(ctx, f.cand.ID, "gone.bin"); err != nil {
		t.Fatalf("fsck deleted metadata: %v", err)
	}
}

// verifyCounter is the store, counting its index checks.
type verifyCounter struct {
	*boltstore.Store
	verifies int
}

func (v *verifyCounter) Verify(ctx context.Context) error {
	v.verifies++
	return v.Store.Verify(ctx)
}

// TestFsckChecksEveryBackendAgainstItsRows: each backend is checked against the rows that record it
// (rows recording none are the default's), rows on an undeclared backend are reported, and the store's
// indexes are checked once.
func TestFsckChecksEveryBackendAgainstItsRows(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := backends.Checked("a", memory.New()), backends.Checked("b", memory.New())
	row := func(backend *backends.CheckedBackend, recorded, path string) {
		t.Helper()
		key := blobkey.File(f.cand.ID)
		data := []byte(path)
		if backend != nil {
			if _, err := backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		sum := sha256.Sum256(data)
		r := &metadata.File{OwnerID: f.cand.ID, Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), BlobKey: key, Backend: recorded}
		if _, err := f.store.CommitFile(ctx, r, false); err != nil {
			t.Fatal(err)
		}
	}
	row(a, "", "default.bin")
	row(a, "a", "a.bin")
	row(b, "b", "b.bin")
	row(nil, "gone", "gone.bin")
	orphan := blobkey.File(f.cand.ID)
	if _, err := b.Put(ctx, orphan, strings.NewReader("orphan"), 6, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	store := &verifyCounter{Store: f.store}
	s := Storage{Store: store, Default: "a", Backends: []Backend{{Name: "a", Blobs: a}, {Name: "b", Blobs: b}}}
	res, err := Fsck(ctx, s, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Backends) != 2 || res.Backends[0].Name != "a" || res.Backends[1].Name != "b" {
		t.Fatalf("reports %+v, want a and b in order", res.Backends)
	}
	if ra := res.Backends[0]; ra.FilesChecked != 2 || ra.BlobsChecked != 2 || len(ra.Problems) != 0 {
		t.Fatalf("backend a: %+v, want 2 rows, 2 blobs, no problem", ra)
	}
	rb := res.Backends[1]
	if rb.FilesChecked != 1 || rb.BlobsChecked != 2 || len(rb.Problems) != 1 || rb.Problems[0].Kind != "unreferenced_blob" || rb.Problems[0].Key != orphan {
		t.Fatalf("backend b: %+v, want 1 row, 2 blobs, the orphan", rb)
	}
	k := kinds(&res.Total)
	if res.Total.FilesChecked != 4 || len(res.Total.Problems) != 2 || len(k["unreferenced_blob"]) != 1 || len(k["unknown_backend"]) != 1 ||
		!strings.Contains(k["unknown_backend"][0].Detail, `"gone.bin"`) || res.Total.Clean() {
		t.Fatalf("total %+v", res.Total)
	}
	if store.verifies != 1 {
		t.Fatalf("the store's indexes were checked %d times, want once", store.verifies)
	}

	// Repair removes the orphan; the unknown backend's row stays for a human.
	res, err = Fsck(ctx, s, FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, orphan); !errors.Is(err, backends.ErrNotFound) || res.Total.Clean() {
		t.Fatalf("after repair: orphan %v, clean %v", err, res.Total.Clean())
	}
	if _, err := f.store.File(ctx, f.cand.ID, "gone.bin"); err != nil {
		t.Fatalf("fsck deleted metadata: %v", err)
	}
}
