// Package runquery is the one query engine over candidates (MLflow's runs): MLflow's runs/search and the
// web UI's candidate comparison table both ask it. It evaluates MLflow's filter grammar, orders by any
// attribute, param, tag or metric, pages with opaque tokens, and bounds what one query may cost.
//
// Orderings the store has an index for (none, start_time DESC, one metric) are paged straight from the
// index: without a filter a page costs its own rows, whatever the number of runs. A filter is evaluated
// here on each candidate in index order (a RunData read per candidate when it names params, tags or
// metrics), so a selective filter costs up to a scan; the scan per page is bounded by DefaultScanBudget and a
// page may end short with a token to go on. Every other ordering reads and sorts every matching run on
// each page, at most DefaultSortLimit of them: beyond that the query is refused with a message that says how to
// narrow it, instead of holding an unbounded set in memory.
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
	// DefaultSortLimit bounds the runs one query sorts in memory (orderings the store has no index for).
	DefaultSortLimit = 100000
	// DefaultScanBudget bounds the candidates one filtered page examines in index order. When it is
	// spent the page ends early, possibly short or empty, with a token to go on: MLflow's protocol allows
	// short pages and its client's pagers follow the token.
	DefaultScanBudget = 200000
	// storePage is the page size asked of the store; the bolt store clamps larger pages to 1000.
	storePage = 1000
)

// Query is a validated search over the candidates of some models.
type Query struct {
	// Scope names the surface asking ("runs/search", "ui"), so a token of one is refused by the other.
	Scope  string
	Models []*metadata.Model // the models searched; a model appears once
	View   metadata.ViewType
	Filter mlflowfilter.Filter
	Order  []mlflowfilter.OrderBy // empty: newest start time first
	Limit  int                    // rows per page, > 0
	// NumericParams orders param values that parse as numbers by their value, before the others (the
	// UI's table, where 64 < 128). MLflow's runs/search orders params as strings, as its SQL store does.
	NumericParams bool
	// Attribute gives the sort value of attribute keys the engine does not know (the UI's version
	// column); nil, or ok false, makes the value missing.
	Attribute func(key string, m *metadata.Model, c *metadata.Candidate) (v Value, ok bool)
}

// Row is one candidate of a page with everything needed to show it.
type Row struct {
	Model     *metadata.Model
	Candidate *metadata.Candidate
	Data      *metadata.RunData
}

