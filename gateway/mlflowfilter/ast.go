// Package mlflowfilter parses MLflow's search syntax (the filter and
// order_by strings of runs/search, experiments/search,
// registered-models/search and model-versions/search) into a typed AST.
//
// The package does not touch storage: stores walk the returned Filter and
// use Condition.MatchString, Condition.MatchNumber and Like to evaluate it.
// Every parse error wraps ErrInvalid so handlers can map it to a 400
// INVALID_PARAMETER_VALUE; a malformed filter must never become a 500,
// because the MLflow client retries 5xx answers for about a minute.
package mlflowfilter

import (
	"errors"
	"strings"
)

// ErrInvalid is wrapped by every error returned from the Parse functions.
// The wrapping message explains the problem in MLflow's wording where one
// exists and ends with "(at position N, near "token")", N being the 0-based
// byte offset in the filter or order_by clause.
var ErrInvalid = errors.New("invalid search expression")

// Entity says which part of a run, experiment, model or version a key
// refers to.
type Entity int

// The zero Entity is deliberately not valid, so a Condition that was never
// filled in cannot silently match attributes.
const (
	Metric Entity = iota + 1
	Param
	Tag
	Attribute
)

// String returns the canonical (plural) prefix used in filters.
func (e Entity) String() string {
	switch e {
	case Metric:
		return "metrics"
	case Param:
		return "params"
	case Tag:
		return "tags"
	case Attribute:
		return "attributes"
	}
	return "unknown"
}

// Comparator is the operator of a Condition.
type Comparator string

// Comparators MLflow accepts. LIKE and ILIKE are SQL LIKE patterns (see
// Like); IN and NOT IN take a list value.
const (
	OpEq    Comparator = "="
	OpNe    Comparator = "!="
	OpLt    Comparator = "<"
	OpLe    Comparator = "<="
	OpGt    Comparator = ">"
	OpGe    Comparator = ">="
	OpLike  Comparator = "LIKE"
	OpILike Comparator = "ILIKE"
	OpIn    Comparator = "IN"
	OpNotIn Comparator = "NOT IN"
)

// ValueKind tells which field of a Value is meaningful.
type ValueKind int

// Value kinds. The zero kind is invalid for the same reason as Entity's.
const (
	ValueString ValueKind = iota + 1
	ValueNumber
	ValueList
)

// Value is the right-hand side of a Condition. For ValueNumber, Num holds
// the parsed number and Str the literal as written, so that String() can
// reproduce it exactly (and so version numbers can be compared textually
// if a store prefers).
type Value struct {
	Kind ValueKind
	Str  string
	Num  float64
	List []string
}

// Condition is one `<entity>.<key> <op> <value>` clause.
type Condition struct {
	Entity Entity
	Key    string
	Op     Comparator
	Value  Value
}

// Filter is a conjunction of conditions; an empty Filter matches
// everything.
type Filter []Condition

// OrderBy is one order_by clause. Desc is false for ASC and when no
// direction was given.
type OrderBy struct {
	Entity Entity
	Key    string
	Desc   bool
}

// String renders the filter in a form every Parse function that accepted
// it will parse back to an identical Filter.
func (f Filter) String() string {
	parts := make([]string, len(f))
	for i, c := range f {
		parts[i] = c.String()
	}
	return strings.Join(parts, " AND ")
}

// String renders one condition. Attributes are written bare (`name`,
// `start_time`) because that is the only form accepted by every parser.
func (c Condition) String() string {
	var b strings.Builder
	if c.Entity != Attribute {
		b.WriteString(c.Entity.String())
		b.WriteByte('.')
		b.WriteString(quoteKey(c.Key))
	} else {
		b.WriteString(c.Key)
	}
	b.WriteByte(' ')
	b.WriteString(string(c.Op))
	b.WriteByte(' ')
	switch c.Value.Kind {
	case ValueString:
		b.WriteString(quoteString(c.Value.Str))
	case ValueNumber:
		b.WriteString(c.Value.Str)
	case ValueList:
		b.WriteByte('(')
		for i, s := range c.Value.List {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(quoteString(s))
		}
		b.WriteByte(')')
	}
	return b.String()
}

// String renders the clause as `<entity>.<key> ASC|DESC`.
func (o OrderBy) String() string {
	dir := " ASC"
	if o.Desc {
		dir = " DESC"
	}
	if o.Entity == Attribute {
		return o.Key + dir
	}
	return o.Entity.String() + "." + quoteKey(o.Key) + dir
}

// quoteKey picks a quoting the parser can read back. The parser has no
// escapes, so a parsed key never contains both quote characters and one of
// the two forms always works.
func quoteKey(k string) string {
	if isBareKey(k) {
		return k
	}
	if !strings.Contains(k, "`") {
		return "`" + k + "`"
	}
	return `"` + k + `"`
}

func quoteString(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `"` + s + `"`
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !isKeyByte(k[i]) {
			return false
		}
	}
	return true
}

func isKeyByte(c byte) bool {
	return isWordByte(c) || c == '.'
}

func isWordByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
