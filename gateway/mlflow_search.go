package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
)

// Search limits. MLflow's server rejects max_results above SEARCH_MAX_RESULTS_THRESHOLD (50000) for
// both searches with INVALID_PARAMETER_VALUE; mlgate does the same, so a script that works against mlgate
// works against MLflow. Unset (or 0, which a proto3 client may send for "unset") means the client's
// default, 1000.
const (
	searchDefaultMaxResults = 1000
	searchMaxResults        = 50000
	// searchStorePage is the page size asked of the store; the bolt store clamps larger pages to 1000.
	searchStorePage = 1000
	// searchSortLimit bounds the runs one runs/search sorts in memory (orderings the store has no index
	// for). Beyond it the search is refused with a 400 that says how to narrow it, instead of holding an
	// unbounded set in memory.
	searchSortLimit = 100000
	// searchScanBudget bounds the candidates one filtered runs/search page examines in store order. When
	// it is spent the page ends early, possibly short or empty, with a next_page_token to go on: the
	// protocol allows short pages and the client's pagers follow the token.
	searchScanBudget = 200000
)

// searchRPCs serves experiments/search and runs/search.
func (s *Server) searchRPCs() []mlflowRPC {
	return []mlflowRPC{
		{http.MethodGet, "experiments/search", false, s.searchExperiments},
		{http.MethodPost, "experiments/search", false, s.searchExperiments},
		{http.MethodPost, "runs/search", false, s.searchRuns},
	}
}

// searchMaxResultsOf validates max_results: unset or 0 is the default, negative or above 50000 is
// ErrBadRequest (MLflow's wording).
func searchMaxResultsOf(v i64) (int, error) {
	switch {
	case !v.Set || v.V == 0:
		return searchDefaultMaxResults, nil
	case v.V < 0:
		return 0, fmt.Errorf("%w: invalid value %d for parameter 'max_results': it must be a positive integer", ErrBadRequest, v.V)
	case v.V > searchMaxResults:
		return 0, fmt.Errorf("%w: invalid value for request parameter max_results: it must be at most %d, but got value %d",
			ErrBadRequest, searchMaxResults, v.V)
	}
	return int(v.V), nil
}

// searchViewTypeOf parses MLflow's ViewType, by name or by proto number; empty is ACTIVE_ONLY. Anything
// else is ErrBadRequest naming field.
func searchViewTypeOf(field string, v flexString) (metadata.ViewType, error) {
	switch strings.ToUpper(strings.TrimSpace(string(v))) {
	case "", "ACTIVE_ONLY", "1":
		return metadata.ActiveOnly, nil
	case "DELETED_ONLY", "2":
		return metadata.DeletedOnly, nil
	case "ALL", "3":
		return metadata.AllLifecycles, nil
	}
	return 0, fmt.Errorf("%w: invalid value %q for parameter '%s': expected ACTIVE_ONLY, DELETED_ONLY or ALL",
		ErrBadRequest, string(v), field)
}

func searchViewAdmits(v metadata.ViewType, l metadata.Lifecycle) bool {
	switch v {
	case metadata.ActiveOnly:
		return l == metadata.Active
	case metadata.DeletedOnly:
		return l == metadata.Deleted
	}
	return true
}

// searchToken is the state behind an opaque page_token: a fingerprint of the query it belongs to, and
// either the store's own keyset token (store-ordered searches) or an offset (searches sorted here).
type searchToken struct {
	Query  string `json:"q"`
	Store  string `json:"s,omitempty"`
	Offset int    `json:"o,omitempty"`
}

// searchFingerprint hashes the parts of a query that decide its order and its result set; max_results
// is left out, so a client may change the page size between pages as MLflow allows.
func searchFingerprint(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:12])
}

