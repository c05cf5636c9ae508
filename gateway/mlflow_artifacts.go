package gateway

import (
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// mlflowArtifacts serves the mlflow-artifacts proxy of one prefix. fixedProject is the project path for
// the unprefixed routes, "" when the route carries :project.
func (s *Server) mlflowArtifacts(fixedProject string) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		writeMLflowError(w, r, s.log, fmt.Errorf("%w: %s %s", ErrRouteNotFound, r.Method, ps.ByName("rest")))
	}
}
