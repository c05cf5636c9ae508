-- The import journal (metadata.ImportRecord): one row per entity an import brought into a project, keyed
-- and listed by (source, kind, source_id) in byte order. target_id and target_iid are neither checked nor
-- followed: a record outlives what it names.
CREATE TABLE import_records (
	project bigint NOT NULL REFERENCES projects,
	source text COLLATE "C" NOT NULL,
	kind text COLLATE "C" NOT NULL,
	source_id text COLLATE "C" NOT NULL,
	target_id bigint NOT NULL,
	target_iid bigint NOT NULL,
	state text NOT NULL,
	progress bigint NOT NULL,
	note text NOT NULL,
	updated_at timestamptz NOT NULL,
	PRIMARY KEY (project, source, kind, source_id)
);
-- Listings of one kind across sources.
CREATE INDEX import_records_by_kind ON import_records (project, kind, source, source_id);
