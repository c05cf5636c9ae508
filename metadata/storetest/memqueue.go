package storetest

import (
	"context"
	"sync"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// QueuedStore gives a store of one process an in-memory metadata.BlobDeletionQueue, so that unit tests
// can see what code does with a store that replicas share without a database. Its queue is not
// transactional (a rolled-back Update keeps what it queued), and BlobReferenced consults the queue only;
// pgstore's queue is the real one, held to RunBlobDeletionQueue's contract.
type QueuedStore struct {
	metadata.Store
	mu     sync.Mutex
	queued map[string]metadata.BlobDeletion
}

// WithMemoryQueue wraps s.
func WithMemoryQueue(s metadata.Store) *QueuedStore {
	return &QueuedStore{Store: s, queued: map[string]metadata.BlobDeletion{}}
}

// QueueBlobDeletion implements metadata.BlobDeletionQueue.
func (q *QueuedStore) QueueBlobDeletion(_ context.Context, backend, key string, notBefore time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if d, ok := q.queued[key]; ok && d.NotBefore.After(notBefore) {
		notBefore = d.NotBefore
	}
	q.queued[key] = metadata.BlobDeletion{Backend: backend, Key: key, NotBefore: notBefore}
	return nil
}

// ExtendBlobDeletions implements metadata.BlobDeletionQueue.
func (q *QueuedStore) ExtendBlobDeletions(_ context.Context, keys []string, until time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range keys {
		if d, ok := q.queued[k]; ok && d.NotBefore.Before(until) {
			d.NotBefore = until
			q.queued[k] = d
		}
	}
	return nil
}

// ClaimBlobDeletions implements metadata.BlobDeletionQueue.
func (q *QueuedStore) ClaimBlobDeletions(_ context.Context, now time.Time, limit int) ([]metadata.BlobDeletion, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []metadata.BlobDeletion
	for k, d := range q.queued {
		if len(out) < limit && !d.NotBefore.After(now) {
			out = append(out, d)
			delete(q.queued, k)
		}
	}
	return out, nil
}

// BlobReferenced implements metadata.BlobDeletionQueue for queued keys only: it does not read file rows.
func (q *QueuedStore) BlobReferenced(_ context.Context, key string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.queued[key]
	return ok, nil
}

// Queued returns the queued deletion of key, if any.
func (q *QueuedStore) Queued(key string) (metadata.BlobDeletion, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.queued[key]
	return d, ok
}
