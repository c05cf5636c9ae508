package main

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// transferSet is a set of files that push and pull are measured on.
type transferSet struct {
	name  string
	dir   string
	files []string // '/'-separated, relative to dir
	bytes int64
}

// benchTransfer measures `mlgate push` and `mlgate pull` against curl moving the same files to and from
// the same `mlgate serve` over loopback: one bigSize file, 200 files of which one is bigSize, and 199 small
// files alone. curl runs as the same number of parallel transfers (-Z --parallel-max) as mlgate's
// --parallel. mlgate does more work than curl: it hashes every file before sending it (and the server
// checks the sum), and verifies every download's sha256 before renaming it into place; curl does
// neither. Each figure is the median of runs, each on a fresh version and an empty destination.
func benchTransfer(bin, dir string, bigSize int64, runs, parallel int) error {
	if _, err := exec.LookPath("curl"); err != nil {
		return fmt.Errorf("the transfer benchmark compares with curl: %w", err)
	}
	scratch := filepath.Join(dir, "transfer")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	base := "http://" + addr
	serve := exec.Command(bin, "serve", "--data-dir", filepath.Join(scratch, "data"), "--addr", addr, "--log-level", "warn")
	serve.Stderr = os.Stderr
	if err := serve.Start(); err != nil {
		return err
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	if err := waitHealthy(base); err != nil {
		return err
	}

	sets, err := makeTransferSets(scratch, bigSize)
	if err != nil {
		return err
	}
	fmt.Printf("\npush/pull against curl, %d at once, median of %d runs\n", parallel, runs)
	fmt.Printf("%-28s %-5s %12s %12s %7s\n", "files", "dir", "curl", "mlgate", "ratio")
	version := 0
	for _, set := range sets {
		var curlPut, push, curlGet, pull []float64
		for run := range runs {
			for _, tool := range []string{"curl", "mlgate"} {
				version++
				ver := fmt.Sprintf("%d.0.0", version)
				out := filepath.Join(scratch, fmt.Sprintf("out-%d", version))
				var up, down *exec.Cmd
				if tool == "curl" {
					up, down = curlUpload(base, set, ver, parallel), curlDownload(base, set, ver, out, parallel)
				} else {
					common := []string{"--url", base, "--project", "bench", "--parallel", fmt.Sprint(parallel)}
					up = exec.Command(bin, append([]string{"push"}, append(common, "m@"+ver, set.dir)...)...)
					down = exec.Command(bin, append([]string{"pull"}, append(common, "m@"+ver, out)...)...)
				}
				settle()
				upSecs, err := timed(up)
				if err != nil {
					return fmt.Errorf("%s upload of %s (run %d): %w", tool, set.name, run+1, err)
				}
				settle()
				downSecs, err := timed(down)
				if err != nil {
					return fmt.Errorf("%s download of %s (run %d): %w", tool, set.name, run+1, err)
				}
				if err := sameFiles(set, out); err != nil {
					return fmt.Errorf("%s download of %s (run %d): %w", tool, set.name, run+1, err)
				}
				_ = os.RemoveAll(out)
				mb := float64(set.bytes) / 1e6
				if tool == "curl" {
					curlPut, curlGet = append(curlPut, mb/upSecs), append(curlGet, mb/downSecs)
				} else {
					push, pull = append(push, mb/upSecs), append(pull, mb/downSecs)
				}
			}
		}
		for _, d := range []struct {
			name        string
			curl, mlgte []float64
		}{{"push", curlPut, push}, {"pull", curlGet, pull}} {
			c, m := median(d.curl), median(d.mlgte)
			fmt.Printf("%-28s %-5s %7.0f MB/s %7.0f MB/s %7.2f\n", set.name, d.name, c, m, m/c)
		}
	}
	return nil
}

// makeTransferSets writes the three sets under scratch: the big file alone, 199 small files with the big
// one (the e2e test's model), and the 199 small files alone.
func makeTransferSets(scratch string, bigSize int64) ([]transferSet, error) {
	write := func(path string, size int64) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyBuffer(f, io.LimitReader(newPattern(), size), make([]byte, 1<<20))
		return err
	}
	big := transferSet{name: "1 file of " + fmtSize(bigSize), dir: filepath.Join(scratch, "big")}
	tree := transferSet{name: "200 files, one of " + fmtSize(bigSize), dir: filepath.Join(scratch, "tree")}
	small := transferSet{dir: filepath.Join(scratch, "small")}
	for _, s := range []*transferSet{&big, &tree} {
		if err := write(filepath.Join(s.dir, "weights", "big.bin"), bigSize); err != nil {
			return nil, err
		}
		s.files, s.bytes = append(s.files, "weights/big.bin"), s.bytes+bigSize
	}
	for i := range 199 {
		p, size := fmt.Sprintf("part%d/layer_%03d.bin", i%7, i), int64(i*997%70_000)
		for _, s := range []*transferSet{&tree, &small} {
			if err := write(filepath.Join(s.dir, filepath.FromSlash(p)), size); err != nil {
				return nil, err
			}
			s.files, s.bytes = append(s.files, p), s.bytes+size
		}
	}
	small.name = "199 small files, " + fmtSize(small.bytes)
	return []transferSet{big, tree, small}, nil
}

func fileURL(base, version, path string) string {
	return base + "/api/v4/projects/bench/packages/ml_models/m/" + version + "/files/" + (&url.URL{Path: path}).EscapedPath()
}

// curlUpload PUTs every file of set, parallel at once, failing on any HTTP error.
func curlUpload(base string, set transferSet, version string, parallel int) *exec.Cmd {
	args := []string{"-sS", "--fail", "-Z", "--parallel-max", fmt.Sprint(parallel)}
	for _, f := range set.files {
		args = append(args, "-T", filepath.Join(set.dir, filepath.FromSlash(f)), "-o", os.DevNull, fileURL(base, version, f))
	}
	return exec.Command("curl", args...)
}

// curlDownload GETs every file of set into out, parallel at once.
func curlDownload(base string, set transferSet, version, out string, parallel int) *exec.Cmd {
	args := []string{"-sS", "--fail", "-Z", "--parallel-max", fmt.Sprint(parallel), "--create-dirs"}
	for _, f := range set.files {
		args = append(args, "-o", filepath.Join(out, filepath.FromSlash(f)), fileURL(base, version, f))
	}
	return exec.Command("curl", args...)
}

// timed runs cmd and returns its wall time in seconds.
func timed(cmd *exec.Cmd) (float64, error) {
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return time.Since(start).Seconds(), nil
}

// sameFiles checks that out holds every file of set with its size.
func sameFiles(set transferSet, out string) error {
	for _, f := range set.files {
		want, err := os.Stat(filepath.Join(set.dir, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		got, err := os.Stat(filepath.Join(out, filepath.FromSlash(f)))
		if err != nil {
			return err
		}
		if got.Size() != want.Size() {
			return fmt.Errorf("%s: %d bytes, want %d", f, got.Size(), want.Size())
		}
	}
	return nil
}
