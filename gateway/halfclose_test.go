package gateway_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
)

// halfClosed sends a whole HTTP/1.1 request over a raw TCP connection, then shuts down the write side
// (shutdown(SHUT_WR)), as netcat and some proxies do, and reads the answer. err is set when the server
// closed the connection without an answer.
func halfClosed(t *testing.T, addr, method, target string, header map[string]string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, target, addr, len(body))
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestHalfClosedRequestsGetTheirRealAnswer: a client that sends a whole request and then half-closes its
// connection is still listening, so it gets the answer to the work it asked for, done in full. net/http
// cancels a request's context when the connection's read side ends, and mlgate used to take that for
// "the client went away", drop the work and let net/http send an implicit 200 with an empty body.
func TestHalfClosedRequestsGetTheirRealAnswer(t *testing.T) {
	env := gatewaytest.New(t, gateway.Config{})
	addr := env.Srv.Listener.Addr().String()
	const pkg = "/api/v4/projects/team%2Fvision/packages/ml_models/"
	const tries = 10

	gatewaytest.WantStatus(t, env.MLflowPost(env.Srv.URL, "experiments/create", `{"name": "half"}`), http.StatusOK)
	r := env.MLflowPost(env.Srv.URL, "runs/create", `{"experiment_id": "1"}`)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &created)
	runID := created.Run.Info.RunID

	t.Run("package PUT", func(t *testing.T) {
		for i := range tries {
			data := gatewaytest.Payload(4096 + i)
			path := fmt.Sprintf("m/1.0.0/files/f%d.bin", i)
			resp, body, err := halfClosed(t, addr, http.MethodPut, pkg+path, nil, data)
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("try %d: %v %v %q", i, status(resp), err, body)
			}
			if got := env.Get(env.PkgURL(path)); got.Status != http.StatusOK || !bytes.Equal(got.Body, data) {
				t.Fatalf("try %d: stored file: %d, %d bytes", i, got.Status, len(got.Body))
			}
		}
	})
	t.Run("artifact PUT", func(t *testing.T) {
		for i := range tries {
			data := gatewaytest.Payload(2048 + i)
			path := fmt.Sprintf("/api/2.0/mlflow-artifacts/artifacts/1/%s/artifacts/a%d.bin", runID, i)
			resp, body, err := halfClosed(t, addr, http.MethodPut, path, nil, data)
			if err != nil || resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
				t.Fatalf("try %d: %v %v %q", i, status(resp), err, body)
			}
			if got := env.Get(env.Srv.URL + path); got.Status != http.StatusOK || !bytes.Equal(got.Body, data) {
				t.Fatalf("try %d: stored artifact: %d, %d bytes", i, got.Status, len(got.Body))
			}
		}
	})
	t.Run("log-batch", func(t *testing.T) {
		for i := range tries {
			key := fmt.Sprintf("loss%d", i)
			batch := fmt.Sprintf(`{"run_id": %q, "metrics": [{"key": %q, "value": 0.5, "timestamp": 1, "step": 1}]}`, runID, key)
			resp, body, err := halfClosed(t, addr, http.MethodPost, "/api/2.0/mlflow/runs/log-batch",
				map[string]string{"Content-Type": "application/json"}, []byte(batch))
			if err != nil || resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
				t.Fatalf("try %d: %v %v %q", i, status(resp), err, body)
			}
			h := env.Get(env.Srv.URL + "/api/2.0/mlflow/metrics/get-history?run_id=" + runID + "&metric_key=" + key)
			var hist struct{ Metrics []json.RawMessage }
			h.JSON(t, &hist)
			if h.Status != http.StatusOK || len(hist.Metrics) != 1 {
				t.Fatalf("try %d: history after an answered log-batch: %d %s", i, h.Status, h.Body)
			}
		}
	})
	t.Run("experiments/create", func(t *testing.T) {
		for i := range tries {
			name := fmt.Sprintf("exp-%d", i)
			resp, body, err := halfClosed(t, addr, http.MethodPost, "/api/2.0/mlflow/experiments/create",
				map[string]string{"Content-Type": "application/json"}, []byte(`{"name": "`+name+`"}`))
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "experiment_id") {
				t.Fatalf("try %d: %v %v %q", i, status(resp), err, body)
			}
			gatewaytest.WantStatus(t, env.Get(env.Srv.URL+"/api/2.0/mlflow/experiments/get-by-name?experiment_name="+name), http.StatusOK)
		}
	})
	t.Run("GET of a missing file", func(t *testing.T) {
		for i := range tries {
			resp, body, err := halfClosed(t, addr, http.MethodGet, pkg+"m/1.0.0/files/missing.bin", nil, nil)
			if err != nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("try %d: %v %v %q", i, status(resp), err, body)
			}
			resp, body, err = halfClosed(t, addr, http.MethodGet, "/api/2.0/mlflow-artifacts/artifacts/1/"+runID+"/artifacts/missing", nil, nil)
			if err != nil || resp.StatusCode != http.StatusNotFound {
				t.Fatalf("try %d, proxy: %v %v %q", i, status(resp), err, body)
			}
		}
	})
}

func status(resp *http.Response) string {
	if resp == nil {
		return "no response"
	}
	return resp.Status
}
