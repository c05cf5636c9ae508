-- MLflow 3 datasets, run inputs and outputs. A model (experiment) keeps each dataset once, by name and
-- digest, as first described. A run's dataset inputs keep their logging order (ord) and the first input's
-- tags; dataset_contexts lists each context (mlflow.data.context, '' for none) a model's datasets were used
-- in, for SearchDatasets. Logged models are named by lmid without a foreign key: a run keeps its inputs and
-- outputs when a logged model is deleted, as boltstore's do.
CREATE TABLE datasets (
	model_id bigint NOT NULL REFERENCES models,
	name text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	source_type text NOT NULL,
	source text NOT NULL,
	schema text NOT NULL,
	profile text NOT NULL,
	PRIMARY KEY (model_id, name, digest)
);

CREATE TABLE run_datasets (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	name text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	ord bigint GENERATED ALWAYS AS IDENTITY,
	tags jsonb NOT NULL, -- [{"key":…,"value":…}] as logged
	PRIMARY KEY (candidate_id, name, digest)
);
CREATE INDEX run_datasets_in_order ON run_datasets (candidate_id, ord);

CREATE TABLE dataset_contexts (
	model_id bigint NOT NULL REFERENCES models,
	name text COLLATE "C" NOT NULL,
	digest text COLLATE "C" NOT NULL,
	context text COLLATE "C" NOT NULL,
	PRIMARY KEY (model_id, name, digest, context)
);

CREATE TABLE run_model_inputs (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	lmid bytea NOT NULL,
	PRIMARY KEY (candidate_id, lmid)
);

CREATE TABLE run_model_outputs (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	lmid bytea NOT NULL,
	step bigint NOT NULL,
	PRIMARY KEY (candidate_id, lmid)
);
