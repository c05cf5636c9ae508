package fsck

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
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
	pv, err := store.EnsurePackageVersion(ctx, p.ID, "m", "1.0.0")
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
	row := &metadata.File{CandidateID: f.cand.ID, Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), BlobKey: key}
	if _, err := f.store.CommitFile(ctx, row, true); err != nil {
		t.Fatal(err)
	}
}

func kinds(rep *Report) map[string][]Problem {
	out := map[string][]Problem{}
	for _, p := range rep.Problems {
		out[p.Kind] = append(out[p.Kind], p)
	}
	return out
}

func TestCleanStoreHasNoProblems(t *testing.T) {
	f := newFixture(t)
	f.addFile(t, "c/0000000000000001/00000000000000000000000000000001", "a.txt", []byte("a"), true)
	rep, err := Check(context.Background(), f.store, f.backend, Options{Staging: f.local})
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

	rep, err := Check(ctx, f.store, f.backend, Options{Staging: f.local})
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

	rep, err = Check(ctx, f.store, f.backend, Options{Repair: true, Staging: f.local})
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
	rep, err := Check(context.Background(), f.store, f.backend, Options{Repair: true, Grace: time.Hour})
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

	rep, err := Check(ctx, f.store, f.backend, Options{Repair: true})
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
