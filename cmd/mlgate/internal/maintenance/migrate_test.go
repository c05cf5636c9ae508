package maintenance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/blobkey"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/storetest"
)

// hooked is a memory backend that lets a test act right after a Put stored its blob (before the caller
// learns of it) and make Delete fail.
type hooked struct {
	*memory.Backend
	afterPut  func(key string)
	deleteErr error
}

func (h *hooked) Put(ctx context.Context, key string, r io.Reader, size int64, opts backends.PutOptions) (backends.Info, error) {
	info, err := h.Backend.Put(ctx, key, r, size, opts)
	if err == nil && h.afterPut != nil {
		h.afterPut(key)
	}
	return info, err
}

func (h *hooked) Delete(ctx context.Context, key string) error {
	if h.deleteErr != nil {
		return h.deleteErr
	}
	return h.Backend.Delete(ctx, key)
}

// keys lists every blob of h.
func (h *hooked) keys(t *testing.T) []string {
	t.Helper()
	items, _, err := h.Backend.List(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.Key)
	}
	return out
}

type migrateFixture struct {
	store         *boltstore.Store
	a, b          *hooked
	s             Storage
	vision, other *metadata.Candidate // of team/vision's model m and team/other's model n
}

// newMigrateFixture is a real bbolt store and two memory backends: "a", the default, and "b".
func newMigrateFixture(t *testing.T) *migrateFixture {
	t.Helper()
	ctx := context.Background()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	f := &migrateFixture{store: store, a: &hooked{Backend: memory.New()}, b: &hooked{Backend: memory.New()}}
	f.s = Storage{Store: store, Default: "a", Backends: []Backend{
		{Name: "a", Blobs: backends.Checked("a", f.a)},
		{Name: "b", Blobs: backends.Checked("b", f.b)},
	}}
	cand := func(project, model string) *metadata.Candidate {
		p, err := store.EnsureProject(ctx, project)
		if err != nil {
			t.Fatal(err)
		}
		pv, err := store.EnsurePackageVersion(ctx, p.ID, model, "1.0.0", 0)
		if err != nil {
			t.Fatal(err)
		}
		return pv.Candidate
	}
	f.vision, f.other = cand("team/vision", "m"), cand("team/other", "n")
	return f
}

