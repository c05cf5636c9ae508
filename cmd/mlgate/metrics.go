package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mlgate/mlgate/plugins"
)

// newMetrics builds the registry behind GET /metrics: the Go runtime and process collectors, and
// mlgate_plugin_restarts_total{plugin}, fed by the plugin supervisor's restart hook. It installs that
// hook process-wide, so serve calls it once; the returned stop removes the hook again.
func newMetrics() (handler http.Handler, stop func()) {
	reg := prometheus.NewRegistry()
	restarts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mlgate_plugin_restarts_total",
		Help: "Restarts of backend plugin processes after a crash, a kill or a failed ping.",
	}, []string{"plugin"})
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		restarts,
	)
	plugins.SetRestartHook(func(name string) { restarts.WithLabelValues(name).Inc() })
	// A scrape failure must not take the page down with a 500 for one bad collector.
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return h, func() { plugins.SetRestartHook(nil) }
}
