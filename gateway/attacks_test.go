package gateway_test

import (
	"bufio"

	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/metadata"
)

// leaks matches what no answer may show a client: a Go stack trace, a filesystem path of the server,
// or a blob key.
var leaks = regexp.MustCompile(`goroutine \d+|\.go:\d+|panic:|/tmp/|/home/|/var/|/root/|mlgate-data|\bc/[0-9a-f]{16}/`)

// rawExchange sends raw bytes on a new connection and reads one response (or what arrives before the
// server closes), so that malformed framing reaches the server as sent.
func rawExchange(t *testing.T, addr, request string) (status int, body string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to %.80q: %v", request, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

type attack struct {
	name   string
	method string
	path   string // escaped, sent as is
	header map[string]string
	body   string
	want   []int // acceptable statuses, all 4xx
}

// A table of attacks, each with the clean 4xx it must get: path traversal in every spelling, hostile
// framing and sizes, ranges past the end, tokens and page tokens that belong to someone else. No answer
// may leak a stack trace, a server path or a blob key.
func TestAttacksGetCleanClientErrors(t *testing.T) {
	env := &authEnv{gatewaytest.New(t, gateway.Config{Auth: true})}
	writer, _ := env.token("team/vision", metadata.ScopeWrite)
	reader, _ := env.token("team/vision", metadata.ScopeRead)
	stranger, _ := env.token("other", metadata.ScopeAdmin)
	pkg := "/api/v4/projects/team%2Fvision/packages/ml_models/"
	mlflow := "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow/"
	art := "/api/v4/projects/team%2Fvision/ml/mlflow/api/2.0/mlflow-artifacts/artifacts/"

	// A real file and run to aim at.
	auth := bearer(writer)
	gatewaytest.WantStatus(t, env.putAs(env.Srv.URL+pkg+"m/1.0.0/files/a.bin", []byte("0123456789"), auth), http.StatusCreated)
	r := env.mlflowPostAs(env.mlflowPrefix("team/vision"), "experiments/create", `{"name": "e"}`, auth)
	gatewaytest.WantStatus(t, r, http.StatusOK)
	var exp struct {
		ExperimentID string `json:"experiment_id"`
	}
	r.JSON(t, &exp)
	r = env.mlflowPostAs(env.mlflowPrefix("team/vision"), "runs/create", `{"experiment_id": "`+exp.ExperimentID+`"}`, auth)
	var run struct {
		Run struct {
			Info struct {
				RunID string `json:"run_id"`
			} `json:"info"`
		} `json:"run"`
	}
	r.JSON(t, &run)
	runRoot := art + exp.ExperimentID + "/" + run.Run.Info.RunID + "/artifacts/"
	r = env.mlflowPostAs(env.mlflowPrefix("team/vision"), "runs/search", `{"experiment_ids": ["`+exp.ExperimentID+`"], "max_results": 1}`, auth)
	gatewaytest.WantStatus(t, r, http.StatusOK)

	bad := []int{http.StatusBadRequest}
	notFoundOrBad := []int{http.StatusBadRequest, http.StatusNotFound}
	var attacks []attack
	for _, p := range []string{"../x", "a/../../x", "%2e%2e/x", "a/%2e%2e/%2e%2e/x", "..%2Fx", "a%2F..%2F..%2Fx", `..\x`,
		"a\\..\\x", "%2Fetc%2Fpasswd", "/etc/passwd", "a%00b", "%c0%ae%c0%ae/x", "a/%ff%fe", "./x", "a//b",
		strings.Repeat("a/", 600) + "x", strings.Repeat("s", 256)} {
		attacks = append(attacks,
			attack{"package path " + p, http.MethodPut, pkg + "m/1.0.0/files/" + p, auth, "x", append(bad, http.StatusNotFound)},
			attack{"artifact path " + p, http.MethodPut, runRoot + p, auth, "x", notFoundOrBad},
			attack{"artifact read " + p, http.MethodGet, runRoot + p, auth, "", notFoundOrBad})
	}
	attacks = append(attacks,
		attack{"model name traversal", http.MethodPut, pkg + "..%2F..%2Fetc/1.0.0/files/x", auth, "x", bad},
		attack{"project traversal", http.MethodPut, "/api/v4/projects/..%2F..%2Fetc/packages/ml_models/m/1.0.0/files/x", auth, "x", notFoundOrBad},
		attack{"range past the end", http.MethodGet, pkg + "m/1.0.0/files/a.bin", map[string]string{"Authorization": "Bearer " + writer, "Range": "bytes=100-200"}, "",
			[]int{http.StatusRequestedRangeNotSatisfiable}},
		attack{"empty suffix range", http.MethodGet, pkg + "m/1.0.0/files/a.bin", map[string]string{"Authorization": "Bearer " + writer, "Range": "bytes=-0"}, "",
			[]int{http.StatusRequestedRangeNotSatisfiable}},
		attack{"deeply nested JSON", http.MethodPost, mlflow + "runs/search", auth, `{"filter": ` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, bad},
		attack{"JSON of the wrong shape", http.MethodPost, mlflow + "runs/log-batch", auth, `{"run_id": 7, "metrics": "x"}`, bad},
		attack{"oversized JSON", http.MethodPost, mlflow + "runs/log-batch", auth, `{"run_id": "` + strings.Repeat("a", 17<<20) + `"}`,
			[]int{http.StatusBadRequest, http.StatusRequestEntityTooLarge}},
		attack{"page token of another query", http.MethodPost, mlflow + "runs/search", auth,
			`{"experiment_ids": ["` + exp.ExperimentID + `"], "filter": "metrics.x > 1", "page_token": "eyJxIjoiMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIiwibyI6MX0"}`, bad},
		attack{"another project's token", http.MethodGet, pkg + "m/1.0.0/files/a.bin", bearer(stranger), "", []int{http.StatusNotFound}},
		attack{"read token writing", http.MethodPut, pkg + "m/1.0.0/files/b.bin", bearer(reader), "x", []int{http.StatusForbidden}},
		attack{"read token deleting", http.MethodDelete, pkg + "m/1.0.0/files/a.bin", bearer(reader), "", []int{http.StatusForbidden}},
		attack{"no token", http.MethodGet, pkg + "m/1.0.0/files/a.bin", nil, "", []int{http.StatusUnauthorized}},
		attack{"garbage token", http.MethodGet, pkg + "m/1.0.0/files/a.bin", map[string]string{"Authorization": "Bearer ☃" + strings.Repeat("%", 5000)}, "", []int{http.StatusUnauthorized}},
		attack{"basic auth without a password", http.MethodGet, pkg + "m/1.0.0/files/a.bin", map[string]string{"Authorization": "Basic Og=="}, "", []int{http.StatusUnauthorized}},
	)
	for _, a := range attacks {
		var body io.Reader
		if a.body != "" {
			body = strings.NewReader(a.body)
		}
		req, err := http.NewRequest(a.method, env.Srv.URL+"/", body)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = a.path // sent exactly as written, escapes included
		req.Header.Set("Content-Type", "application/json")
		for k, v := range a.header {
			req.Header.Set(k, v)
		}
		resp, err := env.Srv.Client().Do(req)
		if err != nil {
			t.Errorf("%s: %v", a.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !containsInt(a.want, resp.StatusCode) {
			t.Errorf("%s: %d %.200s, want one of %v", a.name, resp.StatusCode, b, a.want)
		}
		if leaks.Match(b) {
			t.Errorf("%s: the answer leaks internals: %.300s", a.name, b)
		}
	}

	// The file the traversals aimed around is still the only one, unchanged.
	got := env.getAs(env.Srv.URL+pkg+"m/1.0.0/files", auth)
	if !strings.Contains(string(got.Body), `"a.bin"`) || strings.Count(string(got.Body), `"path"`) != 1 {
		t.Fatalf("package files after the attacks: %s", got.Body)
	}

	// Framing no client library would send: raw bytes on the socket.
	addr := strings.TrimPrefix(env.Srv.URL, "http://")
	for _, c := range []struct {
		name, request string
		want          []int
	}{
		{"negative Content-Length", "PUT " + pkg + "m/1.0.0/files/n.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer + "\r\nContent-Length: -5\r\n\r\n", bad},
		{"two Content-Lengths", "PUT " + pkg + "m/1.0.0/files/n.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer + "\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", bad},
		// net/http lets Transfer-Encoding override Content-Length (RFC 9112 §6.3) and drops the latter, so
		// the chunked body is what is stored; no proxy in front can read the request another way.
		{"Content-Length and chunked", "PUT " + pkg + "m/1.0.0/files/te.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", []int{http.StatusBadRequest, http.StatusCreated}},
		{"a lying Content-Length", "PUT " + pkg + "m/1.0.0/files/lie.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + writer + "\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort", nil},
		{"oversized headers", "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", []int{http.StatusRequestHeaderFieldsTooLarge, http.StatusBadRequest}},
		{"a path that is not a path", "GET http://evil.example/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", []int{http.StatusBadRequest, http.StatusNotFound, http.StatusUnauthorized}},
	} {
		if c.want == nil {
			// The body never completes: the server must not store anything, whatever it answers
			// when the connection closes.
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.WriteString(conn, c.request)
			_ = conn.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, conn)
			conn.Close()
			if r := env.getAs(env.Srv.URL+pkg+"m/1.0.0/files/lie.bin", auth); r.Status != http.StatusNotFound {
				t.Errorf("%s: a truncated body was stored: %d", c.name, r.Status)
			}
			continue
		}
		status, body := rawExchange(t, addr, c.request)
		if !containsInt(c.want, status) {
			t.Errorf("%s: %d %.200s, want one of %v", c.name, status, body, c.want)
		}
		if leaks.MatchString(body) {
			t.Errorf("%s: the answer leaks internals: %.300s", c.name, body)
		}
	}
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