func (t searchToken) encode() string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeSearchToken reads a page_token of the query with fingerprint fp; "" is the first page. A token
// that does not decode, or that belongs to another query, is ErrBadRequest.
func decodeSearchToken(tok, fp string) (searchToken, error) {
	if tok == "" {
		return searchToken{Query: fp}, nil
	}
	var t searchToken
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(tok, "="))
	if err == nil {
		err = json.Unmarshal(raw, &t)
	}
	if err != nil || t.Query != fp || t.Offset < 0 {
		return t, fmt.Errorf("%w: invalid page_token %.40q: it does not belong to this search (was the filter, order_by, "+
			"view type or experiment list changed between pages?)", ErrBadRequest, tok)
	}
	return t, nil
}

// ---------------------------------------------------------------------------------------------------
// experiments/search

// experimentOrder is one experiments/search ordering clause.
type experimentOrder struct {
	key  string // name, creation_time, last_update_time, experiment_id
	desc bool
}

// parseExperimentOrder parses experiments/search order_by. MLflow accepts name, creation_time,
// last_update_time and experiment_id; the default is "creation_time DESC, experiment_id ASC", and
// experiment_id DESC breaks ties when the client's clauses do not mention it (as MLflow's stores do).
// A bad clause is ErrBadRequest.
func parseExperimentOrder(clauses []string) ([]experimentOrder, error) {
	if len(clauses) == 0 {
		return []experimentOrder{{key: "creation_time", desc: true}, {key: "experiment_id"}}, nil
	}
	var out []experimentOrder
	hasID := false
	for i, cl := range clauses {
		o, err := parseExperimentOrderClause(cl)
		if err != nil {
			return nil, fmt.Errorf("%w: order_by[%d]: %w", ErrBadRequest, i, err)
		}
		hasID = hasID || o.key == "experiment_id"
		out = append(out, o)
	}
	if !hasID {
		out = append(out, experimentOrder{key: "experiment_id", desc: true})
	}
	return out, nil
}

func parseExperimentOrderClause(cl string) (experimentOrder, error) {
	// mlflowfilter has no experiment order_by grammar; the registered-model one differs only by
	// version_number (not an experiment field) and experiment_id (handled here).
	fields := strings.Fields(cl)
	if len(fields) > 0 {
		key := fields[0]
		for _, p := range []string{"attributes.", "attribute.", "attr."} {
			if len(key) > len(p) && strings.EqualFold(key[:len(p)], p) {
				key = key[len(p):]
			}
		}
		if key == "experiment_id" {
			o := experimentOrder{key: key}
			switch {
			case len(fields) == 1:
			case len(fields) == 2 && strings.EqualFold(fields[1], "ASC"):
			case len(fields) == 2 && strings.EqualFold(fields[1], "DESC"):
				o.desc = true
			default:
				return o, fmt.Errorf("invalid order_by clause %q: expected '<key> [ASC|DESC]'", cl)
			}
			return o, nil
		}
	}
	obs, err := mlflowfilter.ParseModelOrderBy([]string{cl})
	if err != nil {
		return experimentOrder{}, err
	}
	if obs[0].Entity != mlflowfilter.Attribute || obs[0].Key == "version_number" {
		return experimentOrder{}, fmt.Errorf("invalid order_by key %q for experiment search: valid keys are name, "+
			"creation_time, last_update_time and experiment_id", strings.TrimSpace(cl))
	}
	return experimentOrder{key: obs[0].Key, desc: obs[0].Desc}, nil
}

