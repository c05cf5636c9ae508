package metadata

// Validation shared by the stores: every Store refuses the same values with the same ErrInvalid
// messages. Model names, file paths and semvers follow pkgtypes, which the gateway shares; these wrap its
// errors in ErrInvalid and keep the rules pkgtypes does not define.

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mlgate/mlgate/pkgtypes"
)

// MaxBackendNameLen bounds File.Backend, a configured backend's name.
const MaxBackendNameLen = 128

// Invalid wraps a pkgtypes error so that errors.Is finds both ErrInvalid and the pkgtypes sentinel.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

func ValidateModelName(s string) error { return Invalid(pkgtypes.ValidateModelName(s)) }

func ValidateFilePath(p string) error { return Invalid(pkgtypes.ValidateFilePath(p)) }

// ValidateProjectPath accepts 1–255 bytes of non-empty segments of [A-Za-z0-9._-] joined by "/". "." and ".."
// segments are refused too: project paths end up in URLs. So does a path that a URL would read as a
// project id, or as no valid reference at all (ParseProjectRef): all digits, or a leading "-".
func ValidateProjectPath(p string) error {
	if p == "" || len(p) > MaxProjectPathLen {
		return fmt.Errorf("project path %q: must be 1–%d bytes: %w", p, MaxProjectPathLen, ErrInvalid)
	}
	if ref, err := ParseProjectRef(p); err != nil {
		return err
	} else if ref.Path == "" {
		return fmt.Errorf("project path %q: may not be all digits, which names a project id: %w", p, ErrInvalid)
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("project path %q: empty, \".\" or \"..\" segment: %w", p, ErrInvalid)
		}
		for i := 0; i < len(seg); i++ {
			if !isAlnum(seg[i]) && !strings.ContainsRune("._-", rune(seg[i])) {
				return fmt.Errorf("project path %q: segments may contain only [A-Za-z0-9._-]: %w", p, ErrInvalid)
			}
		}
	}
	return nil
}

// ValidateDisplayName accepts 1–255 characters of valid UTF-8 without control characters.
func ValidateDisplayName(s string) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxDisplayNameLen {
		return fmt.Errorf("display name %q: must be 1–%d characters of UTF-8: %w", s, MaxDisplayNameLen, ErrInvalid)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("display name %q: control characters are not allowed: %w", s, ErrInvalid)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func ValidateModel(m *Model) error {
	if m.Name == "" && m.DisplayName == "" {
		return fmt.Errorf("model: a name or a display name is required: %w", ErrInvalid)
	}
	if m.Name != "" {
		if err := ValidateModelName(m.Name); err != nil {
			return err
		}
	}
	if err := ValidateDisplayName(m.DisplayName); err != nil {
		return err
	}
	if len(m.Description) > MaxDescriptionLen {
		return fmt.Errorf("model %q: description longer than %d bytes: %w", m.DisplayName, MaxDescriptionLen, ErrInvalid)
	}
	if m.Lifecycle > Deleted {
		return fmt.Errorf("model %q: lifecycle %d: %w", m.DisplayName, m.Lifecycle, ErrInvalid)
	}
	if m.IID < 0 {
		return fmt.Errorf("model %q: iid %d: %w", m.DisplayName, m.IID, ErrInvalid)
	}
	return ValidateTags(m.Tags)
}

func TrimSlugTail(s string) string {
	for len(s) > 1 && (s[len(s)-1] == '_' || s[len(s)-1] == '.' || s[len(s)-1] == '-') {
		s = s[:len(s)-1]
	}
	return s
}

func ValidateTags(tags []Tag) error {
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > MaxTagKeyLen {
			return fmt.Errorf("tag key %.60q: must be 1–%d bytes: %w", t.Key, MaxTagKeyLen, ErrInvalid)
		}
		if len(t.Value) > MaxTagValueLen {
			return fmt.Errorf("tag %q: value longer than %d bytes: %w", t.Key, MaxTagValueLen, ErrInvalid)
		}
	}
	return nil
}

func ValidateModelUpdate(u ModelUpdate) error {
	if u.DisplayName != nil {
		if err := ValidateDisplayName(*u.DisplayName); err != nil {
			return err
		}
	}
	if u.Description != nil && len(*u.Description) > MaxDescriptionLen {
		return fmt.Errorf("model description longer than %d bytes: %w", MaxDescriptionLen, ErrInvalid)
	}
	if u.Lifecycle != nil && *u.Lifecycle > Deleted {
		return fmt.Errorf("model lifecycle %d: %w", *u.Lifecycle, ErrInvalid)
	}
	return ValidateTagUpdate(u.SetTags, u.DeleteTags)
}

