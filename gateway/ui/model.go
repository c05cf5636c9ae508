package ui

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// RowsPerPage is the size of a candidates page.
const RowsPerPage = 50

// maxProjects bounds the projects page.
const maxProjects = 1000

// Projects.

func (s *UI) projects(w http.ResponseWriter, r *http.Request, _ httprouter.Params, v *view) error {
	v.page, v.Title = "projects", "Projects"
	var out []*metadata.Project
	if tok := httpapi.Principal(r.Context()); tok != nil {
		// A token reaches one project: show that one, if it exists yet.
		p, err := s.store.Project(r.Context(), metadata.ProjectRef{Path: tok.ProjectPath})
		if err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return err
		}
		if p != nil {
			out = append(out, p)
		}
	} else {
		ps, err := s.store.ListProjects(r.Context(), maxProjects)
		if err != nil {
			return err
		}
		out = ps
	}
	v.Data = out
	return nil
}

// Models.

type modelRow struct {
	M             *metadata.Model
	Latest        string
	Versions      int
	Candidates    int
	LastActivity  time.Time
	CandidatesCap bool // counting stopped at countCap
}

type modelsData struct {
	P    *metadata.Project
	Q    string
	Rows []modelRow
}

// countCap bounds the candidate count per model on the models page, so one huge model cannot slow the
// listing down; the page shows "≥ N" beyond it.
const countCap = 100000

func (s *UI) models(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, err := httpapi.ResolveProject(ctx, s.store, ps.ByName("project"), false)
	if err != nil {
		return err
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := modelsData{P: p, Q: q}
	tok := ""
	for {
		models, next, err := s.store.ListModels(ctx, p.ID, metadata.Page{Token: tok, Limit: 1000})
		if err != nil {
			return err
		}
		for _, m := range models {
			if m.Lifecycle != metadata.Active {
				continue
			}
			if q != "" && !strings.Contains(strings.ToLower(m.Name), strings.ToLower(q)) &&
				!strings.Contains(strings.ToLower(m.DisplayName), strings.ToLower(q)) {
				continue
			}
			row, err := s.modelRowOf(ctx, m)
			if err != nil {
				return err
			}
			d.Rows = append(d.Rows, row)
		}
		if next == "" {
			break
		}
		tok = next
	}
	v.page, v.Title, v.Data = "models", "Models · "+p.Path, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, ""}}
	return nil
}

func (s *UI) modelRowOf(ctx context.Context, m *metadata.Model) (modelRow, error) {
	row := modelRow{M: m, LastActivity: m.UpdatedAt}
	versions, err := s.allVersions(ctx, m.ID)
	if err != nil {
		return row, err
	}
	row.Versions = len(versions)
	for _, ver := range versions {
		if row.Latest == "" || compareSemverStr(ver.Semver, row.Latest) > 0 {
			row.Latest = ver.Semver
		}
		if ver.UpdatedAt.After(row.LastActivity) {
			row.LastActivity = ver.UpdatedAt
		}
	}
	tok := ""
	for {
		cs, next, err := s.store.ListCandidates(ctx, m.ID, metadata.Page{Token: tok, Limit: 1000})
		if err != nil {
			return row, err
		}
		for _, c := range cs {
			if c.Lifecycle != metadata.Active {
				continue
			}
			row.Candidates++
			if t := time.UnixMilli(max(c.StartTime, c.EndTime)); t.After(row.LastActivity) {
				row.LastActivity = t
			}
		}
		if next == "" {
			break
		}
		if row.Candidates >= countCap {
			row.CandidatesCap = true
			break
		}
		tok = next
	}
	return row, nil
}

func (s *UI) allVersions(ctx context.Context, modelID uint64) ([]*metadata.Version, error) {
	var out []*metadata.Version
	tok := ""
	for {
		vs, next, err := s.store.ListVersions(ctx, modelID, metadata.Page{Token: tok, Limit: 1000})
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
		if next == "" {
			return out, nil
		}
		tok = next
	}
}

// modelOf resolves the :project and :name parameters to an active model.
func (s *UI) modelOf(ctx context.Context, ps httprouter.Params) (*metadata.Project, *metadata.Model, error) {
	p, err := httpapi.ResolveProject(ctx, s.store, ps.ByName("project"), false)
	if err != nil {
		return nil, nil, err
	}
	name, err := httpapi.UnescapeParam(ps.ByName("name"))
	if err != nil {
		return nil, nil, err
	}
	m, err := s.store.Model(ctx, metadata.ModelRef{Project: p.ID, Name: name})
	if err == nil && m.Lifecycle != metadata.Active {
		err = fmt.Errorf("model %q is deleted: %w", name, metadata.ErrNotFound)
	}
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, nil, httpapi.WithClientMessage(err, "model %q not found", name)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("model %q: %w", name, err)
	}
	return p, m, nil
}

