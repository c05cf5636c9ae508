package boltstore

// Model names, file paths, slugs and semvers follow pkgtypes, which the gateway shares; this file only wraps
// its errors in metadata.ErrInvalid and keeps the rules pkgtypes does not define (project paths, display
// names) and the parsed semver that the versions_order key is built from.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// maxModelNameLen is pkgtypes' limit on model names, needed here to leave room for a slug's _2, _3… suffix.
const maxModelNameLen = 255

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

// The validation rules live in package metadata, shared with the other stores.
var (
	invalid             = metadata.Invalid
	validateModelName   = metadata.ValidateModelName
	validateFilePath    = metadata.ValidateFilePath
	validateProjectPath = metadata.ValidateProjectPath
	validateDisplayName = metadata.ValidateDisplayName
	validateModel       = metadata.ValidateModel
	trimSlugTail        = metadata.TrimSlugTail
	validateTags        = metadata.ValidateTags
	validateModelUpdate = metadata.ValidateModelUpdate
	validateTagUpdate   = metadata.ValidateTagUpdate
	updateTags          = metadata.UpdateTags
	validateCandidate   = metadata.ValidateCandidate
	validateToken       = metadata.ValidateToken
	decodeTokenHash     = metadata.DecodeTokenHash
	validateFile        = metadata.ValidateFile
)

const maxBackendNameLen = metadata.MaxBackendNameLen
