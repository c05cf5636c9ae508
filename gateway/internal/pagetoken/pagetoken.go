// Package pagetoken is the one codec of the opaque page tokens that every search of mlgate's HTTP API
// hands out (runs, experiments, registered models, model versions, and the UI's candidate table).
//
// A token is base64url of a small JSON object: a fingerprint of the query it belongs to, and the
// position to go on from, either the store's own keyset token (searches in an index order) or an offset
// into a sorted result (searches sorted in memory). The fingerprint covers everything that decides a
// query's results and their order, but not its page size, so a client may change max_results between
// pages as MLflow allows while a token reused for another query is refused instead of skipping rows.
// Tokens carry no secret and need none: a forged position only pages the caller's own query.
package pagetoken

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

// Token is the state behind a page token.
type Token struct {
	Query  string `json:"q"`           // Fingerprint of the query
	Store  string `json:"s,omitempty"` // the store's keyset token, for index-ordered searches
	Offset int    `json:"o,omitempty"` // rows already returned, for searches sorted in memory
}

// Fingerprint hashes the parts of a query that decide its result set and order.
func Fingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

// String encodes t as the opaque token clients pass back.
func (t Token) String() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Parse decodes a token of the query with fingerprint fp; "" is the first page. A token that does not
// decode, or that belongs to another query, is httpapi.ErrBadRequest.
func Parse(tok, fp string) (Token, error) {
	if tok == "" {
		return Token{Query: fp}, nil
	}
	var t Token
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tok, "="))
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil || t.Query != fp || t.Offset < 0 {
		return Token{}, fmt.Errorf("%w: invalid page_token %.40q: it does not belong to this search (was the filter, order_by, "+
			"view type or experiment list changed between pages?)", httpapi.ErrBadRequest, tok)
	}
	return t, nil
}
