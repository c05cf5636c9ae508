-- mlgate: additive
-- The progress of `mlgate metadata migrate`, the copy of a bbolt store into this database. One row at most:
-- the copy in progress or done. Each batch of records commits with the update of this row, so that after a
-- crash records says exactly how much of the source's export is in, and a rerun resumes after it. source
-- identifies the bbolt store (a hash of its signing key), generation its last write transaction when the
-- copy began: a resume of a source that changed meanwhile is refused.
CREATE TABLE metadata_migration (
	only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
	source text NOT NULL,
	generation bigint NOT NULL,
	records bigint NOT NULL,
	done boolean NOT NULL,
	started_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);
