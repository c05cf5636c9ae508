package boltstore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// A snapshot taken while writers commit is the store as of one commit: every project created before it
// is in the copy, the copy passes CheckBackup and opens as a store with consistent indexes.
func TestSnapshotDuringWrites(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	ctx := t.Context()
	for i := range 50 {
		if _, err := s.EnsureProject(ctx, fmt.Sprintf("before/p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if _, err := s.EnsureProject(ctx, fmt.Sprintf("during/w%d/p%d", w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	snap, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := snap.WriteTo(&buf)
	must(t, err)
	if n != snap.Size() || int64(buf.Len()) != n {
		t.Errorf("wrote %d bytes (buffer %d), Size says %d", n, buf.Len(), snap.Size())
	}
	must(t, snap.Close())
	must(t, snap.Close()) // twice is fine
	stop.Store(true)
	wg.Wait()

	path := tempPath(t)
	must(t, os.WriteFile(path, buf.Bytes(), 0o600))
	info, err := CheckBackup(ctx, path, true)
	if err != nil || info.Version != knownVersion() || info.Size != n {
		t.Fatalf("CheckBackup = %+v, %v", info, err)
	}
	r := openStore(t, path)
	defer r.Close()
	must(t, r.Verify(ctx))
	for i := range 50 {
		if _, err := r.Project(ctx, metadata.ProjectRef{Path: fmt.Sprintf("before/p%d", i)}); err != nil {
			t.Errorf("project before/p%d missing from the copy: %v", i, err)
		}
	}
}

func TestCheckBackupRefuses(t *testing.T) {
	ctx := t.Context()
	garbage := tempPath(t)
	must(t, os.WriteFile(garbage, bytes.Repeat([]byte("not a database "), 1000), 0o600))
	if _, err := CheckBackup(ctx, garbage, true); !errors.Is(err, ErrNotAStore) {
		t.Errorf("garbage: %v, want ErrNotAStore", err)
	}
	if _, err := CheckBackup(ctx, tempPath(t), false); err == nil {
		t.Error("a missing file was accepted")
	}
	foreign := tempPath(t) // a bbolt file, but not mlgate's
	db := rawDB(t, foreign)
	must(t, db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }))
	must(t, db.Close())
	if _, err := CheckBackup(ctx, foreign, true); !errors.Is(err, ErrNotAStore) {
		t.Errorf("foreign bbolt file: %v, want ErrNotAStore", err)
	}
	newer := tempPath(t)
	must(t, openStore(t, newer).Close())
	db = rawDB(t, newer)
	must(t, db.Update(func(tx *bolt.Tx) error { return writeDBVersion(tx, knownVersion()+1) }))
	must(t, db.Close())
	if _, err := CheckBackup(ctx, newer, true); !errors.Is(err, metadata.ErrTooNew) {
		t.Errorf("newer schema: %v, want ErrTooNew", err)
	}
	truncated := tempPath(t)
	s := openStore(t, truncated)
	for i := range 200 {
		if _, err := s.EnsureProject(ctx, fmt.Sprintf("p%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	must(t, s.Close())
	data, err := os.ReadFile(truncated)
	must(t, err)
	must(t, os.WriteFile(truncated, data[:len(data)/2], 0o600))
	for _, indexes := range []bool{false, true} {
		if _, err := CheckBackup(ctx, truncated, indexes); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a truncated copy (indexes %v): %v, want ErrCorrupt", indexes, err)
		}
	}
	// Same length, garbage in the middle: bbolt's own assertions meet it, and CheckBackup says so.
	mangled := data[:len(data):len(data)]
	mangled = append([]byte(nil), mangled...)
	for i := 4 * 4096; i < len(mangled)-4096; i++ {
		mangled[i] = 0x5a
	}
	must(t, os.WriteFile(truncated, mangled, 0o600))
	for _, indexes := range []bool{false, true} {
		if _, err := CheckBackup(ctx, truncated, indexes); !errors.Is(err, ErrCorrupt) {
			t.Errorf("a mangled copy (indexes %v): %v, want ErrCorrupt", indexes, err)
		}
	}
}

func TestOpenSnapshotOfAHeldStore(t *testing.T) {
	path := tempPath(t)
	s := openStore(t, path)
	if _, err := OpenSnapshot(path); !errors.Is(err, ErrLocked) {
		t.Errorf("OpenSnapshot of a held store: %v, want ErrLocked", err)
	}
	must(t, s.Close())
	snap, err := OpenSnapshot(path)
	must(t, err)
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil || int64(buf.Len()) != snap.Size() {
		t.Errorf("offline snapshot: %d bytes of %d, %v", buf.Len(), snap.Size(), err)
	}
	must(t, snap.Close())
	must(t, openStore(t, path).Close()) // the snapshot let go of the file
}
