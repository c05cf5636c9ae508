package main

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/mlgate/mlgate/backends/s3test"
)

// TestMetricsOnPostgres serves on PostgreSQL (and MinIO, as PostgreSQL requires shared storage) and
// checks that /metrics shows the PostgreSQL store's families after MLflow traffic: committed write and
// read transactions, a write refused inside its transaction, retries at zero, and the pool's
// connections.
func TestMetricsOnPostgres(t *testing.T) {
	dsn := pgEmptySchema(t)
	mio := s3test.Lookup(t, "minio")
	cfg := writeConfig(t, fmt.Sprintf(`metadata:
  type: postgres
  dsn: %q
backends:
  - name: s3
    type: minio
    config: {endpoint: %q, bucket: %s, prefix: %s, path_style: true, access_key_env: %s, secret_key_env: %s}
default_backend: s3
`, dsn, mio.Endpoint, mio.Bucket, fmt.Sprintf("metrics-%x/", randBytes(6)), s3test.AccessKeyEnv, s3test.SecretKeyEnv))
	p := startServeEnv(t, t.TempDir(), nil, "--config", cfg)

	c := &mlflowClient{t: t, base: p.base}
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	c.ok(http.MethodPost, "experiments/create", map[string]any{"name": "pg-metrics"}, &exp)
	run := c.createRun(exp.ExperimentID, "r")
	c.ok(http.MethodPost, "runs/log-batch", map[string]any{"run_id": run.RunID,
		"params":  []map[string]any{{"key": "alpha", "value": "0.5"}},
		"metrics": []map[string]any{{"key": "acc", "value": 0.5, "timestamp": 1, "step": 0}}}, nil)
	// A param logged again with another value is refused inside the write's transaction.
	c.fails(http.MethodPost, "runs/log-parameter", map[string]any{"run_id": run.RunID, "key": "alpha", "value": "0.7"}, 400, "INVALID_PARAMETER_VALUE")
	c.ok(http.MethodPost, "runs/search", map[string]any{"experiment_ids": []string{exp.ExperimentID}, "order_by": []string{"metrics.acc DESC"}}, nil)

	s := metricSamples(t, p.base, nil)
	wantSample(t, s, "mlgate_store_pg_transaction_duration_seconds", `^mlgate_store_pg_transaction_duration_seconds_count\{kind="write"\} [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_pg_transaction_duration_seconds", `^mlgate_store_pg_transaction_duration_seconds_count\{kind="read"\} [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_pg_transaction_retries_total", `^mlgate_store_pg_transaction_retries_total\{kind="write"\} 0$`)
	wantSample(t, s, "mlgate_store_pg_transaction_failures_total", `^mlgate_store_pg_transaction_failures_total\{kind="write",reason="refused"\} [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_pg_transaction_failures_total", `^mlgate_store_pg_transaction_failures_total\{kind="write",reason="contended"\} 0$`)
	wantSample(t, s, "mlgate_store_pg_transaction_failures_total", `^mlgate_store_pg_transaction_failures_total\{kind="read",reason="unavailable"\} 0$`)
	wantSample(t, s, "mlgate_store_pg_pool_connections", `^mlgate_store_pg_pool_connections\{state="acquired"\} [0-9]+$`)
	wantSample(t, s, "mlgate_store_pg_pool_connections", `^mlgate_store_pg_pool_connections\{state="idle"\} [0-9]+$`)
	wantSample(t, s, "mlgate_store_pg_pool_connections", `^mlgate_store_pg_pool_connections\{state="constructing"\} [0-9]+$`)
	wantSample(t, s, "mlgate_store_pg_pool_max_connections", `^mlgate_store_pg_pool_max_connections [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_pg_pool_acquires_total", `^mlgate_store_pg_pool_acquires_total [1-9][0-9]*$`)
	wantSample(t, s, "mlgate_store_pg_pool_empty_acquires_total", `^mlgate_store_pg_pool_empty_acquires_total [0-9]+$`)
	wantSample(t, s, "mlgate_store_pg_pool_acquire_seconds_total", `^mlgate_store_pg_pool_acquire_seconds_total [0-9.e+-]+$`)
}
