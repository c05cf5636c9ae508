package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

// ownPostgres is a PostgreSQL cluster of one test's own, run by .ci/postgres.sh with its state in a
// temporary directory, so that the test can stop it without breaking the tests that share the server
// of MLGATE_TEST_POSTGRES_DSN.
type ownPostgres struct {
	t     *testing.T
	state string
	dsn   string
}

var pgExportLine = regexp.MustCompile(`export ` + pgTestDSNEnv + `='([^']+)'`)

// startOwnPostgres starts the cluster and stops it (removing its data) when the test ends. It skips the
// test when MLGATE_TEST_POSTGRES_DSN is unset: the script needs PostgreSQL's binaries, which a machine
// that runs the server of that variable has.
func startOwnPostgres(t *testing.T) *ownPostgres {
	t.Helper()
	if os.Getenv(pgTestDSNEnv) == "" {
		t.Skipf("%s is unset: this test runs a PostgreSQL server of its own with .ci/postgres.sh, on a machine set up as for eval \"$(.ci/postgres.sh start)\"", pgTestDSNEnv)
	}
	pg := &ownPostgres{t: t, state: t.TempDir()}
	t.Cleanup(func() { pg.run("stop") })
	out := pg.run("start")
	m := pgExportLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf(".ci/postgres.sh start printed no DSN: %q", out)
	}
	pg.dsn = m[1]
	return pg
}

// run runs .ci/postgres.sh with a subcommand and returns its stdout; a failure fails the test.
func (pg *ownPostgres) run(sub string) string {
	pg.t.Helper()
	cmd := exec.Command("bash", "../../.ci/postgres.sh", sub)
	cmd.Env = append(os.Environ(), "MLGATE_POSTGRES_STATE="+pg.state)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		pg.t.Fatalf(".ci/postgres.sh %s: %v\n%s", sub, err, stderr.String())
	}
	return string(out)
}

// outageCounts is what the outage test's workers saw, by phase.
type outageCounts struct {
	ok, unavailable atomic.Int64
}

