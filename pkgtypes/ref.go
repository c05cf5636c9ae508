// Package pkgtypes defines mlgate's ml_model package naming: model names, semantic versions, file paths,
// and the package references found in GitLab-compatible package URLs (architecture.md section 6). It
// imports only the standard library, so the gateway and the metadata store share one definition of what
// is valid.
//
// Every error wraps ErrInvalidName, ErrInvalidVersion or ErrInvalidPath with %w, quotes the offending
// value and ends with a hint meant for the API user.
package pkgtypes

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Sentinels wrapped by every error of this package; the gateway maps them to 400.
var (
	ErrInvalidName    = errors.New("invalid package name")
	ErrInvalidVersion = errors.New("invalid package version")
	ErrInvalidPath    = errors.New("invalid file path")
)

// invalid builds the package's error shape: sentinel, quoted value, hint.
func invalid(sentinel error, value, hint string) error {
	// Values come from URLs and may be long; the start is enough to recognise them in a response.
	const maxQuoted = 100
	if len(value) > maxQuoted {
		value = value[:maxQuoted] + "…"
	}
	return fmt.Errorf("%w %q: %s", sentinel, value, hint)
}

// Kind says which form a package reference takes.
type Kind int

const (
	ModelVersion    Kind = iota + 1 // <model>/<semver>
	ModelCandidate                  // <model>/candidate_<iid>
	LegacyCandidate                 // ml_experiment_<model iid>/<candidate iid>  (version may also be candidate_<iid>)
	CandidateRef                    // route form candidate:<iid>/files/<path>
	VersionID                       // route form <numeric version id>/files/<path>
	LoggedModelRef                  // route form m-<32 hex>/files/<path>: an MLflow 3 logged model's files
)