func compareExperiments(a, b *metadata.Model, order []experimentOrder) int {
	for _, o := range order {
		var c int
		switch o.key {
		case "name":
			c = strings.Compare(a.DisplayName, b.DisplayName)
		case "creation_time":
			c = cmp.Compare(a.CreatedAt.UnixMilli(), b.CreatedAt.UnixMilli())
		case "last_update_time":
			c = cmp.Compare(a.UpdatedAt.UnixMilli(), b.UpdatedAt.UnixMilli())
		case "experiment_id":
			c = cmp.Compare(a.IID, b.IID)
		}
		if o.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

// experimentMatches evaluates an experiments/search filter on a model. Tags include the synthetic
// mlgate.name; a clause on an absent tag matches only != and NOT IN, as section 9.2 requires.
func experimentMatches(f mlflowfilter.Filter, m *metadata.Model) bool {
	for _, c := range f {
		var ok bool
		switch c.Entity {
		case mlflowfilter.Attribute:
			switch c.Key {
			case "name":
				ok = c.MatchString(m.DisplayName)
			case "creation_time":
				ok = c.MatchNumber(float64(m.CreatedAt.UnixMilli()))
			case "last_update_time":
				ok = c.MatchNumber(float64(m.UpdatedAt.UnixMilli()))
			}
		case mlflowfilter.Tag:
			v, found := m.Name, c.Key == "mlgate.name"
			if !found {
				v, found = searchTagValue(m.Tags, c.Key)
			}
			ok = searchMatchOptionalString(c, v, found)
		}
		if !ok {
			return false
		}
	}
	return true
}

// searchMatchOptionalString evaluates a string clause on a key the entity may lack: a missing key
// matches only the negative comparators.
func searchMatchOptionalString(c mlflowfilter.Condition, v string, found bool) bool {
	if !found {
		return c.Op == mlflowfilter.OpNe || c.Op == mlflowfilter.OpNotIn
	}
	return c.MatchString(v)
}

func searchTagValue(tags []metadata.Tag, key string) (string, bool) {
	for _, t := range tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// searchExperiments lists the project's models (every model is an experiment; the default model "0"
// only once it exists) that view_type and filter admit, in order_by order, max_results at a time.
// Projects hold few models, so it reads them all and pages by offset. Bad filter, order_by, view_type,
// max_results or page_token → ErrBadRequest. Answers {} when nothing matches.
func (s *Server) searchExperiments(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		MaxResults i64        `json:"max_results"`
		PageToken  string     `json:"page_token"`
		Filter     string     `json:"filter"`
		OrderBy    strs       `json:"order_by"`
		ViewType   flexString `json:"view_type"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	limit, err := searchMaxResultsOf(in.MaxResults)
	if err != nil {
		return nil, err
	}
	view, err := searchViewTypeOf("view_type", in.ViewType)
	if err != nil {
		return nil, err
	}
	filter, err := mlflowfilter.ParseExperimentFilter(in.Filter)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid filter: %w", ErrBadRequest, err)
	}
	order, err := parseExperimentOrder(in.OrderBy)
	if err != nil {
		return nil, err
	}
	orderKey := make([]string, len(order))
	for i, o := range order {
		orderKey[i] = fmt.Sprintf("%s/%t", o.key, o.desc)
	}
	fp := searchFingerprint("experiments", strconv.Itoa(int(view)), filter.String(), strings.Join(orderKey, ","))
	tok, err := decodeSearchToken(in.PageToken, fp)
	if err != nil {
		return nil, err
	}

	var all []*metadata.Model
	for storeTok := ""; ; {
		page, next, err := s.store.ListModels(ctx, req.project.ID, metadata.Page{Token: storeTok, Limit: searchStorePage})
		if err != nil {
			return nil, fmt.Errorf("listing experiments: %w", err)
		}
		for _, m := range page {
			if searchViewAdmits(view, m.Lifecycle) && experimentMatches(filter, m) {
				all = append(all, m)
			}
		}
		if next == "" {
			break
		}
		storeTok = next
	}
	slices.SortStableFunc(all, func(a, b *metadata.Model) int { return compareExperiments(a, b, order) })

	out := struct {
		Experiments   []experimentJSON `json:"experiments,omitempty"`
		NextPageToken string           `json:"next_page_token,omitempty"`
	}{}
	start := min(tok.Offset, len(all))
	end := min(start+limit, len(all))
	for _, m := range all[start:end] {
		out.Experiments = append(out.Experiments, toExperiment(m))
	}
	if end < len(all) {
		out.NextPageToken = searchToken{Query: fp, Offset: end}.encode()
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------------------
// runs/search

// runSearch is a validated runs/search query.
type runSearch struct {
	models    map[uint64]*metadata.Model
	ids       []uint64
	view      metadata.ViewType
	filter    mlflowfilter.Filter
	order     []mlflowfilter.OrderBy
	limit     int
	needsData bool                  // the filter reads params, tags or metrics
	metric    *metadata.MetricOrder // store-ordered searches: the store's metric order (nil: newest first)
	stored    bool                  // the order is one the store's indexes produce
}

type searchRunsResponse struct {
	Runs          []runJSON `json:"runs,omitempty"`
	NextPageToken string    `json:"next_page_token,omitempty"`
}

// searchRuns answers runs/search. Unknown experiment ids contribute no runs (as in MLflow's SQL store);
// "0" is the default model when it exists. Bad ids, filter, order_by, view type, max_results (above
// 50000) or page_token → ErrBadRequest; an ordering the store has no index for over more than 100000
// matching runs → ErrBadRequest. Answers {} when nothing matches.
//
// Orderings by nothing, by start_time DESC, or by one metric come straight from the store's indexes:
// without a filter a page costs max_results candidate reads, whatever the number of runs. A filter is
// evaluated here on each candidate in index order (a RunData read per candidate when it names params,
// tags or metrics), so a selective filter costs up to a scan of the experiments. Other orderings (params,
// tags, attributes, several clauses) read and sort every matching run on each page.
func (s *Server) searchRuns(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		ExperimentIDs strs       `json:"experiment_ids"`
		Filter        string     `json:"filter"`
		RunViewType   flexString `json:"run_view_type"`
		MaxResults    i64        `json:"max_results"`
		OrderBy       strs       `json:"order_by"`
		PageToken     string     `json:"page_token"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	q := &runSearch{models: map[uint64]*metadata.Model{}}
	var err error
	if q.limit, err = searchMaxResultsOf(in.MaxResults); err != nil {
		return nil, err
	}
	if q.view, err = searchViewTypeOf("run_view_type", in.RunViewType); err != nil {
		return nil, err
	}
	if q.filter, err = mlflowfilter.ParseRunFilter(in.Filter); err != nil {
		return nil, fmt.Errorf("%w: invalid filter: %w", ErrBadRequest, err)
	}
	if q.order, err = mlflowfilter.ParseRunOrderBy(in.OrderBy); err != nil {
		return nil, fmt.Errorf("%w: invalid order_by: %w", ErrBadRequest, err)
	}
	for _, c := range q.filter {
		q.needsData = q.needsData || c.Entity != mlflowfilter.Attribute
	}
	switch {
	case len(q.order) == 0:
		q.stored = true
	case len(q.order) == 1 && q.order[0].Entity == mlflowfilter.Metric:
		q.stored = true
		q.metric = &metadata.MetricOrder{Key: q.order[0].Key, Desc: q.order[0].Desc}
	case len(q.order) == 1 && q.order[0].Entity == mlflowfilter.Attribute && q.order[0].Key == "start_time" && q.order[0].Desc:
		q.stored = true // the store's default order
	}
	iids, err := s.searchRunModels(ctx, req, in.ExperimentIDs, q)
	if err != nil {
		return nil, err
	}

	orderKey := make([]string, len(q.order))
	for i, o := range q.order {
		orderKey[i] = o.String()
	}
	fp := searchFingerprint("runs", iids, strconv.Itoa(int(q.view)), q.filter.String(),
		strings.Join(orderKey, "\x01"), strconv.FormatBool(q.stored))
	tok, err := decodeSearchToken(in.PageToken, fp)
	if err != nil {
		return nil, err
	}
	if len(q.ids) == 0 {
		return searchRunsResponse{}, nil
	}
	if q.stored {
		return s.searchRunsStored(ctx, q, fp, tok)
	}
	return s.searchRunsSorted(ctx, q, fp, tok)
}

// searchRunModels resolves experiment_ids into q.models and q.ids and returns the canonical id list for
// the query fingerprint. Ids that are not non-negative integers are ErrBadRequest; unknown ones are
// skipped. "0" is the default model only if it exists: a search does not create it.
func (s *Server) searchRunModels(ctx context.Context, req *mlflowRequest, ids []string, q *runSearch) (string, error) {
	var iids []int64
	for _, id := range ids {
		iid, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if err != nil || iid < 0 {
			return "", fmt.Errorf("%w: experiment_ids: %q is not a valid experiment id", ErrBadRequest, id)
		}
		iids = append(iids, iid)
	}
	slices.Sort(iids)
	iids = slices.Compact(iids)
	canon := make([]string, len(iids))
	for i, iid := range iids {
		canon[i] = strconv.FormatInt(iid, 10)
		var m *metadata.Model
		if iid == 0 {
			// The store resolves no model by iid 0; models list in iid order, so it would come first.
			first, _, err := s.store.ListModels(ctx, req.project.ID, metadata.Page{Limit: 1})
			if err != nil {
				return "", fmt.Errorf("experiment 0: %w", err)
			}
			if len(first) == 0 || first[0].IID != 0 {
				continue
			}
			m = first[0]
		} else {
			var err error
			m, err = s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, IID: iid})
			if errors.Is(err, metadata.ErrNotFound) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("experiment %d: %w", iid, err)
			}
		}
		q.models[m.ID] = m
		q.ids = append(q.ids, m.ID)
	}
	return strings.Join(canon, ","), nil
}

