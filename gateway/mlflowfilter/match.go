package mlflowfilter

import "unicode"

// Like reports whether s matches the SQL LIKE pattern: '%' matches any run
// of characters (including none) and '_' exactly one character; everything
// else, regular-expression metacharacters included, matches itself. The
// match is anchored at both ends. The contract (section 9.2) defines no
// escape character, so '%' and '_' cannot be matched literally except by
// themselves. With caseInsensitive, characters are compared by Unicode
// simple case folding (ILIKE).
//
// Matching works on runes, so '_' consumes one character of a multi-byte
// UTF-8 sequence as a whole. The algorithm backtracks only to the most
// recent '%', which bounds the cost at O(len(pattern)·len(s)) and keeps
// hostile patterns from blowing up the store.
func Like(pattern, s string, caseInsensitive bool) bool {
	pr := []rune(pattern)
	sr := []rune(s)
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(sr) {
		switch {
		case pi < len(pr) && pr[pi] == '%':
			star, mark = pi, si
			pi++
		case pi < len(pr) && (pr[pi] == '_' || runeEq(pr[pi], sr[si], caseInsensitive)):
			pi++
			si++
		case star >= 0:
			mark++
			si = mark
			pi = star + 1
		default:
			return false
		}
	}
	for pi < len(pr) && pr[pi] == '%' {
		pi++
	}
	return pi == len(pr)
}

func runeEq(a, b rune, fold bool) bool {
	if a == b {
		return true
	}
	if !fold {
		return false
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// MatchString evaluates c against a string value of the entity. It is
// meaningful for =, !=, LIKE, ILIKE, IN and NOT IN; for a numeric
// comparator, or a value kind that does not fit the comparator, it returns
// false, because the Parse functions never produce such conditions for
// string entities.
//
// Whether a missing value matches is the caller's decision: section 9.2
// requires that `!=` on an absent tag matches, so stores should treat an
// absent tag as matching only OpNe and OpNotIn.
func (c Condition) MatchString(v string) bool {
	switch c.Op {
	case OpEq:
		return c.Value.Kind == ValueString && v == c.Value.Str
	case OpNe:
		return c.Value.Kind == ValueString && v != c.Value.Str
	case OpLike:
		return c.Value.Kind == ValueString && Like(c.Value.Str, v, false)
	case OpILike:
		return c.Value.Kind == ValueString && Like(c.Value.Str, v, true)
	case OpIn, OpNotIn:
		if c.Value.Kind != ValueList {
			return false
		}
		found := false
		for _, x := range c.Value.List {
			if x == v {
				found = true
				break
			}
		}
		return found == (c.Op == OpIn)
	}
	return false
}

// MatchNumber evaluates c against a numeric value (metric, start_time,
// version_number …). Comparisons follow IEEE 754, so a NaN value matches
// only `!=`. It returns false for string comparators or a non-numeric
// Value.
func (c Condition) MatchNumber(v float64) bool {
	if c.Value.Kind != ValueNumber {
		return false
	}
	n := c.Value.Num
	switch c.Op {
	case OpEq:
		return v == n
	case OpNe:
		return v != n
	case OpLt:
		return v < n
	case OpLe:
		return v <= n
	case OpGt:
		return v > n
	case OpGe:
		return v >= n
	}
	return false
}
