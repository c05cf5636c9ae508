package oci

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mlgate/mlgate/gateway/auth"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/signing"
	"github.com/mlgate/mlgate/metadata"
)

// TokenPath is the token endpoint that the Bearer challenge's realm names. It lives behind the /v2/
// catch-all (a repository name has at least two segments, so no repository path is /v2/token), and it
// authenticates its own credentials: the gateway's auth middleware lets it through.
const TokenPath = "/v2/token"

// BearerTTL is how long a bearer from the token endpoint is accepted. Clients fetch a new one when a
// request answers 401, and a download that started in time finishes whatever its length: the bearer is
// checked when a request arrives, never while bytes flow.
const BearerTTL = 15 * time.Minute

// A bearer is bearerPrefix and, in unpadded base64url, a random nonce followed by the AES-256-GCM
// sealing of: the expiry (Unix seconds, 8 bytes big-endian) and the stored hash of the mlgate token the
// client presented (empty for an anonymous bearer). Sealing rather than signing keeps the hash, the
// store's index of the token, out of the client's hands. Each use looks the token up by that hash, so a
// revoked or expired mlgate token ends its bearers at once; the key derives from the instance's signing
// secret, so every replica accepts every replica's bearers.
const (
	bearerPrefix  = "mlgoci_"
	bearerPurpose = "mlgate oci bearer aes-256-gcm v1"
)

// Bearers issues and opens the token endpoint's bearers. It is safe for concurrent use.
type Bearers struct {
	aead cipher.AEAD
}

// NewBearers derives the bearer key from the instance's signing secret.
func NewBearers(secret *signing.Secret) *Bearers {
	block, err := aes.NewCipher(secret.Key(bearerPurpose, 32))
	if err != nil {
		panic("oci: " + err.Error()) // a 32-byte key never fails
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("oci: " + err.Error())
	}
	return &Bearers{aead: aead}
}

// IsBearer reports whether secret has the form of a bearer this package issues (not whether it is
// valid): such a secret is opened with Bearers.Open, never looked up as an mlgate token.
func IsBearer(secret string) bool { return strings.HasPrefix(secret, bearerPrefix) }

// Issue seals a bearer for the mlgate token whose stored hash is hash ("" for an anonymous bearer,
// which grants nothing) that expires at now+BearerTTL.
func (b *Bearers) Issue(hash string, now time.Time) (token string, expires time.Time) {
	expires = now.Add(BearerTTL)
	plain := binary.BigEndian.AppendUint64(nil, uint64(expires.Unix()))
	plain = append(plain, hash...)
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	_, _ = rand.Read(nonce)
	sealed := b.aead.Seal(nonce, nonce, plain, []byte(bearerPrefix))
	return bearerPrefix + base64.RawURLEncoding.EncodeToString(sealed), expires
}

// Open returns the token hash a bearer carries. A bearer that this instance did not issue, that is
// malformed or expired, or that is anonymous is httpapi.ErrUnauthenticated.
func (b *Bearers) Open(token string, now time.Time) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, bearerPrefix))
	ns := b.aead.NonceSize()
	if err != nil || len(raw) < ns {
		return "", fmt.Errorf("%w: malformed bearer token", httpapi.ErrUnauthenticated)
	}
	plain, err := b.aead.Open(nil, raw[:ns], raw[ns:], []byte(bearerPrefix))
	if err != nil || len(plain) < 8 {
		return "", fmt.Errorf("%w: bearer token not issued by this server (or its signing key changed)", httpapi.ErrUnauthenticated)
	}
	if exp := time.Unix(int64(binary.BigEndian.Uint64(plain)), 0); !now.Before(exp) {
		return "", fmt.Errorf("%w: bearer token expired at %s", httpapi.ErrUnauthenticated, exp.UTC().Format(time.RFC3339))
	}
	hash := string(plain[8:])
	if hash == "" {
		return "", fmt.Errorf("%w: anonymous bearer token: log in (oras login, docker login) with any user name and an mlgate token as password",
			httpapi.ErrUnauthenticated)
	}
	return hash, nil
}

