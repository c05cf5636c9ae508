package gateway

import (
	"errors"
	"net/http"
	"strings"

	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/hf"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/oci"
	"github.com/mlgate/mlgate/gateway/ui"
	"github.com/mlgate/mlgate/metadata"
)

// withAuth requires a valid token on every route except /health and /ready and puts it in the request context.
// The token's project is checked where the project is resolved (httpapi.ResolveProject), which answers 404 for any
// other project; the scope is checked here, by method, so that no route can forget it.
//
// On the OCI routes (/v2/) a 401 carries the Bearer challenge that sends clients to the token endpoint,
// whose bearers are accepted there (and only there) besides mlgate tokens; errors use the OCI body.
// On the Hugging Face routes (/hf/) errors use the Hub's shape (hf.WriteError), where a 401 without
// credentials reads as a missing repository, as the Hub answers for a private one.
//
// Credentials come from Authorization: Bearer <token>, Authorization: Basic with the token as password (any
// user name: the MLflow client sends Basic when MLFLOW_TRACKING_USERNAME/PASSWORD are set, and Basic wins
// over MLFLOW_TRACKING_TOKEN), or GitLab's PRIVATE-TOKEN header. Missing, unknown, expired or revoked
// tokens are 401 UNAUTHENTICATED with WWW-Authenticate; a read token on a write is 403 PERMISSION_DENIED.
//
// Multipart part uploads (PUT …/mlflow-artifacts/mpu/part/…) without credentials pass through: the MLflow
// client sends them without its Authorization header, so their handler must verify the URL's own
// short-lived signature.
func (s *Server) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.EscapedPath()
		// The UI authenticates itself (a session cookie, a login page that must be reachable without one).
		if path == "/health" || path == "/ready" || ui.IsUIPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		// The OCI token endpoint exchanges credentials for a bearer: it checks them itself, and answers
		// a client that sends none with an anonymous bearer, as the token protocol expects.
		if path == oci.TokenPath {
			next.ServeHTTP(w, r)
			return
		}
		secret, err := auth.Credentials(r)
		if err == nil && secret == "" && r.Method == http.MethodPut && isSignedPartPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		ociPath := oci.IsPath(path)
		var tok *metadata.Token
		switch {
		case err != nil:
		case ociPath && secret != "":
			// A bearer of the token endpoint, or an mlgate token sent directly.
			tok, err = s.oci.Authenticate(r.Context(), secret)
		default:
			tok, err = auth.Authenticate(r.Context(), s.store, secret)
		}
		if err == nil && auth.ReadOnly(tok) && requestWrites(r.Method, path) {
			err = auth.ErrReadOnly(tok)
		}
		if err != nil {
			if errors.Is(err, httpapi.ErrUnauthenticated) {
				if ociPath {
					w.Header().Set("WWW-Authenticate", oci.Challenge(r, path))
				} else {
					w.Header().Set("WWW-Authenticate", auth.Realm)
				}
			}
			if ociPath {
				oci.WriteError(w, r, s.log, err)
			} else if hf.IsPath(path) {
				hf.WriteError(w, r, s.log, err)
			} else if isMLflowPath(path) {
				httpapi.WriteMLflowError(w, r, s.log, err)
			} else {
				httpapi.WriteError(w, r, s.log, err)
			}
			return
		}
		if f := httpapi.Facts(r.Context()); f != nil {
			f.TokenID = tok.ID
		}
		next.ServeHTTP(w, r.WithContext(httpapi.WithPrincipal(r.Context(), tok)))
	})
}

// readOnlyMLflowPOSTs are the MLflow RPCs the client sends as POST although they change nothing; a read
// token may call them, or it could not search runs. Every other non-GET request counts as a write.
var readOnlyMLflowPOSTs = map[string]bool{
	"experiments/search":                    true,
	"experiments/search-datasets":           true,
	"runs/search":                           true,
	"registered-models/get-latest-versions": true,
	"logged-models/search":                  true,
}

// requestWrites reports whether a request may change state, by method (GET and HEAD read) and, for POST,
// by the MLflow RPC it names.
func requestWrites(method, escapedPath string) bool {
	switch method {
	case http.MethodGet, http.MethodHead:
		return false
	case http.MethodPost:
		rpc, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow/")
		return !ok || !readOnlyMLflowPOSTs[strings.Trim(rpc, "/")]
	}
	return true
}

// mlflowRoute returns what follows api (e.g. "/api/2.0/mlflow/") on the unprefixed routes or under a
// project's /ml/mlflow prefix, and whether the path is such a route.
func mlflowRoute(escapedPath, api string) (string, bool) {
	if rest, ok := strings.CutPrefix(escapedPath, api); ok {
		return rest, true
	}
	rest, ok := strings.CutPrefix(escapedPath, "/api/v4/projects/")
	if !ok {
		return "", false
	}
	_, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	return strings.CutPrefix(rest, "ml/mlflow"+api)
}

// isMLflowPath reports whether errors on path use MLflow's {"error_code","message"} body.
func isMLflowPath(escapedPath string) bool {
	for _, api := range []string{"/api/2.0/mlflow/", "/api/2.0/mlflow-artifacts/", "/api/3.0/mlflow/"} {
		if _, ok := mlflowRoute(escapedPath, api); ok {
			return true
		}
	}
	return false
}

// mlflowPartPathPrefix is where the mlflow-artifacts proxy serves multipart part uploads; those URLs carry
// their own signature instead of the client's credentials.
const mlflowPartPathPrefix = "mpu/part/"

func isSignedPartPath(escapedPath string) bool {
	rest, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow-artifacts/")
	return ok && strings.HasPrefix(rest, mlflowPartPathPrefix)
}
