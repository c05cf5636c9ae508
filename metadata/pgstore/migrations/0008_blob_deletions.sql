-- mlgate: additive
-- Blobs whose file row was replaced or deleted wait here until no replica can still be streaming them
-- (metadata.BlobDeletionQueue). Queued in the transaction that changes the row; claimed and deleted by any
-- replica once not_before has passed; extended by the replicas still reading them.
CREATE TABLE blob_deletions (
	blob_key text COLLATE "C" PRIMARY KEY,
	backend text NOT NULL,
	not_before timestamptz NOT NULL
);
CREATE INDEX blob_deletions_due ON blob_deletions (not_before);

-- The sweeper checks again, just before deleting an unreferenced blob, that no row names it.
CREATE INDEX files_blob_key ON files (blob_key);
