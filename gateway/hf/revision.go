package hf

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mlgate/mlgate/gateway/modelversion"
	"github.com/mlgate/mlgate/metadata"
)

// Main is the Hugging Face client's default revision. It names the version modelversion.Latest names
// (the OCI "latest" rule), so both protocols agree on which version a bare pull gets.
const Main = "main"

// Snapshot is one version as the Hugging Face protocol shows it: its files in path order and its
// revision sha.
type Snapshot struct {
	Version *metadata.Version
	Files   []modelversion.File
	// SHA is RevisionSHA(Files): the "commit" the client caches the snapshot under.
	SHA string
}

// NewSnapshot orders files by path and computes their revision sha.
func NewSnapshot(v *metadata.Version, files []modelversion.File) *Snapshot {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b modelversion.File) int { return strings.Compare(a.Path, b.Path) })
	return &Snapshot{Version: v, Files: files, SHA: RevisionSHA(files)}
}

// revisionDomain starts the hashed text, so that a revision sha is never the hash of anything else
// mlgate hashes, and a later format can change it on purpose.
const revisionDomain = "mlgate hf revision v1\n"

// RevisionSHA is the 40-hex "commit sha" of a version with these files: the first 160 bits of the
// SHA-256 of each file's path, size and sha256, in path order (files must be sorted by path). It
// depends on nothing else (not the model, the semver, an alias, a time or a blob key), so the same
// files give the same sha on every request and every replica, and a version's sha changes exactly
// when its files do. The client keys its cache by it (snapshots/<sha>/), which is right: the same sha
// is the same bytes. Two versions with identical files share one sha; either serves the same bytes.
func RevisionSHA(files []modelversion.File) string {
	h := sha256.New()
	h.Write([]byte(revisionDomain))
	for _, f := range files {
		// Paths hold no NUL or newline (pkgtypes.ValidateFilePath), so the encoding is unambiguous.
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Path, f.Size, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// treeSHA is the oid of a directory: RevisionSHA of the files under it, with paths relative to it.
func treeSHA(files []modelversion.File, dir string) string {
	var sub []modelversion.File
	for _, f := range files {
		if rel, ok := strings.CutPrefix(f.Path, dir+"/"); ok {
			sub = append(sub, modelversion.File{File: f.File, Path: rel})
		}
	}
	return RevisionSHA(sub)
}

// lfsPointer is the Git LFS pointer of a file: every file is shown as an LFS file, since the client
// identifies an LFS file by its sha256 (lfs.sha256, X-Linked-Etag), which mlgate has for every file.
func lfsPointer(sha string, size int64) string {
	return "version https://git-lfs.github.com/spec/v1\noid sha256:" + sha + "\nsize " + strconv.FormatInt(size, 10) + "\n"
}

// blobID is a file's git blob id as the Hub reports it for an LFS file: the git object id (SHA-1 of
// "blob <len>\0" and the content) of its pointer. Git's object format fixes SHA-1 here; it identifies,
// it does not protect anything.
func blobID(sha string, size int64) string {
	p := lfsPointer(sha, size)
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(p), p)
	return hex.EncodeToString(h.Sum(nil))
}

// isSHA reports whether rev has the form of a revision sha: 40 lowercase hex digits, the form the
// client itself takes for a commit (it then skips resolving it).
func isSHA(rev string) bool {
	return len(rev) == 40 && strings.Trim(rev, "0123456789abcdef") == ""
}

// ErrRevisionNotFound: the repository exists, the revision names none of its versions (404,
// X-Error-Code: RevisionNotFound). It wraps metadata.ErrNotFound.
var ErrRevisionNotFound = fmt.Errorf("revision not found: %w", metadata.ErrNotFound)

// Resolve finds the version a revision names among a model's versions and returns its snapshot:
//   - "main": the version modelversion.Latest names;
//   - 40 lowercase hex digits: the version whose RevisionSHA it is (an alias of that form, if no
//     version has it);
//   - a semver, else an alias (modelversion.Resolve); "latest" as the OCI tag.
//
// A revision that names nothing is ErrRevisionNotFound; other errors are the store's.
func Resolve(ctx context.Context, store metadata.Store, idx *ShaIndex, modelID uint64, rev string) (*Snapshot, error) {
	if isSHA(rev) {
		s, err := idx.find(ctx, store, modelID, rev)
		if s != nil || err != nil {
			return s, err
		}
	}
	ref := rev
	if rev == Main {
		ref = modelversion.Latest
	}
	v, err := modelversion.Resolve(ctx, store, modelID, ref)
	if errors.Is(err, modelversion.ErrUnknownReference) {
		return nil, fmt.Errorf("%w: %w", ErrRevisionNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return idx.snapshot(ctx, store, v)
}

// ShaIndex remembers which version (model and Seq) last had each revision sha served, so that a
// request by sha, which the client sends for every file after resolving a revision, finds its
// version with one lookup instead of listing the files of every version. It is only a hint: the
// version's files are listed again and its sha recomputed on every use, so a version whose files
// changed is not served under its old sha. On a miss (another replica resolved the revision, or the
// entry was dropped) every version is walked, newest first. Bounded: past maxIndexed entries it
// starts over.
type ShaIndex struct {
	mu sync.Mutex
	m  map[shaKey]int64
}

type shaKey struct {
	model uint64
	sha   string
}

const maxIndexed = 100_000

// NewShaIndex returns an empty index.
func NewShaIndex() *ShaIndex { return &ShaIndex{m: map[shaKey]int64{}} }

// snapshot lists v's files, computes its sha and remembers it.
func (x *ShaIndex) snapshot(ctx context.Context, store metadata.Store, v *metadata.Version) (*Snapshot, error) {
	files, err := modelversion.Files(ctx, store, v)
	if err != nil {
		return nil, err
	}
	s := NewSnapshot(v, files)
	x.mu.Lock()
	if len(x.m) >= maxIndexed {
		x.m = map[shaKey]int64{}
	}
	x.m[shaKey{v.ModelID, s.SHA}] = v.Seq
	x.mu.Unlock()
	return s, nil
}

// find returns the snapshot of the model's version whose sha is sha, or nil.
func (x *ShaIndex) find(ctx context.Context, store metadata.Store, modelID uint64, sha string) (*Snapshot, error) {
	x.mu.Lock()
	seq, ok := x.m[shaKey{modelID, sha}]
	x.mu.Unlock()
	if ok {
		v, err := store.Version(ctx, metadata.VersionRef{ModelID: modelID, Seq: seq})
		switch {
		case err == nil:
			s, err := x.snapshot(ctx, store, v)
			if err != nil || s.SHA == sha {
				return s, err
			}
		case !errors.Is(err, metadata.ErrNotFound):
			return nil, fmt.Errorf("version %d of model %d: %w", seq, modelID, err)
		}
	}
	vs, err := modelversion.All(ctx, store, modelID)
	if err != nil {
		return nil, err
	}
	for _, v := range slices.Backward(vs) {
		s, err := x.snapshot(ctx, store, v)
		if err != nil {
			return nil, err
		}
		if s.SHA == sha {
			return s, nil
		}
	}
	return nil, nil
}
