package diskspace

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/backendtest/tmpfs"
	"github.com/mlgate/mlgate/metadata"
)

func TestReserve(t *testing.T) {
	const size = 1 << 20
	dir := tmpfs.Mount(t, 16<<20)
	r, err := Open(dir, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reserve := filepath.Join(dir, FileName)
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != size {
		t.Fatalf("reserve after Open: %v %v", fi, err)
	}

	// A full filesystem elsewhere (a backend's) changes nothing here.
	r.Full()
	if err := r.Refusing(); err != nil {
		t.Fatalf("refusing with room to spare: %v", err)
	}

	filler := tmpfs.Fill(t, dir)
	r.Full()
	if err := r.Refusing(); !errors.Is(err, metadata.ErrInsufficientStorage) {
		t.Fatalf("Refusing on a full disk: %v", err)
	}
	if _, err := os.Stat(reserve); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the reserve was not released: %v", err)
	}
	if free, err := freeBytes(dir); err != nil || free < size {
		t.Fatalf("free after releasing the reserve: %d (%v), want at least %d", free, err, size)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "writes to be accepted once space came back", func() bool { return r.Refusing() == nil })
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != size {
		t.Fatalf("reserve after space came back: %v %v", fi, err)
	}
}

// TestReserveOnAFullDisk: starting on a full filesystem is no error: writes are refused until there is
// room for the reserve and as much again.
func TestReserveOnAFullDisk(t *testing.T) {
	const size = 1 << 20
	dir := tmpfs.Mount(t, 16<<20)
	filler := tmpfs.Fill(t, dir)
	r, err := Open(dir, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Refusing(); err == nil {
		t.Fatal("not refusing on a full disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "writes to be accepted once space came back", func() bool { return r.Refusing() == nil })
}
