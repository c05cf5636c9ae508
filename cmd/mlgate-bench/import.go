package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// importOptions configures the import benchmark of issue 12.
type importOptions struct {
	mlgate   string
	dir      string
	runs     int   // runs of the many-runs source, spread over importExperiments experiments
	points   int   // metric points per run, one key
	big      int64 // size of the one artifact of the big-file source; 0: skip that case
	reps     int   // baseline and import runs of each case, alternating; medians are reported
	parallel int   // the importer's --parallel
	// minRatio is the target of baseline time / import time on the many-runs source.
	minRatio float64
	// maxRSSMiB is the target peak RSS of the importer on the big-file source.
	maxRSSMiB int64
}

// The many-runs source: its runs are spread over this many experiments, and each run has these files.
const importExperiments = 10

var importFiles = []struct {
	path string
	size int64
}{{"model/MLmodel", 1 << 10}, {"model/data/model.pkl", 16 << 10}, {"eval/report.json", 4 << 10}}

// importRun is what one `mlgate import mlflow` process did.
type importRun struct {
	wall   time.Duration // the process's wall time, start to exit
	rss    int64         // the process's peak RSS, bytes (ru_maxrss)
	cpu    time.Duration // the process's user plus system CPU time
	report importReport
}

// importReport is what the benchmark reads of `mlgate import mlflow --json`.
type importReport struct {
	Imported struct {
		Experiments, Runs, MetricPoints, Files int64
	}
	Bytes    int64
	Elapsed  time.Duration
	Failures []json.RawMessage
}

