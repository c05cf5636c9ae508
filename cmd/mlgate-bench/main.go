// Command mlgate-bench measures upload and download throughput through a real `mlgate serve` process
// over loopback HTTP against a baseline measured in the same run, and the gateway's peak RSS.
//
// The baseline does, in one process, the work any durable checksummed store must do: it writes the
// same bytes to a file on the same disk while computing sha256, fsyncs, and reads them back while
// verifying sha256. The gateway side does the same work end to end: the client streams the bytes in a
// PUT, the gateway hashes, writes and fsyncs them; the client GETs them back and verifies sha256.
//
// With -s3 (the default) it also measures the S3 backends (see s3bench.go), and with -concurrency (by
// default 1, 4, 16 and 64 clients) how MLflow metric logging scales with concurrent clients (see
// concurrency.go). With -import (the default) it measures `mlgate import mlflow` from a local mlgate
// source against a same-run --read-only baseline, and the importer's peak RSS on one big file (see
// import.go). With -oci (the default) it compares oras pull of a model version with a direct download
// of its file (see ocibench.go). With -transfer it compares `mlgate push` and `mlgate pull` with curl (see transfer.go).
//
// Usage: mlgate-bench -mlgate bin/mlgate -sizes 1GiB,4GiB
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("mlgate", "bin/mlgate", "path to the mlgate binary")
	sizes := flag.String("sizes", "1GiB,4GiB", "comma-separated file sizes")
	dir := flag.String("dir", ".bench", "scratch directory on the disk under test (removed afterwards)")
	minRatio := flag.Float64("min-ratio", 0.9, "target gateway/baseline throughput ratio")
	maxRSS := flag.Int64("max-rss-mib", 100, "target peak RSS of the gateway, MiB")
	runs := flag.Int("runs", 3, "runs per size; medians are reported")
	flag.BoolVar(&verbose, "v", false, "print every run")
	mlflowBench := flag.Bool("mlflow", true, "also measure MLflow API latencies (log-metric, log-batch, runs/search, logged-models/search)")
	candidates := flag.Int("candidates", 100_000, "candidates seeded for the runs/search benchmark")
	pgDSN := flag.String("postgres-dsn", os.Getenv("MLGATE_TEST_POSTGRES_DSN"), "PostgreSQL server for the same MLflow benchmarks on the PostgreSQL store, each run in a fresh schema of this database (dropped afterwards); empty: skip them")
	replicaClients := flag.Int("replica-clients", 32, "clients of the replica comparison (log-metric on PostgreSQL through one replica, then split over two); 0 or no -postgres-dsn: skip it")
	loggedModels := flag.Int("logged-models", -1, "logged models seeded for the logged-models/search benchmark, each from its own candidate (at most -candidates; -1: as many as -candidates)")
	s3Bench := flag.Bool("s3", true, "also measure PUT/GET through the minio backend, in process and as a plugin, against direct minio-go on MinIO and versitygw")
	s3Runs := flag.Int("s3-runs", 5, "runs of each S3 measurement; medians are reported")
	s3Size := flag.String("s3-size", "1GiB", "object size of the S3 measurements")
	backendBin := flag.String("backend", "bin/mlgate-backend", "path to the mlgate-backend plugin binary (S3 part)")
	s3Script := flag.String("s3-servers", ".ci/s3-servers.sh", "script that installs, starts and stops the S3 servers (S3 part)")
	concurrency := flag.String("concurrency", "1,4,16,64", "client counts of the concurrency series (log-metric and log-batch back to back); empty: skip it")
	concurrencyDuration := flag.Duration("concurrency-duration", 10*time.Second, "measured time of each level of the concurrency series")
	concurrencyBatch := flag.Int("concurrency-batch", 100, "metrics per log-batch call in the concurrency series")
	minSingleClient := flag.Float64("min-single-client", 1300, "log-metric calls/s one client must reach in the concurrency series: this machine's figure before group commit (0: no target)")
	importBench := flag.Bool("import", true, "also measure mlgate import mlflow from a local mlgate source against a --read-only baseline (issue 12)")
	importRuns := flag.Int("import-runs", 1000, "runs of the import benchmark's many-runs source")
	importPoints := flag.Int("import-points", 100, "metric points per run of the many-runs source")
	importBig := flag.String("import-big", "1GiB", "size of the one file of the import benchmark's big-file source (0: skip that case)")
	importReps := flag.Int("import-reps", 3, "baseline and import runs of each import case, alternating; medians are reported")
	importParallel := flag.Int("import-parallel", 4, "the importer's --parallel")
	importMinRatio := flag.Float64("import-min-ratio", 0.8, "target baseline/import wall-time ratio on the many-runs source")
	importMaxRSS := flag.Int64("import-max-rss-mib", 64, "target peak RSS of the importer on the big-file source, MiB (measured: 27 MiB at 64 MiB and at 1 GiB)")
	backupRuns := flag.Int("backup-runs", 0, "seed this many runs and time mlgate backup of them, hot (--url) and offline (--data-dir); 0: skip")
	transferBench := flag.Bool("transfer", false, "measure mlgate push/pull against curl PUT/GET on the same files (see transfer.go)")
	transferSize := flag.String("transfer-size", "300MiB", "size of the big file of the push/pull measurement")
	transferRuns := flag.Int("transfer-runs", 3, "runs of the push/pull measurement; medians are reported")
	transferParallel := flag.Int("transfer-parallel", 4, "files moved at once by mlgate (--parallel) and curl (--parallel-max)")
	ociBench := flag.Bool("oci", true, "also measure oras pull of a model version against a direct download of its file (issue 15)")
	orasBin := flag.String("oras", "bin/oras", "path to the oras CLI (OCI part; make bench installs it)")
	ociSize := flag.String("oci-size", "1GiB", "file size of the OCI measurement")
	ociRuns := flag.Int("oci-runs", 3, "runs of the OCI measurement; medians are reported")
	ociOut := flag.String("oci-out", "", "directory the OCI measurement writes pulled files to (a tmpfs such as /dev/shm leaves the disk out); empty: under -dir")
	flag.Parse()

	failed := false
	if *backupRuns > 0 {
		if err := benchBackup(*bin, *dir, *backupRuns); err != nil {
			fatal(err)
		}
	}
	if *concurrency != "" {
		levels, err := parseLevels(*concurrency)
		if err != nil {
			fatal(err)
		}
		ok, err := benchConcurrency(concurrencyOptions{mlgate: *bin, dir: *dir, levels: levels, duration: *concurrencyDuration,
			batch: *concurrencyBatch, minSingle: *minSingleClient})
		if err != nil {
			fatal(err)
		}
		failed = !ok
	}
	if *replicaClients > 0 && *pgDSN == "" {
		fmt.Println("\nreplicas on one PostgreSQL: skipped, no DSN (-postgres-dsn, or MLGATE_TEST_POSTGRES_DSN: eval \"$(.ci/postgres.sh start)\")")
	} else if *replicaClients > 0 {
		if err := benchReplicas(replicaOptions{mlgate: *bin, dir: *dir, dsn: *pgDSN, clients: *replicaClients,
			duration: *concurrencyDuration}); err != nil {
			fatal(err)
		}
	}
	if *mlflowBench {
		if *loggedModels < 0 {
			*loggedModels = *candidates
		}
		ok, err := benchMLflow(*bin, *dir, *candidates, *loggedModels, *pgDSN)
		if err != nil {
			fatal(err)
		}
		failed = failed || !ok
	}
	if *importBench {
		big, err := parseSize(*importBig)
		if err != nil {
			fatal(err)
		}
		ok, err := benchImport(importOptions{mlgate: *bin, dir: *dir, runs: *importRuns, points: *importPoints, big: big,
			reps: *importReps, parallel: *importParallel, minRatio: *importMinRatio, maxRSSMiB: *importMaxRSS})
		if err != nil {
			fatal(err)
		}
		failed = failed || !ok
	}
	if *s3Bench {
		size, err := parseSize(*s3Size)
		if err != nil {
			fatal(err)
		}
		ok, err := benchS3(s3Options{
			mlgate: *bin, backend: *backendBin, script: *s3Script, size: size, runs: *s3Runs,
			minInProc: 0.9, minPlugin: 0.8, maxRSSMiB: *maxRSS,
		})
		if err != nil {
			fatal(err)
		}
		failed = failed || !ok
	}
	if *ociBench {
		size, err := parseSize(*ociSize)
		if err != nil {
			fatal(err)
		}
		ok, err := benchOCI(ociOptions{mlgate: *bin, oras: *orasBin, dir: *dir, out: *ociOut, size: size, runs: *ociRuns, minRatio: 0.9, maxRSSMiB: *maxRSS})
		if err != nil {
			fatal(err)
		}
		failed = failed || !ok
	}
	if *transferBench {
		size, err := parseSize(*transferSize)
		if err != nil {
			fatal(err)
		}
		if err := benchTransfer(*bin, *dir, size, *transferRuns, *transferParallel); err != nil {
			fatal(err)
		}
	}
	if *sizes == "" {
		if failed {
			os.Exit(1)
		}
		return
	}
	fmt.Printf("%-6s %-9s %12s %12s %7s %s\n", "size", "direction", "baseline", "gateway", "ratio", "gateway peak RSS")
	for _, s := range strings.Split(*sizes, ",") {
		size, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			fatal(err)
		}
		res, err := benchSize(*bin, *dir, size, *runs)
		if err != nil {
			fatal(err)
		}
		for _, d := range []struct {
			name      string
			base, gwy float64
		}{{"upload", res.baseWrite, res.gwUpload}, {"download", res.baseRead, res.gwDownload}} {
			ratio := d.gwy / d.base
			fmt.Printf("%-6s %-9s %9.0f MB/s %9.0f MB/s %7.2f %d MiB\n", s, d.name, d.base, d.gwy, ratio, res.peakRSS>>20)
			if ratio < *minRatio {
				failed = true
			}
		}
		if res.peakRSS>>20 >= *maxRSS {
			failed = true
		}
	}
	if failed {
		fmt.Printf("TARGETS MISSED (ratio >= %.2f both ways, peak RSS < %d MiB)\n", *minRatio, *maxRSS)
		os.Exit(1)
	}
	fmt.Printf("targets met (ratio >= %.2f both ways, peak RSS < %d MiB)\n", *minRatio, *maxRSS)
}

