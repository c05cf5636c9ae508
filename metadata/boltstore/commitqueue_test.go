package boltstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// These tests drive the commit queue through Store.update with functions of their own, writing to a
// bucket of their own. They hold the commit in flight with a write that blocks until released, queue
// writes behind it one by one (waiting until each is queued, so the order is known), then release it.

var testBucket = []byte("commitqueue-test")

// holdCommit submits a write that blocks inside its transaction until release is called, and returns once
// it is running: writes submitted meanwhile queue behind it. release waits for the held write to commit.
func holdCommit(t *testing.T, s *Store) (release func()) {
	t.Helper()
	running, gate, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		done <- s.update(context.Background(), func(tx *bolt.Tx) error {
			once.Do(func() { close(running) })
			<-gate
			_, err := tx.CreateBucketIfNotExists(testBucket)
			return err
		})
	}()
	<-running
	return func() {
		t.Helper()
		close(gate)
		if err := <-done; err != nil {
			t.Fatalf("held write: %v", err)
		}
	}
}

// waitQueued waits until n writes are waiting in the queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	poll.Until(t, 10*time.Second, fmt.Sprintf("%d writes queued", n), func() bool {
		s.writes.mu.Lock()
		defer s.writes.mu.Unlock()
		return len(s.writes.pending) == n
	})
}

// outcome is what one submitted write returned, or the panic it raised.
type outcome struct {
	err      error
	panicked any
}

// submitAsync submits fn from a goroutine of its own, as the (n-1)-th write queued, and returns where its
// outcome arrives.
func submitAsync(t *testing.T, s *Store, ctx context.Context, n int, fn func(*bolt.Tx) error) <-chan outcome {
	t.Helper()
	out := make(chan outcome, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				out <- outcome{panicked: v}
			}
		}()
		out <- outcome{err: s.update(ctx, fn)}
	}()
	waitQueued(t, s, n)
	return out
}

// put returns a write of key=value to the test bucket.
func put(key string) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error { return tx.Bucket(testBucket).Put([]byte(key), []byte("v")) }
}

// storedKeys lists the test bucket's keys.
func storedKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(testBucket).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestGroupCommitTakesQueuedWritesInOrderUpToTheBound(t *testing.T) {
	s := openStore(t, tempPath(t), WithMaxGroup(4))
	defer s.Close()
	release := holdCommit(t, s)
	type call struct {
		write int
		txid  int
	}
	var mu sync.Mutex
	var calls []call
	var outs []<-chan outcome
	for i := range 10 {
		outs = append(outs, submitAsync(t, s, t.Context(), i+1, func(tx *bolt.Tx) error {
			mu.Lock()
			calls = append(calls, call{i, tx.ID()})
			mu.Unlock()
			return put(fmt.Sprint(i))(tx)
		}))
	}
	release()
	for i, out := range outs {
		if o := <-out; o.err != nil || o.panicked != nil {
			t.Fatalf("write %d: %+v", i, o)
		}
	}
	// Groups of at most 4, in queue order, each in a transaction of its own; every write ran once.
	var got []string
	group, prev := []int{}, -1
	for _, c := range calls {
		if c.txid != prev && prev != -1 {
			got = append(got, fmt.Sprint(group))
			group = nil
		}
		group, prev = append(group, c.write), c.txid
	}
	got = append(got, fmt.Sprint(group))
	if want := []string{"[0 1 2 3]", "[4 5 6 7]", "[8 9]"}; !slices.Equal(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
	if keys := storedKeys(t, s); len(keys) != 10 {
		t.Errorf("stored %v", keys)
	}
}

func TestGroupCommitFailureAndPanicFailOnlyTheirWrite(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	release := holdCommit(t, s)
	errB := errors.New("b refuses")
	runs := map[string]int{}
	var mu sync.Mutex
	counted := func(name string, fn func(*bolt.Tx) error) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			mu.Lock()
			runs[name]++
			mu.Unlock()
			return fn(tx)
		}
	}
	cctx, cancelC := context.WithCancel(t.Context())
	defer cancelC()
	a := submitAsync(t, s, t.Context(), 1, counted("a", put("a")))
	b := submitAsync(t, s, t.Context(), 2, counted("b", func(tx *bolt.Tx) error {
		if err := put("b-partial")(tx); err != nil { // written before failing: the rollback must undo it
			return err
		}
		return errB
	}))
	c := submitAsync(t, s, t.Context(), 3, counted("c", put("c")))
	d := submitAsync(t, s, t.Context(), 4, counted("d", func(tx *bolt.Tx) error {
		if err := put("d-partial")(tx); err != nil {
			return err
		}
		panic("d panics")
	}))
	e := submitAsync(t, s, cctx, 5, counted("e", func(tx *bolt.Tx) error {
		cancelC() // e's request goes away while its group commits: e may be dropped, never acknowledged
		return errors.New("e fails on its first run, so that its group is tried again")
	}))
	f := submitAsync(t, s, t.Context(), 6, counted("f", put("f")))
	release()

	if o := <-a; o.err != nil || o.panicked != nil {
		t.Errorf("a: %+v", o)
	}
	if o := <-b; !errors.Is(o.err, errB) {
		t.Errorf("b: %+v, want its own error", o)
	}
	if o := <-c; o.err != nil || o.panicked != nil {
		t.Errorf("c: %+v", o)
	}
	if o := <-d; o.panicked == nil || !strings.Contains(fmt.Sprint(o.panicked), "d panics") {
		t.Errorf("d: %+v, want its panic raised again in its own goroutine", o)
	}
	if o := <-e; o.err == nil {
		t.Errorf("e: %+v, want an error", o)
	}
	if o := <-f; o.err != nil || o.panicked != nil {
		t.Errorf("f: %+v", o)
	}
	if got, want := storedKeys(t, s), []string{"a", "c", "f"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	// Attempts: [a b✗] [a c d✗] [a c e✗] [a c f✓]. Each failing write ran once and no write ran after
	// its own failure; the others ran once per attempt they were part of.
	want := map[string]int{"a": 4, "b": 1, "c": 3, "d": 1, "e": 1, "f": 1}
	if fmt.Sprint(runs) != fmt.Sprint(want) {
		t.Errorf("runs %v, want %v", runs, want)
	}
}

