package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest/poll"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// syncBuffer is a log sink that handlers on several goroutines may write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// loggedGateway is a gateway over a real store and the memory backend whose log a test reads.
func loggedGateway(t *testing.T, cfg gateway.Config) (*httptest.Server, *boltstore.Store, *syncBuffer) {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(gateway.New(cfg, store, backends.Checked("memory", memory.New()), log).Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = store.Close()
	})
	return srv, store, logs
}

// logLines returns the lines of logs that contain every one of parts.
func logLines(logs string, parts ...string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// TestErrorLogPathIsTheAccessLogPath: the error line of a failed request names its path exactly as the
// access log does, escaped once ("disk%2Ffull"), not escaped again from the escaped form the router
// works on ("disk%252Ffull").
func TestErrorLogPathIsTheAccessLogPath(t *testing.T) {
	srv, store, logs := loggedGateway(t, gateway.Config{})
	// A closed database fails every lookup with an error the table does not know: a logged 500.
	_ = store.Close()
	const path = "/api/v4/projects/disk%2Ffull/packages/ml_models/m/1.0.0/files/x.bin"
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	out := logs.String()
	if strings.Contains(out, "%252F") {
		t.Errorf("a log line escapes the path twice:\n%s", out)
	}
	if access, internal := logLines(out, "msg=request ", "path="+path+" "), logLines(out, `msg="internal error"`, "path="+path+" "); len(access) != 1 || len(internal) != 1 {
		t.Errorf("want one access line and one error line with path=%s:\n%s", path, out)
	}
}

// TestAccessLogShowsAbortedRequests: a client that hangs up in the middle of its upload body gets no
// answer, and the access log says so (status 499, aborted) instead of logging status=0 like a request
// that went fine.
func TestAccessLogShowsAbortedRequests(t *testing.T) {
	srv, _, logs := loggedGateway(t, gateway.Config{})
	addr := srv.Listener.Addr().String()
	resp, err := http.Post(srv.URL+"/api/2.0/mlflow/runs/create", "application/json", strings.NewReader(`{"experiment_id": "0"}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("runs/create: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/api/v4/projects/team%2Fvision/packages/ml_models/m/1.0.0/files/cut.bin"},
		{http.MethodPut, "/api/2.0/mlflow-artifacts/artifacts/0/" + created.Run.Info.RunID + "/artifacts/cut.bin"},
		{http.MethodPost, "/api/2.0/mlflow/runs/log-batch"},
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n%s", c.method, c.path, addr, strings.Repeat("x", 1000))
		// Whenever the handler gets to read the body, it finds it cut after 1000 of 100000 bytes.
		conn.Close()
		var line string
		poll.Until(t, 10*time.Second, "the access log line of "+c.path, func() bool {
			lines := logLines(logs.String(), "method="+c.method, "path="+c.path+" ")
			if len(lines) == 1 {
				line = lines[0]
			}
			return len(lines) == 1
		})
		if !strings.Contains(line, "status=499") || !strings.Contains(line, "aborted=true") {
			t.Fatalf("access log of a request whose client hung up mid-body:\n%s", line)
		}
	}
}
