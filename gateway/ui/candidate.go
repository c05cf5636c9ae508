package ui

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// maxFiles bounds the artifact tree of one page; beyond it the page says so and points to the API.
const maxFiles = 5000

// maxHistory bounds the points read per metric for a chart.
const maxHistory = 100000

type fileRow struct {
	Path, Name string
	Depth      int
	Dir        bool
	Size       int64
	SHA256     string
	Href       string
}

type candidateData struct {
	P            *metadata.Project
	M            *metadata.Model
	C            *metadata.Candidate
	ModelHref    string
	Duration     string
	Data         *metadata.RunData
	Charts       []*chart
	Files        []fileRow
	FilesMore    bool
	Versions     []link
	Datasets     []datasetRow
	LoggedModels []runLoggedModel
	NextSemver   string
	PromoteErr   string
}

// datasetRow is a dataset input of a run, with MLflow's context tag (training, eval…) taken out of
// the input's other tags.
type datasetRow struct {
	metadata.Dataset
	Context string
	Tags    []metadata.Tag
}

// contextTag is the input tag under which MLflow records what a dataset was used for.
const contextTag = "mlflow.data.context"

func datasetRows(inputs []metadata.DatasetInput) []datasetRow {
	out := make([]datasetRow, 0, len(inputs))
	for _, in := range inputs {
		row := datasetRow{Dataset: in.Dataset}
		for _, t := range in.Tags {
			if t.Key == contextTag {
				row.Context = t.Value
			} else {
				row.Tags = append(row.Tags, t)
			}
		}
		out = append(out, row)
	}
	return out
}

// candidateOf resolves :project, :name and :iid.
func (s *UI) candidateOf(ctx context.Context, ps httprouter.Params) (*metadata.Project, *metadata.Model, *metadata.Candidate, error) {
	p, m, err := s.modelOf(ctx, ps)
	if err != nil {
		return nil, nil, nil, err
	}
	iid, err := strconv.ParseInt(ps.ByName("iid"), 10, 64)
	if err != nil || iid <= 0 {
		return nil, nil, nil, httpapi.NotFound("candidate %q not found", ps.ByName("iid"))
	}
	c, err := httpapi.CandidateOf(ctx, s.store, p.ID, iid, m)
	if err == nil && c.Lifecycle != metadata.Active {
		err = httpapi.NotFound("candidate %d of model %q is deleted", iid, m.Name)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return p, m, c, nil
}

func (s *UI) candidate(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	p, m, c, err := s.candidateOf(r.Context(), ps)
	if err != nil {
		return err
	}
	return s.renderCandidate(r, p, m, c, v, "")
}

func (s *UI) renderCandidate(r *http.Request, p *metadata.Project, m *metadata.Model, c *metadata.Candidate, v *view, promoteErr string) error {
	ctx := r.Context()
	d := &candidateData{P: p, M: m, C: c, ModelHref: modelHref(p, m), Duration: formatDuration(c), PromoteErr: promoteErr}
	data, err := s.store.RunData(ctx, c.ID)
	if err != nil {
		return err
	}
	d.Data = data
	d.Datasets = datasetRows(data.IO.Datasets)
	l := s.linker(ctx, p)
	if d.LoggedModels, err = s.runLoggedModels(l, c, data.IO); err != nil {
		return err
	}
	if d.Versions, err = l.versionsBackedBy(c.ID); err != nil {
		return err
	}
	for _, mt := range data.Metrics {
		series, err := s.history(ctx, c, mt.Key)
		if err != nil {
			return err
		}
		d.Charts = append(d.Charts, renderChart(mt.Key, "step", []chartSeries{series}))
	}
	if d.Files, d.FilesMore, err = s.fileTree(ctx, c.ID, "", func(rel string) string {
		return "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/packages/ml_models/candidate:" +
			strconv.FormatInt(c.IID, 10) + "/files/" + escapePath(rel)
	}); err != nil {
		return err
	}
	versions, err := s.allVersions(ctx, m.ID)
	if err != nil {
		return err
	}
	highest := ""
	for _, ver := range versions {
		if highest == "" || pkgtypes.CompareSemver(ver.Semver, highest) > 0 {
			highest = ver.Semver
		}
	}
	d.NextSemver = pkgtypes.NextMinor(highest)
	name := c.Name
	if name == "" {
		name = "candidate " + strconv.FormatInt(c.IID, 10)
	}
	v.page, v.Title, v.Data = "candidate", name+" · "+m.DisplayName, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, "/ui/projects/" + url.PathEscape(p.Path) + "/models"},
		{m.DisplayName, d.ModelHref}, {name, ""}}
	return nil
}

