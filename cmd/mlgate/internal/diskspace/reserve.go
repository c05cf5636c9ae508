// Package diskspace keeps mlgate's metadata writable when the filesystem of its data directory fills up.
//
// bbolt commits by writing pages, and on a full filesystem even a delete needs a few free pages for its
// commit: without room, the very requests that would free space fail too. So the data directory holds a
// reserve file of written (not sparse) bytes. When a write finds the filesystem full, the reserve is
// deleted, which gives the metadata commits of deletes their room, and writes that need new space are
// refused (507) so that they do not take it. Once the filesystem has twice the reserve free again (files
// were deleted, or the filesystem grown), the reserve is written anew and writes are accepted, without a
// restart.
package diskspace

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// FileName is the reserve's name in the data directory.
const FileName = "mlgate.reserve"

// DefaultSize is the reserve mlgate serve keeps: room for thousands of metadata commits of deletes
// (each writes a few 4 KiB pages and the freelist), and little next to any disk that holds models.
const DefaultSize = 16 << 20

// checkInterval is how often a refusing Reserve looks whether space came back.
const checkInterval = time.Second

// Reserve is the space reserve of one data directory. It is safe for concurrent use.
type Reserve struct {
	dir  string
	path string
	size int64
	log  *slog.Logger

	refusing atomic.Bool
	mu       sync.Mutex // serialises deleting and writing the reserve file
	stop     chan struct{}
	done     chan struct{}
}

// Open writes the reserve of size bytes in dir, unless it is already there, and starts watching for
// space to come back while writes are refused. A filesystem too full for the reserve is no error: the
// Reserve starts out refusing. Errors: any other failure to write the reserve.
func Open(dir string, size int64, log *slog.Logger) (*Reserve, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Reserve{dir: dir, path: filepath.Join(dir, FileName), size: size, log: log,
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := r.create(); err != nil {
		if !isFull(err) {
			return nil, fmt.Errorf("space reserve: %w", err)
		}
		r.refusing.Store(true)
		log.Warn("the data directory's filesystem is full: writes that need space are refused (507) until "+
			"there is room again; deletes work", "dir", dir)
	}
	go r.watch()
	return r, nil
}

// Close stops watching. The reserve file stays for the next start.
func (r *Reserve) Close() error {
	close(r.stop)
	<-r.done
	return nil
}

// Refusing returns an error wrapping metadata.ErrInsufficientStorage while writes that need space are
// refused, else nil.
func (r *Reserve) Refusing() error {
	if r.refusing.Load() {
		return fmt.Errorf("%w: the server's data directory is full; deleting files still works and frees space, "+
			"and writes are accepted again as soon as there is room", metadata.ErrInsufficientStorage)
	}
	return nil
}

// Full is told that a write failed for lack of space. If the data directory's filesystem is the full
// one (less than the reserve free), the reserve is released for the metadata of deletes and writes that
// need space are refused from now on; a full filesystem elsewhere (a backend's own) changes nothing.
func (r *Reserve) Full() {
	if r.refusing.Load() {
		return
	}
	free, err := freeBytes(r.dir)
	if err == nil && free >= r.size {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refusing.Swap(true) {
		return
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		r.log.Error("could not release the space reserve", "path", r.path, "err", err)
	}
	r.log.Warn("the data directory's filesystem is full: released the space reserve for deletes; writes that "+
		"need space are refused (507) until there is room again", "dir", r.dir, "free_bytes", free, "reserve_bytes", r.size)
}

// watch writes the reserve anew, and accepts writes again, once the filesystem has room for it and as
// much again.
func (r *Reserve) watch() {
	defer close(r.done)
	tick := time.NewTicker(checkInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-tick.C:
		}
		if !r.refusing.Load() {
			continue
		}
		if free, err := freeBytes(r.dir); err != nil || free < 2*r.size {
			continue
		}
		r.mu.Lock()
		err := r.create()
		if err == nil {
			r.refusing.Store(false)
		}
		r.mu.Unlock()
		if err != nil {
			r.log.Debug("space reserve not restored yet", "err", err)
			continue
		}
		r.log.Info("the data directory has room again: space reserve restored, writes accepted", "dir", r.dir)
	}
}

// create writes the reserve file unless it is there with its full size. The bytes are random, so that
// a compressing or deduplicating filesystem really sets the space aside; the file appears under its
// name only once complete and synced.
func (r *Reserve) create() error {
	if fi, err := os.Stat(r.path); err == nil && fi.Size() >= r.size {
		return nil
	}
	tmp := r.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, rand.Reader, r.size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, r.path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}
