// Package metadata defines mlgate's merged data model and the Store that persists it.
//
// There is no experiment entity: an MLflow experiment is a Model, MLflow runs are Candidates that
// belong to a model, and a Version is a semver pointer to exactly one candidate, whose files are the
// version's files. Promoting a candidate therefore copies no bytes.
//
// metadata does not import backends: it stores blob keys as opaque strings.
package metadata

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Lifecycle is the soft-delete state of models and candidates.
type Lifecycle uint8

const (
	Active Lifecycle = iota
	Deleted
)

func (l Lifecycle) String() string {
	if l == Deleted {
		return "deleted"
	}
	return "active"
}

// RunStatus is a candidate's status, named as MLflow names it on the wire.
type RunStatus uint8

const (
	Running RunStatus = iota
	Scheduled
	Finished
	Failed
	Killed
)

var runStatusNames = [...]string{"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}

func (s RunStatus) String() string {
	if int(s) < len(runStatusNames) {
		return runStatusNames[s]
	}
	return "UNKNOWN"
}

// ParseRunStatus maps an MLflow status name to a RunStatus. ok is false for unknown names.
func ParseRunStatus(name string) (s RunStatus, ok bool) {
	for i, n := range runStatusNames {
		if n == name {
			return RunStatus(i), true
		}
	}
	return 0, false
}

// Limits on user-supplied values, validated by the Store (ErrInvalid) and at the HTTP edge.
const (
	MaxProjectPathLen  = 255
	MaxDisplayNameLen  = 255
	MaxDescriptionLen  = 10000
	MaxParamKeyLen     = 250
	MaxParamValueLen   = 250 // GitLab's limit is our floor; MLflow allows 6000, see issue 3
	MaxTagKeyLen       = 250
	MaxTagValueLen     = 5000
	MaxMetricKeyLen    = 250
	MaxCandidateName   = 255
	MaxFilePathLen     = 1024
	MaxContentTypeLen  = 255
	CandidateEIDHexLen = 32
)

// ParseProjectRef reads a project reference as a URL segment carries it (already unescaped): digits are
// a project id, which must be a positive int64 written without leading zeros; anything else is a project
// path. So that no reference is ambiguous, "0", zero-padded and overflowing numbers, and references
// starting with "-" (a negative id?) are ErrInvalid: they are neither an id nor a path a project may
// have. The path itself is not validated here (EnsureProject does that).
func ParseProjectRef(s string) (ProjectRef, error) {
	if s == "" {
		return ProjectRef{}, fmt.Errorf("empty project reference: %w", ErrInvalid)
	}
	if s[0] == '-' {
		return ProjectRef{}, fmt.Errorf("project %.60q: a project path may not start with '-': %w", s, ErrInvalid)
	}
	if strings.Trim(s, "0123456789") != "" {
		return ProjectRef{Path: s}, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '0' {
		return ProjectRef{}, fmt.Errorf("project %.60q: a numeric project id must be a positive 64-bit integer "+
			"without leading zeros, and a project path may not be all digits: %w", s, ErrInvalid)
	}
	return ProjectRef{ID: id}, nil
}

// Tag is a key/value pair on a model, candidate or version.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Project is a namespace such as "team/vision".
type Project struct {
	ID        int64     `json:"id"`
	Path      string    `json:"path"`
	CreatedAt time.Time `json:"created_at"`
}

// Model is at once an MLflow experiment and an MLflow registered model.
type Model struct {
	ID          uint64    `json:"id"`      // internal, store-wide
	Project     int64     `json:"project"` // Project.ID
	IID         int64     `json:"iid"`     // project-scoped, 1, 2, 3…; MLflow experiment_id
	Name        string    `json:"name"`    // strict slug (pkgtypes.ValidateModelName), unique per project
	DisplayName string    `json:"display_name"`
	Description string    `json:"description,omitempty"`
	Tags        []Tag     `json:"tags,omitempty"`
	InRegistry  bool      `json:"in_registry,omitempty"` // visible through registered-models/*
	Lifecycle   Lifecycle `json:"lifecycle"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// EID is a candidate's external id: the MLflow run_id, 32 lowercase hex characters on the wire.
type EID [16]byte

func (e EID) String() string { return hex.EncodeToString(e[:]) }

// MarshalText encodes the EID as its 32 hex characters, so records read as they appear on the wire.
func (e EID) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// UnmarshalText parses 32 hex characters; anything else is ErrInvalid.
func (e *EID) UnmarshalText(b []byte) error {
	v, ok := ParseEID(string(b))
	if !ok {
		return fmt.Errorf("eid %q: %w", b, ErrInvalid)
	}
	*e = v
	return nil
}

// ParseEID parses 32 hex characters, or the same 128 bits as a UUID with dashes (8-4-4-4-12), the
// form GitLab gives its run ids: a run imported from GitLab keeps answering to the id its users have
// in their runs:/ URIs. ok is false for anything else.
func ParseEID(s string) (e EID, ok bool) {
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		s = s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	}
	if len(s) != CandidateEIDHexLen {
		return e, false
	}
	if _, err := hex.Decode(e[:], []byte(s)); err != nil {
		return e, false
	}
	return e, true
}

// Candidate is an MLflow run. Its files are stored under blob keys derived from its ID.
type Candidate struct {
	ID        uint64    `json:"id"`      // internal, store-wide
	Project   int64     `json:"project"` // Project.ID
	IID       int64     `json:"iid"`     // project-scoped, 1, 2, 3…
	EID       EID       `json:"eid"`     // random
	ModelID   uint64    `json:"model_id"`
	Name      string    `json:"name,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	Status    RunStatus `json:"status"`
	StartTime int64     `json:"start_time"` // ms since the epoch
	EndTime   int64     `json:"end_time"`   // ms; 0 = unset
	Lifecycle Lifecycle `json:"lifecycle"`
	// DeletedWithModel is set when deleting the model deleted this candidate, so that restoring the model
	// restores exactly these candidates and not those deleted on their own. Any explicit lifecycle change of
	// the candidate clears it.
	DeletedWithModel bool      `json:"deleted_with_model,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
}

// Version is a semver of a model, backed by exactly one candidate or exactly one logged model: its files
// are that owner's (under Subpath), so promoting copies no bytes.
type Version struct {
	ID            int64     `json:"id"` // unique per project; GitLab's model_version_id
	Project       int64     `json:"project"`
	ModelID       uint64    `json:"model_id"`
	Seq           int64     `json:"seq"`    // per model 1, 2, 3…; MLflow's "version"; never reused
	Semver        string    `json:"semver"` // strict semver 2.0, unique per model
	CandidateID   uint64    `json:"candidate_id,omitempty"`
	LoggedModelID uint64    `json:"logged_model_id,omitempty"` // set instead of CandidateID
	Subpath       string    `json:"subpath,omitempty"`         // directory inside the owner's files; "" = root
	Source        string    `json:"source,omitempty"`
	RunLink       string    `json:"run_link,omitempty"`
	Description   string    `json:"description,omitempty"`
	UserID        string    `json:"user_id,omitempty"`
	Stage         string    `json:"stage,omitempty"`
	Tags          []Tag     `json:"tags,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Owner is the ID of the candidate or logged model whose files back the version.
func (v *Version) Owner() uint64 {
	if v.LoggedModelID != 0 {
		return v.LoggedModelID
	}
	return v.CandidateID
}

// Param is an immutable run parameter.
type Param struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Metric is one point of a metric history.
type Metric struct {
	Key       string  `json:"key"`
	Value     float64 `json:"value"`
	Timestamp int64   `json:"timestamp"` // ms
	Step      int64   `json:"step"`
	// MLflow 3 links a point to the logged model it measures and the dataset it was measured on; all
	// zero otherwise. A point with a LoggedModel is also one of that model's metrics.
	LoggedModel   LMID   `json:"model_id,omitzero"`
	DatasetName   string `json:"dataset_name,omitempty"`
	DatasetDigest string `json:"dataset_digest,omitempty"`
	// Run is the run that logged the point; set on the points of a logged model's metrics only.
	Run EID `json:"run_id,omitzero"`
}

// RunData is what runs/get shows of a candidate: params, tags, the latest value of each metric, and the
// run's inputs and outputs.
type RunData struct {
	Params  []Param  `json:"params"`
	Tags    []Tag    `json:"tags"`
	Metrics []Metric `json:"metrics"` // latest point per key: highest step, then newest timestamp
	IO      RunIO    `json:"io"`
}

// File is one stored file of a candidate or a logged model.
type File struct {
	// OwnerID is the ID of the file's owner: a candidate, or a logged model (whose IDs are drawn from
	// the same sequence).
	OwnerID     uint64 `json:"candidate_id"`
	Path        string `json:"path"` // validated, "/"-separated, relative
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"` // lowercase hex
	ContentType string `json:"content_type,omitempty"`
	BlobKey     string `json:"blob_key"` // opaque, generated by mlgate
	// Backend names the configured storage backend holding BlobKey. Empty means the default backend: rows
	// written before backends were recorded per file have none.
	Backend   string    `json:"backend,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// ModelUpdate changes a model; nil and empty fields are left as they are. DeleteTags is applied before
// SetTags.
type ModelUpdate struct {
	DisplayName *string // rename; the slug Name never changes
	Description *string
	SetTags     []Tag    // replace the value of an existing key, or add the tag
	DeleteTags  []string // absent keys are ignored
	Lifecycle   *Lifecycle
	InRegistry  *bool
}

// CandidateUpdate changes a candidate; nil fields are left as they are.
type CandidateUpdate struct {
	Name      *string
	Status    *RunStatus
	EndTime   *int64 // ms; 0 = unset
	Lifecycle *Lifecycle
}

// VersionUpdate changes a version; nil and empty fields are left as they are. DeleteTags is applied
// before SetTags.
type VersionUpdate struct {
	Description *string
	Stage       *string // one of VersionStages
	SetTags     []Tag
	DeleteTags  []string // absent keys are ignored
}

// VersionStages are the stage names a version may have, as MLflow spells them. "None" is the default.
var VersionStages = []string{"None", "Staging", "Production", "Archived"}

// ModelAlias is one alias of a model: a name that points at a version's Seq.
type ModelAlias struct {
	Alias string `json:"alias"`
	Seq   int64  `json:"seq"`
}

// MaxAliasLen is the longest alias, in characters.
const MaxAliasLen = 255

// ValidateAlias checks a model alias: 1–MaxAliasLen characters of UTF-8 without control characters, '/',
// ':' or '@'; not all digits, and not a name MLflow reserves because it reads as a version reference:
// "latest" or "v" followed by digits (both in any case). It returns an error wrapping ErrInvalid.
func ValidateAlias(alias string) error {
	if alias == "" || !utf8.ValidString(alias) || utf8.RuneCountInString(alias) > MaxAliasLen {
		return fmt.Errorf("alias %.60q: must be 1–%d characters of UTF-8: %w", alias, MaxAliasLen, ErrInvalid)
	}
	if strings.ContainsAny(alias, "/:@") || strings.IndexFunc(alias, unicode.IsControl) >= 0 {
		return fmt.Errorf("alias %.60q: '/', ':', '@' and control characters are not allowed: %w", alias, ErrInvalid)
	}
	lower := strings.ToLower(alias)
	if allDigits(alias) || lower == "latest" || (lower[0] == 'v' && allDigits(lower[1:])) {
		return fmt.Errorf("alias %q: reserved, it reads as a version reference: %w", alias, ErrInvalid)
	}
	return nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ViewType selects candidates by lifecycle, as MLflow's run_view_type does.
type ViewType uint8

const (
	ActiveOnly ViewType = iota
	DeletedOnly
	AllLifecycles
)

// Admits reports whether an entity in lifecycle l is part of view v. This is the one definition of the
// view rule: stores, searches and listings all ask it. An unknown view admits nothing.
func (v ViewType) Admits(l Lifecycle) bool {
	switch v {
	case ActiveOnly:
		return l == Active
	case DeletedOnly:
		return l == Deleted
	case AllLifecycles:
		return true
	}
	return false
}

// MetricOrder orders candidates by the latest value of a metric.
type MetricOrder struct {
	Key  string
	Desc bool
}

// CandidateQuery selects candidates of one or more models for SearchCandidates. Filters on params, tags
// and metrics are applied by the caller.
type CandidateQuery struct {
	ModelIDs      []uint64
	View          ViewType     // zero value: ActiveOnly
	OrderByMetric *MetricOrder // nil: newest StartTime first
	Page          Page
}

// Page selects a page of a listing. Token is the opaque next-page token of the previous page.
type Page struct {
	Token string
	Limit int // <= 0: the store's default
}

// TokenScope is what an access token may do. Scopes are ordered: each includes the ones below it.
type TokenScope uint8

const (
	// ScopeRead allows reading: GET and HEAD, and MLflow's read-only POST searches.
	ScopeRead TokenScope = iota + 1
	// ScopeWrite adds every change to the token's project, including creating it on first write.
	ScopeWrite
	// ScopeAdmin is ScopeWrite on a project token. On an instance token, write and admin both allow every
	// administrative change (creating and revoking tokens).
	ScopeAdmin
)

var tokenScopeNames = [...]string{ScopeRead: "read", ScopeWrite: "write", ScopeAdmin: "admin"}

func (s TokenScope) String() string {
	if s >= ScopeRead && s <= ScopeAdmin {
		return tokenScopeNames[s]
	}
	return "invalid"
}

// ParseTokenScope maps "read", "write" or "admin" to a TokenScope. ok is false for anything else.
func ParseTokenScope(name string) (s TokenScope, ok bool) {
	for i, n := range tokenScopeNames {
		if n != "" && n == name {
			return TokenScope(i), true
		}
	}
	return 0, false
}

// MarshalText stores a scope by name, so records stay readable and the numbering can change.
func (s TokenScope) MarshalText() ([]byte, error) {
	if s < ScopeRead || s > ScopeAdmin {
		return nil, fmt.Errorf("token scope %d: %w", uint8(s), ErrInvalid)
	}
	return []byte(s.String()), nil
}

// UnmarshalText is the inverse of MarshalText.
func (s *TokenScope) UnmarshalText(b []byte) error {
	v, ok := ParseTokenScope(string(b))
	if !ok {
		return fmt.Errorf("token scope %q: %w", b, ErrInvalid)
	}
	*s = v
	return nil
}

// Limits on tokens.
const (
	MaxTokenIDLen   = 64
	MaxTokenNameLen = 255
)

// Token is an API access token. Only SHA256(secret) is stored: the secret is shown once, when the token is
// created, and the store never sees it.
type Token struct {
	ID          string `json:"id"` // public, shown by `mlgate token list` and used to revoke
	Name        string `json:"name,omitempty"`
	ProjectPath string `json:"project_path"` // the one project the token reaches; it need not exist yet; "" for an instance token
	// Instance marks an instance token: it administers the whole server (/metrics, backups, token
	// management) and reaches no project. Its ProjectPath is empty; its Scope says whether it may only read
	// (metrics, token listing, backups) or also change (create and revoke tokens).
	Instance   bool       `json:"instance,omitempty"`
	Scope      TokenScope `json:"scope"`
	SecretHash string     `json:"secret_hash"` // lowercase hex SHA-256 of the secret, 64 characters
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at,omitzero"` // zero: never
	Revoked    bool       `json:"revoked,omitempty"`
}

// Expired reports whether the token has an expiry at or before now.
func (t *Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
