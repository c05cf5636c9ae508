package gateway

import (
	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
)

// routeTable registers routes on an httprouter.Router and keeps the list, with each route's declared
// access, so that tests can walk every route the server really serves.
type routeTable struct {
	router *httprouter.Router
	routes []httpapi.RouteInfo
	s      *Server
}

// Handle registers handle for method and pattern with its access. The kind of token is checked here,
// where the access is declared (see tokenKind); withAuth has checked the token itself and its scope.
func (t *routeTable) Handle(method, pattern string, access httpapi.Access, handle httprouter.Handle) {
	if t.s != nil && t.s.cfg.Auth {
		handle = t.s.tokenKind(access, handle)
	}
	t.router.Handle(method, pattern, handle)
	t.routes = append(t.routes, httpapi.RouteInfo{Method: method, Pattern: pattern, Access: access})
}

// Routes lists every route registered on the router, in registration order. The MLflow RPCs behind the
// catch-all /api/2.0/mlflow/*rpc routes are listed by MLflowRPCs.
func (s *Server) Routes() []httpapi.RouteInfo { return s.routeList }

// MLflowRPCs lists the method and path (after /api/2.0/mlflow/) of every MLflow RPC the dispatcher
// serves; path parameters are written {name} or {name...}.
func (s *Server) MLflowRPCs() []httpapi.RouteInfo { return s.rpcList }
