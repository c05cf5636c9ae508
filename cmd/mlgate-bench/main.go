// Command mlgate-bench measures upload and download throughput through a real `mlgate serve` process
// over loopback HTTP against a baseline measured in the same run, and the gateway's peak RSS.
//
// The baseline does, in one process, the work any durable checksummed store must do: it writes the
// same bytes to a file on the same disk while computing sha256, fsyncs, and reads them back while
// verifying sha256. The gateway side does the same work end to end: the client streams the bytes in a
// PUT, the gateway hashes, writes and fsyncs them; the client GETs them back and verifies sha256.
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
	flag.Parse()

	failed := false
	fmt.Printf("%-6s %-9s %12s %12s %7s %s\n", "size", "direction", "baseline", "gateway", "ratio", "gateway peak RSS")
	for _, s := range strings.Split(*sizes, ",") {
		size, err := parseSize(strings.TrimSpace(s))
		if err != nil {
			fatal(err)
		}
		res, err := benchSize(*bin, *dir, size)
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

type result struct {
	baseWrite, baseRead  float64 // MB/s
	gwUpload, gwDownload float64 // MB/s
	peakRSS              int64   // bytes
}

func benchSize(bin, dir string, size int64) (*result, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &result{}

	// Baseline: write + sha256 + fsync, then read back + sha256.
	basePath := filepath.Join(dir, "baseline.bin")
	start := time.Now()
	wantSum, err := writeBaseline(basePath, size)
	if err != nil {
		return nil, err
	}
	res.baseWrite = mbps(size, time.Since(start))
	start = time.Now()
	gotSum, err := hashFile(basePath)
	if err != nil {
		return nil, err
	}
	res.baseRead = mbps(size, time.Since(start))
	if gotSum != wantSum {
		return nil, errors.New("baseline read-back checksum differs")
	}
	_ = os.Remove(basePath)

	// Gateway: a real process on loopback.
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--addr", addr, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	base := "http://" + addr
	if err := waitHealthy(base); err != nil {
		return nil, err
	}
	url := base + "/api/v4/projects/bench%2Fproject/packages/ml_models/bench/1.0.0/files/model.bin"

	start = time.Now()
	req, _ := http.NewRequest(http.MethodPut, url, io.LimitReader(newPattern(), size))
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	var up struct {
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	err = json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("upload: status %d: %v", resp.StatusCode, err)
	}
	res.gwUpload = mbps(size, time.Since(start))
	if up.SHA256 != wantSum || up.Size != size {
		return nil, fmt.Errorf("upload stored %d bytes sha256 %s, want %d %s", up.Size, up.SHA256, size, wantSum)
	}

	start = time.Now()
	resp, err = http.Get(url)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
	resp.Body.Close()
	if err != nil || n != size {
		return nil, fmt.Errorf("download: %d bytes: %v", n, err)
	}
	res.gwDownload = mbps(size, time.Since(start))
	if hex.EncodeToString(h.Sum(nil)) != wantSum {
		return nil, errors.New("download checksum differs")
	}
	res.peakRSS, err = peakRSS(cmd.Process.Pid)
	return res, err
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

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
