package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// RunBlobDeletionQueue runs the contract of metadata.BlobDeletionQueue, as Run runs the Store's, for a
// store that implements it (several processes share it). newStore's stores must implement it.
func RunBlobDeletionQueue(t *testing.T, newStore func(t *testing.T) metadata.Store) {
	runGroup(t, "BlobDeletionQueue", blobDeletionTests, newStore)
}

// queueOf returns the store's queue or fails the test.
func (f *fx) queueOf() metadata.BlobDeletionQueue {
	f.Helper()
	q, ok := f.s.(metadata.BlobDeletionQueue)
	if !ok {
		f.Fatalf("%T does not implement metadata.BlobDeletionQueue", f.s)
	}
	return q
}

// claimKeys claims every deletion due at now and returns their keys, sorted.
func (f *fx) claimKeys(q metadata.BlobDeletionQueue, now time.Time) []string {
	f.Helper()
	ds, err := q.ClaimBlobDeletions(f.ctx, now, 1000)
	if err != nil {
		f.Fatalf("ClaimBlobDeletions: %v", err)
	}
	var keys []string
	for _, d := range ds {
		if d.NotBefore.After(now) {
			f.Errorf("claimed %s due at %v, before it was due (now %v)", d.Key, d.NotBefore, now)
		}
		keys = append(keys, d.Backend+":"+d.Key)
	}
	slices.Sort(keys)
	return keys
}

