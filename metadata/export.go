package metadata

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Moving a whole store into another (`mlgate metadata migrate`, bbolt to PostgreSQL) copies what the Store
// API cannot: internal ids, iids, seqs, the counters behind them and every timestamp. An Exporter streams
// a store as Records in one canonical order, the same for every implementation, so that two stores holding
// the same data export equal streams and can be compared record by record; a Loader writes such a stream
// into an empty store, batch by batch, each batch committed with the migration's progress.

// RecordKind names what a Record holds. The kinds are listed in ExportOrder.
type RecordKind string

const (
	KindSetting        RecordKind = "setting"
	KindProject        RecordKind = "project"
	KindModel          RecordKind = "model"
	KindCandidate      RecordKind = "candidate"
	KindCandidateTag   RecordKind = "candidate_tag"
	KindParam          RecordKind = "param"
	KindMetric         RecordKind = "metric"
	KindLoggedModel    RecordKind = "logged_model"
	KindLMMetric       RecordKind = "logged_model_metric"
	KindDataset        RecordKind = "dataset"
	KindDatasetContext RecordKind = "dataset_context"
	KindRunDataset     RecordKind = "run_dataset"
	KindRunModelInput  RecordKind = "run_model_input"
	KindRunModelOutput RecordKind = "run_model_output"
	KindVersion        RecordKind = "version"
	KindAlias          RecordKind = "alias"
	KindFile           RecordKind = "file"
	KindToken          RecordKind = "token"
	KindImport         RecordKind = "import_record"
	KindCounter        RecordKind = "counter"
)

// ExportOrder is the order of kinds in an export: every record comes after the records it refers to
// (a candidate after its model, a version after its owner, an alias after its version), so that a Loader
// with foreign keys can insert a stream as it comes. Within a kind, records are ordered by the key that
// each kind's doc comment on Record names, strings by bytes.
var ExportOrder = []RecordKind{
	KindSetting, KindProject, KindModel, KindCandidate, KindCandidateTag, KindParam, KindMetric, KindLoggedModel,
	KindLMMetric, KindDataset, KindDatasetContext, KindRunDataset, KindRunModelInput, KindRunModelOutput,
	KindVersion, KindAlias, KindFile, KindToken, KindImport, KindCounter,
}

// Record is one entity of an export: exactly one field is set, the one Kind names. Records share nothing
// with the store; a Loader may keep none of them after it returns.
type Record struct {
	Setting      *Setting      // by Name
	Project      *Project      // by ID
	Model        *Model        // by ID; every field, Tags in the model's order
	Candidate    *Candidate    // by ID
	CandidateTag *OwnedTag     // by (Owner, Key)
	Param        *OwnedParam   // by (Owner, Key)
	Metric       *OwnedMetric  // a run's point, by (Owner, Key, Step, Timestamp, IEEE bits of Value); Run unset
	LoggedModel  *LoggedModel  // by ID; SourceRun filled
	LMMetric     *OwnedMetric  // a logged model's point, ordered as Metric; Run is the run that logged it
	Dataset      *ModelDataset // by (ModelID, Name, Digest)
	// DatasetContext is one context a model's dataset was used in, by (ModelID, Name, Digest, Context).
	DatasetContext *DatasetSummary
	RunDataset     *RunDataset   // by Candidate, then in the order the run logged its inputs
	RunModelInput  *RunModel     // by (Candidate, LMID bytes); Step is 0
	RunModelOutput *RunModel     // by (Candidate, LMID bytes)
	Version        *Version      // by (ModelID, Seq)
	Alias          *AliasRecord  // by (ModelID, Alias)
	File           *File         // by (OwnerID, Path)
	Token          *Token        // by ID
	Import         *ImportRecord // by (Project, Source, Kind, SourceID)
	Counter        *Counter      // by (Kind in CounterKinds order, Key)
}

// Setting is an instance setting, such as the signing key (SettingSigningKey).
type Setting struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// SettingSigningKey is the setting that holds the SigningKey.
const SettingSigningKey = "signing_key"

// OwnedTag is a run's tag.
type OwnedTag struct {
	Owner uint64 `json:"owner"` // candidate ID
	Tag
}

// OwnedParam is a run's param.
type OwnedParam struct {
	Owner uint64 `json:"owner"` // candidate ID
	Param
}

// OwnedMetric is one point of a run's or a logged model's metric history.
type OwnedMetric struct {
	Owner uint64 `json:"owner"` // candidate or logged model ID
	Metric
}

// ModelDataset is a dataset as a model (experiment) keeps it.
type ModelDataset struct {
	ModelID uint64 `json:"model_id"`
	Dataset
}

// RunDataset is a run's dataset input: the dataset by name and digest (its description is the model's
// Dataset), with the input's tags.
type RunDataset struct {
	Candidate uint64 `json:"candidate"`
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	Tags      []Tag  `json:"tags,omitempty"`
}

