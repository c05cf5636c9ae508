package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

	outDir := os.Getenv("MLGATE_SCREENSHOT_DIR")
	if outDir == "" {
		outDir = t.TempDir()
	} else if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}

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
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

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
	for name, png := range map[string][]byte{"model.png": modelPNG, "candidate.png": candPNG} {
		if len(png) < 1000 {
			t.Fatalf("%s: screenshot of %d bytes", name, len(png))
		}
		if err := os.WriteFile(filepath.Join(outDir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", outDir)
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