// base is an instant far from now, so that the queue's times never mix with the store's clock.
var base = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var blobDeletionTests = []test{
	{"QueueClaimOnce", func(f *fx) {
		q := f.queueOf()
		for i, k := range []string{"a", "b", "c"} {
			if err := q.QueueBlobDeletion(f.ctx, "s3", k, base.Add(time.Duration(i)*time.Minute)); err != nil {
				f.Fatal(err)
			}
		}
		if got := f.claimKeys(q, base.Add(-time.Second)); len(got) != 0 {
			f.Errorf("claimed %v before any was due", got)
		}
		if got := f.claimKeys(q, base.Add(time.Minute)); !slices.Equal(got, []string{"s3:a", "s3:b"}) {
			f.Errorf("claimed %v at +1m, want a and b", got)
		}
		if got := f.claimKeys(q, base.Add(time.Hour)); !slices.Equal(got, []string{"s3:c"}) {
			f.Errorf("claimed %v at +1h, want only c: a claimed deletion is gone", got)
		}
		if got := f.claimKeys(q, base.Add(time.Hour)); len(got) != 0 {
			f.Errorf("claimed %v from an empty queue", got)
		}
	}},
	{"RequeueKeepsTheLaterTime", func(f *fx) {
		q := f.queueOf()
		for _, at := range []time.Time{base.Add(time.Hour), base} {
			if err := q.QueueBlobDeletion(f.ctx, "s3", "k", at); err != nil {
				f.Fatal(err)
			}
		}
		if got := f.claimKeys(q, base.Add(time.Minute)); len(got) != 0 {
			f.Errorf("claimed %v: queueing again with an earlier time moved the deletion earlier", got)
		}
		if got := f.claimKeys(q, base.Add(time.Hour)); !slices.Equal(got, []string{"s3:k"}) {
			f.Errorf("claimed %v at the later time, want k once", got)
		}
	}},
	{"ExtendIsALease", func(f *fx) {
		q := f.queueOf()
		for _, k := range []string{"read", "idle"} {
			if err := q.QueueBlobDeletion(f.ctx, "s3", k, base); err != nil {
				f.Fatal(err)
			}
		}
		if err := q.ExtendBlobDeletions(f.ctx, []string{"read", "never-queued"}, base.Add(time.Hour)); err != nil {
			f.Fatal(err)
		}
		// Extending to an earlier time never shortens a lease.
		if err := q.ExtendBlobDeletions(f.ctx, []string{"read"}, base.Add(time.Minute)); err != nil {
			f.Fatal(err)
		}
		if err := q.ExtendBlobDeletions(f.ctx, nil, base.Add(time.Hour)); err != nil {
			f.Errorf("extending no keys: %v", err)
		}
		if got := f.claimKeys(q, base.Add(30*time.Minute)); !slices.Equal(got, []string{"s3:idle"}) {
			f.Errorf("claimed %v at +30m, want only the blob nobody reads", got)
		}
		if got := f.claimKeys(q, base.Add(time.Hour)); !slices.Equal(got, []string{"s3:read"}) {
			f.Errorf("claimed %v when the lease ended, want the read blob", got)
		}
		if ok, _ := q.BlobReferenced(f.ctx, "never-queued"); ok {
			f.Errorf("extending a key that was not queued queued it")
		}
	}},
	{"QueuedWithTheTransaction", func(f *fx) {
		q := f.queueOf()
		c := f.runFixture()
		f.mustCommit(c.ID, "w.bin")
		boom := errors.New("boom")
		err := f.s.Update(f.ctx, func(ctx context.Context) error {
			old, err := f.s.DeleteFile(ctx, c.ID, "w.bin")
			if err != nil {
				return err
			}
			if err := q.QueueBlobDeletion(ctx, "s3", old.BlobKey, base); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			f.Fatalf("Update: %v, want boom", err)
		}
		if got := f.claimKeys(q, base.Add(time.Hour)); len(got) != 0 {
			f.Errorf("a rolled-back transaction queued %v", got)
		}
		if _, err := f.s.File(f.ctx, c.ID, "w.bin"); err != nil {
			f.Errorf("the rolled-back delete removed the row: %v", err)
		}
		err = f.s.Update(f.ctx, func(ctx context.Context) error {
			old, err := f.s.DeleteFile(ctx, c.ID, "w.bin")
			if err != nil {
				return err
			}
			return q.QueueBlobDeletion(ctx, "s3", old.BlobKey, base)
		})
		if err != nil {
			f.Fatal(err)
		}
		if got := f.claimKeys(q, base); !slices.Equal(got, []string{"s3:c/w.bin/x"}) {
			f.Errorf("claimed %v after the committed delete, want its blob", got)
		}
	}},
	{"BlobReferenced", func(f *fx) {
		q := f.queueOf()
		c := f.runFixture()
		row := f.mustCommit(c.ID, "w.bin")
		if err := q.QueueBlobDeletion(f.ctx, "s3", "queued", base); err != nil {
			f.Fatal(err)
		}
		for key, want := range map[string]bool{row.BlobKey: true, "queued": true, "nobody": false} {
			if got, err := q.BlobReferenced(f.ctx, key); err != nil || got != want {
				f.Errorf("BlobReferenced(%q) = %v, %v; want %v", key, got, err, want)
			}
		}
		f.claimKeys(q, base)
		if got, _ := q.BlobReferenced(f.ctx, "queued"); got {
			f.Errorf("a claimed deletion still references its blob")
		}
	}},
	{"Invalid", func(f *fx) {
		q := f.queueOf()
		f.wantErr("empty key", q.QueueBlobDeletion(f.ctx, "s3", "", base), metadata.ErrInvalid)
		f.wantErr("empty backend", q.QueueBlobDeletion(f.ctx, "", "k", base), metadata.ErrInvalid)
	}},
	{"ConcurrentClaimsShareNothing", func(f *fx) {
		q := f.queueOf()
		const n = 60
		for i := range n {
			if err := q.QueueBlobDeletion(f.ctx, "s3", fmt.Sprintf("k%02d", i), base); err != nil {
				f.Fatal(err)
			}
		}
		var (
			mu      sync.Mutex
			claimed = map[string]int{}
			wg      sync.WaitGroup
		)
		for range 4 {
			wg.Go(func() {
				for {
					ds, err := q.ClaimBlobDeletions(f.ctx, base, 7)
					if err != nil {
						f.Errorf("claim: %v", err)
						return
					}
					if len(ds) == 0 {
						return
					}
					mu.Lock()
					for _, d := range ds {
						claimed[d.Key]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(claimed) != n {
			f.Errorf("%d of %d deletions claimed", len(claimed), n)
		}
		for k, times := range claimed {
			if times != 1 {
				f.Errorf("%s claimed %d times", k, times)
			}
		}
	}},
}
