package main

// The S3 part of the benchmark: 1 GiB PUT and GET straight to MinIO and to versitygw with minio-go
// (the baselines), and the same through a real `mlgate serve` whose backend is the minio backend,
// once in process and once as a plugin (bin/mlgate-backend minio). Baseline and gateway runs are
// interleaved, in a rotating order, so that all of them see the same disk and server conditions
// (run-to-run noise here reaches 20-40 %), and medians are reported.
//
// Besides MB/s and the gateway's CPU it measures the CPU of every process taking part (client, S3
// server, mlgate, plugin) and the machine's busy cores. When a transfer keeps the cores busy, its speed
// is set by the total CPU it costs, so direct's total over a path's total is the highest ratio that
// path can reach there (the "ceiling" column): a gateway that adds even 0.25 CPU-s/GiB to a GET that
// costs 1.2 in all cannot reach 0.9 on 2 cores, however it moves the bytes.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	mgo "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Options are the S3 part's settings (flags of main).
type s3Options struct {
	mlgate, backend string // binaries: mlgate and mlgate-backend
	script          string // .ci/s3-servers.sh
	size            int64
	runs            int
	minInProc       float64 // target ratio, in-process minio backend vs direct minio-go
	minPlugin       float64 // target ratio, minio backend as a plugin vs direct minio-go
	maxRSSMiB       int64
}

// The three ways the bytes travel.
const (
	pathDirect   = "direct"     // minio-go from this process to the server
	pathInProc   = "in-process" // this process -> mlgate (minio backend) -> server
	pathPlugin   = "plugin"     // this process -> mlgate -> mlgate-backend minio -> server
	clockTicksHz = 100          // USER_HZ of /proc/<pid>/stat: 100 on every Linux architecture Go runs on
)

var s3Paths = []string{pathDirect, pathInProc, pathPlugin}

// s3Server is one S3 server started by the script.
type s3Server struct {
	name, endpoint string
	core           *mgo.Core
	pid            int // the server process, for its CPU time
}

// s3Env holds what `s3-servers.sh start` exported.
type s3Env struct {
	vars                       map[string]string
	accessKey, secretKey, bkt  string
	servers                    []s3Server
	accessKeyEnv, secretKeyEnv string
}

// s3Run is one PUT and GET on one path.
type s3Run struct {
	put, get   reading
	rssGateway int64 // bytes, VmHWM of mlgate (gateway paths)
	rssPlugin  int64 // bytes, VmHWM of the plugin process (plugin path)
}

// reading is what a meter measured of one transfer.
type reading struct {
	mbps float64
	// cpu is CPU seconds per GiB of the process under test: this one (the client) for direct, mlgate
	// and its plugin for the gateway paths.
	cpu float64
	// all is CPU seconds per GiB of every process taking part: client, S3 server, mlgate and plugin.
	all float64
	// busy is the machine's busy cores during the transfer (from /proc/stat): near the number of
	// cores, the transfer was CPU-bound and its speed is about cores/all GiB/s.
	busy float64
}

// meter measures one transfer: its wall time, the CPU time of the processes under test, of all
// processes taking part, and of the whole machine.
type meter struct {
	start          time.Time
	tested, others []int // pids; 0 is this process
	cpuTested, cpu float64
	busy           float64
}

func startMeter(tested, others []int) (*meter, error) {
	m := &meter{tested: tested, others: others}
	var err error
	if m.cpuTested, err = pidsCPU(tested); err != nil {
		return nil, err
	}
	o, err := pidsCPU(others)
	if err != nil {
		return nil, err
	}
	m.cpu = m.cpuTested + o
	if m.busy, err = machineBusy(); err != nil {
		return nil, err
	}
	m.start = time.Now()
	return m, nil
}

func (m *meter) stop(size int64) (reading, error) {
	wall := time.Since(m.start)
	busy, err := machineBusy()
	if err != nil {
		return reading{}, err
	}
	tested, err := pidsCPU(m.tested)
	if err != nil {
		return reading{}, err
	}
	o, err := pidsCPU(m.others)
	if err != nil {
		return reading{}, err
	}
	return reading{
		mbps: mbps(size, wall),
		cpu:  perGiB(tested-m.cpuTested, size),
		all:  perGiB(tested+o-m.cpu, size),
		busy: (busy - m.busy) / wall.Seconds(),
	}, nil
}

