package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/metadata"
)

// DefaultMLflowProject is the project that the unprefixed /api/2.0/mlflow routes work in.
const DefaultMLflowProject = "default"

// maxMLflowBody bounds the JSON body of one MLflow RPC; log-batch of 1000 metrics is about 100 KB.
const maxMLflowBody = 16 << 20

// mlflowRequest is one MLflow RPC call: its project and its raw fields, from the query string (GET) or
// the JSON body (everything else). Handlers decode it into a typed struct with decode.
type mlflowRequest struct {
	project *metadata.Project
	r       *http.Request
	body    []byte // JSON object; built from the query for GET
}

// decode fills v, a pointer to a request struct, ignoring unknown fields (newer clients add fields).
// Use i64, f64, flexString and strs for fields MLflow sends in more than one JSON type. A body that is not
// a JSON object, or a field of the wrong type, is ErrBadRequest.
func (m *mlflowRequest) decode(v any) error {
	if len(m.body) == 0 {
		return nil
	}
	if err := json.Unmarshal(m.body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%w: invalid value for parameter '%s': %v", ErrBadRequest, typeErr.Field, err)
		}
		return fmt.Errorf("%w: request is not a valid JSON object: %v", ErrBadRequest, err)
	}
	return nil
}

// queryAsJSON turns a GET query into the JSON object a POST would carry: a key given once becomes a
// string, a repeated key an array of strings (order_by=a&order_by=b).
func queryAsJSON(q url.Values) []byte {
	obj := make(map[string]any, len(q))
	for k, vs := range q {
		if len(vs) == 1 {
			obj[k] = vs[0]
		} else {
			obj[k] = vs
		}
	}
	b, _ := json.Marshal(obj)
	return b
}

// required reports a missing required parameter the way MLflow words it.
func required(name string) error {
	return fmt.Errorf("%w: missing value for required parameter '%s'", ErrBadRequest, name)
}

type mlflowHandler func(ctx context.Context, req *mlflowRequest) (any, error)

// mlflowRPC is one row of the MLflow RPC table.
type mlflowRPC struct {
	method string
	path   string // after /api/2.0/mlflow/
	write  bool   // may create the project
	fn     mlflowHandler
}

// mlflowRPCs is the table of MLflow RPCs mlgate serves, one slice per area (each in its own file);
// everything else answers ENDPOINT_NOT_FOUND, which the client treats as "not supported" rather than
// retrying.
func (s *Server) mlflowRPCs() []mlflowRPC {
	var rpcs []mlflowRPC
	for _, area := range [][]mlflowRPC{s.experimentRPCs(), s.runRPCs(), s.searchRPCs(), s.registryRPCs(), s.loggedModelRPCs()} {
		rpcs = append(rpcs, area...)
	}
	return rpcs
}

// mlflowDispatch serves one MLflow prefix. fixedProject is the project path for the unprefixed
// routes, "" when the route carries :project.
func (s *Server) mlflowDispatch(fixedProject string) httprouter.Handle {
	table := map[string]mlflowRPC{}
	for _, rpc := range s.mlflowRPCs() {
		key := rpc.method + " " + rpc.path
		if _, dup := table[key]; dup {
			panic("gateway: MLflow RPC registered twice: " + key)
		}
		table[key] = rpc
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		path := strings.Trim(ps.ByName("rpc"), "/")
		rpc, ok := table[r.Method+" "+path]
		if !ok {
			// Routes with an id inside the path (MLflow 3 logged models) cannot be table rows.
			err := loggedModelRouteError(r.Method, path)
			if err == nil {
				err = fmt.Errorf("%w: %s %s", ErrRouteNotFound, r.Method, path)
			}
			writeMLflowError(w, r, s.log, err)
			return
		}
		req := &mlflowRequest{r: r}
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			req.body = queryAsJSON(r.URL.Query())
		} else {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMLflowBody))
			if err != nil {
				writeMLflowError(w, r, s.log, fmt.Errorf("%w: reading request body: %v", ErrBadRequest, err))
				return
			}
			if len(bytes.TrimSpace(body)) == 0 && r.Method == http.MethodDelete {
				// Some proxies drop DELETE bodies; MLflow fields may then come as a query.
				body = queryAsJSON(r.URL.Query())
			}
			req.body = bytes.TrimSpace(body)
		}
		projectRef := fixedProject
		if projectRef == "" {
			projectRef = ps.ByName("project")
		}
		project, err := s.resolveProject(r.Context(), projectRef, rpc.write || fixedProject != "")
		if err != nil {
			writeMLflowError(w, r, s.log, err)
			return
		}
		req.project = project
		resp, err := rpc.fn(r.Context(), req)
		if err != nil {
			writeMLflowError(w, r, s.log, err)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}