func modelHref(p *metadata.Project, m *metadata.Model) string {
	return "/ui/projects/" + url.PathEscape(p.Path) + "/models/" + url.PathEscape(m.Name)
}

// The model page and its candidates table.

// sortSpec is a parsed ?sort=<entity>.<key>&order=asc|desc.
type sortSpec struct {
	Entity mlflowfilter.Entity // zero: the default order, newest start time first
	Key    string
	Desc   bool
}

func (o sortSpec) param() string {
	if o.Entity == 0 {
		return ""
	}
	return o.Entity.String() + "." + o.Key
}

// sortAttributes are the sortable attribute columns, by their ?sort= name.
var sortAttributes = []string{"run_name", "status", "start_time", "duration", "version"}

func parseSort(q url.Values) (sortSpec, error) {
	raw := q.Get("sort")
	o := sortSpec{Desc: q.Get("order") != "asc"}
	if raw == "" {
		return sortSpec{Desc: true}, nil
	}
	ent, key, ok := strings.Cut(raw, ".")
	if !ok || key == "" {
		return o, fmt.Errorf("%w: sort %q: use metrics.<key>, params.<key> or attributes.<name>", httpapi.ErrBadRequest, raw)
	}
	switch ent {
	case "metrics":
		o.Entity = mlflowfilter.Metric
	case "params":
		o.Entity = mlflowfilter.Param
	case "attributes":
		if !slices.Contains(sortAttributes, key) {
			return o, fmt.Errorf("%w: sort %q: attributes are %s", httpapi.ErrBadRequest, raw, strings.Join(sortAttributes, ", "))
		}
		o.Entity = mlflowfilter.Attribute
	default:
		return o, fmt.Errorf("%w: sort %q: use metrics.<key>, params.<key> or attributes.<name>", httpapi.ErrBadRequest, raw)
	}
	o.Key = key
	if o.Entity == mlflowfilter.Attribute && key == "start_time" && o.Desc {
		return sortSpec{Desc: true}, nil // the store's own order
	}
	return o, nil
}

// candRow is one row of the candidates table.
type candRow struct {
	C        *metadata.Candidate
	Duration string
	Params   map[string]string
	Metrics  map[string]float64
	Version  string
}

// column is a header of the candidates table.
type column struct {
	Kind   string // "attr", "param", "metric"
	Key    string
	Label  string
	Href   string // sort link
	Sorted string // "asc", "desc" or ""
	Hidden bool
	Hide   string // the ?hide= value
}

type modelData struct {
	P                *metadata.Project
	M                *metadata.Model
	Href             string
	TrackingURI      string
	Versions         []versionRow
	LoggedModels     []loggedModelRow
	LoggedModelsMore bool
	Columns          []column
	Visible          []column
	ParamKeys        []string
	MetricKeys       []string
	Rows             []candRow
	Filter           string
	FilterError      string
	Sort             string
	Order            string
	Hidden           map[string]bool
	NextHref         string
	FirstHref        string
	CSVHref          string
	Chart            *chart
	ChartKeys        []string
	ChartChosen      map[string]bool
	PageNote         string
}

type versionRow struct {
	V       *metadata.Version
	Aliases []string
	// Source is the candidate or logged model whose files back the version; SourceKind says which.
	Source     link
	SourceKind string
	Files      int
	Size       int64
}

