// Package runquery is the one query engine over the records MLflow searches with its filter grammar:
// runs (candidates) and MLflow 3 logged models. MLflow's runs/search, its logged-models/search and the
// web UI's candidate comparison table all ask it. It evaluates filters, orders by any attribute, param,
// tag or metric, pages with opaque tokens, and bounds what one query may cost.
//
// Orderings the store has an index for (none, one metric; for runs also start_time DESC) are paged
// straight from the index: without a filter a page costs its own rows, whatever the number of records. A
// filter is evaluated here on each record in index order (reading its data only when the filter names
// params, tags or metrics), so a selective filter costs up to a scan; the scan per page is bounded by
// DefaultScanBudget and a page may end short with a token to go on. Every other ordering reads and sorts
// every matching record on each page, at most DefaultSortLimit of them: beyond that the query is refused
// with a message that says how to narrow it, instead of holding an unbounded set in memory.
package runquery

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/internal/pagetoken"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
)

const (
	// DefaultSortLimit bounds the records one query sorts in memory (orderings the store has no index
	// for).
	DefaultSortLimit = 100000
	// DefaultScanBudget bounds the records one filtered page examines in index order. When it is spent
	// the page ends early, possibly short or empty, with a token to go on: MLflow's protocol allows short
	// pages and its client's pagers follow the token.
	DefaultScanBudget = 200000
	// storePage is the page size asked of the store; the bolt store clamps larger pages to 1000.
	storePage = 1000
)

// Query is a validated search over the records of some models.
type Query struct {
	// Scope names the surface asking ("runs/search", "ui"), so a token of one is refused by the other.
	Scope  string
	Models []*metadata.Model // the models searched; a model appears once
	View   metadata.ViewType // runs only; logged models have no lifecycle
	Filter mlflowfilter.Filter
	Order  []mlflowfilter.OrderBy // empty: newest first
	Limit  int                    // rows per page, > 0
	// NumericParams orders param values that parse as numbers by their value, before the others (the
	// UI's table, where 64 < 128). MLflow's searches order params as strings, as its SQL store does.
	NumericParams bool
	// Attribute gives the sort value of run attribute keys the engine does not know (the UI's version
	// column); nil, or ok false, makes the value missing.
	Attribute func(key string, m *metadata.Model, c *metadata.Candidate) (v Value, ok bool)
}

// Page is one page of results.
type Page[R any] struct {
	Rows []R
	Next string // token of the next page; "" on the last
	// Offset and Total locate a page of a query sorted in memory (Total is -1 for index orders, whose
	// size is not known without a scan).
	Offset, Total int
}

// Engine runs queries against a store. It is safe for concurrent use.
type Engine struct {
	Store metadata.Store
	// SortLimit and ScanBudget override DefaultSortLimit and DefaultScanBudget when positive.
	SortLimit, ScanBudget int
}

func (e *Engine) sortLimit() int {
	if e.SortLimit > 0 {
		return e.SortLimit
	}
	return DefaultSortLimit
}

func (e *Engine) scanBudget() int {
	if e.ScanBudget > 0 {
		return e.ScanBudget
	}
	return DefaultScanBudget
}

// source is one kind of record the engine searches. R is the row type its pages hold.
type source[R any] interface {
	// kind names the records in page tokens, so a token of runs never pages logged models.
	kind() string
	// indexed reports whether the store's indexes produce order, and the metric order to ask for.
	indexed(order []mlflowfilter.OrderBy) (ok bool, metric *metadata.MetricOrder)
	// index returns records of the models in index order (nil metric: newest first), with the store's
	// token of the next page.
	index(ctx context.Context, view metadata.ViewType, metric *metadata.MetricOrder, page metadata.Page) ([]R, string, error)
	// complete reads what filters on params, tags or metrics, orderings and results need.
	complete(ctx context.Context, r R) (R, error)
	// strip drops what complete or prefetch added to r.
	strip(r R) R
	// prefetch completes the records rs points at in one call when the store is a metadata.BulkReader,
	// and does nothing otherwise. Records it leaves incomplete (none found by the bulk read) are
	// completed one by one, so that their errors are complete's.
	prefetch(ctx context.Context, rs []*R) error
	// field is the value of a filter or order key; found is false when the record lacks it. Attributes
	// that are numbers come as Number values.
	field(r R, entity mlflowfilter.Entity, key string) (v Value, found bool)
	// tieBreak is the order that settles ties after the query's own clauses.
	tieBreak(order []mlflowfilter.OrderBy) []mlflowfilter.OrderBy
}

