package source

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// pager follows next_page_token until the source stops sending one. A token the source already sent
// would loop forever, so it is an error.
type pager struct {
	what  string
	token string
	seen  map[string]bool
}

func (p *pager) next(token string) (more bool, err error) {
	if token == "" {
		return false, nil
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[token] {
		return false, fmt.Errorf("%s: the source sent page token %q twice (paging loops)", p.what, token)
	}
	p.seen[token] = true
	p.token = token
	return true, nil
}

// Experiments calls fn for every experiment of every lifecycle stage, the Default experiment "0"
// included, in the source's order, each once. Errors: the source's (see call), or fn's.
func (c *Client) Experiments(ctx context.Context, fn func(Experiment) error) error {
	p := pager{what: "experiments/search"}
	seen := map[string]bool{}
	for {
		body := map[string]any{"max_results": 1000, "view_type": "ALL"}
		if p.token != "" {
			body["page_token"] = p.token
		}
		var out struct {
			Experiments   []wireExperiment `json:"experiments"`
			NextPageToken string           `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodPost, "experiments/search", nil, body, &out); err != nil {
			return fmt.Errorf("listing experiments: %w", err)
		}
		for _, w := range out.Experiments {
			e := w.experiment()
			if seen[e.ID] {
				continue
			}
			seen[e.ID] = true
			if err := fn(e); err != nil {
				return err
			}
		}
		if more, err := p.next(out.NextPageToken); !more {
			return err
		}
	}
}

// Runs calls fn for every run of the experiment, of every lifecycle stage, each once. GitLab ignores
// run_view_type and all but the first experiment id; runs of other experiments are dropped here.
// Errors: the source's, or fn's.
func (c *Client) Runs(ctx context.Context, experimentID string, fn func(Run) error) error {
	p := pager{what: "runs/search experiment " + experimentID}
	seen := map[string]bool{}
	for {
		body := map[string]any{"experiment_ids": []string{experimentID}, "run_view_type": "ALL", "max_results": 1000}
		if p.token != "" {
			body["page_token"] = p.token
		}
		var out struct {
			Runs          []wireRun `json:"runs"`
			NextPageToken string    `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodPost, "runs/search", nil, body, &out); err != nil {
			return fmt.Errorf("listing runs of experiment %s: %w", experimentID, err)
		}
		for _, w := range out.Runs {
			r := w.run()
			if seen[r.ID] || r.ExperimentID != "" && r.ExperimentID != experimentID {
				continue
			}
			seen[r.ID] = true
			if err := fn(r); err != nil {
				return err
			}
		}
		if more, err := p.next(out.NextPageToken); !more {
			return err
		}
	}
}

// Run returns one run. Errors: ErrNotFound when the source does not know it; the source's otherwise.
func (c *Client) Run(ctx context.Context, runID string) (Run, error) {
	var out struct {
		Run *wireRun `json:"run"`
	}
	q := url.Values{"run_id": {runID}, "run_uuid": {runID}}
	if err := c.call(ctx, http.MethodGet, "runs/get", q, nil, &out); err != nil {
		return Run{}, fmt.Errorf("run %s: %w", runID, err)
	}
	if out.Run == nil {
		return Run{}, fmt.Errorf("run %s: %w (the answer has no run)", runID, ErrNotFound)
	}
	return out.Run.run(), nil
}

// GitLabHistoryCap is the most points GitLab's metrics/get-history answers with.
const GitLabHistoryCap = 1000

// MetricHistory hands fn every point of one metric's history, a page at a time, in the source's
// order. Errors: ErrNotFound for an unknown run; ErrIncomplete (naming run and key) when a GitLab
// source answers exactly its cap of points with no way to ask for more, since the history is then
// probably cut; the source's errors; fn's.
func (c *Client) MetricHistory(ctx context.Context, runID, key string, fn func([]Metric) error) error {
	p := pager{what: fmt.Sprintf("metrics/get-history run %s key %q", runID, key)}
	maxResults := 25000
	if c.kind == KindGitLab {
		maxResults = GitLabHistoryCap
	}
	for {
		q := url.Values{"run_id": {runID}, "run_uuid": {runID}, "metric_key": {key}, "max_results": {strconv.Itoa(maxResults)}}
		if p.token != "" {
			q.Set("page_token", p.token)
		}
		var out struct {
			Metrics       []wireMetric `json:"metrics"`
			NextPageToken string       `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodGet, "metrics/get-history", q, nil, &out); err != nil {
			return fmt.Errorf("metric history of run %s key %q: %w", runID, key, err)
		}
		if len(out.Metrics) > 0 {
			page := make([]Metric, 0, len(out.Metrics))
			for _, m := range out.Metrics {
				// GitLab returns every key when metric_key is ignored by an older release.
				if string(m.Key) != "" && string(m.Key) != key {
					continue
				}
				mm := m.metric()
				mm.Key = key
				page = append(page, mm)
			}
			if err := fn(page); err != nil {
				return err
			}
		}
		more, err := p.next(out.NextPageToken)
		if err != nil {
			return err
		}
		if !more {
			if c.kind == KindGitLab && len(out.Metrics) == GitLabHistoryCap {
				return fmt.Errorf("metric history of run %s key %q: %w: GitLab answered exactly its cap of %d points without a next page, so later points may be missing",
					runID, key, ErrIncomplete, GitLabHistoryCap)
			}
			return nil
		}
	}
}

// RegisteredModels calls fn for every registered model, each once. Errors: the source's, or fn's.
func (c *Client) RegisteredModels(ctx context.Context, fn func(RegisteredModel) error) error {
	_, err := c.registeredModels(ctx, func(w wireRegisteredModel) error { return fn(w.model()) })
	return err
}

func (c *Client) registeredModels(ctx context.Context, fn func(wireRegisteredModel) error) (int, error) {
	p := pager{what: "registered-models/search"}
	seen := map[string]bool{}
	for {
		q := url.Values{"max_results": {"100"}}
		if p.token != "" {
			q.Set("page_token", p.token)
		}
		var out struct {
			RegisteredModels []wireRegisteredModel `json:"registered_models"`
			NextPageToken    string                `json:"next_page_token"`
		}
		if err := c.call(ctx, http.MethodGet, "registered-models/search", q, nil, &out); err != nil {
			return len(seen), fmt.Errorf("listing registered models: %w", err)
		}
		for _, w := range out.RegisteredModels {
			if seen[string(w.Name)] {
				continue
			}
			seen[string(w.Name)] = true
			if err := fn(w); err != nil {
				return len(seen), err
			}
		}
		if more, err := p.next(out.NextPageToken); !more {
			return len(seen), err
		}
	}
}

// ModelVersions calls fn for every version of the registered model, in ascending numeric version
// order (versions that are not numbers follow, in string order). GitLab ignores the name filter, so
// versions of other models are dropped here. A source without model-versions/search (older GitLab
// releases) yields the versions the registered model lists as latest and then returns ErrIncomplete.
// Errors: the source's, fn's, ErrIncomplete as said.
func (c *Client) ModelVersions(ctx context.Context, name string, fn func(ModelVersion) error) error {
	var all []ModelVersion
	seen := map[string]bool{}
	add := func(w wireModelVersion) {
		v := w.version()
		if v.Name != name || seen[v.Version] {
			return
		}
		seen[v.Version] = true
		all = append(all, v)
	}
	q := url.Values{"max_results": {"10000"}}
	if f := nameFilter(name); f != "" {
		q.Set("filter", f)
	}
	p := pager{what: "model-versions/search " + name}
	incomplete := false
	for {
		if p.token != "" {
			q.Set("page_token", p.token)
		}
		var out struct {
			ModelVersions []wireModelVersion `json:"model_versions"`
			NextPageToken string             `json:"next_page_token"`
		}
		err := c.call(ctx, http.MethodGet, "model-versions/search", q, nil, &out)
		if err != nil && endpointMissing(err) && p.token == "" {
			if err := c.latestVersions(ctx, name, add); err != nil {
				return err
			}
			incomplete = true
			break
		}
		if err != nil {
			return fmt.Errorf("versions of registered model %q: %w", name, err)
		}
		for _, w := range out.ModelVersions {
			add(w)
		}
		more, err := p.next(out.NextPageToken)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return versionLess(all[i].Version, all[j].Version) })
	for _, v := range all {
		if err := fn(v); err != nil {
			return err
		}
	}
	if incomplete {
		return fmt.Errorf("versions of registered model %q: %w: the source has no model-versions/search; only its latest versions came across", name, ErrIncomplete)
	}
	return nil
}

func (c *Client) latestVersions(ctx context.Context, name string, add func(wireModelVersion)) error {
	var out struct {
		RegisteredModel wireRegisteredModel `json:"registered_model"`
	}
	if err := c.call(ctx, http.MethodGet, "registered-models/get", url.Values{"name": {name}}, nil, &out); err != nil {
		return fmt.Errorf("registered model %q: %w", name, err)
	}
	for _, w := range out.RegisteredModel.LatestVersions {
		add(w)
	}
	return nil
}

// nameFilter quotes name for an MLflow filter; "" when it holds both quote characters (then every
// version is fetched and filtered here).
func nameFilter(name string) string {
	switch {
	case !strings.Contains(name, "'"):
		return "name = '" + name + "'"
	case !strings.Contains(name, `"`):
		return `name = "` + name + `"`
	}
	return ""
}

func versionLess(a, b string) bool {
	na, ea := strconv.ParseInt(a, 10, 64)
	nb, eb := strconv.ParseInt(b, 10, 64)
	switch {
	case ea == nil && eb == nil:
		return na < nb
	case ea == nil:
		return true
	case eb == nil:
		return false
	}
	return a < b
}

// LoggedModels calls fn for every MLflow 3 logged model of the experiments (of all experiments when
// experimentIDs is empty), each once. A source without logged models (MLflow 2.x, GitLab: 404,
// ENDPOINT_NOT_FOUND, NOT_IMPLEMENTED) yields none and no error. Errors: the source's, or fn's.
func (c *Client) LoggedModels(ctx context.Context, experimentIDs []string, fn func(LoggedModel) error) error {
	if len(experimentIDs) == 0 {
		if err := c.Experiments(ctx, func(e Experiment) error {
			experimentIDs = append(experimentIDs, e.ID)
			return nil
		}); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	// One experiment per search: the server bounds the number of ids a search takes.
	for _, exp := range experimentIDs {
		p := pager{what: "logged-models/search experiment " + exp}
		for {
			body := map[string]any{"experiment_ids": []string{exp}, "max_results": 100}
			if p.token != "" {
				body["page_token"] = p.token
			}
			var out struct {
				Models        []wireLoggedModel `json:"models"`
				NextPageToken string            `json:"next_page_token"`
			}
			if err := c.call(ctx, http.MethodPost, "logged-models/search", nil, body, &out); err != nil {
				if endpointMissing(err) {
					return nil
				}
				return fmt.Errorf("logged models of experiment %s: %w", exp, err)
			}
			for _, w := range out.Models {
				m := w.model()
				if seen[m.ID] {
					continue
				}
				seen[m.ID] = true
				if err := fn(m); err != nil {
					return err
				}
			}
			more, err := p.next(out.NextPageToken)
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	return nil
}
