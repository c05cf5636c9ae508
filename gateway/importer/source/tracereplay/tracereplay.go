// Package tracereplay is an http.Handler that answers an importer's read requests with the responses a
// real MLflow server gave in a recorded trace (shared/traces/*.jsonl), so that a parser meets the
// reference server's exact shapes: numbers as it wrote them, empty lists as {}, missing
// next_page_token, optional MLflow 3 fields.
//
// A trace records a client workflow, not an importer, so requests are matched by what identifies an
// entity rather than byte for byte:
//   - every entity object the trace's responses ever showed is kept verbatim (the most complete
//     recording of it, the latest among equals): experiments, runs, metric histories (by run and
//     key), registered models, model versions, logged models, artifact listings (by path) and
//     downloads (by path; the trace keeps sizes, not bytes, so a download serves a deterministic
//     pattern of the recorded size, with Range support);
//   - gets answer the kept object, or the recorded error when the trace only saw an error for that key;
//   - searches answer every kept object of the kind that the identifying parameters select
//     (experiment_ids; the name of a model-versions filter), ignoring other filters, view types and
//     ordering, and page by max_results with the reference server's base64 {"offset": N} tokens;
//   - an empty answer is {} and the last page has no next_page_token, as the reference server does.
//
// Deletions are not replayed: an entity the workflow deleted at the end is still served as last seen.
// Long response bodies are cut in the trace ("...<N chars>"); such a body is repaired by keeping every
// complete value and closing the open objects and arrays, so its entity is served as far as recorded.
package tracereplay

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Record is one line of a trace.
type Record struct {
	Method   string `json:"method"`
	Path     string `json:"path"`
	Query    string `json:"query"`
	ReqBody  string `json:"req_body"`
	Status   int    `json:"status"`
	RespLen  string `json:"resp_len"`
	RespBody string `json:"resp_body"`
}

// entity is one kept object.
type entity struct {
	raw      json.RawMessage
	complete bool
	seq      int // order of first appearance
}

// Handler replays one trace.
type Handler struct {
	experiments  map[string]*entity
	runs         map[string]*entity
	histories    map[[2]string]*entity // run id, key → the metrics array
	models       map[string]*entity
	versions     map[[2]string]*entity // name, version
	loggedModels map[string]*entity
	listings     map[string]*entity     // listed path → the files array
	downloads    map[string]int64       // path → size
	errors       map[string]errorAnswer // "rpc key" → the recorded error when no success was seen
	seq          int
}

type errorAnswer struct {
	status int
	body   string
}

