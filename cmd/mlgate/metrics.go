package main

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/cmd/mlgate/internal/maintenance"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
	"github.com/mlgate/mlgate/metadata/pgstore"
	"github.com/mlgate/mlgate/plugins"
)

// serveMetrics is the registry behind GET /metrics and the observers that feed it: it implements
// gateway.Observer and backends.Observer, and its commit method is the store's commit observer.
type serveMetrics struct {
	handler http.Handler

	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	uploads       prometheus.Gauge
	backendBytes  *prometheus.CounterVec
	backendErrors *prometheus.CounterVec
	commitSeconds prometheus.Histogram
	commitWrites  prometheus.Histogram
	commitErrors  prometheus.Counter
	swept         *prometheus.CounterVec
	// The PostgreSQL store's: its transactions (pgstore.WithTxObserver) and connection pool.
	pgTxSeconds  *prometheus.HistogramVec
	pgTxRetries  *prometheus.CounterVec
	pgTxFailures *prometheus.CounterVec
	pgPool       *poolCollector
}

var (
	_ gateway.Observer  = (*serveMetrics)(nil)
	_ backends.Observer = (*serveMetrics)(nil)
)

// newMetrics builds the registry behind GET /metrics: the Go runtime and process collectors,
// mlgate_plugin_restarts_total{plugin}, fed by the plugin supervisor's restart hook, and the families
// of the gateway, the backends, the store and the sweeper, fed by the observers serve wires. It
// installs the restart hook process-wide, so serve calls it once; the returned stop removes the hook
// again.
func newMetrics() (m *serveMetrics, stop func()) {
	reg := prometheus.NewRegistry()
	restarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mlgate_plugin_restarts_total",
		Help: "Restarts of backend plugin processes after a crash, a kill or a failed ping.",
	}, []string{"plugin"})
	m = &serveMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_http_requests_total",
			Help: "HTTP requests by method, route template and status (499: the client got no response).",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mlgate_http_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response, by method and route template.",
			// From a cached JSON answer to a multi-GB transfer.
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 30, 60, 300, 1800},
		}, []string{"method", "route"}),
		uploads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mlgate_uploads_in_flight",
			Help: "Uploads (file bodies streaming into storage) running now; --max-concurrent-uploads bounds them.",
		}),
		backendBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_backend_bytes_total",
			Help: "Bytes stored into (direction=in) and read out of (direction=out) each backend.",
		}, []string{"backend", "direction"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_backend_errors_total",
			Help: "Backend operations that failed for the backend's own reasons (not a missing blob or a bad client body), by backend and operation.",
		}, []string{"backend", "op"}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlgate_store_commit_duration_seconds",
			Help:    "Duration of each metadata commit (one bbolt transaction, fsyncs included), which a group of writes shares.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}),
		commitWrites: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mlgate_store_commit_writes",
			Help:    "Writes committed together by each metadata commit (group commit; at most 64).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mlgate_store_commit_failures_total",
			Help: "Metadata commit attempts that were rolled back (a failing write of the group, a full disk).",
		}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_sweeper_removed_total",
			Help: "What the background sweeper removed, by backend and kind (unreferenced_blob, staging_leftover, multipart_upload).",
		}, []string{"backend", "kind"}),
		pgTxSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mlgate_store_pg_transaction_duration_seconds",
			Help:    "Duration of each PostgreSQL transaction of the metadata store that committed, retries and their pauses included, by kind (write, read).",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"kind"}),
		pgTxRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_store_pg_transaction_retries_total",
			Help: "PostgreSQL transactions of the metadata store run again after a serialization failure or a deadlock, by kind (write, read).",
		}, []string{"kind"}),
		pgTxFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mlgate_store_pg_transaction_failures_total",
			Help: "PostgreSQL transactions of the metadata store that did not commit, by kind (write, read) and reason: refused (the write's own error: " +
				"not found, invalid, conflict), contended (still failing to serialize after every attempt), unavailable (database unreachable), canceled (the request ended).",
		}, []string{"kind", "reason"}),
		pgPool: &poolCollector{
			conns: prometheus.NewDesc("mlgate_store_pg_pool_connections",
				"Connections of the PostgreSQL store's pool by state: acquired (in use), idle, constructing.", []string{"state"}, nil),
			maxConns: prometheus.NewDesc("mlgate_store_pg_pool_max_connections",
				"Size limit of the PostgreSQL store's pool (pool_max_conns in the DSN).", nil, nil),
			acquires: prometheus.NewDesc("mlgate_store_pg_pool_acquires_total",
				"Connections taken from the PostgreSQL store's pool.", nil, nil),
			waited: prometheus.NewDesc("mlgate_store_pg_pool_empty_acquires_total",
				"Connections taken from the PostgreSQL store's pool that had to wait: none was idle.", nil, nil),
			waitSeconds: prometheus.NewDesc("mlgate_store_pg_pool_acquire_seconds_total",
				"Time spent taking connections from the PostgreSQL store's pool.", nil, nil),
		},
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		restarts, m.requests, m.duration, m.uploads, m.backendBytes, m.backendErrors,
		m.commitSeconds, m.commitWrites, m.commitErrors, m.swept,
		m.pgTxSeconds, m.pgTxRetries, m.pgTxFailures, m.pgPool,
	)
	plugins.SetRestartHook(func(name string) { restarts.WithLabelValues(name).Inc() })
	// A scrape failure must not take the page down with a 500 for one bad collector.
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m, func() { plugins.SetRestartHook(nil) }
}

