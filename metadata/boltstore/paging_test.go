package boltstore

import (
	"errors"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

func TestPageLimits(t *testing.T) {
	for give, want := range map[int]int{-1: defaultLimit, 0: defaultLimit, 1: 1, maxLimit: maxLimit, maxLimit + 1: maxLimit, 1 << 40: maxLimit} {
		pg, err := newPager(metadata.Page{Limit: give}, "x", idKey(1))
		if err != nil || pg.limit != want {
			t.Errorf("Limit %d: %d, %v; want %d", give, pg.limit, err, want)
		}
	}
}

// TestTokenBinding: the kind of listing counts, not only the key prefix, which two listings may share
// (project 1's models and model 1's versions both use u64(1)).
func TestTokenBinding(t *testing.T) {
	a, _ := newPager(metadata.Page{}, "models", idKey(1))
	tok := a.token(append(idKey(1), 0, 0, 0, 0, 0, 0, 0, 5))
	if _, err := newPager(metadata.Page{Token: tok}, "models", idKey(1)); err != nil {
		t.Errorf("own token refused: %v", err)
	}
	if _, err := newPager(metadata.Page{Token: tok}, "versions", idKey(1)); !errors.Is(err, metadata.ErrInvalid) {
		t.Errorf("token of another kind: %v, want ErrInvalid", err)
	}
	forged := a.token(idKey(2)) // right hash, key outside the prefix
	if _, err := newPager(metadata.Page{Token: forged}, "models", idKey(1)); !errors.Is(err, metadata.ErrInvalid) {
		t.Errorf("token outside the prefix: %v, want ErrInvalid", err)
	}
}