func (s *UI) model(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, m, err := s.modelOf(ctx, ps)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := &modelData{P: p, M: m, Href: modelHref(p, m), Filter: q.Get("filter"), Hidden: map[string]bool{}}
	d.TrackingURI = baseURL(r) + "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/ml/mlflow"
	for _, h := range q["hide"] {
		d.Hidden[h] = true
	}
	v.page, v.Title, v.Data = "model", m.DisplayName+" · "+p.Path, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, "/ui/projects/" + url.PathEscape(p.Path) + "/models"}, {m.DisplayName, ""}}

	versions, err := s.allVersions(ctx, m.ID)
	if err != nil {
		return err
	}
	aliases, err := s.store.Aliases(ctx, m.ID)
	if err != nil {
		return err
	}
	l := s.linker(ctx, p)
	versionOf := map[uint64]string{}
	for _, ver := range versions {
		row, err := s.versionRowOf(l, ver, aliases)
		if err != nil {
			return err
		}
		d.Versions = append(d.Versions, row)
		if ver.CandidateID != 0 {
			versionOf[ver.CandidateID] = ver.Semver
		}
	}
	slices.Reverse(d.Versions) // newest first
	if d.LoggedModels, d.LoggedModelsMore, err = s.loggedModelsSection(l, m); err != nil {
		return err
	}

	sort, err := parseSort(q)
	if err == nil {
		var filter mlflowfilter.Filter
		filter, err = mlflowfilter.ParseRunFilter(d.Filter)
		if err == nil {
			err = s.candidatesPage(ctx, r, m, d, sort, filter, versionOf)
		}
	}
	if errors.Is(err, mlflowfilter.ErrInvalid) || errors.Is(err, httpapi.ErrBadRequest) || errors.Is(err, metadata.ErrInvalid) {
		// A bad filter or sort is the user's to fix on this very page: show it there, with a 400.
		d.FilterError = err.Error()
		v.status = http.StatusBadRequest
		d.Rows = nil
		err = nil
	}
	if err != nil {
		return err
	}
	d.Sort, d.Order = sort.param(), "desc"
	if !sort.Desc {
		d.Order = "asc"
	}
	d.columns(q, sort)
	if q.Get("format") == "csv" && d.FilterError == "" {
		v.rawBody, v.rawHeader = d.csv(), http.Header{
			"Content-Type":        {"text/csv; charset=utf-8"},
			"Content-Disposition": {`attachment; filename="` + strings.ReplaceAll(m.Name, "/", "_") + `-candidates.csv"`},
		}
		return nil
	}
	d.chart(q)
	return nil
}

// versionRowOf summarizes a version: its aliases, the candidate or logged model backing it (which may
// belong to another model), and the count and size of its first 1000 files. Errors are the store's.
func (s *UI) versionRowOf(l *linker, ver *metadata.Version, aliases []metadata.ModelAlias) (versionRow, error) {
	row := versionRow{V: ver}
	for _, a := range aliases {
		if a.Seq == ver.Seq {
			row.Aliases = append(row.Aliases, a.Alias)
		}
	}
	var err error
	if ver.LoggedModelID != 0 {
		row.SourceKind = "logged model"
		row.Source, _, err = l.loggedModelByID(ver.LoggedModelID)
	} else {
		row.SourceKind = "run"
		row.Source, err = l.candidate(ver.CandidateID)
	}
	if err != nil {
		return row, err
	}
	files, _, err := s.store.ListFiles(l.ctx, ver.Owner(), ver.Subpath, metadata.Page{Limit: 1000})
	if err != nil {
		return row, err
	}
	for _, f := range files {
		row.Files++
		row.Size += f.Size
	}
	return row, nil
}

// candidatesPage fills d.Rows with one page of candidates from the run query engine, the one
// runs/search asks: metric sorts and the default order page through the store's index, other sorts read
// the model's candidates and sort them in memory, up to the engine's limit.
func (s *UI) candidatesPage(ctx context.Context, r *http.Request, m *metadata.Model, d *modelData,
	sort sortSpec, filter mlflowfilter.Filter, versionOf map[uint64]string) error {
	q := r.URL.Query()
	base := func() url.Values {
		u := url.Values{}
		for k, vs := range q {
			if k != "page" && k != "format" {
				u[k] = vs
			}
		}
		return u
	}
	d.FirstHref = d.Href + "?" + base().Encode()
	query := runquery.Query{
		Scope:         "ui",
		Models:        []*metadata.Model{m},
		View:          metadata.ActiveOnly,
		Filter:        filter,
		Limit:         RowsPerPage,
		NumericParams: true,
		Attribute: func(key string, _ *metadata.Model, c *metadata.Candidate) (runquery.Value, bool) {
			v, ok := versionOf[c.ID]
			return runquery.Text(v), ok && key == "version"
		},
	}
	if sort.Entity != 0 {
		query.Order = []mlflowfilter.OrderBy{{Entity: sort.Entity, Key: sort.Key, Desc: sort.Desc}}
	}
	page, err := s.search.Search(ctx, query, q.Get("page"))
	if err != nil {
		return err
	}
	for _, row := range page.Rows {
		d.Rows = append(d.Rows, rowOf(row, versionOf))
	}
	if page.Next != "" && q.Get("format") != "csv" {
		u := base()
		u.Set("page", page.Next)
		d.NextHref = d.Href + "?" + u.Encode()
	}
	if page.Total >= 0 && len(page.Rows) > 0 {
		d.PageNote = fmt.Sprintf("rows %d–%d of %d", page.Offset+1, page.Offset+len(page.Rows), page.Total)
	}
	return nil
}

