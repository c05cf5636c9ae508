package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// chromiumPath finds Debian's chromium (.ci/install-chromium.sh installs it).
func chromiumPath() string {
	for _, p := range []string{os.Getenv("MLGATE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// The UI in a real headless Chromium against a real `mlgate serve` seeded through the MLflow API: the model
// page sorts by a metric when its header is clicked, and a candidate page draws its metric chart.
// Screenshots go to $MLGATE_SCREENSHOT_DIR (`make screenshots`) or the test's temp dir.
func TestUIInBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no chromium binary (/usr/bin/chromium): run .ci/install-chromium.sh")
	}
	p := startServe(t, t.TempDir())
	c := &mlflowClient{t: t, base: p.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "uitest"}, &exp)
	const n = 30
	acc := map[string]float64{} // run name → acc
	for i := range n {
		name := fmt.Sprintf("run-%02d", i)
		run := c.createRun(exp.ExperimentID, name)
		a := math.Round(float64((i*11)%n)/n*1000) / 1000
		acc[name] = a
		now := time.Now().UnixMilli()
		metrics := []map[string]any{{"key": "acc", "value": a, "timestamp": now, "step": 0}}
		for s := range 20 {
			metrics = append(metrics, map[string]any{"key": "loss", "value": 2 / float64(s+1+i%5), "timestamp": now + int64(s), "step": s})
		}
		c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": run.RunID, "metrics": metrics,
			"params": []map[string]any{{"key": "lr", "value": strconv.FormatFloat(0.001*float64(1+i%3), 'g', -1, 64)},
				{"key": "optimizer", "value": []string{"adam", "sgd"}[i%2]}}}, nil)
		for _, f := range []struct{ path, body string }{{"model/model.pkl", strings.Repeat("w", 4096+i)}, {"model/MLmodel", "flavors: {}\n"}, {"metrics.json", `{"acc": 1}`}} {
			c.putArtifact(run, f.path, strings.NewReader(f.body), int64(len(f.body)))
		}
		c.ok(http.MethodPost, "runs/update", map[string]any{"run_id": run.RunID, "status": "FINISHED", "end_time": now + int64(1000*(i+1))}, nil)
	}

	outDir := screenshotDir(t)
	ctx := newBrowser(t, chrome)

	modelURL := p.base + "/ui/projects/default/models/uitest"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(modelURL),
		chromedp.WaitVisible(chromedp.CSS(`#candidates`)),
		chromedp.Click(chromedp.CSS(`th[data-key="metric.acc"] a`)),
		chromedp.WaitVisible(chromedp.CSS(`th[data-key="metric.acc"][aria-sort]`)),
	); err != nil {
		t.Fatalf("model page: %v\n%s", err, p.logs)
	}
	sortRes, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`th[data-key="metric.acc"]`), "aria-sort"))
	if err != nil {
		t.Fatal(err)
	}
	sortAttr := sortRes.Value
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](
		`Array.from(document.querySelectorAll('#candidates tbody tr')).map(r => r.cells[1].textContent.trim())`))
	if err != nil {
		t.Fatal(err)
	}
	accCells, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`(() => { const hs = Array.from(document.querySelectorAll('#candidates thead th'));
		const i = hs.findIndex(h => h.dataset.key === 'metric.acc');
		return Array.from(document.querySelectorAll('#candidates tbody tr')).map(r => r.cells[i].textContent.trim()); })()`))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != n {
		t.Fatalf("%d rows on the model page, want %d", len(names), n)
	}
	want := slices.Clone(names)
	slices.SortStableFunc(want, func(a, b string) int {
		if sortAttr == "ascending" {
			return cmpF(acc[a], acc[b])
		}
		return cmpF(acc[b], acc[a])
	})
	if !slices.Equal(names, want) {
		t.Fatalf("rows after clicking acc (%s): %v, want %v", sortAttr, names, want)
	}
	for i, cell := range accCells {
		if v, err := strconv.ParseFloat(cell, 64); err != nil || v != acc[names[i]] {
			t.Fatalf("row %d (%s): acc cell %q, want %v", i, names[i], cell, acc[names[i]])
		}
	}
	modelPNG, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}

	// Open the first candidate from the table and check its loss chart has its 20 points.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#candidates tbody tr:first-child td:nth-child(2) a`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart`)),
	); err != nil {
		t.Fatalf("candidate page: %v", err)
	}
	points, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.chart g.series[data-name="loss"] circle.pt').length`))
	if err != nil {
		t.Fatal(err)
	}
	// The artifact tree links to the package API, which serves the bytes.
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#files a[href*="model.pkl"]').href`))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, href); status != http.StatusOK || len(body) < 4096 {
		t.Fatalf("artifact link %s: %d, %d bytes", href, status, len(body))
	}
	candPNG, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if points != 20 {
		t.Fatalf("loss chart has %d points, want 20", points)
	}
	saveScreenshots(t, outDir, map[string][]byte{"model.png": modelPNG, "candidate.png": candPNG})
}

