package artifact

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/storetest"
)

type deletionFixture struct {
	svc   *Service
	store *storetest.QueuedStore
	blobs *memory.Backend
	now   time.Time
	owner uint64
}

func newDeletionFixture(t *testing.T, redirect *backends.RedirectPolicy) *deletionFixture {
	t.Helper()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	ctx := t.Context()
	p, err := bolt.EnsureProject(ctx, "team")
	if err != nil {
		t.Fatal(err)
	}
	m := &metadata.Model{Project: p.ID, Name: "m"}
	if err := bolt.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	c := &metadata.Candidate{ModelID: m.ID}
	if err := bolt.CreateCandidate(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	f := &deletionFixture{store: storetest.WithMemoryQueue(bolt),
		blobs: memory.New(), now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), owner: c.ID}
	var opts []backends.CheckedOption
	if redirect != nil {
		opts = append(opts, backends.WithDownloadRedirect(*redirect))
	}
	st, err := NewStaticStorage(map[string]*backends.CheckedBackend{"s3": backends.Checked("s3", presignOnly{f.blobs}, opts...)}, "s3", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc = New(Deps{Store: f.store, Current: func() Storage { return st }, MaxFileSize: 1 << 20, DeletionDelay: time.Minute})
	f.svc.now = func() time.Time { return f.now }
	return f
}

// presignOnly makes a memory backend a Presigner, so that a redirect policy applies to it.
type presignOnly struct{ *memory.Backend }

func (presignOnly) PresignGet(context.Context, string, time.Duration, string) (string, error) {
	return "http://s3.invalid/x", nil
}

func (f *deletionFixture) put(t *testing.T, path, body string) *metadata.File {
	t.Helper()
	row, err := f.svc.Store(t.Context(), Upload{OwnerID: f.owner, Path: path, Body: strings.NewReader(body), Size: int64(len(body))})
	if err != nil {
		t.Fatal(err)
	}
	return row
}

func (f *deletionFixture) keys(t *testing.T) []string {
	t.Helper()
	items, _, err := f.blobs.List(t.Context(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	slices.Sort(keys)
	return keys
}

// TestSharedStoreQueuesDeletions: with a shared store, a replaced or deleted file's blob is queued for a
// delay from the change, not deleted; deleteDue deletes it once due, and not before.
func TestSharedStoreQueuesDeletions(t *testing.T) {
	f := newDeletionFixture(t, nil)
	old := f.put(t, "w.bin", "old bytes")
	gone := f.put(t, "gone.bin", "soon deleted")
	f.put(t, "w.bin", "new bytes")
	if err := f.svc.Delete(t.Context(), f.owner, "gone.bin"); err != nil {
		t.Fatal(err)
	}
	for _, row := range []*metadata.File{old, gone} {
		d, ok := f.store.Queued(row.BlobKey)
		nb := d.NotBefore
		if !ok || !nb.Equal(f.now.Add(time.Minute)) {
			t.Errorf("blob of %s queued until %v (%v), want a minute from the change", row.Path, nb, ok)
		}
	}
	if got := len(f.keys(t)); got != 3 {
		t.Fatalf("%d blobs right after the changes, want 3: nothing is deleted before its delay", got)
	}
	f.now = f.now.Add(59 * time.Second)
	f.svc.deleteDue(t.Context())
	if got := len(f.keys(t)); got != 3 {
		t.Fatalf("%d blobs before the delay ended, want 3", got)
	}
	f.now = f.now.Add(time.Second)
	f.svc.deleteDue(t.Context())
	cur, err := f.store.File(t.Context(), f.owner, "w.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.keys(t); !slices.Equal(got, []string{cur.BlobKey}) {
		t.Errorf("blobs once due: %v, want only the current one %s", got, cur.BlobKey)
	}
}

// TestSharedStoreReaderLease: a blob this process still streams is not deleted when its deletion falls
// due: deleteDue extends it first, a full delay from now, until the download ends.
func TestSharedStoreReaderLease(t *testing.T) {
	f := newDeletionFixture(t, nil)
	old := f.put(t, "w.bin", "old bytes")
	release := f.svc.readers.acquire(old.BlobKey)
	f.put(t, "w.bin", "new bytes")
	for range 3 {
		f.now = f.now.Add(50 * time.Second)
		f.svc.deleteDue(t.Context())
		d, ok := f.store.Queued(old.BlobKey)
		nb := d.NotBefore
		if !ok || !nb.Equal(f.now.Add(time.Minute)) {
			t.Fatalf("at %v the read blob's deletion is at %v (%v), want a minute later", f.now, nb, ok)
		}
		if !slices.Contains(f.keys(t), old.BlobKey) {
			t.Fatal("a blob still read was deleted")
		}
	}
	release()
	f.now = f.now.Add(time.Minute)
	f.svc.deleteDue(t.Context())
	if slices.Contains(f.keys(t), old.BlobKey) {
		t.Error("the blob outlived its last reader by a delay and is still there")
	}
}

// TestSharedStoreRedirectWait: on a backend that redirects downloads, a replaced blob waits at least the
// redirect's expiry plus its grace, longer than the deletion delay.
func TestSharedStoreRedirectWait(t *testing.T) {
	f := newDeletionFixture(t, &backends.RedirectPolicy{Expiry: 5 * time.Minute, Grace: 10 * time.Minute})
	old := f.put(t, "w.bin", "old bytes")
	f.put(t, "w.bin", "new bytes")
	if d, ok := f.store.Queued(old.BlobKey); !ok || !d.NotBefore.Equal(f.now.Add(15*time.Minute)) {
		t.Errorf("queued until %v (%v), want the redirect's 15 minutes", d.NotBefore, ok)
	}
}

// TestSharedStoreUnknownBackendRequeues: a due deletion on a backend this process does not have is
// queued again, not dropped: another replica's configuration may have it.
func TestSharedStoreUnknownBackendRequeues(t *testing.T) {
	f := newDeletionFixture(t, nil)
	if err := f.store.QueueBlobDeletion(t.Context(), "elsewhere", "f/1/x", f.now); err != nil {
		t.Fatal(err)
	}
	f.svc.deleteDue(t.Context())
	if d, ok := f.store.Queued("f/1/x"); !ok || !d.NotBefore.Equal(f.now.Add(time.Minute)) {
		t.Errorf("requeued until %v (%v), want a delay later", d.NotBefore, ok)
	}
}

// TestSharedStoreDeleteRowsQueues: a logged model deleted with its files (DeleteRows) queues their blobs.
func TestSharedStoreDeleteRowsQueues(t *testing.T) {
	f := newDeletionFixture(t, nil)
	row := f.put(t, "a.bin", "bytes")
	err := f.svc.DeleteRows(t.Context(), func(ctx context.Context) ([]*metadata.File, error) {
		r, err := f.store.DeleteFile(ctx, f.owner, "a.bin")
		return []*metadata.File{r}, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.store.Queued(row.BlobKey); !ok {
		t.Error("DeleteRows queued no deletion")
	}
	if !slices.Contains(f.keys(t), row.BlobKey) {
		t.Error("DeleteRows deleted the blob at once")
	}
}
