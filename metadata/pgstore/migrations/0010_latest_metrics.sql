-- mlgate: additive
-- Indexes that keep searches ordered by a metric fast (issue 14). Additive only: a replica of the previous
-- release keeps serving on this schema during a rolling upgrade, and its writes keep the new tables
-- current through the triggers below.
--
-- The latest point of each metric (MLflow's rule: highest step, then newest timestamp, then the largest
-- value with NaN below every number) was computed at read time from every point of the key, a sort of the
-- whole history on each search. latest_metrics keeps it per (candidate, key), with the candidate's model
-- (which never changes) copied in, so that a search reads one model's values in index order and stops at
-- the page. A trigger maintains it rather than the store's Go code, so that every writer keeps it
-- current: a previous release's replica during a rolling upgrade, an import, a hand-run INSERT.
CREATE TABLE latest_metrics (
	candidate_id bigint NOT NULL REFERENCES candidates ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	model_id bigint NOT NULL,
	step bigint NOT NULL,
	ts bigint NOT NULL,
	value float8 NOT NULL,
	PRIMARY KEY (candidate_id, key)
);
-- SearchCandidates by a metric: numbers in value order (scanned backwards for descending), NaN (sorted
-- above every number by PostgreSQL) by candidate id.
CREATE INDEX latest_metrics_by_value ON latest_metrics (model_id, key, value, candidate_id);

-- The same for logged models' metrics (SearchLoggedModels).
CREATE TABLE latest_lm_metrics (
	logged_model_id bigint NOT NULL REFERENCES logged_models ON DELETE CASCADE,
	key text COLLATE "C" NOT NULL,
	model_id bigint NOT NULL,
	step bigint NOT NULL,
	ts bigint NOT NULL,
	value float8 NOT NULL,
	PRIMARY KEY (logged_model_id, key)
);
CREATE INDEX latest_lm_metrics_by_value ON latest_lm_metrics (model_id, key, value, logged_model_id);

-- Statement-level triggers see the points a statement inserted in one transition table, so a batch of
-- points costs one upsert, not one per point. The owner's model is looked up after the points are reduced
-- to one per key, by primary key: the planner has no statistics on a transition table, and a join with
-- it may scan the whole owner table (20 ms at 100 000 runs). A point that an INSERT … ON CONFLICT DO UPDATE found already
-- stored is not in the table: an exact duplicate cannot change the latest point. Points are only ever
-- removed with their owner, whose latest rows the foreign keys' cascades remove.
CREATE FUNCTION keep_latest_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO latest_metrics AS l (candidate_id, key, model_id, step, ts, value)
	SELECT n.candidate_id, n.key, (SELECT c.model_id FROM candidates c WHERE c.id = n.candidate_id), n.step, n.ts, n.value
	FROM (SELECT DISTINCT ON (candidate_id, key) candidate_id, key, step, ts, value FROM new_points
		ORDER BY candidate_id, key, step DESC, ts DESC, (value = 'NaN'::float8), value DESC) n
	ON CONFLICT (candidate_id, key) DO UPDATE SET step = EXCLUDED.step, ts = EXCLUDED.ts, value = EXCLUDED.value
	WHERE (EXCLUDED.step, EXCLUDED.ts, EXCLUDED.value <> 'NaN'::float8, EXCLUDED.value)
		> (l.step, l.ts, l.value <> 'NaN'::float8, l.value);
	RETURN NULL;
END $$;
CREATE TRIGGER metrics_keep_latest AFTER INSERT ON metrics REFERENCING NEW TABLE AS new_points
	FOR EACH STATEMENT EXECUTE FUNCTION keep_latest_metrics();

CREATE FUNCTION keep_latest_lm_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO latest_lm_metrics AS l (logged_model_id, key, model_id, step, ts, value)
	SELECT n.logged_model_id, n.key, (SELECT m.model_id FROM logged_models m WHERE m.id = n.logged_model_id), n.step, n.ts, n.value
	FROM (SELECT DISTINCT ON (logged_model_id, key) logged_model_id, key, step, ts, value FROM new_points
		ORDER BY logged_model_id, key, step DESC, ts DESC, (value = 'NaN'::float8), value DESC) n
	ON CONFLICT (logged_model_id, key) DO UPDATE SET step = EXCLUDED.step, ts = EXCLUDED.ts, value = EXCLUDED.value
	WHERE (EXCLUDED.step, EXCLUDED.ts, EXCLUDED.value <> 'NaN'::float8, EXCLUDED.value)
		> (l.step, l.ts, l.value <> 'NaN'::float8, l.value);
	RETURN NULL;
END $$;
CREATE TRIGGER lm_metrics_keep_latest AFTER INSERT ON lm_metrics REFERENCING NEW TABLE AS new_points
	FOR EACH STATEMENT EXECUTE FUNCTION keep_latest_lm_metrics();

-- Existing points. CREATE TRIGGER locks the tables against writes until this transaction commits, so no
-- point written meanwhile is missed: its INSERT waits, then fires the trigger.
INSERT INTO latest_metrics (candidate_id, key, model_id, step, ts, value)
SELECT DISTINCT ON (m.candidate_id, m.key) m.candidate_id, m.key, c.model_id, m.step, m.ts, m.value
FROM metrics m JOIN candidates c ON c.id = m.candidate_id
ORDER BY m.candidate_id, m.key, m.step DESC, m.ts DESC, (m.value = 'NaN'::float8), m.value DESC;

INSERT INTO latest_lm_metrics (logged_model_id, key, model_id, step, ts, value)
SELECT DISTINCT ON (p.logged_model_id, p.key) p.logged_model_id, p.key, l.model_id, p.step, p.ts, p.value
FROM lm_metrics p JOIN logged_models l ON l.id = p.logged_model_id
ORDER BY p.logged_model_id, p.key, p.step DESC, p.ts DESC, (p.value = 'NaN'::float8), p.value DESC;

-- SearchCandidates' runs without the metric (and its default order) reuse candidates_by_model; its
-- lifecycle filter is checked per row, as nearly every candidate is active. SearchLoggedModels' without
-- the metric use logged_models_by_model. The registry's listings (models by iid, versions by seq) and
-- the UI's run table (candidates_by_model) are served by the keys of migrations 1 and 4.