// benchImport measures `mlgate import mlflow` against a real `mlgate serve` source, populated through its
// MLflow REST API, beside a same-run baseline: `mlgate import mlflow --read-only`, which reads from the
// source every listing, metric history page and file byte an import reads and discards them. Baseline and
// import runs alternate, each import into a fresh data dir, so that both see the same machine conditions;
// the import skips its closing verification (--verify=false), which the baseline has no counterpart of,
// and `mlgate import verify` checks the first import of each case, untimed. Times are the processes' wall
// times. Two cases: opts.runs runs × opts.points metric points × 3 small files, with the target that
// baseline time / import time ≥ opts.minRatio (the importer is limited by the source, not by its writes);
// and one run with one opts.big file, whose throughput is printed beside the baseline's with the
// importer's peak RSS, whose target (memory stays flat whatever the file's size) is opts.maxRSSMiB.
func benchImport(opts importOptions) (bool, error) {
	if opts.runs < 1 || opts.points < 1 || opts.reps < 1 {
		return false, fmt.Errorf("need 1 or more runs, points and reps, not %d, %d and %d", opts.runs, opts.points, opts.reps)
	}
	dir := filepath.Join(opts.dir, "import")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	ok := true

	fmt.Printf("\nimport (issue 12): `mlgate import mlflow --verify=false --parallel %d` from a local `mlgate serve` against a same-run baseline, "+
		"`--read-only` (reads every listing, history page and file byte, writes nothing); %d of each, alternating, medians\n",
		opts.parallel, opts.reps)
	src, err := startSource(opts.mlgate, filepath.Join(dir, "source-runs"))
	if err != nil {
		return false, err
	}
	t0 := time.Now()
	err = populateRuns(src.base, opts.runs, opts.points)
	if err != nil {
		src.stop()
		return false, fmt.Errorf("populating the source: %w", err)
	}
	fmt.Printf("source populated through its REST API in %s: %d runs in %d experiments, each with %d points of one metric, 2 params and %d files (%s each)\n",
		time.Since(t0).Round(time.Millisecond), opts.runs, importExperiments, opts.points, len(importFiles), importFileSizes())
	want := importReport{Bytes: int64(opts.runs) * importFilesBytes()}
	want.Imported.Runs, want.Imported.MetricPoints, want.Imported.Files = int64(opts.runs), int64(opts.runs*opts.points), int64(opts.runs*len(importFiles))
	base, imp, err := importCase(opts, src.base, dir, want, nil)
	src.stop()
	if err != nil {
		return false, err
	}
	bt, it := medianRun(base, func(r importRun) float64 { return r.wall.Seconds() }), medianRun(imp, func(r importRun) float64 { return r.wall.Seconds() })
	ratio := bt / it
	verdict := "met"
	if ratio < opts.minRatio {
		verdict, ok = "MISSED", false
	}
	fmt.Printf("%-40s %10s %10s %7s  %s\n", "", "baseline", "import", "ratio", "")
	fmt.Printf("%-40s %9.2fs %9.2fs %7.2f  target %s baseline/import time ≥ %.2f\n",
		fmt.Sprintf("%d runs × %d points × %d files", opts.runs, opts.points, len(importFiles)), bt, it, ratio, verdict, opts.minRatio)
	fmt.Printf("%-40s %10.0f %10.0f\n", "  runs/s", float64(opts.runs)/bt, float64(opts.runs)/it)
	fmt.Printf("%-40s %9.2fs %9.2fs\n", "  importer CPU, user+system", medianRun(base, cpuSeconds), medianRun(imp, cpuSeconds))
	fmt.Printf("%-40s %6d MiB %6d MiB\n", "  peak RSS (highest)", maxRSS(base)>>20, maxRSS(imp)>>20)

	if opts.big <= 0 {
		return ok, nil
	}
	src, err = startSource(opts.mlgate, filepath.Join(dir, "source-big"))
	if err != nil {
		return false, err
	}
	t0 = time.Now()
	err = populateBig(src.base, opts.big)
	if err != nil {
		src.stop()
		return false, fmt.Errorf("populating the source: %w", err)
	}
	fmt.Printf("source populated in %s: 1 run with one %s file (streamed from a generator)\n", time.Since(t0).Round(time.Millisecond), sizeString(opts.big))
	want = importReport{Bytes: opts.big}
	want.Imported.Runs, want.Imported.Files = 1, 1
	// For reference, the disk's own durable write speed, measured alongside: the main benchmark's
	// baseline (write while hashing sha256, then fsync), which the importer's write side also does.
	var disk []float64
	wantSum := patternSum(opts.big)
	diskWrite := func() error {
		path := filepath.Join(dir, "disk-write.bin")
		defer os.Remove(path)
		settle()
		start := time.Now()
		sum, err := writeBaseline(path, opts.big)
		if err == nil && sum != wantSum {
			err = errors.New("the disk write reference wrote other bytes than the pattern")
		}
		disk = append(disk, mbps(opts.big, time.Since(start)))
		return err
	}
	base, imp, err = importCase(opts, src.base, dir, want, diskWrite)
	src.stop()
	if err != nil {
		return false, err
	}
	bt, it = medianRun(base, func(r importRun) float64 { return r.wall.Seconds() }), medianRun(imp, func(r importRun) float64 { return r.wall.Seconds() })
	bMBps, iMBps := float64(opts.big)/1e6/bt, float64(opts.big)/1e6/it
	rss := maxRSS(imp)
	verdict = "met"
	if rss>>20 >= opts.maxRSSMiB {
		verdict, ok = "MISSED", false
	}
	fmt.Printf("%-40s %10s %10s %7s  %s\n", "", "baseline", "import", "ratio", "")
	fmt.Printf("%-40s %5.0f MB/s %5.0f MB/s %7.2f  (%.2fs, %.2fs)\n", fmt.Sprintf("1 run, one %s file", sizeString(opts.big)), bMBps, iMBps, iMBps/bMBps, bt, it)
	fmt.Printf("%-40s %9.2fs %9.2fs\n", "  importer CPU, user+system", medianRun(base, cpuSeconds), medianRun(imp, cpuSeconds))
	fmt.Printf("%-40s %10s %5.0f MB/s          (write, sha256 and fsync of the same bytes to a file, no HTTP)\n",
		"  this disk's durable write speed", "", median(disk))
	fmt.Printf("%-40s %6d MiB %6d MiB          target %s importer peak RSS < %d MiB (flat: the file streams)\n",
		"  peak RSS (highest)", maxRSS(base)>>20, rss>>20, verdict, opts.maxRSSMiB)
	return ok, nil
}

