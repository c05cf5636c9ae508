package boltstore

// TODO: replace with pkgtypes once it lands
//
// The store must refuse bad names, versions and paths itself (a 4xx, never a corrupt index), and pkgtypes is
// being written in parallel, so this file carries the minimum the store needs. Keep it private so nothing
// outside boltstore starts to depend on it.

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mlgate/mlgate/metadata"
)

const (
	maxModelNameLen = 255
	maxSemverLen    = 255
	maxSegmentLen   = 255
	reservedPrefix  = "ml_experiment_"
)

// validateProjectPath accepts 1–255 bytes of non-empty segments of [A-Za-z0-9._-] joined by "/". "." and ".."
// segments are refused too: project paths end up in URLs.
func validateProjectPath(p string) error {
	if p == "" || len(p) > metadata.MaxProjectPathLen {
		return fmt.Errorf("project path %q: must be 1–%d bytes: %w", p, metadata.MaxProjectPathLen, metadata.ErrInvalid)
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

// validateModelName applies GitLab's package-name rule, minus "@" (it would confuse models:/<name>@<alias>)
// and minus the reserved legacy form ml_experiment_<digits>.
func validateModelName(s string) error {
	if s == "" || len(s) > maxModelNameLen {
		return fmt.Errorf("model name %q: must be 1–%d bytes: %w", s, maxModelNameLen, metadata.ErrInvalid)
	}
	if !isAlnum(s[0]) {
		return fmt.Errorf("model name %q: must start with a letter or digit: %w", s, metadata.ErrInvalid)
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" {
			return fmt.Errorf("model name %q: empty segment: %w", s, metadata.ErrInvalid)
		}
		for i := 0; i < len(seg); i++ {
			if !isAlnum(seg[i]) && !strings.ContainsRune("._+-", rune(seg[i])) {
				return fmt.Errorf("model name %q: segments may contain only [A-Za-z0-9._+-]: %w", s, metadata.ErrInvalid)
			}
		}
	}
	if isReservedName(s) {
		return fmt.Errorf("model name %q: names of the form %s<digits> are reserved: %w", s, reservedPrefix, metadata.ErrInvalid)
	}
	return nil
}

func isReservedName(s string) bool {
	rest, ok := strings.CutPrefix(s, reservedPrefix)
	return ok && rest != "" && allDigits(rest)
}

// validateFilePath accepts "/"-separated segments of GitLab's file-name characters [A-Za-z0-9._+ -], with no
// empty, "." or ".." segment, at most 255 bytes per segment and 1024 in total.
func validateFilePath(p string) error {
	if p == "" || len(p) > metadata.MaxFilePathLen {
		return fmt.Errorf("file path %q: must be 1–%d bytes: %w", p, metadata.MaxFilePathLen, metadata.ErrInvalid)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > maxSegmentLen {
			return fmt.Errorf("file path %q: empty, \".\", \"..\" or over-long segment: %w", p, metadata.ErrInvalid)
		}
		for i := 0; i < len(seg); i++ {
			if !isAlnum(seg[i]) && !strings.ContainsRune("._+ -", rune(seg[i])) {
				return fmt.Errorf("file path %q: segments may contain only [A-Za-z0-9._+ -]: %w", p, metadata.ErrInvalid)
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

// slugify derives a model name from a display name: lower-case; each run of characters outside [a-z0-9._-]
// becomes "_"; "_", "." and "-" are trimmed from both ends; "" becomes "model"; the reserved form gets "x_".
// The result is never longer in bytes than the display name has characters, so it fits maxModelNameLen.
func slugify(display string) string {
	var b strings.Builder
	inRun := false
	for _, r := range strings.ToLower(display) {
		if r < utf8.RuneSelf && (isAlnum(byte(r)) || r == '.' || r == '_' || r == '-') {
			b.WriteRune(r)
			inRun = false
			continue
		}
		if !inRun {
			b.WriteByte('_')
			inRun = true
		}
	}
	s := strings.Trim(b.String(), "_.-")
	if s == "" {
		return "model"
	}
	if isReservedName(s) {
		s = "x_" + s
	}
	return s
}

// semver is a parsed semantic version 2.0.0.
type semver struct {
	major, minor, patch uint64
	pre                 string // "" = release
	build               string
}

// parseSemver accepts exactly GitLab's semver_regex (no "v" prefix), at most 255 bytes, with major, minor
// and patch that fit in 64 bits.
func parseSemver(s string) (semver, error) {
	var v semver
	bad := func(why string) (semver, error) {
		return semver{}, fmt.Errorf("semver %q: %s: %w", s, why, metadata.ErrInvalid)
	}
	if s == "" || len(s) > maxSemverLen {
		return bad(fmt.Sprintf("must be 1–%d bytes", maxSemverLen))
	}
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if !validIdentifiers(build, false) {
			return bad("bad build metadata")
		}
		v.build = build
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if !validIdentifiers(pre, true) {
			return bad("bad prerelease")
		}
		v.pre = pre
	}
	nums := strings.Split(core, ".")
	if len(nums) != 3 {
		return bad("want MAJOR.MINOR.PATCH")
	}
	dst := [3]*uint64{&v.major, &v.minor, &v.patch}
	for i, n := range nums {
		if n == "" || !allDigits(n) || (len(n) > 1 && n[0] == '0') {
			return bad("numbers must be decimal without leading zeros")
		}
		u, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return bad("number does not fit in 64 bits")
		}
		*dst[i] = u
	}
	return v, nil
}

// validIdentifiers checks dot-separated identifiers of [0-9A-Za-z-]; in a prerelease, numeric identifiers
// must not have leading zeros.
func validIdentifiers(s string, prerelease bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		for i := 0; i < len(id); i++ {
			if !isAlnum(id[i]) && id[i] != '-' {
				return false
			}
		}
		if prerelease && allDigits(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

// compareSemver orders by semver 2.0 precedence: numbers, then a prerelease below its release, then
// prerelease identifiers (numeric ones numerically and below alphanumeric ones; fewer identifiers first).
// Build metadata is ignored.
func compareSemver(a, b semver) int {
	for _, d := range [][2]uint64{{a.major, b.major}, {a.minor, b.minor}, {a.patch, b.patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	ai, bi := strings.Split(a.pre, "."), strings.Split(b.pre, ".")
	for i := 0; i < len(ai) && i < len(bi); i++ {
		if c := compareIdentifier(ai[i], bi[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(ai) < len(bi):
		return -1
	case len(ai) > len(bi):
		return 1
	}
	return 0
}

func compareIdentifier(a, b string) int {
	an, bn := allDigits(a), allDigits(b)
	switch {
	case an && bn:
		// No leading zeros, so a longer number is larger; this also handles numbers beyond 64 bits.
		if len(a) != len(b) {
			if len(a) < len(b) {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	case an:
		return -1
	case bn:
		return 1
	}
	return strings.Compare(a, b)
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