// Load reads a trace file.
func Load(path string) (*Handler, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &Handler{experiments: map[string]*entity{}, runs: map[string]*entity{}, histories: map[[2]string]*entity{},
		models: map[string]*entity{}, versions: map[[2]string]*entity{}, loggedModels: map[string]*entity{},
		listings: map[string]*entity{}, downloads: map[string]int64{}, errors: map[string]errorAnswer{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for n := 1; sc.Scan(); n++ {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		h.add(rec)
	}
	return h, sc.Err()
}

var cutMark = regexp.MustCompile(`\.\.\.<\d+ chars>$`)
var streamMark = regexp.MustCompile(`^<stream (\d+) bytes>$`)

// body parses a recorded body, repairing a cut one.
func body(rec Record) (json.RawMessage, bool) {
	s := rec.RespBody
	if s == "" {
		return nil, false
	}
	if loc := cutMark.FindStringIndex(s); loc != nil {
		raw, _ := Repair(s[:loc[0]])
		return raw, false
	}
	if !json.Valid([]byte(s)) {
		return nil, false
	}
	return json.RawMessage(s), true
}

func field(raw json.RawMessage, name string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m[name]
}

func items(raw json.RawMessage) []json.RawMessage {
	var a []json.RawMessage
	_ = json.Unmarshal(raw, &a)
	return a
}

func str(raw json.RawMessage, path ...string) string {
	for _, p := range path {
		raw = field(raw, p)
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return strings.Trim(string(raw), `"`)
	}
	return s
}

// keep stores e under key unless a more complete (or as complete and later) recording is there.
func (h *Handler) keep(m map[string]*entity, key string, raw json.RawMessage, complete bool) {
	if key == "" || raw == nil {
		return
	}
	h.seq++
	old := m[key]
	if old == nil {
		m[key] = &entity{raw: raw, complete: complete, seq: h.seq}
		return
	}
	if complete || !old.complete {
		old.raw, old.complete = raw, complete
	}
}

func runKey(raw json.RawMessage) string {
	if id := str(raw, "info", "run_id"); id != "" {
		return id
	}
	return str(raw, "info", "run_uuid")
}

func (h *Handler) add(rec Record) {
	p := rec.Path
	q, _ := url.ParseQuery(rec.Query)
	if rest, ok := strings.CutPrefix(p, "/api/2.0/mlflow-artifacts/artifacts/"); ok && rec.Method == http.MethodGet && rec.Status == 200 {
		size, _ := strconv.ParseInt(rec.RespLen, 10, 64)
		if m := streamMark.FindStringSubmatch(rec.RespBody); m != nil {
			size, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if rest, err := url.PathUnescape(rest); err == nil {
			h.downloads[rest] = size
		}
		return
	}
	rpc, ok := strings.CutPrefix(p, "/api/2.0/mlflow/")
	if p == "/api/2.0/mlflow-artifacts/artifacts" {
		rpc, ok = "list", true
	}
	if !ok {
		return
	}
	raw, complete := body(rec)
	if rec.Status != 200 {
		if key := errorKey(rec.Method, rpc, q); key != "" {
			h.errors[key] = errorAnswer{rec.Status, rec.RespBody}
		}
		return
	}
	if raw == nil {
		return
	}
	kept := func(m map[string]*entity, key string, obj json.RawMessage) { h.keep(m, key, obj, complete) }
	switch {
	case rpc == "list":
		kept(h.listings, q.Get("path"), field(raw, "files"))
	case rpc == "experiments/get" || rpc == "experiments/get-by-name":
		e := field(raw, "experiment")
		kept(h.experiments, str(e, "experiment_id"), e)
	case rpc == "experiments/search":
		for _, e := range items(field(raw, "experiments")) {
			kept(h.experiments, str(e, "experiment_id"), e)
		}
	case rpc == "runs/get" || rpc == "runs/create":
		r := field(raw, "run")
		kept(h.runs, runKey(r), r)
	case rpc == "runs/search":
		for _, r := range items(field(raw, "runs")) {
			kept(h.runs, runKey(r), r)
		}
	case rpc == "metrics/get-history":
		run := q.Get("run_id")
		if run == "" {
			run = q.Get("run_uuid")
		}
		key := [2]string{run, q.Get("metric_key")}
		if ms := field(raw, "metrics"); ms != nil {
			h.seq++
			if old := h.histories[key]; old == nil || complete || !old.complete {
				h.histories[key] = &entity{raw: ms, complete: complete, seq: h.seq}
			}
		}
	case strings.HasPrefix(rpc, "registered-models/") && rpc != "registered-models/search" && rpc != "registered-models/alias":
		if m := field(raw, "registered_model"); m != nil {
			kept(h.models, str(m, "name"), m)
		}
	case rpc == "registered-models/search":
		for _, m := range items(field(raw, "registered_models")) {
			kept(h.models, str(m, "name"), m)
		}
	case strings.HasPrefix(rpc, "model-versions/") || rpc == "registered-models/alias":
		if v := field(raw, "model_version"); v != nil {
			h.keepVersion(v, complete)
		}
		for _, v := range items(field(raw, "model_versions")) {
			h.keepVersion(v, complete)
		}
	case rpc == "logged-models/search":
		for _, m := range items(field(raw, "models")) {
			kept(h.loggedModels, str(m, "info", "model_id"), m)
		}
	case rpc == "logged-models" || strings.HasPrefix(rpc, "logged-models/"):
		if m := field(raw, "model"); m != nil {
			kept(h.loggedModels, str(m, "info", "model_id"), m)
		}
	}
}

func (h *Handler) keepVersion(v json.RawMessage, complete bool) {
	key := [2]string{str(v, "name"), str(v, "version")}
	if key[0] == "" || key[1] == "" {
		return
	}
	h.seq++
	if old := h.versions[key]; old == nil {
		h.versions[key] = &entity{raw: v, complete: complete, seq: h.seq}
	} else if complete || !old.complete {
		old.raw, old.complete = v, complete
	}
}

// errorKey names the entity a failed get was about.
func errorKey(method, rpc string, q url.Values) string {
	switch {
	case rpc == "runs/get":
		return rpc + " " + q.Get("run_id")
	case rpc == "experiments/get":
		return rpc + " " + q.Get("experiment_id")
	case rpc == "registered-models/get":
		return rpc + " " + q.Get("name")
	case rpc == "model-versions/get":
		return rpc + " " + q.Get("name") + "/" + q.Get("version")
	case strings.HasPrefix(rpc, "logged-models/") && method == http.MethodGet:
		return rpc
	}
	return ""
}

// ServeHTTP answers the importer's read requests.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/2.0/mlflow-artifacts/artifacts/"); ok && r.Method == http.MethodGet {
		h.download(w, r, rest)
		return
	}
	if r.URL.Path == "/api/2.0/mlflow-artifacts/artifacts" && r.Method == http.MethodGet {
		if l := h.listings[r.URL.Query().Get("path")]; l != nil && len(items(l.raw)) > 0 {
			writeRaw(w, 200, []byte(`{"files":`+string(l.raw)+`}`))
			return
		}
		writeRaw(w, 200, []byte("{}")) // a file or a missing path lists as {}
		return
	}
	rpc, ok := strings.CutPrefix(r.URL.Path, "/api/2.0/mlflow/")
	if !ok {
		mlflowError(w, 404, "ENDPOINT_NOT_FOUND", "not in the trace: "+r.URL.Path)
		return
	}
	q := requestFields(r)
	switch {
	case rpc == "experiments/search":
		h.list(w, q, "experiments", sorted(h.experiments, nil))
	case rpc == "experiments/get":
		h.get(w, rpc, q.Get("experiment_id"), "experiment", h.experiments[q.Get("experiment_id")])
	case rpc == "runs/search":
		ids := map[string]bool{}
		for _, id := range q["experiment_ids"] {
			ids[id] = true
		}
		h.list(w, q, "runs", sorted(h.runs, func(e *entity) bool { return ids[str(e.raw, "info", "experiment_id")] }))
	case rpc == "runs/get":
		id := q.Get("run_id")
		if id == "" {
			id = q.Get("run_uuid")
		}
		h.get(w, rpc, id, "run", h.runs[id])
	case rpc == "metrics/get-history":
		h.history(w, q)
	case rpc == "registered-models/search":
		h.list(w, q, "registered_models", sorted(h.models, nil))
	case rpc == "registered-models/get":
		h.get(w, rpc, q.Get("name"), "registered_model", h.models[q.Get("name")])
	case rpc == "model-versions/search":
		name := filterName(q.Get("filter"))
		var vs []*entity
		for k, e := range h.versions {
			if name == "" || k[0] == name {
				vs = append(vs, e)
			}
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].seq < vs[j].seq })
		h.list(w, q, "model_versions", vs)
	case rpc == "model-versions/get":
		h.get(w, rpc, q.Get("name")+"/"+q.Get("version"), "model_version", h.versions[[2]string{q.Get("name"), q.Get("version")}])
	case rpc == "logged-models/search":
		ids := map[string]bool{}
		for _, id := range q["experiment_ids"] {
			ids[id] = true
		}
		h.list(w, q, "models", sorted(h.loggedModels, func(e *entity) bool { return ids[str(e.raw, "info", "experiment_id")] }))
	case strings.HasPrefix(rpc, "logged-models/") && r.Method == http.MethodGet:
		id := strings.TrimPrefix(rpc, "logged-models/")
		h.get(w, rpc, "", "model", h.loggedModels[id])
	default:
		mlflowError(w, 404, "ENDPOINT_NOT_FOUND", "not replayed: "+r.Method+" "+r.URL.Path)
	}
}

