package artifact

import (
	"context"
	"errors"
	"time"

	"github.com/mlgate/mlgate/backends"
)

// claimBatch is how many due deletions one claim takes.
const claimBatch = 100

// SharesDeletions reports whether the store is shared by several processes, so that replaced and
// deleted blobs wait in its queue and RunDeletions must run.
func (a *Service) SharesDeletions() bool { return a.queue != nil }

// RunDeletions carries out the blob deletions queued in a shared store until ctx ends; it returns at
// once for a store of one process. Every fifth of the deletion delay it first extends the queued
// deletions of the blobs this process still streams or holds for a redirect to a full delay from now
// (its lease on them), then claims the deletions that are due and deletes their blobs.
//
// The guarantee, across replicas: a blob whose row was replaced or deleted is deleted no sooner than the
// delay after the change (for a backend that redirects downloads, no sooner than the redirect's expiry
// plus its grace), and never while a replica that streams it reaches the database: its leases keep the
// deletion at least four fifths of the delay away. A replica that cannot reach the database for longer
// than that may see a long download cut; a replica that dies takes its downloads with it anyway.
func (a *Service) RunDeletions(ctx context.Context) {
	if a.queue == nil {
		return
	}
	every := a.deletionDelay / 5
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		a.deleteDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// deleteDue renews this process's leases, then deletes every due blob, a batch at a time. A failure is
// logged and left to the next round: a deletion that could not be done is queued again.
func (a *Service) deleteDue(ctx context.Context) {
	now := a.now()
	if keys := a.readers.keys(); len(keys) > 0 {
		if err := a.queue.ExtendBlobDeletions(ctx, keys, now.Add(a.deletionDelay)); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("could not extend the deletions of blobs still being read; not deleting any this round", "err", err)
			}
			return // claiming now might take a blob this process still streams
		}
	}
	for ctx.Err() == nil {
		due, err := a.queue.ClaimBlobDeletions(ctx, now, claimBatch)
		if err != nil {
			if ctx.Err() == nil {
				a.log.Warn("could not claim due blob deletions; the next round tries again", "err", err)
			}
			return
		}
		for _, d := range due {
			a.deleteClaimed(d.Backend, d.Key)
		}
		if len(due) < claimBatch {
			return
		}
	}
}

// deleteClaimed deletes one claimed blob, or queues its deletion again a delay later when this process
// cannot: it still reads it (a download that began in the instant before the claim), its backend is not
// configured here (another replica's configuration may have it), or the backend failed.
func (a *Service) deleteClaimed(backendName, key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	requeue := func(why string, err error) {
		if qerr := a.queue.QueueBlobDeletion(ctx, backendName, key, a.now().Add(a.deletionDelay)); qerr != nil {
			a.log.Warn("could not queue a blob deletion again; the sweeper removes the blob as unreferenced",
				"backend", backendName, "key", key, "err", qerr)
			return
		}
		a.log.Warn("blob deletion postponed: "+why, "backend", backendName, "key", key, "err", err)
	}
	if a.readers.inUse(key) {
		requeue("a download here still reads it", nil)
		return
	}
	b, err := a.current().Get(backendName)
	if err != nil {
		requeue("its backend is not configured in this process", err)
		return
	}
	if err := b.Delete(ctx, key); err != nil && !errors.Is(err, backends.ErrNotFound) {
		requeue("the backend failed", err)
		return
	}
	a.log.Debug("deleted a replaced or deleted blob", "backend", backendName, "key", key)
}
