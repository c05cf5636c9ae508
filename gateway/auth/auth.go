// Package auth holds mlgate's access tokens: how a secret is drawn and stored, how a request carries
// one, and how a secret becomes a principal. The middleware that applies it to every route is the
// gateway's; the web UI uses it for its login and session cookie.
package auth

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

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// A secret is "mlg_" followed by 32 random bytes in unpadded base64url. The store keeps only its SHA-256:
// with 256 bits of entropy nobody can guess a secret or invert the hash, so a slow password hash (bcrypt,
// argon2) would buy nothing, while a plain digest lets a request find its token with one index lookup and
// no per-request cost. The prefix makes leaked secrets easy to recognise (and to scan for).
const secretPrefix = "mlg_"

// Realm is sent with every 401: Basic, because that is the form every client (and curl -u) can send.
const Realm = `Basic realm="mlgate"`

// HashSecret is what the store indexes a token by: lowercase hex SHA-256 of the whole secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// TokenRequest describes a token to issue.
type TokenRequest struct {
	ProjectPath string // the one project the token reaches; it need not exist yet; "" with Instance
	Instance    bool   // an instance token: it administers the server and reaches no project
	Scope       metadata.TokenScope
	Name        string
	TTL         time.Duration // 0: never expires
}

// IssueToken draws a new token, stores its hash and returns the secret, which exists nowhere else
// afterwards. Errors are the store's: ErrInvalid for a bad project path, scope or name (an instance token
// with a project path included), or a negative TTL.
func IssueToken(ctx context.Context, store metadata.Store, req TokenRequest) (secret string, tok *metadata.Token, err error) {
	if req.TTL < 0 {
		return "", nil, fmt.Errorf("token expiry must be positive: %w", metadata.ErrInvalid)
	}
	var raw [32]byte
	var id [8]byte
	for attempt := 0; ; attempt++ {
		_, _ = rand.Read(raw[:])
		_, _ = rand.Read(id[:])
		secret = secretPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
		tok = &metadata.Token{
			ID:          hex.EncodeToString(id[:]),
			Name:        req.Name,
			ProjectPath: req.ProjectPath,
			Instance:    req.Instance,
			Scope:       req.Scope,
			SecretHash:  HashSecret(secret),
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

// Credentials extracts the secret a request carries; "" when it sends none. It reads Authorization:
// Bearer <token>, Authorization: Basic with the token as password (any user name: the MLflow client
// sends Basic when MLFLOW_TRACKING_USERNAME/PASSWORD are set, and Basic wins over
// MLFLOW_TRACKING_TOKEN), or GitLab's PRIVATE-TOKEN header. A malformed or unsupported Authorization
// header is httpapi.ErrUnauthenticated.
func Credentials(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, _ := strings.Cut(strings.TrimSpace(h), " ")
		value = strings.TrimSpace(value)
		switch {
		case strings.EqualFold(scheme, "Bearer") && value != "":
			return value, nil
		case strings.EqualFold(scheme, "Basic"):
			raw, err := base64.StdEncoding.DecodeString(value)
			if err != nil {
				return "", fmt.Errorf("%w: malformed Basic credentials", httpapi.ErrUnauthenticated)
			}
			user, pass, _ := strings.Cut(string(raw), ":")
			if pass == "" {
				pass = user // `curl -u <token>:` puts the token in the user name
			}
			if pass == "" {
				return "", fmt.Errorf("%w: empty Basic credentials", httpapi.ErrUnauthenticated)
			}
			return pass, nil
		default:
			return "", fmt.Errorf("%w: unsupported Authorization scheme %q: use Bearer <token> or Basic with the token as password",
				httpapi.ErrUnauthenticated, scheme)
		}
	}
	return strings.TrimSpace(r.Header.Get("PRIVATE-TOKEN")), nil
}

// Authenticate finds the token of secret and checks that it is usable now. A missing, unknown, revoked
// or expired token is httpapi.ErrUnauthenticated. Store failures other than a miss stay internal
// errors: a broken database must not look like a bad password.
func Authenticate(ctx context.Context, store metadata.Store, secret string) (*metadata.Token, error) {
	if secret == "" {
		return nil, fmt.Errorf("%w: this server requires a token: send Authorization: Bearer <token>, "+
			"Basic with the token as password, or PRIVATE-TOKEN: <token>", httpapi.ErrUnauthenticated)
	}
	return AuthenticateHash(ctx, store, HashSecret(secret))
}

// AuthenticateHash is Authenticate for a credential that carries the hash of a secret instead of the
// secret (the short-lived bearers of the OCI token endpoint, which were issued for a secret the
// client proved it had): the token must still exist and be usable now, so revoking it ends its bearers
// too. Errors as Authenticate's.
func AuthenticateHash(ctx context.Context, store metadata.Store, hash string) (*metadata.Token, error) {
	tok, err := store.TokenBySecretHash(ctx, hash)
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		return nil, fmt.Errorf("%w: invalid token", httpapi.ErrUnauthenticated)
	case err != nil:
		return nil, fmt.Errorf("looking up token: %w", err)
	case tok.Revoked:
		return nil, fmt.Errorf("%w: token %s has been revoked", httpapi.ErrUnauthenticated, tok.ID)
	case tok.Expired(time.Now()):
		return nil, fmt.Errorf("%w: token %s expired at %s", httpapi.ErrUnauthenticated, tok.ID, tok.ExpiresAt.Format(time.RFC3339))
	}
	return tok, nil
}

// ReadOnly reports whether a token's scope allows only reads.
func ReadOnly(tok *metadata.Token) bool { return tok.Scope < metadata.ScopeWrite }

// ErrReadOnly is the 403 a read-only token gets for a write.
func ErrReadOnly(tok *metadata.Token) error {
	return fmt.Errorf("%w: token %s has scope %s, which allows only reads", httpapi.ErrPermissionDenied, tok.ID, tok.Scope)
}