func TestGroupCommitDropsAWriteCanceledBeforeItsAttempt(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	release := holdCommit(t, s)
	cctx, cancelB := context.WithCancel(t.Context())
	defer cancelB()
	a := submitAsync(t, s, t.Context(), 1, put("a"))
	x := submitAsync(t, s, t.Context(), 2, func(tx *bolt.Tx) error {
		// b's request goes away while its group commits, and x fails, so the group is tried again:
		// b, not yet run, must be dropped from the next attempt rather than committed.
		cancelB()
		return errors.New("x fails")
	})
	b := submitAsync(t, s, cctx, 3, put("b"))
	release()
	if o := <-a; o.err != nil {
		t.Errorf("a: %+v", o)
	}
	if o := <-x; o.err == nil {
		t.Errorf("x: %+v, want its error", o)
	}
	if o := <-b; !errors.Is(o.err, context.Canceled) {
		t.Errorf("b: %+v, want context.Canceled", o)
	}
	if got, want := storedKeys(t, s), []string{"a"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

func TestGroupCommitCanceledWhileQueuedLeavesAtOnce(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	release := holdCommit(t, s)
	cctx, cancel := context.WithCancel(t.Context())
	a := submitAsync(t, s, t.Context(), 1, put("a"))
	b := submitAsync(t, s, cctx, 2, put("b"))
	c := submitAsync(t, s, t.Context(), 3, put("c"))
	cancel()
	// b returns while the commit in flight still holds: it left the queue, and cannot be committed later.
	if o := <-b; !errors.Is(o.err, context.Canceled) {
		t.Errorf("b: %+v, want context.Canceled", o)
	}
	waitQueued(t, s, 2)
	release()
	for name, out := range map[string]<-chan outcome{"a": a, "c": c} {
		if o := <-out; o.err != nil {
			t.Errorf("%s: %+v", name, o)
		}
	}
	if got, want := storedKeys(t, s), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

func TestGroupCommitCanceledDuringItsCommitAnswersTheTruth(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	release := holdCommit(t, s)
	inCommit, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a := submitAsync(t, s, t.Context(), 1, func(tx *bolt.Tx) error {
		once.Do(func() { close(inCommit) })
		<-gate
		return put("a")(tx)
	})
	cctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	b := submitAsync(t, s, cctx, 2, put("b"))
	release()
	<-inCommit // a and b form the group being committed
	cancel()
	close(gate)
	if o := <-a; o.err != nil {
		t.Errorf("a: %+v", o)
	}
	// b's request went away after its group started: b waited for the commit and reports it.
	if o := <-b; o.err != nil {
		t.Errorf("b: %+v, want nil: it was committed", o)
	}
	if got, want := storedKeys(t, s), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
}

func TestGroupCommitFailedCommitRetriesEachWriteAlone(t *testing.T) {
	s := openStore(t, tempPath(t))
	defer s.Close()
	errNoSpace := errors.New("no space left on device")
	var commits []string
	s.writes.update = func(fn func(*bolt.Tx) error) error {
		var keys []string
		err := s.db.Update(func(tx *bolt.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			if b := tx.Bucket(testBucket); b != nil {
				_ = b.ForEach(func(k, _ []byte) error { keys = append(keys, string(k)); return nil })
			}
			if slices.Contains(keys, "big") {
				return errNoSpace // as the commit's write would fail: nothing of the transaction is kept
			}
			return nil
		})
		commits = append(commits, fmt.Sprintf("%v:%v", keys, err == nil))
		return err
	}
	release := holdCommit(t, s)
	a := submitAsync(t, s, t.Context(), 1, put("a"))
	big := submitAsync(t, s, t.Context(), 2, put("big"))
	c := submitAsync(t, s, t.Context(), 3, put("c"))
	release()
	if o := <-a; o.err != nil {
		t.Errorf("a: %+v", o)
	}
	if o := <-big; !errors.Is(o.err, errNoSpace) {
		t.Errorf("big: %+v, want the commit's error", o)
	}
	if o := <-c; o.err != nil {
		t.Errorf("c: %+v", o)
	}
	if got, want := storedKeys(t, s), []string{"a", "c"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	want := []string{"[]:true", "[a big c]:false", "[a]:true", "[a big]:false", "[a c]:true"}
	if !slices.Equal(commits, want) {
		t.Errorf("commits %v, want %v", commits, want)
	}
}

func TestCloseCommitsQueuedWritesAndRefusesNewOnes(t *testing.T) {
	path := tempPath(t)
	s := openStore(t, path)
	release := holdCommit(t, s)
	a := submitAsync(t, s, t.Context(), 1, put("a"))
	b := submitAsync(t, s, t.Context(), 2, put("b"))
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	poll.Until(t, 10*time.Second, "Close to begin", func() bool {
		s.writes.mu.Lock()
		defer s.writes.mu.Unlock()
		return s.writes.closed
	})
	if err := s.update(t.Context(), put("late")); !errors.Is(err, berrors.ErrDatabaseNotOpen) {
		t.Errorf("write after Close began: %v, want ErrDatabaseNotOpen", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while writes were queued", err)
	default:
	}
	release()
	for name, out := range map[string]<-chan outcome{"a": a, "b": b} {
		if o := <-out; o.err != nil {
			t.Errorf("%s: %+v", name, o)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, path)
	defer s.Close()
	if got, want := storedKeys(t, s), []string{"a", "b"}; !slices.Equal(got, want) {
		t.Errorf("after reopening: %v, want %v", got, want)
	}
}

// TestConcurrentLogBatchesSurviveReopen has many writers log at once, so that commits are shared, and
// checks that every acknowledged point is in the file once it is reopened.
func TestConcurrentLogBatchesSurviveReopen(t *testing.T) {
	ctx := t.Context()
	path := tempPath(t)
	s := openStore(t, path, WithMaxGroup(8))
	p, _ := s.EnsureProject(ctx, "p")
	m := &metadata.Model{Project: p.ID, Name: "m"}
	must(t, s.CreateModel(ctx, m))
	const writers, calls = 16, 40
	cands := make([]uint64, writers)
	for i := range cands {
		c := &metadata.Candidate{ModelID: m.ID}
		must(t, s.CreateCandidate(ctx, c, nil))
		cands[i] = c.ID
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*calls)
	for w := range writers {
		wg.Go(func() {
			for i := range calls {
				errs <- s.LogBatch(ctx, cands[w], nil, []metadata.Metric{{Key: "loss", Value: float64(i), Step: int64(i)}},
					[]metadata.Tag{{Key: "last", Value: fmt.Sprint(i)}})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	must(t, s.Close())
	s = openStore(t, path)
	defer s.Close()
	for w, c := range cands {
		points, _, err := s.MetricHistory(ctx, c, "loss", metadata.Page{Limit: 1000})
		must(t, err)
		rd, err := s.RunData(ctx, c)
		must(t, err)
		// One client's writes take effect in its order: the last tag it set is the one kept.
		if len(points) != calls || len(rd.Tags) != 1 || rd.Tags[0].Value != fmt.Sprint(calls-1) {
			t.Errorf("writer %d after reopening: %d points, tags %+v", w, len(points), rd.Tags)
		}
	}
	must(t, s.Verify(ctx))
}

// TestGroupCommitSurvivesAGoroutineExitInAWrite has a write function call runtime.Goexit, as t.FailNow
// does: the goroutine committing the group exits, and the group's other writes must still get an answer
// (not stored), and the queue must go on.
func TestGroupCommitSurvivesAGoroutineExitInAWrite(t *testing.T) {
	s := openStore(t, tempPath(t))
	release := holdCommit(t, s)
	a := submitAsync(t, s, t.Context(), 1, put("a")) // the oldest: its goroutine commits the group, and exits
	x := submitAsync(t, s, t.Context(), 2, func(*bolt.Tx) error {
		runtime.Goexit()
		return nil
	})
	c := submitAsync(t, s, t.Context(), 3, put("c"))
	release()
	for name, out := range map[string]<-chan outcome{"x": x, "c": c} {
		if o := <-out; !errors.Is(o.err, errCommitterExited) {
			t.Errorf("%s: %+v, want errCommitterExited", name, o)
		}
	}
	select {
	case o := <-a:
		t.Errorf("a's goroutine, which exited, answered %+v", o)
	default:
	}
	must(t, s.update(t.Context(), put("after")))
	if got, want := storedKeys(t, s), []string{"after"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	must(t, s.Close())
}
