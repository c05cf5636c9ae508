package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// MLflow links. The MLflow client prints addresses of MLflow's own single-page UI after each run:
// http://HOST/#/experiments/1/runs/<run id>, or with a project's tracking URI
// http://HOST/api/v4/projects/<project>/ml/mlflow/#/experiments/…. The server never sees a fragment, and
// browsers keep it across redirects, so the page a redirect lands on hands it to MLflowLinkPath: ui.js
// reads location.hash and asks MLflowLinkPath?project=…&fragment=…, which resolves it to mlgate's page
// of the same thing. That resolver needs no JavaScript: the query parameters alone work.

// MLflowLinkPath resolves MLflow UI links (with ?fragment=) and, without one, serves the page that reads
// the fragment in the browser.
const MLflowLinkPath = "/ui/mlflow-link"

// trackingRootPattern is a project's tracking URI with the slash MLflow's links put before "#".
const trackingRootPattern = "/api/v4/projects/:project/ml/mlflow/"

// isTrackingRoot reports whether escapedPath is a project's tracking URI root (trackingRootPattern):
// its only page is a redirect carrying no data, so it is served with the UI's authentication rather
// than the API's, and a browser following a link gets to the login page instead of a 401.
func isTrackingRoot(escapedPath string) bool {
	rest, ok := strings.CutPrefix(escapedPath, "/api/v4/projects/")
	if !ok {
		return false
	}
	project, rest, ok := strings.Cut(rest, "/")
	return ok && project != "" && rest == "ml/mlflow/"
}

// trackingRoot sends a browser that opened a project's tracking URI (and the fragment it carries) to the
// MLflow link page of that project. It reads nothing, so it tells nothing about the project.
func trackingRoot(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	project, err := httpapi.UnescapeParam(ps.ByName("project"))
	if err != nil {
		project = ps.ByName("project")
	}
	http.Redirect(w, r, MLflowLinkPath+"?"+url.Values{"project": {project}}.Encode(), http.StatusFound)
}

// mlflowLink serves MLflowLinkPath: with a fragment parameter it resolves the link (a page that needs
// a login like every other), without one it serves the public page whose script reads the fragment.
func (s *UI) mlflowLink(ui templates) httprouter.Handle {
	resolve, landing := s.page(ui, s.resolveMLflowLink), s.public(ui, s.mlflowLinkLanding)
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if r.URL.Query().Has("fragment") {
			resolve(w, r, ps)
			return
		}
		landing(w, r, ps)
	}
}

type mlflowLinkData struct {
	Project string // as the link named it: a path or a numeric id
	Home    string // where to go when there is no fragment to resolve
}

// mlflowLinkLanding renders the page ui.js turns into a resolver request. It shows only what its own
// query says, so it needs no login.
func (s *UI) mlflowLinkLanding(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	d := mlflowLinkData{Project: r.URL.Query().Get("project"), Home: "/ui/projects"}
	if d.Project != "" {
		d.Home = "/ui/projects/" + url.PathEscape(d.Project) + "/models"
	} else {
		d.Project = rpc.DefaultProject
	}
	v.page, v.Title, v.Data = "mlflowlink", "Opening MLflow link", d
	return nil
}

// resolveMLflowLink redirects to the page of what ?fragment= names in ?project= (default: the project of
// the unprefixed MLflow routes). An unknown project, experiment, run, logged model or version is a 404
// page; a fragment mlgate has no page for is a 400 page.
func (s *UI) resolveMLflowLink(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	q := r.URL.Query()
	project := q.Get("project")
	if project == "" {
		project = rpc.DefaultProject
	}
	p, err := httpapi.ResolveProject(r.Context(), s.store, url.PathEscape(project), false)
	if err != nil {
		return err
	}
	target, err := s.mlflowTarget(r.Context(), p, q.Get("fragment"))
	if err != nil {
		return err
	}
	v.redirect = target
	return nil
}

