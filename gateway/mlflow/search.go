package mlflow

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/internal/pagetoken"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

// Search limits. MLflow's server rejects max_results above SEARCH_MAX_RESULTS_THRESHOLD (50000) for
// both searches with INVALID_PARAMETER_VALUE; mlgate does the same, so a script that works against mlgate
// works against MLflow. Unset (or 0, which a proto3 client may send for "unset") means the client's
// default, 1000.
const (
	defaultMaxResults = 1000
	maxSearchResults  = 50000
	// storePage is the page size asked of the store; the bolt store clamps larger pages to 1000.
	storePage = 1000
	// maxSearchedExperiments bounds experiment_ids in one search. MLflow sets no limit; its client's
	// search_all_experiments sends every experiment of the server, so the bound is generous, but each id
	// costs a model lookup, and 3.8 million of them once cost 280 MB per call.
	maxSearchedExperiments = 10000
)

// searchBody bounds the body of runs/search and logged-models/search: experiment_ids is their only long
// list.
var searchBody = httpapi.BodyLimits{MaxBytes: 1 << 20, MaxItems: maxSearchedExperiments}

// searchRPCs serves experiments/search and runs/search.
func (s *Tracking) searchRPCs() []rpc.Route {
	return []rpc.Route{
		rpc.Handle(http.MethodGet, "experiments/search", s.searchExperiments),
		rpc.Handle(http.MethodPost, "experiments/search", s.searchExperiments),
		rpc.Handle(http.MethodPost, "runs/search", s.searchRuns).Limits(searchBody),
	}
}

// maxResultsOf validates max_results: unset or 0 is the default, negative or above 50000 is
// httpapi.ErrBadRequest (MLflow's wording).
func maxResultsOf(v rpc.I64) (int, error) {
	switch {
	case !v.Set || v.V == 0:
		return defaultMaxResults, nil
	case v.V < 0:
		return 0, fmt.Errorf("%w: invalid value %d for parameter 'max_results': it must be a positive integer", httpapi.ErrBadRequest, v.V)
	case v.V > maxSearchResults:
		return 0, fmt.Errorf("%w: invalid value for request parameter max_results: it must be at most %d, but got value %d",
			httpapi.ErrBadRequest, maxSearchResults, v.V)
	}
	return int(v.V), nil
}

// viewTypeOf parses MLflow's ViewType, by name or by proto number; empty is ACTIVE_ONLY. Anything
// else is httpapi.ErrBadRequest naming field.
func viewTypeOf(field string, v rpc.FlexString) (metadata.ViewType, error) {
	switch strings.ToUpper(strings.TrimSpace(string(v))) {
	case "", "ACTIVE_ONLY", "1":
		return metadata.ActiveOnly, nil
	case "DELETED_ONLY", "2":
		return metadata.DeletedOnly, nil
	case "ALL", "3":
		return metadata.AllLifecycles, nil
	}
	return 0, fmt.Errorf("%w: invalid value %q for parameter '%s': expected ACTIVE_ONLY, DELETED_ONLY or ALL",
		httpapi.ErrBadRequest, string(v), field)
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
// A bad clause is httpapi.ErrBadRequest.
func parseExperimentOrder(clauses []string) ([]experimentOrder, error) {
	if len(clauses) == 0 {
		return []experimentOrder{{key: "creation_time", desc: true}, {key: "experiment_id"}}, nil
	}
	var out []experimentOrder
	hasID := false
	for i, cl := range clauses {
		o, err := parseExperimentOrderClause(cl)
		if err != nil {
			return nil, fmt.Errorf("%w: order_by[%d]: %w", httpapi.ErrBadRequest, i, err)
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
				v, found = tagValue(m.Tags, c.Key)
			}
			ok = runquery.MatchOptionalString(c, v, found)
		}
		if !ok {
			return false
		}
	}
	return true
}

func tagValue(tags []metadata.Tag, key string) (string, bool) {
	for _, t := range tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return "", false
}

// searchExperimentsRequest is the input of searchExperiments.
type searchExperimentsRequest struct {
	MaxResults rpc.I64        `json:"max_results"`
	PageToken  string         `json:"page_token"`
	Filter     string         `json:"filter"`
	OrderBy    rpc.Strs       `json:"order_by"`
	ViewType   rpc.FlexString `json:"view_type"`
}