// importCase runs opts.reps baseline and import runs against the source at from, alternating which goes
// first, each import into a fresh data dir, and checks every report against want. The first import is
// then verified against the source, untimed.
// With also, it runs that too in each rep, last.
func importCase(opts importOptions, from, dir string, want importReport, also func() error) (base, imp []importRun, err error) {
	target := filepath.Join(dir, "target")
	defer os.RemoveAll(target)
	for i := range opts.reps {
		baseline := func() error {
			r, err := runImporter(opts, from, target, "--read-only")
			if err == nil {
				err = checkReport("baseline", r.report, want)
			}
			base = append(base, r)
			return err
		}
		importing := func() error {
			if err := os.RemoveAll(target); err != nil {
				return err
			}
			r, err := runImporter(opts, from, target, "--verify=false")
			if err == nil {
				err = checkReport("import", r.report, want)
			}
			imp = append(imp, r)
			if err == nil && i == 0 {
				err = verifyImport(opts, from, target)
			}
			return err
		}
		first, second := baseline, importing
		if i%2 == 1 {
			first, second = importing, baseline
		}
		if err := first(); err != nil {
			return nil, nil, err
		}
		if err := second(); err != nil {
			return nil, nil, err
		}
		if also != nil {
			if err := also(); err != nil {
				return nil, nil, err
			}
		}
		if verbose {
			b, m := base[len(base)-1], imp[len(imp)-1]
			fmt.Fprintf(os.Stderr, "rep %d: baseline %s (CPU %s, %d MiB), import %s (CPU %s, %d MiB)\n", i+1, b.wall.Round(time.Millisecond),
				b.cpu.Round(time.Millisecond), b.rss>>20, m.wall.Round(time.Millisecond), m.cpu.Round(time.Millisecond), m.rss>>20)
		}
	}
	return base, imp, nil
}

