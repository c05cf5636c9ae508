package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// ociOptions are the settings of the OCI pull measurement.
type ociOptions struct {
	mlgate, oras, dir string
	out               string // where the pulled files are written; "" = under dir
	size              int64
	runs              int
	minRatio          float64
	maxRSSMiB         int64
}

// benchOCI measures `oras pull` of a one-file model version from `mlgate serve` (localfs, loopback)
// against a direct download of the same file from the same server with curl (the package API URL),
// and the server's peak RSS. Both write the file to the same disk, every run starts after settle(), and
// runs alternate which side goes first; medians are reported. The ratio says what serving a version
// over OCI costs next to a package download of its file: the manifest and config round trips, the
// blob lookup, and oras's own digest check, on top of the same artifact serving path.
func benchOCI(o ociOptions) (bool, error) {
	if _, err := exec.LookPath("curl"); err != nil {
		return false, fmt.Errorf("the OCI benchmark compares with curl: %w", err)
	}
	if _, err := os.Stat(o.oras); err != nil {
		return false, fmt.Errorf("the OCI benchmark pulls with oras (make bench installs it into bin/): %w", err)
	}
	scratch := filepath.Join(o.dir, "oci")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return false, err
	}
	defer os.RemoveAll(scratch)
	addr, err := freeAddr()
	if err != nil {
		return false, err
	}
	base := "http://" + addr
	serve := exec.Command(o.mlgate, "serve", "--data-dir", filepath.Join(scratch, "data"), "--addr", addr, "--log-level", "warn")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		return false, err
	}
	defer func() { _ = serve.Process.Signal(syscall.SIGTERM); _ = serve.Wait() }()
	if err := waitHealthy(base); err != nil {
		return false, err
	}
	wantSum := patternSum(o.size)
	fileURL := base + "/api/v4/projects/bench%2Foci/packages/ml_models/model/1.0.0/files/weights/model.bin"
	req, _ := http.NewRequest(http.MethodPut, fileURL, io.LimitReader(newPattern(), o.size))
	req.ContentLength = o.size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return false, fmt.Errorf("upload for the OCI benchmark: status %d", resp.StatusCode)
	}

	// curl is the direct download: it writes the file and checks nothing, so the comparison is
	// conservative (oras verifies the layer's sha256 as it writes). The sums are checked after the
	// clock stops, on both sides.
	direct := func(dst string) error {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		out, err := exec.Command("curl", "-sSf", "-o", filepath.Join(dst, "weights", "model.bin"), "--create-dirs", fileURL).CombinedOutput()
		if err != nil {
			return fmt.Errorf("curl: %v\n%s", err, out)
		}
		return nil
	}
	pull := func(dst string) error {
		out, err := exec.Command(o.oras, "pull", "--plain-http", "--no-tty", "-o", dst, addr+"/bench/oci/model:1.0.0").CombinedOutput()
		if err != nil {
			return fmt.Errorf("oras pull: %v\n%s", err, out)
		}
		st, err := os.Stat(filepath.Join(dst, "weights", "model.bin"))
		if err != nil || st.Size() != o.size {
			return fmt.Errorf("oras pull wrote no %d-byte weights/model.bin: %v", o.size, err)
		}
		return nil
	}
	var directs, pulls []float64
	for i := range o.runs {
		sides := []struct {
			run func(string) error
			out *[]float64
		}{{direct, &directs}, {pull, &pulls}}
		if i%2 == 1 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for j, s := range sides {
			outDir := scratch
			if o.out != "" {
				outDir = o.out
			}
			dst := filepath.Join(outDir, fmt.Sprintf("mlgate-bench-oci-%d-%d", i, j))
			settle()
			start := time.Now()
			if err := s.run(dst); err != nil {
				_ = os.RemoveAll(dst)
				return false, err
			}
			*s.out = append(*s.out, mbps(o.size, time.Since(start)))
			err := checkFile(filepath.Join(dst, "weights", "model.bin"), o.size, wantSum)
			_ = os.RemoveAll(dst)
			if err != nil {
				return false, err
			}
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "oci run %d: direct %.0f MB/s, oras %.0f MB/s\n", i+1, directs[i], pulls[i])
		}
	}
	rss, err := peakRSS(serve.Process.Pid)
	if err != nil {
		return false, err
	}
	// The ratio is the median of each run's oras/curl ratio: the two sides of a run see the same disk
	// and load, which on a shared VM drift several-fold between runs.
	ratios := make([]float64, len(directs))
	for i := range directs {
		ratios[i] = pulls[i] / directs[i]
	}
	d, p, ratio := median(directs), median(pulls), median(ratios)
	fmt.Printf("\nOCI pull (oras) against a direct download (curl) of the same %s file, median of %d runs\n", sizeName(o.size), o.runs)
	fmt.Printf("%12s %12s %7s %s\n", "curl", "oras pull", "ratio", "mlgate peak RSS")
	fmt.Printf("%7.0f MB/s %7.0f MB/s %7.2f %d MiB\n", d, p, ratio, rss>>20)
	ok := ratio >= o.minRatio && rss>>20 < o.maxRSSMiB
	if !ok {
		fmt.Printf("OCI TARGETS MISSED (ratio >= %.2f, peak RSS < %d MiB)\n", o.minRatio, o.maxRSSMiB)
	}
	return ok, nil
}

// checkFile verifies that path holds size bytes with sha256 wantSum.
func checkFile(path string, size int64, wantSum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != wantSum {
		return fmt.Errorf("%s: %d bytes, sha256 %s, want %d bytes, %s", path, n, got, size, wantSum)
	}
	return nil
}

func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%d-byte", n)
}