// history reads a metric's full history (up to maxHistory points) as a series over steps.
func (s *UI) history(ctx context.Context, c *metadata.Candidate, key string) (chartSeries, error) {
	series := chartSeries{Name: key}
	tok := ""
	for len(series.X) < maxHistory {
		pts, next, err := s.store.MetricHistory(ctx, c.ID, key, metadata.Page{Token: tok, Limit: 1000})
		if err != nil {
			return series, err
		}
		for _, pt := range pts {
			series.X = append(series.X, float64(pt.Step))
			series.Y = append(series.Y, pt.Value)
		}
		if next == "" {
			break
		}
		tok = next
	}
	return series, nil
}

// fileTree lists a candidate's files under prefix as a tree: each directory once, before its contents,
// with its total size. href maps a path relative to prefix to its download URL.
func (s *UI) fileTree(ctx context.Context, candidateID uint64, prefix string, href func(string) string) ([]fileRow, bool, error) {
	var files []*metadata.File
	tok := ""
	more := false
	for {
		fs, next, err := s.store.ListFiles(ctx, candidateID, prefix, metadata.Page{Token: tok, Limit: 1000})
		if err != nil {
			return nil, false, err
		}
		files = append(files, fs...)
		if next == "" {
			break
		}
		if len(files) >= maxFiles {
			more = true
			break
		}
		tok = next
	}
	var rows []fileRow
	dirIndex := map[string]int{}
	for _, f := range files {
		rel := f.Path
		if prefix != "" {
			rel = strings.TrimPrefix(strings.TrimPrefix(rel, prefix), "/")
		}
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			dir := strings.Join(parts[:i], "/")
			if _, ok := dirIndex[dir]; !ok {
				dirIndex[dir] = len(rows)
				rows = append(rows, fileRow{Path: dir, Name: parts[i-1] + "/", Depth: i - 1, Dir: true})
			}
			rows[dirIndex[dir]].Size += f.Size
		}
		rows = append(rows, fileRow{Path: rel, Name: path.Base(rel), Depth: len(parts) - 1, Size: f.Size,
			SHA256: f.SHA256, Href: href(rel)})
	}
	return rows, more, nil
}

// escapePath escapes each segment of a file path, keeping the slashes.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// promote creates the next version of the model from the candidate (POST, CSRF-checked by serve).
// A semver may be given; empty means the next minor. A bad or taken semver is shown on the candidate page.
func (s *UI) promote(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, m, c, err := s.candidateOf(ctx, ps)
	if err != nil {
		return err
	}
	semver := strings.TrimSpace(r.PostForm.Get("semver"))
	if semver != "" {
		if err := pkgtypes.ValidateSemver(semver); err != nil {
			v.status = http.StatusBadRequest
			return s.renderCandidate(r, p, m, c, v, err.Error())
		}
	}
	ver := &metadata.Version{Project: p.ID, ModelID: m.ID, Semver: semver, CandidateID: c.ID,
		Description: strings.TrimSpace(r.PostForm.Get("description"))}
	if err := s.store.CreateVersion(ctx, ver); err != nil {
		if errors.Is(err, metadata.ErrExists) || errors.Is(err, metadata.ErrInvalid) {
			v.status = http.StatusBadRequest
			if errors.Is(err, metadata.ErrExists) {
				v.status = http.StatusConflict
			}
			return s.renderCandidate(r, p, m, c, v, err.Error())
		}
		return err
	}
	v.redirect = modelHref(p, m) + "/versions/" + url.PathEscape(ver.Semver)
	return nil
}