// RunModel links a run to a logged model it used (input) or produced at Step (output).
type RunModel struct {
	Candidate uint64 `json:"candidate"`
	LMID      LMID   `json:"lmid"`
	Step      int64  `json:"step,omitempty"`
}

// AliasRecord is a model's alias.
type AliasRecord struct {
	ModelID uint64 `json:"model_id"`
	ModelAlias
}

// CounterKind names a number source of a store. A counter's Value is the last number issued (0: none
// yet); a store issues only numbers above it.
type CounterKind string

const (
	CounterProjectID    CounterKind = "project_id"    // Key 0
	CounterModelIID     CounterKind = "model_iid"     // Key: project ID
	CounterCandidateIID CounterKind = "candidate_iid" // Key: project ID
	CounterVersionID    CounterKind = "version_id"    // Key: project ID
	CounterVersionSeq   CounterKind = "version_seq"   // Key: model ID; the model's seq high-water mark
	CounterModelID      CounterKind = "model_id"      // Key 0: model IDs
	CounterOwnerID      CounterKind = "owner_id"      // Key 0: candidate and logged model IDs (ReserveOwnerID)
)

// CounterKinds is the order of counter records in an export.
var CounterKinds = []CounterKind{
	CounterProjectID, CounterModelIID, CounterCandidateIID, CounterVersionID, CounterVersionSeq, CounterModelID, CounterOwnerID,
}

// Counter is the state of one number source.
type Counter struct {
	Kind  CounterKind `json:"kind"`
	Key   uint64      `json:"key"`
	Value uint64      `json:"value"`
}

// Kind returns the kind of the field that is set, "" for an empty record.
func (r Record) Kind() RecordKind {
	switch {
	case r.Setting != nil:
		return KindSetting
	case r.Project != nil:
		return KindProject
	case r.Model != nil:
		return KindModel
	case r.Candidate != nil:
		return KindCandidate
	case r.CandidateTag != nil:
		return KindCandidateTag
	case r.Param != nil:
		return KindParam
	case r.Metric != nil:
		return KindMetric
	case r.LoggedModel != nil:
		return KindLoggedModel
	case r.LMMetric != nil:
		return KindLMMetric
	case r.Dataset != nil:
		return KindDataset
	case r.DatasetContext != nil:
		return KindDatasetContext
	case r.RunDataset != nil:
		return KindRunDataset
	case r.RunModelInput != nil:
		return KindRunModelInput
	case r.RunModelOutput != nil:
		return KindRunModelOutput
	case r.Version != nil:
		return KindVersion
	case r.Alias != nil:
		return KindAlias
	case r.File != nil:
		return KindFile
	case r.Token != nil:
		return KindToken
	case r.Import != nil:
		return KindImport
	case r.Counter != nil:
		return KindCounter
	}
	return ""
}

// value is the field that is set.
func (r Record) value() any {
	switch r.Kind() {
	case KindSetting:
		return r.Setting
	case KindProject:
		return r.Project
	case KindModel:
		return r.Model
	case KindCandidate:
		return r.Candidate
	case KindCandidateTag:
		return r.CandidateTag
	case KindParam:
		return r.Param
	case KindMetric:
		return r.Metric
	case KindLoggedModel:
		return r.LoggedModel
	case KindLMMetric:
		return r.LMMetric
	case KindDataset:
		return r.Dataset
	case KindDatasetContext:
		return r.DatasetContext
	case KindRunDataset:
		return r.RunDataset
	case KindRunModelInput:
		return r.RunModelInput
	case KindRunModelOutput:
		return r.RunModelOutput
	case KindVersion:
		return r.Version
	case KindAlias:
		return r.Alias
	case KindFile:
		return r.File
	case KindToken:
		return r.Token
	case KindImport:
		return r.Import
	case KindCounter:
		return r.Counter
	}
	return nil
}

// String shows the record as its kind and JSON, for reports of differences. A metric value is shown by
// its IEEE bits, since JSON has no NaN; a setting's value by the start of its SHA-256 only: the signing
// key is a secret, and reports go to terminals and logs.
func (r Record) String() string {
	v := canonical(r)
	if r.Setting != nil {
		sum := sha256.Sum256(r.Setting.Value)
		v = struct {
			Name   string `json:"name"`
			SHA256 string `json:"value_sha256_prefix"`
		}{r.Setting.Name, hex.EncodeToString(sum[:6])}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%s (not printable: %v)", r.Kind(), err)
	}
	return fmt.Sprintf("%s %s", r.Kind(), b)
}

// metricJSON replaces a point's value by its bits: JSON cannot carry NaN or ±Inf, and -0 is not 0 here.
type metricJSON struct {
	Owner uint64 `json:"owner"`
	Metric
	Value string `json:"value"`
}