// fingerprint identifies q's results and order for its page tokens.
func (q *Query) fingerprint(kind string, stored bool, extra string) string {
	ids := make([]string, len(q.Models))
	for i, m := range q.Models {
		ids[i] = strconv.FormatUint(m.ID, 10)
	}
	orderKey := make([]string, len(q.Order))
	for i, o := range q.Order {
		orderKey[i] = o.String()
	}
	return pagetoken.Fingerprint(kind, q.Scope, strings.Join(ids, ","), strconv.Itoa(int(q.View)), q.Filter.String(),
		strings.Join(orderKey, "\x01"), strconv.FormatBool(stored), strconv.FormatBool(q.NumericParams), extra)
}

// search runs q over src from the page token points at. Errors: httpapi.ErrBadRequest for a token of
// another query, or an ordering without an index over more than the sort limit of matching records;
// metadata.ErrInvalid from the store for a bad metric key; the store's errors otherwise.
func search[R any](ctx context.Context, e *Engine, src source[R], q Query, extra, token string) (Page[R], error) {
	stored, metric := src.indexed(q.Order)
	fp := q.fingerprint(src.kind(), stored, extra)
	tok, err := pagetoken.Parse(token, fp)
	if err != nil {
		return Page[R]{}, err
	}
	if len(q.Models) == 0 {
		return Page[R]{Total: -1}, nil
	}
	s := &searcher[R]{e: e, src: src, q: &q, fp: fp}
	for _, c := range q.Filter {
		if c.Entity == mlflowfilter.Attribute {
			s.attrFilter = append(s.attrFilter, c)
		} else {
			s.dataFilter = append(s.dataFilter, c)
		}
	}
	if stored {
		return s.fromIndex(ctx, metric, tok)
	}
	return s.sorted(ctx, tok)
}

// searcher is one running search.
type searcher[R any] struct {
	e          *Engine
	src        source[R]
	q          *Query
	fp         string
	attrFilter mlflowfilter.Filter // clauses on attributes, evaluated before the record's data is read
	dataFilter mlflowfilter.Filter // clauses on params, tags and metrics
}

// matches evaluates clauses on r. A record without a metric never matches a metric clause (MLflow
// compares the latest value in SQL, where a missing row matches nothing); one without a param or tag
// matches only the negative comparators (section 9.2 of the MLflow contract); an attribute the record
// lacks (a run's unset end_time, SQL's NULL) matches nothing.
func (s *searcher[R]) matches(f mlflowfilter.Filter, r R) bool {
	for _, cond := range f {
		v, found := s.src.field(r, cond.Entity, cond.Key)
		var ok bool
		switch {
		case cond.Entity == mlflowfilter.Param || cond.Entity == mlflowfilter.Tag:
			ok = MatchOptionalString(cond, v.str, found)
		case !found:
			ok = false
		case v.numeric:
			ok = cond.MatchNumber(v.num)
		default:
			ok = cond.MatchString(v.str)
		}
		if !ok {
			return false
		}
	}
	return true
}

// eval evaluates the filter on a record and, when it matches, returns it completed.
func (s *searcher[R]) eval(ctx context.Context, r R) (R, bool, error) {
	if !s.matches(s.attrFilter, r) {
		return r, false, nil
	}
	r, err := s.src.complete(ctx, r)
	if err != nil {
		return r, false, err
	}
	return r, s.matches(s.dataFilter, r), nil
}

