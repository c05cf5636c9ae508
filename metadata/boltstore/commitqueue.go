package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// DefaultMaxGroup is how many writes one commit takes at most unless WithMaxGroup says otherwise. It bounds
// how long a write waits behind others (its own group's work, plus at most the commit in flight when it
// arrived) and how much work a failure in a group makes run again; past a few dozen writes, the fsyncs a
// group shares are no longer what a write costs.
const DefaultMaxGroup = 64

// commitQueue commits concurrent writes together: each bbolt commit fsyncs twice, whatever it holds, and
// with one commit per write concurrent writers spend most of their time waiting for one another's fsyncs.
//
// Writes queue in arrival order. When no commit is in flight, the arriving write's own goroutine commits it
// at once, alone: a lone writer waits for nothing and pays no hand-off. Writes that arrive during a commit
// wait; when it ends, the goroutine of the oldest waiting write takes up to maxGroup of them, in order, and
// commits them in one transaction, then hands the duty on to the next one waiting. Every goroutine thus
// commits at most one group, the group that holds its own write, so no writer serves others indefinitely,
// and no goroutine of the store's own has to be started or stopped.
//
// A write is acknowledged (submit returns nil) only after the transaction holding it committed, fsync
// included. bbolt's DB.Batch is not used: it waits up to MaxBatchDelay before committing even a lone write,
// reorders a group when one of its writes fails, and hands every write of a group the group's commit error.
type commitQueue struct {
	// update is the database's Update, with a full disk's errors marked ErrInsufficientStorage; tests
	// replace it to make commits fail as a full disk would.
	update   func(func(*bolt.Tx) error) error
	maxGroup int
	// rehearse runs every attempt's writes once more, first, in a transaction that is rolled back: tests
	// use it to prove that the store's writes are safe to run again (see commit).
	rehearse bool
	// observe, when set, learns of every commit attempt (WithCommitObserver).
	observe func(CommitStats)

	mu      sync.Mutex
	pending []*queuedWrite // waiting, oldest first; empty whenever leading is false
	leading bool           // a goroutine is committing a group or has been told to
	closed  bool
	idle    sync.Cond // on mu; broadcast when leading turns false
}

func newCommitQueue(db *bolt.DB, maxGroup int, rehearse bool, observe func(CommitStats)) *commitQueue {
	update := func(fn func(*bolt.Tx) error) error { return storageFull(db.Update(fn)) }
	q := &commitQueue{update: update, maxGroup: maxGroup, rehearse: rehearse, observe: observe}
	q.idle.L = &q.mu
	return q
}

// queuedWrite is one write from its submission to its outcome.
type queuedWrite struct {
	ctx context.Context
	fn  func(*bolt.Tx) error
	// wake receives one value when the write is finished or when its goroutine must commit the next group.
	// It is buffered, so that the committing goroutine never waits for a waiter to be scheduled.
	wake chan struct{}

	// state and lead are guarded by commitQueue.mu. The goroutine committing the write's group sets the
	// others before signalling wake; after that, the write's own goroutine reads them.
	state    writeState
	lead     bool        // this write's goroutine commits the next group
	decided  bool        // err is the write's outcome
	err      error       // the outcome, once decided
	panicked *writePanic // fn panicked; the panic is raised again in the write's goroutine
}

type writeState int

const (
	writeQueued   writeState = iota // in pending
	writeTaken                      // in a group being committed
	writeFinished                   // err is its outcome
)

// errWritePanicked marks, inside the queue, a write whose fn panicked: it fails its attempt like an error.
var errWritePanicked = errors.New("write panicked")

// writePanic carries a panic from the goroutine that committed a group to the goroutine whose write
// panicked, with the stack where it happened: the panic surfaces where it would have without grouping.
type writePanic struct {
	value any
	stack []byte
}

func (p *writePanic) String() string {
	return fmt.Sprintf("%v\n\nraised in a grouped store write, at:\n%s", p.value, p.stack)
}

// submit runs fn in a write transaction, possibly shared with concurrent writes, and returns once that
// transaction committed (nil) or fn's own failure is known. fn runs once per commit attempt, and runs again
// only when an attempt is rolled back because another write of its group failed, or when the group's
// commit failed (see commit). A write whose ctx is done before it is committed may be dropped, and then
// returns ctx.Err(): it was never acknowledged and nothing of it is stored. After close, submit returns an
// error wrapping bbolt's ErrDatabaseNotOpen, as the closed database would.
func (q *commitQueue) submit(ctx context.Context, fn func(*bolt.Tx) error) error {
	w := &queuedWrite{ctx: ctx, fn: fn, wake: make(chan struct{}, 1)}
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return fmt.Errorf("boltstore: write after Close: %w", berrors.ErrDatabaseNotOpen)
	}
	q.pending = append(q.pending, w)
	if !q.leading {
		// Nothing is committing, so nothing is pending but w: commit it now, alone.
		q.leading = true
		q.mu.Unlock()
		q.commitNextGroup()
		return w.outcome()
	}
	q.mu.Unlock()

	select {
	case <-w.wake:
	case <-ctx.Done():
		q.mu.Lock()
		if w.state == writeQueued && !w.lead {
			q.pending = slices.DeleteFunc(q.pending, func(p *queuedWrite) bool { return p == w })
			q.mu.Unlock()
			return ctx.Err()
		}
		// Its group is committing, or it must commit the next one: wait for that even though the request
		// is gone, so that what it returns is what happened.
		q.mu.Unlock()
		<-w.wake
	}
	if w.lead {
		q.commitNextGroup()
	}
	return w.outcome()
}

