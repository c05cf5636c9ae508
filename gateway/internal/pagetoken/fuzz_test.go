package pagetoken

import (
	"errors"
	"testing"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

// Any string a client sends as a page token is either refused as a bad request or decodes to a token of
// this query with a usable position; valid tokens round-trip.
func FuzzParse(f *testing.F) {
	fp := Fingerprint("runs/search", "metrics.acc > 1")
	for _, seed := range []string{"", Token{Query: fp, Offset: 100}.String(), Token{Query: fp, Store: "abc"}.String(),
		Token{Query: "other"}.String(), "!!!", "eyJxIjoiIn0", "e30", Token{Query: fp, Offset: -1}.String()} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		got, err := Parse(tok, fp)
		if err != nil {
			if !errors.Is(err, httpapi.ErrBadRequest) {
				t.Fatalf("%q: error does not wrap ErrBadRequest: %v", tok, err)
			}
			return
		}
		if got.Query != fp || got.Offset < 0 {
			t.Fatalf("%q: accepted %+v", tok, got)
		}
		if again, err := Parse(got.String(), fp); err != nil || again != got {
			t.Fatalf("%q: %+v does not round-trip: %+v, %v", tok, got, again, err)
		}
	})
}