// searchRunsStored pages through the store's index order, applying the filter here. The store's keyset
// token after the last run returned becomes the next page's position, so pages neither repeat nor skip
// runs, even while runs are added.
func (s *Server) searchRunsStored(ctx context.Context, q *runSearch, fp string, tok searchToken) (any, error) {
	var out searchRunsResponse
	pos := tok.Store
	examined := 0
	for {
		lim := q.limit - len(out.Runs)
		if len(q.filter) > 0 {
			// Some candidates will be filtered out: read bigger store pages than what is left to fill.
			lim = max(lim, 100)
		}
		cq := metadata.CandidateQuery{ModelIDs: q.ids, View: q.view, OrderByMetric: q.metric, Page: metadata.Page{Token: pos, Limit: lim}}
		page, next, err := s.store.SearchCandidates(ctx, cq)
		if err != nil {
			return nil, fmt.Errorf("searching runs: %w", err)
		}
		for i, c := range page {
			run, ok, err := s.searchRunEval(ctx, q, c)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			out.Runs = append(out.Runs, run)
			if len(out.Runs) < q.limit {
				continue
			}
			if i < len(page)-1 {
				// The store page went on past the last run returned: ask for the position right after it.
				cq.Page.Limit = i + 1
				if _, next, err = s.store.SearchCandidates(ctx, cq); err != nil {
					return nil, fmt.Errorf("searching runs: %w", err)
				}
			}
			if next != "" {
				out.NextPageToken = searchToken{Query: fp, Store: next}.encode()
			}
			return out, nil
		}
		examined += len(page)
		if next == "" {
			return out, nil
		}
		pos = next
		if examined >= searchScanBudget {
			out.NextPageToken = searchToken{Query: fp, Store: next}.encode()
			return out, nil
		}
	}
}