// canonical is r's value with the differences that carry no meaning removed: times in UTC, empty slices
// nil, metric values as bits (NaN canonical).
func canonical(r Record) any {
	switch {
	case r.Metric != nil || r.LMMetric != nil:
		m := r.Metric
		if m == nil {
			m = r.LMMetric
		}
		bits := math.Float64bits(m.Value)
		if math.IsNaN(m.Value) {
			bits = math.Float64bits(math.NaN())
		}
		return metricJSON{Owner: m.Owner, Metric: m.Metric, Value: fmt.Sprintf("%016x", bits)}
	case r.Project != nil:
		p := *r.Project
		p.CreatedAt = utc(p.CreatedAt)
		return p
	case r.Model != nil:
		m := *r.Model
		m.Tags = nilIfEmpty(m.Tags)
		m.CreatedAt, m.UpdatedAt = utc(m.CreatedAt), utc(m.UpdatedAt)
		return m
	case r.Candidate != nil:
		c := *r.Candidate
		c.CreatedAt = utc(c.CreatedAt)
		return c
	case r.LoggedModel != nil:
		lm := *r.LoggedModel
		lm.Params, lm.Tags = nilIfEmpty(lm.Params), nilIfEmpty(lm.Tags)
		lm.CreatedAt, lm.UpdatedAt = utc(lm.CreatedAt), utc(lm.UpdatedAt)
		return lm
	case r.RunDataset != nil:
		d := *r.RunDataset
		d.Tags = nilIfEmpty(d.Tags)
		return d
	case r.Version != nil:
		v := *r.Version
		v.Tags = nilIfEmpty(v.Tags)
		v.CreatedAt, v.UpdatedAt = utc(v.CreatedAt), utc(v.UpdatedAt)
		return v
	case r.File != nil:
		f := *r.File
		f.CreatedAt = utc(f.CreatedAt)
		return f
	case r.Token != nil:
		t := *r.Token
		t.CreatedAt, t.ExpiresAt = utc(t.CreatedAt), utc(t.ExpiresAt)
		return t
	case r.Import != nil:
		i := *r.Import
		i.UpdatedAt = utc(i.UpdatedAt)
		return i
	}
	return r.value()
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// EqualRecords reports whether a and b hold the same entity with the same fields: times compare as
// instants, an empty list equals none, and metric values compare by their bits, every NaN alike.
func EqualRecords(a, b Record) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	ja, errA := json.Marshal(canonical(a))
	jb, errB := json.Marshal(canonical(b))
	return errA == nil && errB == nil && string(ja) == string(jb)
}

// Exporter is implemented by stores that can stream their whole content (`mlgate metadata migrate` reads
// the source and, to verify, both stores through it).
type Exporter interface {
	// Export calls fn for every record of the store, in ExportOrder and each kind's order, from one
	// consistent view of the store; it never holds the store in memory. Callers should not write to the
	// store meanwhile: a store may hold a transaction open for the whole walk. fn's error stops the walk and
	// is returned; other errors are the store's (closed, ctx done, undecodable data).
	Export(ctx context.Context, fn func(Record) error) error
}

// MigrationProgress is how far a copy into a store (a Loader) has come. The Loader keeps it in the same
// transactions as the records, so that after a crash it says exactly which records are in.
type MigrationProgress struct {
	Source     string    // the source store's identity, as the migrating tool defines it
	Generation uint64    // the source's state when the copy started; a resume needs the same
	Records    int64     // records of the source's export loaded, a prefix of its stream
	Done       bool      // every record is in and has been verified
	StartedAt  time.Time // UTC
	UpdatedAt  time.Time // UTC
}

// Loader is implemented by stores that can take a whole store's Export as their content, internal ids
// included: only an empty store, or one holding a prefix of the same export (an interrupted copy).
type Loader interface {
	// BeginMigration starts a copy from the source that p names (Source, Generation; the other fields are
	// the store's), or finds the one in progress. It returns the stored progress: Records 0 for a new copy,
	// more for one resumed. It fails with an error wrapping ErrConflict, which says what the store holds,
	// when the store is not empty and holds no copy of p.Source, or one of another generation of it (the
	// source changed since). Instance settings alone (a signing key drawn by a server started on the empty
	// store) do not make it non-empty: the source's replace them.
	BeginMigration(ctx context.Context, p MigrationProgress) (*MigrationProgress, error)
	// LoadBatch inserts recs, the records of the export after the first `from`, and moves the progress to
	// from+len(recs), in one transaction. Counter records raise the store's counters and sequences to their
	// Value. ErrConflict when the stored progress is not at from (another copy ran meanwhile) or names
	// another source; ErrExists when a record is already there; ErrInvalid for a record the store cannot
	// hold. Nothing of a failed batch is kept.
	LoadBatch(ctx context.Context, source string, from int64, recs []Record) error
	// FinishMigration marks the copy of source done after the caller verified it. ErrConflict when no
	// copy of source is in progress.
	FinishMigration(ctx context.Context, source string) error
	// MigrationProgress returns the stored progress, or ErrNotFound when no copy ever started.
	MigrationProgress(ctx context.Context) (*MigrationProgress, error)
}
