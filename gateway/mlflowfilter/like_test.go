package mlflowfilter

import "testing"

func TestLike(t *testing.T) {
	cases := []struct {
		pattern, s string
		ci, want   bool
	}{
		{"", "", false, true},
		{"", "a", false, false},
		{"%", "", false, true},
		{"%", "anything", false, true},
		{"%%", "x", false, true},
		{"abc", "abc", false, true},
		{"abc", "abcd", false, false}, // anchored at the end
		{"bc", "abc", false, false},   // anchored at the start
		{"a%", "abc", false, true},
		{"%c", "abc", false, true},
		{"%b%", "abc", false, true},
		{"a%c", "ac", false, true},
		{"a%c", "abcbc", false, true},
		{"a%c", "abcb", false, false},
		{"_", "a", false, true},
		{"_", "", false, false},
		{"_", "ab", false, false},
		{"a_c", "abc", false, true},
		{"a_c", "ac", false, false},
		{"_%_", "ab", false, true},
		{"_%_", "a", false, false},
		{"%a%a%a%b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false, false},
		{"é_", "éx", false, true},
		{"_", "é", false, true}, // one character, two bytes
		{"✓%", "✓ ok", false, true},
		// Regex metacharacters are literal.
		{"a.c", "abc", false, false},
		{"a.c", "a.c", false, true},
		{"a*", "aaa", false, false},
		{"a*", "a*", false, true},
		{"^a$", "a", false, false},
		{"^a$", "^a$", false, true},
		{"[ab]", "a", false, false},
		{"[ab]", "[ab]", false, true},
		{"(a|b)+?", "(a|b)+?", false, true},
		{`a\%`, `a\xyz`, false, true}, // no escape character in the contract
		{`\d`, "1", false, false},
		// Case folding.
		{"ABC", "abc", false, false},
		{"ABC", "abc", true, true},
		{"wf-MODEL-%", "WF-model-1", true, true},
		{"straße", "STRAßE", true, true},
		{"σ", "Σ", true, true},
		{"ς", "Σ", true, true},
		{"k", "\u212a", true, true}, // Kelvin sign folds to k
		{"a", "b", true, false},
	}
	for _, tc := range cases {
		if got := Like(tc.pattern, tc.s, tc.ci); got != tc.want {
			t.Errorf("Like(%q, %q, %v) = %v, want %v", tc.pattern, tc.s, tc.ci, got, tc.want)
		}
	}
}
