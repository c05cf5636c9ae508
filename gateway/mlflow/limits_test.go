package mlflow_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// TestMLflowJSONBodyLimits checks the per-route limits of JSON bodies: a small default, more where
// MLflow needs it (log-batch, log-inputs, searches), with refusals as MLflow's 400
// INVALID_PARAMETER_VALUE, whether the body declares its length or comes chunked.
func TestMLflowJSONBodyLimits(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	base := env.Srv.URL
	id := runsTestCreate(t, env, `{}`).Info.RunID
	post := func(rpc string, body []byte, chunked bool) gatewaytest.Response {
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r)
		}
		return env.Do(http.MethodPost, base+"/api/2.0/mlflow/"+rpc, r, map[string]string{"Content-Type": "application/json"})
	}
	// padded is a JSON object with a "pad" field that makes it n bytes long.
	padded := func(fields string, n int) []byte {
		b := []byte(`{` + fields + `,"pad":"`)
		b = append(b, bytes.Repeat([]byte("x"), n-len(b)-2)...)
		return append(b, `"}`...)
	}
	metrics := func(n int) []byte {
		return []byte(`{"run_id":"` + id + `","metrics":[` + strings.TrimSuffix(strings.Repeat(`{},`, n), ",") + `]}`)
	}
	ids := func(n int) []byte {
		return []byte(`{"experiment_ids":[` + strings.TrimSuffix(strings.Repeat(`"0",`, n), ",") + `]}`)
	}
	for _, tc := range []struct {
		name   string
		rpc    string
		body   []byte
		status int
		says   string
	}{
		{"default route at its limit", "runs/set-tag", padded(`"run_id":"`+id+`","key":"k","value":"v"`, 1<<20), 200, ""},
		{"default route over its limit", "runs/set-tag", padded(`"run_id":"`+id+`","key":"k","value":"v"`, 1<<20+1), 400, "at most 1048576 bytes"},
		{"log-batch above the default", "runs/log-batch", padded(`"run_id":"`+id+`"`, 3<<20), 200, ""},
		{"log-batch over its limit", "runs/log-batch", padded(`"run_id":"`+id+`"`, 4<<20+1), 400, "at most 4194304 bytes"},
		{"log-inputs over its limit", "runs/log-inputs", padded(`"run_id":"`+id+`"`, 24<<20+1), 400, "at most 25165824 bytes"},
		{"log-batch over MLflow's 1000 entries", "runs/log-batch", metrics(1001), 400,
			"a batch logging request can contain at most 1000 metrics. Got 1001"},
		{"log-batch list that is not decoded", "runs/log-batch", metrics(10001), 400, `"metrics" has more than 10000 elements`},
		{"search of the most experiments it takes", "runs/search", ids(10000), 200, ""},
		{"search of more experiments", "runs/search", ids(10001), 400, `"experiment_ids" has more than 10000`},
		{"deep nesting", "runs/set-tag", []byte(strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40)), 400, "deeper than 32"},
	} {
		for _, chunked := range []bool{false, true} {
			r := post(tc.rpc, tc.body, chunked)
			if r.Status != tc.status {
				t.Errorf("%s (chunked %v): %d, want %d: %.300s", tc.name, chunked, r.Status, tc.status, r.Body)
				continue
			}
			if tc.status == 200 {
				continue
			}
			var e struct{ ErrorCode, Message string }
			r.JSON(t, &struct {
				ErrorCode *string `json:"error_code"`
				Message   *string `json:"message"`
			}{&e.ErrorCode, &e.Message})
			if e.ErrorCode != "INVALID_PARAMETER_VALUE" || !strings.Contains(e.Message, tc.says) {
				t.Errorf("%s (chunked %v): %s %q, want INVALID_PARAMETER_VALUE saying %q", tc.name, chunked, e.ErrorCode, e.Message, tc.says)
			}
		}
	}
}
