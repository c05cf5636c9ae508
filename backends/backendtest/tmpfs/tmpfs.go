// Package tmpfs gives tests a small filesystem of their own that they can fill: a size-limited tmpfs
// mounted over a temporary directory, so that "no space left on device" is the real kernel error and
// nothing else on the machine runs out of space.
package tmpfs

import (
	"os"
	"path/filepath"
	"testing"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory and returns the directory. It is
// unmounted (with everything in it) when the test ends. Mounting needs root (or CAP_SYS_ADMIN) on
// Linux; where that is not permitted the test is skipped with a message saying so.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := mount(dir, size); err != nil {
		t.Skipf("cannot mount a %d-byte tmpfs to fill (this test needs root on Linux): %v", size, err)
	}
	t.Cleanup(func() {
		if err := unmount(dir); err != nil {
			t.Errorf("unmounting the test tmpfs at %s: %v", dir, err)
		}
	})
	return dir
}

// Fill writes a file in dir until its filesystem is full, as another program on the machine would, and
// returns the file's path: removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
	}
	return p
}
