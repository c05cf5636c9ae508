package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// MLflow 3 logged models: a section of the model page, a page of their own, and the candidate page's
// list of the logged models a run produced or used.

const (
	// maxLoggedModelRows bounds the logged models listed on a model page.
	maxLoggedModelRows = 50
	// maxSummaryMetrics is how many metric keys a logged model's row shows; the rest are on its page.
	maxSummaryMetrics = 4
	// maxMetricRows bounds the metric points listed on a logged model's page.
	maxMetricRows = 1000
	// maxSourceRunScan bounds the logged models of a model that a candidate page reads to find the ones
	// logged from the run without a recorded run output (MLflow 3 clients record one).
	maxSourceRunScan = 1000
)

// loggedModelRow is one logged model in the model page's table.
type loggedModelRow struct {
	LM          *metadata.LoggedModel
	Href        string
	Source      link // the source run; Label "" when there is none
	Metrics     []metricSummary
	MoreMetrics int
	Versions    []link
}

type metricSummary struct {
	Key   string
	Value float64
}

// loggedModelsSection lists the newest logged models of m, up to maxLoggedModelRows; more reports that
// there were others. Errors are the store's.
func (s *UI) loggedModelsSection(l *linker, m *metadata.Model) (rows []loggedModelRow, more bool, err error) {
	lms, next, err := s.store.SearchLoggedModels(l.ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{m.ID},
		Page: metadata.Page{Limit: maxLoggedModelRows}})
	if err != nil {
		return nil, false, err
	}
	href := modelHref(l.p, m)
	for _, lm := range lms {
		row := loggedModelRow{LM: lm, Href: loggedModelHref(href, lm)}
		if lm.SourceRunID != 0 {
			if row.Source, err = l.candidate(lm.SourceRunID); err != nil {
				return nil, false, err
			}
		}
		points, err := s.store.LoggedModelMetrics(l.ctx, lm.ID)
		if err != nil {
			return nil, false, fmt.Errorf("metrics of logged model %s: %w", lm.LMID, err)
		}
		latest := latestPerKey(points)
		row.Metrics = latest[:min(len(latest), maxSummaryMetrics)]
		row.MoreMetrics = len(latest) - len(row.Metrics)
		if row.Versions, err = l.versionsBackedBy(lm.ID); err != nil {
			return nil, false, err
		}
		rows = append(rows, row)
	}
	return rows, next != "", nil
}

// latestPerKey keeps the latest value of each key from points ordered by key, step and timestamp (as
// LoggedModelMetrics returns them): the last point of each key is its highest step, newest timestamp.
func latestPerKey(points []metadata.Metric) []metricSummary {
	var out []metricSummary
	for _, pt := range points {
		if n := len(out); n > 0 && out[n-1].Key == pt.Key {
			out[n-1].Value = pt.Value
			continue
		}
		out = append(out, metricSummary{Key: pt.Key, Value: pt.Value})
	}
	return out
}

// The logged model page.

type loggedModelData struct {
	P           *metadata.Project
	M           *metadata.Model
	LM          *metadata.LoggedModel
	ModelHref   string
	Source      link
	URI         string // models:/m-…, what MLflow 3 loads
	ArtifactURI string
	Metrics     []metricRow
	MetricsMore int
	Files       []fileRow
	FilesMore   bool
	Versions    []link
}

// metricRow is one metric point of a logged model, with the run that logged it.
type metricRow struct {
	metadata.Metric
	RunLink link
}

// loggedModelOf resolves :project, :name and :model_id. A malformed or unknown id, or the id of a logged
// model of another model, is ErrNotFound.
func (s *UI) loggedModelOf(ctx context.Context, ps httprouter.Params) (*metadata.Project, *metadata.Model, *metadata.LoggedModel, error) {
	p, m, err := s.modelOf(ctx, ps)
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := httpapi.UnescapeParam(ps.ByName("model_id"))
	if err != nil {
		return nil, nil, nil, err
	}
	lm, err := httpapi.LoggedModelOf(ctx, s.store, p.ID, raw)
	if err == nil && lm.ModelID != m.ID {
		err = httpapi.LoggedModelNotFound(raw, fmt.Errorf("logged model %s does not belong to model %q: %w", lm.LMID, m.Name, metadata.ErrNotFound))
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return p, m, lm, nil
}

func (s *UI) loggedModelPage(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, m, lm, err := s.loggedModelOf(ctx, ps)
	if err != nil {
		return err
	}
	l := s.linker(ctx, p)
	d := &loggedModelData{P: p, M: m, LM: lm, ModelHref: modelHref(p, m), URI: "models:/" + lm.LMID.String(),
		ArtifactURI: "mlflow-artifacts:/" + strconv.FormatInt(m.IID, 10) + "/models/" + lm.LMID.String() + "/artifacts"}
	if lm.SourceRunID != 0 {
		if d.Source, err = l.candidate(lm.SourceRunID); err != nil {
			return err
		}
	}
	if err := s.loggedModelMetricRows(l, lm, d); err != nil {
		return err
	}
	if d.Files, d.FilesMore, err = s.fileTree(ctx, lm.ID, "", func(rel string) string {
		return "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/packages/ml_models/" + lm.LMID.String() + "/files/" + escapePath(rel)
	}); err != nil {
		return err
	}
	if d.Versions, err = l.versionsBackedBy(lm.ID); err != nil {
		return err
	}
	v.page, v.Title, v.Data = "loggedmodel", lm.Name+" · "+m.DisplayName, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, "/ui/projects/" + url.PathEscape(p.Path) + "/models"},
		{m.DisplayName, d.ModelHref}, {lm.Name, ""}}
	return nil
}