// searchRunEval evaluates the filter on a candidate and, when it matches, builds its Run message.
func (s *Server) searchRunEval(ctx context.Context, q *runSearch, c *metadata.Candidate) (runJSON, bool, error) {
	m := q.models[c.ModelID]
	if !runMatchesAttributes(q.filter, m, c) {
		return runJSON{}, false, nil
	}
	data, err := s.store.RunData(ctx, c.ID)
	if err != nil {
		return runJSON{}, false, fmt.Errorf("run %s: %w", c.EID, err)
	}
	if q.needsData && !runMatchesData(q.filter, c, data) {
		return runJSON{}, false, nil
	}
	return toRun(m, c, data), true, nil
}

// runMatchesAttributes evaluates the filter's attribute clauses, which need no RunData read.
func runMatchesAttributes(f mlflowfilter.Filter, m *metadata.Model, c *metadata.Candidate) bool {
	for _, cond := range f {
		if cond.Entity != mlflowfilter.Attribute {
			continue
		}
		var ok bool
		switch cond.Key {
		case "run_name":
			ok = cond.MatchString(c.Name)
		case "status":
			ok = cond.MatchString(c.Status.String())
		case "user_id":
			ok = cond.MatchString(c.UserID)
		case "artifact_uri":
			ok = cond.MatchString(runArtifactURI(m, c))
		case "run_id":
			ok = cond.MatchString(c.EID.String())
		case "start_time":
			ok = cond.MatchNumber(float64(c.StartTime))
		case "end_time":
			// An unset end_time is SQL NULL in MLflow: no comparison matches it.
			ok = c.EndTime != 0 && cond.MatchNumber(float64(c.EndTime))
		}
		if !ok {
			return false
		}
	}
	return true
}

