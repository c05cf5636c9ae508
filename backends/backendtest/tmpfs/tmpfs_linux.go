package tmpfs

import (
	"strconv"
	"syscall"
)

func mount(dir string, size int64) error {
	return syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+strconv.FormatInt(size, 10)+",mode=0700")
}

// unmount detaches at once even if a process the test started still has files open there; the kernel
// frees the filesystem when the last one closes.
func unmount(dir string) error { return syscall.Unmount(dir, syscall.MNT_DETACH) }
