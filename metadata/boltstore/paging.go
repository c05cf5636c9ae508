package boltstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
	bolt "go.etcd.io/bbolt"
)

// Page sizes: Page.Limit <= 0 means defaultLimit; larger than maxLimit is clamped.
const (
	defaultLimit = 100
	maxLimit     = 1000
	hashLen      = 8
)

// pager walks the keys of one bucket under prefix, a page at a time.
//
// A token is base64url(queryHash[8] | lastKey). The last key, not an offset, lets a listing resume
// correctly while rows are inserted or deleted; the hash ties the token to its query (listing kind and
// prefix), so a token replayed against another listing is ErrInvalid instead of a silently wrong page.
type pager struct {
	prefix []byte
	hash   [hashLen]byte
	after  []byte // resume strictly after (or before, backwards) this key; nil = from the start
	limit  int
}

func newPager(p metadata.Page, kind string, prefix []byte) (*pager, error) {
	pg := &pager{prefix: prefix, limit: p.Limit}
	if pg.limit <= 0 {
		pg.limit = defaultLimit
	}
	pg.limit = min(pg.limit, maxLimit)
	sum := sha256.Sum256(append([]byte(kind+"\x00"), prefix...))
	copy(pg.hash[:], sum[:])
	if p.Token == "" {
		return pg, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.Token)
	if err != nil || len(raw) <= hashLen || !bytes.Equal(raw[:hashLen], pg.hash[:]) || !hasPrefix(raw[hashLen:], prefix) {
		return nil, fmt.Errorf("page token %.40q does not belong to this listing: %w", p.Token, metadata.ErrInvalid)
	}
	pg.after = raw[hashLen:]
	return pg, nil
}

func (pg *pager) token(last []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(pg.hash[:], last...))
}

// forward calls emit for up to limit entries in key order and returns the next token, "" when the listing
// is exhausted. It looks one entry ahead so the last page never carries a token to an empty page.
func (pg *pager) forward(c *bolt.Cursor, emit func(k, v []byte) error) (string, error) {
	var k, v []byte
	if pg.after == nil {
		k, v = c.Seek(pg.prefix)
	} else if k, v = c.Seek(pg.after); k != nil && bytes.Equal(k, pg.after) {
		k, v = c.Next()
	}
	return pg.walk(k, v, c.Next, emit)
}

// backward is forward in reverse key order.
func (pg *pager) backward(c *bolt.Cursor, emit func(k, v []byte) error) (string, error) {
	start := pg.after
	if start == nil {
		start = prefixEnd(pg.prefix)
	}
	var k, v []byte
	switch {
	case start == nil:
		k, v = c.Last()
	case seekKey(c, start) == nil:
		k, v = c.Last() // everything sorts below start
	default:
		k, v = c.Prev()
	}
	return pg.walk(k, v, c.Prev, emit)
}

func (pg *pager) walk(k, v []byte, step func() ([]byte, []byte), emit func(k, v []byte) error) (string, error) {
	var last []byte
	for n := 0; k != nil && hasPrefix(k, pg.prefix); k, v = step() {
		if n == pg.limit {
			return pg.token(last), nil
		}
		if err := emit(k, v); err != nil {
			return "", err
		}
		last, n = k, n+1
	}
	return "", nil
}

func seekKey(c *bolt.Cursor, k []byte) []byte {
	found, _ := c.Seek(k)
	return found
}
