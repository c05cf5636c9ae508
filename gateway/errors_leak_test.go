package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/localfs"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// leakEnv is a gateway with auth, over bbolt and a localfs backend in a temp dir (so that a leaked
// filesystem path would show), whose log a test can read.
type leakEnv struct {
	*gatewaytest.Env
	dir  string
	logs *syncBuffer
}

func newLeakEnv(t *testing.T) *leakEnv {
	dir := t.TempDir()
	store, err := boltstore.Open(filepath.Join(dir, "mlgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := localfs.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	st := artifact.SingleStorage("local", backends.Checked("local", local))
	env := &gatewaytest.Env{T: t, Store: store}
	env.Srv = httptest.NewServer(gateway.NewWithStorage(gateway.Config{Auth: true}, store, st, log).Handler())
	t.Cleanup(func() {
		env.Srv.Close()
		_ = store.Close()
	})
	return &leakEnv{Env: env, dir: dir, logs: logs}
}

// project is one project's view of the gateway: its token and URL prefixes.
type project struct {
	e      *leakEnv
	path   string
	header map[string]string
}

func (e *leakEnv) project(path string) *project {
	secret, _, err := auth.IssueToken(e.T.Context(), e.Store, auth.TokenRequest{ProjectPath: path, Scope: metadata.ScopeWrite, Name: "t"})
	if err != nil {
		e.T.Fatal(err)
	}
	return &project{e: e, path: path, header: map[string]string{"Authorization": "Bearer " + secret}}
}

func (p *project) escaped() string { return strings.ReplaceAll(p.path, "/", "%2F") }
func (p *project) mlflow() string {
	return p.e.Srv.URL + "/api/v4/projects/" + p.escaped() + "/ml/mlflow/api/2.0/mlflow/"
}
func (p *project) artifacts() string {
	return p.e.Srv.URL + "/api/v4/projects/" + p.escaped() + "/ml/mlflow/api/2.0/mlflow-artifacts/"
}
func (p *project) pkg() string {
	return p.e.Srv.URL + "/api/v4/projects/" + p.escaped() + "/packages/ml_models/"
}

func (p *project) do(method, url, body string) gatewaytest.Response {
	p.e.T.Helper()
	h := map[string]string{"Content-Type": "application/json"}
	for k, v := range p.header {
		h[k] = v
	}
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	return p.e.Do(method, url, r, h)
}

// call runs an MLflow RPC that must succeed and decodes its answer.
func (p *project) call(method, rpc, body string, out any) {
	p.e.T.Helper()
	url := p.mlflow() + rpc
	if method == http.MethodGet {
		url += "?" + body
		body = ""
	}
	r := p.do(method, url, body)
	gatewaytest.WantStatus(p.e.T, r, http.StatusOK)
	if out != nil {
		r.JSON(p.e.T, out)
	}
}

func (p *project) experiment(name string) string {
	var out struct {
		ExperimentID string `json:"experiment_id"`
	}
	p.call(http.MethodPost, "experiments/create", `{"name":"`+name+`"}`, &out)
	return out.ExperimentID
}

func (p *project) run(exp string) string {
	var out struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	p.call(http.MethodPost, "runs/create", `{"experiment_id":"`+exp+`"}`, &out)
	return out.Run.Info.RunID
}

func (p *project) loggedModel(exp string) string {
	var out struct {
		Model struct {
			Info struct {
				ModelID string `json:"model_id"`
			} `json:"info"`
		} `json:"model"`
	}
	p.call(http.MethodPost, "logged-models", `{"experiment_id":"`+exp+`","name":"lm"}`, &out)
	return out.Model.Info.ModelID
}

// answer is what a client learns from an error: status, code and message.
type answer struct{ status, code, message string }

func answerOf(t *testing.T, r gatewaytest.Response) answer {
	t.Helper()
	var body map[string]string
	if err := json.Unmarshal(r.Body, &body); err != nil {
		// The UI answers with HTML: its error text is in the page.
		return answer{status: fmt.Sprint(r.Status), message: uiErrorText(string(r.Body))}
	}
	code := body["error_code"]
	if code == "" {
		code = body["error"]
	}
	return answer{status: fmt.Sprint(r.Status), code: code, message: body["message"]}
}

var uiError = regexp.MustCompile(`(?s)<p class="error" role="alert">(.*?)</p>`)

func uiErrorText(page string) string {
	if m := uiError.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return page
}

// TestForeignAndMissingAnswerAlike checks issue 11's defect 6: with a token of project A, a reference to
// something that exists in project B gets exactly the answer (status, code, message) that a reference to
// nothing gets, on every surface, so that no route tells a client what exists in a project it cannot
// see. The messages name what the client sent, so the two ids are put back to one placeholder before
// comparing.
func TestForeignAndMissingAnswerAlike(t *testing.T) {
	e := newLeakEnv(t)
	a, b := e.project("team/a"), e.project("team/b")

	// Project A: one experiment with a run, one registered model with one version.
	expA := a.experiment("a-exp")
	runA := a.run(expA)
	a.call(http.MethodPost, "registered-models/create", `{"name":"a-model"}`, nil)
	gatewaytest.WantStatus(t, a.do(http.MethodPut, a.pkg()+"a-model/1.0.0/files/w.bin", "w"), http.StatusCreated)
	// Project B has more of everything, so that its ids and iids reach beyond A's.
	var expB, runB, lmB string
	for i := range 3 {
		expB = b.experiment(fmt.Sprint("b-exp-", i))
		runB = b.run(expB)
	}
	lmB = b.loggedModel(expB)
	for i := range 3 {
		gatewaytest.WantStatus(t, b.do(http.MethodPut, b.pkg()+fmt.Sprintf("b-model/%d.0.0/files/w.bin", i+1), "w"), http.StatusCreated)
	}
	gatewaytest.WantStatus(t, b.do(http.MethodPut, b.artifacts()+"artifacts/"+expB+"/"+runB+"/artifacts/f.txt", "f"), http.StatusOK)

	const missingRun = "0123456789abcdef0123456789abcdef"
	const missingLM = "m-0123456789abcdef0123456789abcdef"
	// Each case is a request of A about id: the foreign id (B's) and a missing one.
	type ids struct{ foreign, missing string }
	run := ids{runB, missingRun}
	exp := ids{expB, "99"}    // B has experiments 1-3, A only 1
	iid := ids{"6", "60"}     // B has 3 runs and 3 package candidates; A has 2 candidates
	vid := ids{"3", "30"}     // B has versions 1-3; A has 1
	lm := ids{lmB, missingLM} // logged models have global ids
	proj := ids{"2", "20"}    // B is project 2
	ppath := ids{"team%2Fb", "team%2Fz"}
	cases := []struct {
		name         string
		ids          ids
		method       string
		url          func(id string) string
		body         func(id string) string
		wantStatus   int
		wantContains string
	}{
		{"runs/get", run, http.MethodGet, func(id string) string { return a.mlflow() + "runs/get?run_id=" + id }, nil, 404, "Run with id="},
		{"runs/log-batch", run, http.MethodPost, func(string) string { return a.mlflow() + "runs/log-batch" },
			func(id string) string {
				return `{"run_id":"` + id + `","metrics":[{"key":"m","value":1,"timestamp":1}]}`
			}, 404, "Run with id="},
		{"runs/log-metric", run, http.MethodPost, func(string) string { return a.mlflow() + "runs/log-metric" },
			func(id string) string { return `{"run_id":"` + id + `","key":"m","value":1,"timestamp":1}` }, 404, ""},
		{"runs/set-tag", run, http.MethodPost, func(string) string { return a.mlflow() + "runs/set-tag" },
			func(id string) string { return `{"run_id":"` + id + `","key":"k","value":"v"}` }, 404, ""},
		{"runs/delete", run, http.MethodPost, func(string) string { return a.mlflow() + "runs/delete" },
			func(id string) string { return `{"run_id":"` + id + `"}` }, 404, ""},
		{"runs/update", run, http.MethodPost, func(string) string { return a.mlflow() + "runs/update" },
			func(id string) string { return `{"run_id":"` + id + `","status":"FINISHED"}` }, 404, ""},
		{"metrics/get-history", run, http.MethodGet, func(id string) string {
			return a.mlflow() + "metrics/get-history?metric_key=m&run_id=" + id
		}, nil, 404, ""},
		{"model-versions/create", run, http.MethodPost, func(string) string { return a.mlflow() + "model-versions/create" },
			func(id string) string {
				return `{"name":"a-model","source":"runs:/` + id + `/model","run_id":"` + id + `"}`
			}, 404, ""},
		{"runs/log-metric with a model_id", lm, http.MethodPost, func(string) string { return a.mlflow() + "runs/log-metric" },
			func(id string) string {
				return `{"run_id":"` + runA + `","key":"m","value":1,"timestamp":1,"model_id":"` + id + `"}`
			}, 404, ""},
		{"runs/log-inputs with a model input", lm, http.MethodPost, func(string) string { return a.mlflow() + "runs/log-inputs" },
			func(id string) string { return `{"run_id":"` + runA + `","models":[{"model_id":"` + id + `"}]}` }, 404, "Logged model not found"},
		{"runs/outputs", lm, http.MethodPost, func(string) string { return a.mlflow() + "runs/outputs" },
			func(id string) string {
				return `{"run_id":"` + runA + `","models":[{"model_id":"` + id + `","step":0}]}`
			}, 404, "Logged model not found"},
		{"model-versions/create from a logged model", lm, http.MethodPost, func(string) string { return a.mlflow() + "model-versions/create" },
			func(id string) string {
				return `{"name":"a-model","source":"models:/` + id + `","model_id":"` + id + `"}`
			}, 404, "Logged model with ID"},
		{"experiments/get", exp, http.MethodGet, func(id string) string { return a.mlflow() + "experiments/get?experiment_id=" + id }, nil, 404, "No Experiment with id="},
		{"runs/create", exp, http.MethodPost, func(string) string { return a.mlflow() + "runs/create" },
			func(id string) string { return `{"experiment_id":"` + id + `"}` }, 404, ""},
		{"logged-models/get", lm, http.MethodGet, func(id string) string { return a.mlflow() + "logged-models/" + id }, nil, 404, "Logged model with ID"},
		{"mlflow-artifacts download", run, http.MethodGet, func(id string) string {
			return a.artifacts() + "artifacts/" + expA + "/" + id + "/artifacts/f.txt"
		}, nil, 404, ""},
		{"mlflow-artifacts list", run, http.MethodGet, func(id string) string {
			return a.artifacts() + "artifacts?path=" + expA + "/" + id + "/artifacts"
		}, nil, 404, ""},
		{"mlflow-artifacts upload", run, http.MethodPut, func(id string) string {
			return a.artifacts() + "artifacts/" + expA + "/" + id + "/artifacts/f.txt"
		}, func(string) string { return "f" }, 404, ""},
		{"mlflow-artifacts multipart create", run, http.MethodPost, func(id string) string {
			return a.artifacts() + "mpu/create/" + expA + "/" + id + "/artifacts"
		}, func(string) string { return `{"path":"big.bin","num_parts":2}` }, 404, ""},
		{"mlflow-artifacts of an experiment", exp, http.MethodGet, func(id string) string {
			return a.artifacts() + "artifacts/" + id + "/" + runA + "/artifacts/f.txt"
		}, nil, 404, ""},
		{"mlflow-artifacts of a logged model", lm, http.MethodGet, func(id string) string {
			return a.artifacts() + "artifacts/" + expA + "/models/" + id + "/artifacts/MLmodel"
		}, nil, 404, ""},
		{"package candidate:<iid>", iid, http.MethodGet, func(id string) string { return a.pkg() + "candidate:" + id + "/files" }, nil, 404, ""},
		{"package candidate upload", iid, http.MethodPut, func(id string) string { return a.pkg() + "candidate:" + id + "/files/x" },
			func(string) string { return "x" }, 404, ""},
		{"package ml_experiment_<iid>", exp, http.MethodGet, func(id string) string { return a.pkg() + "ml_experiment_" + id + "/1/files" }, nil, 404, ""},
		{"package version id", vid, http.MethodGet, func(id string) string { return a.pkg() + id + "/files" }, nil, 404, ""},
		{"package logged model", lm, http.MethodGet, func(id string) string { return a.pkg() + id + "/files/MLmodel" }, nil, 404, ""},
		{"project id", proj, http.MethodGet, func(id string) string {
			return e.Srv.URL + "/api/v4/projects/" + id + "/packages/ml_models/b-model/1.0.0/files"
		}, nil, 404, ""},
		{"project path", ppath, http.MethodPut, func(id string) string {
			return e.Srv.URL + "/api/v4/projects/" + id + "/packages/ml_models/b-model/1.0.0/files/x"
		}, func(string) string { return "x" }, 404, ""},
		{"MLflow under a project id", proj, http.MethodGet, func(id string) string {
			return e.Srv.URL + "/api/v4/projects/" + id + "/ml/mlflow/api/2.0/mlflow/runs/get?run_id=" + runB
		}, nil, 404, ""},
		{"UI candidate", iid, http.MethodGet, func(id string) string {
			return e.Srv.URL + "/ui/projects/team%2Fa/models/a-model/candidates/" + id
		}, nil, 404, ""},
		{"UI logged model", lm, http.MethodGet, func(id string) string {
			return e.Srv.URL + "/ui/projects/team%2Fa/models/a-exp/logged-models/" + id
		}, nil, 404, ""},
		{"UI link to a run", run, http.MethodGet, func(id string) string {
			return e.Srv.URL + "/ui/mlflow-link?project=team%2Fa&fragment=/experiments/" + expA + "/runs/" + id
		}, nil, 404, ""},
		{"UI project", ppath, http.MethodGet, func(id string) string { return e.Srv.URL + "/ui/projects/" + id + "/models" }, nil, 404, ""},
	}
	for _, tc := range cases {
		ask := func(id string) answer {
			body := ""
			if tc.body != nil {
				body = tc.body(id)
			}
			got := answerOf(t, a.do(tc.method, tc.url(id), body))
			// The message may echo the id the client sent; nothing else may differ.
			ids := []string{tc.ids.foreign, tc.ids.missing, strings.ReplaceAll(tc.ids.foreign, "%2F", "/"),
				strings.ReplaceAll(tc.ids.missing, "%2F", "/")}
			slices.SortFunc(ids, func(x, y string) int { return len(y) - len(x) }) // "60" before "6"
			for _, v := range ids {
				got.message = strings.ReplaceAll(got.message, v, "<id>")
			}
			return got
		}
		foreign, missing := ask(tc.ids.foreign), ask(tc.ids.missing)
		if foreign != missing {
			t.Errorf("%s: an id of another project answers\n\t%+v\nbut a missing one\n\t%+v", tc.name, foreign, missing)
		}
		if foreign.status != fmt.Sprint(tc.wantStatus) || !strings.Contains(foreign.message, tc.wantContains) {
			t.Errorf("%s: %+v, want %d saying %q", tc.name, foreign, tc.wantStatus, tc.wantContains)
		}
	}
	// B's things are untouched and still B's.
	gatewaytest.WantStatus(t, b.do(http.MethodGet, b.mlflow()+"runs/get?run_id="+runB, ""), http.StatusOK)
}

// Internal names that must never reach a client: blob keys, internal numeric ids as the store words
// them, backend operations, and filesystem paths.
var internalNames = []*regexp.Regexp{
	regexp.MustCompile(`c/[0-9a-f]{16}/`),
	regexp.MustCompile(`\bproject \d+\b`),
	regexp.MustCompile(`\biid \d+\b`),
	regexp.MustCompile(`\b(candidate|model|owner|file owner) \d+ (in|file|version)\b`),
	regexp.MustCompile(`\blocalfs\b`),
	regexp.MustCompile(`\b(put|get|stat|delete|complete|list) "`),
	regexp.MustCompile(`/tmp/|\.staging|mlgate\.db`),
}

// TestClientMessagesHideInternals checks issue 11's defect 7: for representative failures of every
// layer (a checksum mismatch and a short body stored on localfs, misses resolved by the store, conflicts,
// a bad multipart completion, a file on a backend that is gone), the message a client gets names what it
// sent and never a blob key, an internal id, a backend operation or a filesystem path, while the log has
// the whole error under the request id the client was given.
func TestClientMessagesHideInternals(t *testing.T) {
	e := newLeakEnv(t)
	a := e.project("team/a")
	exp := a.experiment("exp")
	run := a.run(exp)
	lm := a.loggedModel(exp)
	gatewaytest.WantStatus(t, a.do(http.MethodPut, a.pkg()+"m/1.0.0/files/dir/w.bin", "w"), http.StatusCreated)
	a.call(http.MethodPost, "model-versions/create", `{"name":"m","source":"models:/`+lm+`","model_id":"`+lm+`"}`, nil)
	put := func(url, body string, header map[string]string) gatewaytest.Response {
		h := map[string]string{}
		for k, v := range a.header {
			h[k] = v
		}
		for k, v := range header {
			h[k] = v
		}
		return e.Do(http.MethodPut, url, strings.NewReader(body), h)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "x.bin")
	_, _ = fw.Write([]byte("weights"))

	// A row recording a backend the configuration no longer has.
	c, err := e.Store.Candidate(t.Context(), metadata.CandidateRef{EID: mustEID(t, run)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CommitFile(t.Context(), &metadata.File{OwnerID: c.ID, Path: "gone.bin", Size: 1,
		SHA256: strings.Repeat("a", 64), BlobKey: fmt.Sprintf("c/%016x/%032x", c.ID, 1), Backend: "retired"}, false); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		send   func() gatewaytest.Response
		status int
		says   string
	}{
		{"checksum mismatch", func() gatewaytest.Response {
			return put(a.pkg()+"m/1.0.0/files/x.bin", "weights", map[string]string{"X-Checksum-SHA256": strings.Repeat("0", 64)})
		}, 400, "checksum mismatch"},
		{"checksum mismatch on a new version", func() gatewaytest.Response {
			return put(a.pkg()+"n/1.0.0/files/x.bin", "weights", map[string]string{"X-Checksum-SHA256": strings.Repeat("0", 64)})
		}, 400, "checksum mismatch"},
		{"checksum mismatch through mlflow-artifacts", func() gatewaytest.Response {
			return put(a.artifacts()+"artifacts/"+exp+"/"+run+"/artifacts/x.bin", "weights",
				map[string]string{"X-Checksum-SHA256": strings.Repeat("0", 64)})
		}, 400, "checksum mismatch"},
		{"broken multipart body", func() gatewaytest.Response {
			return put(a.pkg()+"m/1.0.0/files/x.bin", form.String(), map[string]string{"Content-Type": mw.FormDataContentType()})
		}, 400, "reading request body"},
		{"missing file", func() gatewaytest.Response { return a.do(http.MethodGet, a.pkg()+"m/1.0.0/files/nope.bin", "") },
			404, `file "nope.bin" not found in package m/1.0.0`},
		{"missing file of a candidate", func() gatewaytest.Response { return a.do(http.MethodGet, a.pkg()+"candidate:1/files/nope.bin", "") },
			404, `file "nope.bin" not found`},
		{"missing artifact", func() gatewaytest.Response {
			return a.do(http.MethodGet, a.artifacts()+"artifacts/"+exp+"/"+run+"/artifacts/nope.bin", "")
		}, 404, `artifact "nope.bin" of run ` + run + ` not found`},
		{"delete of a missing file", func() gatewaytest.Response { return a.do(http.MethodDelete, a.pkg()+"m/1.0.0/files/nope.bin", "") },
			404, "not found"},
		{"missing model", func() gatewaytest.Response { return a.do(http.MethodGet, a.pkg()+"ml_experiment_9/1/files", "") },
			404, `model "ml_experiment_9" not found`},
		{"candidate of another model", func() gatewaytest.Response { return a.do(http.MethodGet, a.pkg()+"m/candidate_1/files", "") },
			404, `candidate 1 of model "m" not found`},
		{"missing version", func() gatewaytest.Response { return a.do(http.MethodGet, a.pkg()+"m/9.0.0/files", "") },
			404, `version 9.0.0 of model "m" not found`},
		{"file under a file", func() gatewaytest.Response { return put(a.pkg()+"m/1.0.0/files/dir/w.bin/x", "x", nil) }, 409, "is a file"},
		{"file over a directory", func() gatewaytest.Response { return put(a.pkg()+"m/1.0.0/files/dir", "x", nil) }, 409, "directory"},
		{"deleting a logged model that backs a version", func() gatewaytest.Response {
			return a.do(http.MethodDelete, a.mlflow()+"logged-models/"+lm, "")
		}, 400, "version 2 of model 'm'"},
		{"file on a retired backend", func() gatewaytest.Response {
			return a.do(http.MethodGet, a.artifacts()+"artifacts/"+exp+"/"+run+"/artifacts/gone.bin", "")
		}, 503, `backend "retired"`},
		{"multipart completion with a wrong ETag", func() gatewaytest.Response {
			r := a.do(http.MethodPost, a.artifacts()+"mpu/create/"+exp+"/"+run+"/artifacts", `{"path":"big.bin","num_parts":1}`)
			var created struct {
				UploadID string `json:"upload_id"`
			}
			r.JSON(t, &created)
			return a.do(http.MethodPost, a.artifacts()+"mpu/complete/"+exp+"/"+run+"/artifacts",
				`{"path":"big.bin","upload_id":"`+created.UploadID+`","parts":[{"part_number":1,"etag":"nope"}]}`)
		}, 400, ""},
		{"a name taken by another model", func() gatewaytest.Response {
			return a.do(http.MethodPost, a.mlflow()+"experiments/create", `{"name":"exp"}`)
		}, 400, "Experiment(name=exp) already exists."},
	}
	for _, tc := range cases {
		r := tc.send()
		got := answerOf(t, r)
		if got.status != fmt.Sprint(tc.status) || !strings.Contains(got.message, tc.says) {
			t.Errorf("%s: %+v, want %d saying %q", tc.name, got, tc.status, tc.says)
		}
		for _, re := range append(internalNames, regexp.MustCompile(regexp.QuoteMeta(e.dir))) {
			if m := re.FindString(got.message); m != "" {
				t.Errorf("%s: the message names %q: %s", tc.name, m, got.message)
			}
		}
		// Whatever the client was not told is in the log, under the request id it was given.
		if id := r.Header.Get("X-Request-Id"); !strings.Contains(e.logs.String(), "request_id="+id) {
			t.Errorf("%s: no log line for request %s", tc.name, id)
		}
	}
	if !regexp.MustCompile(`msg="request refused".*c/[0-9a-f]{16}/`).MatchString(e.logs.String()) {
		t.Errorf("the log does not keep the blob key of the checksum mismatch:\n%s", e.logs)
	}
}

func mustEID(t *testing.T, s string) metadata.EID {
	t.Helper()
	eid, ok := metadata.ParseEID(s)
	if !ok {
		t.Fatalf("run id %q", s)
	}
	return eid
}
