package pgstore

import (
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/mlgate/mlgate/metadata"
)

// txLog records what a store's transaction observer sees.
type txLog struct {
	mu    sync.Mutex
	stats []TxStats
}

func (l *txLog) observe(s TxStats) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stats = append(l.stats, s)
}

// take returns the stats seen since the last take.
func (l *txLog) take() []TxStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.stats
	l.stats = nil
	return out
}

// TestTxObserverSeesRetries forces a serialization failure: two write transactions each read the whole
// of a table, then each insert into it, both reads done before either insert (write skew, which
// SERIALIZABLE refuses). One of them fails to serialize and runs again; the observer sees both commit,
// and the retried one with two attempts. A refused write and a bulk read are observed too.
func TestTxObserverSeesRetries(t *testing.T) {
	var log txLog
	s := openEmpty(t, WithTxObserver(log.observe))
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, `CREATE TABLE skew (k int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	log.take() // the migrations' transactions

	var bothRead sync.WaitGroup
	bothRead.Add(2)
	errs := make(chan error, 2)
	for k := range 2 {
		go func() {
			first := true
			errs <- s.update(ctx, func(tx pgx.Tx) error {
				var n int
				if err := tx.QueryRow(ctx, `SELECT count(*) FROM skew`).Scan(&n); err != nil {
					return err
				}
				if first {
					// Only the first attempts meet here: a retry runs after the other committed.
					first = false
					bothRead.Done()
					bothRead.Wait()
				}
				_, err := tx.Exec(ctx, `INSERT INTO skew (k) VALUES ($1)`, k)
				return err
			})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("update: %v", err)
		}
	}
	stats := log.take()
	attempts := map[int]int{}
	for _, st := range stats {
		if st.ReadOnly || st.Err != nil || st.Duration <= 0 {
			t.Errorf("stats of a committed write: %+v", st)
		}
		attempts[st.Attempts]++
	}
	if len(stats) != 2 || attempts[1] != 1 || attempts[2] != 1 {
		t.Errorf("observed %d transactions with attempts %v; want one that committed at once and one retried once", len(stats), attempts)
	}
	var rows int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM skew`).Scan(&rows); err != nil || rows != 2 {
		t.Fatalf("rows after both committed: %d, %v", rows, err)
	}

	// A write refused inside its transaction is observed with the caller's error; a bulk read is a
	// read-only transaction.
	err := s.LogBatch(ctx, 1<<40, nil, []metadata.Metric{{Key: "k", Value: 1}}, nil)
	if !errors.Is(err, metadata.ErrNotFound) {
		t.Fatalf("LogBatch of an unknown run: %v", err)
	}
	if _, err := s.RunDataOf(ctx, []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	stats = log.take()
	if len(stats) != 2 || stats[0].ReadOnly || !errors.Is(stats[0].Err, metadata.ErrNotFound) || stats[0].Attempts != 1 ||
		!stats[1].ReadOnly || stats[1].Err != nil || stats[1].Attempts != 1 {
		t.Errorf("observed %+v; want the refused write, then the read", stats)
	}
}
