// Package fakegitlab is an http.Handler that serves a GitLab project's MLflow-compatible API from
// memory, for tests of importers. It reproduces the GitLab behaviour described in
// shared/reference/gitlab-ml.md that a reader meets:
//   - routes under /api/v4/projects/<id or escaped path>/ml/mlflow/api/2.0/…, PRIVATE-TOKEN (or Bearer)
//     auth answering 401, and 404 for another project;
//   - search filters, run_view_type and every experiment id but the first ignored; model-versions/search
//     answers every version of every model;
//   - run lifecycle_stage always "active"; experiment artifact_location "not_implemented";
//   - run artifact_uri pointing at the generic package ml_experiment_<iid>/<candidate iid>
//     (or, per run, at the ml_models package candidate:<iid>); file downloads served there;
//   - the artifact proxy listing path=candidate:<iid> (or a version id) flat, with "/" in names
//     %-escaped, and any sub-path listing as empty;
//   - metric histories ordered by step and capped (1000 points by default) without a next page;
//   - registry timestamps in seconds; ModelVersion.version = the database id; current_stage
//     "development"; aliases = [semver]; user_id null; source = a web UI URL;
//   - errors as {"error_code","message"} on MLflow routes and {"message": "404 Not Found"} elsewhere;
//     no logged models (MLflow 3 routes 404).
//
// Populate it with the builder methods before serving; it is safe for concurrent requests.
package fakegitlab

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake GitLab. Its fields may be set before serving.
type Server struct {
	ProjectID   int64  // numeric project id (default 42)
	ProjectPath string // "group/project": the escaped path is accepted as id too
	Token       string // required PRIVATE-TOKEN; "" accepts anonymous requests
	HistoryCap  int    // points returned by metrics/get-history (default 1000)

	mu          sync.Mutex
	experiments []*Experiment
	models      []*Model
	nextCand    int64
	nextVersion int64
	requests    []string
}

// New returns a server for project 42 that requires token ("" for none).
func New(token string) *Server {
	return &Server{ProjectID: 42, ProjectPath: "group/project", Token: token, HistoryCap: 1000, nextVersion: 100}
}

// TrackingPath is the path of the tracking URI: append it to the test server's URL.
func (s *Server) TrackingPath() string {
	return fmt.Sprintf("/api/v4/projects/%d/ml/mlflow", s.ProjectID)
}

// Requests lists the requests served so far ("METHOD path?query").
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Tag is a key/value pair.
type Tag struct{ Key, Value string }

// Experiment is a GitLab ML experiment.
type Experiment struct {
	IID       int64
	Name      string
	Tags      []Tag
	Deleted   bool
	CreatedAt int64 // ms
	UpdatedAt int64
	Runs      []*Candidate
	s         *Server
}

// Point is one metric point.
type Point struct {
	Value     float64
	Timestamp int64
	Step      int64
}

// Candidate is a run.
type Candidate struct {
	IID        int64
	EID        string
	Name       string
	Status     string
	StartTime  int64
	EndTime    int64
	UserID     string
	Params     []Tag
	Tags       []Tag
	Metrics    map[string][]Point // insertion order per key
	metricKeys []string
	Files      map[string][]byte // path relative to the artifact root
	// MLModelPackage makes the run's artifact_uri the newer ml_models candidate:<iid> package.
	MLModelPackage bool
	exp            *Experiment
}

// Model is a GitLab registered model.
type Model struct {
	ID          int64
	Name        string
	Description string
	Tags        []Tag
	CreatedAt   int64 // seconds, as GitLab writes them
	UpdatedAt   int64
	Versions    []*Version
}

// Version is a model version; ID is its database id, which GitLab answers as "version".
type Version struct {
	ID          int64
	Semver      string
	Description string
	Tags        []Tag
	Candidate   *Candidate
	CreatedAt   int64 // seconds
	UpdatedAt   int64
	model       *Model
}

// AddExperiment adds an experiment with the next iid (1, 2, …).
func (s *Server) AddExperiment(name string) *Experiment {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() + int64(len(s.experiments))*1000
	e := &Experiment{IID: int64(len(s.experiments) + 1), Name: name, CreatedAt: now, UpdatedAt: now, s: s}
	s.experiments = append(s.experiments, e)
	return e
}

