package pgstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"

	"github.com/mlgate/mlgate/metadata"
)

// Page sizes, as boltstore's: Page.Limit <= 0 means defaultLimit; larger than maxLimit is clamped.
const (
	defaultLimit = 100
	maxLimit     = 1000
	hashLen      = 8
)

// pager pages a listing by keyset: a token is base64url(queryHash[8] | the last row's sort key), so a
// listing resumes correctly while rows are inserted or deleted, and the hash ties the token to its query
// (listing kind and scope): a token replayed against another listing is ErrInvalid, not a wrong page.
type pager struct {
	hash  [hashLen]byte
	after []byte // the sort key to resume after; nil = from the start
	limit int
}

func newPager(p metadata.Page, kind string, scope ...any) (*pager, error) {
	pg := &pager{limit: p.Limit}
	if pg.limit <= 0 {
		pg.limit = defaultLimit
	}
	pg.limit = min(pg.limit, maxLimit)
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%v", kind, scope))
	copy(pg.hash[:], sum[:])
	if p.Token == "" {
		return pg, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.Token)
	if err != nil || len(raw) <= hashLen || !bytes.Equal(raw[:hashLen], pg.hash[:]) {
		return nil, fmt.Errorf("page token %.40q does not belong to this listing: %w", p.Token, metadata.ErrInvalid)
	}
	pg.after = raw[hashLen:]
	return pg, nil
}

func (pg *pager) token(last []byte) string {
	return base64.RawURLEncoding.EncodeToString(append(pg.hash[:], last...))
}

// int64s decodes a sort key of n int64s; ErrInvalid for anything else.
func (pg *pager) int64s(n int) ([]int64, error) {
	if len(pg.after) != 8*n {
		return nil, fmt.Errorf("page token: %w", metadata.ErrInvalid)
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.BigEndian.Uint64(pg.after[8*i:]))
	}
	return out, nil
}

func int64Key(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

// page trims the limit+1 rows a query fetched to the page and returns the next token, "" when the row
// past the page does not exist: the last page never carries a token to an empty page.
func page[T any](pg *pager, rows []T, key func(T) []byte) ([]T, string) {
	if len(rows) <= pg.limit {
		return rows, ""
	}
	rows = rows[:pg.limit]
	return rows, pg.token(key(rows[len(rows)-1]))
}