// runMatchesData evaluates the filter's metric, param and tag clauses. A run without the metric never
// matches a metric clause (MLflow compares the latest value in SQL, where a missing row matches
// nothing); a run without the param or tag matches only != (section 9.2).
func runMatchesData(f mlflowfilter.Filter, c *metadata.Candidate, data *metadata.RunData) bool {
	for _, cond := range f {
		var ok bool
		switch cond.Entity {
		case mlflowfilter.Attribute:
			continue
		case mlflowfilter.Metric:
			v, found := runMetricValue(data, cond.Key)
			ok = found && cond.MatchNumber(v)
		case mlflowfilter.Param:
			v, found := runParamValue(data, cond.Key)
			ok = searchMatchOptionalString(cond, v, found)
		case mlflowfilter.Tag:
			v, found := runTagValue(c, data, cond.Key)
			ok = searchMatchOptionalString(cond, v, found)
		}
		if !ok {
			return false
		}
	}
	return true
}

// RunData lists are sorted by key, so lookups are binary searches.

func runMetricValue(data *metadata.RunData, key string) (float64, bool) {
	i, ok := slices.BinarySearchFunc(data.Metrics, key, func(m metadata.Metric, k string) int { return strings.Compare(m.Key, k) })
	if !ok {
		return 0, false
	}
	return data.Metrics[i].Value, true
}

func runParamValue(data *metadata.RunData, key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(data.Params, key, func(p metadata.Param, k string) int { return strings.Compare(p.Key, k) })
	if !ok {
		return "", false
	}
	return data.Params[i].Value, true
}

// runTagValue includes the synthetic tag mlgate.candidate_iid that runs/get shows.
func runTagValue(c *metadata.Candidate, data *metadata.RunData, key string) (string, bool) {
	if key == "mlgate.candidate_iid" {
		return strconv.FormatInt(c.IID, 10), true
	}
	i, ok := slices.BinarySearchFunc(data.Tags, key, func(t metadata.Tag, k string) int { return strings.Compare(t.Key, k) })
	if !ok {
		return "", false
	}
	return data.Tags[i].Value, true
}

// runSortValue is one order_by value of a run. Missing values sort last in both directions; NaN sorts
// after numbers in both directions (MLflow's SQL store and the store's metric index agree on both).
type runSortValue struct {
	rank int // 0 value, 1 NaN, 2 missing
	num  float64
	str  string
}

type runSortEntry struct {
	c    *metadata.Candidate
	keys []runSortValue
}

