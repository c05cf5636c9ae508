// Package boltstore implements metadata.Store on one bbolt file.
//
// # Layout
//
// This comment is the schema. Whenever the layout changes: update it, add a migration to migrations.go and
// its test case to migrations_test.go.
//
// Encodings (keys.go): u64 = 8-byte big-endian; i64 = int64 with the sign bit flipped, then big-endian
// (sorts like the signed value); f64s = sortable float (-0 normalised to +0; negative: all bits inverted,
// otherwise the sign bit set); f64b = raw IEEE bits with NaN made canonical (identity, never ordered); str0 =
// the string plus a 0x00 terminator, used only where more key parts follow (those strings are validated to
// contain no NUL); semverKey = u64(major) u64(minor) u64(patch), then 0x01 for a release or
// 0x00 str0(prerelease) for a prerelease; | = concatenation; ∅ = empty value. Records are JSON, so the bbolt
// CLI shows them readably; small hot values are fixed-width binary.
//
//	meta                    top level, outside v1, so that a binary finds the version of any layout
//	│  "db_version"            → uvarint                       last migration applied
//	v1/                     every data bucket
//	├─ counters              each value is the LAST number issued (u64); counters only go up, so numbers
//	│  │                     are never reused, even after deletes
//	│  "g" | "project"                       → u64   project ids
//	│  "p" | u64(project) | "model"          → u64   model iids
//	│  "p" | u64(project) | "candidate"      → u64   candidate iids
//	│  "p" | u64(project) | "version"        → u64   version ids (GitLab's model_version_id)
//	│  "m" | u64(modelID) | "version"        → u64   version seqs (MLflow's "version")
//	├─ projects              u64(project) → json(Project)
//	├─ projects_by_path      path → u64(project)                                 unique
//	├─ models                u64(modelID) → json(Model)                          ids from the bucket sequence
//	├─ models_by_name        u64(project) | name → u64(modelID)                  unique; package API
//	├─ models_by_display     u64(project) | display_name → u64(modelID)          unique; MLflow names
//	├─ models_by_iid         u64(project) | u64(iid) → u64(modelID)              experiment_id; list order
//	├─ candidates            u64(candID) → json(Candidate)                       ids from the bucket sequence
//	├─ candidates_by_eid     eid[16] → u64(candID)                               MLflow run_id
//	├─ candidates_by_iid     u64(project) | u64(iid) → u64(candID)               package names
//	├─ candidates_by_model   u64(modelID) | i64(start_time ms) | u64(candID) → ∅ newest first, read backwards
//	├─ params                u64(candID) | key → value
//	├─ tags                  u64(candID) | key → value                           run tags
//	├─ metrics               u64(candID) | str0(key) | i64(step) | i64(ts) | f64b(value) → ∅
//	│                                                                            full history by step, then
//	│                                                                            time; exact duplicates collapse
//	├─ metrics_latest        u64(candID) | key → i64(step) | i64(ts) | f64b(value)    (24 bytes)
//	├─ candidates_by_metric  u64(modelID) | str0(key) | class | f64s(latest) | u64(candID) → ∅
//	│                                                   class 0x00 number, 0x01 NaN (then f64s(0))
//	├─ versions              u64(modelID) | u64(seq) → json(Version)
//	├─ versions_by_id        u64(project) | u64(versionID) → u64(modelID) | u64(seq)
//	├─ versions_by_semver    u64(modelID) | semver → u64(seq)                    unique per exact string
//	├─ versions_order        u64(modelID) | semverKey | u64(seq) → ∅             highest semver: read backwards
//	├─ versions_by_candidate u64(candID) | u64(modelID) | u64(seq) → ∅           which versions a run backs
//	├─ aliases               u64(modelID) | alias → u64(seq)                     MLflow aliases (migration 2)
//	├─ files                 u64(candID) | path → json(File)                     path order; a directory is a
//	│                                                                            prefix scan of "dir/"; File.Backend
//	│                                                                            names the blob's backend, absent
//	│                                                                            (omitempty) in rows written before
//	│                                                                            it existed: those mean the default
//	│                                                                            backend, so no migration is needed
//	├─ tokens                id → json(Token)                                    API tokens (migration 3);
//	│                                                                            only the secret's SHA-256
//	├─ tokens_by_hash        sha256(secret)[32] → id                             unique; authentication
//	├─ logged_models         u64(lmID) → json(LoggedModel)                       MLflow 3 (migration 4); ids
//	│                                                                            from the candidates' sequence
//	├─ logged_models_by_lmid lmid[16] → u64(lmID)                                MLflow model_id
//	├─ logged_models_by_model u64(modelID) | i64(created ms) | u64(lmID) → ∅     newest first, read backwards
//	├─ lm_metrics            u64(lmID) | str0(key) | i64(step) | i64(ts) | f64b(value) → json(linkedPoint)
//	│                                                                            every point, with run and dataset
//	├─ lm_metrics_latest     u64(lmID) | key → i64(step) | i64(ts) | f64b(value) (24 bytes)
//	├─ lms_by_metric         u64(modelID) | str0(key) | class | f64s(latest) | u64(lmID) → ∅
//	├─ datasets              u64(modelID) | str0(name) | digest → json(Dataset)   once per experiment
//	├─ dataset_contexts      u64(modelID) | str0(name) | str0(digest) | context → ∅
//	├─ run_io                u64(candID) | 'd' | u64(n) → json(datasetLink)       inputs in logging order
//	│                        u64(candID) | 'D' | str0(name) | digest → u64(n)    …and by dataset, to dedupe
//	│                        u64(candID) | 'm' | lmid[16] → ∅                    model inputs
//	│                        u64(candID) | 'o' | lmid[16] → i64(step)            model outputs
//	├─ imports               u64(project) | str0(source) | str0(kind) | source_id → json(ImportRecord)
//	│                                                                            import journal (migration 5)
//	└─ settings              name → value                                        instance settings (migration 6)
//	   "signing_key"            → 32 random bytes                                SigningKey; written once
//
// History points (metrics) logged with a logged model or a dataset carry json(linkedPoint) as their value;
// plain points keep the empty value. Files (files) and versions (versions_by_candidate) are keyed by their
// owner's id, a candidate's or a logged model's: the two share one sequence, so an id names one owner.
//
// Why the indexes exist: models_by_iid serves experiments/get and ListModels; models_by_display and
// models_by_name serve name lookups from MLflow and the package API; candidates_by_eid serves runs/get;
// candidates_by_iid serves package routes such as candidate_<iid>; candidates_by_model is the default run
// order; candidates_by_metric orders runs by a metric; metrics_latest is data.metrics of runs/get;
// versions_by_id serves GitLab's numeric version routes; versions_by_semver serves <model>/<semver>;
// versions_order gives the highest semver for the default bump; versions_by_candidate answers "which versions
// does this run back" for safe deletes; aliases resolves registered-models/alias and models:/name@alias;
// tokens_by_hash finds the token of a request in one lookup, without the secret ever being stored;
// logged_models_by_lmid serves logged-models/get; logged_models_by_model and lms_by_metric order
// logged-models/search as their candidate twins order runs; datasets and dataset_contexts serve
// experiments/search-datasets; run_io is the inputs and outputs of runs/get. imports is not an index but
// the journal of `mlgate import`, keyed so that a project's records of one source, or of one kind of it,
// are one range. settings is not an index either: it holds values of the whole instance, such as the
// signing secret.
//
// # Rules
//
// A record and all its index entries change in one write transaction. No method returns with a transaction
// open, and every byte slice read from bbolt is copied (decoded) before its transaction ends. Soft-deleted
// models and candidates keep their index entries (names stay taken); readers filter by Lifecycle.
package boltstore

