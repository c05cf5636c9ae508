package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// replicaOptions configures the replica comparison.
type replicaOptions struct {
	mlgate   string
	dir      string
	dsn      string        // the PostgreSQL server; each measurement gets a fresh schema in its database
	clients  int           // concurrent clients, split evenly over the replicas
	duration time.Duration // measured time per replica count
}

// benchReplicas measures runs/log-metric from opts.clients clients, each logging to its own run back to
// back, on the PostgreSQL store: first through one mlgate replica, then split over two replicas serving the
// same schema, each a real `mlgate serve` with its own data dir and the same config. It prints calls/s, p50
// and p99 of each and the throughput ratio of two replicas to one. No target is set: the figure shows
// whether a second replica adds throughput on this machine, where the replicas, PostgreSQL and the clients
// share the CPUs. Errors are failures to start mlgate or PostgreSQL schemas; answers other than 200 are
// counted and printed.
func benchReplicas(opts replicaOptions) error {
	fmt.Printf("\nreplicas on one PostgreSQL: runs/log-metric, %d clients each on its own run, back to back for %s\n",
		opts.clients, opts.duration)
	fmt.Printf("%8s %7s %10s %8s %9s %9s %12s %7s\n", "replicas", "clients", "calls/s", "×1", "p50", "p99", "mlgate CPU", "errors")
	var base float64
	for _, n := range []int{1, 2} {
		pt, err := replicaLevel(opts, n)
		if err != nil {
			return fmt.Errorf("%d replicas: %w", n, err)
		}
		if n == 1 {
			base = pt.callsPerSec
		}
		fmt.Printf("%8d %7d %10.0f %8.2f %9s %9s %9s/call %7d\n", n, opts.clients, pt.callsPerSec, pt.callsPerSec/base,
			pt.p50.Round(time.Microsecond), pt.p99.Round(time.Microsecond), pt.cpuPerCall.Round(time.Microsecond), pt.errorsAnswers)
	}
	return nil
}

// replicaLevel measures opts.clients clients over n replicas on a fresh schema.
func replicaLevel(opts replicaOptions, n int) (seriesPoint, error) {
	pt := seriesPoint{clients: opts.clients}
	schema, err := newPGSchema(opts.dsn, "replicas")
	if err != nil {
		return pt, err
	}
	defer func() {
		if err := schema.drop(); err != nil {
			fmt.Fprintf(os.Stderr, "dropping schema %s: %v\n", schema.name, err)
		}
	}()
	dir := filepath.Join(opts.dir, "replicas")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return pt, err
	}
	defer os.RemoveAll(dir)
	cfg, err := writePGConfig(dir, schema.dsn)
	if err != nil {
		return pt, err
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(syscall.SIGTERM)
			_ = p.Wait()
		}
	}()
	bases := make([]string, n)
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return pt, err
		}
		dataDir := filepath.Join(dir, "replica-"+strconv.Itoa(i))
		cmd := exec.Command(opts.mlgate, "serve", "--data-dir", dataDir, "--addr", addr, "--config", cfg, "--log-level", "warn")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return pt, err
		}
		procs = append(procs, cmd)
		bases[i] = "http://" + addr
	}
	for _, b := range bases {
		if err := waitHealthy(b); err != nil {
			return pt, err
		}
	}
	for i := range bases {
		bases[i] += "/api/2.0/mlflow/"
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * opts.clients, DisableCompression: true}}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	if err := postJSON(client, bases[0]+"experiments/create", map[string]any{"name": "replicas"}, &exp); err != nil {
		return pt, err
	}
	runIDs := make([]string, opts.clients)
	for i := range runIDs {
		var run struct {
			Run struct {
				Info struct {
					RunID string `json:"run_id"`
				} `json:"info"`
			} `json:"run"`
		}
		// Created through the replica the client will use: a run made on one replica is visible on the other.
		if err := postJSON(client, bases[i%n]+"runs/create", map[string]any{"experiment_id": exp.ExperimentID}, &run); err != nil {
			return pt, err
		}
		runIDs[i] = run.Run.Info.RunID
	}
	cpu := func() (time.Duration, error) {
		var sum time.Duration
		for _, p := range procs {
			c, err := processCPU(p.Process.Pid)
			if err != nil {
				return 0, err
			}
			sum += c
		}
		return sum, nil
	}
	cpu0, err := cpu()
	if err != nil {
		return pt, err
	}
	latencies := make([][]time.Duration, opts.clients)
	failures := make([]int, opts.clients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(opts.duration)
	for i := range opts.clients {
		wg.Go(func() { latencies[i], failures[i] = logBackToBack(client, bases[i%n], runIDs[i], 0, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := cpu()
	if err != nil {
		return pt, err
	}
	var all []time.Duration
	for i := range opts.clients {
		all = append(all, latencies[i]...)
		pt.errorsAnswers += failures[i]
	}
	if len(all) == 0 {
		return pt, fmt.Errorf("no call succeeded (%d failed)", pt.errorsAnswers)
	}
	pt.calls = len(all)
	pt.callsPerSec = float64(len(all)) / elapsed.Seconds()
	pt.p50, pt.p99 = percentile(all, 50), percentile(all, 99)
	pt.cpuPerCall = (cpu1 - cpu0) / time.Duration(len(all))
	return pt, nil
}
