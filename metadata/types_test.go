package metadata

import (
	"errors"
	"testing"
)

func TestParseProjectRef(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ProjectRef
	}{
		{"1", ProjectRef{ID: 1}},
		{"42", ProjectRef{ID: 42}},
		{"9223372036854775807", ProjectRef{ID: 9223372036854775807}},
		{"team/vision", ProjectRef{Path: "team/vision"}},
		{"0a", ProjectRef{Path: "0a"}},
		{"a/0", ProjectRef{Path: "a/0"}},
		{"team/-x", ProjectRef{Path: "team/-x"}},
	} {
		if got, err := ParseProjectRef(tc.in); err != nil || got != tc.want {
			t.Errorf("ParseProjectRef(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "0", "00", "007", "9223372036854775808", "99999999999999999999", "-1", "-x", "-"} {
		if got, err := ParseProjectRef(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseProjectRef(%q) = %+v, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestParseEIDTakesGitLabUUIDs(t *testing.T) {
	hexID, ok := ParseEID("8c1c2f0e9a3b4c5d8e7f60718293a4b5")
	if !ok {
		t.Fatal("32 hex digits refused")
	}
	for _, s := range []string{"8c1c2f0e-9a3b-4c5d-8e7f-60718293a4b5", "8C1C2F0E-9A3B-4C5D-8E7F-60718293A4B5"} {
		if got, ok := ParseEID(s); !ok || got != hexID {
			t.Errorf("ParseEID(%q) = %v, %v; want the same id as its 32 hex digits", s, got, ok)
		}
	}
	for _, s := range []string{"8c1c2f0e-9a3b-4c5d-8e7f-60718293a4b", "8c1c2f0e9-a3b-4c5d-8e7f-60718293a4b5", "8c1c2f0e-9a3b-4c5d-8e7f-60718293a4bz", ""} {
		if _, ok := ParseEID(s); ok {
			t.Errorf("ParseEID(%q) accepted", s)
		}
	}
}
