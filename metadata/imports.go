package metadata

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ImportKind names what an ImportRecord tracks.
type ImportKind string

const (
	ImportExperiment      ImportKind = "experiment"       // SourceID: experiment id; Target: the model
	ImportRun             ImportKind = "run"              // SourceID: run id; Target: the candidate
	ImportRegisteredModel ImportKind = "registered_model" // SourceID: registered model name; Target: the model
	ImportModelVersion    ImportKind = "model_version"    // SourceID: "<registered model name>/<version>"; Target: the model, TargetIID the seq
	ImportLoggedModel     ImportKind = "logged_model"     // SourceID: the m-… id; Target: the logged model
	ImportMetric          ImportKind = "metric"           // SourceID: "<run id>/<metric key>"; Progress: points imported
	ImportArtifact        ImportKind = "artifact"         // SourceID: "<run id or m-id>/<path>"; Progress: bytes
)

// ImportKinds lists every kind a store accepts.
var ImportKinds = []ImportKind{
	ImportExperiment, ImportRun, ImportRegisteredModel, ImportModelVersion, ImportLoggedModel, ImportMetric, ImportArtifact,
}

// Valid reports whether k is one of ImportKinds.
func (k ImportKind) Valid() bool {
	for _, known := range ImportKinds {
		if k == known {
			return true
		}
	}
	return false
}

// ImportState is an entity's progress.
type ImportState string

const (
	ImportPending ImportState = "pending" // started, not complete
	ImportDone    ImportState = "done"
)

// Valid reports whether s is ImportPending or ImportDone.
func (s ImportState) Valid() bool { return s == ImportPending || s == ImportDone }

// ImportRecord is one entity of an import into a project: what the source called it, what it became, and
// how far it got.
type ImportRecord struct {
	Project   int64       `json:"project"`
	Source    string      `json:"source"` // the source's identity (its normalized URL)
	Kind      ImportKind  `json:"kind"`
	SourceID  string      `json:"source_id"`
	TargetID  uint64      `json:"target_id,omitempty"`  // model, candidate or logged model ID
	TargetIID int64       `json:"target_iid,omitempty"` // model iid, candidate iid, or version seq
	State     ImportState `json:"state"`
	Progress  int64       `json:"progress,omitempty"` // points or bytes done
	Note      string      `json:"note,omitempty"`     // e.g. how a name collision was resolved
	UpdatedAt time.Time   `json:"updated_at"`
}

// Limits of import records, in bytes. A source is a normalized URL, whose length browsers and proxies
// commonly cap near 2 KiB. The longest source id is an artifact's: an m-… id (34 bytes) or a run id (32),
// "/", and a path of up to MaxFilePathLen; the limit leaves room for registered model names beyond that.
const (
	MaxImportSourceLen   = 2048
	MaxImportSourceIDLen = 2048
	MaxImportNoteLen     = 5000
)

// ValidateImportRecord checks what a store needs of a record to key and keep it: a source and a source id of
// 1 to their limit's bytes of UTF-8 without NUL (NUL separates key parts, and no SQL text column holds it), a
// known kind and state, a note of at most MaxImportNoteLen bytes of UTF-8, and no negative TargetIID or
// Progress. It returns an error wrapping ErrInvalid. Project and TargetID are the store's to check.
func ValidateImportRecord(r *ImportRecord) error {
	if err := ValidateImportKey(r.Source, r.Kind, r.SourceID); err != nil {
		return err
	}
	switch {
	case !r.State.Valid():
		return fmt.Errorf("import record %s %.60q: state %.30q: %w", r.Kind, r.SourceID, r.State, ErrInvalid)
	case len(r.Note) > MaxImportNoteLen || !utf8.ValidString(r.Note):
		return fmt.Errorf("import record %s %.60q: note must be at most %d bytes of UTF-8: %w",
			r.Kind, r.SourceID, MaxImportNoteLen, ErrInvalid)
	case r.TargetIID < 0 || r.Progress < 0:
		return fmt.Errorf("import record %s %.60q: negative target iid or progress: %w", r.Kind, r.SourceID, ErrInvalid)
	}
	return nil
}

// ValidateImportKey checks the parts that name a record, as ValidateImportRecord does.
func ValidateImportKey(source string, kind ImportKind, sourceID string) error {
	if err := ValidateImportSource(source); err != nil {
		return err
	}
	if !kind.Valid() {
		return fmt.Errorf("import kind %.30q: want one of %v: %w", kind, ImportKinds, ErrInvalid)
	}
	if sourceID == "" || len(sourceID) > MaxImportSourceIDLen || !utf8.ValidString(sourceID) || strings.IndexByte(sourceID, 0) >= 0 {
		return fmt.Errorf("import source id %.60q: must be 1–%d bytes of UTF-8 without NUL: %w", sourceID, MaxImportSourceIDLen, ErrInvalid)
	}
	return nil
}

// ValidateImportSource checks a source as ValidateImportRecord does.
func ValidateImportSource(source string) error {
	if source == "" || len(source) > MaxImportSourceLen || !utf8.ValidString(source) || strings.IndexByte(source, 0) >= 0 {
		return fmt.Errorf("import source %.60q: must be 1–%d bytes of UTF-8 without NUL: %w", source, MaxImportSourceLen, ErrInvalid)
	}
	return nil
}