// pidsCPU is the CPU time of the processes, in seconds; pid 0 is this process.
func pidsCPU(pids []int) (float64, error) {
	var t float64
	var others []int
	for _, p := range pids {
		if p == 0 {
			t += selfCPU()
		} else {
			others = append(others, p)
		}
	}
	o, err := procsCPU(others)
	return t + o, err
}

// machineBusy is the machine's busy CPU time so far (all cores, not idle or waiting for I/O), in
// seconds.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var total, idle int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i == 7 { // steal: time the hypervisor gave to others, not ours
			continue
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return float64(total-idle) / clockTicksHz, nil
}

// benchS3 starts the S3 servers, runs the interleaved measurements, prints the table and reports
// whether every target was met. Errors are setup or verification failures (a wrong sha256, a
// failed request), never a missed target.
func benchS3(o s3Options) (ok bool, err error) {
	if o.runs < 1 {
		return false, errors.New("-s3-runs must be at least 1")
	}
	script, err := filepath.Abs(o.script)
	if err != nil {
		return false, err
	}
	// A private state directory: the script's stop kills whatever its pid files name, and other
	// users of the script (tests running now) keep theirs in the default one.
	state := filepath.Join(filepath.Dir(filepath.Dir(script)), ".tools", fmt.Sprintf("s3-bench-%d", os.Getpid()))
	env := append(os.Environ(), "MLGATE_S3_STATE="+state)
	sh := func(arg string, stdout io.Writer) error {
		cmd := exec.Command(script, arg)
		cmd.Env, cmd.Stdout, cmd.Stderr = env, stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s %s: %w", o.script, arg, err)
		}
		return nil
	}
	fmt.Fprintln(os.Stderr, "s3 bench: installing the S3 servers (builds them on first use; minutes)")
	if err := sh("install", os.Stderr); err != nil {
		return false, err
	}
	var exports strings.Builder
	defer func() {
		if serr := sh("stop", os.Stderr); serr != nil && err == nil {
			err = serr
		}
		_ = os.RemoveAll(state)
	}()
	if err := sh("start", &exports); err != nil {
		return false, err
	}
	se, err := parseExports(exports.String(), state)
	if err != nil {
		return false, err
	}
	pluginSum, err := fileSHA256(o.backend)
	if err != nil {
		return false, fmt.Errorf("plugin binary (build it with: go build -o bin/mlgate-backend ./cmd/mlgate-backend): %w", err)
	}
	backendAbs, err := filepath.Abs(o.backend)
	if err != nil {
		return false, err
	}
	scratch, err := os.MkdirTemp(filepath.Dir(state), "s3-bench-scratch-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(scratch)

	wantSum := patternSum(o.size)
	results := map[string][]s3Run{} // server/path -> runs
	seq := 0
	for i := range o.runs {
		for _, srv := range se.servers {
			// Rotate the order of the three paths run by run: on this VM the transfer that follows
			// another large write is often the slower one.
			for j := range s3Paths {
				path := s3Paths[(i+j)%len(s3Paths)]
				seq++
				var r s3Run
				if path == pathDirect {
					r, err = directRun(srv, se.bkt, fmt.Sprintf("bench-direct-%d", seq), o.size, wantSum)
				} else {
					plugin := ""
					if path == pathPlugin {
						plugin = backendAbs
					}
					r, err = gatewayS3Run(o.mlgate, plugin, pluginSum, scratch, srv, se, seq, o.size, wantSum)
				}
				if err != nil {
					return false, fmt.Errorf("%s via %s, run %d: %w", srv.name, path, i+1, err)
				}
				results[srv.name+"/"+path] = append(results[srv.name+"/"+path], r)
				fmt.Fprintf(os.Stderr, "s3 run %d %-9s %-10s PUT %5.0f MB/s %5.2f/%5.2f CPU-s/GiB %.1f cores  GET %5.0f MB/s %5.2f/%5.2f CPU-s/GiB %.1f cores  RSS %d+%d MiB\n",
					i+1, srv.name, path, r.put.mbps, r.put.cpu, r.put.all, r.put.busy, r.get.mbps, r.get.cpu, r.get.all, r.get.busy, r.rssGateway>>20, r.rssPlugin>>20)
			}
		}
	}
	return printS3(o, se, results), nil
}

