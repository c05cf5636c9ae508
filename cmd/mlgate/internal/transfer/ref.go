package transfer

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/pkgtypes"
)

// ErrInvalidRef is wrapped by ParseRef's errors: the argument names no package.
var ErrInvalidRef = errors.New("invalid package reference")

// Package is a set of files the package API serves: a model version (Model and Version) or a candidate
// (CandidateIID).
type Package struct {
	Model        string
	Version      string // a semver
	CandidateIID int64
}

func (p Package) String() string {
	if p.CandidateIID != 0 {
		return "candidate:" + strconv.FormatInt(p.CandidateIID, 10)
	}
	return p.Model + "@" + p.Version
}

// escaped is the package's part of a package URL: <model>/<semver> (a '/' in the model name encoded)
// or candidate:<iid>.
func (p Package) escaped() string {
	if p.CandidateIID != 0 {
		return "candidate:" + strconv.FormatInt(p.CandidateIID, 10)
	}
	return url.PathEscape(p.Model) + "/" + url.PathEscape(p.Version)
}

// Ref is what a pull names: a package, or an alias of a model that the registry resolves to a version.
type Ref struct {
	Package
	Alias string // when set, Package.Version is empty until resolved
}

// ParseRef parses MODEL@VERSION (a semver), MODEL@ALIAS (when aliases is set) or candidate:IID (when
// aliases is set: a pull). Errors wrap ErrInvalidRef and say what was expected.
func ParseRef(s string, aliases bool) (Ref, error) {
	want := "MODEL@VERSION"
	if aliases {
		want = "MODEL@VERSION, MODEL@ALIAS or candidate:IID"
	}
	if iid, ok := strings.CutPrefix(s, "candidate:"); ok && aliases {
		n, err := strconv.ParseInt(iid, 10, 64)
		if err != nil || n <= 0 || strconv.FormatInt(n, 10) != iid {
			return Ref{}, fmt.Errorf("%w: %q: the candidate iid must be a positive decimal", ErrInvalidRef, s)
		}
		return Ref{Package: Package{CandidateIID: n}}, nil
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return Ref{}, fmt.Errorf("%w: %q: want %s", ErrInvalidRef, s, want)
	}
	model, version := s[:at], s[at+1:]
	if err := pkgtypes.ValidateModelName(model); err != nil {
		return Ref{}, fmt.Errorf("%w: %w", ErrInvalidRef, err)
	}
	if version == "" {
		return Ref{}, fmt.Errorf("%w: %q: nothing after '@'; want %s", ErrInvalidRef, s, want)
	}
	if err := pkgtypes.ValidateSemver(version); err != nil {
		if !aliases {
			return Ref{}, fmt.Errorf("%w: %q: %q is not a semver (such as 1.0.0): %w", ErrInvalidRef, s, version, err)
		}
		return Ref{Package: Package{Model: model}, Alias: version}, nil
	}
	return Ref{Package: Package{Model: model, Version: version}}, nil
}