// verbose prints every run, not just the medians.
var verbose bool

type result struct {
	baseWrite, baseRead  float64 // MB/s, median over runs
	gwUpload, gwDownload float64 // MB/s, median over runs
	peakRSS              int64   // bytes, highest over runs
}

// benchSize alternates baseline and gateway runs so that both see the same disk and page-cache
// conditions (this disk's write speed varies several-fold between runs), and reports medians.
func benchSize(bin, dir string, size int64, runs int) (*result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var bw, br, gu, gd []float64
	res := &result{}
	wantSum := patternSum(size)
	for i := 0; i < runs; i++ {
		var w, r, u, d float64
		var rss int64
		var err error
		// Alternate which side goes first: on a VM disk, the write that follows another large write
		// is often the slower one.
		if i%2 == 0 {
			if w, r, err = baselineRun(dir, size, wantSum); err == nil {
				u, d, rss, err = gatewayRun(bin, dir, size, wantSum)
			}
		} else {
			if u, d, rss, err = gatewayRun(bin, dir, size, wantSum); err == nil {
				w, r, err = baselineRun(dir, size, wantSum)
			}
		}
		if err != nil {
			return nil, err
		}
		bw, br = append(bw, w), append(br, r)
		gu, gd = append(gu, u), append(gd, d)
		if verbose {
			fmt.Fprintf(os.Stderr, "run %d: baseline write %.0f read %.0f, gateway upload %.0f download %.0f MB/s\n", i+1, w, r, u, d)
		}
		res.peakRSS = max(res.peakRSS, rss)
	}
	res.baseWrite, res.baseRead, res.gwUpload, res.gwDownload = median(bw), median(br), median(gu), median(gd)
	return res, nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// settle flushes the page cache's dirty pages and waits a moment, so that no phase pays for the
// write-back of the one before it.
func settle() {
	syscall.Sync()
	time.Sleep(2 * time.Second)
}

// patternSum is the sha256 of the first size bytes of the pattern.
func patternSum(size int64) string {
	h := sha256.New()
	_, _ = io.CopyBuffer(h, io.LimitReader(newPattern(), size), make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil))
}

