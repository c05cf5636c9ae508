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
