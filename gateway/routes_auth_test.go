package gateway_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/gatewaytest"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// readOnlyPOSTs are the MLflow RPCs sent as POST that change nothing, so a read token may call them.
// Kept here on purpose, apart from the middleware's own list: adding one is a security decision this
// test must be told about.
var readOnlyPOSTs = map[string]bool{
	"experiments/search": true, "experiments/search-datasets": true, "runs/search": true,
	"registered-models/get-latest-versions": true, "logged-models/search": true,
}

// sampleParam fills a path parameter of a route pattern with a value of the right shape.
func sampleParam(pattern, name, project string) string {
	switch name {
	case "project":
		return strings.ReplaceAll(project, "/", "%2F")
	case "name":
		return "m"
	case "iid":
		return "1"
	case "semver":
		return "1.0.0"
	case "model_id":
		return "m-00000000000000000000000000000001"
	case "tag_key":
		return "k"
	case "file":
		return "ui.css"
	case "id":
		return "0123456789abcdef"
	case "rpc":
		if strings.Contains(pattern, "/api/3.0/") {
			return "traces/search"
		}
		return "no-such-rpc"
	case "rest":
		switch {
		case strings.Contains(pattern, "/generic/"):
			return "ml_experiment_1/1/a.txt"
		case strings.Contains(pattern, "mlflow-artifacts"):
			return "artifacts/1/0123456789abcdef0123456789abcdef/artifacts/a.txt"
		case strings.HasPrefix(pattern, "/hf/"):
			return project + "/m/resolve/main/a.txt"
		}
		return "m/1.0.0/files/a.txt"
	}
	return "x"
}

var routeParam = regexp.MustCompile(`[:*]([a-z_]+)|\{([a-z_]+)(\.\.\.)?\}`)

// fill replaces the parameters of an httprouter pattern or an RPC path with sample values.
func fill(pattern, project string) string {
	return routeParam.ReplaceAllStringFunc(pattern, func(p string) string {
		m := routeParam.FindStringSubmatch(p)
		return sampleParam(pattern, m[1]+m[2], project)
	})
}

// probe is one request to check: a concrete URL path of a route and what the route declares.
type probe struct {
	method, path string
	access       httpapi.Access
	writes       bool // the request may change state: a read token must be refused
	scoped       bool // the route belongs to a project: another project's token must get 404
}

func probesOf(s *gateway.Server) []probe {
	var out []probe
	for _, rt := range s.Routes() {
		project := "team/vision"
		if !strings.Contains(rt.Pattern, ":project") {
			project = "default"
		}
		p := probe{method: rt.Method, path: fill(rt.Pattern, project), access: rt.Access,
			writes: rt.Method != http.MethodGet && rt.Method != http.MethodHead,
			scoped: rt.Access != httpapi.AccessInstance && rt.Pattern != "/health"}
		out = append(out, p)
		if !strings.HasSuffix(rt.Pattern, "/api/2.0/mlflow/*rpc") {
			continue
		}
		// Behind the catch-all: every RPC the dispatcher serves, with this route's method and prefix.
		for _, rpc := range s.MLflowRPCs() {
			if rpc.Method != rt.Method {
				continue
			}
			q := p
			q.path = strings.TrimSuffix(p.path, "no-such-rpc") + fill(rpc.Pattern, project)
			q.writes = p.writes && !readOnlyPOSTs[rpc.Pattern]
			out = append(out, q)
		}
	}
	return out
}