import (
	bolt "go.etcd.io/bbolt"
)

// Bucket names. Each migration keeps its own frozen list, so changing these never changes an old migration.
var (
	bucketMeta = []byte("meta")
	bucketRoot = []byte("v1")

	bucketCounters           = []byte("counters")
	bucketProjects           = []byte("projects")
	bucketProjectsByPath     = []byte("projects_by_path")
	bucketModels             = []byte("models")
	bucketModelsByName       = []byte("models_by_name")
	bucketModelsByDisplay    = []byte("models_by_display")
	bucketModelsByIID        = []byte("models_by_iid")
	bucketCandidates         = []byte("candidates")
	bucketCandidatesByEID    = []byte("candidates_by_eid")
	bucketCandidatesByIID    = []byte("candidates_by_iid")
	bucketCandidatesByModel  = []byte("candidates_by_model")
	bucketParams             = []byte("params")
	bucketTags               = []byte("tags")
	bucketMetrics            = []byte("metrics")
	bucketMetricsLatest      = []byte("metrics_latest")
	bucketCandidatesByMetric = []byte("candidates_by_metric")
	bucketVersions           = []byte("versions")
	bucketVersionsByID       = []byte("versions_by_id")
	bucketVersionsBySemver   = []byte("versions_by_semver")
	bucketVersionsOrder      = []byte("versions_order")
	bucketVersionsByCand     = []byte("versions_by_candidate")
	bucketFiles              = []byte("files")
	bucketAliases            = []byte("aliases")
	bucketTokens             = []byte("tokens")
	bucketTokensByHash       = []byte("tokens_by_hash")
	bucketLoggedModels       = []byte("logged_models")
	bucketLoggedModelsByLMID = []byte("logged_models_by_lmid")
	bucketLoggedModelsByMdl  = []byte("logged_models_by_model")
	bucketLMMetrics          = []byte("lm_metrics")
	bucketLMMetricsLatest    = []byte("lm_metrics_latest")
	bucketLMsByMetric        = []byte("lms_by_metric")
	bucketDatasets           = []byte("datasets")
	bucketDatasetContexts    = []byte("dataset_contexts")
	bucketRunIO              = []byte("run_io")
	bucketImports            = []byte("imports")
	bucketSettings           = []byte("settings")
)

