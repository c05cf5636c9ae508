package pkgtypes

import (
	"cmp"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	maxNameLen     = 255
	maxVersionLen  = 255
	reservedPrefix = "ml_experiment_"
)

// ValidateModelName reports whether s may name a model: segments of [A-Za-z0-9._+-] joined by single '/',
// at most 255 bytes, starting with a letter or digit, no "." or ".." segment, and not of the reserved form
// ml_experiment_<digits>. The error wraps ErrInvalidName, quotes s and names the rule that failed.
//
// This is GitLab's package-name rule narrowed. '@' is refused because models:/<name>@<alias> URIs would
// be ambiguous. The first character must be a letter or digit so that "-" stays free for the gateway's
// own sub-resources and no name reads as a hidden or relative path. Empty and dot segments, which GitLab's
// regex lets through, would make names that differ only in their slashes look alike. GitLab's regex
// does not allow '+' in the last segment, but mlgate does: one character set for every segment is easier
// to explain.
func ValidateModelName(s string) error {
	if hint := modelNameProblem(s); hint != "" {
		return invalid(ErrInvalidName, s, hint)
	}
	return nil
}

func modelNameProblem(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxNameLen:
		return "longer than 255 bytes"
	case strings.Contains(s, "@"):
		return "'@' is not allowed (it would be read as models:/<name>@<alias>)"
	case !isASCIIAlnum(s[0]):
		return "must start with a letter or digit"
	case IsReservedModelName(s):
		return "names of the form ml_experiment_<digits> are reserved for experiment packages"
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch seg {
		case "":
			return "empty segment: use single '/' between segments and none at the end"
		case ".", "..":
			return "'.' and '..' segments are not allowed"
		}
		for _, r := range seg {
			if !isNameRune(r) {
				return fmt.Sprintf("character %q is not allowed; use letters, digits, '.', '_', '+', '-' and '/' between segments", r)
			}
		}
	}
	return ""
}

func isNameRune(r rune) bool {
	return r < utf8.RuneSelf && (isASCIIAlnum(byte(r)) || strings.IndexByte("._+-", byte(r)) >= 0)
}

func isASCIIAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || isDigit(b)
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func allDigits(s string) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// IsReservedModelName reports whether s has the form ml_experiment_<digits>, which names an experiment's
// legacy package and therefore can never be a model name. Any digit string counts, leading zeros and
// overflow included, so that no model can squat a name that merely fails to parse as an experiment iid.
// The match is case-sensitive, like GitLab's, so every name is either routed as legacy or validated as a
// model name, never neither.
func IsReservedModelName(s string) bool {
	rest, ok := strings.CutPrefix(s, reservedPrefix)
	return ok && allDigits(rest)
}

// Slugify turns a free-text display name into a model name that always passes ValidateModelName:
// lower-case, every run of characters outside [a-z0-9._-] ('/' included) becomes one '_', '_', '.' and '-'
// are trimmed from both ends, an empty result becomes "model", a reserved result gets an "x_" prefix, and
// the result is at most 255 bytes. Slugify is idempotent. Uniqueness is the caller's business (the store
// appends _2, _3, …).
func Slugify(displayName string) string {
	var b strings.Builder
	inRun := false
	for _, r := range displayName {
		r = unicode.ToLower(r)
		var c byte
		switch {
		case r < utf8.RuneSelf && (isASCIIAlnum(byte(r)) || r == '.' || r == '_' || r == '-'):
			c, inRun = byte(r), false
		case inRun:
			continue
		default:
			c, inRun = '_', true
		}
		// Dropping leading separators here, rather than trimming afterwards, lets the loop stop as soon as
		// the kept bytes exceed the limit, so a huge input costs no more than 255 bytes of output.
		if b.Len() == 0 && isSlugTrim(c) {
			continue
		}
		b.WriteByte(c)
		if b.Len() >= maxNameLen {
			break
		}
	}
	s := strings.TrimRight(b.String(), "_.-")
	if s == "" {
		return "model"
	}
	if IsReservedModelName(s) {
		// Truncation only drops trailing digits here, so the result still ends in a digit.
		s = ("x_" + s)[:min(len(s)+2, maxNameLen)]
	}
	return s
}

func isSlugTrim(c byte) bool { return c == '_' || c == '.' || c == '-' }

// semver is a parsed semantic version. Build metadata is not kept: it never affects precedence.
type semver struct {
	major, minor, patch uint64
	pre                 []string // prerelease identifiers; nil for a release
}

// ValidateSemver reports whether v is a semantic version exactly as GitLab's semver_regex defines it
// (semver 2.0, no "v" prefix): MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], numbers without leading zeros, at
// most 255 bytes, and major, minor and patch within uint64. The error wraps ErrInvalidVersion, quotes v and
// names the rule that failed.
func ValidateSemver(v string) error {
	if _, hint := parseSemver(v); hint != "" {
		return invalid(ErrInvalidVersion, v, hint)
	}
	return nil
}