// readAhead prefetches the data of the next need rows of page, from index from on, that pass the
// attribute filter: those eval completes next if each of them matches. It reads no more than a page could
// still use, so a store without bulk reads (or a filter that rejects few rows) costs what eval would, and
// a bulk-reading store pays one call where eval would pay one per row. It returns the index after the
// last row offered.
func (s *searcher[R]) readAhead(ctx context.Context, page []R, from, need int) (int, error) {
	var rs []*R
	i := from
	for ; i < len(page) && len(rs) < need; i++ {
		if s.matches(s.attrFilter, page[i]) {
			rs = append(rs, &page[i])
		}
	}
	if len(rs) > 0 {
		if err := s.src.prefetch(ctx, rs); err != nil {
			return i, err
		}
	}
	return i, nil
}

// fromIndex pages through the store's index order, applying the filter here. The store's keyset token
// after the last row returned becomes the next page's position, so pages neither repeat nor skip
// records, even while records are added.
func (s *searcher[R]) fromIndex(ctx context.Context, metric *metadata.MetricOrder, tok pagetoken.Token) (Page[R], error) {
	out := Page[R]{Total: -1}
	pos := tok.Store
	examined := 0
	for {
		lim := s.q.Limit - len(out.Rows)
		if len(s.q.Filter) > 0 {
			// Some records will be filtered out: read bigger store pages than what is left to fill.
			lim = max(lim, 100)
		}
		page, next, err := s.src.index(ctx, s.q.View, metric, metadata.Page{Token: pos, Limit: lim})
		if err != nil {
			return Page[R]{}, err
		}
		ahead := 0 // rows of page before this index have been offered to prefetch
		for i := range page {
			if i >= ahead {
				if ahead, err = s.readAhead(ctx, page, i, s.q.Limit-len(out.Rows)); err != nil {
					return Page[R]{}, err
				}
			}
			r, ok, err := s.eval(ctx, page[i])
			if err != nil {
				return Page[R]{}, err
			}
			if !ok {
				continue
			}
			out.Rows = append(out.Rows, r)
			if len(out.Rows) < s.q.Limit {
				continue
			}
			if i < len(page)-1 {
				// The store page went on past the last row returned: ask for the position right after it.
				if _, next, err = s.src.index(ctx, s.q.View, metric, metadata.Page{Token: pos, Limit: i + 1}); err != nil {
					return Page[R]{}, err
				}
			}
			if next != "" {
				out.Next = pagetoken.Token{Query: s.fp, Store: next}.String()
			}
			return out, nil
		}
		examined += len(page)
		if next == "" {
			return out, nil
		}
		pos = next
		if examined >= s.e.scanBudget() {
			out.Next = pagetoken.Token{Query: s.fp, Store: next}.String()
			return out, nil
		}
	}
}

type sortEntry[R any] struct {
	r    R
	keys []Value
}

