package mlflowfilter

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// attrType says how an attribute is compared; it decides which comparators
// and value kinds are legal.
type attrType int

const (
	attrString attrType = iota
	attrNumber
	attrID // a string that also allows IN / NOT IN (MLflow allows it only on run_id)
)

// grammar is the per-endpoint vocabulary. The syntax is shared; only the
// entities and attribute names differ.
type grammar struct {
	what     string              // used in error messages: "run", "model", ...
	entities map[string]Entity   // lower-case prefix -> entity (no Attribute aliases here)
	attrs    map[string]attrType // canonical attribute name -> type
	alias    map[string]string   // alternative attribute name -> canonical
	orderBy  map[string]bool     // attributes allowed in order_by
	orderEnt map[Entity]bool     // non-attribute entities allowed in order_by
}

// MLflow accepts several spellings of each prefix; the 3.x client itself
// sends the singular `tag.`.
var (
	metricPrefixes = []string{"metric", "metrics"}
	paramPrefixes  = []string{"param", "params", "parameter", "parameters"}
	tagPrefixes    = []string{"tag", "tags"}
	attrPrefixes   = []string{"attribute", "attributes", "attr", "run"}
)

func prefixes(ents ...Entity) map[string]Entity {
	m := map[string]Entity{}
	add := func(names []string, e Entity) {
		for _, n := range names {
			m[n] = e
		}
	}
	add(attrPrefixes, Attribute)
	for _, e := range ents {
		switch e {
		case Metric:
			add(metricPrefixes, Metric)
		case Param:
			add(paramPrefixes, Param)
		case Tag:
			add(tagPrefixes, Tag)
		}
	}
	return m
}

var runGrammar = &grammar{
	what:     "run",
	entities: prefixes(Metric, Param, Tag),
	attrs: map[string]attrType{
		"run_name": attrString, "status": attrString, "user_id": attrString,
		"artifact_uri": attrString, "run_id": attrID,
		"start_time": attrNumber, "end_time": attrNumber,
	},
	orderBy: map[string]bool{
		"run_name": true, "status": true, "user_id": true, "artifact_uri": true,
		"run_id": true, "start_time": true, "end_time": true,
	},
	orderEnt: map[Entity]bool{Metric: true, Param: true, Tag: true},
}

var experimentGrammar = &grammar{
	what:     "experiment",
	entities: prefixes(Tag),
	attrs: map[string]attrType{
		"name": attrString, "creation_time": attrNumber, "last_update_time": attrNumber,
	},
	orderBy: map[string]bool{"name": true, "creation_time": true, "last_update_time": true},
}

// Section 9.2 of the contract lists creation_time and last_update_time for
// registered models as well as experiments, so the two grammars coincide;
// they stay separate values so error messages name the right endpoint.
var modelGrammar = &grammar{
	what:     "registered model",
	entities: prefixes(Tag),
	attrs: map[string]attrType{
		"name": attrString, "creation_time": attrNumber, "last_update_time": attrNumber,
	},
	orderBy: map[string]bool{
		"name": true, "creation_time": true, "last_update_time": true, "version_number": true,
	},
}

var versionGrammar = &grammar{
	what:     "model version",
	entities: prefixes(Tag),
	attrs: map[string]attrType{
		"name": attrString, "source_path": attrString, "run_id": attrID,
		"version_number": attrNumber, "creation_time": attrNumber, "last_update_time": attrNumber,
	},
	alias: map[string]string{"version": "version_number"},
}

// MLflow 3's logged-models/search: the attributes of a LoggedModelInfo, with the timestamps under both
// their message names and the run search's *_time names.
var loggedModelGrammar = &grammar{
	what:     "logged model",
	entities: prefixes(Metric, Param, Tag),
	attrs: map[string]attrType{
		"name": attrString, "status": attrString, "model_type": attrString, "model_id": attrID,
		"source_run_id": attrID, "creation_timestamp": attrNumber, "last_updated_timestamp": attrNumber,
	},
	alias: map[string]string{
		"creation_time": "creation_timestamp", "creation_timestamp_ms": "creation_timestamp",
		"last_updated_time": "last_updated_timestamp", "last_updated_timestamp_ms": "last_updated_timestamp",
	},
	orderBy: map[string]bool{
		"name": true, "status": true, "model_type": true, "model_id": true, "source_run_id": true,
		"creation_timestamp": true, "last_updated_timestamp": true,
	},
	orderEnt: map[Entity]bool{Metric: true, Param: true, Tag: true},
}