// searchRunsSorted answers orderings the store has no index for: it reads every candidate the view
// admits, keeps the matching ones with their sort keys, sorts them (the order_by clauses, then
// start_time DESC unless ordered by start_time, then run_id, as MLflow does) and returns one slice of it.
func (s *Server) searchRunsSorted(ctx context.Context, q *runSearch, fp string, tok searchToken) (any, error) {
	order := slices.Clone(q.order)
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

	var entries []runSortEntry
	for pos := ""; ; {
		cq := metadata.CandidateQuery{ModelIDs: q.ids, View: q.view, Page: metadata.Page{Token: pos, Limit: searchStorePage}}
		page, next, err := s.store.SearchCandidates(ctx, cq)
		if err != nil {
			return nil, fmt.Errorf("searching runs: %w", err)
		}
		for _, c := range page {
			m := q.models[c.ModelID]
			if !runMatchesAttributes(q.filter, m, c) {
				continue
			}
			var data *metadata.RunData
			if q.needsData || orderNeedsData {
				if data, err = s.store.RunData(ctx, c.ID); err != nil {
					return nil, fmt.Errorf("run %s: %w", c.EID, err)
				}
				if q.needsData && !runMatchesData(q.filter, c, data) {
					continue
				}
			}
			if len(entries) == searchSortLimit {
				return nil, fmt.Errorf("%w: this search would sort more than %d runs in memory; order by a single metric "+
					"(or start_time DESC), which is indexed, or narrow the filter", ErrBadRequest, searchSortLimit)
			}
			e := runSortEntry{c: c, keys: make([]runSortValue, len(order))}
			for i, o := range order {
				e.keys[i] = runSortKey(o, m, c, data)
			}
			entries = append(entries, e)
		}
		if next == "" {
			break
		}
		pos = next
	}
	slices.SortStableFunc(entries, func(a, b runSortEntry) int {
		for i, o := range order {
			if c := compareRunSortValues(a.keys[i], b.keys[i], o.Desc); c != 0 {
				return c
			}
		}
		return 0
	})

	var out searchRunsResponse
	start := min(tok.Offset, len(entries))
	end := min(start+q.limit, len(entries))
	for _, e := range entries[start:end] {
		data, err := s.store.RunData(ctx, e.c.ID)
		if err != nil {
			return nil, fmt.Errorf("run %s: %w", e.c.EID, err)
		}
		out.Runs = append(out.Runs, toRun(q.models[e.c.ModelID], e.c, data))
	}
	if end < len(entries) {
		out.NextPageToken = searchToken{Query: fp, Offset: end}.encode()
	}
	return out, nil
}

func runSortKey(o mlflowfilter.OrderBy, m *metadata.Model, c *metadata.Candidate, data *metadata.RunData) runSortValue {
	str := func(v string, found bool) runSortValue {
		if !found {
			return runSortValue{rank: 2}
		}
		return runSortValue{str: v}
	}
	switch o.Entity {
	case mlflowfilter.Metric:
		v, found := runMetricValue(data, o.Key)
		switch {
		case !found:
			return runSortValue{rank: 2}
		case math.IsNaN(v):
			return runSortValue{rank: 1}
		}
		return runSortValue{num: v}
	case mlflowfilter.Param:
		return str(runParamValue(data, o.Key))
	case mlflowfilter.Tag:
		return str(runTagValue(c, data, o.Key))
	}
	switch o.Key {
	case "start_time":
		return runSortValue{num: float64(c.StartTime)}
	case "end_time":
		if c.EndTime == 0 {
			return runSortValue{rank: 2}
		}
		return runSortValue{num: float64(c.EndTime)}
	case "run_name":
		return runSortValue{str: c.Name}
	case "status":
		return runSortValue{str: c.Status.String()}
	case "user_id":
		return runSortValue{str: c.UserID}
	case "artifact_uri":
		return runSortValue{str: runArtifactURI(m, c)}
	case "run_id":
		return runSortValue{str: c.EID.String()}
	}
	return runSortValue{rank: 2}
}

func compareRunSortValues(a, b runSortValue, desc bool) int {
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