var nameEq = regexp.MustCompile(`^\s*name\s*=\s*(?:'([^']*)'|"([^"]*)")\s*$`)

func filterName(f string) string {
	m := nameEq.FindStringSubmatch(f)
	if m == nil {
		return ""
	}
	return m[1] + m[2]
}

func sorted(m map[string]*entity, keep func(*entity) bool) []*entity {
	var out []*entity
	for _, e := range m {
		if keep == nil || keep(e) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

func (h *Handler) get(w http.ResponseWriter, rpc, key, wrapper string, e *entity) {
	if e != nil {
		writeRaw(w, 200, []byte(`{"`+wrapper+`":`+string(e.raw)+`}`))
		return
	}
	if a, ok := h.errors[rpc+" "+key]; ok {
		writeRaw(w, a.status, []byte(a.body))
		return
	}
	if a, ok := h.errors[rpc]; ok {
		writeRaw(w, a.status, []byte(a.body))
		return
	}
	mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "not in the trace: "+rpc+" "+key)
}

// list pages es as the reference server does: base64 {"offset": N} tokens, no token on the last page,
// {} when there is nothing.
func (h *Handler) list(w http.ResponseWriter, q url.Values, field string, es []*entity) {
	raws := make([]json.RawMessage, len(es))
	for i, e := range es {
		raws[i] = e.raw
	}
	writePage(w, q, field, raws)
}

func writePage(w http.ResponseWriter, q url.Values, field string, raws []json.RawMessage) {
	off := 0
	if tok := q.Get("page_token"); tok != "" {
		var t struct {
			Offset int `json:"offset"`
		}
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil || json.Unmarshal(b, &t) != nil || t.Offset < 0 {
			mlflowError(w, 400, "INVALID_PARAMETER_VALUE", "Invalid page token")
			return
		}
		off = min(t.Offset, len(raws))
	}
	n := len(raws)
	if v, err := strconv.Atoi(q.Get("max_results")); err == nil && v > 0 {
		n = v
	}
	end := min(off+n, len(raws))
	if end == off {
		writeRaw(w, 200, []byte("{}"))
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"` + field + `":[`)
	for i, r := range raws[off:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r)
	}
	b.WriteString("]")
	if end < len(raws) {
		tok := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf(`{"offset": %d}`, end)))
		b.WriteString(`,"next_page_token":"` + tok + `"`)
	}
	b.WriteString("}")
	writeRaw(w, 200, b.Bytes())
}

func (h *Handler) history(w http.ResponseWriter, q url.Values) {
	run := q.Get("run_id")
	if run == "" {
		run = q.Get("run_uuid")
	}
	if _, ok := h.runs[run]; !ok {
		if e := h.histories[[2]string{run, q.Get("metric_key")}]; e == nil {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "Run with id="+run+" not found")
			return
		}
	}
	e := h.histories[[2]string{run, q.Get("metric_key")}]
	if e == nil {
		writeRaw(w, 200, []byte("{}")) // an unknown key on a known run
		return
	}
	writePage(w, q, "metrics", items(e.raw))
}

func (h *Handler) download(w http.ResponseWriter, r *http.Request, rest string) {
	p, err := url.PathUnescape(rest)
	size, ok := h.downloads[p]
	if listed, found := h.listedSize(p); found {
		// The 2.17 trace records chunked downloads with length 0; the listing has the real size.
		size = listed
	}
	if err != nil || !ok {
		mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "File not found: "+rest)
		return
	}
	http.ServeContent(w, r, "", time.Time{}, &patternReader{size: size})
}

// listedSize is the file_size a recorded listing of p's directory gives p.
func (h *Handler) listedSize(p string) (int64, bool) {
	i := strings.LastIndex(p, "/")
	if i < 0 {
		return 0, false
	}
	l := h.listings[p[:i]]
	if l == nil {
		return 0, false
	}
	for _, f := range items(l.raw) {
		if str(f, "path") == p[i+1:] {
			n, err := strconv.ParseInt(str(f, "file_size"), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// Content is the bytes the handler serves for a recorded download of size bytes: the trace keeps sizes
// only, so every file is the same deterministic pattern.
func Content(size int64) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = pattern(int64(i))
	}
	return b
}

func pattern(i int64) byte { return byte(i*7 + i>>8) }

// patternReader is an io.ReadSeeker over Content(size) without holding it (the 20 MB file).
type patternReader struct{ size, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.size {
		return 0, ioEOF
	}
	n := int(min(int64(len(b)), p.size-p.off))
	for i := range n {
		b[i] = pattern(p.off + int64(i))
	}
	p.off += int64(n)
	return n, nil
}

func (p *patternReader) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case 0:
	case 1:
		off += p.off
	case 2:
		off += p.size
	}
	if off < 0 {
		return 0, fmt.Errorf("negative seek")
	}
	p.off = off
	return off, nil
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func mlflowError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(map[string]string{"error_code": code, "message": msg})
	writeRaw(w, status, b)
}

// requestFields merges the query and a JSON body into url.Values (lists as repeated values).
func requestFields(r *http.Request) url.Values {
	q := r.URL.Query()
	if r.Body == nil || r.Method == http.MethodGet {
		return q
	}
	var m map[string]any
	if json.NewDecoder(r.Body).Decode(&m) != nil {
		return q
	}
	for k, v := range m {
		switch v := v.(type) {
		case []any:
			for _, x := range v {
				q.Add(k, fmt.Sprint(x))
			}
		case float64:
			q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
		case string:
			q.Set(k, v)
		}
	}
	return q
}
