package pagetoken

import (
	"errors"
	"testing"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

func TestRoundTripAndForeignTokens(t *testing.T) {
	fp := Fingerprint("runs", "1,2", "metrics.acc DESC")
	if other := Fingerprint("runs", "1,2", "metrics.acc ASC"); other == fp {
		t.Fatal("different queries share a fingerprint")
	}
	if Fingerprint("a\x00b") != Fingerprint("a", "b") {
		// Parts are joined with NUL, which no part of a real query holds; the test pins that choice.
		t.Fatal("joining changed")
	}
	for _, want := range []Token{{Query: fp, Store: "k1"}, {Query: fp, Offset: 150}} {
		got, err := Parse(want.String(), fp)
		if err != nil || got != want {
			t.Fatalf("round trip of %+v: %+v, %v", want, got, err)
		}
	}
	first, err := Parse("", fp)
	if err != nil || first != (Token{Query: fp}) {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	for _, bad := range []string{
		"garbage!",
		"eyJvZmZzZXQiOiAxfQ", // JSON of another shape
		Token{Query: "other", Offset: 1}.String(), // another query's
		Token{Query: fp, Offset: -1}.String(),     // a negative offset
	} {
		if _, err := Parse(bad, fp); !errors.Is(err, httpapi.ErrBadRequest) {
			t.Errorf("Parse(%q): %v, want ErrBadRequest", bad, err)
		}
	}
}
