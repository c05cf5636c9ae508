package metadata

import (
	"context"
	"time"
)

// BlobDeletion is a blob whose file row is gone (replaced or deleted) and which is to be deleted from
// its backend no sooner than NotBefore.
type BlobDeletion struct {
	Backend   string
	Key       string
	NotBefore time.Time
}

// BlobDeletionQueue is implemented by stores that several mlgate processes serve at once (PostgreSQL).
// One process cannot see the downloads another one streams, so a blob whose row was replaced or deleted
// is not deleted at once: its deletion is queued in the same transaction as the row change, each process
// extends the queued deletions of the blobs it still streams (a reader lease), and any process deletes the
// blobs whose time has come. A store that one process owns (bbolt) does not implement it: that process
// counts its readers exactly.
type BlobDeletionQueue interface {
	// QueueBlobDeletion records that key on backend is to be deleted no sooner than notBefore. It joins
	// the transaction of ctx (Update), so that the row change and the queued deletion commit together.
	// Queueing a key that is queued already keeps the later of both times. ErrInvalid for an empty
	// backend or key.
	QueueBlobDeletion(ctx context.Context, backend, key string, notBefore time.Time) error
	// ExtendBlobDeletions moves the NotBefore of the queued deletions of keys to at least until; keys
	// that are not queued are ignored, so a process may pass every key it reads. Errors are the store's.
	ExtendBlobDeletions(ctx context.Context, keys []string, until time.Time) error
	// ClaimBlobDeletions removes up to limit queued deletions whose NotBefore is at or before now and
	// returns them, in one transaction: two processes never claim the same one. The caller deletes the
	// blobs; one it cannot delete it queues again, and one it never deletes (it died) is an unreferenced
	// blob that the sweeper finds. Errors are the store's.
	ClaimBlobDeletions(ctx context.Context, now time.Time, limit int) ([]BlobDeletion, error)
	// BlobReferenced reports whether a file row or a queued deletion names key, in one consistent read,
	// so that a sweep deletes an unreferenced blob only after checking it again just before. Errors are
	// the store's.
	BlobReferenced(ctx context.Context, key string) (bool, error)
}
