package pkgtypes

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxPathLen    = 1024
	maxSegmentLen = 255
)

// ValidateFilePath reports whether p may name a file inside a package. The structural rules: not empty,
// at most 1024 bytes, valid UTF-8, '/'-separated with no leading '/', no empty, "." or ".." segment (so no
// trailing '/' either), at most 255 bytes per segment, no NUL, control character or '\'. On top of them
// each segment uses only the characters isFileRune allows and neither starts nor ends with a space. The
// error wraps ErrInvalidPath, quotes p and names the rule that failed.
//
// Paths never reach a blob key, so these rules protect clients rather than storage: a path that is
// accepted here is later written to disk by MLflow clients and package downloaders on any OS.
func ValidateFilePath(p string) error {
	if hint := filePathProblem(p); hint != "" {
		return invalid(ErrInvalidPath, p, hint)
	}
	return nil
}

// CleanFilePathPrefix normalises the directory prefix of a listing: "" (the package root) is returned as
// is, one trailing '/' is dropped ("model/" lists model), and what remains must pass ValidateFilePath.
// The error wraps ErrInvalidPath and quotes p.
func CleanFilePathPrefix(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	q := strings.TrimSuffix(p, "/")
	if q == "" {
		return "", invalid(ErrInvalidPath, p, `must not start with '/'; use "" for the package root`)
	}
	if hint := filePathProblem(q); hint != "" {
		return "", invalid(ErrInvalidPath, p, hint)
	}
	return q, nil
}

func filePathProblem(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case len(p) > maxPathLen:
		return "longer than 1024 bytes"
	case !utf8.ValidString(p):
		return "not valid UTF-8"
	case p[0] == '/':
		return "must be relative (no leading '/')"
	}
	for seg := range strings.SplitSeq(p, "/") {
		if hint := fileSegmentProblem(seg); hint != "" {
			return hint
		}
	}
	return ""
}

func fileSegmentProblem(seg string) string {
	switch {
	case seg == "":
		return "empty segment: use single '/' between segments and none at the end"
	case seg == "." || seg == "..":
		return "'.' and '..' segments are not allowed"
	case len(seg) > maxSegmentLen:
		return "a segment is longer than 255 bytes"
	// Windows silently strips trailing spaces, so "a.txt " would land on "a.txt" (or ".. " on ".."),
	// and leading or all-space names are indistinguishable from others in listings.
	case seg[0] == ' ' || seg[len(seg)-1] == ' ':
		return "a segment must not start or end with a space"
	}
	for _, r := range seg {
		// The structural checks come first and stay even when isFileRune is widened.
		switch {
		case r == 0 || unicode.IsControl(r):
			return fmt.Sprintf("control character %q is not allowed", r)
		case r == '\\':
			return `'\' is not allowed (it separates directories on Windows)`
		case !isFileRune(r):
			return fmt.Sprintf("character %q is not allowed; use letters, digits, '.', '_', '+', '-' and space", r)
		}
	}
	return ""
}

// isFileRune reports whether r may appear in a file path segment. For now this is GitLab's file-name set
// [A-Za-z0-9._+ -], so that every path mlgate accepts is one GitLab accepts too. It is the one place to
// widen: architecture.md 6.4 allows any printable UTF-8, and fileSegmentProblem keeps the structural rules
// whatever this allows. When widening, consider refusing bidi controls and other format characters
// (unicode.Cf), which make one name display as another.
func isFileRune(r rune) bool {
	return r < utf8.RuneSelf && (isASCIIAlnum(byte(r)) || strings.IndexByte("._+ -", byte(r)) >= 0)
}