// Authenticate turns the secret of an OCI request into its token: a bearer from the token endpoint,
// or an mlgate token sent directly (as Bearer, or as a Basic password). Errors are auth.Authenticate's.
func (a *API) Authenticate(ctx context.Context, secret string) (*metadata.Token, error) {
	if !IsBearer(secret) {
		return auth.Authenticate(ctx, a.store, secret)
	}
	hash, err := a.bearers.Open(secret, time.Now())
	if err != nil {
		return nil, err
	}
	return auth.AuthenticateHash(ctx, a.store, hash)
}

// maxTokenForm bounds the body of a POST to the token endpoint (an OAuth2 form of a few fields).
const maxTokenForm = 16 << 10

// serveToken is the token endpoint (Docker's token authentication, and its OAuth2 POST form). GET
// takes the mlgate token as the Basic password (any user name: `oras login`, `docker login`), or as a
// Bearer; POST takes grant_type=password with the token as password, or grant_type=refresh_token with
// it as refresh_token. No credentials get an anonymous bearer, which grants nothing (the spec's answer
// for public repositories, of which mlgate has none). A token that is unknown, revoked or expired is
// 401 with a Basic challenge, so that `docker login` reports wrong credentials. The bearer carries the
// mlgate token's project and scope, whatever scope the client asked for: the routes then apply them.
func (a *API) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		a.fail(w, r, fmt.Errorf("%w: the token endpoint answers GET (Basic credentials) and POST (OAuth2 form)", httpapi.ErrMethodNotAllowed))
		return
	}
	secret, err := auth.Credentials(r)
	if err == nil && r.Method == http.MethodPost {
		var form url.Values
		if form, err = readForm(r); err == nil {
			switch form.Get("grant_type") {
			case "password":
				secret = form.Get("password")
			case "refresh_token":
				secret = form.Get("refresh_token")
			default:
				err = fmt.Errorf("%w: grant_type must be password or refresh_token", httpapi.ErrBadRequest)
			}
		}
	}
	var hash string
	if err == nil && secret != "" {
		var tok *metadata.Token
		if tok, err = a.Authenticate(r.Context(), secret); err == nil {
			hash = tok.SecretHash
		}
	}
	if err != nil {
		if errors.Is(err, httpapi.ErrUnauthenticated) {
			w.Header().Set("WWW-Authenticate", auth.Realm)
		}
		a.fail(w, r, err)
		return
	}
	now := time.Now()
	token, expires := a.bearers.Issue(hash, now)
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(expires.Sub(now).Seconds()),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
}

func readForm(r *http.Request) (url.Values, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the token request: %w", httpapi.ErrBadRequest, err)
	}
	if len(body) > maxTokenForm {
		return nil, fmt.Errorf("%w: token request body over %d bytes", httpapi.ErrTooLarge, maxTokenForm)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("%w: malformed token request form", httpapi.ErrBadRequest)
	}
	return form, nil
}

// requestOrigin is scheme://host as the client reached this server, so that the realm it is sent to
// is this server as it knows it.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Challenge is the WWW-Authenticate value of a 401 on an OCI route: Bearer, with the token endpoint
// as realm, this host as service, and, when escapedPath names a valid repository, the pull scope on
// it (a name that fails validation is left out, so nothing a client sent can break the header's
// quoting).
func Challenge(r *http.Request, escapedPath string) string {
	v := `Bearer realm="` + requestOrigin(r) + TokenPath + `",service="` + r.Host + `"`
	rt := parseRoute(strings.TrimPrefix(escapedPath, "/v2"))
	if rt.name != "" && validateName(rt.name) == nil {
		v += `,scope="repository:` + rt.name + `:pull"`
	}
	return v
}