// ParseRunFilter parses a runs/search filter. Accepted identifiers are
// metrics.<key>, params.<key>, tags.<key> and attributes.<name> (with
// MLflow's alternative prefixes) or a bare attribute name. Metrics take a
// number and the comparators = != < <= > >=; params and tags take a quoted
// string and = != LIKE ILIKE; start_time/end_time are numeric;
// run_id additionally accepts IN / NOT IN with a list.
//
// An empty or all-whitespace filter yields an empty Filter and nil error.
// Any other unparsable or unsupported input yields an error wrapping
// ErrInvalid whose message names the offending token and its byte offset.
func ParseRunFilter(s string) (Filter, error) { return parseFilter(runGrammar, s) }

// ParseExperimentFilter parses an experiments/search filter: name (string
// comparators), creation_time and last_update_time (numeric) and
// tags.<key>. Error contract as for ParseRunFilter.
func ParseExperimentFilter(s string) (Filter, error) { return parseFilter(experimentGrammar, s) }

// ParseModelFilter parses a registered-models/search filter: name (=, !=,
// LIKE, ILIKE), creation_time and last_update_time (numeric) and
// tags.<key>, including the 3.x client's
// "tag.`mlflow.prompt.is_prompt` != 'true'" clause. Error contract as for
// ParseRunFilter.
func ParseModelFilter(s string) (Filter, error) { return parseFilter(modelGrammar, s) }

// ParseVersionFilter parses a model-versions/search filter: name and
// source_path (string comparators), run_id (also IN / NOT IN),
// version_number (numeric; `version` is accepted and normalised to
// version_number), creation_time, last_update_time and tags.<key>. Error
// contract as for ParseRunFilter.
func ParseVersionFilter(s string) (Filter, error) { return parseFilter(versionGrammar, s) }

// ParseLoggedModelFilter parses a logged-models/search filter: metrics, params and tags as in
// ParseRunFilter, and the attributes name, status, model_type (strings), model_id and source_run_id
// (also IN / NOT IN), creation_timestamp and last_updated_timestamp (numeric; creation_time and
// last_updated_time are accepted too). Error contract as for ParseRunFilter.
func ParseLoggedModelFilter(s string) (Filter, error) { return parseFilter(loggedModelGrammar, s) }

// ParseLoggedModelOrderKey parses the field_name of a logged-models/search order_by entry: a metric,
// param, tag or logged-model attribute, as in ParseLoggedModelFilter. The direction is a field of its
// own (ascending), so the key takes none. Errors wrap ErrInvalid.
func ParseLoggedModelOrderKey(field string) (OrderBy, error) {
	obs, err := parseOrderBy(loggedModelGrammar, []string{field})
	if err != nil {
		return OrderBy{}, err
	}
	return obs[0], nil
}

// ParseRunOrderBy parses runs/search order_by clauses of the form
// `<identifier> [ASC|DESC]` (default ASC). Identifiers are metrics, params,
// tags or run attributes, as in ParseRunFilter. A nil or empty slice yields
// nil. Errors wrap ErrInvalid and name the clause index.
func ParseRunOrderBy(clauses []string) ([]OrderBy, error) {
	return parseOrderBy(runGrammar, clauses)
}

// ParseModelOrderBy parses order_by for registered-models/search (and
// experiments/search and model-versions/search): name, creation_time,
// last_update_time or version_number, optionally followed by ASC or DESC.
// Error contract as for ParseRunOrderBy.
func ParseModelOrderBy(clauses []string) ([]OrderBy, error) {
	return parseOrderBy(modelGrammar, clauses)
}

type parser struct {
	g   *grammar
	src string
	pos int
}

func (p *parser) errf(at int, format string, args ...any) error {
	return fmt.Errorf("%w: %s (at position %d, near %q)", ErrInvalid,
		fmt.Sprintf(format, args...), at, near(p.src, at))
}