// baselineRun writes size bytes to a file while hashing, fsyncs, then reads them back verifying the
// hash, and returns both throughputs.
func baselineRun(dir string, size int64, wantSum string) (writeMBps, readMBps float64, err error) {
	basePath := filepath.Join(dir, "baseline.bin")
	defer os.Remove(basePath)
	settle()
	start := time.Now()
	sum, err := writeBaseline(basePath, size)
	if err != nil {
		return 0, 0, err
	}
	writeMBps = mbps(size, time.Since(start))
	if sum != wantSum {
		return 0, 0, errors.New("baseline wrote other bytes than the pattern")
	}
	settle()
	start = time.Now()
	f, err := os.Open(basePath)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	n, got, err := hashStream(f)
	if err != nil || n != size || got != wantSum {
		return 0, 0, fmt.Errorf("baseline read-back: %d bytes, sum %s: %v", n, got, err)
	}
	return writeMBps, mbps(size, time.Since(start)), nil
}

// gatewayRun starts a fresh mlgate process, PUTs size bytes and GETs them back verifying wantSum,
// and returns both throughputs and the process's peak RSS.
func gatewayRun(bin, dir string, size int64, wantSum string) (upMBps, downMBps float64, rss int64, err error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, 0, 0, err
	}
	dataDir := filepath.Join(dir, "data")
	defer os.RemoveAll(dataDir)
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--addr", addr, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return 0, 0, 0, err
	}
	url := base + "/api/v4/projects/bench%2Fproject/packages/ml_models/bench/1.0.0/files/model.bin"

	settle()
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPut, url, io.LimitReader(newPattern(), size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	var up struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		return 0, 0, 0, fmt.Errorf("upload: status %d: %v", resp.StatusCode, err)
	}
	upMBps = mbps(size, time.Since(start))
	if up.SHA256 != wantSum || up.Size != size {
		return 0, 0, 0, fmt.Errorf("upload stored %d bytes sha256 %s, want %d %s", up.Size, up.SHA256, size, wantSum)
	}

	settle()
	start = time.Now()
	resp, err = http.Get(url)
	if err != nil {
		return 0, 0, 0, err
	}
	n, got, err := hashStream(resp.Body)
	resp.Body.Close()
	if err != nil || n != size || got != wantSum {
		return 0, 0, 0, fmt.Errorf("download: %d bytes, sum %s: %v", n, got, err)
	}
	downMBps = mbps(size, time.Since(start))
	rss, err = peakRSS(cmd.Process.Pid)
	return upMBps, downMBps, rss, err
}

