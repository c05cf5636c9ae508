package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"

	"github.com/mlgate/mlgate/metadata"
)

type requestIDKey struct{}

// RequestID returns the id WithRequestID gave r, or "-".
func RequestID(r *http.Request) string {
	if id, ok := r.Context().Value(requestIDKey{}).(string); ok {
		return id
	}
	return "-"
}

// WithRequestID tags every request with a random id, echoed in X-Request-Id so users can quote it.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

type principalKey struct{}

// Principal is the token that authenticated the request, or nil when auth is off (or the route is
// public).
func Principal(ctx context.Context) *metadata.Token {
	t, _ := ctx.Value(principalKey{}).(*metadata.Token)
	return t
}

// WithPrincipal records the token that authenticated a request.
func WithPrincipal(ctx context.Context, tok *metadata.Token) context.Context {
	return context.WithValue(ctx, principalKey{}, tok)
}

type escapedPathKey struct{}

// WithEscapedPath records the path of r as its client sent it (escaped), for logs. Routing that
// rewrites URL.Path to its escaped form records it first, since URL.EscapedPath would then escape it
// again ("a%2Fb" becoming "a%252Fb").
func WithEscapedPath(ctx context.Context, r *http.Request) context.Context {
	return context.WithValue(ctx, escapedPathKey{}, r.URL.EscapedPath())
}

// EscapedPath is the path of r as its client sent it, as the access log shows it.
func EscapedPath(r *http.Request) string {
	if p, ok := r.Context().Value(escapedPathKey{}).(string); ok {
		return p
	}
	return r.URL.EscapedPath()
}

type storageFullKey struct{}

// WithStorageFullHook makes every 507 answered to a request of ctx call full, so that the keeper of the
// data directory's free space learns that a write found it full.
func WithStorageFullHook(ctx context.Context, full func()) context.Context {
	return context.WithValue(ctx, storageFullKey{}, full)
}

func storageFull(ctx context.Context) {
	if full, ok := ctx.Value(storageFullKey{}).(func()); ok && full != nil {
		full()
	}
}

// RequestFacts is what the inner layers of a request learn about it that the access log and metrics,
// outside them, report: the middleware that logs creates it, authentication fills it in.
type RequestFacts struct {
	// TokenID is the public id of the token that authenticated the request, "" without one.
	TokenID string
}

type factsKey struct{}

// WithRequestFacts makes f the RequestFacts of ctx's request.
func WithRequestFacts(ctx context.Context, f *RequestFacts) context.Context {
	return context.WithValue(ctx, factsKey{}, f)
}

// Facts returns the RequestFacts of ctx's request; nil when no middleware created them.
func Facts(ctx context.Context) *RequestFacts {
	f, _ := ctx.Value(factsKey{}).(*RequestFacts)
	return f
}