// knownMethods are the methods mlgate serves; any other is counted as "other", so that a client
// inventing methods cannot create series.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

func (m *serveMetrics) RequestDone(r gateway.RequestRecord) {
	method := r.Method
	if !knownMethods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(method, r.Route, strconv.Itoa(r.Status)).Inc()
	m.duration.WithLabelValues(method, r.Route).Observe(r.Duration.Seconds())
}

func (m *serveMetrics) UploadsInFlight(delta int) { m.uploads.Add(float64(delta)) }

func (m *serveMetrics) Transferred(backend string, dir backends.Direction, n int64) {
	m.backendBytes.WithLabelValues(backend, string(dir)).Add(float64(n))
}

func (m *serveMetrics) Failed(backend, op string) { m.backendErrors.WithLabelValues(backend, op).Inc() }

// commit is the store's commit observer (boltstore.WithCommitObserver).
func (m *serveMetrics) commit(c boltstore.CommitStats) {
	if c.Err != nil {
		m.commitErrors.Inc()
		return
	}
	m.commitSeconds.Observe(c.Duration.Seconds())
	m.commitWrites.Observe(float64(c.Writes))
}

// pgStore starts the PostgreSQL store's series at zero and has the pool's statistics collected from
// store: serve on bbolt shows none of them.
func (m *serveMetrics) pgStore(store *pgstore.Store) {
	for _, kind := range []string{"write", "read"} {
		m.pgTxSeconds.WithLabelValues(kind)
		m.pgTxRetries.WithLabelValues(kind)
		for _, reason := range []string{"refused", "contended", "unavailable", "canceled"} {
			m.pgTxFailures.WithLabelValues(kind, reason)
		}
	}
	m.pgPool.store.Store(store)
}

// pgTx is the PostgreSQL store's transaction observer (pgstore.WithTxObserver).
func (m *serveMetrics) pgTx(st pgstore.TxStats) {
	kind := "write"
	if st.ReadOnly {
		kind = "read"
	}
	if st.Attempts > 1 {
		m.pgTxRetries.WithLabelValues(kind).Add(float64(st.Attempts - 1))
	}
	if st.Err == nil {
		m.pgTxSeconds.WithLabelValues(kind).Observe(st.Duration.Seconds())
		return
	}
	reason := "refused"
	switch {
	case errors.Is(st.Err, pgstore.ErrContended):
		reason = "contended"
	case errors.Is(st.Err, metadata.ErrUnavailable):
		reason = "unavailable"
	case errors.Is(st.Err, context.Canceled), errors.Is(st.Err, context.DeadlineExceeded):
		reason = "canceled"
	}
	m.pgTxFailures.WithLabelValues(kind, reason).Inc()
}

// poolCollector reports the PostgreSQL store's pool statistics (pgxpool.Stat) at each scrape; nothing
// until serve opens a PostgreSQL store.
type poolCollector struct {
	store                                          atomic.Pointer[pgstore.Store]
	conns, maxConns, acquires, waited, waitSeconds *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.maxConns, c.acquires, c.waited, c.waitSeconds} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	store := c.store.Load()
	if store == nil {
		return
	}
	st := store.Stat()
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.AcquiredConns()), "acquired")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.IdleConns()), "idle")
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.ConstructingConns()), "constructing")
	ch <- prometheus.MustNewConstMetric(c.maxConns, prometheus.GaugeValue, float64(st.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquires, prometheus.CounterValue, float64(st.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waited, prometheus.CounterValue, float64(st.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.waitSeconds, prometheus.CounterValue, st.AcquireDuration().Seconds())
}

// removed counts what a sweep removed.
func (m *serveMetrics) removed(rs []maintenance.Removal) {
	for _, r := range rs {
		m.swept.WithLabelValues(r.Backend, r.Kind).Inc()
	}
}

// backendOps are the operations whose failures are counted, as backends.Checked names them.
var backendOps = []string{"put", "get", "stat", "delete", "list", "create multipart", "put part",
	"list parts", "complete multipart", "abort multipart"}

// opened starts a backend's series at zero, so that rates and alerts work from its first scrape rather
// than from its first error.
func (m *serveMetrics) opened(backend string) {
	for _, dir := range []backends.Direction{backends.Into, backends.OutOf} {
		m.backendBytes.WithLabelValues(backend, string(dir))
	}
	for _, op := range backendOps {
		m.backendErrors.WithLabelValues(backend, op)
	}
	for _, kind := range []string{"unreferenced_blob", "staging_leftover", "multipart_upload"} {
		m.swept.WithLabelValues(backend, kind)
	}
}
