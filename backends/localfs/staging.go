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
	return b.leftovers(olderThan, olderThan)
}

// leftovers is StagingOrphans with a grace of its own for multipart uploads.
func (b *Backend) leftovers(stagingGrace, uploadGrace time.Duration) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var out []string
	for _, dir := range []string{stagingDir, uploadsDir} {
		olderThan := stagingGrace
		if dir == uploadsDir {
			olderThan = uploadGrace
		}
		cutoff := time.Now().Add(-olderThan)
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
	_, _, err := b.SweepLeftovers(olderThan, olderThan)
	return err
}

// SweepLeftovers removes staging entries older than stagingGrace and multipart uploads whose last
// change is older than uploadGrace (see StagingOrphans), and returns the names it removed of each. A running
// server sweeps with a grace per kind: a staging file is written continuously while its upload runs,
// while a multipart upload may rest between parts for as long as its client likes. Errors: those of
// StagingOrphans, and every removal that failed, joined (the others are still attempted).
func (b *Backend) SweepLeftovers(stagingGrace, uploadGrace time.Duration) (staging, uploads []string, err error) {
	names, err := b.leftovers(stagingGrace, uploadGrace)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, name := range names {
		listed := name
		id, isUpload := strings.CutPrefix(name, uploadsDir+"/")
		if isUpload && uploadIDPattern.MatchString(id) {
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
			continue
		}
		if isUpload {
			uploads = append(uploads, listed)
		} else {
			staging = append(staging, listed)
		}
	}
	if len(errs) > 0 {
		return staging, uploads, fmt.Errorf("localfs clean staging: %w", errors.Join(errs...))
	}
	return staging, uploads, nil
}
