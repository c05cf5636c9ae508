package httpapi

import "github.com/julienschmidt/httprouter"

// Access is who may call a route. Every route declares one where it is registered, so that no route
// exists without an authentication decision; a test walks the registered routes and checks that the
// middleware enforces each declared decision.
type Access int

const (
	// AccessPublic routes answer without credentials: /health, the UI's login page, static assets and
	// redirects that read nothing.
	AccessPublic Access = iota + 1
	// AccessSession routes are the web UI's pages: a session cookie, else a redirect to the login page.
	AccessSession
	// AccessToken routes are the API: a token of the route's project (a read-scope token only for
	// requests that change nothing). Multipart part uploads under it carry their own URL signature
	// instead.
	AccessToken
	// AccessInstance routes administer the whole server (/metrics, backups, token management): with auth
	// they need an instance token (a project token, whatever its scope, is 403), and a read-scope one
	// only for requests that change nothing. Without auth they answer as every route does, except that
	// backups and token management answer only loopback peers.
	AccessInstance
)

// String names the access level in test failures and logs.
func (a Access) String() string {
	switch a {
	case AccessPublic:
		return "public"
	case AccessSession:
		return "session"
	case AccessToken:
		return "token"
	case AccessInstance:
		return "instance"
	}
	return "unknown"
}

// RouteInfo is one registered route: a method, an httprouter pattern and its access.
type RouteInfo struct {
	Method  string
	Pattern string
	Access  Access
}

// Registrar registers routes with their access; the gateway's route table implements it.
type Registrar interface {
	Handle(method, pattern string, access Access, handle httprouter.Handle)
}
