package localfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
)

func open(t *testing.T) (*Backend, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := New(dir, WithMinPartSize(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, dir
}

// files lists every regular file under dir, relative and slash-separated.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blocking yields a first chunk, then blocks until ctx is done, as a client that stops sending does.
type blocking struct {
	ctx     context.Context
	started chan struct{}
	n       int
}

func (r *blocking) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.n++
		close(r.started)
		return copy(p, bytes.Repeat([]byte("x"), 4096)), nil
	}
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func TestCancelLeavesNothing(t *testing.T) {
	b, dir := open(t)
	id, err := b.CreateMultipart(t.Context(), "c/1/mp", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// cancelled runs op with a blocking body and cancels once op has started reading it.
	cancelled := func(op func(ctx context.Context, r io.Reader) error) error {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := &blocking{ctx: ctx, started: make(chan struct{})}
		go func() {
			select {
			case <-r.started:
			case <-ctx.Done():
			}
			cancel()
		}()
		return op(ctx, r)
	}
	for _, be := range []backends.Backend{b, backends.Checked("localfs", b)} {
		for _, size := range []int64{-1, 1 << 20} {
			err := cancelled(func(ctx context.Context, r io.Reader) error {
				_, err := be.Put(ctx, "c/1/blob", r, size, backends.PutOptions{})
				return err
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("put: %v, want context.Canceled", err)
			}
			err = cancelled(func(ctx context.Context, r io.Reader) error {
				_, err := be.PutPart(ctx, "c/1/mp", id, 1, r, size)
				return err
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("put part: %v, want context.Canceled", err)
			}
		}
	}
	// Only the upload's record: no blob, no part, no staging file.
	if got, want := files(t, dir), []string{".uploads/" + id + "/upload.json"}; !slices.Equal(got, want) {
		t.Fatalf("files under the root: %v, want %v", got, want)
	}
}

func TestStagingOrphans(t *testing.T) {
	b, dir := open(t)
	ctx := t.Context()
	// A Put killed mid-way (SIGKILL: no deferred cleanup) leaves its staging file behind.
	crashed := filepath.Join(dir, ".staging", "put-0123456789abcdef")
	if err := os.WriteFile(crashed, []byte("half a blob"), 0o640); err != nil {
		t.Fatal(err)
	}
	// And an upload nobody finishes.
	id, err := b.CreateMultipart(ctx, "c/1/abandoned", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PutPart(ctx, "c/1/abandoned", id, 1, strings.NewReader("part"), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "c/1/blob", strings.NewReader("committed"), 9, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	left, err := b.StagingOrphans(time.Hour)
	if err != nil || len(left) != 0 {
		t.Fatalf("fresh leftovers must be spared by the grace period: %v, %v", left, err)
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{crashed, filepath.Join(dir, ".uploads", id), filepath.Join(dir, ".uploads", id, "upload.json")} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	left, err = b.StagingOrphans(time.Hour)
	want := []string{".staging/put-0123456789abcdef", ".uploads/" + id}
	if err != nil || !slices.Equal(left, want) {
		t.Fatalf("orphans: %v, %v; want %v", left, err, want)
	}
	if err := b.CleanStaging(time.Hour); err != nil {
		t.Fatal(err)
	}
	if left, err := b.StagingOrphans(0); err != nil || len(left) != 0 {
		t.Fatalf("after cleaning: %v, %v", left, err)
	}
	if _, err := b.ListParts(ctx, "c/1/abandoned", id); !errors.Is(err, backends.ErrUploadNotFound) {
		t.Fatalf("cleaned upload: %v", err)
	}
	if got := files(t, dir); !slices.Equal(got, []string{"c/1/blob"}) {
		t.Fatalf("files after cleaning: %v", got)
	}
}

func TestLayout(t *testing.T) {
	b, dir := open(t)
	ctx := t.Context()
	if _, err := b.Put(ctx, "c/000000000000002a/9f1c", strings.NewReader("hello"), 5, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "c", "000000000000002a", "9f1c"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("blob file: %q, %v", got, err)
	}
	id, err := b.CreateMultipart(ctx, "c/000000000000002a/mp", backends.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.PutPart(ctx, "c/000000000000002a/mp", id, 7, strings.NewReader("part"), 4)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ".uploads", id, "00007"))
	if err != nil || string(raw) != p.ETag+"\npart" {
		t.Fatalf("part file: %q, %v", raw, err)
	}
	if err := b.AbortMultipart(ctx, "c/000000000000002a/mp", id); err != nil {
		t.Fatal(err)
	}
	// Delete takes the directories it empties along.
	if err := b.Delete(ctx, "c/000000000000002a/9f1c"); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".staging", ".uploads"}) {
		t.Fatalf("root after deleting everything: %v", names)
	}
}

func TestKeyClash(t *testing.T) {
	b, _ := open(t)
	ctx := t.Context()
	put := func(key string) error {
		_, err := b.Put(ctx, key, strings.NewReader("x"), 1, backends.PutOptions{})
		return err
	}
	if err := put("a"); err != nil {
		t.Fatal(err)
	}
	if err := put("a/b"); !errors.Is(err, backends.ErrInvalidKey) {
		t.Fatalf("put under a blob: %v, want ErrInvalidKey", err)
	}
	if err := put("x/y"); err != nil {
		t.Fatal(err)
	}
	if err := put("x"); !errors.Is(err, backends.ErrInvalidKey) {
		t.Fatalf("put over a directory of blobs: %v, want ErrInvalidKey", err)
	}
	if err := b.Delete(ctx, "x/y"); err != nil {
		t.Fatal(err)
	}
	if err := put("x"); err != nil {
		t.Fatalf("put where an emptied directory was: %v", err)
	}
	if left, _ := b.StagingOrphans(0); len(left) > 0 {
		t.Fatalf("failed puts left %v", left)
	}
}

func TestConfinedToRoot(t *testing.T) {
	b, dir := open(t)
	ctx := t.Context()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Skip("no symlinks:", err)
	}
	if _, _, err := b.Get(ctx, "evil/secret", backends.All); err == nil {
		t.Fatal("read a file outside the root through a symlink")
	}
	if _, err := b.Put(ctx, "evil/new", strings.NewReader("x"), 1, backends.PutOptions{}); err == nil {
		t.Fatal("wrote outside the root through a symlink")
	}
	if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
		t.Fatal("file created outside the root")
	}
	// Upload ids come from clients: nothing but our own shape may become a path.
	for _, id := range []string{"..", "../.staging", "../../etc", ".", ""} {
		if _, err := b.ListParts(ctx, "k", id); !errors.Is(err, backends.ErrUploadNotFound) {
			t.Fatalf("upload id %q: %v", id, err)
		}
	}
}

func TestListSkipsForeignEntries(t *testing.T) {
	b, dir := open(t)
	ctx := t.Context()
	for _, p := range []string{"lost+found/x", "README.TXT", "c/UPPER", "c/.hidden"} {
		full := filepath.Join(dir, filepath.FromSlash(p))
		_ = os.MkdirAll(filepath.Dir(full), 0o750)
		if err := os.WriteFile(full, nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, "c/ok", strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	items, next, err := b.List(ctx, "", "", 100)
	if err != nil || next != "" || len(items) != 1 || items[0].Key != "c/ok" {
		t.Fatalf("list: %+v, %q, %v", items, next, err)
	}
}

func TestClosed(t *testing.T) {
	b, _ := open(t)
	ctx := t.Context()
	if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, "k", backends.All)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(rc); err != nil || string(got) != "x" {
		t.Fatalf("reader opened before Close: %q, %v", got, err)
	}
	rc.Close()
	if _, err := b.Stat(ctx, "k"); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("stat after close: %v", err)
	}
	if _, err := b.Put(ctx, "k", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("put after close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestFactory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "root")
	be, err := Factory(t.Context(), []byte(`{"root": "`+filepath.ToSlash(dir)+`", "min_part_size": 1024}`))
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	d, err := be.Describe(t.Context())
	if err != nil || d.Name != "localfs" || d.MinPartSize != 1024 {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	for _, bad := range []string{`{}`, `{"root": "x", "bogus": 1}`, `{"root": "x", "min_part_size": -1}`, `[`} {
		if _, err := Factory(t.Context(), []byte(bad)); err == nil {
			t.Errorf("config %s accepted", bad)
		}
	}
}