// The version page.

type versionData struct {
	P *metadata.Project
	M *metadata.Model
	V *metadata.Version
	// Source is the candidate or logged model whose files back the version (SourceKind says which),
	// SourceID its MLflow id; Run is the logged model's source run, if any.
	Source     link
	SourceKind string
	SourceID   string
	Run        link
	ModelHref  string
	Aliases    []string
	Files      []fileRow
	FilesMore  bool
	Curl       string
	MLflow     string
	Tracking   string
}

func (s *UI) version(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, m, err := s.modelOf(ctx, ps)
	if err != nil {
		return err
	}
	semver, err := httpapi.UnescapeParam(ps.ByName("semver"))
	if err != nil {
		return err
	}
	ver, err := s.store.Version(ctx, metadata.VersionRef{ModelID: m.ID, Semver: semver})
	if errors.Is(err, metadata.ErrNotFound) {
		return httpapi.WithClientMessage(err, "version %q of model %q not found", semver, m.Name)
	}
	if err != nil {
		return fmt.Errorf("version %q: %w", semver, err)
	}
	d := &versionData{P: p, M: m, V: ver, ModelHref: modelHref(p, m)}
	if err := s.versionSource(s.linker(ctx, p), ver, d); err != nil {
		return err
	}
	aliases, err := s.store.Aliases(ctx, m.ID)
	if err != nil {
		return err
	}
	for _, a := range aliases {
		if a.Seq == ver.Seq {
			d.Aliases = append(d.Aliases, a.Alias)
		}
	}
	pkgBase := baseURL(r) + "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/packages/ml_models/" + strconv.FormatInt(ver.ID, 10) + "/files/"
	if d.Files, d.FilesMore, err = s.fileTree(ctx, ver.Owner(), ver.Subpath, func(rel string) string {
		return pkgBase + escapePath(rel)
	}); err != nil {
		return err
	}
	auth := ""
	if s.auth {
		auth = `-H "Authorization: Bearer $MLGATE_TOKEN" `
	}
	var curl []string
	for _, f := range d.Files {
		if !f.Dir {
			curl = append(curl, "curl -fL "+auth+"--create-dirs -o "+shellQuote(f.Path)+" "+shellQuote(f.Href))
		}
	}
	d.Curl = strings.Join(curl, "\n")
	d.Tracking = baseURL(r) + "/api/v4/projects/" + strconv.FormatInt(p.ID, 10) + "/ml/mlflow"
	d.MLflow = "MLFLOW_TRACKING_URI=" + shellQuote(d.Tracking) + " \\\n  mlflow artifacts download -u " +
		shellQuote("models:/"+m.Name+"/"+strconv.FormatInt(ver.Seq, 10)) + " -d " + shellQuote(strings.ReplaceAll(m.Name, "/", "_")+"-"+ver.Semver)
	v.page, v.Title, v.Data = "version", m.DisplayName+" "+ver.Semver, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, "/ui/projects/" + url.PathEscape(p.Path) + "/models"},
		{m.DisplayName, d.ModelHref}, {ver.Semver, ""}}
	return nil
}