// runImporter runs `mlgate import mlflow` from the source into target with extra flags, after settling
// the page cache, and returns its wall time, peak RSS and report.
func runImporter(opts importOptions, from, target string, extra ...string) (importRun, error) {
	args := append([]string{"import", "mlflow", "--from", from, "--project", "bench/imported", "--data-dir", target,
		"--parallel", strconv.Itoa(opts.parallel), "--json"}, extra...)
	cmd := exec.Command(opts.mlgate, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	settle()
	start := time.Now()
	err := cmd.Run()
	r := importRun{wall: time.Since(start)}
	if err != nil {
		return r, fmt.Errorf("mlgate %s: %w\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rss = ru.Maxrss << 10 // KiB on Linux
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if err := json.Unmarshal(stdout.Bytes(), &r.report); err != nil {
		return r, fmt.Errorf("mlgate %s: report: %w\n%s", strings.Join(args, " "), err, stdout.Bytes())
	}
	return r, nil
}

// checkReport checks that a run read or imported every run, point and file of the source, and no more.
func checkReport(what string, got, want importReport) error {
	g, w := got.Imported, want.Imported
	if len(got.Failures) > 0 || g.Runs != w.Runs || g.Files != w.Files || got.Bytes != want.Bytes ||
		(w.MetricPoints > 0 && g.MetricPoints != w.MetricPoints) {
		return fmt.Errorf("%s: %d runs, %d metric points, %d files, %d bytes, %d failures (%s); want %d, %d, %d, %d, none",
			what, g.Runs, g.MetricPoints, g.Files, got.Bytes, len(got.Failures), joinRaw(got.Failures),
			w.Runs, w.MetricPoints, w.Files, want.Bytes)
	}
	return nil
}

// verifyImport runs `mlgate import verify`, which compares every entity, history and file (sha256 from
// both sides) of the source with what was imported into target.
func verifyImport(opts importOptions, from, target string) error {
	cmd := exec.Command(opts.mlgate, "import", "verify", "--from", from, "--project", "bench/imported", "--data-dir", target,
		"--parallel", strconv.Itoa(opts.parallel))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mlgate import verify: %w\n%s", err, out)
	}
	if verbose {
		fmt.Fprintf(os.Stderr, "%s", out)
	}
	return nil
}

func medianRun(rs []importRun, f func(importRun) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

func cpuSeconds(r importRun) float64 { return r.cpu.Seconds() }

func maxRSS(rs []importRun) int64 {
	var m int64
	for _, r := range rs {
		m = max(m, r.rss)
	}
	return m
}

// source is a running `mlgate serve` that imports read from.
type source struct {
	cmd     *exec.Cmd
	base    string
	dataDir string
}

func startSource(bin, dataDir string) (*source, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--addr", addr, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &source{cmd: cmd, base: "http://" + addr, dataDir: dataDir}
	if err := waitHealthy(s.base); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *source) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
	_ = os.RemoveAll(s.dataDir)
}

// importClient is the HTTP client that populates sources.
var importClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}

// populateRuns creates importExperiments experiments and n runs spread over them, each with 2 params,
// points points of "loss" in one log-batch, the importFiles and status FINISHED, with 8 clients at once.
func populateRuns(base string, n, points int) error {
	api := base + "/api/2.0/mlflow/"
	expIDs := make([]string, importExperiments)
	for i := range expIDs {
		var exp struct {
			ExperimentID string `json:"experiment_id"`
		}
		if err := postJSON(importClient, api+"experiments/create", map[string]any{"name": fmt.Sprintf("import bench %d", i)}, &exp); err != nil {
			return err
		}
		expIDs[i] = exp.ExperimentID
	}
	work := make(chan int)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := populateRun(api, base, expIDs[i%len(expIDs)], i, points); err != nil {
					select {
					case errc <- fmt.Errorf("run %d: %w", i, err):
					default:
					}
				}
			}
		})
	}
	for i := range n {
		if len(errc) > 0 {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func populateRun(api, base, expID string, i, points int) error {
	start := time.Now().UnixMilli()
	run, err := createRun(api, expID, fmt.Sprintf("run-%d", i), start)
	if err != nil {
		return err
	}
	metrics := make([]map[string]any, points)
	for s := range metrics {
		metrics[s] = map[string]any{"key": "loss", "value": 1 / float64(s+1), "timestamp": start + int64(s), "step": s}
	}
	err = postJSON(importClient, api+"runs/log-batch", map[string]any{"run_id": run.RunID, "metrics": metrics,
		"params": []map[string]string{{"key": "lr", "value": "0.01"}, {"key": "seed", "value": strconv.Itoa(i)}}}, &struct{}{})
	if err != nil {
		return err
	}
	for _, f := range importFiles {
		if err := putArtifact(base, run.ArtifactURI, f.path, io.LimitReader(newPattern(), f.size), f.size); err != nil {
			return err
		}
	}
	return postJSON(importClient, api+"runs/update", map[string]any{"run_id": run.RunID, "status": "FINISHED",
		"end_time": time.Now().UnixMilli()}, &struct{}{})
}

// populateBig creates one experiment with one run holding one file of size bytes, streamed from the
// pattern generator: never held in memory.
func populateBig(base string, size int64) error {
	api := base + "/api/2.0/mlflow/"
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := postJSON(importClient, api+"experiments/create", map[string]any{"name": "import bench big"}, &exp); err != nil {
		return err
	}
	start := time.Now().UnixMilli()
	run, err := createRun(api, exp.ExperimentID, "big", start)
	if err != nil {
		return err
	}
	if err := putArtifact(base, run.ArtifactURI, "model/data/weights.bin", io.LimitReader(newPattern(), size), size); err != nil {
		return err
	}
	return postJSON(importClient, api+"runs/update", map[string]any{"run_id": run.RunID, "status": "FINISHED",
		"end_time": time.Now().UnixMilli()}, &struct{}{})
}

type runInfo struct {
	RunID       string `json:"run_id"`
	ArtifactURI string `json:"artifact_uri"`
}

func createRun(api, expID, name string, start int64) (runInfo, error) {
	var out struct {
		Run struct {
			Info runInfo `json:"info"`
		} `json:"run"`
	}
	err := postJSON(importClient, api+"runs/create", map[string]any{"experiment_id": expID, "run_name": name, "start_time": start,
		"user_id": "bench"}, &out)
	if err == nil && !strings.HasPrefix(out.Run.Info.ArtifactURI, "mlflow-artifacts:/") {
		err = fmt.Errorf("runs/create: artifact_uri %q is not served by the artifact proxy", out.Run.Info.ArtifactURI)
	}
	return out.Run.Info, err
}

// putArtifact uploads a file through the MLflow artifact proxy.
func putArtifact(base, artifactURI, path string, body io.Reader, size int64) error {
	url := base + "/api/2.0/mlflow-artifacts/artifacts/" + strings.TrimPrefix(artifactURI, "mlflow-artifacts:/") + "/" + path
	req, err := http.NewRequest(http.MethodPut, url, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	resp, err := importClient.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("PUT %s: %d %s", path, resp.StatusCode, msg)
	}
	return nil
}

func importFilesBytes() int64 {
	var n int64
	for _, f := range importFiles {
		n += f.size
	}
	return n
}

func importFileSizes() string {
	var s []string
	for _, f := range importFiles {
		s = append(s, sizeString(f.size))
	}
	return strings.Join(s, ", ")
}

// sizeString prints a size as parseSize reads it, in the largest unit that divides it.
func sizeString(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + " " + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

func joinRaw(ms []json.RawMessage) string {
	var s []string
	for _, m := range ms {
		s = append(s, string(m))
	}
	return strings.Join(s, ", ")
}
