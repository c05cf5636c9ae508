-- Metric points of candidates (LogBatch, MetricHistory, RunData's latest metric per key).
-- A point is identified by (candidate, key, step, timestamp, value), as boltstore's history keys are: an
-- exact duplicate is a no-op. PostgreSQL's float8 treats every NaN as equal, and above every number.
-- logged_model is the LMID the point measures (16 bytes), NULL for none; dataset_* are '' for none.
CREATE TABLE metrics (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	step bigint NOT NULL,
	ts bigint NOT NULL,
	value float8 NOT NULL,
	logged_model bytea,
	dataset_name text NOT NULL,
	dataset_digest text NOT NULL,
	PRIMARY KEY (candidate_id, key, step, ts, value)
);