// outcome is the finished write's result, raising its panic again if it panicked.
func (w *queuedWrite) outcome() error {
	if w.panicked != nil {
		panic(w.panicked)
	}
	return w.err
}

// errCommitterExited is the outcome of the writes of a group whose committing goroutine exited in the middle
// (a write function called runtime.Goexit, as t.FailNow does): their transaction was rolled back.
var errCommitterExited = errors.New("boltstore: the goroutine committing this write's group exited before the commit; nothing of the write is stored")

// commitNextGroup takes the oldest pending writes (the caller's own first) as one group, commits them, wakes
// their goroutines, and passes the duty to the oldest write still pending, if any.
func (q *commitQueue) commitNextGroup() {
	q.mu.Lock()
	n := min(len(q.pending), q.maxGroup)
	group := slices.Clone(q.pending[:n])
	rest := copy(q.pending, q.pending[n:])
	clear(q.pending[rest:])
	q.pending = q.pending[:rest]
	for _, w := range group {
		w.state = writeTaken
	}
	q.mu.Unlock()

	// Deferred, so that the group's goroutines are woken and the queue goes on even if this goroutine exits
	// inside a write function.
	defer q.finishGroup(group)
	q.commit(group)
}

// finishGroup wakes the goroutines of a group whose commit is over and passes the duty on.
func (q *commitQueue) finishGroup(group []*queuedWrite) {
	q.mu.Lock()
	for _, w := range group {
		if !w.decided {
			w.finish(errCommitterExited)
		}
		w.state = writeFinished
	}
	var next *queuedWrite
	if len(q.pending) > 0 {
		next = q.pending[0]
		next.lead = true
	} else {
		q.leading = false
		q.idle.Broadcast()
	}
	q.mu.Unlock()
	for _, w := range group {
		w.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

// commit commits the group's writes in one transaction, in order, and sets each write's outcome.
//
// A write that fails (an error or a panic from its fn) fails alone: its fn may have written part of its work
// before failing, and only a rollback undoes that, so the transaction is rolled back, the write gets its
// error, and the others are committed in a new attempt, in the same order, without it. The writes before it
// thus run again, on exactly the state they saw the first time: the store's write functions are made to be
// safe to run again (they rebuild everything they fill in on every run), which TestContractRehearsed proves.
// A write whose ctx is done by the start of an attempt is dropped from it.
//
// When the commit itself fails (an I/O error, a full disk), the failure belongs to no one write, and a group
// may fail where a single write would not (a delete that frees space, next to writes that need it): each
// write is then tried again alone, in order, and gets its own outcome.
func (q *commitQueue) commit(group []*queuedWrite) {
	live := slices.Clone(group)
	for len(live) > 0 {
		live = slices.DeleteFunc(live, func(w *queuedWrite) bool {
			if err := w.ctx.Err(); err != nil {
				w.finish(err)
				return true
			}
			return false
		})
		if len(live) == 0 {
			return
		}
		if q.rehearse {
			q.rehearseAttempt(live)
		}
		failed := -1
		start := time.Now()
		err := q.update(func(tx *bolt.Tx) error {
			for i, w := range live {
				if err := w.run(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if q.observe != nil {
			q.observe(CommitStats{Duration: time.Since(start), Writes: len(live), Err: err})
		}
		switch {
		case failed >= 0:
			live[failed].finish(err)
			live = slices.Delete(live, failed, failed+1)
		case err != nil && len(live) > 1:
			for _, w := range live {
				if err := w.ctx.Err(); err != nil {
					w.finish(err)
				} else {
					w.finish(q.update(w.run))
				}
			}
			return
		default:
			for _, w := range live {
				w.finish(err)
			}
			return
		}
	}
}

// finish decides the write's outcome.
func (w *queuedWrite) finish(err error) { w.err, w.decided = err, true }

// errRehearsal rolls a rehearsal back.
var errRehearsal = errors.New("rehearsal")

// rehearseAttempt runs the writes as an attempt would, up to the first failure, and rolls everything back.
func (q *commitQueue) rehearseAttempt(live []*queuedWrite) {
	_ = q.update(func(tx *bolt.Tx) error {
		for _, w := range live {
			if err := w.run(tx); err != nil {
				break
			}
		}
		return errRehearsal
	})
	for _, w := range live {
		w.panicked = nil
	}
}

// run calls fn, turning a panic into errWritePanicked so that the other writes of the group carry on.
func (w *queuedWrite) run(tx *bolt.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			w.panicked = &writePanic{value: v, stack: debug.Stack()}
			err = errWritePanicked
		}
	}()
	w.panicked = nil
	return w.fn(tx)
}

// close refuses new writes and waits until every write already queued is finished, committed or failed.
func (q *commitQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for q.leading {
		q.idle.Wait()
	}
}