// errUnsupportedLink is a fragment naming an MLflow page that mlgate has no counterpart for.
var errUnsupportedLink = fmt.Errorf("%w: mlgate has no page for this MLflow link", httpapi.ErrBadRequest)

// mlflowTarget maps a fragment of MLflow's UI (#/experiments/<id>[/runs/<run id>|/models/<model id>],
// #/models/<name>[/versions/<n>], #/compare-runs?runs=[…]) to the address of mlgate's page. Errors:
// ErrNotFound for what p does not have (or has deleted), errUnsupportedLink for other fragments.
func (s *UI) mlflowTarget(ctx context.Context, p *metadata.Project, fragment string) (string, error) {
	route, query, _ := strings.Cut(strings.TrimPrefix(fragment, "#"), "?")
	var segs []string
	for _, seg := range strings.Split(strings.Trim(route, "/"), "/") {
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("%w: malformed escape in %q", httpapi.ErrBadRequest, seg)
		}
		if dec != "" {
			segs = append(segs, dec)
		}
	}
	projectModels := "/ui/projects/" + url.PathEscape(p.Path) + "/models"
	if len(segs) == 0 || (len(segs) == 1 && (segs[0] == "experiments" || segs[0] == "models")) {
		return projectModels, nil
	}
	l := s.linker(ctx, p)
	switch segs[0] {
	case "experiments":
		if len(segs) >= 4 && segs[2] == "runs" {
			return s.runTarget(l, segs[3])
		}
		if len(segs) >= 4 && segs[2] == "models" {
			return s.loggedModelTarget(l, segs[3])
		}
		return s.experimentTarget(l, segs[1])
	case "models":
		if len(segs) >= 4 && segs[2] == "versions" {
			return s.registeredVersionTarget(l, segs[1], segs[3])
		}
		m, err := s.activeModelByName(l, segs[1])
		if err != nil {
			return "", err
		}
		return modelHref(p, m), nil
	case "compare-runs":
		return s.compareTarget(l, query)
	}
	return "", errUnsupportedLink
}

// notIn words a miss of what in project p for the person who followed the link; other errors pass
// unchanged.
func notIn(p *metadata.Project, what string, err error) error {
	if !errors.Is(err, metadata.ErrNotFound) {
		return err
	}
	return httpapi.WithClientMessage(err, "%s is not in project %s, or was deleted", what, p.Path)
}

// requireHref turns the empty address of a deleted record into ErrNotFound.
func requireHref(lk link, what string) (string, error) {
	if lk.Href == "" {
		return "", httpapi.NotFound("%s is deleted", what)
	}
	return lk.Href, nil
}

func (s *UI) runTarget(l *linker, runID string) (string, error) {
	eid, ok := metadata.ParseEID(runID)
	if !ok {
		return "", notIn(l.p, fmt.Sprintf("run %q", runID), metadata.ErrNotFound)
	}
	c, err := l.store.Candidate(l.ctx, metadata.CandidateRef{EID: eid, Project: l.p.ID})
	if err != nil {
		return "", notIn(l.p, "run "+runID, err)
	}
	lk, err := l.candidateLink(c)
	if err != nil {
		return "", err
	}
	return requireHref(lk, "run "+runID)
}

func (s *UI) loggedModelTarget(l *linker, modelID string) (string, error) {
	lm, err := httpapi.LoggedModelOf(l.ctx, l.store, l.p.ID, modelID)
	if err != nil {
		return "", notIn(l.p, fmt.Sprintf("logged model %q", modelID), err)
	}
	lk, err := l.loggedModel(lm)
	if err != nil {
		return "", err
	}
	return requireHref(lk, "the model of logged model "+modelID)
}

