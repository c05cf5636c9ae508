-- Projects, models, candidates with their tags and params, file rows and tokens: the core of the data model.
-- Keys compared and ordered by bytes (paths, tag and param keys, token ids) are COLLATE "C", so that
-- listings sort exactly as the bbolt store's byte-ordered keys do, whatever the database's locale.

-- Gap-free numbers (project ids, project-scoped iids, per-model version seqs) come from rows here, updated
-- inside the transaction that uses the number: a rolled-back transaction gives its number back, and two
-- transactions never get the same one. Store-wide ids that may have gaps use sequences instead, which
-- never make writers wait on each other.
CREATE TABLE counters (
	scope text NOT NULL,
	key bigint NOT NULL,
	value bigint NOT NULL,
	PRIMARY KEY (scope, key)
);

CREATE SEQUENCE model_ids;
-- Candidates and logged models share it (ReserveOwnerID).
CREATE SEQUENCE owner_ids;

CREATE TABLE projects (
	id bigint PRIMARY KEY,
	path text COLLATE "C" NOT NULL UNIQUE,
	created_at timestamptz NOT NULL
);

CREATE TABLE models (
	id bigint PRIMARY KEY,
	project bigint NOT NULL REFERENCES projects,
	iid bigint NOT NULL,
	name text COLLATE "C" NOT NULL,
	display_name text COLLATE "C" NOT NULL,
	description text NOT NULL,
	tags jsonb NOT NULL, -- [{"key":…,"value":…}] in the order the model keeps them
	in_registry boolean NOT NULL,
	lifecycle smallint NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	UNIQUE (project, iid),
	UNIQUE (project, name),
	UNIQUE (project, display_name)
);

CREATE TABLE candidates (
	id bigint PRIMARY KEY,
	project bigint NOT NULL REFERENCES projects,
	iid bigint NOT NULL,
	eid bytea NOT NULL UNIQUE,
	model_id bigint NOT NULL REFERENCES models,
	name text NOT NULL,
	user_id text NOT NULL,
	status smallint NOT NULL,
	start_time bigint NOT NULL,
	end_time bigint NOT NULL,
	lifecycle smallint NOT NULL,
	deleted_with_model boolean NOT NULL,
	created_at timestamptz NOT NULL,
	UNIQUE (project, iid)
);
-- ListCandidates: newest start time first, then newest id.
CREATE INDEX candidates_by_model ON candidates (model_id, start_time DESC, id DESC);

CREATE TABLE candidate_tags (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (candidate_id, key)
);

CREATE TABLE params (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	value text NOT NULL,
	PRIMARY KEY (candidate_id, key)
);

-- Owners are candidates or logged models, so owner_id has no foreign key.
CREATE TABLE files (
	owner_id bigint NOT NULL,
	path text COLLATE "C" NOT NULL,
	size bigint NOT NULL,
	sha256 text NOT NULL,
	content_type text NOT NULL,
	blob_key text NOT NULL,
	backend text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (owner_id, path)
);

CREATE TABLE tokens (
	id text COLLATE "C" PRIMARY KEY,
	name text NOT NULL,
	project_path text NOT NULL,
	instance boolean NOT NULL,
	scope text NOT NULL, -- by name, as bbolt stores it, so the numbering can change
	secret_hash text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz,
	revoked boolean NOT NULL
);
CREATE INDEX tokens_by_age ON tokens (created_at, id);
