package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
)

// lmWorld is what lmSeed logged through the MLflow API, as MLflow 3's log_model does it.
type lmWorld struct {
	base        string // the tracking URI used
	project     *metadata.Project
	exp         *metadata.Model // the experiment the run and logged models belong to
	reg         *metadata.Model // the registered model "lm-reg", whose version 1.0.0 is backed by lmid
	runID       string
	runIID      int64
	lmid        string // READY, from the run, with params, metrics, files and a version
	pendingLMID string // PENDING, no source run, no files
	weights     []byte
}

// mlflowOK sends an MLflow RPC under w.base and decodes the answer into out, failing on anything but 200.
func mlflowOK(t *testing.T, env *gatewaytest.Env, method, base, rpc, body string, out any) {
	t.Helper()
	r := env.Do(method, base+"/api/2.0/mlflow/"+rpc, strings.NewReader(body), map[string]string{"Content-Type": "application/json"})
	gatewaytest.WantStatus(t, r, http.StatusOK)
	if out != nil {
		r.JSON(t, out)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// lmSeed logs, under the tracking URI base of projectPath: an experiment with a run that used two
// datasets and produced a logged model (params, tags, metrics on a dataset, two files) registered as
// version 1 of "lm-reg", and a second, pending logged model. Names carry xss.
func lmSeed(t *testing.T, env *gatewaytest.Env, base, projectPath string) *lmWorld {
	t.Helper()
	w := &lmWorld{base: base, weights: gatewaytest.Payload(3000)}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	mlflowOK(t, env, http.MethodPost, base, "experiments/create", `{"name": "lm-exp"}`, &exp)
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mlflowOK(t, env, http.MethodPost, base, "runs/create", `{"experiment_id": "`+exp.ExperimentID+`", "run_name": "train"}`, &run)
	w.runID = run.Run.Info.RunID
	mlflowOK(t, env, http.MethodPost, base, "runs/log-inputs", `{"run_id": "`+w.runID+`", "datasets": [
		{"tags": [{"key": "mlflow.data.context", "value": "training"}], "dataset": {"name": "train `+xss+`", "digest": "f9e2bbb5",
		 "source_type": "code", "source": "{\"uri\": \"/data/train.csv\"}", "schema": "{\"mlflow_colspec\": [{\"name\": \"x1\"}]}", "profile": "{\"num_rows\": 6}"}},
		{"tags": [{"key": "mlflow.data.context", "value": "eval"}], "dataset": {"name": "eval", "digest": "e35a3a61", "source_type": "code", "source": "{}"}}]}`, nil)

	var created struct {
		Model struct {
			Info struct {
				ModelID string `json:"model_id"`
			} `json:"info"`
		} `json:"model"`
	}
	mlflowOK(t, env, http.MethodPost, base, "logged-models", `{"experiment_id": "`+exp.ExperimentID+`", "name": "model `+jsonEscapeXSS()+`",
		"model_type": "regressor", "source_run_id": "`+w.runID+`", "params": [{"key": "factor", "value": "2.0"}],
		"tags": [{"key": "family", "value": "linear `+jsonEscapeXSS()+`"}]}`, &created)
	w.lmid = created.Model.Info.ModelID
	mlflowOK(t, env, http.MethodPost, base, "logged-models/"+w.lmid+"/params", `{"params": [{"key": "features", "value": "x1,x2"}]}`, nil)
	for _, m := range []string{
		`{"key": "acc", "value": 0.5, "step": 0, "timestamp": 1000, "model_id": "` + w.lmid + `", "dataset_name": "eval", "dataset_digest": "e35a3a61"}`,
		`{"key": "acc", "value": 0.9, "step": 1, "timestamp": 2000, "model_id": "` + w.lmid + `", "dataset_name": "eval", "dataset_digest": "e35a3a61"}`,
		`{"key": "rmse", "value": 0.25, "step": 0, "timestamp": 1000, "model_id": "` + w.lmid + `"}`,
	} {
		mlflowOK(t, env, http.MethodPost, base, "runs/log-metric", `{"run_id": "`+w.runID+`", `+m[1:], nil)
	}
	mlflowOK(t, env, http.MethodPost, base, "runs/outputs", `{"run_id": "`+w.runID+`", "models": [{"model_id": "`+w.lmid+`", "step": 0}]}`, nil)
	art := base + "/api/2.0/mlflow-artifacts/artifacts/" + exp.ExperimentID + "/models/" + w.lmid + "/artifacts/"
	gatewaytest.WantStatus(t, env.Put(art+"MLmodel", []byte("flavors: {}\n")), http.StatusOK)
	gatewaytest.WantStatus(t, env.Put(art+"weights/w.bin", w.weights), http.StatusOK)
	mlflowOK(t, env, http.MethodPatch, base, "logged-models/"+w.lmid, `{"status": "LOGGED_MODEL_READY"}`, nil)

	mlflowOK(t, env, http.MethodPost, base, "registered-models/create", `{"name": "lm-reg"}`, nil)
	mlflowOK(t, env, http.MethodPost, base, "model-versions/create",
		`{"name": "lm-reg", "source": "models:/`+w.lmid+`", "model_id": "`+w.lmid+`", "run_id": "`+w.runID+`"}`, nil)

	mlflowOK(t, env, http.MethodPost, base, "logged-models", `{"experiment_id": "`+exp.ExperimentID+`", "name": "pending-one"}`, &created)
	w.pendingLMID = created.Model.Info.ModelID

	ctx := context.Background()
	var err error
	if w.project, err = env.Store.Project(ctx, metadata.ProjectRef{Path: projectPath}); err != nil {
		t.Fatal(err)
	}
	iid, _ := strconv.ParseInt(exp.ExperimentID, 10, 64)
	if w.exp, err = env.Store.Model(ctx, metadata.ModelRef{Project: w.project.ID, IID: iid}); err != nil {
		t.Fatal(err)
	}
	if w.reg, err = env.Store.Model(ctx, metadata.ModelRef{Project: w.project.ID, DisplayName: "lm-reg"}); err != nil {
		t.Fatal(err)
	}
	eid, _ := metadata.ParseEID(w.runID)
	c, err := env.Store.Candidate(ctx, metadata.CandidateRef{EID: eid})
	if err != nil {
		t.Fatal(err)
	}
	w.runIID = c.IID
	return w
}

// jsonEscapeXSS is xss as it goes inside a JSON string literal.
func jsonEscapeXSS() string { s := jsonString(xss); return s[1 : len(s)-1] }

func (w *lmWorld) modelPath(m *metadata.Model) string {
	return "/ui/projects/" + url.PathEscape(w.project.Path) + "/models/" + url.PathEscape(m.Name)
}

func (w *lmWorld) loggedModelPath() string { return w.modelPath(w.exp) + "/logged-models/" + w.lmid }
func (w *lmWorld) candidatePath() string {
	return w.modelPath(w.exp) + "/candidates/" + strconv.FormatInt(w.runIID, 10)
}
func (w *lmWorld) versionPath() string { return w.modelPath(w.reg) + "/versions/1.0.0" }

// wantPage GETs path and fails unless it is a 200 HTML page containing every want and no unescaped xss.
func wantPage(t *testing.T, env *gatewaytest.Env, path string, want ...string) string {
	t.Helper()
	status, body, h := uiGet(t, env, path)
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %s, want a 200 page:\n%.3000s", path, status, h.Get("Content-Type"), body)
	}
	for _, s := range want {
		if !strings.Contains(body, s) {
			t.Errorf("GET %s: no %q in the page:\n%.6000s", path, s, body)
		}
	}
	if strings.Contains(body, xss) {
		t.Errorf("GET %s: unescaped %s in the page", path, xss)
	}
	return body
}

var escapedXSS = html.EscapeString(xss)

func TestUILoggedModelOnModelPage(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	body := wantPage(t, env, w.modelPath(w.exp),
		`id="logged-models"`,
		`<a href="`+w.loggedModelPath()+`">model `+escapedXSS+`</a>`,
		`data-model-id="`+w.lmid+`"`,
		`>READY</span>`, `>PENDING</span>`, "regressor",
		`<a href="`+w.candidatePath()+`" title="`+w.runID+`">train</a>`,
		`acc <b>0.9</b>`, `rmse <b>0.25</b>`,
		`<a href="`+w.versionPath()+`" title="MLflow version 1">lm-reg 1.0.0</a>`,
	)
	// Newest first: the pending logged model was created last.
	if strings.Index(body, "pending-one") > strings.Index(body, `data-model-id="`+w.lmid+`"`) {
		t.Error("logged models are not listed newest first")
	}
	// The registered model's version is backed by the logged model, of another model: its row links
	// the logged model's page and counts its files.
	body = wantPage(t, env, w.modelPath(w.reg), `id="versions"`, "logged model",
		`<a href="`+w.loggedModelPath()+`" title="`+w.lmid+`">model `+escapedXSS+`</a>`)
	row := regexp.MustCompile(`(?s)<tr><td><a href="[^"]*/versions/1.0.0">.*?</tr>`).FindString(body)
	if !strings.Contains(row, `<td class="num">2</td>`) || !strings.Contains(row, "2.9 KiB") {
		t.Errorf("version row does not count the logged model's 2 files (3012 bytes): %s", row)
	}
}

func TestUILoggedModelPage(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	body := wantPage(t, env, w.loggedModelPath(),
		`<code>`+w.lmid+`</code>`,
		`value="models:/`+w.lmid+`"`, `class="copy" data-copy="model-uri"`,
		`>READY</span>`, "regressor",
		`<a href="`+w.candidatePath()+`" title="`+w.runID+`">train</a>`,
		`<th scope="row">factor</th><td>2.0</td>`, `<th scope="row">features</th><td>x1,x2</td>`,
		`<th scope="row">family</th><td>linear `+escapedXSS+`</td>`,
		`<td class="num">0.9</td><td class="num">1</td>`, `<code>e35a3a61</code>`,
		`<a href="`+w.versionPath()+`" title="MLflow version 1">lm-reg 1.0.0</a>`,
		"mlflow-artifacts:/"+strconv.FormatInt(w.exp.IID, 10)+"/models/"+w.lmid+"/artifacts",
	)
	if n := strings.Count(body, `<th scope="row">acc</th>`); n != 2 {
		t.Errorf("%d acc points listed, want 2", n)
	}
	// Files link to the package API, which serves the logged model's bytes.
	m := regexp.MustCompile(`<a href="([^"]*/w\.bin)" download>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no download link for weights/w.bin:\n%s", body)
	}
	if want := "/api/v4/projects/" + strconv.FormatInt(w.project.ID, 10) + "/packages/ml_models/" + w.lmid + "/files/weights/w.bin"; m[1] != want {
		t.Errorf("download link %s, want %s", m[1], want)
	}
	r := env.Get(env.Srv.URL + m[1])
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, w.weights) {
		t.Fatalf("download %s: %d, %d bytes", m[1], r.Status, len(r.Body))
	}
	// The pending logged model has none of it, and says so.
	wantPage(t, env, w.modelPath(w.exp)+"/logged-models/"+w.pendingLMID, ">PENDING</span>", "No files yet", `<span class="muted">none</span>`)
}

func TestUIVersionBackedByLoggedModel(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	body := wantPage(t, env, w.versionPath(),
		`<dt>Logged model</dt>`,
		`<a href="`+w.loggedModelPath()+`" title="`+w.lmid+`">model `+escapedXSS+`</a> <code>`+w.lmid+`</code>`,
		`<dt>Source run</dt><dd><a href="`+w.candidatePath()+`"`,
		`>MLmodel</a>`, `>w.bin</a>`, "curl -fL",
	)
	// The curl commands download through the version's own address, which serves the logged model's files.
	m := regexp.MustCompile(`(http://[^ ']*/files/weights/w\.bin)`).FindStringSubmatch(html.UnescapeString(body))
	if m == nil {
		t.Fatalf("no download address for w.bin:\n%s", body)
	}
	if r := env.Get(m[1]); r.Status != http.StatusOK || !bytes.Equal(r.Body, w.weights) {
		t.Fatalf("GET %s: %d, %d bytes", m[1], r.Status, len(r.Body))
	}
}

func TestUICandidateDatasetsAndLoggedModels(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	body := wantPage(t, env, w.candidatePath(),
		`id="datasets"`, `<td>train `+escapedXSS+`</td><td><code>f9e2bbb5</code></td><td><span class="tag">training</span></td>`,
		`<span class="tag">eval</span>`, `<pre>{&#34;mlflow_colspec&#34;: [{&#34;name&#34;: &#34;x1&#34;}]}</pre>`,
		`id="run-logged-models"`,
		`<a href="`+w.loggedModelPath()+`" title="`+w.lmid+`">model `+escapedXSS+`</a>`, "output at step 0",
		`<a href="`+w.versionPath()+`" title="MLflow version 1">lm-reg 1.0.0</a>`,
	)
	if strings.Contains(body, "pending-one") {
		t.Error("the candidate page lists a logged model that is not the run's")
	}
	// A logged model whose source is the run but which was never logged as its output is listed too.
	var created struct {
		Model struct {
			Info struct {
				ModelID string `json:"model_id"`
			} `json:"info"`
		} `json:"model"`
	}
	mlflowOK(t, env, http.MethodPost, w.base, "logged-models", fmt.Sprintf(`{"experiment_id": "%d", "name": "side-model", "source_run_id": %q}`,
		w.exp.IID, w.runID), &created)
	wantPage(t, env, w.candidatePath(), "side-model", "logged from this run")
}

func TestUILoggedModel404s(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	for _, path := range []string{
		w.modelPath(w.exp) + "/logged-models/m-00000000000000000000000000000001",
		w.modelPath(w.exp) + "/logged-models/m-nothex",
		w.modelPath(w.exp) + "/logged-models/" + strings.TrimPrefix(w.lmid, "m-"),
		w.modelPath(w.exp) + "/logged-models/" + url.PathEscape(xss),
		// A logged model is shown under its own model only.
		w.modelPath(w.reg) + "/logged-models/" + w.lmid,
		"/ui/projects/nope/models/" + url.PathEscape(w.exp.Name) + "/logged-models/" + w.lmid,
	} {
		status, body, _ := uiGet(t, env, path)
		if status != http.StatusNotFound || !strings.Contains(body, `class="error"`) || strings.Contains(body, xss) {
			t.Errorf("GET %s: %d, want a 404 page:\n%.500s", path, status, body)
		}
	}
}

// noRedirect answers redirects as they are, so a test sees each Location.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout: 10 * time.Second}

func getNoRedirect(t *testing.T, u string, cookies ...*http.Cookie) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), b.String()
}

func linkURL(env *gatewaytest.Env, project, fragment string) string {
	q := url.Values{"fragment": {fragment}}
	if project != "" {
		q.Set("project", project)
	}
	return env.Srv.URL + "/ui/mlflow-link?" + q.Encode()
}

func TestUIMLflowLinkResolves(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	exp := strconv.FormatInt(w.exp.IID, 10)
	// A run of the default experiment "0", and a second run to compare.
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	mlflowOK(t, env, http.MethodPost, w.base, "runs/create", `{"experiment_id": "0"}`, &run)
	defaultRun := run.Run.Info.RunID
	mlflowOK(t, env, http.MethodPost, w.base, "runs/create", `{"experiment_id": "`+exp+`"}`, &run)
	second := run.Run.Info.RunID
	for _, tc := range []struct{ project, fragment, want string }{
		{"", "/experiments/" + exp + "/runs/" + w.runID, w.candidatePath()},
		{"default", "#/experiments/" + exp + "/runs/" + w.runID + "/artifacts/model", w.candidatePath()},
		{"", "/experiments/" + exp, w.modelPath(w.exp)},
		{"", "/experiments/" + exp + "?searchFilter=x", w.modelPath(w.exp)},
		{"", "/experiments/" + exp + "/models/" + w.lmid, w.loggedModelPath()},
		{"", "/models/lm-reg", w.modelPath(w.reg)},
		{"", "/models/lm-reg/versions/1", w.versionPath()},
		{"", "/experiments/0", "/ui/projects/default/models/default"},
		{"", "/experiments/0/runs/" + defaultRun, "/ui/projects/default/models/default/candidates/"},
		{"", "/", "/ui/projects/default/models"},
		{"", "/experiments", "/ui/projects/default/models"},
		{"", `/compare-runs?runs=["` + w.runID + `","` + second + `"]&experiments=["` + exp + `"]`,
			w.modelPath(w.exp) + "/compare?c=" + strconv.FormatInt(w.runIID, 10) + "&c="},
	} {
		status, loc, body := getNoRedirect(t, linkURL(env, tc.project, tc.fragment))
		if status != http.StatusSeeOther || !strings.HasPrefix(loc, tc.want) {
			t.Errorf("fragment %s: %d %q, want a redirect to %s:\n%.500s", tc.fragment, status, loc, tc.want, body)
			continue
		}
		if status, body, _ := uiGet(t, env, loc); status != http.StatusOK {
			t.Errorf("fragment %s: %s answers %d:\n%.500s", tc.fragment, loc, status, body)
		}
	}
}

func TestUIMLflowLinkUnknownTargets(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	w := lmSeed(t, env, env.Srv.URL, "default")
	exp := strconv.FormatInt(w.exp.IID, 10)
	// A second project, whose ids must not leak into the default project's links.
	other := lmSeed(t, env, env.Srv.URL+"/api/v4/projects/team%2Fvision/ml/mlflow", "team/vision")
	for _, tc := range []struct {
		project, fragment string
		status            int
	}{
		{"", "/experiments/999", http.StatusNotFound},
		{"", "/experiments/-1", http.StatusNotFound},
		{"", "/experiments/" + xss, http.StatusNotFound},
		{"", "/experiments/0", http.StatusNotFound}, // no default experiment yet
		{"", "/experiments/" + exp + "/runs/0123456789abcdef0123456789abcdef", http.StatusNotFound},
		{"", "/experiments/" + exp + "/runs/nothex", http.StatusNotFound},
		{"", "/experiments/" + exp + "/runs/" + other.runID, http.StatusNotFound},
		{"", "/experiments/" + exp + "/models/m-00000000000000000000000000000001", http.StatusNotFound},
		{"", "/experiments/" + exp + "/models/" + other.lmid, http.StatusNotFound},
		{"", "/models/nope", http.StatusNotFound},
		{"", "/models/lm-reg/versions/7", http.StatusNotFound},
		{"", "/models/lm-reg/versions/x", http.StatusNotFound},
		{"", "/metric/acc", http.StatusBadRequest},
		{"", "/" + xss, http.StatusBadRequest},
		{"", "/experiments/%zz", http.StatusBadRequest},
		{"", `/compare-runs?runs=not-json`, http.StatusBadRequest},
		{"nope", "/experiments/1", http.StatusNotFound},
		{"team/vision", "/experiments/" + exp + "/runs/" + w.runID, http.StatusNotFound},
	} {
		status, _, body := getNoRedirect(t, linkURL(env, tc.project, tc.fragment))
		if status != tc.status || !strings.Contains(body, `class="error"`) || strings.Contains(body, xss) {
			t.Errorf("project %q fragment %s: %d, want a %d page:\n%.500s", tc.project, tc.fragment, status, tc.status, body)
		}
	}
	// The other project's links resolve with its project, named by path or by id.
	for _, project := range []string{"team/vision", strconv.FormatInt(other.project.ID, 10)} {
		status, loc, _ := getNoRedirect(t, linkURL(env, project, "/experiments/"+strconv.FormatInt(other.exp.IID, 10)+"/runs/"+other.runID))
		if status != http.StatusSeeOther || loc != other.candidatePath() {
			t.Errorf("project %s: %d %q, want %s", project, status, loc, other.candidatePath())
		}
	}
}

func TestUIMLflowLinkLanding(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	// A project's tracking URI root, as MLflow's links put it before "#", leads to the link page of that
	// project; nothing else of the API changes.
	status, loc, _ := getNoRedirect(t, env.Srv.URL+"/api/v4/projects/team%2Fvision/ml/mlflow/")
	if status != http.StatusFound || loc != "/ui/mlflow-link?project=team%2Fvision" {
		t.Fatalf("tracking URI root: %d %q", status, loc)
	}
	if r := env.Do(http.MethodPost, env.Srv.URL+"/api/v4/projects/team%2Fvision/ml/mlflow/", nil, nil); r.Status != http.StatusMethodNotAllowed {
		t.Fatalf("POST to the tracking URI root: %d", r.Status)
	}
	wantPage(t, env, "/ui/mlflow-link?project=team%2Fvision", `id="mlflow-link" data-project="team/vision" data-home="/ui/projects/team%2Fvision/models"`)
	wantPage(t, env, "/ui/mlflow-link", `data-project="default" data-home="/ui/projects"`)
	body := wantPage(t, env, "/ui/mlflow-link?project="+url.QueryEscape(xss))
	if !strings.Contains(body, `data-project="`+escapedXSS+`"`) {
		t.Errorf("landing page does not carry the escaped project:\n%s", body)
	}
}

func TestUIMLflowLinkWithAuth(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{Auth: true})
	secret, _, err := auth.IssueToken(context.Background(), env.Store, auth.TokenRequest{ProjectPath: "default", Scope: metadata.ScopeWrite, Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	bearer := map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/json"}
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r := env.Do(http.MethodPost, env.Srv.URL+"/api/2.0/mlflow/runs/create", strings.NewReader(`{"experiment_id": "0"}`), bearer)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	r.JSON(t, &run)

	// The tracking URI root and the landing page carry nothing secret and need no login; the resolver does.
	if status, loc, _ := getNoRedirect(t, env.Srv.URL+"/api/v4/projects/default/ml/mlflow/"); status != http.StatusFound || !strings.HasPrefix(loc, "/ui/mlflow-link?") {
		t.Fatalf("tracking URI root with auth: %d %q", status, loc)
	}
	if status, _, body := getNoRedirect(t, env.Srv.URL+"/ui/mlflow-link?project=default"); status != http.StatusOK || !strings.Contains(body, `id="mlflow-link"`) {
		t.Fatalf("landing with auth: %d", status)
	}
	link := linkURL(env, "", "/experiments/0/runs/"+run.Run.Info.RunID)
	status, loc, _ := getNoRedirect(t, link)
	if status != http.StatusFound || loc != "/ui/login?next="+url.QueryEscape(strings.TrimPrefix(link, env.Srv.URL)) {
		t.Fatalf("resolver without a login: %d %q", status, loc)
	}
	status, loc, _ = getNoRedirect(t, link, &http.Cookie{Name: "mlgate_session", Value: secret})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/ui/projects/default/models/default/candidates/") {
		t.Fatalf("resolver with a login: %d %q", status, loc)
	}
	// The API around the tracking URI root still wants a token.
	for _, path := range []string{"/api/v4/projects/default/ml/mlflow/api/2.0/mlflow/experiments/search", "/api/v4/projects/default/ml/mlflow",
		"/api/v4/projects/default/ml/mlflow/x"} {
		if status, _, _ := getNoRedirect(t, env.Srv.URL+path); status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, status)
		}
	}
}
