package localfs_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/tmpfs"
	"github.com/mlgate/mlgate/backends/localfs"
)

// TestFullFilesystem: on a full filesystem every write fails with ErrInsufficientStorage and leaves
// nothing in staging; deleting blobs needs no space and makes room for the next write.
func TestFullFilesystem(t *testing.T) {
	root := tmpfs.Mount(t, 4<<20)
	b, err := localfs.New(root, localfs.WithMinPartSize(1<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	blob := bytes.Repeat([]byte{7}, 1<<20)
	var stored []string
	for i := 0; ; i++ {
		key := "c/0000000000000001/" + string(rune('a'+i)) + "000000000000000000000000000000000000000000000000000000000000000"
		_, err := b.Put(ctx, key, bytes.NewReader(blob), int64(len(blob)), backends.PutOptions{})
		if err != nil {
			if !errors.Is(err, backends.ErrInsufficientStorage) {
				t.Fatalf("put %d on a filling filesystem: %v, want ErrInsufficientStorage", i, err)
			}
			break
		}
		stored = append(stored, key)
		if i > 10 {
			t.Fatal("a 4 MiB filesystem took more than 10 MiB")
		}
	}
	if len(stored) == 0 {
		t.Fatal("nothing fit")
	}
	id, err := b.CreateMultipart(ctx, "c/0000000000000002/0000000000000000000000000000000000000000000000000000000000000000", backends.PutOptions{})
	if err == nil {
		_, err = b.PutPart(ctx, "c/0000000000000002/0000000000000000000000000000000000000000000000000000000000000000", id, 1, bytes.NewReader(blob), int64(len(blob)))
		_ = b.AbortMultipart(ctx, "c/0000000000000002/0000000000000000000000000000000000000000000000000000000000000000", id)
	}
	if !errors.Is(err, backends.ErrInsufficientStorage) {
		t.Fatalf("multipart on a full filesystem: %v, want ErrInsufficientStorage", err)
	}
	if left, err := b.StagingOrphans(0); err != nil || len(left) > 0 {
		t.Fatalf("failed writes left %v in staging (%v)", left, err)
	}
	for _, key := range stored {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatalf("delete on a full filesystem: %v", err)
		}
	}
	if _, err := b.Put(ctx, stored[0], bytes.NewReader(blob), int64(len(blob)), backends.PutOptions{}); err != nil {
		t.Fatalf("put once space was freed: %v", err)
	}
}