// Every route the router serves, and every MLflow RPC behind the catch-alls, is called with no
// credentials, a read token, another project's token, an admin token and read and admin instance
// tokens, and must answer as its declared access says: project routes refuse instance tokens (403),
// instance routes refuse project tokens of every scope (403). A route cannot be registered without an access decision (Registrar.Handle
// takes one), and this test checks the middleware enforces it.
func TestEveryRouteEnforcesItsDeclaredAccess(t *testing.T) {
	env := &authEnv{gatewaytest.New(t, gateway.Config{Auth: true,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("# metrics\n")) })})}
	tokens := map[string]map[string]string{} // "<project> <kind>" → header
	for _, project := range []string{"team/vision", "default", "other"} {
		read, _ := env.token(project, metadata.ScopeRead)
		admin, _ := env.token(project, metadata.ScopeAdmin)
		tokens[project+" read"], tokens[project+" admin"] = bearer(read), bearer(admin)
	}
	for _, scope := range []metadata.TokenScope{metadata.ScopeRead, metadata.ScopeAdmin} {
		secret, _, err := auth.IssueToken(t.Context(), env.Store, auth.TokenRequest{Instance: true, Scope: scope, Name: "ops"})
		if err != nil {
			t.Fatal(err)
		}
		tokens["instance "+scope.String()] = bearer(secret)
	}
	probes := probesOf(env.Gateway)
	counts := map[httpapi.Access]int{}
	for _, p := range probes {
		counts[p.access]++
	}
	if len(probes) < 150 || counts[httpapi.AccessPublic] == 0 || counts[httpapi.AccessSession] == 0 || counts[httpapi.AccessToken] < 100 ||
		counts[httpapi.AccessInstance] < 5 {
		t.Fatalf("only %d routes walked (%v): the route list is not the router's", len(probes), counts)
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(p probe, header map[string]string) gatewaytest.Response {
		t.Helper()
		var body *strings.Reader
		if p.writes {
			body = strings.NewReader("{}")
		}
		req, err := http.NewRequest(p.method, env.Srv.URL+p.path, nil)
		if body != nil {
			req, err = http.NewRequest(p.method, env.Srv.URL+p.path, body)
			req.Header.Set("Content-Type", "application/json")
		}
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", p.method, p.path, err)
		}
		resp.Body.Close()
		return gatewaytest.Response{Status: resp.StatusCode, Header: resp.Header}
	}
	denied := func(status int) bool { return status == http.StatusUnauthorized || status == http.StatusForbidden }

	for _, p := range probes {
		what := p.method + " " + p.path + " (" + p.access.String() + ")"
		project := "team/vision"
		if !strings.HasPrefix(p.path, "/api/v4/projects/") && !strings.HasPrefix(p.path, "/ui/projects/") {
			project = "default"
		}
		anon := send(p, nil)
		if anon.Status >= 500 {
			t.Errorf("%s without credentials: %d", what, anon.Status)
		}
		switch p.access {
		case httpapi.AccessPublic:
			// Public forms still check their CSRF field (403); what they never ask for is a login.
			if anon.Status == http.StatusUnauthorized || strings.HasPrefix(anon.Header.Get("Location"), "/ui/login") {
				t.Errorf("%s: public route asked for a login: %d %s", what, anon.Status, anon.Header.Get("Location"))
			}
			continue
		case httpapi.AccessSession:
			if p.method != http.MethodGet {
				if anon.Status != http.StatusUnauthorized {
					t.Errorf("%s without a session: %d, want 401", what, anon.Status)
				}
				continue // a form post needs the session's CSRF cookie too: nothing more to learn here
			}
			if anon.Status != http.StatusFound || !strings.HasPrefix(anon.Header.Get("Location"), "/ui/login") {
				t.Errorf("%s without a session: %d %q, want a redirect to the login page", what, anon.Status, anon.Header.Get("Location"))
			}
			// Pages also take a token header (scripts and curl); it is never ambient, so CSRF cannot use it.
			if r := send(p, tokens[project+" read"]); denied(r.Status) || r.Status == http.StatusFound || r.Status >= 500 {
				t.Errorf("%s with a read token: %d", what, r.Status)
			}
			if strings.HasPrefix(p.path, "/ui/projects/") {
				if r := send(p, tokens["other admin"]); r.Status != http.StatusNotFound {
					t.Errorf("%s with another project's token: %d, want 404", what, r.Status)
				}
			}
			continue
		}
		if anon.Status != http.StatusUnauthorized || anon.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s without credentials: %d, want 401 with WWW-Authenticate", what, anon.Status)
		}
		if p.access == httpapi.AccessInstance {
			for _, kind := range []string{"team/vision read", "team/vision admin", "default admin", "other admin"} {
				if r := send(p, tokens[kind]); r.Status != http.StatusForbidden {
					t.Errorf("%s with project token %s: %d, want 403", what, kind, r.Status)
				}
			}
			read := send(p, tokens["instance read"])
			switch {
			case p.writes && read.Status != http.StatusForbidden:
				t.Errorf("%s with a read instance token: %d, want 403", what, read.Status)
			case !p.writes && (denied(read.Status) || read.Status >= 500):
				t.Errorf("%s with a read instance token: %d, want it allowed", what, read.Status)
			}
			if r := send(p, tokens["instance admin"]); denied(r.Status) || r.Status >= 500 {
				t.Errorf("%s with an admin instance token: %d", what, r.Status)
			}
			continue
		}
		if p.access == httpapi.AccessToken {
			if r := send(p, tokens["instance admin"]); r.Status != http.StatusForbidden {
				t.Errorf("%s with an instance token: %d, want 403 (instance tokens reach no project)", what, r.Status)
			}
		}
		read := send(p, tokens[project+" read"])
		switch {
		case p.writes && read.Status != http.StatusForbidden:
			t.Errorf("%s with a read token: %d, want 403", what, read.Status)
		case !p.writes && denied(read.Status):
			t.Errorf("%s with a read token: %d, want it allowed", what, read.Status)
		}
		if p.scoped {
			if other := send(p, tokens["other admin"]); other.Status != http.StatusNotFound {
				t.Errorf("%s with another project's admin token: %d, want 404", what, other.Status)
			}
		}
		if admin := send(p, tokens[project+" admin"]); denied(admin.Status) || admin.Status >= 500 {
			t.Errorf("%s with an admin token: %d", what, admin.Status)
		}
	}
}