// hashStream reads r to the end while hashing, with reading and hashing overlapped through a few
// rotating buffers: how a verifying reader keeps up with a fast source. Both the baseline's file
// read-back and the gateway download use it, so they are measured the same way.
func hashStream(r io.Reader) (int64, string, error) {
	const bufs, bufSize = 4, 1 << 20
	free := make(chan []byte, bufs)
	for range bufs {
		free <- make([]byte, bufSize)
	}
	full := make(chan []byte, bufs)
	errc := make(chan error, 1)
	go func() {
		defer close(full)
		for buf := range free {
			n, err := io.ReadFull(r, buf)
			if n > 0 {
				full <- buf[:n]
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				errc <- nil
				return
			}
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	h := sha256.New()
	var total int64
	for buf := range full {
		h.Write(buf)
		total += int64(len(buf))
		free <- buf[:cap(buf)]
	}
	return total, hex.EncodeToString(h.Sum(nil)), <-errc
}

// patternBlock is repeated to form the benchmark's bytes: random enough that no layer can compress
// them, cheap enough that generating them costs nothing next to the work measured.
var patternBlock = func() []byte {
	b := make([]byte, 4<<20)
	r := rand.New(rand.NewChaCha8([32]byte{'m', 'l', 'g', 'a', 't', 'e'}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

type pattern struct{ off int }

func newPattern() *pattern { return &pattern{} }

func (p *pattern) Read(b []byte) (int, error) {
	n := copy(b, patternBlock[p.off:])
	p.off = (p.off + n) % len(patternBlock)
	return n, nil
}

func writeBaseline(path string, size int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(newPattern(), size), make([]byte, 1<<20)); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitHealthy(base string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("mlgate did not become healthy")
}

// peakRSS reads the process's high-water resident set size from /proc.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("VmHWM not found")
}

func parseSize(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n * u.mult, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "mlgate-bench:", err)
	os.Exit(2)
}
