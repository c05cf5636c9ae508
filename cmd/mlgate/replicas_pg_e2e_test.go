package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/s3test"
)

// pgTestDSNEnv is the PostgreSQL server the end-to-end tests use (.ci/postgres.sh start exports it).
const pgTestDSNEnv = "MLGATE_TEST_POSTGRES_DSN"

// pgEmptySchema creates a schema of its own for one test on the test server, dropped when the test ends,
// and returns a DSN whose connections use it (search_path). It skips t when the server is not configured.
func pgEmptySchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(pgTestDSNEnv)
	if dsn == "" {
		t.Skipf("%s is unset: eval \"$(.ci/postgres.sh start)\" starts a test server", pgTestDSNEnv)
	}
	schema := fmt.Sprintf("e2e_%x", randBytes(8))
	ctx := context.Background()
	exec := func(sql string) error {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("%s must be a postgres:// URL: %v", pgTestDSNEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// writeConfig writes a config file into a temporary directory and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mlgate.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tcpProxy forwards 127.0.0.1 connections to upstream until cut: then it closes every connection and
// refuses new ones, as a database server that went down, until restored.
type tcpProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	down     bool
	conns    map[net.Conn]bool
}

func startTCPProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *tcpProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

func (p *tcpProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.upstream)
	if err != nil || !p.track(c, up) {
		c.Close()
		if up != nil {
			up.Close()
		}
		return
	}
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// setDown cuts (true) or restores (false) the forwarding.
func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			c.Close()
		}
		p.conns = map[net.Conn]bool{}
	}
}

