package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mlgate/mlgate/metadata"
)

// Tokens.
//
// A secret is "mlg_" followed by 32 random bytes in unpadded base64url. The store keeps only its SHA-256:
// with 256 bits of entropy nobody can guess a secret or invert the hash, so a slow password hash (bcrypt,
// argon2) would buy nothing, while a plain digest lets a request find its token with one index lookup and
// no per-request cost. The prefix makes leaked secrets easy to recognise (and to scan for).
const tokenSecretPrefix = "mlg_"

// HashTokenSecret is what the store indexes a token by: lowercase hex SHA-256 of the whole secret.
func HashTokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenRequest describes a token to issue.
type TokenRequest struct {
	ProjectPath string // the one project the token reaches; it need not exist yet
	Scope       metadata.TokenScope
	Name        string
	TTL         time.Duration // 0: never expires
}

// IssueToken draws a new token, stores its hash and returns the secret, which exists nowhere else
// afterwards. Errors are the store's: ErrInvalid for a bad project path, scope or name.
func IssueToken(ctx context.Context, store metadata.Store, req TokenRequest) (secret string, tok *metadata.Token, err error) {
	if req.TTL < 0 {
		return "", nil, fmt.Errorf("token expiry must be positive: %w", metadata.ErrInvalid)
	}
	var raw [32]byte
	var id [8]byte
	for attempt := 0; ; attempt++ {
		_, _ = rand.Read(raw[:])
		_, _ = rand.Read(id[:])
		secret = tokenSecretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		tok = &metadata.Token{
			ID:          hex.EncodeToString(id[:]),
			Name:        req.Name,
			ProjectPath: req.ProjectPath,
			Scope:       req.Scope,
			SecretHash:  HashTokenSecret(secret),
			CreatedAt:   time.Now().UTC().Truncate(time.Millisecond),
		}
		if req.TTL > 0 {
			tok.ExpiresAt = tok.CreatedAt.Add(req.TTL)
		}
		err = store.CreateToken(ctx, tok)
		// A 64-bit id can collide, if only in theory: draw again rather than fail.
		if !errors.Is(err, metadata.ErrExists) || attempt == 2 {
			break
		}
	}
	if err != nil {
		return "", nil, err
	}
	return secret, tok, nil
}

type principalKey struct{}

// principal is the token that authenticated the request, or nil when auth is off (or the route is public).
func principal(ctx context.Context) *metadata.Token {
	t, _ := ctx.Value(principalKey{}).(*metadata.Token)
	return t
}

// authRealm is sent with every 401: Basic, because that is the form every client (and curl -u) can send.
const authRealm = `Basic realm="mlgate"`

// withAuth requires a valid token on every route except /health and puts it in the request context.
// The token's project is checked where the project is resolved (resolveProject), which answers 404 for any
// other project; the scope is checked here, by method, so that no route can forget it.
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
		if path == "/health" || isUIPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		secret, err := tokenSecret(r)
		if err == nil && secret == "" && r.Method == http.MethodPut && isSignedPartPath(path) {
			next.ServeHTTP(w, r)
			return
		}
		var tok *metadata.Token
		if err == nil {
			tok, err = s.authenticate(r.Context(), secret)
		}
		if err == nil && tok.Scope < metadata.ScopeWrite && requestWrites(r.Method, path) {
			err = fmt.Errorf("%w: token %s has scope %s, which allows only reads", ErrPermissionDenied, tok.ID, tok.Scope)
		}
		if err != nil {
			if errors.Is(err, ErrUnauthenticated) {
				w.Header().Set("WWW-Authenticate", authRealm)
			}
			if isMLflowPath(path) {
				writeMLflowError(w, r, s.log, err)
			} else {
				writeError(w, r, s.log, err)
			}
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, tok)))
	})
}

// tokenSecret extracts the secret from the request; "" when none is sent. A malformed Authorization
// header is ErrUnauthenticated.
func tokenSecret(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, _ := strings.Cut(strings.TrimSpace(h), " ")
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(scheme, "Bearer") && value != "":
			return value, nil
		case strings.EqualFold(scheme, "Basic"):
			raw, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return "", fmt.Errorf("%w: malformed Basic credentials", ErrUnauthenticated)
			}
			user, pass, _ := strings.Cut(string(raw), ":")
			if pass == "" {
				pass = user // `curl -u <token>:` puts the token in the user name
			}
			if pass == "" {
				return "", fmt.Errorf("%w: empty Basic credentials", ErrUnauthenticated)
			}
			return pass, nil
		default:
			return "", fmt.Errorf("%w: unsupported Authorization scheme %q: use Bearer <token> or Basic with the token as password",
				ErrUnauthenticated, scheme)
		}
	}
	return strings.TrimSpace(r.Header.Get("PRIVATE-TOKEN")), nil
}

// authenticate finds the token of secret and checks that it is usable now. Store failures other than a
// miss stay internal errors: a broken database must not look like a bad password.
func (s *Server) authenticate(ctx context.Context, secret string) (*metadata.Token, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: this server requires a token: send Authorization: Bearer <token>, "+
			"Basic with the token as password, or PRIVATE-TOKEN: <token>", ErrUnauthenticated)
	}
	tok, err := s.store.TokenBySecretHash(ctx, HashTokenSecret(secret))
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return nil, fmt.Errorf("%w: invalid token", ErrUnauthenticated)
	case err != nil:
		return nil, fmt.Errorf("looking up token: %w", err)
	case tok.Revoked:
		return nil, fmt.Errorf("%w: token %s has been revoked", ErrUnauthenticated, tok.ID)
	case tok.Expired(time.Now()):
		return nil, fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	}
	return tok, nil
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
	_, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow/")
	if !ok {
		_, ok = mlflowRoute(escapedPath, "/api/2.0/mlflow-artifacts/")
	}
	return ok
}

// mlflowPartPathPrefix is where the mlflow-artifacts proxy serves multipart part uploads; those URLs carry
// their own signature instead of the client's credentials.
const mlflowPartPathPrefix = "mpu/part/"

func isSignedPartPath(escapedPath string) bool {
	rest, ok := mlflowRoute(escapedPath, "/api/2.0/mlflow-artifacts/")
	return ok && strings.HasPrefix(rest, mlflowPartPathPrefix)
}