// String returns the constant's Go name, or Kind(n) for an unknown value.
func (k Kind) String() string {
	switch k {
	case ModelVersion:
		return "ModelVersion"
	case ModelCandidate:
		return "ModelCandidate"
	case LegacyCandidate:
		return "LegacyCandidate"
	case CandidateRef:
		return "CandidateRef"
	case VersionID:
		return "VersionID"
	case LoggedModelRef:
		return "LoggedModelRef"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Ref is a parsed package reference. Only the fields listed for its Kind are set; the others are zero, so
// two Refs for the same package compare equal with ==.
type Ref struct {
	Kind         Kind
	Model        string // ModelVersion, ModelCandidate
	Version      string // semver, ModelVersion
	ModelIID     int64  // LegacyCandidate
	CandidateIID int64  // LegacyCandidate, ModelCandidate, CandidateRef
	VersionID    int64  // VersionID
	// LoggedModelID is MLflow's model_id, "m-" and 32 lowercase hex characters (LoggedModelRef).
	LoggedModelID string
	// LegacyCandidatePrefix marks a LegacyCandidate whose version was written "candidate_<iid>" rather
	// than "<iid>", so that Format gives back the name the client used.
	LegacyCandidatePrefix bool
}

// Target is a parsed package URL: a package reference plus a file path inside it ("" = the package root).
type Target struct {
	Ref  Ref
	Path string
}

const candidateVersionPrefix = "candidate_"

// Parse parses a package name and version into a ModelVersion, ModelCandidate or LegacyCandidate Ref.
// A name of the form ml_experiment_<iid> takes a version "<candidate iid>" or "candidate_<candidate iid>";
// any other name must pass ValidateModelName and takes a semver (ValidateSemver) or "candidate_<iid>".
// Numbers are positive decimals without leading zeros that fit in an int64.
//
// The name is checked first: a bad name gives an error wrapping ErrInvalidName, a bad version one wrapping
// ErrInvalidVersion.
func Parse(name, version string) (Ref, error) {
	if IsReservedModelName(name) {
		modelIID, ok := parseIID(name[len(reservedPrefix):])
		if !ok {
			return Ref{}, invalid(ErrInvalidName, name, "the experiment iid must be a positive decimal without leading zeros")
		}
		r := Ref{Kind: LegacyCandidate, ModelIID: modelIID}
		digits, prefixed := strings.CutPrefix(version, candidateVersionPrefix)
		if r.CandidateIID, ok = parseIID(digits); !ok {
			return Ref{}, invalid(ErrInvalidVersion, version, "experiment packages take a candidate iid, as <iid> or candidate_<iid>, a positive decimal without leading zeros")
		}
		r.LegacyCandidatePrefix = prefixed
		return r, nil
	}
	if err := ValidateModelName(name); err != nil {
		return Ref{}, err
	}
	if digits, ok := strings.CutPrefix(version, candidateVersionPrefix); ok {
		iid, ok := parseIID(digits)
		if !ok {
			return Ref{}, invalid(ErrInvalidVersion, version, "candidate_<iid> needs a positive decimal iid without leading zeros")
		}
		return Ref{Kind: ModelCandidate, Model: name, CandidateIID: iid}, nil
	}
	if _, hint := parseSemver(version); hint != "" {
		return Ref{}, invalid(ErrInvalidVersion, version, hint+" (or candidate_<iid> for a candidate)")
	}
	return Ref{Kind: ModelVersion, Model: name, Version: version}, nil
}

// loggedModelIDPrefix starts MLflow 3's logged model ids.
const loggedModelIDPrefix = "m-"

// isLoggedModelID reports whether s is "m-" and 32 lowercase hex characters. Only lowercase is taken, as
// MLflow writes it, so that each logged model has one package address.
func isLoggedModelID(s string) bool {
	h, ok := strings.CutPrefix(s, loggedModelIDPrefix)
	if !ok || len(h) != 32 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !isDigit(h[i]) && (h[i] < 'a' || h[i] > 'f') {
			return false
		}
	}
	return true
}

// parseIID parses a positive decimal without leading zeros that fits in an int64. Leading zeros are
// refused so that every number has exactly one spelling and Format round-trips.
func parseIID(s string) (int64, bool) {
	if !allDigits(s) || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// PackageName returns the package name of r: the model name, or "ml_experiment_<model iid>" for a
// LegacyCandidate. It is "" for CandidateRef, VersionID and LoggedModelRef, whose package name needs a
// lookup.
func (r Ref) PackageName() string {
	switch r.Kind {
	case ModelVersion, ModelCandidate:
		return r.Model
	case LegacyCandidate:
		return reservedPrefix + strconv.FormatInt(r.ModelIID, 10)
	}
	return ""
}

// PackageVersion returns the package version of r: the semver, "candidate_<iid>", or "<iid>" for a
// LegacyCandidate written without the prefix. It is "" for CandidateRef, VersionID and LoggedModelRef.
func (r Ref) PackageVersion() string {
	switch r.Kind {
	case ModelVersion:
		return r.Version
	case ModelCandidate:
		return candidateVersionPrefix + strconv.FormatInt(r.CandidateIID, 10)
	case LegacyCandidate:
		if r.LegacyCandidatePrefix {
			return candidateVersionPrefix + strconv.FormatInt(r.CandidateIID, 10)
		}
		return strconv.FormatInt(r.CandidateIID, 10)
	}
	return ""
}

// Format is the inverse of Parse: for any r that Parse returned, Parse(Format(r)) == r, and the strings
// are exactly the ones parsed. For CandidateRef, VersionID and LoggedModelRef it returns "", "", which
// Parse refuses.
func Format(r Ref) (name, version string) {
	return r.PackageName(), r.PackageVersion()
}

// String returns a human-readable form for logs and messages, such as "fraud/xgb/1.2.0",
// "ml_experiment_12/7", "candidate:7", "version:12" or "m-<32 hex>". It is not a URL: model names are not
// escaped.
func (r Ref) String() string {
	switch r.Kind {
	case ModelVersion, ModelCandidate, LegacyCandidate:
		return r.PackageName() + "/" + r.PackageVersion()
	case CandidateRef:
		return "candidate:" + strconv.FormatInt(r.CandidateIID, 10)
	case VersionID:
		return "version:" + strconv.FormatInt(r.VersionID, 10)
	case LoggedModelRef:
		return r.LoggedModelID
	}
	return "invalid(" + r.Kind.String() + ")"
}

// ParseRoute parses the escaped path after /packages/ml_models/ (no leading '/', no query). It splits on
// '/' before decoding each segment with url.PathUnescape, so "%2F" in the first segment stays in the model
// name. The forms, in order:
//
//   - candidate:<iid>/files[/<path>] → CandidateRef
//   - <digits>/files[/<path>] → VersionID
//   - m-<32 lowercase hex>/files[/<path>] → LoggedModelRef (MLflow's model_id, as in models:/m-…)
//   - <name>/<version>[/<path>] → whatever Parse gives for name and version
//
// The path is "" when the route ends right after the version (or after "files"), with or without one
// '/', meaning the package root; otherwise it must pass ValidateFilePath, and "%2F" inside it is refused.
//
// Errors wrap ErrInvalidName for the first segment (malformed escapes and bad iids included),
// ErrInvalidVersion for the second (when it looks like a name segment, the hint says to encode '/' in
// model names as %2F), and ErrInvalidPath for the rest, checked in that order. A first segment "-" is
// ErrInvalidName: the gateway must route its own sub-resources before calling ParseRoute.
func ParseRoute(escapedRest string) (Target, error) {
	name, version, rest, err := splitRoute(escapedRest)
	if err != nil {
		return Target{}, err
	}
	var ref Ref
	switch iid, isCandidate := strings.CutPrefix(name, "candidate:"); {
	case isCandidate:
		n, ok := parseIID(iid)
		if !ok {
			return Target{}, invalid(ErrInvalidName, name, "the candidate iid must be a positive decimal without leading zeros")
		}
		if version != "files" {
			return Target{}, invalid(ErrInvalidVersion, version, "expected candidate:<iid>/files/<path>")
		}
		ref = Ref{Kind: CandidateRef, CandidateIID: n}
	case allDigits(name) && version == "files":
		n, ok := parseIID(name)
		if !ok {
			return Target{}, invalid(ErrInvalidName, name, "the version id must be a positive decimal without leading zeros")
		}
		ref = Ref{Kind: VersionID, VersionID: n}
	case strings.HasPrefix(name, loggedModelIDPrefix) && version == "files":
		if !isLoggedModelID(name) {
			return Target{}, invalid(ErrInvalidName, name, "a logged model id is m- and 32 lowercase hex characters, as in models:/m-<id>")
		}
		ref = Ref{Kind: LoggedModelRef, LoggedModelID: name}
	default:
		ref, err = Parse(name, version)
		if errors.Is(err, ErrInvalidVersion) && !IsReservedModelName(name) && looksLikeNameSegment(version) {
			// The usual cause is a model name with a '/' sent unescaped: team/fraud/1.0.0.
			return Target{}, invalid(ErrInvalidVersion, version, fmt.Sprintf(
				"not a semver or candidate_<iid>; if %q is part of the model name, encode '/' in model names as %%2F: %s/...",
				version, url.PathEscape(name+"/"+version)))
		}
		if err != nil {
			return Target{}, err
		}
	}
	path, err := routePath(rest)
	if err != nil {
		return Target{}, err
	}
	return Target{Ref: ref, Path: path}, nil
}

// ParseGenericRoute parses the escaped path after /packages/generic/, where GitLab's older runs store
// artifacts. Only ml_experiment_<iid>/<candidate iid>[/<path>] is served, giving a LegacyCandidate; the
// path rules are ParseRoute's. Any other package name is ErrInvalidName; a version other than a candidate
// iid (candidate_<iid> included, which GitLab never used here) is ErrInvalidVersion; a bad path is
// ErrInvalidPath.
func ParseGenericRoute(escapedRest string) (Target, error) {
	name, version, rest, err := splitRoute(escapedRest)
	if err != nil {
		return Target{}, err
	}
	if !IsReservedModelName(name) {
		return Target{}, invalid(ErrInvalidName, name, "generic packages serve only ml_experiment_<iid>/<candidate iid>/<path>")
	}
	ref, err := Parse(name, version)
	if err != nil {
		return Target{}, err
	}
	if ref.LegacyCandidatePrefix {
		return Target{}, invalid(ErrInvalidVersion, version, "generic packages take the bare candidate iid, without candidate_")
	}
	path, err := routePath(rest)
	if err != nil {
		return Target{}, err
	}
	return Target{Ref: ref, Path: path}, nil
}

// splitRoute decodes the first two segments of an escaped route and returns the remaining segments still
// escaped. A missing version comes back as "", which every caller refuses.
func splitRoute(escaped string) (name, version string, rest []string, err error) {
	segs := strings.Split(escaped, "/")
	if name, err = url.PathUnescape(segs[0]); err != nil {
		return "", "", nil, invalid(ErrInvalidName, segs[0], "malformed %-escape")
	}
	if len(segs) == 1 {
		return name, "", nil, nil
	}
	if version, err = url.PathUnescape(segs[1]); err != nil {
		return "", "", nil, invalid(ErrInvalidVersion, segs[1], "malformed %-escape")
	}
	return name, version, segs[2:], nil
}

// routePath decodes and validates the escaped path segments after the version.
func routePath(segs []string) (string, error) {
	if len(segs) == 0 || len(segs) == 1 && segs[0] == "" {
		return "", nil
	}
	escaped := strings.Join(segs, "/")
	decoded := make([]string, len(segs))
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return "", invalid(ErrInvalidPath, escaped, "malformed %-escape")
		}
		if strings.Contains(d, "/") {
			// Joining would turn it into a real separator: one file name must not become two segments.
			return "", invalid(ErrInvalidPath, escaped, "'/' must not be escaped (%2F) inside a file path")
		}
		decoded[i] = d
	}
	p := strings.Join(decoded, "/")
	if err := ValidateFilePath(p); err != nil {
		return "", err
	}
	return p, nil
}

// looksLikeNameSegment reports whether a string that failed as a version is more likely the second
// segment of an unescaped model name than a mistyped version (v1.0.0, 1.0, candidate_x).
func looksLikeNameSegment(s string) bool {
	if s == "" || !isASCIIAlnum(s[0]) || isDigit(s[0]) || strings.HasPrefix(s, candidateVersionPrefix) {
		return false
	}
	if (s[0] == 'v' || s[0] == 'V') && len(s) > 1 && isDigit(s[1]) {
		return false
	}
	for _, r := range s {
		if !isNameRune(r) {
			return false
		}
	}
	return true
}
