package gateway

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
)

// routeTable registers routes on an httprouter.Router and keeps the list, with each route's declared
// access, so that tests can walk every route the server really serves.
type routeTable struct {
	router *httprouter.Router
	routes []httpapi.RouteInfo
	s      *Server
	// templates matches like router but only names the pattern a request matches (templateOf), for
	// the access log and metrics, which run before authentication and routing: a request refused
	// there (401, 429) is still counted under its route, and never under its raw path.
	templates *httprouter.Router
}

func newRouteTable(r *httprouter.Router, s *Server) *routeTable {
	return &routeTable{router: r, s: s, templates: httprouter.New()}
}

// Handle registers handle for method and pattern with its access. The kind of token is checked here,
// where the access is declared (see tokenKind); withAuth has checked the token itself and its scope.
func (t *routeTable) Handle(method, pattern string, access httpapi.Access, handle httprouter.Handle) {
	if t.s != nil && t.s.cfg.Auth {
		handle = t.s.tokenKind(access, handle)
	}
	t.router.Handle(method, pattern, handle)
	t.templates.Handle(method, pattern, func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.(*templateSink).pattern = pattern
	})
	t.routes = append(t.routes, httpapi.RouteInfo{Method: method, Pattern: pattern, Access: access})
}

// unmatchedRoute is the template of a request that matches no route.
const unmatchedRoute = "unmatched"

// templateSink receives the pattern from a handle of routeTable.templates.
type templateSink struct {
	http.ResponseWriter
	pattern string
}

// templateOf returns the pattern of the route that method and the escaped path match (the router
// matches escaped paths, see escapedRouting), or unmatchedRoute.
func (t *routeTable) templateOf(method, escapedPath string) string {
	h, _, _ := t.templates.Lookup(method, escapedPath)
	if h == nil {
		return unmatchedRoute
	}
	var sink templateSink
	h(&sink, nil, nil)
	return sink.pattern
}

// Routes lists every route registered on the router, in registration order. The MLflow RPCs behind the
// catch-all /api/2.0/mlflow/*rpc routes are listed by MLflowRPCs.
func (s *Server) Routes() []httpapi.RouteInfo { return s.routeList }

// MLflowRPCs lists the method and path (after /api/2.0/mlflow/) of every MLflow RPC the dispatcher
// serves; path parameters are written {name} or {name...}.
func (s *Server) MLflowRPCs() []httpapi.RouteInfo { return s.rpcList }
