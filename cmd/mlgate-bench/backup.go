package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// benchBackup seeds a data dir with `runs` runs (seedSearch: each with a param and a metric), then times
// `mlgate backup` of it twice: through a running server (--url, the hot backup) and offline
// (--data-dir) once the server has stopped, then `mlgate restore` of the hot copy. The backup times
// include the client's check of the copy; the command prints the copy and the check apart. Errors are failures to seed, to run mlgate or a backup.
func benchBackup(bin, dir string, runs int) error {
	dataDir := filepath.Join(dir, "backup-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	seeded, err := seedBolt(filepath.Join(dataDir, "mlgate.db"), runs, 0)
	if err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	fmt.Printf("backup: seeded %d runs in %s\n", runs, seeded.candidates.Round(time.Millisecond))
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--addr", addr, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	defer stop()
	if err := waitHealthy("http://" + addr); err != nil {
		return err
	}
	run := func(name string, args ...string) error {
		out := filepath.Join(dir, name+".db")
		t0 := time.Now()
		b, err := exec.Command(bin, append([]string{"backup", "--out", out}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("backup %s: %v\n%s", name, err, b)
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Printf("backup %-8s %d runs: %.1f MiB in %s (command total)\n  %s", name, runs, float64(st.Size())/(1<<20),
			time.Since(t0).Round(time.Millisecond), b)
		return nil
	}
	if err := run("hot", "--url", "http://"+addr); err != nil {
		return err
	}
	stop()
	if err := run("offline", "--data-dir", dataDir); err != nil {
		return err
	}
	t0 := time.Now()
	b, err := exec.Command(bin, "restore", "--from", filepath.Join(dir, "hot.db"), "--data-dir", filepath.Join(dir, "restored")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("restore: %v\n%s", err, b)
	}
	fmt.Printf("restore %d runs (checks pages, schema and every index): %s\n", runs, time.Since(t0).Round(time.Millisecond))
	return nil
}
