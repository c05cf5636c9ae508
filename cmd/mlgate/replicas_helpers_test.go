package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/s3test"
)

// replicaSet is two `mlgate serve` processes on one PostgreSQL schema and one MinIO prefix, as two
// replicas behind a load balancer. A replica can be killed and started again (on a new port: clients
// ask base for the current address).
type replicaSet struct {
	t     *testing.T
	cfg   string
	extra []string // serve arguments after --config
	env   []string
	mu    sync.Mutex
	procs [2]*proc
	up    [2]bool
	turn  atomic.Uint64
}

// startReplicas starts two replicas on a fresh schema of the test server (the test is skipped when
// there is none) and a fresh prefix of the shared MinIO bucket. extra goes to both serve commands.
func startReplicas(t *testing.T, extra ...string) *replicaSet {
	t.Helper()
	return startReplicasOn(t, pgEmptySchema(t), nil, extra...)
}

// startReplicasOn is startReplicas on a given DSN, with env added to both processes' environment.
func startReplicasOn(t *testing.T, dsn string, env []string, extra ...string) *replicaSet {
	t.Helper()
	mio := s3test.Lookup(t, "minio")
	prefix := fmt.Sprintf("replicas-%x/", randBytes(6))
	r := &replicaSet{t: t, extra: extra, env: env}
	r.cfg = writeConfig(t, fmt.Sprintf(`metadata:
  type: postgres
  dsn: %q
backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, dsn, mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv))
	for i := range r.procs {
		r.start(i)
	}
	return r
}

// start starts replica i (again).
func (r *replicaSet) start(i int) {
	r.t.Helper()
	p := startServeEnv(r.t, r.t.TempDir(), r.env, append([]string{"--config", r.cfg}, r.extra...)...)
	r.mu.Lock()
	r.procs[i], r.up[i] = p, true
	r.mu.Unlock()
}

// kill stops replica i with SIGKILL and waits until it has exited.
func (r *replicaSet) kill(i int) {
	r.t.Helper()
	r.mu.Lock()
	p := r.procs[i]
	r.up[i] = false
	r.mu.Unlock()
	if err := p.stop(syscall.SIGKILL); err == nil {
		r.t.Fatalf("replica %d survived SIGKILL", i)
	}
}

// restart stops replica i with SIGTERM, which lets its requests in flight finish, and starts it again.
func (r *replicaSet) restart(i int) {
	r.t.Helper()
	r.mu.Lock()
	p := r.procs[i]
	r.up[i] = false
	r.mu.Unlock()
	if err := p.stop(syscall.SIGTERM); err != nil {
		r.t.Fatalf("graceful stop of replica %d: %v", i, err)
	}
	r.start(i)
}

// base is replica i's URL (of its latest start).
func (r *replicaSet) base(i int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[i].base
}

// isUp reports whether replica i runs (it was not killed, or was started again).
func (r *replicaSet) isUp(i int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up[i]
}

// next is a round-robin load balancer's choice: A, B, A, B, …
func (r *replicaSet) next() string {
	return r.base(int(r.turn.Add(1) % 2))
}

// replicaClient returns an MLflow client whose requests alternate between the replicas.
func (r *replicaSet) replicaClient(t *testing.T) *mlflowClient {
	return &mlflowClient{t: t, next: r.next}
}

// doHTTP sends one request with a bounded time (a hung request becomes an error, not a hung test) and
// returns the status and body; it never fails the test, so workers on their own goroutines can call it.
func doHTTP(hc *http.Client, method, u string, body io.Reader, size int64, header ...string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(k, strings.TrimSpace(v))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// isConnError reports whether err is a transport failure (the server went away, or never answered),
// as opposed to an HTTP answer: the request's outcome is then unknown.
func isConnError(err error) bool {
	var ue *url.Error
	return err != nil && (errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET))
}

// waitReady waits until base's /ready answers 200.
func waitReady(t *testing.T, base string) {
	t.Helper()
	poll.UntilOK(t, 30*time.Second, base+"/ready to answer 200", func() error {
		if code, err := readyStatus(base); code != http.StatusOK {
			return fmt.Errorf("/ready: %d %v", code, err)
		}
		return nil
	})
}