// SetTag adds an experiment tag.
func (e *Experiment) SetTag(k, v string) *Experiment { e.Tags = append(e.Tags, Tag{k, v}); return e }

// AddRun adds a finished candidate with a deterministic eid.
func (e *Experiment) AddRun(name string) *Candidate {
	e.s.mu.Lock()
	defer e.s.mu.Unlock()
	e.s.nextCand++
	iid := e.s.nextCand
	start := e.CreatedAt + iid*10_000
	c := &Candidate{IID: iid, EID: fmt.Sprintf("%032x", 0xca000000+iid), Name: name, Status: "FINISHED",
		StartTime: start, EndTime: start + 5000, Metrics: map[string][]Point{}, Files: map[string][]byte{}, exp: e}
	e.Runs = append(e.Runs, c)
	return c
}

// Param adds a param.
func (c *Candidate) Param(k, v string) *Candidate { c.Params = append(c.Params, Tag{k, v}); return c }

// Tag adds a tag.
func (c *Candidate) Tag(k, v string) *Candidate { c.Tags = append(c.Tags, Tag{k, v}); return c }

// Log appends a metric point.
func (c *Candidate) Log(key string, value float64, timestamp, step int64) *Candidate {
	if _, ok := c.Metrics[key]; !ok {
		c.metricKeys = append(c.metricKeys, key)
	}
	c.Metrics[key] = append(c.Metrics[key], Point{value, timestamp, step})
	return c
}

// File stores an artifact at path (any depth; GitLab flattens it).
func (c *Candidate) File(path string, data []byte) *Candidate { c.Files[path] = data; return c }

// AddModel adds a registered model.
func (s *Server) AddModel(name, description string) *Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC).Unix() + int64(len(s.models))
	m := &Model{ID: int64(len(s.models) + 1), Name: name, Description: description, CreatedAt: t, UpdatedAt: t}
	s.models = append(s.models, m)
	return m
}

// SetTag adds a model tag.
func (m *Model) SetTag(k, v string) *Model { m.Tags = append(m.Tags, Tag{k, v}); return m }

// AddVersion adds a version backed by run (nil: a fresh candidate-less version) and returns it; its ID
// comes from a project-wide counter, so it is not 1, 2, 3 per model.
func (s *Server) AddVersion(m *Model, semver string, run *Candidate) *Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextVersion += 7 // database ids of other projects' versions fall in between
	t := m.CreatedAt + int64(len(m.Versions)+1)*60
	v := &Version{ID: s.nextVersion, Semver: semver, Candidate: run, CreatedAt: t, UpdatedAt: t, model: m}
	m.Versions = append(m.Versions, v)
	m.UpdatedAt = t
	return v
}