// experimentTarget is the page of the model whose MLflow experiment id is id ("0" is the project's
// default experiment, which has iid 0 and so comes first in iid order).
func (s *UI) experimentTarget(l *linker, id string) (string, error) {
	iid, err := strconv.ParseInt(id, 10, 64)
	if err != nil || iid < 0 {
		return "", notIn(l.p, fmt.Sprintf("experiment %q", id), metadata.ErrNotFound)
	}
	var m *metadata.Model
	if iid == 0 {
		first, _, err := l.store.ListModels(l.ctx, l.p.ID, metadata.Page{Limit: 1})
		if err != nil {
			return "", err
		}
		if len(first) == 0 || first[0].IID != 0 {
			return "", notIn(l.p, "experiment 0 (the default experiment)", metadata.ErrNotFound)
		}
		m = first[0]
	} else if m, err = l.store.Model(l.ctx, metadata.ModelRef{Project: l.p.ID, IID: iid}); err != nil {
		return "", notIn(l.p, "experiment "+id, err)
	}
	if m.Lifecycle != metadata.Active {
		return "", httpapi.NotFound("experiment %d is deleted", iid)
	}
	return modelHref(l.p, m), nil
}

// activeModelByName finds a registered model as MLflow names it (display name first, then slug).
func (s *UI) activeModelByName(l *linker, name string) (*metadata.Model, error) {
	m, err := mlflow.ModelByName(l.ctx, l.store, l.p.ID, name)
	if err == nil && m.Lifecycle != metadata.Active {
		err = fmt.Errorf("model %q is deleted: %w", name, metadata.ErrNotFound)
	}
	if err != nil {
		return nil, notIn(l.p, fmt.Sprintf("registered model %q", name), err)
	}
	return m, nil
}

// registeredVersionTarget is the page of MLflow version seq (a number) of the registered model name.
func (s *UI) registeredVersionTarget(l *linker, name, seq string) (string, error) {
	m, err := s.activeModelByName(l, name)
	if err != nil {
		return "", err
	}
	n, err := strconv.ParseInt(seq, 10, 64)
	if err != nil || n <= 0 {
		return "", notIn(l.p, fmt.Sprintf("version %q of model %q", seq, name), metadata.ErrNotFound)
	}
	ver, err := l.store.Version(l.ctx, metadata.VersionRef{ModelID: m.ID, Seq: n})
	if err != nil {
		return "", notIn(l.p, fmt.Sprintf("version %d of model %q", n, name), err)
	}
	return modelHref(l.p, m) + "/versions/" + url.PathEscape(ver.Semver), nil
}

// compareTarget is the compare page of the runs in MLflow's runs=["<id>", …] parameter, which must all
// belong to one model.
func (s *UI) compareTarget(l *linker, query string) (string, error) {
	vals, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("%w: compare-runs query: %v", httpapi.ErrBadRequest, err)
	}
	var runIDs []string
	if err := json.Unmarshal([]byte(vals.Get("runs")), &runIDs); err != nil || len(runIDs) == 0 {
		return "", fmt.Errorf("%w: compare-runs needs runs=[\"<run id>\", …]", httpapi.ErrBadRequest)
	}
	if len(runIDs) > maxCompare {
		return "", fmt.Errorf("%w: compare at most %d runs", httpapi.ErrBadRequest, maxCompare)
	}
	var m *metadata.Model
	iids := url.Values{}
	for _, id := range runIDs {
		eid, ok := metadata.ParseEID(id)
		if !ok {
			return "", notIn(l.p, fmt.Sprintf("run %q", id), metadata.ErrNotFound)
		}
		c, err := l.store.Candidate(l.ctx, metadata.CandidateRef{EID: eid, Project: l.p.ID})
		if err != nil {
			return "", notIn(l.p, "run "+id, err)
		}
		if m == nil {
			if m, err = l.model(c.ModelID); err != nil {
				return "", err
			}
		} else if c.ModelID != m.ID {
			return "", fmt.Errorf("%w: mlgate compares runs of one experiment at a time", httpapi.ErrBadRequest)
		}
		iids.Add("c", strconv.FormatInt(c.IID, 10))
	}
	if m.Lifecycle != metadata.Active {
		return "", httpapi.NotFound("the experiment of these runs is deleted")
	}
	return modelHref(l.p, m) + "/compare?" + iids.Encode(), nil
}
