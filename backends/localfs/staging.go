package localfs

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// StagingOrphans lists what interrupted work left behind, as slash-separated paths relative to the
// root: entries of .staging (files being written, directories being created or deleted) and upload
// directories under .uploads, whose last change (a part stored, the record written) is older than
// olderThan. A live Put keeps its staging file's modification time fresh while data flows, so a grace
// of minutes to hours spares uploads in flight; 0 lists everything (for offline checks only).
// Errors: ErrUnavailable after Close, a directory that cannot be read.
func (b *Backend) StagingOrphans(olderThan time.Duration) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	cutoff := time.Now().Add(-olderThan)
	var out []string
	for _, dir := range []string{stagingDir, uploadsDir} {
		ents, err := fs.ReadDir(b.root.FS(), dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("localfs staging: %w", err)
		}
		for _, e := range ents {
			name := dir + "/" + e.Name()
			last, err := b.lastChange(name, e, dir == uploadsDir)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) { // finished meanwhile
					continue
				}
				return nil, fmt.Errorf("localfs staging: %w", err)
			}
			if olderThan <= 0 || last.Before(cutoff) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// lastChange is an entry's modification time or, for an upload directory, the latest of the directory
// (a part renamed in) and its record.
func (b *Backend) lastChange(name string, e fs.DirEntry, upload bool) (time.Time, error) {
	fi, err := e.Info()
	if err != nil {
		return time.Time{}, err
	}
	last := fi.ModTime()
	if upload && e.IsDir() {
		if rfi, err := b.root.Stat(native(name + "/" + recordName)); err == nil && rfi.ModTime().After(last) {
			last = rfi.ModTime()
		}
	}
	return last, nil
}

// CleanStaging removes what StagingOrphans(olderThan) lists: abandoned staging files and multipart
// uploads (which then fail with ErrUploadNotFound). Errors: those of StagingOrphans, and every removal
// that failed, joined (the others are still attempted).
func (b *Backend) CleanStaging(olderThan time.Duration) error {
	names, err := b.StagingOrphans(olderThan)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if id, ok := strings.CutPrefix(name, uploadsDir+"/"); ok && uploadIDPattern.MatchString(id) {
			// Take the upload away the way Abort does, so a part being renamed in sees it gone.
			b.uploadsMu.Lock()
			trash, err := b.moveToTrash(id)
			b.uploadsMu.Unlock()
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
				continue
			}
			name = trash
		}
		if err := b.root.RemoveAll(native(name)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("localfs clean staging: %w", errors.Join(errs...))
	}
	return nil
}