// Page is one page of results.
type Page struct {
	Rows []Row
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

// indexed reports whether the store's indexes produce order, and the metric order to ask for.
func indexed(order []mlflowfilter.OrderBy) (bool, *metadata.MetricOrder) {
	switch {
	case len(order) == 0:
		return true, nil
	case len(order) == 1 && order[0].Entity == mlflowfilter.Metric:
		return true, &metadata.MetricOrder{Key: order[0].Key, Desc: order[0].Desc}
	case len(order) == 1 && order[0].Entity == mlflowfilter.Attribute && order[0].Key == "start_time" && order[0].Desc:
		return true, nil // the store's default order
	}
	return false, nil
}

// fingerprint identifies q's results and order for its page tokens.
func (q *Query) fingerprint(stored bool) string {
	ids := make([]string, len(q.Models))
	for i, m := range q.Models {
		ids[i] = strconv.FormatUint(m.ID, 10)
	}
	orderKey := make([]string, len(q.Order))
	for i, o := range q.Order {
		orderKey[i] = o.String()
	}
	return pagetoken.Fingerprint(q.Scope, strings.Join(ids, ","), strconv.Itoa(int(q.View)), q.Filter.String(),
		strings.Join(orderKey, "\x01"), strconv.FormatBool(stored), strconv.FormatBool(q.NumericParams))
}

// Search returns the page of q that token (from a previous Page.Next; "" for the first page) points
// at. Errors: httpapi.ErrBadRequest for a token of another query, or an ordering without an index
// over more than the sort limit of matching runs; metadata.ErrInvalid from the store for a bad metric key;
// the store's errors otherwise.
func (e *Engine) Search(ctx context.Context, q Query, token string) (Page, error) {
	stored, metric := indexed(q.Order)
	fp := q.fingerprint(stored)
	tok, err := pagetoken.Parse(token, fp)
	if err != nil {
		return Page{}, err
	}
	if len(q.Models) == 0 {
		return Page{Total: -1}, nil
	}
	s := &search{e: e, q: &q, fp: fp, models: make(map[uint64]*metadata.Model, len(q.Models))}
	for _, m := range q.Models {
		s.models[m.ID] = m
		s.ids = append(s.ids, m.ID)
	}
	for _, c := range q.Filter {
		s.needsData = s.needsData || c.Entity != mlflowfilter.Attribute
	}
	if stored {
		return s.fromIndex(ctx, metric, tok)
	}
	return s.sorted(ctx, tok)
}

// search is one running Search.
type search struct {
	e         *Engine
	q         *Query
	fp        string
	models    map[uint64]*metadata.Model
	ids       []uint64
	needsData bool // the filter reads params, tags or metrics
}

// fromIndex pages through the store's index order, applying the filter here. The store's keyset token
// after the last row returned becomes the next page's position, so pages neither repeat nor skip runs,
// even while runs are added.
func (s *search) fromIndex(ctx context.Context, metric *metadata.MetricOrder, tok pagetoken.Token) (Page, error) {
	out := Page{Total: -1}
	pos := tok.Store
	examined := 0
	for {
		lim := s.q.Limit - len(out.Rows)
		if len(s.q.Filter) > 0 {
			// Some candidates will be filtered out: read bigger store pages than what is left to fill.
			lim = max(lim, 100)
		}
		cq := metadata.CandidateQuery{ModelIDs: s.ids, View: s.q.View, OrderByMetric: metric, Page: metadata.Page{Token: pos, Limit: lim}}
		page, next, err := s.e.Store.SearchCandidates(ctx, cq)
		if err != nil {
			return Page{}, fmt.Errorf("searching runs: %w", err)
		}
		for i, c := range page {
			row, ok, err := s.eval(ctx, c)
			if err != nil {
				return Page{}, err
			}
			if !ok {
				continue
			}
			out.Rows = append(out.Rows, row)
			if len(out.Rows) < s.q.Limit {
				continue
			}
			if i < len(page)-1 {
				// The store page went on past the last row returned: ask for the position right after it.
				cq.Page.Limit = i + 1
				if _, next, err = s.e.Store.SearchCandidates(ctx, cq); err != nil {
					return Page{}, fmt.Errorf("searching runs: %w", err)
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

// eval evaluates the filter on a candidate and, when it matches, returns its row.
func (s *search) eval(ctx context.Context, c *metadata.Candidate) (Row, bool, error) {
	m := s.models[c.ModelID]
	if !MatchesAttributes(s.q.Filter, m, c) {
		return Row{}, false, nil
	}
	data, err := s.e.Store.RunData(ctx, c.ID)
	if err != nil {
		return Row{}, false, fmt.Errorf("run %s: %w", c.EID, err)
	}
	if s.needsData && !MatchesData(s.q.Filter, c, data) {
		return Row{}, false, nil
	}
	return Row{Model: m, Candidate: c, Data: data}, true, nil
}

type sortEntry struct {
	c    *metadata.Candidate
	keys []Value
}

// sorted answers orderings the store has no index for: it reads every candidate the view admits,
// keeps the matching ones with their sort keys, sorts them (the order clauses, then start_time DESC
// unless ordered by start_time, then run_id, as MLflow does) and returns one slice of it.
func (s *search) sorted(ctx context.Context, tok pagetoken.Token) (Page, error) {
	order := slices.Clone(s.q.Order)
	hasStart := false
	for _, o := range order {
		hasStart = hasStart || (o.Entity == mlflowfilter.Attribute && o.Key == "start_time")
	}
	if !hasStart {
		order = append(order, mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "start_time", Desc: true})
	}
	order = append(order, mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "run_id"})
	orderNeedsData := false
	for _, o := range order {
		orderNeedsData = orderNeedsData || o.Entity != mlflowfilter.Attribute
	}

	var entries []sortEntry
	for pos := ""; ; {
		cq := metadata.CandidateQuery{ModelIDs: s.ids, View: s.q.View, Page: metadata.Page{Token: pos, Limit: storePage}}
		page, next, err := s.e.Store.SearchCandidates(ctx, cq)
		if err != nil {
			return Page{}, fmt.Errorf("searching runs: %w", err)
		}
		for _, c := range page {
			m := s.models[c.ModelID]
			if !MatchesAttributes(s.q.Filter, m, c) {
				continue
			}
			var data *metadata.RunData
			if s.needsData || orderNeedsData {
				if data, err = s.e.Store.RunData(ctx, c.ID); err != nil {
					return Page{}, fmt.Errorf("run %s: %w", c.EID, err)
				}
				if s.needsData && !MatchesData(s.q.Filter, c, data) {
					continue
				}
			}
			if len(entries) == s.e.sortLimit() {
				return Page{}, fmt.Errorf("%w: this search would sort more than %d runs in memory; order by a single metric "+
					"(or start_time DESC), which is indexed, or narrow the filter", httpapi.ErrBadRequest, s.e.sortLimit())
			}
			e := sortEntry{c: c, keys: make([]Value, len(order))}
			for i, o := range order {
				e.keys[i] = s.sortKey(o, m, c, data)
			}
			entries = append(entries, e)
		}
		if next == "" {
			break
		}
		pos = next
	}
	slices.SortStableFunc(entries, func(a, b sortEntry) int {
		for i, o := range order {
			if c := compareValues(a.keys[i], b.keys[i], o.Desc); c != 0 {
				return c
			}
		}
		return 0
	})

	start := min(tok.Offset, len(entries))
	end := min(start+s.q.Limit, len(entries))
	out := Page{Offset: start, Total: len(entries)}
	for _, e := range entries[start:end] {
		data, err := s.e.Store.RunData(ctx, e.c.ID)
		if err != nil {
			return Page{}, fmt.Errorf("run %s: %w", e.c.EID, err)
		}
		out.Rows = append(out.Rows, Row{Model: s.models[e.c.ModelID], Candidate: e.c, Data: data})
	}
	if end < len(entries) {
		out.Next = pagetoken.Token{Query: s.fp, Offset: end}.String()
	}
	return out, nil
}

// Value is one sort value of a run. Missing values sort last in both directions; NaN sorts after
// numbers in both directions (MLflow's SQL store and the store's metric index agree on both).
type Value struct {
	rank int // 0 value, 1 NaN, 2 missing
	num  float64
	str  string
}

// Number and Text make sort values for Query.Attribute.
func Number(v float64) Value { return Value{num: v} }
func Text(s string) Value    { return Value{str: s} }

var missing = Value{rank: 2}

func (s *search) sortKey(o mlflowfilter.OrderBy, m *metadata.Model, c *metadata.Candidate, data *metadata.RunData) Value {
	text := func(v string, found bool) Value {
		if !found {
			return missing
		}
		return Value{str: v}
	}
	switch o.Entity {
	case mlflowfilter.Metric:
		v, found := MetricValue(data, o.Key)
		switch {
		case !found:
			return missing
		case math.IsNaN(v):
			return Value{rank: 1}
		}
		return Value{num: v}
	case mlflowfilter.Param:
		v, found := ParamValue(data, o.Key)
		if !found {
			return missing
		}
		if s.q.NumericParams {
			if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsNaN(f) {
				return Value{num: f, str: v}
			}
			return Value{num: math.Inf(1), str: v} // after every number
		}
		return Value{str: v}
	case mlflowfilter.Tag:
		return text(TagValue(c, data, o.Key))
	}
	switch o.Key {
	case "start_time":
		return Value{num: float64(c.StartTime)}
	case "end_time":
		if c.EndTime == 0 {
			return missing
		}
		return Value{num: float64(c.EndTime)}
	case "duration":
		if c.EndTime == 0 {
			return missing
		}
		return Value{num: float64(c.EndTime - c.StartTime)}
	case "run_name":
		return Value{str: c.Name}
	case "status":
		return Value{str: c.Status.String()}
	case "user_id":
		return Value{str: c.UserID}
	case "artifact_uri":
		return Value{str: ArtifactURI(m, c)}
	case "run_id":
		return Value{str: c.EID.String()}
	}
	if s.q.Attribute != nil {
		if v, ok := s.q.Attribute(o.Key, m, c); ok {
			return v
		}
	}
	return missing
}

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
