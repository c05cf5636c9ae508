// Package modelversion resolves what download protocols name a model version by: a semver, an alias,
// or "latest" (the OCI tag; the Hugging Face protocol's "main" is the same version), and lists a
// version's files relative to its root. The OCI distribution routes use it; the Hugging Face routes are
// meant to, so that both protocols agree on which version a name means.
package modelversion

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Latest is the reference that names the highest version: see PickLatest.
const Latest = "latest"

// pageSize is how many rows each store call asks for while walking a model's versions or files.
const pageSize = 1000

// All returns every version of a model in Seq order. Errors are the store's.
func All(ctx context.Context, store metadata.Store, modelID uint64) ([]*metadata.Version, error) {
	var out []*metadata.Version
	page := metadata.Page{Limit: pageSize}
	for {
		vs, next, err := store.ListVersions(ctx, modelID, page)
		if err != nil {
			return nil, fmt.Errorf("versions of model %d: %w", modelID, err)
		}
		out = append(out, vs...)
		if next == "" {
			return out, nil
		}
		page.Token = next
	}
}

// IsPrerelease reports whether a semver has a prerelease part ("1.0.0-rc.1", "1.0.0-rc.1+b"); build
// metadata alone ("1.0.0+b") is not one.
func IsPrerelease(semver string) bool {
	core, _, _ := strings.Cut(semver, "+")
	return strings.Contains(core, "-")
}

// PickLatest returns the version "latest" names among vs: the highest semver that is not a prerelease,
// or the highest of all when every version is a prerelease; nil for none. Versions that differ only in
// build metadata have equal precedence: the one created last (highest Seq) wins, so the choice never
// depends on the order of vs.
func PickLatest(vs []*metadata.Version) *metadata.Version {
	var best, bestPre *metadata.Version
	higher := func(a, b *metadata.Version) bool { // a above b
		if c := pkgtypes.CompareSemver(a.Semver, b.Semver); c != 0 {
			return c > 0
		}
		return a.Seq > b.Seq
	}
	for _, v := range vs {
		if IsPrerelease(v.Semver) {
			if bestPre == nil || higher(v, bestPre) {
				bestPre = v
			}
		} else if best == nil || higher(v, best) {
			best = v
		}
	}
	if best != nil {
		return best
	}
	return bestPre
}

// ErrUnknownReference wraps metadata.ErrNotFound: ref names no version of the model (no such semver,
// alias, or no version at all for Latest).
var ErrUnknownReference = fmt.Errorf("unknown version reference: %w", metadata.ErrNotFound)

// Resolve finds the version of a model that ref names: Latest, a semver, else an alias. A ref that
// names nothing is ErrUnknownReference (wrapping metadata.ErrNotFound), whatever the reason; other
// errors are the store's.
func Resolve(ctx context.Context, store metadata.Store, modelID uint64, ref string) (*metadata.Version, error) {
	if ref == Latest {
		vs, err := All(ctx, store, modelID)
		if err != nil {
			return nil, err
		}
		if v := PickLatest(vs); v != nil {
			return v, nil
		}
		return nil, fmt.Errorf("model %d has no version: %w", modelID, ErrUnknownReference)
	}
	var v *metadata.Version
	var err error
	if pkgtypes.ValidateSemver(ref) == nil {
		v, err = store.Version(ctx, metadata.VersionRef{ModelID: modelID, Semver: ref})
	} else if metadata.ValidateAlias(ref) == nil {
		v, err = store.Version(ctx, metadata.VersionRef{ModelID: modelID, Alias: ref})
	} else {
		return nil, fmt.Errorf("%q is neither a semver nor an alias: %w", ref, ErrUnknownReference)
	}
	if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrAliasNotFound) {
		return nil, fmt.Errorf("version %q of model %d: %w", ref, modelID, ErrUnknownReference)
	}
	if err != nil {
		return nil, fmt.Errorf("version %q of model %d: %w", ref, modelID, err)
	}
	return v, nil
}

// File is one file of a version: its store row, and its path relative to the version's root (the
// version's Subpath inside its owner's files).
type File struct {
	*metadata.File
	Path string
}

// Files lists every file of a version in path order, with paths relative to the version's root. The
// list is read page by page, each page in its own short transaction: a file replaced during the walk
// may appear as it was or as it is. Errors are the store's.
func Files(ctx context.Context, store metadata.Store, v *metadata.Version) ([]File, error) {
	var out []File
	page := metadata.Page{Limit: pageSize}
	for {
		fs, next, err := store.ListFiles(ctx, v.Owner(), v.Subpath, page)
		if err != nil {
			return nil, fmt.Errorf("files of version %s: %w", v.Semver, err)
		}
		for _, f := range fs {
			p := f.Path
			if v.Subpath != "" {
				p = strings.TrimPrefix(p, v.Subpath+"/")
			}
			out = append(out, File{File: f, Path: p})
		}
		if next == "" {
			return out, nil
		}
		page.Token = next
	}
}