// SetTag adds a version tag.
func (v *Version) SetTag(k, val string) *Version { v.Tags = append(v.Tags, Tag{k, val}); return v }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+r.URL.RequestURI())
	s.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/projects/")
	if !ok {
		gitlabError(w, http.StatusNotFound, "404 Not Found")
		return
	}
	project, rest, _ := strings.Cut(rest, "/")
	if s.Token != "" && r.Header.Get("PRIVATE-TOKEN") != s.Token && r.Header.Get("Authorization") != "Bearer "+s.Token {
		gitlabError(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	if p, _ := url.PathUnescape(project); project != strconv.FormatInt(s.ProjectID, 10) && p != s.ProjectPath {
		gitlabError(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case strings.HasPrefix(rest, "ml/mlflow/api/2.0/mlflow/"):
		s.rpc(w, r, strings.TrimPrefix(rest, "ml/mlflow/api/2.0/mlflow/"))
	case rest == "ml/mlflow/api/2.0/mlflow-artifacts/artifacts" && r.Method == http.MethodGet:
		s.proxyList(w, r)
	case strings.HasPrefix(rest, "ml/mlflow/api/2.0/mlflow-artifacts/artifacts/") && r.Method == http.MethodGet:
		s.proxyGet(w, r, strings.TrimPrefix(rest, "ml/mlflow/api/2.0/mlflow-artifacts/artifacts/"))
	case strings.HasPrefix(rest, "packages/generic/") && r.Method == http.MethodGet:
		s.genericGet(w, r, strings.TrimPrefix(rest, "packages/generic/"))
	case strings.HasPrefix(rest, "packages/ml_models/") && r.Method == http.MethodGet:
		s.modelPackageGet(w, r, strings.TrimPrefix(rest, "packages/ml_models/"))
	default:
		gitlabError(w, http.StatusNotFound, "404 Not Found")
	}
}

func gitlabError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

func mlflowError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// request reads the fields of a GET query or a JSON body into a flat map of string lists.
func request(r *http.Request) map[string][]string {
	out := map[string][]string{}
	for k, v := range r.URL.Query() {
		out[k] = v
	}
	if r.Method != http.MethodGet {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		for k, v := range body {
			switch v := v.(type) {
			case []any:
				for _, x := range v {
					out[k] = append(out[k], fmt.Sprint(x))
				}
			case string:
				out[k] = []string{v}
			case float64:
				out[k] = []string{strconv.FormatFloat(v, 'f', -1, 64)}
			}
		}
	}
	return out
}

func first(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// page cuts items at an offset token; GitLab pages with cursors, which readers must treat as opaque.
func page[T any](items []T, q map[string][]string, def, limit int) ([]T, string) {
	n := def
	if v, err := strconv.Atoi(first(q, "max_results")); err == nil && v > 0 {
		n = min(v, limit)
	}
	off := 0
	if tok := first(q, "page_token"); tok != "" {
		if b, err := base64.StdEncoding.DecodeString(tok); err == nil {
			off, _ = strconv.Atoi(strings.TrimPrefix(string(b), "cursor:"))
		}
	}
	if off > len(items) {
		off = len(items)
	}
	end := min(off+n, len(items))
	next := ""
	if end < len(items) {
		next = base64.StdEncoding.EncodeToString([]byte("cursor:" + strconv.Itoa(end)))
	}
	return items[off:end], next
}

func (s *Server) rpc(w http.ResponseWriter, r *http.Request, rpc string) {
	q := request(r)
	switch rpc {
	case "experiments/search", "experiments/list":
		exps, next := page(s.experiments, q, 1000, 1000)
		out := map[string]any{"experiments": mapSlice(exps, s.experimentJSON)}
		if next != "" {
			out["next_page_token"] = next
		}
		writeJSON(w, 200, out)
	case "experiments/get":
		e := s.experiment(first(q, "experiment_id"))
		if e == nil {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Experiment not found")
			return
		}
		writeJSON(w, 200, map[string]any{"experiment": s.experimentJSON(e)})
	case "runs/search":
		// Only the first experiment id counts; filter and run_view_type are ignored.
		e := s.experiment(first(q, "experiment_ids"))
		if e == nil {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Experiment not found")
			return
		}
		runs, next := page(e.Runs, q, 200, 1000)
		out := map[string]any{"runs": mapSlice(runs, func(c *Candidate) any { return s.runJSON(r, c) })}
		if next != "" {
			out["next_page_token"] = next
		}
		writeJSON(w, 200, out)
	case "runs/get":
		c := s.candidate(first(q, "run_id"))
		if c == nil {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Candidate not found")
			return
		}
		writeJSON(w, 200, map[string]any{"run": s.runJSON(r, c)})
	case "metrics/get-history":
		c := s.candidate(first(q, "run_id"))
		if c == nil {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Candidate not found")
			return
		}
		key := first(q, "metric_key")
		pts := append([]Point(nil), c.Metrics[key]...)
		sort.SliceStable(pts, func(i, j int) bool { return pts[i].Step < pts[j].Step })
		if len(pts) > s.HistoryCap {
			pts = pts[:s.HistoryCap]
		}
		ms := make([]any, len(pts))
		for i, p := range pts {
			ms[i] = metricJSON(key, p)
		}
		writeJSON(w, 200, map[string]any{"metrics": ms})
	case "registered-models/search":
		models, next := page(s.models, q, 100, 1000)
		out := map[string]any{"registered_models": mapSlice(models, s.modelJSON)}
		if next != "" {
			out["next_page_token"] = next
		}
		writeJSON(w, 200, out)
	case "registered-models/get":
		for _, m := range s.models {
			if m.Name == first(q, "name") {
				writeJSON(w, 200, map[string]any{"registered_model": s.modelJSON(m)})
				return
			}
		}
		mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Model not found")
	case "model-versions/search":
		// The name filter is ignored: every version of every model.
		var all []*Version
		for _, m := range s.models {
			all = append(all, m.Versions...)
		}
		vs, next := page(all, q, 10000, 10000)
		out := map[string]any{"model_versions": mapSlice(vs, func(v *Version) any { return s.versionJSON(r, v) })}
		if next != "" {
			out["next_page_token"] = next
		}
		writeJSON(w, 200, out)
	default:
		gitlabError(w, http.StatusNotFound, "404 Not Found")
	}
}

func mapSlice[T any](in []T, f func(T) any) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func (s *Server) experiment(id string) *Experiment {
	for _, e := range s.experiments {
		if strconv.FormatInt(e.IID, 10) == id {
			return e
		}
	}
	return nil
}

func (s *Server) candidate(eid string) *Candidate {
	for _, e := range s.experiments {
		for _, c := range e.Runs {
			if c.EID == eid {
				return c
			}
		}
	}
	return nil
}

func (s *Server) candidateByIID(iid string) *Candidate {
	for _, e := range s.experiments {
		for _, c := range e.Runs {
			if strconv.FormatInt(c.IID, 10) == iid {
				return c
			}
		}
	}
	return nil
}

func (s *Server) version(id string) *Version {
	for _, m := range s.models {
		for _, v := range m.Versions {
			if strconv.FormatInt(v.ID, 10) == id {
				return v
			}
		}
	}
	return nil
}

func kvJSON(in []Tag) []any {
	out := make([]any, len(in))
	for i, t := range in {
		out[i] = map[string]string{"key": t.Key, "value": t.Value}
	}
	return out
}

func (s *Server) experimentJSON(e *Experiment) any {
	stage := "active"
	if e.Deleted {
		stage = "deleted"
	}
	return map[string]any{"experiment_id": strconv.FormatInt(e.IID, 10), "name": e.Name, "artifact_location": "not_implemented",
		"lifecycle_stage": stage, "creation_time": e.CreatedAt, "last_update_time": e.UpdatedAt, "tags": kvJSON(e.Tags)}
}

func floatJSON(v float64) any {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "Infinity"
	case math.IsInf(v, -1):
		return "-Infinity"
	}
	return v
}

func metricJSON(key string, p Point) any {
	return map[string]any{"key": key, "value": floatJSON(p.Value), "timestamp": p.Timestamp, "step": p.Step}
}

func host(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ArtifactURI is the run's artifact_uri as the server writes it for a request to host base.
func (s *Server) ArtifactURI(base string, c *Candidate) string {
	if c.MLModelPackage {
		return fmt.Sprintf("%s/api/v4/projects/%d/packages/ml_models/candidate:%d/files/", base, s.ProjectID, c.IID)
	}
	return fmt.Sprintf("%s/api/v4/projects/%d/packages/generic/ml_experiment_%d/%d/", base, s.ProjectID, c.exp.IID, c.IID)
}

func (s *Server) runJSON(r *http.Request, c *Candidate) any {
	var latest []any
	for _, k := range c.metricKeys {
		pts := c.Metrics[k]
		latest = append(latest, metricJSON(k, pts[len(pts)-1])) // GitLab: the last inserted row
	}
	info := map[string]any{"run_id": c.EID, "run_uuid": c.EID, "run_name": c.Name, "experiment_id": strconv.FormatInt(c.exp.IID, 10),
		"user_id": nil, "status": c.Status, "start_time": c.StartTime, "artifact_uri": s.ArtifactURI(host(r), c), "lifecycle_stage": "active"}
	if c.EndTime != 0 {
		info["end_time"] = c.EndTime
	}
	return map[string]any{"info": info, "data": map[string]any{"metrics": latest, "params": kvJSON(c.Params), "tags": kvJSON(c.Tags)}}
}

func (s *Server) modelJSON(m *Model) any {
	out := map[string]any{"name": m.Name, "description": m.Description, "creation_timestamp": m.CreatedAt,
		"last_updated_timestamp": m.UpdatedAt, "tags": kvJSON(m.Tags), "user_id": nil}
	if n := len(m.Versions); n > 0 {
		// "latest" is the highest semver; a fake keeps the last added.
		out["latest_versions"] = []any{s.versionJSON(nil, m.Versions[n-1])}
	}
	return out
}

func (s *Server) versionJSON(r *http.Request, v *Version) any {
	out := map[string]any{"name": v.model.Name, "version": strconv.FormatInt(v.ID, 10), "creation_timestamp": v.CreatedAt,
		"last_updated_timestamp": v.UpdatedAt, "current_stage": "development", "description": v.Description,
		"source": fmt.Sprintf("/group/project/-/ml/models/%d/versions/%d", v.model.ID, v.ID), "status": "READY",
		"tags": kvJSON(v.Tags), "aliases": []string{v.Semver}, "user_id": nil, "run_link": ""}
	if v.Candidate != nil {
		out["run_id"] = v.Candidate.EID
	}
	return out
}

// files returns the files an artifact proxy id names: candidate:<iid> or a model version id.
func (s *Server) files(id string) (map[string][]byte, bool) {
	if iid, ok := strings.CutPrefix(id, "candidate:"); ok {
		if c := s.candidateByIID(iid); c != nil {
			return c.Files, true
		}
		return nil, false
	}
	if v := s.version(id); v != nil {
		if v.Candidate == nil {
			return map[string][]byte{}, true
		}
		return v.Candidate.Files, true
	}
	return nil, false
}

func (s *Server) proxyList(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	id, sub, _ := strings.Cut(p, "/")
	files, ok := s.files(id)
	if !ok {
		mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Package not found")
		return
	}
	list := []any{}
	if sub == "" {
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			// Package files are flat: the stored name is the escaped path.
			list = append(list, map[string]any{"path": url.PathEscape(name), "is_dir": false, "file_size": len(files[name])})
		}
	}
	writeJSON(w, 200, map[string]any{"files": list})
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, files map[string][]byte, escaped string) {
	name, err := url.PathUnescape(escaped)
	if err != nil {
		gitlabError(w, 400, "400 Bad request")
		return
	}
	data, ok := files[name]
	if !ok {
		gitlabError(w, 404, "404 Not Found")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

func (s *Server) proxyGet(w http.ResponseWriter, r *http.Request, rest string) {
	id, file, _ := strings.Cut(rest, "/")
	id, _ = url.PathUnescape(id)
	files, ok := s.files(id)
	if !ok {
		mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Package not found")
		return
	}
	s.serveFile(w, r, files, file)
}

func (s *Server) genericGet(w http.ResponseWriter, r *http.Request, rest string) {
	segs := strings.SplitN(rest, "/", 3)
	if len(segs) < 3 || segs[2] == "" {
		gitlabError(w, 404, "404 Not Found")
		return
	}
	c := s.candidateByIID(segs[1])
	if c == nil || segs[0] != "ml_experiment_"+strconv.FormatInt(c.exp.IID, 10) {
		gitlabError(w, 404, "404 Package Not Found")
		return
	}
	s.serveFile(w, r, c.Files, segs[2])
}

func (s *Server) modelPackageGet(w http.ResponseWriter, r *http.Request, rest string) {
	id, file, ok := strings.Cut(rest, "/files/")
	if !ok || file == "" {
		gitlabError(w, 404, "404 Not Found")
		return
	}
	id, _ = url.PathUnescape(id)
	files, found := s.files(id)
	if !found {
		gitlabError(w, 404, "404 Package Not Found")
		return
	}
	s.serveFile(w, r, files, file)
}