// rowOf is a table row of a query result.
func rowOf(row runquery.Row, versionOf map[uint64]string) candRow {
	c, data := row.Candidate, row.Data
	out := candRow{C: c, Duration: formatDuration(c), Params: make(map[string]string, len(data.Params)),
		Metrics: make(map[string]float64, len(data.Metrics)), Version: versionOf[c.ID]}
	for _, p := range data.Params {
		out.Params[p.Key] = p.Value
	}
	for _, mt := range data.Metrics {
		out.Metrics[mt.Key] = mt.Value
	}
	return out
}

// columns computes the table's headers: the attributes, then every param and metric key of the rows shown
// (and the sorted-by key). Keys are those of the page, not of the whole model: collecting every key of
// 10 000 candidates would cost a read of each, on every page view.
func (d *modelData) columns(q url.Values, sort sortSpec) {
	params, metrics := map[string]bool{}, map[string]bool{}
	for _, r := range d.Rows {
		for k := range r.Params {
			params[k] = true
		}
		for k := range r.Metrics {
			metrics[k] = true
		}
	}
	switch sort.Entity {
	case mlflowfilter.Param:
		params[sort.Key] = true
	case mlflowfilter.Metric:
		metrics[sort.Key] = true
	}
	d.ParamKeys = sortedKeys(params)
	d.MetricKeys = sortedKeys(metrics)
	link := func(sortParam string) (string, string) {
		u := url.Values{}
		for k, vs := range q {
			if k != "page" && k != "sort" && k != "order" && k != "format" {
				u[k] = vs
			}
		}
		u.Set("sort", sortParam)
		sorted := ""
		order := "desc"
		if sortParam == "attributes.run_name" || sortParam == "attributes.status" || sortParam == "attributes.version" || strings.HasPrefix(sortParam, "params.") {
			order = "asc" // text reads best A→Z first
		}
		if sortParam == d.Sort || (d.Sort == "" && sortParam == "attributes.start_time") {
			sorted = d.Order
			if d.Order == "desc" {
				order = "asc"
			} else {
				order = "desc"
			}
		}
		u.Set("order", order)
		return d.Href + "?" + u.Encode(), sorted
	}
	add := func(kind, key, label, sortParam string) {
		href, sorted := link(sortParam)
		d.Columns = append(d.Columns, column{Kind: kind, Key: key, Label: label, Href: href, Sorted: sorted,
			Hide: sortParam, Hidden: d.Hidden[sortParam]})
	}
	add("attr", "status", "Status", "attributes.status")
	add("attr", "start_time", "Created", "attributes.start_time")
	add("attr", "duration", "Duration", "attributes.duration")
	for _, k := range d.ParamKeys {
		add("param", k, k, "params."+k)
	}
	for _, k := range d.MetricKeys {
		add("metric", k, k, "metrics."+k)
	}
	add("attr", "version", "Version", "attributes.version")
	for _, c := range d.Columns {
		if !c.Hidden {
			d.Visible = append(d.Visible, c)
		}
	}
	u := url.Values{}
	for k, vs := range q {
		u[k] = vs
	}
	u.Set("format", "csv")
	d.CSVHref = d.Href + "?" + u.Encode()
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// csv renders the current view (rows and visible columns) as CSV.
func (d *modelData) csv() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	head := []string{"iid", "run_id", "name"}
	for _, c := range d.Visible {
		switch c.Kind {
		case "param":
			head = append(head, "params."+c.Key)
		case "metric":
			head = append(head, "metrics."+c.Key)
		default:
			head = append(head, c.Key)
		}
	}
	_ = w.Write(head)
	for _, r := range d.Rows {
		rec := []string{strconv.FormatInt(r.C.IID, 10), r.C.EID.String(), csvSafe(r.C.Name)}
		for _, c := range d.Visible {
			rec = append(rec, csvSafe(r.Cell(c)))
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return buf.Bytes()
}

// csvSafe defuses spreadsheet formula injection: a cell starting with = + - @ is prefixed with a quote,
// unless it is a plain number.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return "'" + s
		}
	}
	return s
}

// Cell is the text of one column of the row; "" when the value is missing.
func (r candRow) Cell(c column) string {
	switch c.Kind {
	case "param":
		return r.Params[c.Key]
	case "metric":
		if v, ok := r.Metrics[c.Key]; ok {
			return formatNum(v)
		}
		return ""
	}
	switch c.Key {
	case "status":
		return r.C.Status.String()
	case "start_time":
		return formatTime(time.UnixMilli(r.C.StartTime))
	case "duration":
		if r.C.EndTime == 0 {
			return ""
		}
		return r.Duration
	case "version":
		return r.Version
	}
	return ""
}

// baseURL is the scheme and host the browser used, for commands shown on pages.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func compareSemverStr(a, b string) int { return pkgtypes.CompareSemver(a, b) }
