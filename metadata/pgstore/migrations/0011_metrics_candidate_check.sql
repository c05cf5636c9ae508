-- mlgate: additive
-- The reference from metrics to candidates, checked once per statement instead of once per point.
--
-- The foreign key metrics.candidate_id → candidates ran one check per inserted point: a 1000-point
-- log-batch ran 1000 lookups and locks of the same candidate row, about half the time of its INSERT
-- (measured on the test server: 9.4–10 ms per 1000-point INSERT with the key, 5.1–5.5 ms without). The
-- triggers below keep what the key guaranteed, for every writer (this release's, the previous release's
-- replicas during a rolling upgrade, `metadata migrate`'s COPY, a hand-run INSERT), with one check per
-- statement:
--   * no point names a candidate that does not exist (SQLSTATE 23503, as the key raised);
--   * the candidate of a point being inserted is locked FOR KEY SHARE, as the key's check locks it, so a
--     concurrent DELETE of it waits for the inserting transaction (and, at REPEATABLE READ or
--     SERIALIZABLE, a candidate deleted after the inserter's snapshot fails the inserter to serialize);
--   * deleting a candidate deletes its points (the key's ON DELETE CASCADE);
--   * a candidate's id cannot change while points name it, nor a point's candidate change to one that
--     does not exist.
-- The price is on one-point writes: a plpgsql trigger where the key ran one check in C, about 0.05–0.09 ms
-- more per INSERT (pgbench, one-point transactions: 0.34–0.37 ms with the key, 0.42–0.46 ms with the
-- trigger), against 4–5 ms less per 1000 points.
-- It is additive in the sense of rolling upgrades: the previous release writes metrics exactly as before,
-- and the triggers check its writes as the key did.
ALTER TABLE metrics DROP CONSTRAINT metrics_candidate_id_fkey;

-- One query on the usual path (every candidate found): the trigger runs after each INSERT, a one-point
-- log-metric's included, where a second query would cost more than the key's single check did.
CREATE FUNCTION metrics_check_candidates() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	missing bigint;
BEGIN
	IF (SELECT count(*) FROM (SELECT DISTINCT candidate_id FROM new_points) n)
		= (SELECT count(*) FROM (SELECT 1 FROM candidates c WHERE c.id IN (SELECT candidate_id FROM new_points) FOR KEY SHARE OF c) l) THEN
		RETURN NULL;
	END IF;
	SELECT n.candidate_id INTO missing FROM new_points n
	WHERE NOT EXISTS (SELECT 1 FROM candidates c WHERE c.id = n.candidate_id) LIMIT 1;
	RAISE foreign_key_violation USING CONSTRAINT = 'metrics_candidate_id_fkey', TABLE = 'metrics',
		MESSAGE = format('insert or update on table "metrics" violates foreign key constraint "metrics_candidate_id_fkey": candidate %s does not exist', missing);
END $$;
CREATE TRIGGER metrics_check_candidates AFTER INSERT ON metrics REFERENCING NEW TABLE AS new_points
	FOR EACH STATEMENT EXECUTE FUNCTION metrics_check_candidates();

-- No statement in mlgate changes a point's candidate; a hand-run one is checked row by row.
CREATE FUNCTION metrics_check_candidate_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.candidate_id <> OLD.candidate_id THEN
		PERFORM 1 FROM candidates c WHERE c.id = NEW.candidate_id FOR KEY SHARE OF c;
		IF NOT FOUND THEN
			RAISE foreign_key_violation USING CONSTRAINT = 'metrics_candidate_id_fkey', TABLE = 'metrics',
				MESSAGE = format('update on table "metrics" violates foreign key constraint "metrics_candidate_id_fkey": candidate %s does not exist', NEW.candidate_id);
		END IF;
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER metrics_check_candidate_change BEFORE UPDATE OF candidate_id ON metrics
	FOR EACH ROW EXECUTE FUNCTION metrics_check_candidate_change();

-- mlgate never deletes a candidate nor changes its id; these keep the key's answers for anyone who does.
CREATE FUNCTION candidates_delete_metrics() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM metrics m USING old_candidates o WHERE m.candidate_id = o.id;
	RETURN NULL;
END $$;
CREATE TRIGGER candidates_delete_metrics AFTER DELETE ON candidates REFERENCING OLD TABLE AS old_candidates
	FOR EACH STATEMENT EXECUTE FUNCTION candidates_delete_metrics();

CREATE FUNCTION candidates_check_id_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.id <> OLD.id AND EXISTS (SELECT 1 FROM metrics m WHERE m.candidate_id = OLD.id) THEN
		RAISE foreign_key_violation USING CONSTRAINT = 'metrics_candidate_id_fkey', TABLE = 'metrics',
			MESSAGE = format('update on table "candidates" violates foreign key constraint "metrics_candidate_id_fkey": candidate %s still has metrics', OLD.id);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER candidates_check_id_change BEFORE UPDATE OF id ON candidates
	FOR EACH ROW EXECUTE FUNCTION candidates_check_id_change();
