-- MLflow 3 logged models and their metrics. A logged model's id comes from owner_ids, which it shares with
-- candidates: both own files. lmid is MLflow's model_id (16 bytes). Params and tags are kept sorted by key
-- as [{"key":…,"value":…}]. source_run_id names a candidate (NULL for none); candidates are never removed
-- while their model exists, and the source run's EID is read by a join.
CREATE TABLE logged_models (
	id bigint PRIMARY KEY,
	lmid bytea NOT NULL UNIQUE,
	project bigint NOT NULL REFERENCES projects,
	model_id bigint NOT NULL REFERENCES models,
	name text NOT NULL,
	status smallint NOT NULL,
	status_message text NOT NULL,
	model_type text NOT NULL,
	source_run_id bigint REFERENCES candidates,
	user_id text NOT NULL,
	params jsonb NOT NULL,
	tags jsonb NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
-- SearchLoggedModels: newest first.
CREATE INDEX logged_models_by_model ON logged_models (model_id, created_at DESC, id DESC);

-- The points logged to a logged model (LogBatch with Metric.LoggedModel), each with the run that logged it
-- (its EID) and its dataset ('' for none). Identified as a run's points are, by (key, step, ts, value).
CREATE TABLE lm_metrics (
	logged_model_id bigint NOT NULL REFERENCES logged_models ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	step bigint NOT NULL,
	ts bigint NOT NULL,
	value float8 NOT NULL,
	run bytea NOT NULL,
	dataset_name text NOT NULL,
	dataset_digest text NOT NULL,
	PRIMARY KEY (logged_model_id, key, step, ts, value)
);

-- Versions backed by a logged model now reference it (no such version could be stored before).
ALTER TABLE versions ADD FOREIGN KEY (logged_model_id) REFERENCES logged_models;