// versionSource fills d with the candidate or logged model backing ver, which may be another model's.
// Errors are the store's.
func (s *UI) versionSource(l *linker, ver *metadata.Version, d *versionData) error {
	if ver.LoggedModelID == 0 {
		d.SourceKind = "Candidate"
		c, err := l.store.Candidate(l.ctx, metadata.CandidateRef{ID: ver.CandidateID})
		if errors.Is(err, metadata.ErrNotFound) {
			d.Source = link{Label: "deleted run"}
			return nil
		}
		if err != nil {
			return err
		}
		d.SourceID = c.EID.String()
		d.Source, err = l.candidateLink(c)
		return err
	}
	d.SourceKind = "Logged model"
	var lm *metadata.LoggedModel
	var err error
	if d.Source, lm, err = l.loggedModelByID(ver.LoggedModelID); err != nil || lm == nil {
		return err
	}
	d.SourceID = lm.LMID.String()
	if lm.SourceRunID != 0 {
		d.Run, err = l.candidate(lm.SourceRunID)
	}
	return err
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:+=@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// The compare view: ?c=<iid> repeated.

type compareData struct {
	P         *metadata.Project
	M         *metadata.Model
	ModelHref string
	Cands     []*metadata.Candidate
	Params    []compareRow
	Metrics   []compareRow
	Charts    []*chart
}

type compareRow struct {
	Key    string
	Values []string
	Differ bool
}

// maxCompare bounds the candidates of one compare view.
const maxCompare = 20

func (s *UI) compare(w http.ResponseWriter, r *http.Request, ps httprouter.Params, v *view) error {
	ctx := r.Context()
	p, m, err := s.modelOf(ctx, ps)
	if err != nil {
		return err
	}
	d := &compareData{P: p, M: m, ModelHref: modelHref(p, m)}
	var datas []*metadata.RunData
	seen := map[int64]bool{}
	for _, raw := range r.URL.Query()["c"] {
		iid, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || iid <= 0 {
			return fmt.Errorf("%w: candidate %q is not a number", httpapi.ErrBadRequest, raw)
		}
		if seen[iid] {
			continue
		}
		seen[iid] = true
		if len(d.Cands) == maxCompare {
			return fmt.Errorf("%w: compare at most %d candidates", httpapi.ErrBadRequest, maxCompare)
		}
		c, err := httpapi.CandidateOf(ctx, s.store, p.ID, iid, m)
		if err != nil {
			return err
		}
		data, err := s.store.RunData(ctx, c.ID)
		if err != nil {
			return err
		}
		d.Cands = append(d.Cands, c)
		datas = append(datas, data)
	}
	paramKeys, metricKeys := map[string]bool{}, map[string]bool{}
	for _, data := range datas {
		for _, p := range data.Params {
			paramKeys[p.Key] = true
		}
		for _, mt := range data.Metrics {
			metricKeys[mt.Key] = true
		}
	}
	for _, k := range sortedKeys(paramKeys) {
		row := compareRow{Key: k}
		for _, data := range datas {
			val, _ := runquery.ParamValue(data, k)
			row.Values = append(row.Values, val)
		}
		row.Differ = slices.ContainsFunc(row.Values, func(x string) bool { return x != row.Values[0] })
		d.Params = append(d.Params, row)
	}
	for _, k := range sortedKeys(metricKeys) {
		row := compareRow{Key: k}
		var series []chartSeries
		for i, data := range datas {
			val, ok := runquery.MetricValue(data, k)
			cell := ""
			if ok {
				cell = formatNum(val)
			}
			row.Values = append(row.Values, cell)
			h, err := s.history(ctx, d.Cands[i], k)
			if err != nil {
				return err
			}
			h.Name = candLabel(d.Cands[i])
			series = append(series, h)
		}
		row.Differ = slices.ContainsFunc(row.Values, func(x string) bool { return x != row.Values[0] })
		d.Metrics = append(d.Metrics, row)
		d.Charts = append(d.Charts, renderChart(k, "step", series))
	}
	v.page, v.Title, v.Data = "compare", "Compare · "+m.DisplayName, d
	v.Crumbs = []crumb{{"Projects", "/ui/projects"}, {p.Path, "/ui/projects/" + url.PathEscape(p.Path) + "/models"},
		{m.DisplayName, d.ModelHref}, {"compare", ""}}
	return nil
}

func candLabel(c *metadata.Candidate) string {
	if c.Name != "" {
		return c.Name
	}
	return "#" + strconv.FormatInt(c.IID, 10)
}