// printS3 prints the medians and the verdicts, and reports whether all targets were met.
func printS3(o s3Options, se *s3Env, results map[string][]s3Run) bool {
	ok := true
	fmt.Printf("\nS3 backends: %s PUT and GET, %d runs each, medians.\n", fmtSize(o.size), o.runs)
	fmt.Println("  CPU: CPU-s/GiB of the bench process (direct) or of mlgate + plugin (gateway paths);")
	fmt.Println("  all: CPU-s/GiB of every process taking part (client, S3 server, mlgate, plugin);")
	fmt.Println("  cores: busy cores of the machine during the transfer (of " + strconv.Itoa(runtime.NumCPU()) + ");")
	fmt.Println("  ceiling: the ratio a CPU-bound transfer could reach at most, direct's all / this path's all.")
	fmt.Printf("%-9s %-10s %-4s %7s %6s %6s %6s %6s %8s %s\n", "server", "path", "op", "MB/s", "CPU", "all", "cores", "ratio", "ceiling", "target")
	for _, srv := range se.servers {
		base := results[srv.name+"/"+pathDirect]
		for _, op := range []string{"PUT", "GET"} {
			med := func(rs []s3Run, f func(reading) float64) float64 {
				return medianOf(rs, func(r s3Run) float64 { return f(pickReading(op == "PUT", r)) })
			}
			baseMB := med(base, func(r reading) float64 { return r.mbps })
			baseAll := med(base, func(r reading) float64 { return r.all })
			for _, path := range s3Paths {
				rs := results[srv.name+"/"+path]
				m := med(rs, func(r reading) float64 { return r.mbps })
				all := med(rs, func(r reading) float64 { return r.all })
				ratio, target := m/baseMB, ""
				switch path {
				case pathInProc:
					target = verdict(ratio >= o.minInProc, fmt.Sprintf(">= %.2f", o.minInProc))
					ok = ok && ratio >= o.minInProc
				case pathPlugin:
					target = verdict(ratio >= o.minPlugin, fmt.Sprintf(">= %.2f", o.minPlugin))
					ok = ok && ratio >= o.minPlugin
				}
				fmt.Printf("%-9s %-10s %-4s %7.0f %6.2f %6.2f %6.1f %6.2f %8.2f %s\n", srv.name, path, op, m,
					med(rs, func(r reading) float64 { return r.cpu }), all,
					med(rs, func(r reading) float64 { return r.busy }), ratio, baseAll/all, target)
			}
		}
	}
	// Peak RSS: the highest over all runs of each process. The target applies to each gateway
	// process (mlgate, and the plugin process beside it); the plugin path's sum is shown too.
	var inProc, gwPlugin, plugin int64
	for _, srv := range se.servers {
		for _, r := range results[srv.name+"/"+pathInProc] {
			inProc = max(inProc, r.rssGateway)
		}
		for _, r := range results[srv.name+"/"+pathPlugin] {
			gwPlugin = max(gwPlugin, r.rssGateway)
			plugin = max(plugin, r.rssPlugin)
		}
	}
	limit := o.maxRSSMiB << 20
	target := fmt.Sprintf("< %d MiB", o.maxRSSMiB)
	fmt.Printf("peak RSS (VmHWM), target %s per process: in-process mlgate %d MiB %s; plugin path: mlgate %d MiB %s, mlgate-backend %d MiB %s (together %d MiB)\n",
		target, inProc>>20, verdict(inProc < limit, ""), gwPlugin>>20, verdict(gwPlugin < limit, ""),
		plugin>>20, verdict(plugin < limit, ""), (gwPlugin+plugin)>>20)
	ok = ok && inProc < limit && gwPlugin < limit && plugin < limit
	if ok {
		fmt.Println("S3 targets met")
	} else {
		fmt.Println("S3 TARGETS MISSED")
	}
	return ok
}

func verdict(met bool, target string) string {
	v := "MISSED"
	if met {
		v = "met"
	}
	return strings.TrimSpace(target + " " + v)
}

func pickReading(put bool, r s3Run) reading {
	if put {
		return r.put
	}
	return r.get
}

func medianOf(rs []s3Run, f func(s3Run) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return median(v)
}

