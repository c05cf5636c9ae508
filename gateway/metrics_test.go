package gateway

import (
	"net/http"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

// metricsStub stands in for promhttp: the gateway only routes to Config.Metrics.
var metricsStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte("mlgate_test_metric 1\n"))
})

func TestMetricsRoute(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		e := newTestEnv(t, Config{})
		wantStatus(t, e.get(e.srv.URL+"/metrics"), http.StatusNotFound)
	})
	t.Run("open", func(t *testing.T) {
		e := newTestEnv(t, Config{Metrics: metricsStub})
		r := e.get(e.srv.URL + "/metrics")
		wantStatus(t, r, http.StatusOK)
		if string(r.body) != "mlgate_test_metric 1\n" {
			t.Fatalf("body %q", r.body)
		}
		wantStatus(t, e.do(http.MethodPost, e.srv.URL+"/metrics", nil, nil), http.StatusMethodNotAllowed)
	})
	t.Run("auth", func(t *testing.T) {
		e := &authEnv{newTestEnv(t, Config{Auth: true, Metrics: metricsStub})}
		wantStatus(t, e.get(e.srv.URL+"/metrics"), http.StatusUnauthorized)
		secret, _ := e.token("team/vision", metadata.ScopeRead)
		wantStatus(t, e.getAs(e.srv.URL+"/metrics", bearer(secret)), http.StatusOK)
	})
}
