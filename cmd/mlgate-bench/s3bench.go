package main

// The S3 part of the benchmark: 1 GiB PUT and GET straight to MinIO and to versitygw with minio-go
// (the baselines), and the same through a real `mlgate serve` whose backend is the minio backend,
// once in process and once as a plugin (bin/mlgate-backend minio). Baseline and gateway runs are
// interleaved, in a rotating order, so that all of them see the same disk and server conditions
// (run-to-run noise here reaches 20-40 %), and medians are reported.

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
	putMBps, getMBps float64
	putCPU, getCPU   float64 // CPU seconds per GiB
	rssGateway       int64   // bytes, VmHWM of mlgate (gateway paths)
	rssPlugin        int64   // bytes, VmHWM of the plugin process (plugin path)
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
	se, err := parseExports(exports.String())
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
				fmt.Fprintf(os.Stderr, "s3 run %d %-9s %-10s PUT %5.0f MB/s %5.2f CPU-s/GiB  GET %5.0f MB/s %5.2f CPU-s/GiB  RSS %d+%d MiB\n",
					i+1, srv.name, path, r.putMBps, r.putCPU, r.getMBps, r.getCPU, r.rssGateway>>20, r.rssPlugin>>20)
			}
		}
	}
	return printS3(o, se, results), nil
}

// printS3 prints the medians and the verdicts, and reports whether all targets were met.
func printS3(o s3Options, se *s3Env, results map[string][]s3Run) bool {
	ok := true
	fmt.Printf("\nS3 backends: %s PUT and GET, %d runs each, medians (CPU: the bench process for direct, mlgate + plugin for the gateway)\n",
		fmtSize(o.size), o.runs)
	fmt.Printf("%-9s %-10s %-4s %9s %10s %6s %s\n", "server", "path", "op", "MB/s", "CPU-s/GiB", "ratio", "target")
	for _, srv := range se.servers {
		base := results[srv.name+"/"+pathDirect]
		for _, op := range []string{"PUT", "GET"} {
			mb := func(rs []s3Run) float64 {
				return medianOf(rs, func(r s3Run) float64 { return pick(op == "PUT", r.putMBps, r.getMBps) })
			}
			cpu := func(rs []s3Run) float64 {
				return medianOf(rs, func(r s3Run) float64 { return pick(op == "PUT", r.putCPU, r.getCPU) })
			}
			baseMB := mb(base)
			for _, path := range s3Paths {
				rs := results[srv.name+"/"+path]
				m := mb(rs)
				ratio, target := m/baseMB, ""
				switch path {
				case pathInProc:
					target = verdict(ratio >= o.minInProc, fmt.Sprintf(">= %.2f", o.minInProc))
					ok = ok && ratio >= o.minInProc
				case pathPlugin:
					target = verdict(ratio >= o.minPlugin, fmt.Sprintf(">= %.2f", o.minPlugin))
					ok = ok && ratio >= o.minPlugin
				}
				fmt.Printf("%-9s %-10s %-4s %9.0f %10.2f %6.2f %s\n", srv.name, path, op, m, cpu(rs), ratio, target)
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

func pick(first bool, a, b float64) float64 {
	if first {
		return a
	}
	return b
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
func parseExports(out string) (*s3Env, error) {
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
		se.servers = append(se.servers, s3Server{name: s.name, endpoint: ep, core: core})
	}
	return se, nil
}

// directRun is the baseline: one streamed PutObject of known size with an unsigned payload (what
// the minio backend sends: no client-side sha256 of the body), then a GetObject read through the
// same pipelined hashing as every download here. CPU is this process's rusage delta.
func directRun(srv s3Server, bucket, key string, size int64, wantSum string) (s3Run, error) {
	ctx := context.Background()
	var r s3Run
	defer func() { _ = srv.core.RemoveObject(ctx, bucket, key, mgo.RemoveObjectOptions{}) }()

	settle()
	cpu0, start := selfCPU(), time.Now()
	_, err := srv.core.PutObject(ctx, bucket, key, io.LimitReader(newPattern(), size), size, "", "",
		mgo.PutObjectOptions{DisableContentSha256: true})
	if err != nil {
		return r, fmt.Errorf("put: %w", err)
	}
	r.putMBps, r.putCPU = mbps(size, time.Since(start)), perGiB(selfCPU()-cpu0, size)

	settle()
	cpu0, start = selfCPU(), time.Now()
	body, _, _, err := srv.core.GetObject(ctx, bucket, key, mgo.GetObjectOptions{})
	if err != nil {
		return r, fmt.Errorf("get: %w", err)
	}
	n, got, err := hashStream(body)
	body.Close()
	if err != nil || n != size || got != wantSum {
		return r, fmt.Errorf("get: %d bytes, sum %s: %v", n, got, err)
	}
	r.getMBps, r.getCPU = mbps(size, time.Since(start)), perGiB(selfCPU()-cpu0, size)
	return r, nil
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

	settle()
	cpu0, err := procsCPU(pids)
	if err != nil {
		return r, err
	}
	start := time.Now()
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
	r.putMBps = mbps(size, time.Since(start))
	if up.SHA256 != wantSum || up.Size != size {
		return r, fmt.Errorf("upload stored %d bytes sha256 %s, want %d %s", up.Size, up.SHA256, size, wantSum)
	}
	cpu1, err := procsCPU(pids)
	if err != nil {
		return r, err
	}
	r.putCPU = perGiB(cpu1-cpu0, size)

	settle()
	cpu0, err = procsCPU(pids)
	if err != nil {
		return r, err
	}
	start = time.Now()
	resp, err = http.Get(url)
	if err != nil {
		return r, err
	}
	n, got, err := hashStream(resp.Body)
	resp.Body.Close()
	if err != nil || n != size || got != wantSum {
		return r, fmt.Errorf("download: status %d, %d bytes, sum %s: %v", resp.StatusCode, n, got, err)
	}
	r.getMBps = mbps(size, time.Since(start))
	cpu1, err = procsCPU(pids)
	if err != nil {
		return r, err
	}
	r.getCPU = perGiB(cpu1-cpu0, size)

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