func fmtSize(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

// parseExports reads the `export K=V` lines of `s3-servers.sh start` and connects to both servers.
func parseExports(out, state string) (*s3Env, error) {
	se := &s3Env{vars: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "export ")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			se.vars[k] = v
		}
	}
	se.accessKeyEnv, se.secretKeyEnv = "MLGATE_TEST_S3_ACCESS_KEY", "MLGATE_TEST_S3_SECRET_KEY"
	se.accessKey, se.secretKey, se.bkt = se.vars[se.accessKeyEnv], se.vars[se.secretKeyEnv], se.vars["MLGATE_TEST_S3_BUCKET"]
	if se.accessKey == "" || se.secretKey == "" || se.bkt == "" {
		return nil, fmt.Errorf("s3-servers.sh start exported no credentials or bucket: %q", out)
	}
	for _, s := range []struct{ name, env string }{{"minio", "MLGATE_TEST_MINIO_ENDPOINT"}, {"versitygw", "MLGATE_TEST_VERSITYGW_ENDPOINT"}} {
		ep := se.vars[s.env]
		host, ok := strings.CutPrefix(ep, "http://")
		if !ok {
			return nil, fmt.Errorf("s3-servers.sh start: %s=%q is no http:// endpoint", s.env, ep)
		}
		// The same client settings as backends/minio: path style, minio-go's default transport.
		tr, err := mgo.DefaultTransport(false)
		if err != nil {
			return nil, err
		}
		core, err := mgo.NewCore(host, &mgo.Options{
			Creds: credentials.NewStaticV4(se.accessKey, se.secretKey, ""), Region: "us-east-1",
			BucketLookup: mgo.BucketLookupPath, Transport: tr,
		})
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(state, s.name+".pid"))
		if err != nil {
			return nil, fmt.Errorf("s3-servers.sh start: the %s pid file: %w", s.name, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, fmt.Errorf("s3-servers.sh start: the %s pid file: %w", s.name, err)
		}
		se.servers = append(se.servers, s3Server{name: s.name, endpoint: ep, core: core, pid: pid})
	}
	return se, nil
}

// directRun is the baseline: one streamed PutObject of known size with an unsigned payload (what
// the minio backend sends: no client-side sha256 of the body), then a GetObject read through the
// same pipelined hashing as every download here. CPU is this process's rusage delta.
func directRun(srv s3Server, bucket, key string, size int64, wantSum string) (s3Run, error) {
	ctx := context.Background()
	var r s3Run
	var err error
	defer func() { _ = srv.core.RemoveObject(ctx, bucket, key, mgo.RemoveObjectOptions{}) }()

	settle()
	m, err := startMeter([]int{0}, []int{srv.pid})
	if err != nil {
		return r, err
	}
	_, err = srv.core.PutObject(ctx, bucket, key, io.LimitReader(newPattern(), size), size, "", "",
		mgo.PutObjectOptions{DisableContentSha256: true})
	if err != nil {
		return r, fmt.Errorf("put: %w", err)
	}
	if r.put, err = m.stop(size); err != nil {
		return r, err
	}

	settle()
	if m, err = startMeter([]int{0}, []int{srv.pid}); err != nil {
		return r, err
	}
	body, _, _, err := srv.core.GetObject(ctx, bucket, key, mgo.GetObjectOptions{})
	if err != nil {
		return r, fmt.Errorf("get: %w", err)
	}
	n, got, err := hashStream(body)
	body.Close()
	if err != nil || n != size || got != wantSum {
		return r, fmt.Errorf("get: %d bytes, sum %s: %v", n, got, err)
	}
	r.get, err = m.stop(size)
	return r, err
}