// screenshotDir is $MLGATE_SCREENSHOT_DIR (created if missing), or the test's temp dir.
func screenshotDir(t *testing.T) string {
	outDir := os.Getenv("MLGATE_SCREENSHOT_DIR")
	if outDir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return outDir
}

func saveScreenshots(t *testing.T, outDir string, pngs map[string][]byte) {
	t.Helper()
	for name, png := range pngs {
		if len(png) < 1000 {
			t.Fatalf("%s: screenshot of %d bytes", name, len(png))
		}
		if err := os.WriteFile(filepath.Join(outDir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", outDir)
}

// newBrowser starts a headless Chromium for the test, closed when it ends; every step must finish
// within 90 s.
func newBrowser(t *testing.T, chrome string) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chrome),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// The MLflow 3 pages in Chromium against a real `mlgate serve`, seeded as MLflow 3's log_model does: the
// model page lists the logged model, its page shows params, metrics and files and copies its models:/
// URI; the links the MLflow client prints (http://HOST/#/experiments/<id>/runs/<run id> and the
// project-prefixed form) land on mlgate's pages.
func TestUILoggedModelsAndMLflowLinksInBrowser(t *testing.T) {
	chrome := chromiumPath()
	if chrome == "" {
		t.Skip("no chromium binary (/usr/bin/chromium): run .ci/install-chromium.sh")
	}
	p := startServe(t, t.TempDir())
	c := &mlflowClient{t: t, base: p.base}
	w := seedLoggedModel(c)
	outDir := screenshotDir(t)
	ctx := newBrowser(t, chrome)
	shot := func(name string, pngs map[string][]byte) {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		pngs[name] = png
	}
	pngs := map[string][]byte{}

	// The model page lists the logged model; its link opens the logged model's page.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(p.base+"/ui/projects/default/models/lmtest"),
		chromedp.WaitVisible(chromedp.CSS(`#logged-models`)),
	); err != nil {
		t.Fatalf("model page: %v", err)
	}
	shot("model-logged-models.png", pngs)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#logged-models tr[data-model-id="`+w.lmid+`"] td:first-child a`)),
		chromedp.WaitVisible(chromedp.CSS(`#model-uri`)),
	); err != nil {
		t.Fatalf("logged model page: %v", err)
	}
	uri, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#model-uri`)))
	if err != nil || uri != "models:/"+w.lmid {
		t.Fatalf("models:/ URI field %q (%v), want models:/%s", uri, err, w.lmid)
	}
	tables, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`({
		params: document.querySelector('#params').textContent, metrics: document.querySelector('#metrics tbody').textContent,
		rows: String(document.querySelectorAll('#metrics tbody tr').length), versions: document.querySelector('#backed-versions').textContent})`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tables["params"], "factor2.0") || tables["rows"] != "2" || !strings.Contains(tables["metrics"], "0.93") ||
		!strings.Contains(tables["metrics"], "eval") || !strings.Contains(tables["versions"], "lm-reg 1.0.0") {
		t.Fatalf("logged model page shows %v", tables)
	}
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#files a[href$="/w.bin"]').href`))
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, href); status != http.StatusOK || string(body) != w.weights {
		t.Fatalf("file link %s: %d, %d bytes", href, status, len(body))
	}
	shot("logged-model.png", pngs)
	// The copy button puts the URI on the clipboard.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: perm}, Setting: browser.PermissionSettingGranted, Origin: p.base}); err != nil {
			t.Fatalf("granting %s: %v", perm, err)
		}
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`button.copy[data-copy="model-uri"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('button.copy[data-copy="model-uri"]').textContent === "Copied"`, chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("copy button: %v", err)
	}
	copied, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil || copied != "models:/"+w.lmid {
		t.Fatalf("clipboard holds %q (%v), want models:/%s", copied, err, w.lmid)
	}

	// The link the client prints after the run: / redirects, the page's script hands the fragment to the
	// resolver, which redirects to the candidate page.
	waitFor := func(what, pathPart, selector string) {
		t.Helper()
		poll.UntilOK(t, 30*time.Second, what, func() error {
			loc, err := chromedp.Run(ctx, chromedp.Location())
			if err != nil {
				return err
			}
			if u, err := url.Parse(loc); err != nil || !strings.Contains(u.Path, pathPart) {
				return fmt.Errorf("at %s", loc)
			}
			return nil
		})
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(selector))); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base+"/#/experiments/"+w.expID+"/runs/"+w.runID)); err != nil {
		t.Fatal(err)
	}
	waitFor("the run link to reach the candidate page", "/ui/projects/default/models/lmtest/candidates/", `#run-logged-models`)
	runPage, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('main').textContent`))
	if err != nil || !strings.Contains(runPage, w.runID) || !strings.Contains(runPage, w.lmid) || !strings.Contains(runPage, "training") {
		t.Fatalf("candidate page shows %q (%v), want the run, its logged model and its training dataset", runPage, err)
	}
	shot("candidate-datasets.png", pngs)
	// The project-prefixed form, to the logged model and to a registered version.
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base+"/api/v4/projects/default/ml/mlflow/#/experiments/"+w.expID+"/models/"+w.lmid)); err != nil {
		t.Fatal(err)
	}
	waitFor("the prefixed logged-model link to reach its page", "/logged-models/"+w.lmid, `#model-uri`)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base+"/#/models/lm-reg/versions/1")); err != nil {
		t.Fatal(err)
	}
	waitFor("the version link to reach the version page", "/models/lm-reg/versions/1.0.0", `#version-source`)
	shot("version-logged-model.png", pngs)
	// An unknown run ends on a clear 404 page, not on MLflow's dead end.
	if err := chromedp.Do(ctx, chromedp.Navigate(p.base+"/#/experiments/"+w.expID+"/runs/0123456789abcdef0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	waitFor("the unknown run link to reach the resolver", "/ui/mlflow-link", `p.error`)
	shot("mlflow-link-unknown.png", pngs)
	saveScreenshots(t, outDir, pngs)
}

// loggedModelWorld is what seedLoggedModel logged.
type loggedModelWorld struct {
	expID, runID, lmid, weights string
}

// seedLoggedModel logs what MLflow 3's log_model with registration logs, in experiment "lmtest" of the
// default project: a run with a training dataset, a logged model from it with params, metrics on an eval
// dataset and two files, finalized, and registered as version 1 of "lm-reg".
func seedLoggedModel(c *mlflowClient) loggedModelWorld {
	w := loggedModelWorld{weights: strings.Repeat("weights!", 512)}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "lmtest"}, &exp)
	w.expID = exp.ExperimentID
	run := c.createRun(w.expID, "train")
	w.runID = run.RunID
	dataset := func(name, digest, context string) map[string]any {
		return map[string]any{"tags": []map[string]any{{"key": "mlflow.data.context", "value": context}},
			"dataset": map[string]any{"name": name, "digest": digest, "source_type": "code", "source": `{"uri": "/data/` + name + `.csv"}`,
				"schema": `{"mlflow_colspec": [{"type": "double", "name": "x1"}]}`, "profile": `{"num_rows": 6}`}}
	}
	c.ok(http.MethodPost, "runs/log-inputs", map[string]any{"run_id": w.runID,
		"datasets": []map[string]any{dataset("train", "f9e2bbb5", "training"), dataset("eval", "e35a3a61", "eval")}}, nil)
	var lm struct {
		Model struct {
			Info struct {
				ModelID string `json:"model_id"`
			} `json:"info"`
		} `json:"model"`
	}
	c.ok(http.MethodPost, "logged-models", map[string]any{"experiment_id": w.expID, "name": "model", "model_type": "regressor",
		"source_run_id": w.runID, "params": []map[string]any{{"key": "factor", "value": "2.0"}},
		"tags": []map[string]any{{"key": "family", "value": "linear"}}}, &lm)
	w.lmid = lm.Model.Info.ModelID
	c.ok(http.MethodPost, "logged-models/"+w.lmid+"/params", map[string]any{"params": []map[string]any{{"key": "features", "value": "x1,x2"}}}, nil)
	for step, acc := range []float64{0.81, 0.93} {
		c.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": w.runID, "key": "acc", "value": acc, "step": step,
			"timestamp": time.Now().UnixMilli(), "model_id": w.lmid, "dataset_name": "eval", "dataset_digest": "e35a3a61"}, nil)
	}
	c.ok(http.MethodPost, "runs/outputs", map[string]any{"run_id": w.runID, "models": []map[string]any{{"model_id": w.lmid, "step": 0}}}, nil)
	files := runInfo{ArtifactURI: "mlflow-artifacts:/" + w.expID + "/models/" + w.lmid + "/artifacts"}
	c.putArtifact(files, "MLmodel", strings.NewReader("flavors: {}\n"), int64(len("flavors: {}\n")))
	c.putArtifact(files, "weights/w.bin", strings.NewReader(w.weights), int64(len(w.weights)))
	c.ok(http.MethodPatch, "logged-models/"+w.lmid, map[string]any{"status": "LOGGED_MODEL_READY"}, nil)
	c.ok(http.MethodPost, "runs/update", map[string]any{"run_id": w.runID, "status": "FINISHED", "end_time": time.Now().UnixMilli()}, nil)
	c.ok(http.MethodPost, "registered-models/create", map[string]any{"name": "lm-reg"}, nil)
	c.ok(http.MethodPost, "model-versions/create", map[string]any{"name": "lm-reg", "source": "models:/" + w.lmid, "model_id": w.lmid}, nil)
	return w
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
