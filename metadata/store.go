package metadata

import (
	"context"
	"io"
	"time"
)

// ProjectRef selects a project by ID or by Path (exactly one is set).
type ProjectRef struct {
	ID   int64
	Path string
}

// ModelRef selects a model: by ID, or within Project by IID, Name or DisplayName (exactly one set).
type ModelRef struct {
	ID          uint64
	Project     int64
	IID         int64
	Name        string
	DisplayName string
}

// CandidateRef selects a candidate: by ID, by EID, or within Project by IID (exactly one set).
type CandidateRef struct {
	ID      uint64
	EID     EID
	Project int64
	IID     int64
}

// VersionRef selects a version: within Project by ID, or within ModelID by Seq, Semver or Alias.
type VersionRef struct {
	Project int64
	ID      int64
	ModelID uint64
	Seq     int64
	Semver  string
	Alias   string
}

// PackageVersion is the result of EnsurePackageVersion.
type PackageVersion struct {
	Model     *Model
	Version   *Version
	Candidate *Candidate // nil when the version is backed by a logged model
	Created   bool       // the version (and its candidate) was created by this call
}

// Store persists the data model. Every method is safe for concurrent use.
//
// Transactions. Each method below runs in one transaction of its own and is atomic: it either does all
// that its comment says or nothing, and readers never see it half done. The exceptions are ForEachFile,
// which reads in batches, and Close. No method holds a transaction open after it returns, so callers may
// stream blobs freely between calls, never inside one.
//
// Several calls compose into one transaction with Update: every method called with the context that
// Update passes to its function joins that transaction instead of opening its own, so a decision read in
// it (the highest version, a tag's current value) still holds when the writes that depend on it commit.
//
// Concurrent writes. A store may commit concurrent writes together, to share what making them durable
// costs. Each method's outcome stays its own: a write that fails neither fails nor undoes the others, and a
// write that returned nil is committed and visible to every later call, and durable when the store syncs
// (it survives a crash). One caller's successive writes take effect in its order. A write whose ctx is done
// before it commits may be dropped with the context's error.
//
// Every write may fail with ErrInsufficientStorage when the filesystem is full; nothing of it is kept.
type Store interface {
	// Update runs fn in one write transaction and commits it when fn returns nil; an error from fn, or
	// from any write method called inside it (even one fn chose to ignore), rolls everything back and is
	// returned. Store methods called with fn's ctx join the transaction, reads included, and see its
	// writes; a call made with another context runs outside it and must not write, or it waits for the
	// transaction forever. Update called with a ctx that already carries a transaction joins it.
	//
	// fn must be fast and free of side effects outside the store: it may be run again when the
	// transaction has to be retried (a serialization failure in a database with concurrent writers, or the
	// failure of another write that shared its commit), and no blob I/O may happen inside it. Values that
	// methods filled in during a transaction that was rolled back mean nothing.
	Update(ctx context.Context, fn func(ctx context.Context) error) error

	// Projects

	// Project returns a project, or ErrNotFound.
	Project(ctx context.Context, ref ProjectRef) (*Project, error)
	// ListProjects returns up to limit projects (<= 0: all) in id order.
	ListProjects(ctx context.Context, limit int) ([]*Project, error)
	// EnsureProject returns the project with path, creating it if missing.
	// ErrInvalid for an empty or malformed path.
	EnsureProject(ctx context.Context, path string) (*Project, error)

	// Models

	// CreateModel stores m and fills ID, IID, CreatedAt and UpdatedAt. If m.Name is empty it is
	// derived from m.DisplayName with Slugify plus a numeric suffix when taken; if m.DisplayName is
	// empty it is m.Name.
	//
	// Presets, so that an import keeps the source's identifiers: m.IID > 0 requests that iid, which m gets
	// if no model of the project has it (a purged model's iid included), and the project's iid counter then
	// never issues it (nor any below it) later; 0 takes the counter's next. Iid 0 itself belongs to
	// EnsureDefaultModel. Non-zero m.CreatedAt and m.UpdatedAt are kept, at millisecond precision in UTC;
	// zero ones become now.
	//
	// ErrInvalid for a bad name or a negative IID; ErrExists if the name, the display name or a requested
	// iid is taken (the caller may retry with IID 0); ErrNotFound for an unknown project.
	CreateModel(ctx context.Context, m *Model) error
	// EnsureDefaultModel returns the project's default model, MLflow's experiment "0": iid 0, display
	// name "Default", created on first use. ErrNotFound for an unknown project; ErrConflict if another
	// model already has the display name "Default".
	EnsureDefaultModel(ctx context.Context, project int64) (*Model, error)
	// PurgeModel removes a model and frees its names. ErrConflict while it has candidates, logged models
	// or versions; ErrNotFound for an unknown model. The iid counter never issues the model's iid again;
	// only a CreateModel that requests it may take it.
	PurgeModel(ctx context.Context, id uint64) error
	// Model returns a model of any lifecycle, or ErrNotFound.
	Model(ctx context.Context, ref ModelRef) (*Model, error)
	// ListModels returns the project's models in IID order.
	ListModels(ctx context.Context, project int64, p Page) ([]*Model, string, error)
	// UpdateModel applies u to the model in one transaction and returns the model as stored. A rename
	// changes DisplayName only, never Name. Changing Lifecycle to Deleted also deletes the model's active
	// candidates (marking them DeletedWithModel); changing it back to Active restores exactly the
	// candidates so marked. ErrNotFound for an unknown model; ErrExists if the new display name is taken
	// in the project; ErrInvalid for a bad display name, description, tag or lifecycle.
	UpdateModel(ctx context.Context, id uint64, u ModelUpdate) (*Model, error)

	// Candidates

	// ReserveOwnerID draws an id from the sequence candidates and logged models share, for a candidate
	// created later (EnsurePackageVersion) whose files are stored before it exists: blob keys are derived
	// from the owner's id. No record gets the id until it is used, and no later draw returns it; an id
	// never used costs nothing but the blobs stored under it, which no row references and fsck finds.
	ReserveOwnerID(ctx context.Context) (uint64, error)
	// CreateCandidate stores c with tags and fills ID, IID, EID and CreatedAt (StartTime too when 0).
	// Name, UserID, Status, StartTime, EndTime, Lifecycle and DeletedWithModel are stored as given, so a
	// candidate may be born finished, failed or killed, and deleted.
	//
	// Presets, so that an import keeps the source's identifiers: a non-zero c.EID is kept (an MLflow
	// run_id); c.IID > 0 requests that project-scoped iid, which c gets if no candidate of the project has
	// it, and the project's candidate iid counter then never issues it (nor any below it) later; a non-zero
	// c.CreatedAt is kept, at millisecond precision in UTC. Zero values are drawn as without presets.
	//
	// ErrNotFound if c.ModelID is unknown; ErrInvalid for bad tags, name, status or lifecycle, or a
	// negative IID; ErrExists if any candidate of the store has c.EID, or one of the project has c.IID.
	CreateCandidate(ctx context.Context, c *Candidate, tags []Tag) error
	// Candidate returns a candidate of any lifecycle, or ErrNotFound.
	Candidate(ctx context.Context, ref CandidateRef) (*Candidate, error)
	// ListCandidates returns a model's candidates, newest start time first.
	ListCandidates(ctx context.Context, modelID uint64, p Page) ([]*Candidate, string, error)
	// SearchCandidates lists the candidates of q.ModelIDs that q.View admits, newest StartTime first, or by
	// the latest value of a metric: ascending numbers (descending with Desc), then NaN, then candidates
	// without the metric (newest first). ErrInvalid for an empty ModelIDs, a bad metric key or view, or a
	// token of another query; ErrNotFound for an unknown model.
	SearchCandidates(ctx context.Context, q CandidateQuery) ([]*Candidate, string, error)
	// UpdateCandidate applies u and returns the candidate as stored. Setting Lifecycle clears
	// DeletedWithModel. ErrNotFound for an unknown candidate; ErrInvalid for a bad name, status or lifecycle.
	UpdateCandidate(ctx context.Context, id uint64, u CandidateUpdate) (*Candidate, error)

	// Run data

	// LogBatch writes params, metrics and tags of a candidate in one transaction, all or nothing.
	// A param logged again with another value is ErrInvalid; with the same value it is a no-op. An
	// exact duplicate metric point is a no-op. A point with a LoggedModel also becomes one of that logged
	// model's metrics. ErrInvalid for over-long keys or values; ErrNotFound for an unknown candidate, or a
	// logged model that is unknown or of another project.
	LogBatch(ctx context.Context, candidateID uint64, params []Param, metrics []Metric, tags []Tag) error
	// RunData returns params, tags and latest metrics sorted by key, and the run's inputs and outputs.
	// ErrNotFound for an unknown candidate.
	RunData(ctx context.Context, candidateID uint64) (*RunData, error)
	// MetricHistory returns a metric's points ordered by step, then timestamp, with the logged model and
	// dataset each was logged with. ErrInvalid for a bad token.
	MetricHistory(ctx context.Context, candidateID uint64, key string, p Page) ([]Metric, string, error)
	// DeleteTag removes a candidate's tag. ErrNotFound for an unknown candidate or an absent key.
	DeleteTag(ctx context.Context, candidateID uint64, key string) error

	// Versions

	// CreateVersion stores v and fills ID, Seq, CreatedAt, UpdatedAt, and Semver when empty (next minor
	// after the highest: 1.0.0, 1.1.0, …). v names exactly one of CandidateID and LoggedModelID. Marks the
	// model InRegistry.
	//
	// Presets, so that an import keeps MLflow's version numbers: v.Seq > 0 requests that seq. Seqs are never
	// reused, so it must be above the model's high-water mark: the highest seq the model has ever had,
	// deleted versions and earlier requested seqs included (a seq skipped by a request stays unused for
	// good). Requesting seqs in ascending order therefore always succeeds on a model without versions. The
	// mark then moves to v.Seq, and a later version without a preset gets v.Seq+1. Non-zero v.CreatedAt and
	// v.UpdatedAt are kept, at millisecond precision in UTC.
	//
	// ErrInvalid for a bad semver or owner, or a negative Seq; ErrExists if the semver is taken, or if a
	// requested seq is at or below the high-water mark (the caller may retry with Seq 0); ErrNotFound for an
	// unknown model, candidate or logged model.
	CreateVersion(ctx context.Context, v *Version) error
	// Version returns a version, or ErrNotFound; ErrAliasNotFound when ref.Alias names no alias.
	Version(ctx context.Context, ref VersionRef) (*Version, error)
	// UpdateVersion applies u and returns the version as stored. ErrNotFound (ErrAliasNotFound for an
	// unknown ref.Alias) for an unknown version; ErrInvalid for a bad description, stage or tag.
	UpdateVersion(ctx context.Context, ref VersionRef, u VersionUpdate) (*Version, error)
	// DeleteVersion removes a version, its index entries and the aliases pointing at it, never its
	// candidate or files. Seqs and IDs are not reused. ErrNotFound (ErrAliasNotFound for an unknown
	// ref.Alias) for an unknown version.
	DeleteVersion(ctx context.Context, ref VersionRef) error
	// ListVersions returns a model's versions in Seq order.
	ListVersions(ctx context.Context, modelID uint64, p Page) ([]*Version, string, error)
	// VersionsBackedBy returns every version, of any model, backed by the candidate or logged model
	// with the ID owner, ordered by model ID then Seq; none is an empty list, not an error.
	VersionsBackedBy(ctx context.Context, owner uint64) ([]*Version, error)
	// EnsurePackageVersion resolves <modelName>/<semver> in project, creating the model (in the
	// registry), a fresh backing candidate and the version in one transaction when they are missing. The
	// candidate gets candidateID when that is not 0 (an id from ReserveOwnerID). ErrInvalid for a bad name
	// or semver, or a candidateID never reserved; ErrExists for a candidateID already in use.
	EnsurePackageVersion(ctx context.Context, project int64, modelName, semver string, candidateID uint64) (*PackageVersion, error)

	// Logged models (MLflow 3)

	// CreateLoggedModel stores lm and fills ID (from the candidates' sequence), LMID (random), Project
	// (from the model), SourceRun (the source run's EID), CreatedAt and UpdatedAt; lm is changed only on
	// success. Params and tags are stored sorted by key; later ones of a key replace earlier ones.
	//
	// Presets, so that an import keeps the source's identifiers: a non-zero lm.LMID is kept (MLflow's m-…
	// model_id); non-zero lm.CreatedAt and lm.UpdatedAt are kept, at millisecond precision in UTC, and
	// CreatedAt orders searches as a store-given one does.
	//
	// ErrNotFound for an unknown model, a model outside a non-zero lm.Project, or a source run that is
	// unknown or of another project; ErrInvalid for a bad name, model type, status, param or tag; ErrExists
	// if any logged model of the store has lm.LMID.
	CreateLoggedModel(ctx context.Context, lm *LoggedModel) error
	// LoggedModel returns a logged model, or ErrNotFound (also for one outside a non-zero ref.Project).
	// ErrInvalid for a ref that selects nothing or several ways.
	LoggedModel(ctx context.Context, ref LoggedModelRef) (*LoggedModel, error)
	// UpdateLoggedModel applies u in one transaction and returns the logged model as stored. ErrNotFound
	// for an unknown logged model; ErrInvalid for a bad status, message, tag or param, or a param logged
	// again with another value.
	UpdateLoggedModel(ctx context.Context, id uint64, u LoggedModelUpdate) (*LoggedModel, error)
	// DeleteLoggedModel removes a logged model with its metrics and file rows, in one transaction, and
	// returns the removed file rows so that the caller deletes their blobs. ErrConflict while a version is
	// backed by it; ErrNotFound for an unknown logged model.
	DeleteLoggedModel(ctx context.Context, id uint64) ([]*File, error)
	// SearchLoggedModels lists the logged models of q.ModelIDs newest first, or by the latest value
	// (highest step, then newest timestamp) of a metric: ascending numbers (descending with Desc), then
	// NaN, then the logged models without the metric (newest first). ErrInvalid for an empty ModelIDs, a bad
	// metric key, or a token of another query; ErrNotFound for an unknown model.
	SearchLoggedModels(ctx context.Context, q LoggedModelQuery) ([]*LoggedModel, string, error)
	// LoggedModelMetrics returns every point logged to a logged model, each with its Run, ordered by key,
	// step, timestamp. ErrNotFound for an unknown logged model.
	LoggedModelMetrics(ctx context.Context, id uint64) ([]Metric, error)

	// Datasets, inputs and outputs (MLflow 3)

	// LogInputs links datasets and logged models to a candidate as its inputs, in one transaction. A
	// model (experiment) keeps each dataset once, by name and digest: the first description logged is the
	// one kept, and linking a dataset or logged model again is a no-op. ErrNotFound for an unknown
	// candidate or logged model; ErrInvalid for an empty or over-long name, digest, source type, source,
	// schema, profile or input tag.
	LogInputs(ctx context.Context, candidateID uint64, datasets []DatasetInput, models []LMID) error
	// LogOutputs links logged models to a candidate as its outputs, in one transaction; a model already
	// linked keeps its first step. ErrNotFound for an unknown candidate or logged model.
	LogOutputs(ctx context.Context, candidateID uint64, outputs []ModelOutput) error
	// SearchDatasets lists the datasets of models, one entry per context an input gave them, ordered by
	// model, name, digest, context. ErrInvalid for an empty modelIDs.
	SearchDatasets(ctx context.Context, modelIDs []uint64) ([]DatasetSummary, error)

	// Aliases

	// SetAlias points alias at version seq of the model, moving it if it exists. ErrInvalid for a bad
	// alias (see ValidateAlias); ErrNotFound for an unknown model or version.
	SetAlias(ctx context.Context, modelID uint64, alias string, seq int64) error
	// Alias returns the Seq an alias points at. ErrNotFound for an unknown model; ErrAliasNotFound for
	// an unknown alias.
	Alias(ctx context.Context, modelID uint64, alias string) (int64, error)
	// DeleteAlias removes an alias. ErrNotFound for an unknown model; ErrAliasNotFound for an unknown alias.
	DeleteAlias(ctx context.Context, modelID uint64, alias string) error
	// Aliases returns a model's aliases sorted by alias (byte order), empty when there are none.
	// ErrNotFound for an unknown model.
	Aliases(ctx context.Context, modelID uint64) ([]ModelAlias, error)

	// Files

	// CommitFile inserts or replaces the row for (f.CandidateID, f.Path) and returns the replaced row,
	// if any. f.CandidateID is the owner: a candidate or a logged model. ErrConflict if f.Path collides
	// with a directory, has a file as an ancestor, or a row exists and replace is false. ErrNotFound for
	// an unknown owner; ErrInvalid for a bad path.
	CommitFile(ctx context.Context, f *File, replace bool) (replaced *File, err error)
	// File returns one file row, or ErrNotFound.
	File(ctx context.Context, candidateID uint64, path string) (*File, error)
	// ListFiles returns the candidate's files under prefix (a directory path without trailing "/",
	// "" = all) in path order, recursively. ErrInvalid for a bad token.
	ListFiles(ctx context.Context, candidateID uint64, prefix string, p Page) ([]*File, string, error)
	// DeleteFile removes a file row and returns it, or ErrNotFound.
	DeleteFile(ctx context.Context, candidateID uint64, path string) (*File, error)
	// SwitchFileBackend moves a row to another blob in one transaction: it sets Backend to newBackend and
	// BlobKey to newKey, provided the row still has BlobKey expectOldKey (a compare-and-swap, so a file
	// replaced or deleted meanwhile is never pointed at a stale copy). ErrConflict if the row's key
	// changed; ErrNotFound if the row is gone; ErrInvalid for a bad path or an empty newKey.
	SwitchFileBackend(ctx context.Context, candidateID uint64, path, expectOldKey, newBackend, newKey string) error
	// ForEachFile calls fn for every file row of every candidate, in (candidate, path) order.
	// It reads in batches so that no transaction stays open while fn runs. fn's error stops the walk.
	ForEachFile(ctx context.Context, fn func(*File) error) error

	// Tokens

	// CreateToken stores t and fills CreatedAt when zero. The caller draws ID and the secret behind
	// SecretHash. ErrInvalid for an empty or over-long ID or name, a bad project path or scope, a project
	// token without a project path or an instance token with one, or a SecretHash that is not 64
	// lowercase hex characters; ErrExists if the ID or the hash is taken.
	CreateToken(ctx context.Context, t *Token) error
	// TokenBySecretHash returns the token with that SecretHash, revoked and expired ones included (the
	// caller decides), or ErrNotFound. Every field CreateToken stored comes back, Instance included.
	TokenBySecretHash(ctx context.Context, hash string) (*Token, error)
	// ListTokens returns every token, oldest first (then by ID).
	ListTokens(ctx context.Context) ([]*Token, error)
	// RevokeToken marks a token revoked; revoking it again is a no-op. Revoked tokens stay listed.
	// ErrNotFound for an unknown id.
	RevokeToken(ctx context.Context, id string) error

	// Imports

	// The import journal: one ImportRecord per entity that `mlgate import` brings from a source into a
	// project, written in the same transaction (Update) as the entity it records, so that an interrupted
	// import resumes where it stopped and old identifiers can be mapped to what they became. The store
	// neither checks nor follows TargetID and TargetIID: a record outlives what it names.

	// PutImportRecord inserts or replaces the record of (r.Project, r.Source, r.Kind, r.SourceID) and fills
	// UpdatedAt (now). ErrNotFound for an unknown project; ErrInvalid for an empty source, kind or source id,
	// an unknown kind or state, or fields over their limits (see ValidateImportRecord: MaxImportSourceLen,
	// MaxImportSourceIDLen, MaxImportNoteLen, UTF-8 without NUL, no negative TargetIID or Progress).
	PutImportRecord(ctx context.Context, r *ImportRecord) error
	// ImportRecord returns the record of (project, source, kind, sourceID), or ErrNotFound (also for
	// arguments no record can have, such as an unknown kind).
	ImportRecord(ctx context.Context, project int64, source string, kind ImportKind, sourceID string) (*ImportRecord, error)
	// ListImportRecords lists a project's records ordered by source, kind, source id (each by bytes);
	// source "" lists every source's and kind "" every kind's. Paged like the other listings: up to p.Limit
	// records and the next page's token, "" on the last page. ErrNotFound for an unknown project;
	// ErrInvalid for a source or kind no record can have, or a token of another listing.
	ListImportRecords(ctx context.Context, project int64, source string, kind ImportKind, p Page) ([]*ImportRecord, string, error)

	// Instance

	// SigningKey returns the instance's signing secret, from which the gateway derives the keys that seal
	// multipart upload ids and sign part URLs when no key is configured. The first call on a store draws
	// SigningKeyLen bytes from crypto/rand and stores them; every later call, from this process or any
	// other that opens the same store (replicas on one database), returns those bytes unchanged.
	// Concurrent first calls all return the one secret that was stored. The store never changes it, and
	// it is not shown by any other method. Errors are the store's (closed, ctx done, and
	// ErrInsufficientStorage when the first call cannot store it); never ErrNotFound.
	SigningKey(ctx context.Context) ([]byte, error)

	// Close closes the database.
	Close() error
}

