package metadata

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LMIDPrefix starts every logged model's external id, as MLflow writes it.
const LMIDPrefix = "m-"

// LMID is a logged model's external id: MLflow's model_id, "m-" and 32 lowercase hex characters on the
// wire. The zero LMID means "none".
type LMID [16]byte

func (l LMID) String() string { return LMIDPrefix + hex.EncodeToString(l[:]) }

// IsZero reports whether l is the zero LMID (no logged model).
func (l LMID) IsZero() bool { return l == LMID{} }

// MarshalText encodes the LMID as it appears on the wire; the zero LMID is "".
func (l LMID) MarshalText() ([]byte, error) {
	if l.IsZero() {
		return nil, nil
	}
	return []byte(l.String()), nil
}

// UnmarshalText parses "m-" and 32 hex characters; "" is the zero LMID; anything else is ErrInvalid.
func (l *LMID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*l = LMID{}
		return nil
	}
	v, ok := ParseLMID(string(b))
	if !ok {
		return fmt.Errorf("logged model id %q: %w", b, ErrInvalid)
	}
	*l = v
	return nil
}

// ParseLMID parses "m-" and 32 hex characters. ok is false for anything else, the zero id included.
func ParseLMID(s string) (l LMID, ok bool) {
	h, found := strings.CutPrefix(s, LMIDPrefix)
	if !found || len(h) != 2*len(l) {
		return l, false
	}
	if _, err := hex.Decode(l[:], []byte(h)); err != nil {
		return LMID{}, false
	}
	return l, !l.IsZero()
}

// LoggedModelStatus is where a logged model's files stand. Finalize moves a model out of Pending.
type LoggedModelStatus uint8

const (
	LoggedModelPending LoggedModelStatus = iota
	LoggedModelReady
	LoggedModelFailed
)

var loggedModelStatusNames = [...]string{"LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"}

func (s LoggedModelStatus) String() string {
	if int(s) < len(loggedModelStatusNames) {
		return loggedModelStatusNames[s]
	}
	return "LOGGED_MODEL_STATUS_UNSPECIFIED"
}

// ParseLoggedModelStatus reads a status by MLflow's name or by its proto number (PENDING = 1 …
// UPLOAD_FAILED = 3).
func ParseLoggedModelStatus(v string) (LoggedModelStatus, bool) {
	for i, n := range loggedModelStatusNames {
		if v == n {
			return LoggedModelStatus(i), true
		}
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= len(loggedModelStatusNames) {
		return LoggedModelStatus(n - 1), true
	}
	return 0, false
}

// Limits of logged models and datasets, MLflow's own where it has one.
const (
	MaxLoggedModelNameLen = 500
	MaxModelTypeLen       = 500
	MaxStatusMessageLen   = 5000
	MaxDatasetNameLen     = 500
	MaxDatasetDigestLen   = 36
	MaxDatasetSourceType  = 36
	MaxDatasetSourceLen   = 65535
	MaxDatasetSchemaLen   = 1048575
	MaxDatasetProfileLen  = 16777215
	MaxInputTagKeyLen     = 255
	MaxInputTagValueLen   = 500
)

// LoggedModel is an MLflow 3 logged model: the files of one model artifact (weights, code, environment)
// logged in a model's experiment, optionally from a run. A version may be backed by a logged model
// instead of a candidate. Its ID is drawn from the same sequence as candidate IDs, because both own
// files: a File's CandidateID is the ID of its owner, a candidate or a logged model.
type LoggedModel struct {
	ID            uint64            `json:"id"` // internal, store-wide, shared with candidates
	LMID          LMID              `json:"lmid"`
	Project       int64             `json:"project"`
	ModelID       uint64            `json:"model_id"` // the model (experiment) it was logged in
	Name          string            `json:"name"`
	Status        LoggedModelStatus `json:"status"`
	StatusMessage string            `json:"status_message,omitempty"`
	ModelType     string            `json:"model_type,omitempty"`
	SourceRunID   uint64            `json:"source_run_id,omitempty"` // candidate ID; 0 = none
	SourceRun     EID               `json:"source_run,omitzero"`     // its run_id, filled by the store
	UserID        string            `json:"user_id,omitempty"`
	Params        []Param           `json:"params,omitempty"` // sorted by key
	Tags          []Tag             `json:"tags,omitempty"`   // sorted by key
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// LoggedModelRef selects a logged model by ID or by LMID (exactly one set); with Project set, a model of
// another project is ErrNotFound.
type LoggedModelRef struct {
	ID      uint64
	LMID    LMID
	Project int64
}

// LoggedModelUpdate changes a logged model; nil and empty fields are left as they are. DeleteTags is
// applied before SetTags. Params are immutable as a run's are: the same value again is a no-op, another
// one ErrInvalid.
type LoggedModelUpdate struct {
	Status        *LoggedModelStatus
	StatusMessage *string
	SetTags       []Tag
	DeleteTags    []string // absent keys are ignored
	Params        []Param
}

// LoggedModelQuery selects logged models of one or more models for SearchLoggedModels. Filters on
// params, tags and metrics are applied by the caller, as for candidates.
type LoggedModelQuery struct {
	ModelIDs      []uint64
	OrderByMetric *MetricOrder // nil: newest first
	Page          Page
}

// Dataset is a dataset a run used, as MLflow describes it. A model (experiment) keeps each dataset once,
// by name and digest.
type Dataset struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	SourceType string `json:"source_type"`
	Source     string `json:"source"`
	Schema     string `json:"schema,omitempty"`
	Profile    string `json:"profile,omitempty"`
}

// DatasetInput links a run to a dataset, with the input's own tags (mlflow.data.context).
type DatasetInput struct {
	Dataset Dataset `json:"dataset"`
	Tags    []Tag   `json:"tags,omitempty"`
}

// ModelOutput is a logged model a run produced, at a step.
type ModelOutput struct {
	LoggedModel LMID  `json:"model_id"`
	Step        int64 `json:"step"`
}

// RunIO is what a run read and produced: MLflow's RunInputs and RunOutputs.
type RunIO struct {
	Datasets    []DatasetInput // in the order first logged
	ModelInputs []LMID         // logged models the run used
	Outputs     []ModelOutput  // logged models the run produced
}

// DatasetSummary is one dataset of a model as experiments/search-datasets lists it: one entry per
// input context it was used in ("" when no input gave one).
type DatasetSummary struct {
	ModelID uint64
	Name    string
	Digest  string
	Context string
}

// ModelOfOwner returns the ID of the model whose candidate or logged model has the ID owner, the owner
// of a File. An ID that is neither is ErrNotFound; other errors are the store's.
func ModelOfOwner(ctx context.Context, s Store, owner uint64) (uint64, error) {
	c, err := s.Candidate(ctx, CandidateRef{ID: owner})
	if err == nil {
		return c.ModelID, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	lm, err := s.LoggedModel(ctx, LoggedModelRef{ID: owner})
	if err != nil {
		return 0, fmt.Errorf("file owner %d: %w", owner, err)
	}
	return lm.ModelID, nil
}