// loggedModelMetricRows fills d.Metrics with the first maxMetricRows points of lm, each with a link to
// the run that logged it. Errors are the store's.
func (s *UI) loggedModelMetricRows(l *linker, lm *metadata.LoggedModel, d *loggedModelData) error {
	points, err := s.store.LoggedModelMetrics(l.ctx, lm.ID)
	if err != nil {
		return fmt.Errorf("metrics of logged model %s: %w", lm.LMID, err)
	}
	d.MetricsMore = max(0, len(points)-maxMetricRows)
	points = points[:min(len(points), maxMetricRows)]
	for _, pt := range points {
		row := metricRow{Metric: pt}
		if pt.Run != (metadata.EID{}) {
			if row.RunLink, err = l.run(pt.Run); err != nil {
				return err
			}
		}
		d.Metrics = append(d.Metrics, row)
	}
	return nil
}

// The candidate page's logged models.

// runLoggedModel is a logged model a run produced or used.
type runLoggedModel struct {
	Link     link
	Status   metadata.LoggedModelStatus
	Relation string // "output at step 3", "input", "logged from this run"
	Versions []link
}

// runLoggedModels lists the logged models of c's run: its outputs, its inputs, and the logged models of
// its model whose source run it is (read up to maxSourceRunScan). Logged models that are gone are
// skipped. Errors are the store's.
func (s *UI) runLoggedModels(l *linker, c *metadata.Candidate, runIO metadata.RunIO) ([]runLoggedModel, error) {
	var out []runLoggedModel
	seen := map[metadata.LMID]bool{}
	add := func(lmid metadata.LMID, relation string) error {
		if seen[lmid] {
			return nil
		}
		seen[lmid] = true
		lm, err := s.store.LoggedModel(l.ctx, metadata.LoggedModelRef{LMID: lmid, Project: l.p.ID})
		if errors.Is(err, metadata.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		row := runLoggedModel{Status: lm.Status, Relation: relation}
		if row.Link, err = l.loggedModel(lm); err != nil {
			return err
		}
		if row.Versions, err = l.versionsBackedBy(lm.ID); err != nil {
			return err
		}
		out = append(out, row)
		return nil
	}
	for _, o := range runIO.Outputs {
		if err := add(o.LoggedModel, "output at step "+strconv.FormatInt(o.Step, 10)); err != nil {
			return nil, err
		}
	}
	for _, in := range runIO.ModelInputs {
		if err := add(in, "input"); err != nil {
			return nil, err
		}
	}
	sourced, err := s.loggedModelsFromRun(l.ctx, c)
	if err != nil {
		return nil, err
	}
	for _, lmid := range sourced {
		if err := add(lmid, "logged from this run"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// loggedModelsFromRun returns the ids of the logged models of c's model whose source run is c, among the
// newest maxSourceRunScan. Errors are the store's.
func (s *UI) loggedModelsFromRun(ctx context.Context, c *metadata.Candidate) ([]metadata.LMID, error) {
	var out []metadata.LMID
	tok := ""
	for scanned := 0; scanned < maxSourceRunScan; {
		lms, next, err := s.store.SearchLoggedModels(ctx, metadata.LoggedModelQuery{ModelIDs: []uint64{c.ModelID},
			Page: metadata.Page{Token: tok, Limit: 200}})
		if err != nil {
			return nil, err
		}
		for _, lm := range lms {
			if lm.SourceRunID == c.ID {
				out = append(out, lm.LMID)
			}
		}
		scanned += len(lms)
		if next == "" || len(lms) == 0 {
			break
		}
		tok = next
	}
	return out, nil
}