// gatewayS3Run starts mlgate with a config whose only backend is the minio backend on srv (in
// process, or as the plugin binary when plugin is set), PUTs size bytes with the package API and GETs
// them back verifying wantSum. CPU is the utime+stime delta of mlgate and its plugin child.
func gatewayS3Run(bin, plugin, pluginSum, scratch string, srv s3Server, se *s3Env, seq int, size int64, wantSum string) (s3Run, error) {
	var r s3Run
	dir := filepath.Join(scratch, strconv.Itoa(seq))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	prefix := fmt.Sprintf("bench-gw-%d/", seq)
	defer removePrefix(srv, se.bkt, prefix)

	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	backendCfg, _ := json.Marshal(map[string]any{
		"endpoint": srv.endpoint, "bucket": se.bkt, "prefix": prefix, "path_style": true,
		"access_key_env": se.accessKeyEnv, "secret_key_env": se.secretKeyEnv,
	})
	kind := "type: minio"
	if plugin != "" {
		// JSON is YAML: quoting through json.Marshal keeps any path safe.
		p, _ := json.Marshal(map[string]any{"path": plugin, "sha256": pluginSum, "args": []string{"minio"}})
		kind = "plugin: " + string(p)
	}
	dataDir, _ := json.Marshal(filepath.Join(dir, "data"))
	cfg := fmt.Sprintf("data_dir: %s\naddr: %s\nlog_level: warn\nbackends:\n  - name: bench\n    %s\n    config: %s\ndefault_backend: bench\n",
		dataDir, addr, kind, backendCfg)
	cfgPath := filepath.Join(dir, "mlgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return r, err
	}
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), se.accessKeyEnv+"="+se.accessKey, se.secretKeyEnv+"="+se.secretKey)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return r, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return r, err
	}
	pids := []int{cmd.Process.Pid}
	if plugin != "" {
		child, err := childPid(cmd.Process.Pid)
		if err != nil {
			return r, err
		}
		pids = append(pids, child)
	}
	url := base + "/api/v4/projects/bench%2Fproject/packages/ml_models/bench/1.0.0/files/model.bin"

	others := []int{0, srv.pid}
	settle()
	m, err := startMeter(pids, others)
	if err != nil {
		return r, err
	}
	req, _ := http.NewRequest(http.MethodPut, url, io.LimitReader(newPattern(), size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	var up struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		return r, fmt.Errorf("upload: status %d: %v", resp.StatusCode, err)
	}
	if r.put, err = m.stop(size); err != nil {
		return r, err
	}
	if up.SHA256 != wantSum || up.Size != size {
		return r, fmt.Errorf("upload stored %d bytes sha256 %s, want %d %s", up.Size, up.SHA256, size, wantSum)
	}

	settle()
	if m, err = startMeter(pids, others); err != nil {
		return r, err
	}
	resp, err = http.Get(url)
	if err != nil {
		return r, err
	}
	n, got, err := hashStream(resp.Body)
	resp.Body.Close()
	if err != nil || n != size || got != wantSum {
		return r, fmt.Errorf("download: status %d, %d bytes, sum %s: %v", resp.StatusCode, n, got, err)
	}
	if r.get, err = m.stop(size); err != nil {
		return r, err
	}

	if r.rssGateway, err = peakRSS(pids[0]); err != nil {
		return r, err
	}
	if len(pids) > 1 {
		if r.rssPlugin, err = peakRSS(pids[1]); err != nil {
			return r, err
		}
	}
	return r, nil
}

// removePrefix deletes what a gateway run left in the bucket, so that runs do not fill the disk.
func removePrefix(srv s3Server, bucket, prefix string) {
	ctx := context.Background()
	for o := range srv.core.Client.ListObjects(ctx, bucket, mgo.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err == nil {
			_ = srv.core.RemoveObject(ctx, bucket, o.Key, mgo.RemoveObjectOptions{})
		}
	}
}

// childPid finds the one child process of pid (mlgate's plugin), waiting briefly for it.
func childPid(pid int) (int, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var kids []int
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			c, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if f, err := procStat(c); err == nil && f[1] == strconv.Itoa(pid) {
				kids = append(kids, c)
			}
		}
		switch {
		case len(kids) == 1:
			return kids[0], nil
		case len(kids) > 1:
			return 0, fmt.Errorf("mlgate (pid %d) has %d children, want one plugin", pid, len(kids))
		case time.Now().After(deadline):
			return 0, fmt.Errorf("mlgate (pid %d) started no plugin process", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStat returns the fields of /proc/pid/stat after the command name: [0] is the state (field 3
// of proc(5)), [1] the ppid, [11] utime, [12] stime.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name may contain spaces and parentheses; it ends at the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unparsable", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// procsCPU is the total utime+stime of the processes, in seconds.
func procsCPU(pids []int) (float64, error) {
	var ticks int64
	for _, pid := range pids {
		f, err := procStat(pid)
		if err != nil {
			return 0, fmt.Errorf("process %d (did it die?): %w", pid, err)
		}
		u, err1 := strconv.ParseInt(f[11], 10, 64)
		s, err2 := strconv.ParseInt(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += u + s
	}
	return float64(ticks) / clockTicksHz, nil
}

// selfCPU is this process's user+system CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func perGiB(cpuSeconds float64, size int64) float64 { return cpuSeconds / (float64(size) / (1 << 30)) }

// fileSHA256 is the hex sha256 of a file: what the config's plugin.sha256 must say.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
