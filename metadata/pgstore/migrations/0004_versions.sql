-- Model versions and aliases. A version's seq comes from the counter (version_seq, model id), which is
-- also the model's seq high-water mark; its id from (version_id, project id). A version is backed by
-- exactly one owner: a candidate, or a logged model (which has no table yet, hence no foreign key).
CREATE TABLE versions (
	model_id bigint NOT NULL REFERENCES models,
	seq bigint NOT NULL,
	project bigint NOT NULL REFERENCES projects,
	id bigint NOT NULL,
	semver text COLLATE "C" NOT NULL,
	candidate_id bigint REFERENCES candidates,
	logged_model_id bigint,
	subpath text NOT NULL,
	source text NOT NULL,
	run_link text NOT NULL,
	description text NOT NULL,
	user_id text NOT NULL,
	stage text NOT NULL,
	tags jsonb NOT NULL, -- [{"key":…,"value":…}] in the order the version keeps them
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (model_id, seq),
	UNIQUE (project, id),
	UNIQUE (model_id, semver),
	CHECK ((candidate_id IS NULL) <> (logged_model_id IS NULL))
);
-- VersionsBackedBy: by owner, then model and seq.
CREATE INDEX versions_by_candidate ON versions (candidate_id, model_id, seq) WHERE candidate_id IS NOT NULL;
CREATE INDEX versions_by_logged_model ON versions (logged_model_id, model_id, seq) WHERE logged_model_id IS NOT NULL;

-- An alias points at a version of its model; deleting the version deletes the aliases pointing at it.
CREATE TABLE aliases (
	model_id bigint NOT NULL,
	alias text COLLATE "C" NOT NULL,
	seq bigint NOT NULL,
	PRIMARY KEY (model_id, alias),
	FOREIGN KEY (model_id, seq) REFERENCES versions ON DELETE CASCADE
);
CREATE INDEX aliases_by_version ON aliases (model_id, seq);
