package artifact

import (
	"context"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

// DirEntry is one entry of a directory listing: a file, or a directory holding files.
type DirEntry struct {
	Name  string // relative to the listed directory, no "/"
	IsDir bool
	Size  int64 // files only
}

// listPage is how many rows one ListFiles call of a directory listing reads.
const listPage = 1000

// ListDir lists one level of dir ("" = the owner's root) of a candidate's or logged model's files,
// folding deeper files into directory entries, in path order. The store lists recursively, so this
// reads every row under dir: O(files below dir) per listing, in pages of listPage rows with no
// transaction held between pages. Rows of one subdirectory are contiguous in path order, so comparing
// with the previous entry is enough to fold them. A missing directory lists as empty. Errors are the
// store's: metadata.ErrNotFound for an unknown owner, ErrInvalid for a bad dir.
func (a *Service) ListDir(ctx context.Context, ownerID uint64, dir string) ([]DirEntry, error) {
	prefix := ""
	if dir != "" {
		prefix = dir + "/"
	}
	var out []DirEntry
	token := ""
	for {
		files, next, err := a.store.ListFiles(ctx, ownerID, dir, metadata.Page{Token: token, Limit: listPage})
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			rel := strings.TrimPrefix(f.Path, prefix)
			if sub, _, isDeeper := strings.Cut(rel, "/"); isDeeper {
				if n := len(out); n == 0 || !out[n-1].IsDir || out[n-1].Name != sub {
					out = append(out, DirEntry{Name: sub, IsDir: true})
				}
				continue
			}
			out = append(out, DirEntry{Name: rel, Size: f.Size})
		}
		if next == "" {
			return out, nil
		}
		token = next
	}
}