// parseSemver returns the parsed version, or a non-empty hint saying why v is not one.
func parseSemver(v string) (semver, string) {
	var sv semver
	switch {
	case v == "":
		return sv, "must not be empty"
	case len(v) > maxVersionLen:
		return sv, "longer than 255 bytes"
	case v[0] == 'v' || v[0] == 'V':
		return sv, "drop the 'v' prefix: versions are MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"
	}
	core, build, hasBuild := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	if hasBuild {
		for id := range strings.SplitSeq(build, ".") {
			if id == "" || !isSemverIdent(id) {
				return sv, "build metadata must be dot-separated non-empty identifiers of [0-9A-Za-z-]"
			}
		}
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return sv, "expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"
	}
	nums := [3]*uint64{&sv.major, &sv.minor, &sv.patch}
	for i, p := range parts {
		if !allDigits(p) {
			return sv, "major, minor and patch must be decimal numbers: expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]"
		}
		if len(p) > 1 && p[0] == '0' {
			return sv, "major, minor and patch must not have leading zeros"
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return sv, "major, minor and patch must fit in 64 bits"
		}
		*nums[i] = n
	}
	if hasPre {
		sv.pre = strings.Split(pre, ".")
		for _, id := range sv.pre {
			switch {
			case id == "" || !isSemverIdent(id):
				return sv, "prerelease must be dot-separated non-empty identifiers of [0-9A-Za-z-]"
			case len(id) > 1 && id[0] == '0' && allDigits(id):
				return sv, "numeric prerelease identifiers must not have leading zeros"
			}
		}
	}
	return sv, ""
}

func isSemverIdent(s string) bool {
	for i := range len(s) {
		if !isASCIIAlnum(s[i]) && s[i] != '-' {
			return false
		}
	}
	return true
}

func (a semver) compare(b semver) int {
	if c := cmp.Compare(a.major, b.major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.minor, b.minor); c != 0 {
		return c
	}
	if c := cmp.Compare(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case a.pre == nil && b.pre == nil:
		return 0
	case a.pre == nil:
		return 1 // a release outranks its prereleases
	case b.pre == nil:
		return -1
	}
	for i := range min(len(a.pre), len(b.pre)) {
		if c := comparePrereleaseIdent(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}

func comparePrereleaseIdent(x, y string) int {
	xNum, yNum := allDigits(x), allDigits(y)
	switch {
	case xNum && yNum:
		// Numeric identifiers are unbounded; without leading zeros the longer one is the larger.
		if c := cmp.Compare(len(x), len(y)); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	case xNum:
		return -1
	case yNum:
		return 1
	}
	return strings.Compare(x, y)
}

// CompareSemver returns -1, 0 or +1 as a orders before, equal to or after b by semver 2.0 precedence.
// Build metadata is ignored, so "1.0.0+a" and "1.0.0+b" compare equal. It never panics: every valid
// version orders before every invalid string, and invalid strings compare with strings.Compare, which
// keeps the order total and antisymmetric for sorting.
func CompareSemver(a, b string) int {
	va, hintA := parseSemver(a)
	vb, hintB := parseSemver(b)
	switch {
	case hintA == "" && hintB == "":
		return va.compare(vb)
	case hintA == "":
		return -1
	case hintB == "":
		return 1
	}
	return strings.Compare(a, b)
}

// NextMinor returns the version to assign after highest: "" gives "1.0.0"; otherwise the prerelease and
// build are dropped, minor is bumped and patch reset ("1.2.3" → "1.3.0", "2.0.0-rc.1" → "2.1.0",
// "1.2.3+b" → "1.3.0"). A prerelease is bumped like its release, rather than promoted to it, so one rule
// covers every input and the release stays free for an explicit publish. The result always orders after
// highest. If minor cannot grow, major is bumped instead ("1.<max>.0" → "2.0.0"); if no greater release
// exists at all, or highest is not a valid semver, the result is "" and the caller must pick a version.
func NextMinor(highest string) string {
	if highest == "" {
		return "1.0.0"
	}
	v, hint := parseSemver(highest)
	if hint != "" {
		return ""
	}
	switch {
	case v.minor < math.MaxUint64:
		return fmt.Sprintf("%d.%d.0", v.major, v.minor+1)
	case v.major < math.MaxUint64:
		return fmt.Sprintf("%d.0.0", v.major+1)
	case v.patch < math.MaxUint64:
		return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch+1)
	case v.pre != nil:
		return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
	}
	return ""
}

// Bump parts accepted by NextVersion.
const (
	BumpMajor = "major"
	BumpMinor = "minor"
	BumpPatch = "patch"
)

// NextVersion returns the version to assign after highest when bumping part (BumpMajor, BumpMinor or
// BumpPatch): "" gives "1.0.0"; "1.2.3" gives "2.0.0", "1.3.0" or "1.2.4". A prerelease bumps like its
// release for minor and major, and patch-bumps to its own release ("1.2.3-rc.1" → "1.2.3"), the next
// release after it. The result always orders after highest; "" means no greater version exists, highest
// is not a valid semver, or part is unknown.
func NextVersion(highest, part string) string {
	if part == BumpMinor {
		return NextMinor(highest)
	}
	if highest == "" {
		if part == BumpMajor || part == BumpPatch {
			return "1.0.0"
		}
		return ""
	}
	v, hint := parseSemver(highest)
	if hint != "" {
		return ""
	}
	switch part {
	case BumpMajor:
		if v.major < math.MaxUint64 {
			return fmt.Sprintf("%d.0.0", v.major+1)
		}
	case BumpPatch:
		if v.pre != nil {
			return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
		}
		if v.patch < math.MaxUint64 {
			return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch+1)
		}
	}
	return ""
}
