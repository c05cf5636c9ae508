package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// Any body sent to any MLflow RPC the dispatcher serves gets a 2xx or an MLflow 4xx body: never a 5xx,
// which the client would retry for a minute, and never a panic.
func FuzzMLflowRPCs(f *testing.F) {
	env := gatewaytest.New(f, gateway.Config{})
	rpcs := env.Gateway.MLflowRPCs()
	for i := range rpcs {
		for _, body := range []string{"{}", `{"experiment_id": "0", "name": "x", "run_id": "0123456789abcdef0123456789abcdef"}`,
			`{"metrics": [{"key": "a", "value": "NaN", "timestamp": 1}], "params": [{"key": "k", "value": "v"}]}`,
			`{"experiment_ids": ["0"], "filter": "metrics.a > 1", "order_by": ["metrics.a DESC"], "max_results": 5}`,
			`[]`, `{"name": ` + strings.Repeat("[", 200) + `}`, `{"tags": [{"key": "", "value": null}]}`} {
			f.Add(uint16(i), body)
		}
	}
	f.Fuzz(func(t *testing.T, which uint16, body string) {
		rpc := rpcs[int(which)%len(rpcs)]
		url := env.Srv.URL + "/api/2.0/mlflow/" + fill(rpc.Pattern, "default")
		var rd io.Reader
		if rpc.Method != http.MethodGet {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(rpc.Method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := env.Srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s with %q: %d %s", rpc.Method, rpc.Pattern, body, resp.StatusCode, out)
		}
		if resp.StatusCode >= 400 {
			var e struct {
				ErrorCode string `json:"error_code"`
				Message   string `json:"message"`
			}
			if json.Unmarshal(out, &e) != nil || e.ErrorCode == "" || e.Message == "" {
				t.Fatalf("%s %s with %q: %d without an MLflow error body: %s", rpc.Method, rpc.Pattern, body, resp.StatusCode, out)
			}
		}
	})
}