// near returns the token starting at at, or a short excerpt, so the
// message points at what the user actually wrote.
func near(s string, at int) string {
	if at >= len(s) {
		return "end of input"
	}
	rest := s[at:]
	if isWordByte(rest[0]) || rest[0] == '.' {
		n := 0
		for n < len(rest) && isKeyByte(rest[n]) {
			n++
		}
		return rest[:n]
	}
	const maxExcerpt = 20
	if len(rest) > maxExcerpt {
		return rest[:maxExcerpt]
	}
	return rest
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) {
		switch p.src[p.pos] {
		case ' ', '\t', '\n', '\r', '\f', '\v':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

// word reads [A-Za-z0-9_]+ without consuming anything if there is none.
func (p *parser) peekWord() string {
	i := p.pos
	for i < len(p.src) && isWordByte(p.src[i]) {
		i++
	}
	return p.src[p.pos:i]
}

func parseFilter(g *grammar, s string) (Filter, error) {
	p := &parser{g: g, src: s}
	p.skipSpace()
	if p.eof() {
		return Filter{}, nil
	}
	var f Filter
	for {
		c, err := p.condition()
		if err != nil {
			return nil, err
		}
		f = append(f, c)
		p.skipSpace()
		if p.eof() {
			return f, nil
		}
		at := p.pos
		w := p.peekWord()
		switch strings.ToUpper(w) {
		case "AND":
			p.pos += len(w)
			p.skipSpace()
			if p.eof() {
				return nil, p.errf(p.pos, "expected a clause after AND")
			}
		case "OR":
			return nil, p.errf(at, "search filter contained OR, which is not supported")
		default:
			return nil, p.errf(at, "invalid clause(s) in filter string: expected AND or end of filter")
		}
	}
}

// identifier reads `prefix.key`, `prefix.`quoted key“ or a bare attribute
// name and resolves it against the grammar. It returns the entity, the
// canonical key and, for attributes, the attribute's type.
func (p *parser) identifier() (Entity, string, attrType, error) {
	start := p.pos
	w := p.peekWord()
	if w == "" {
		return 0, "", 0, p.errf(start, "expected an identifier such as %s", p.examples())
	}
	p.pos += len(w)
	if p.eof() || p.src[p.pos] != '.' {
		at, err := p.attribute(w, start)
		return Attribute, p.canonical(w), at, err
	}
	ent, ok := p.g.entities[strings.ToLower(w)]
	if !ok {
		return 0, "", 0, p.errf(start, "invalid entity type '%s'. Valid values are %s", w, p.entityNames())
	}
	p.pos++ // the dot
	keyAt := p.pos
	key, err := p.key()
	if err != nil {
		return 0, "", 0, err
	}
	if ent == Attribute {
		at, err := p.attribute(key, keyAt)
		return Attribute, p.canonical(key), at, err
	}
	return ent, key, 0, nil
}

func (p *parser) key() (string, error) {
	at := p.pos
	if p.eof() {
		return "", p.errf(at, "expected a key after '.'")
	}
	switch q := p.src[at]; q {
	case '`', '"':
		end := strings.IndexByte(p.src[at+1:], q)
		if end < 0 {
			return "", p.errf(at, "unterminated quoted key")
		}
		k := p.src[at+1 : at+1+end]
		if k == "" {
			return "", p.errf(at, "empty key")
		}
		p.pos = at + end + 2
		return k, nil
	}
	for p.pos < len(p.src) && isKeyByte(p.src[p.pos]) {
		p.pos++
	}
	if p.pos == at {
		return "", p.errf(at, "expected a key after '.'; quote keys with special characters in backticks or double quotes")
	}
	return p.src[at:p.pos], nil
}

func (p *parser) canonical(name string) string {
	if c, ok := p.g.alias[name]; ok {
		return c
	}
	return name
}

func (p *parser) attribute(name string, at int) (attrType, error) {
	t, ok := p.g.attrs[p.canonical(name)]
	if !ok {
		return 0, p.errf(at, "invalid attribute key '%s' specified. Valid keys are %s", name, p.attrNames())
	}
	return t, nil
}

func (p *parser) attrNames() string {
	names := make([]string, 0, len(p.g.attrs)+len(p.g.alias))
	for n := range p.g.attrs {
		names = append(names, "'"+n+"'")
	}
	for n := range p.g.alias {
		names = append(names, "'"+n+"'")
	}
	sort.Strings(names)
	return "[" + strings.Join(names, ", ") + "]"
}

func (p *parser) entityNames() string {
	names := make([]string, 0, len(p.g.entities))
	for n := range p.g.entities {
		names = append(names, "'"+n+"'")
	}
	sort.Strings(names)
	return "[" + strings.Join(names, ", ") + "]"
}

func (p *parser) examples() string {
	if p.g.what == "run" {
		return "metrics.<key>, params.<key>, tags.<key> or attributes.<name>"
	}
	return "name or tags.<key>"
}

func (p *parser) comparator() (Comparator, error) {
	at := p.pos
	if p.eof() {
		return "", p.errf(at, "expected a comparator")
	}
	rest := p.src[at:]
	for _, op := range []Comparator{OpNe, OpLe, OpGe, OpEq, OpLt, OpGt} {
		if strings.HasPrefix(rest, string(op)) {
			p.pos += len(op)
			// "==", "<>", "=>" and friends are not MLflow syntax; catching
			// them here gives a clearer message than a bad-value error.
			if !p.eof() && strings.IndexByte("=<>!", p.src[p.pos]) >= 0 {
				return "", p.errf(at, "invalid comparator '%s'", near2(rest))
			}
			return op, nil
		}
	}
	w := p.peekWord()
	switch strings.ToUpper(w) {
	case "LIKE":
		p.pos += len(w)
		return OpLike, nil
	case "ILIKE":
		p.pos += len(w)
		return OpILike, nil
	case "IN":
		p.pos += len(w)
		return OpIn, nil
	case "NOT":
		p.pos += len(w)
		p.skipSpace()
		w2 := p.peekWord()
		if strings.ToUpper(w2) == "IN" {
			p.pos += len(w2)
			return OpNotIn, nil
		}
		return "", p.errf(at, "invalid comparator: only NOT IN is supported after NOT")
	}
	return "", p.errf(at, "invalid comparator; expected one of =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN")
}

func near2(s string) string {
	if len(s) > 2 {
		return s[:2]
	}
	return s
}

func (p *parser) value() (Value, error) {
	at := p.pos
	if p.eof() {
		return Value{}, p.errf(at, "expected a value")
	}
	switch c := p.src[at]; {
	case c == '\'' || c == '"':
		s, err := p.quoted()
		if err != nil {
			return Value{}, err
		}
		return Value{Kind: ValueString, Str: s}, nil
	case c == '(':
		return p.list()
	case c == '-' || c == '+' || c == '.' || c >= '0' && c <= '9':
		return p.number()
	}
	return Value{}, p.errf(at, "expected a quoted string, a number or a list; string values must be quoted")
}

// quoted reads a '…' or "…" string. There are no escapes: MLflow strips
// the surrounding quotes and keeps the rest verbatim, and a value holding
// one kind of quote can use the other.
func (p *parser) quoted() (string, error) {
	at := p.pos
	q := p.src[at]
	end := strings.IndexByte(p.src[at+1:], q)
	if end < 0 {
		return "", p.errf(at, "unterminated string")
	}
	p.pos = at + end + 2
	return p.src[at+1 : at+1+end], nil
}

func (p *parser) number() (Value, error) {
	at := p.pos
	i := at
	digits := func() int {
		n := 0
		for i < len(p.src) && p.src[i] >= '0' && p.src[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if p.src[i] == '-' || p.src[i] == '+' {
		i++
	}
	n := digits()
	if i < len(p.src) && p.src[i] == '.' {
		i++
		n += digits()
	}
	if n == 0 {
		return Value{}, p.errf(at, "malformed number")
	}
	if i < len(p.src) && (p.src[i] == 'e' || p.src[i] == 'E') {
		i++
		if i < len(p.src) && (p.src[i] == '-' || p.src[i] == '+') {
			i++
		}
		if digits() == 0 {
			return Value{}, p.errf(at, "malformed number exponent")
		}
	}
	// A number glued to letters ("1abc", "0x10") is not a number.
	if i < len(p.src) && (isWordByte(p.src[i]) || p.src[i] == '.') {
		return Value{}, p.errf(at, "malformed number")
	}
	lit := p.src[at:i]
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		// Only range errors can reach here (the scan above admits nothing
		// else); ±Inf would not survive a round trip through String().
		return Value{}, p.errf(at, "number out of range")
	}
	p.pos = i
	return Value{Kind: ValueNumber, Str: lit, Num: f}, nil
}

func (p *parser) list() (Value, error) {
	at := p.pos
	p.pos++ // '('
	var items []string
	for {
		p.skipSpace()
		if p.eof() {
			return Value{}, p.errf(at, "unterminated list")
		}
		c := p.src[p.pos]
		if c == ')' && len(items) == 0 {
			return Value{}, p.errf(p.pos, "empty list")
		}
		if c != '\'' && c != '"' {
			return Value{}, p.errf(p.pos, "list items must be quoted strings")
		}
		s, err := p.quoted()
		if err != nil {
			return Value{}, err
		}
		items = append(items, s)
		p.skipSpace()
		if p.eof() {
			return Value{}, p.errf(at, "unterminated list")
		}
		switch p.src[p.pos] {
		case ',':
			p.pos++
		case ')':
			p.pos++
			return Value{Kind: ValueList, List: items}, nil
		default:
			return Value{}, p.errf(p.pos, "expected ',' or ')' in list")
		}
	}
}

var (
	numericOps = []Comparator{OpEq, OpNe, OpLt, OpLe, OpGt, OpGe}
	stringOps  = []Comparator{OpEq, OpNe, OpLike, OpILike}
	idOps      = []Comparator{OpEq, OpNe, OpLike, OpILike, OpIn, OpNotIn}
)

func has(ops []Comparator, op Comparator) bool {
	for _, o := range ops {
		if o == op {
			return true
		}
	}
	return false
}

func opNames(ops []Comparator) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = "'" + string(o) + "'"
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func (p *parser) condition() (Condition, error) {
	ent, key, at, err := p.identifier()
	if err != nil {
		return Condition{}, err
	}
	p.skipSpace()
	opAt := p.pos
	op, err := p.comparator()
	if err != nil {
		return Condition{}, err
	}
	p.skipSpace()
	valAt := p.pos
	val, err := p.value()
	if err != nil {
		return Condition{}, err
	}

	var ops []Comparator
	numeric := false
	var what string
	switch {
	case ent == Metric:
		ops, numeric, what = numericOps, true, "metric"
	case ent == Param || ent == Tag:
		ops = stringOps
		if ent == Param {
			what = "param"
		} else {
			what = "tag"
		}
	case at == attrNumber:
		ops, numeric, what = numericOps, true, "numeric attribute"
	case at == attrID:
		ops, what = idOps, "attribute"
	default:
		ops, what = stringOps, "string attribute"
	}
	if !has(ops, op) {
		return Condition{}, p.errf(opAt, "invalid comparator '%s' for %s '%s'; not one of %s", op, what, key, opNames(ops))
	}
	switch {
	case op == OpIn || op == OpNotIn:
		if val.Kind != ValueList {
			return Condition{}, p.errf(valAt, "%s requires a list of quoted strings such as ('a', 'b')", op)
		}
	case val.Kind == ValueList:
		return Condition{}, p.errf(valAt, "a list value is only allowed with IN and NOT IN")
	case numeric && val.Kind != ValueNumber:
		return Condition{}, p.errf(valAt, "expected numeric value type for %s '%s'", what, key)
	case !numeric && val.Kind != ValueString:
		return Condition{}, p.errf(valAt, "%s value for '%s' is either not quoted or unidentified quote types used for string value", what, key)
	}
	return Condition{Entity: ent, Key: key, Op: op, Value: val}, nil
}

func parseOrderBy(g *grammar, clauses []string) ([]OrderBy, error) {
	if len(clauses) == 0 {
		return nil, nil
	}
	// Sortable attributes differ from filterable ones (version_number is
	// sortable on registered models), so resolve names against the
	// order_by set.
	og := *g
	og.attrs = map[string]attrType{}
	for k := range g.orderBy {
		og.attrs[k] = attrString
	}
	out := make([]OrderBy, 0, len(clauses))
	for i, cl := range clauses {
		o, err := orderClause(&og, cl)
		if err != nil {
			return nil, fmt.Errorf("order_by[%d]: %w", i, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func orderClause(g *grammar, s string) (OrderBy, error) {
	p := &parser{g: g, src: s}
	p.skipSpace()
	if p.eof() {
		return OrderBy{}, p.errf(p.pos, "empty order_by clause")
	}
	identAt := p.pos
	ent, key, _, err := p.identifier()
	if err != nil {
		return OrderBy{}, err
	}
	if ent == Attribute && !g.orderBy[key] || ent != Attribute && !g.orderEnt[ent] {
		return OrderBy{}, p.errf(identAt, "invalid order_by key '%s' for %s search", strings.TrimSpace(s[identAt:p.pos]), g.what)
	}
	o := OrderBy{Entity: ent, Key: key}
	// A direction must be separated from the key; "metrics.accDESC" is a
	// key, not a key plus a direction.
	hadSpace := p.pos
	p.skipSpace()
	if p.eof() {
		return o, nil
	}
	dirAt := p.pos
	w := p.peekWord()
	switch strings.ToUpper(w) {
	case "ASC":
	case "DESC":
		o.Desc = true
	default:
		return OrderBy{}, p.errf(dirAt, "invalid ordering direction; expected ASC or DESC")
	}
	if hadSpace == dirAt {
		return OrderBy{}, p.errf(dirAt, "expected whitespace before the ordering direction")
	}
	p.pos += len(w)
	p.skipSpace()
	if !p.eof() {
		return OrderBy{}, p.errf(p.pos, "unexpected trailing input in order_by clause")
	}
	return o, nil
}