var keyDBVersion = []byte("db_version")

// bk returns a data bucket. Open has run and verified the migrations, so a missing bucket is a programming
// error, and the nil dereference that follows says so loudly.
func bk(tx *bolt.Tx, name []byte) *bolt.Bucket {
	return tx.Bucket(bucketRoot).Bucket(name)
}

// Counter keys.

var counterProjectKey = []byte("gproject")

const (
	counterModel     = "model"
	counterCandidate = "candidate"
	counterVersion   = "version"
)

func projectCounterKey(project int64, what string) []byte {
	return append(appendU64([]byte{'p'}, uint64(project)), what...)
}

func modelCounterKey(modelID uint64, what string) []byte {
	return append(appendU64([]byte{'m'}, modelID), what...)
}

// Record and index keys, named after the layout above.

func idKey(id uint64) []byte { return appendU64(make([]byte, 0, 8), id) }

// pairKey is u64 | u64: models_by_iid, candidates_by_iid, versions_by_id and versions.
func pairKey(a, b uint64) []byte { return appendU64(appendU64(make([]byte, 0, 16), a), b) }

// idStrKey is u64 | s, with s last: models_by_name, models_by_display, params, tags, metrics_latest, files,
// versions_by_semver.
func idStrKey(id uint64, s string) []byte {
	return append(appendU64(make([]byte, 0, 8+len(s)), id), s...)
}

func candidateByModelKey(modelID uint64, startTime int64, candID uint64) []byte {
	return appendU64(appendI64(appendU64(make([]byte, 0, 24), modelID), startTime), candID)
}

func metricPrefix(candID uint64, key string) []byte {
	return appendStr0(appendU64(make([]byte, 0, 8+len(key)+1+24), candID), key)
}

func metricKey(candID uint64, m latestMetric) []byte {
	return appendF64b(appendI64(appendI64(metricPrefix(candID, m.key), m.step), m.ts), m.value)
}

// Classes of candidates_by_metric: NaN sorts after every number in both directions of a scan that reads
// numbers first, per the ordering rule.
const (
	classNumber byte = 0x00
	classNaN    byte = 0x01
)

func metricRankPrefix(modelID uint64, key string) []byte {
	return appendStr0(appendU64(make([]byte, 0, 8+len(key)+1+17), modelID), key)
}

func metricRankKey(modelID uint64, m latestMetric, candID uint64) []byte {
	k := metricRankPrefix(modelID, m.key)
	if m.value != m.value { // NaN
		k = appendF64s(append(k, classNaN), 0)
	} else {
		k = appendF64s(append(k, classNumber), m.value)
	}
	return appendU64(k, candID)
}

func versionOrderKey(modelID uint64, v semver, seq int64) []byte {
	return appendU64(appendSemverKey(appendU64(make([]byte, 0, 48), modelID), v), uint64(seq))
}

func versionByCandidateKey(candID, modelID uint64, seq int64) []byte {
	return appendU64(appendU64(appendU64(make([]byte, 0, 24), candID), modelID), uint64(seq))
}