// SigningKeyLen is the length in bytes of the signing secret a store draws (SigningKey): 256 bits.
const SigningKeyLen = 32

// Clock is the store's time source, replaceable in tests.
type Clock func() time.Time

// Snapshotter is implemented by stores that can copy their whole content consistently while they serve
// writes (hot backup). It is not part of Store: how a store is backed up is its own business (a
// PostgreSQL store has pg_dump), and the gateway serves backups only for stores that implement it.
type Snapshotter interface {
	// Snapshot pins a consistent, read-only view of the whole store; writes go on meanwhile. The caller
	// must Close it. Errors are the store's (closed, context done).
	Snapshot(ctx context.Context) (Snapshot, error)
}

// Snapshot is a pinned view of a store, to be written out once.
type Snapshot interface {
	// Size is the exact number of bytes WriteTo writes.
	Size() int64
	// WriteTo streams the copy to w; it never holds the whole copy in memory. Its error is w's, or the
	// store's failure to read.
	WriteTo(w io.Writer) (int64, error)
	// Close releases the view. It is safe to call more than once.
	Close() error
}

// BulkReader is implemented by stores that answer the per-record reads of a search page for many records
// in one call. It is not part of Store: on a store where each read is a local lookup (bbolt) the per-record
// methods cost as little, while on a networked store (PostgreSQL) a page of 100 runs would otherwise cost
// 100 round trips. Callers that find it use it and fall back to the per-record methods otherwise.
//
// Each method answers, for every id it is given, exactly what the per-record method answers for that id,
// all read from one consistent view of the store. Duplicate ids are allowed and answered once; an empty
// ids is an empty map. Every method joins the transaction of a ctx from Update, as the per-record ones do.
type BulkReader interface {
	// RunDataOf returns RunData for each of ids, keyed by candidate ID. An id that names no candidate is
	// absent from the map instead of failing the call: the caller asks RunData for it when it needs the
	// per-record error. Errors are the store's (unavailable, ctx done), never ErrNotFound.
	RunDataOf(ctx context.Context, ids []uint64) (map[uint64]*RunData, error)
	// LoggedModelMetricsOf returns LoggedModelMetrics for each of ids, keyed by logged model ID; an id that
	// names no logged model is absent from the map. Errors as for RunDataOf.
	LoggedModelMetricsOf(ctx context.Context, ids []uint64) (map[uint64][]Metric, error)
	// VersionsBackedByAny returns VersionsBackedBy for each of ids, keyed by owner ID: every id is present,
	// with an empty list when nothing is backed by it (as VersionsBackedBy answers an unknown owner).
	// Errors as for RunDataOf.
	VersionsBackedByAny(ctx context.Context, ids []uint64) (map[uint64][]*Version, error)
}