// ValidateTagUpdate checks the tags to set and the keys to delete of a model or version update.
func ValidateTagUpdate(set []Tag, del []string) error {
	for _, k := range del {
		if k == "" || len(k) > MaxTagKeyLen {
			return fmt.Errorf("tag key %.60q: must be 1–%d bytes: %w", k, MaxTagKeyLen, ErrInvalid)
		}
	}
	return ValidateTags(set)
}

// UpdateTags returns tags without the keys in del, then with set applied: an existing key takes the new
// value in place, a new key is appended. The input slice is not modified.
func UpdateTags(tags, set []Tag, del []string) []Tag {
	if len(set) == 0 && len(del) == 0 {
		return tags
	}
	out := make([]Tag, 0, len(tags)+len(set))
	for _, t := range tags {
		if !slices.Contains(del, t.Key) {
			out = append(out, t)
		}
	}
	for _, t := range set {
		if i := slices.IndexFunc(out, func(o Tag) bool { return o.Key == t.Key }); i >= 0 {
			out[i].Value = t.Value
		} else {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func ValidateCandidate(c *Candidate) error {
	if len(c.Name) > MaxCandidateName {
		return fmt.Errorf("candidate name %.60q: longer than %d bytes: %w", c.Name, MaxCandidateName, ErrInvalid)
	}
	if c.Status > Killed {
		return fmt.Errorf("candidate status %d: %w", c.Status, ErrInvalid)
	}
	if c.Lifecycle > Deleted {
		return fmt.Errorf("candidate lifecycle %d: %w", c.Lifecycle, ErrInvalid)
	}
	if c.IID < 0 {
		return fmt.Errorf("candidate iid %d: %w", c.IID, ErrInvalid)
	}
	return nil
}

func ValidateToken(t *Token) (hash []byte, err error) {
	if t.ID == "" || len(t.ID) > MaxTokenIDLen || strings.Trim(t.ID, tokenIDChars) != "" {
		return nil, fmt.Errorf("token id %q: must be 1–%d characters of [A-Za-z0-9_-]: %w",
			t.ID, MaxTokenIDLen, ErrInvalid)
	}
	if len(t.Name) > MaxTokenNameLen || !utf8.ValidString(t.Name) {
		return nil, fmt.Errorf("token name: at most %d bytes of UTF-8: %w", MaxTokenNameLen, ErrInvalid)
	}
	if t.Instance {
		if t.ProjectPath != "" {
			return nil, fmt.Errorf("instance token with project path %q: an instance token reaches no project: %w",
				t.ProjectPath, ErrInvalid)
		}
	} else if err := ValidateProjectPath(t.ProjectPath); err != nil {
		return nil, err
	}
	if t.Scope < ScopeRead || t.Scope > ScopeAdmin {
		return nil, fmt.Errorf("token scope %d: %w", t.Scope, ErrInvalid)
	}
	hash, err = DecodeTokenHash(t.SecretHash)
	if err != nil {
		return nil, err
	}
	return hash, nil
}

const tokenIDChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

// DecodeTokenHash turns the hex form into the 32-byte key of tokens_by_hash.
func DecodeTokenHash(h string) ([]byte, error) {
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 || h != strings.ToLower(h) {
		return nil, fmt.Errorf("token secret hash: want 64 lowercase hex characters: %w", ErrInvalid)
	}
	return b, nil
}

func ValidateFile(f *File) error {
	if err := ValidateFilePath(f.Path); err != nil {
		return err
	}
	switch {
	case f.Size < 0:
		return fmt.Errorf("file %q: negative size: %w", f.Path, ErrInvalid)
	case !IsSHA256Hex(f.SHA256):
		return fmt.Errorf("file %q: sha256 %.70q is not 64 lowercase hex digits: %w", f.Path, f.SHA256, ErrInvalid)
	case len(f.ContentType) > MaxContentTypeLen:
		return fmt.Errorf("file %q: content type longer than %d bytes: %w", f.Path, MaxContentTypeLen, ErrInvalid)
	case f.BlobKey == "":
		return fmt.Errorf("file %q: empty blob key: %w", f.Path, ErrInvalid)
	case len(f.Backend) > MaxBackendNameLen:
		// Empty is valid: it means the default backend (rows from before backends were recorded).
		return fmt.Errorf("file %q: backend name longer than %d bytes: %w", f.Path, MaxBackendNameLen, ErrInvalid)
	}
	return nil
}

func IsSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}
