package boltstore

// Model names, file paths, slugs and semvers follow pkgtypes, which the gateway shares; this file only wraps
// its errors in metadata.ErrInvalid and keeps the rules pkgtypes does not define (project paths, display
// names) and the parsed semver that the versions_order key is built from.

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// maxModelNameLen is pkgtypes' limit on model names, needed here to leave room for a slug's _2, _3… suffix.
const maxModelNameLen = 255

// invalid wraps a pkgtypes error so that errors.Is finds both metadata.ErrInvalid and the pkgtypes sentinel.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", metadata.ErrInvalid, err)
}

func validateModelName(s string) error { return invalid(pkgtypes.ValidateModelName(s)) }

func validateFilePath(p string) error { return invalid(pkgtypes.ValidateFilePath(p)) }

// validateProjectPath accepts 1–255 bytes of non-empty segments of [A-Za-z0-9._-] joined by "/". "." and ".."
// segments are refused too: project paths end up in URLs. So does a path that a URL would read as a
// project id, or as no valid reference at all (metadata.ParseProjectRef): all digits, or a leading "-".
func validateProjectPath(p string) error {
	if p == "" || len(p) > metadata.MaxProjectPathLen {
		return fmt.Errorf("project path %q: must be 1–%d bytes: %w", p, metadata.MaxProjectPathLen, metadata.ErrInvalid)
	}
	if ref, err := metadata.ParseProjectRef(p); err != nil {
		return err
	} else if ref.Path == "" {
		return fmt.Errorf("project path %q: may not be all digits, which names a project id: %w", p, metadata.ErrInvalid)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("project path %q: empty, \".\" or \"..\" segment: %w", p, metadata.ErrInvalid)
		}
		for i := 0; i < len(seg); i++ {
			if !isAlnum(seg[i]) && !strings.ContainsRune("._-", rune(seg[i])) {
				return fmt.Errorf("project path %q: segments may contain only [A-Za-z0-9._-]: %w", p, metadata.ErrInvalid)
			}
		}
	}
	return nil
}

// validateDisplayName accepts 1–255 characters of valid UTF-8 without control characters.
func validateDisplayName(s string) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > metadata.MaxDisplayNameLen {
		return fmt.Errorf("display name %q: must be 1–%d characters of UTF-8: %w", s, metadata.MaxDisplayNameLen, metadata.ErrInvalid)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("display name %q: control characters are not allowed: %w", s, metadata.ErrInvalid)
	}
	return nil
}

// semver holds the parts of a semantic version that the versions_order key encodes. Build metadata is not
// kept: it never affects precedence and is not part of the key.
type semver struct {
	major, minor, patch uint64
	pre                 string // "" = release
}

// parseSemver validates s with pkgtypes.ValidateSemver, then splits it into its parts.
func parseSemver(s string) (semver, error) {
	if err := pkgtypes.ValidateSemver(s); err != nil {
		return semver{}, invalid(err)
	}
	core, _, _ := strings.Cut(s, "+")
	core, pre, _ := strings.Cut(core, "-")
	v := semver{pre: pre}
	nums := strings.SplitN(core, ".", 3)
	dst := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, n := range nums {
		u, err := strconv.ParseUint(n, 10, 64)
		if err != nil { // ValidateSemver has checked every number
			return semver{}, fmt.Errorf("semver %q: %v: %w", s, err, metadata.ErrInvalid)
		}
		*dst[i] = u
	}
	return v, nil
}

// String formats v as MAJOR.MINOR.PATCH[-PRERELEASE].
func (v semver) String() string {
	s := strconv.FormatUint(v.major, 10) + "." + strconv.FormatUint(v.minor, 10) + "." + strconv.FormatUint(v.patch, 10)
	if v.pre != "" {
		s += "-" + v.pre
	}
	return s
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