// addFile stores data on the backend on (raw, no hooks) and commits its row, recorded on backend
// recorded ("" for the default).
func (f *migrateFixture) addFile(t *testing.T, on *hooked, recorded string, c *metadata.Candidate, path string, data []byte) *metadata.File {
	t.Helper()
	ctx := context.Background()
	key := blobkey.File(c.ID)
	if _, err := on.Backend.Put(ctx, key, bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	row := &metadata.File{OwnerID: c.ID, Path: path, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		ContentType: "application/octet-stream", BlobKey: key, Backend: recorded}
	if _, err := f.store.CommitFile(ctx, row, true); err != nil {
		t.Fatal(err)
	}
	return row
}

func (f *migrateFixture) row(t *testing.T, file *metadata.File) *metadata.File {
	t.Helper()
	r, err := f.store.File(context.Background(), file.OwnerID, file.Path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *migrateFixture) migrate(t *testing.T, opts MigrateOptions) (MigrateResult, error) {
	t.Helper()
	moves, _, err := PlanMigration(context.Background(), f.s, "a", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return Migrate(context.Background(), f.store, *f.s.Backend("a"), *f.s.Backend("b"), moves, opts)
}

// TestMigrateMovesVerifiedCopies: each file's blob is copied to b under a fresh key of its candidate,
// its row switched to the copy, the source deleted; a second run finds nothing to move.
func TestMigrateMovesVerifiedCopies(t *testing.T) {
	f := newMigrateFixture(t)
	ctx := context.Background()
	data := map[string][]byte{"default.bin": bytes.Repeat([]byte("d"), 300_000), "on-a.txt": []byte("recorded on a")}
	files := []*metadata.File{
		f.addFile(t, f.a, "", f.vision, "default.bin", data["default.bin"]), // before backends were recorded
		f.addFile(t, f.a, "a", f.other, "on-a.txt", data["on-a.txt"]),
	}
	stays := f.addFile(t, f.b, "b", f.vision, "already-on-b", []byte("b"))

	moves, total, err := PlanMigration(ctx, f.s, "a", Filter{})
	if err != nil || len(moves) != 2 || total != int64(len(data["default.bin"])+len(data["on-a.txt"])) {
		t.Fatalf("plan: %d moves, %d bytes, %v", len(moves), total, err)
	}
	if moves[0].Project != "team/vision" || moves[0].Model != "m" || moves[1].Project != "team/other" || moves[1].Model != "n" {
		t.Fatalf("plan names %+v %+v", moves[0], moves[1])
	}
	progress := 0
	res, err := Migrate(ctx, f.store, *f.s.Backend("a"), *f.s.Backend("b"), moves, MigrateOptions{Progress: func(n int) { progress += n }})
	if err != nil {
		t.Fatal(err)
	}
	if res != (MigrateResult{Moved: 2, MovedBytes: total}) || int64(progress) != total {
		t.Fatalf("result %+v, progress %d bytes; want 2 files and %d bytes", res, progress, total)
	}
	for _, old := range files {
		r := f.row(t, old)
		if id, ok := blobkey.ParseFile(r.BlobKey); r.Backend != "b" || r.BlobKey == old.BlobKey || !ok || id != old.OwnerID {
			t.Fatalf("row %q after migrate: backend %q, key %q (was %q)", r.Path, r.Backend, r.BlobKey, old.BlobKey)
		}
		if r.SHA256 != old.SHA256 || r.Size != old.Size {
			t.Fatalf("row %q changed its content: %+v", r.Path, r)
		}
		rc, info, err := f.b.Get(ctx, r.BlobKey, backends.All)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[r.Path]) || info.ContentType != "application/octet-stream" {
			t.Fatalf("copy of %q: %d bytes, content type %q", r.Path, len(got), info.ContentType)
		}
	}
	if left := f.a.keys(t); len(left) != 0 {
		t.Fatalf("source blobs left on a: %v", left)
	}
	if r := f.row(t, stays); r.BlobKey != stays.BlobKey || r.Backend != "b" {
		t.Fatalf("a file already on b changed: %+v", r)
	}

	// A rerun skips what was moved: nothing is left on a.
	moves, total, err = PlanMigration(ctx, f.s, "a", Filter{})
	if err != nil || len(moves) != 0 || total != 0 {
		t.Fatalf("replan after the migration: %d moves, %d bytes, %v", len(moves), total, err)
	}
	res, err = Migrate(ctx, f.store, *f.s.Backend("a"), *f.s.Backend("b"), moves, MigrateOptions{})
	if err != nil || res != (MigrateResult{}) || len(f.b.keys(t)) != 3 {
		t.Fatalf("rerun: %+v, %v, %d blobs on b", res, err, len(f.b.keys(t)))
	}
}

// TestMigrateSkipsRowsThatChanged: a file replaced or deleted between the copy and the switch keeps
// its new state, and the copy is removed again.
func TestMigrateSkipsRowsThatChanged(t *testing.T) {
	for _, change := range []string{"replaced", "deleted"} {
		t.Run(change, func(t *testing.T) {
			f := newMigrateFixture(t)
			ctx := context.Background()
			old := f.addFile(t, f.a, "a", f.vision, "w.bin", []byte("old bytes"))
			var replacement *metadata.File
			f.b.afterPut = func(string) {
				f.b.afterPut = nil
				if change == "deleted" {
					if _, err := f.store.DeleteFile(ctx, old.OwnerID, old.Path); err != nil {
						t.Error(err)
					}
					return
				}
				replacement = f.addFile(t, f.a, "a", f.vision, "w.bin", []byte("new bytes"))
			}
			res, err := f.migrate(t, MigrateOptions{})
			if err != nil || res != (MigrateResult{Skipped: 1}) {
				t.Fatalf("migrate: %+v, %v; want one skipped file", res, err)
			}
			if left := f.b.keys(t); len(left) != 0 {
				t.Fatalf("the copy of a changed row stayed on b: %v", left)
			}
			r, err := f.store.File(ctx, old.OwnerID, old.Path)
			switch change {
			case "deleted":
				if !errors.Is(err, metadata.ErrNotFound) {
					t.Fatalf("deleted row: %+v, %v", r, err)
				}
			case "replaced":
				if err != nil || r.BlobKey != replacement.BlobKey || r.Backend != "a" {
					t.Fatalf("replaced row: %+v, %v; want the replacement on a", r, err)
				}
			}
		})
	}
}

// TestMigrateRefusesACorruptSource: a source blob that does not match its row is not copied; the row
// stays, and the error says to run again.
func TestMigrateRefusesACorruptSource(t *testing.T) {
	f := newMigrateFixture(t)
	ctx := context.Background()
	file := f.addFile(t, f.a, "a", f.vision, "w.bin", []byte("the real bytes"))
	if _, err := f.a.Backend.Put(ctx, file.BlobKey, strings.NewReader("the rotten one"), file.Size, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.migrate(t, MigrateOptions{})
	if !errors.Is(err, backends.ErrChecksum) || !strings.Contains(err.Error(), "run again to resume") || res != (MigrateResult{}) {
		t.Fatalf("migrate: %+v, %v; want ErrChecksum", res, err)
	}
	if r := f.row(t, file); r.BlobKey != file.BlobKey || r.Backend != "a" {
		t.Fatalf("row after a failed copy: %+v", r)
	}
	if left := f.b.keys(t); len(left) != 0 {
		t.Fatalf("a bad copy stayed on b: %v", left)
	}
	if _, err := f.a.Stat(ctx, file.BlobKey); err != nil {
		t.Fatalf("the source of a failed copy is gone: %v", err)
	}
}

// TestMigrateReportsALeftoverSource: a source blob that cannot be deleted does not undo the move; the
// hook hears of it.
func TestMigrateReportsALeftoverSource(t *testing.T) {
	f := newMigrateFixture(t)
	file := f.addFile(t, f.a, "a", f.vision, "w.bin", []byte("bytes"))
	f.a.deleteErr = errors.New("disk on fire")
	var leftovers []string
	res, err := f.migrate(t, MigrateOptions{Leftover: func(key string, err error) {
		if !strings.Contains(err.Error(), "disk on fire") {
			t.Errorf("leftover %s: %v", key, err)
		}
		leftovers = append(leftovers, key)
	}})
	if err != nil || res.Moved != 1 {
		t.Fatalf("migrate: %+v, %v", res, err)
	}
	if len(leftovers) != 1 || leftovers[0] != file.BlobKey {
		t.Fatalf("leftovers %v, want the source %s", leftovers, file.BlobKey)
	}
	if r := f.row(t, file); r.Backend != "b" {
		t.Fatalf("row not switched: %+v", r)
	}
}

func TestPlanMigrationFilters(t *testing.T) {
	f := newMigrateFixture(t)
	f.addFile(t, f.a, "", f.vision, "v.bin", []byte("v"))
	f.addFile(t, f.a, "a", f.other, "o.bin", []byte("o"))
	for _, c := range []struct {
		filter Filter
		want   []string
	}{
		{Filter{}, []string{"v.bin", "o.bin"}},
		{Filter{Project: "*", Model: "*"}, []string{"v.bin", "o.bin"}},
		{Filter{Project: "team/v*"}, []string{"v.bin"}},
		{Filter{Model: "n"}, []string{"o.bin"}},
		{Filter{Project: "team/vision", Model: "n"}, nil},
	} {
		moves, _, err := PlanMigration(context.Background(), f.s, "a", c.filter)
		var got []string
		for _, m := range moves {
			got = append(got, m.File.Path)
		}
		if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("filter %+v: %v, %v; want %v", c.filter, got, err, c.want)
		}
	}
	if err := (Filter{Model: "["}).Validate(); !errors.Is(err, path.ErrBadPattern) || !strings.Contains(err.Error(), `pattern "["`) {
		t.Fatalf("bad pattern: %v", err)
	}
	if err := (Filter{Project: "team/*", Model: "llm-?"}).Validate(); err != nil {
		t.Fatalf("good patterns: %v", err)
	}
}

// A logged model's files are planned under its model, as a candidate's are, and moved like them.
func TestMigrationMovesLoggedModelFiles(t *testing.T) {
	f := newMigrateFixture(t)
	ctx := context.Background()
	lm := &metadata.LoggedModel{ModelID: f.vision.ModelID, Name: "model"}
	if err := f.store.CreateLoggedModel(ctx, lm); err != nil {
		t.Fatal(err)
	}
	file := f.addFile(t, f.a, "", &metadata.Candidate{ID: lm.ID}, "MLmodel", []byte("flavors: {}"))
	f.addFile(t, f.a, "", f.other, "o.bin", []byte("o"))
	moves, _, err := PlanMigration(ctx, f.s, "a", Filter{Project: "team/vision", Model: "m"})
	if err != nil || len(moves) != 1 || moves[0].File.OwnerID != lm.ID {
		t.Fatalf("plan: %+v, %v", moves, err)
	}
	if _, err := Migrate(ctx, f.store, *f.s.Backend("a"), *f.s.Backend("b"), moves, MigrateOptions{}); err != nil {
		t.Fatal(err)
	}
	if row := f.row(t, file); row.Backend != "b" {
		t.Fatalf("row after the move: %+v", row)
	}
}

// TestMigrateQueuesTheSourceOnASharedStore: with a store that replicas share, the source blob of a moved
// file is not deleted, since another replica may be streaming it: its deletion is queued with the switch,
// at least the source's redirect expiry plus grace away.
func TestMigrateQueuesTheSourceOnASharedStore(t *testing.T) {
	f := newMigrateFixture(t)
	shared := storetest.WithMemoryQueue(f.store)
	f.s.Store = shared
	f.s.Backends[0].Blobs = backends.Checked("a", presigner{f.a}, backends.WithDownloadRedirect(backends.RedirectPolicy{Expiry: time.Hour, Grace: time.Hour}))
	file := f.addFile(t, f.a, "a", f.vision, "w.bin", []byte("weights"))
	moves, _, err := PlanMigration(context.Background(), f.s, "a", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := Migrate(context.Background(), shared, *f.s.Backend("a"), *f.s.Backend("b"), moves, MigrateOptions{DeletionDelay: time.Minute})
	if err != nil || res.Moved != 1 {
		t.Fatalf("migrate: %+v, %v", res, err)
	}
	if r := f.row(t, file); r.Backend != "b" {
		t.Fatalf("row after the move: %+v", r)
	}
	if left := f.a.keys(t); len(left) != 1 || left[0] != file.BlobKey {
		t.Fatalf("blobs on a: %v, want the source kept for its queued deletion", left)
	}
	d, ok := shared.Queued(file.BlobKey)
	if !ok || d.Backend != "a" || d.NotBefore.Before(start.Add(2*time.Hour)) {
		t.Fatalf("queued deletion %+v (%v), want backend a, two hours (the redirect's) from the move", d, ok)
	}
}

// presigner makes a memory backend a backends.Presigner, so that a redirect policy applies to it.
type presigner struct{ *hooked }

func (presigner) PresignGet(context.Context, string, time.Duration, string) (string, error) {
	return "http://s3.invalid/x", nil
}