// viaProxy returns dsn with its host and port replaced by the proxy's.
func (p *tcpProxy) viaProxy(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// readyStatus is the status of GET /ready.
func readyStatus(base string) (int, error) {
	resp, err := http.Get(base + "/ready")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestReplicasOnPostgres runs two `mlgate serve` replicas on one PostgreSQL schema and one MinIO bucket:
// A takes its DSN from the config file, B from MLGATE_METADATA_DSN alone. What one writes the other
// reads: a package file (listed and downloaded, sha256 checked), and an MLflow run created on A whose
// metric is logged on B. The backup commands and route say PostgreSQL's backups are its own, and /ready
// turns 503 while B's database is unreachable and 200 again when it returns.
func TestReplicasOnPostgres(t *testing.T) {
	mio := s3test.Lookup(t, "minio")
	dsn := pgEmptySchema(t)
	prefix := fmt.Sprintf("replicas-%x/", randBytes(6))
	backendsYAML := fmt.Sprintf(`backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, mio.Endpoint, mio.Bucket, prefix, s3test.AccessKeyEnv, s3test.SecretKeyEnv)
	cfgA := writeConfig(t, fmt.Sprintf("metadata:\n  type: postgres\n  dsn: %q\n", dsn)+backendsYAML)
	cfgB := writeConfig(t, backendsYAML)
	// B reaches the database through a proxy the test can cut.
	u, _ := url.Parse(dsn)
	proxy := startTCPProxy(t, u.Host)
	a := startServe(t, t.TempDir(), "--config", cfgA)
	b := startServeEnv(t, t.TempDir(), []string{metadataDSNEnv + "=" + proxy.viaProxy(t, dsn)}, "--config", cfgB)

	// A package file uploaded through A is listed and downloaded through B.
	data := randBytes(3<<20 + 17)
	sum := sha256.Sum256(data)
	if code := put(t, projectFileURL(a, "team/vision", "model/w.bin"), data); code != http.StatusCreated {
		t.Fatalf("upload through A: %d", code)
	}
	code, body := get(t, b.base+"/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files")
	var listed []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &listed) != nil || len(listed) != 1 ||
		listed[0].Path != "model/w.bin" || listed[0].Size != int64(len(data)) || listed[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("list through B: %d %s", code, body)
	}
	code, got := get(t, projectFileURL(b, "team/vision", "model/w.bin"))
	if gotSum := sha256.Sum256(got); code != http.StatusOK || gotSum != sum {
		t.Fatalf("download through B: %d, %d bytes, sha256 %x, want %x", code, len(got), gotSum, sum)
	}

	// An MLflow run created on A gets a metric logged on B, read back on A.
	ca, cb := &mlflowClient{t: t, base: a.base}, &mlflowClient{t: t, base: b.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	ca.ok(http.MethodPost, "experiments/create", map[string]any{"name": "replicas"}, &exp)
	run := ca.createRun(exp.ExperimentID, "r")
	cb.ok(http.MethodPost, "runs/log-metric", map[string]any{"run_id": run.RunID, "key": "loss", "value": 0.25,
		"timestamp": time.Now().UnixMilli(), "step": 3}, nil)
	var r runResp
	ca.ok(http.MethodGet, "runs/get", map[string]any{"run_id": run.RunID}, &r)
	if m := r.Run.Data.Metrics; len(m) != 1 || m[0].Key != "loss" || m[0].Value != 0.25 || m[0].Step != 3 {
		t.Fatalf("metrics read on A: %+v", m)
	}

	// Backups are PostgreSQL's own: the route answers 501, the commands say so.
	code, body = get(t, a.base+"/api/v4/admin/backup")
	if code != http.StatusNotImplemented || !strings.Contains(string(body), "pg_dump") {
		t.Fatalf("admin backup: %d %s", code, body)
	}
	out := filepath.Join(t.TempDir(), "b.db")
	for _, args := range [][]string{
		{"backup", "--config", cfgA, "--out", out},
		{"backup", "--url", a.base, "--out", out},
		{"restore", "--config", cfgA, "--from", out, "--data-dir", t.TempDir()},
	} {
		code, text := runCmd(t, args...)
		if code == 0 || !strings.Contains(text, "pg_dump") || !strings.Contains(text, "Running several replicas") {
			t.Fatalf("mlgate %s: exit %d\n%s", strings.Join(args, " "), code, text)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a backup file was written: %v", err)
	}

	// B's database goes away: its /ready is 503 (A's stays 200); it comes back: 200 again.
	if code, err := readyStatus(b.base); code != http.StatusOK {
		t.Fatalf("B /ready: %d %v", code, err)
	}
	proxy.setDown(true)
	poll.UntilOK(t, 20*time.Second, "B's /ready to fail", func() error {
		if code, err := readyStatus(b.base); code != http.StatusServiceUnavailable {
			return fmt.Errorf("/ready: %d %v", code, err)
		}
		return nil
	})
	if code, err := readyStatus(a.base); code != http.StatusOK {
		t.Fatalf("A /ready while B's database is cut: %d %v", code, err)
	}
	// B's API during the outage: 503 with Retry-After, which clients retry, never a 500.
	for _, u := range []string{b.base + "/api/2.0/mlflow/experiments/search?max_results=1",
		b.base + "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatalf("GET %s while the database is cut: %v", u, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s while the database is cut: %d, Retry-After %q; want 503 with Retry-After",
				u, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	proxy.setDown(false)
	poll.UntilOK(t, 20*time.Second, "B's /ready to recover", func() error {
		if code, err := readyStatus(b.base); code != http.StatusOK {
			return fmt.Errorf("/ready: %d %v", code, err)
		}
		return nil
	})
}

// TestPostgresRefusesLocalfs: with the PostgreSQL store, serve refuses a localfs backend (the embedded
// default, or a declared one) before connecting, saying why; and a database that cannot be reached is an
// error naming its address, exit code 1. None of this needs a database server.
func TestPostgresRefusesLocalfs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	dsn := "postgres://mlgate@" + closed + "/mlgate?sslmode=disable&connect_timeout=5"
	local := fmt.Sprintf("backends:\n  - {name: local, type: localfs, config: {root: %s}}\ndefault_backend: local\n", t.TempDir())
	s3 := "backends:\n  - {name: s3, type: s3, config: {endpoint: \"http://" + closed + "\", bucket: b, path_style: true}}\ndefault_backend: s3\n"
	for _, tc := range []struct {
		name string
		yaml string
		env  []string
		want []string
	}{
		{"default backend", fmt.Sprintf("metadata: {type: postgres, dsn: %q}\n", dsn), nil,
			[]string{"the config declares no backends, so the default is localfs", "another replica could not read", "multipart upload state per process"}},
		{"default backend, DSN from the environment", "", []string{metadataDSNEnv + "=" + dsn},
			[]string{"the config declares no backends, so the default is localfs"}},
		{"declared localfs", fmt.Sprintf("metadata: {type: postgres, dsn: %q}\n", dsn) + local, nil,
			[]string{`backend "local" is localfs`, "another replica could not read"}},
		{"unreachable database", fmt.Sprintf("metadata: {type: postgres, dsn: %q}\n", dsn) + s3, nil,
			[]string{"PostgreSQL", "connect to 127.0.0.1:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"serve", "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"}
			if tc.yaml != "" {
				args = append(args, "--config", writeConfig(t, tc.yaml))
			}
			code, out := runCmdEnv(t, tc.env, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