// searchExperiments lists the project's models (every model is an experiment; the default model "0"
// only once it exists) that view_type and filter admit, in order_by order, max_results at a time.
// Projects hold few models, so it reads them all and pages by offset. Bad filter, order_by, view_type,
// max_results or page_token → httpapi.ErrBadRequest. Answers {} when nothing matches.
func (s *Tracking) searchExperiments(ctx context.Context, call *rpc.Call, in *searchExperimentsRequest) (any, error) {
	limit, err := maxResultsOf(in.MaxResults)
	if err != nil {
		return nil, err
	}
	view, err := viewTypeOf("view_type", in.ViewType)
	if err != nil {
		return nil, err
	}
	filter, err := mlflowfilter.ParseExperimentFilter(in.Filter)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid filter: %w", httpapi.ErrBadRequest, err)
	}
	order, err := parseExperimentOrder(in.OrderBy)
	if err != nil {
		return nil, err
	}
	orderKey := make([]string, len(order))
	for i, o := range order {
		orderKey[i] = fmt.Sprintf("%s/%t", o.key, o.desc)
	}
	fp := pagetoken.Fingerprint("experiments", strconv.Itoa(int(view)), filter.String(), strings.Join(orderKey, ","))
	tok, err := pagetoken.Parse(in.PageToken, fp)
	if err != nil {
		return nil, err
	}

	var all []*metadata.Model
	for storeTok := ""; ; {
		page, next, err := s.store.ListModels(ctx, call.Project.ID, metadata.Page{Token: storeTok, Limit: storePage})
		if err != nil {
			return nil, fmt.Errorf("listing experiments: %w", err)
		}
		for _, m := range page {
			if view.Admits(m.Lifecycle) && experimentMatches(filter, m) {
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
		Experiments   []message.Experiment `json:"experiments,omitempty"`
		NextPageToken string               `json:"next_page_token,omitempty"`
	}{}
	start := min(tok.Offset, len(all))
	end := min(start+limit, len(all))
	for _, m := range all[start:end] {
		out.Experiments = append(out.Experiments, toExperiment(m))
	}
	if end < len(all) {
		out.NextPageToken = pagetoken.Token{Query: fp, Offset: end}.String()
	}
	return out, nil
}

// ---------------------------------------------------------------------------------------------------
// runs/search

// searchRunsRequest is the input of searchRuns.
type searchRunsRequest struct {
	ExperimentIDs rpc.Strs       `json:"experiment_ids"`
	Filter        string         `json:"filter"`
	RunViewType   rpc.FlexString `json:"run_view_type"`
	MaxResults    rpc.I64        `json:"max_results"`
	OrderBy       rpc.Strs       `json:"order_by"`
	PageToken     string         `json:"page_token"`
}

type searchRunsResponse struct {
	Runs          []message.Run `json:"runs,omitempty"`
	NextPageToken string        `json:"next_page_token,omitempty"`
}

// searchRuns answers runs/search through the run query engine (gateway/runquery), which the UI's
// candidate table shares. Unknown experiment ids contribute no runs (as in MLflow's SQL store); "0" is
// the default model when it exists. Bad ids, filter, order_by, view type, max_results (above 50000) or
// page_token → httpapi.ErrBadRequest; an ordering the store has no index for over more than
// runquery.DefaultSortLimit matching runs → httpapi.ErrBadRequest. Answers {} when nothing matches.
func (s *Tracking) searchRuns(ctx context.Context, call *rpc.Call, in *searchRunsRequest) (any, error) {
	q := runquery.Query{Scope: "runs/search"}
	var err error
	if q.Limit, err = maxResultsOf(in.MaxResults); err != nil {
		return nil, err
	}
	if q.View, err = viewTypeOf("run_view_type", in.RunViewType); err != nil {
		return nil, err
	}
	if q.Filter, err = mlflowfilter.ParseRunFilter(in.Filter); err != nil {
		return nil, fmt.Errorf("%w: invalid filter: %w", httpapi.ErrBadRequest, err)
	}
	if q.Order, err = mlflowfilter.ParseRunOrderBy(in.OrderBy); err != nil {
		return nil, fmt.Errorf("%w: invalid order_by: %w", httpapi.ErrBadRequest, err)
	}
	if q.Models, err = s.searchedModels(ctx, call, in.ExperimentIDs); err != nil {
		return nil, err
	}
	page, err := s.search.Search(ctx, q, in.PageToken)
	if err != nil {
		return nil, err
	}
	out := searchRunsResponse{NextPageToken: page.Next}
	for _, r := range page.Rows {
		out.Runs = append(out.Runs, toRun(r.Model, r.Candidate, r.Data))
	}
	return out, nil
}

// searchedModels resolves experiment_ids into the models searched, in iid order and without
// duplicates. Ids that are not non-negative integers are httpapi.ErrBadRequest; unknown ones are
// skipped. "0" is the default model only if it exists: a search does not create it.
func (s *Tracking) searchedModels(ctx context.Context, call *rpc.Call, ids []string) ([]*metadata.Model, error) {
	if len(ids) > maxSearchedExperiments {
		return nil, fmt.Errorf("%w: experiment_ids lists %d experiments; one search takes at most %d",
			httpapi.ErrBadRequest, len(ids), maxSearchedExperiments)
	}
	var iids []int64
	for _, id := range ids {
		iid, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if err != nil || iid < 0 {
			return nil, fmt.Errorf("%w: experiment_ids: %q is not a valid experiment id", httpapi.ErrBadRequest, id)
		}
		iids = append(iids, iid)
	}
	slices.Sort(iids)
	iids = slices.Compact(iids)
	var models []*metadata.Model
	for _, iid := range iids {
		var m *metadata.Model
		if iid == 0 {
			// The store resolves no model by iid 0; models list in iid order, so it would come first.
			first, _, err := s.store.ListModels(ctx, call.Project.ID, metadata.Page{Limit: 1})
			if err != nil {
				return nil, fmt.Errorf("experiment 0: %w", err)
			}
			if len(first) == 0 || first[0].IID != 0 {
				continue
			}
			m = first[0]
		} else {
			var err error
			m, err = s.store.Model(ctx, metadata.ModelRef{Project: call.Project.ID, IID: iid})
			if errors.Is(err, metadata.ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("experiment %d: %w", iid, err)
			}
		}
		models = append(models, m)
	}
	return models, nil
}