// TestReplicasPostgresOutage stops the database of two replicas for a few seconds under load (four
// workers logging metrics, reading runs and uploading package files through both): during the outage the
// replicas answer 503 with Retry-After (TEMPORARILY_UNAVAILABLE for MLflow) and never anything else, their
// /ready fails; when the database is back they serve again by themselves, and every metric point
// acknowledged before, during or after the outage is in its history.
func TestReplicasPostgresOutage(t *testing.T) {
	pg := startOwnPostgres(t)
	r := startReplicasOn(t, pg.dsn, nil, "--log-level", "warn")
	hc := newPoolClient(8)
	ctx := context.Background()
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	mustRPC(t, hc, r.base(0), http.MethodPost, "experiments/create", map[string]any{"name": "outage"}, &exp)

	const workers = 4
	const outageLength = 3 * time.Second
	// phase: 0 before the outage, 1 from the pause until the resume has returned (so its last answers
	// may be OKs), 2 after it.
	var phase atomic.Int32
	var counts [3]outageCounts
	var stop, failed atomic.Bool
	errs := make([]error, workers)
	acked := make([][]metricPoint, workers)
	runs := make([]string, workers)
	for w := range workers {
		runs[w] = createRun(t, hc, r.base(w%2), exp.ExperimentID, fmt.Sprintf("w%d", w))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			fail := func(err error) { errs[w] = err; failed.Store(true) }
			for k := 0; !stop.Load(); k++ {
				ph := phase.Load()
				base := r.base((w + k) % 2)
				var method, u string
				var body []byte
				want := http.StatusOK
				point := metricPoint{Key: "m", Value: float64(k), Timestamp: int64(k), Step: int64(k)}
				switch k % 3 {
				case 0:
					method, u = http.MethodPost, base+"/api/2.0/mlflow/runs/log-metric"
					body = fmt.Appendf(nil, `{"run_id":%q,"key":"m","value":%d,"timestamp":%d,"step":%d}`, runs[w], k, k, k)
				case 1:
					method, u = http.MethodGet, base+"/api/2.0/mlflow/runs/get?run_id="+runs[w]
				default:
					method, u = http.MethodPut, base+pkgURL("", "default", fmt.Sprintf("outage-w%d", w), "1.0.0", fmt.Sprintf("f%d", k))
					body, want = []byte("outage"), http.StatusCreated
				}
				resp, err := doHTTPResp(hc, method, u, body)
				if err != nil {
					fail(fmt.Errorf("%s %s (phase %d): %v", method, u, ph, err))
					return
				}
				switch {
				case resp.code == want:
					counts[ph].ok.Add(1)
					if k%3 == 0 {
						acked[w] = append(acked[w], point)
					}
				case resp.code == http.StatusServiceUnavailable && resp.header.Get("Retry-After") != "" &&
					(strings.HasPrefix(u, base+"/api/v4/") || mlflowErrorCode(resp.body) == "TEMPORARILY_UNAVAILABLE"):
					counts[ph].unavailable.Add(1)
					// A client backs off before it retries; without a pause the workers would spin on
					// instant 503s and starve the two cores.
					time.Sleep(5 * time.Millisecond)
				default:
					fail(fmt.Errorf("%s %s (phase %d): %d, Retry-After %q: %s", method, u, ph, resp.code, resp.header.Get("Retry-After"), resp.body))
					return
				}
			}
		})
	}
	waitCount := func(what string, c *atomic.Int64, n int64) {
		t.Helper()
		poll.UntilOK(t, time.Minute, what, func() error {
			if failed.Load() {
				return nil
			}
			if got := c.Load(); got < n {
				return fmt.Errorf("%d so far", got)
			}
			return nil
		})
	}
	waitCount("answers before the outage", &counts[0].ok, 20)

	phase.Store(1)
	pg.run("pause")
	paused := time.Now()
	// A few seconds of outage, measured in answers: both replicas' /ready fail, and the workers see 503s.
	for i := range 2 {
		poll.UntilOK(t, time.Minute, fmt.Sprintf("replica %d's /ready to fail", i), func() error {
			if code, err := readyStatus(r.base(i)); code != http.StatusServiceUnavailable {
				return fmt.Errorf("/ready: %d %v", code, err)
			}
			return nil
		})
	}
	waitCount("503s during the outage", &counts[1].unavailable, 40)
	// The outage lasts a few seconds, as a database failover would: long enough for every pooled
	// connection to have been found dead and every retry inside the store to have given up.
	poll.Until(t, time.Minute, "the outage to have lasted 3 s", func() bool { return time.Since(paused) >= outageLength })
	pg.run("resume")
	phase.Store(2)
	for i := range 2 {
		waitReady(t, r.base(i))
	}
	waitCount("answers after the outage", &counts[2].ok, 20)
	stop.Store(true)
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("before the outage: %d OK, %d 503; during: %d OK, %d 503; after: %d OK, %d 503",
		counts[0].ok.Load(), counts[0].unavailable.Load(), counts[1].ok.Load(), counts[1].unavailable.Load(),
		counts[2].ok.Load(), counts[2].unavailable.Load())

	for w := range workers {
		got, err := metricHistory(ctx, hc, r.base(w%2), runs[w], "m")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range acked[w] {
			if !slices.Contains(got, p) {
				t.Fatalf("run %s: acknowledged point %+v is not in the history", runs[w], p)
			}
		}
	}
}

// httpAnswer is an answer read whole.
type httpAnswer struct {
	code   int
	header http.Header
	body   []byte
}

// doHTTPResp is doHTTP with the answer's header. When the body is cut short, it returns the answer
// so far (status and header) with the error.
func doHTTPResp(hc *http.Client, method, u string, body []byte) (*httpAnswer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(resp.Body)
	return &httpAnswer{resp.StatusCode, resp.Header, buf.Bytes()}, err
}