// sorted answers orderings the store has no index for: it reads every record, keeps the matching ones
// with their sort keys, sorts them (the order clauses, then the source's tie break) and returns one
// slice of it. A record's data is read only when the filter or the order needs it, and not kept: the
// rows of the page returned are completed at the end, so memory holds sort keys, not run data.
func (s *searcher[R]) sorted(ctx context.Context, tok pagetoken.Token) (Page[R], error) {
	order := s.src.tieBreak(slices.Clone(s.q.Order))
	needData := len(s.dataFilter) > 0
	for _, o := range order {
		needData = needData || o.Entity != mlflowfilter.Attribute
	}
	var entries []sortEntry[R]
	for pos := ""; ; {
		page, next, err := s.src.index(ctx, s.q.View, nil, metadata.Page{Token: pos, Limit: storePage})
		if err != nil {
			return Page[R]{}, err
		}
		if needData {
			// Every row passing the attribute filter is completed below: read them in one call.
			if _, err := s.readAhead(ctx, page, 0, len(page)); err != nil {
				return Page[R]{}, err
			}
		}
		for _, r := range page {
			if !s.matches(s.attrFilter, r) {
				continue
			}
			full := r
			if needData {
				if full, err = s.src.complete(ctx, r); err != nil {
					return Page[R]{}, err
				}
				if !s.matches(s.dataFilter, full) {
					continue
				}
			}
			if len(entries) == s.e.sortLimit() {
				return Page[R]{}, fmt.Errorf("%w: this search would sort more than %d records in memory; order by a single metric "+
					"(or the default order), which is indexed, or narrow the filter", httpapi.ErrBadRequest, s.e.sortLimit())
			}
			// The entry keeps r as the index gave it (a prefetched one with its data: drop that too, so
			// that memory holds sort keys, not data).
			e := sortEntry[R]{r: s.src.strip(r), keys: make([]Value, len(order))}
			for i, o := range order {
				e.keys[i] = s.sortKey(o, full)
			}
			entries = append(entries, e)
		}
		if next == "" {
			break
		}
		pos = next
	}
	slices.SortStableFunc(entries, func(a, b sortEntry[R]) int {
		for i, o := range order {
			if c := compareValues(a.keys[i], b.keys[i], o.Desc); c != 0 {
				return c
			}
		}
		return 0
	})

	start := min(tok.Offset, len(entries))
	end := min(start+s.q.Limit, len(entries))
	out := Page[R]{Offset: start, Total: len(entries)}
	rows := make([]R, 0, end-start)
	for _, e := range entries[start:end] {
		rows = append(rows, e.r)
	}
	// These rows passed the filter already: no attribute filter to apply again, all are needed.
	rs := make([]*R, len(rows))
	for i := range rows {
		rs[i] = &rows[i]
	}
	if len(rs) > 0 {
		if err := s.src.prefetch(ctx, rs); err != nil {
			return Page[R]{}, err
		}
	}
	for _, r := range rows {
		r, err := s.src.complete(ctx, r)
		if err != nil {
			return Page[R]{}, err
		}
		out.Rows = append(out.Rows, r)
	}
	if end < len(entries) {
		out.Next = pagetoken.Token{Query: s.fp, Offset: end}.String()
	}
	return out, nil
}

func (s *searcher[R]) sortKey(o mlflowfilter.OrderBy, r R) Value {
	v, found := s.src.field(r, o.Entity, o.Key)
	switch {
	case !found:
		return missing
	case o.Entity == mlflowfilter.Param && s.q.NumericParams:
		if f, err := strconv.ParseFloat(v.str, 64); err == nil && !math.IsNaN(f) {
			return Value{numeric: true, num: f, str: v.str}
		}
		return Value{num: math.Inf(1), str: v.str} // after every number
	}
	return v
}

// Value is one filter or sort value of a record. Missing values sort last in both directions; NaN
// sorts after numbers in both directions (MLflow's SQL store and the store's metric index agree on both).
type Value struct {
	rank    int // 0 value, 1 NaN, 2 missing
	numeric bool
	num     float64
	str     string
}

// Number and Text make values.
func Number(v float64) Value {
	if math.IsNaN(v) {
		return Value{rank: 1, numeric: true, num: v}
	}
	return Value{numeric: true, num: v}
}

// Text is a string value.
func Text(s string) Value { return Value{str: s} }

var missing = Value{rank: 2}

func compareValues(a, b Value, desc bool) int {
	if a.rank != b.rank || a.rank != 0 {
		return cmp.Compare(a.rank, b.rank) // NaN and missing stay last in both directions
	}
	c := cmp.Compare(a.num, b.num)
	if c == 0 {
		c = strings.Compare(a.str, b.str)
	}
	if desc {
		c = -c
	}
	return c
}
