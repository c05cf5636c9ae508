package gateway_test

import (
	"net/http"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
)

// metricsStub stands in for promhttp: the gateway only routes to Config.Metrics.
var metricsStub = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	_, _ = w.Write([]byte("mlgate_test_metric 1\n"))
})

func TestMetricsRoute(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		e := gatewaytest.New(t, gateway.Config{})
		gatewaytest.WantStatus(t, e.Get(e.Srv.URL+"/metrics"), http.StatusNotFound)
	})
	t.Run("open", func(t *testing.T) {
		e := gatewaytest.New(t, gateway.Config{Metrics: metricsStub})
		r := e.Get(e.Srv.URL + "/metrics")
		gatewaytest.WantStatus(t, r, http.StatusOK)
		if string(r.Body) != "mlgate_test_metric 1\n" {
			t.Fatalf("body %q", r.Body)
		}
		gatewaytest.WantStatus(t, e.Do(http.MethodPost, e.Srv.URL+"/metrics", nil, nil), http.StatusMethodNotAllowed)
	})
	t.Run("auth", func(t *testing.T) {
		e := &authEnv{gatewaytest.New(t, gateway.Config{Auth: true, Metrics: metricsStub})}
		gatewaytest.WantStatus(t, e.Get(e.Srv.URL+"/metrics"), http.StatusUnauthorized)
		// A project token, even an admin one, does not see the whole server's figures.
		secret, _ := e.token("team/vision", metadata.ScopeAdmin)
		gatewaytest.WantStatus(t, e.getAs(e.Srv.URL+"/metrics", bearer(secret)), http.StatusForbidden)
		inst, _ := e.instanceToken(metadata.ScopeRead)
		gatewaytest.WantStatus(t, e.getAs(e.Srv.URL+"/metrics", bearer(inst)), http.StatusOK)
	})
}
func TestHealth(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	r := env.Get(env.Srv.URL + "/health")
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var body map[string]string
	r.JSON(t, &body)
	if body["status"] != "ok" {
		t.Fatalf("health body %v", body)
	}
	r = env.Get(env.Srv.URL + "/nothing/here")
	gatewaytest.WantStatus(t, r, http.StatusNotFound)
	if code := r.ErrorCode(t); code != "not_found" {
		t.Fatalf("unknown route code %q", code)
	}
}
