// Package rpc is the machinery of mlgate's MLflow REST API: the generic adapter that turns a typed
// handler into a route (decode, validate, call, encode), the dispatcher that serves a table of routes
// under an MLflow prefix with MLflow's error bodies, and the JSON types that accept every form the
// MLflow clients send.
package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/metadata"
)

// DefaultProject is the project that the unprefixed /api/2.0/mlflow routes work in.
const DefaultProject = "default"

// MaxBody bounds the JSON body of one MLflow RPC; log-batch of 1000 metrics is about 100 KB.
const MaxBody = 16 << 20

// Call is one MLflow RPC call: its project, request, and the values of the route's path parameters.
type Call struct {
	Project *metadata.Project
	Request *http.Request
	Params  map[string]string // path parameters ({model_id} → value), unescaped
}

// Validator is implemented by request types that check themselves before their handler runs. Its error
// wraps httpapi.ErrBadRequest (or another sentinel of the error table).
type Validator interface {
	Validate() error
}

// Route is one row of an RPC table. Build it with Handle.
type Route struct {
	Method string
	// Path is after /api/2.0/mlflow/. A segment in braces ({model_id}) is a path parameter matching one
	// segment; a last one written {key...} matches the rest of the path, slashes included.
	Path string
	// CreatesProject lets the call create its project on first use; other calls on an unknown project
	// are 404. The unprefixed routes always may, as their project is implicit.
	CreatesProject bool
	serve          func(ctx context.Context, c *Call, body []byte) (any, error)
}

// Handle makes a route of a typed handler. The adapter decodes the call's fields into a new In (from
// the JSON body, or from the query string for GET), runs In's Validate method when it has one, calls fn,
// and encodes fn's answer as the JSON response. Unknown fields are ignored (newer clients add fields);
// a body that is not a JSON object, or a field of the wrong type, is httpapi.ErrBadRequest.
func Handle[In any](method, path string, fn func(ctx context.Context, c *Call, in *In) (any, error)) Route {
	return Route{Method: method, Path: path, serve: func(ctx context.Context, c *Call, body []byte) (any, error) {
		in := new(In)
		if err := Decode(body, in); err != nil {
			return nil, err
		}
		if v, ok := any(in).(Validator); ok {
			if err := v.Validate(); err != nil {
				return nil, err
			}
		}
		return fn(ctx, c, in)
	}}
}

// Creating marks the route as one that may create its project.
func (r Route) Creating() Route {
	r.CreatesProject = true
	return r
}

// Decode fills v, a pointer to a request struct, from a JSON object. Use I64, F64, FlexString and Strs
// for fields MLflow sends in more than one JSON type. An empty body leaves v as it is. A body that is
// not a JSON object, or a field of the wrong type, is httpapi.ErrBadRequest.
func Decode(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return fmt.Errorf("%w: invalid value for parameter '%s': %v", httpapi.ErrBadRequest, typeErr.Field, err)
		}
		return fmt.Errorf("%w: request is not a valid JSON object: %v", httpapi.ErrBadRequest, err)
	}
	return nil
}

// ReadBody reads a request's JSON body, at most MaxBody bytes. A failed or oversize read is
// httpapi.ErrBadRequest.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return nil, fmt.Errorf("%w: reading request body: %w", httpapi.ErrBadRequest, err)
	}
	return bytes.TrimSpace(body), nil
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

// Required reports a missing required parameter the way MLflow words it (httpapi.ErrBadRequest).
func Required(name string) error {
	return fmt.Errorf("%w: missing value for required parameter '%s'", httpapi.ErrBadRequest, name)
}

// Dispatcher serves a table of routes. Calls that match no row get MLflow's ENDPOINT_NOT_FOUND (or what
// NotFound says), which the client treats as "not supported" rather than retrying.
type Dispatcher struct {
	store    metadata.Store
	log      *slog.Logger
	table    map[string]Route // routes without parameters, by "METHOD path"
	patterns []Route          // routes with parameters, tried in order
	// notFound answers a method and path (after /api/2.0/mlflow/, without surrounding "/") that no row
	// matches; nil means ENDPOINT_NOT_FOUND.
	notFound func(method, path string) error
}

// NewDispatcher builds a dispatcher over routes. notFound, when not nil, may claim calls no row
// matches by returning a non-nil error. It panics on two routes with the same method and path: a
// programming error that the first test run shows.
func NewDispatcher(store metadata.Store, log *slog.Logger, routes []Route, notFound func(method, path string) error) *Dispatcher {
	d := &Dispatcher{store: store, log: log, table: make(map[string]Route, len(routes)), notFound: notFound}
	seen := map[string]bool{}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		if seen[key] {
			panic("mlflow: RPC registered twice: " + key)
		}
		seen[key] = true
		if strings.Contains(rt.Path, "{") {
			d.patterns = append(d.patterns, rt)
		} else {
			d.table[key] = rt
		}
	}
	return d
}

// match finds the route of a method and an escaped path (the gateway routes on escaped paths, so that
// an encoded "/" stays inside its segment), with its path parameters unescaped. A parameter that does
// not unescape, or is empty, makes the route not match.
func (d *Dispatcher) match(method, escaped string) (Route, map[string]string, bool) {
	if rt, ok := d.table[method+" "+escaped]; ok {
		return rt, nil, true
	}
	segs := strings.Split(escaped, "/")
	for _, rt := range d.patterns {
		if rt.Method != method {
			continue
		}
		if params, ok := matchPattern(strings.Split(rt.Path, "/"), segs); ok {
			return rt, params, true
		}
	}
	return Route{}, nil, false
}

// matchPattern matches escaped path segments against a route's pattern segments. A {key...} parameter
// takes the rest of the path, so a tag key with a "/" reaches it whole however the client encoded it.
func matchPattern(pattern, segs []string) (map[string]string, bool) {
	params := map[string]string{}
	for i, p := range pattern {
		name, isParam := strings.CutPrefix(p, "{")
		name, _ = strings.CutSuffix(name, "}")
		name, isRest := strings.CutSuffix(name, "...")
		if i >= len(segs) {
			return nil, false
		}
		if !isParam {
			if p != segs[i] {
				return nil, false
			}
			continue
		}
		escapedValue := segs[i]
		if isRest {
			escapedValue = strings.Join(segs[i:], "/")
		}
		v, err := url.PathUnescape(escapedValue)
		if err != nil || v == "" {
			return nil, false
		}
		params[name] = v
		if isRest {
			return params, true
		}
	}
	return params, len(segs) == len(pattern)
}

// Handler serves one MLflow prefix (the catch-all parameter "rpc" holds the RPC path). fixedProject is
// the project path of the unprefixed routes, "" when the route carries :project.
func (d *Dispatcher) Handler(fixedProject string) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		path := strings.Trim(ps.ByName("rpc"), "/")
		rt, params, ok := d.match(r.Method, path)
		if !ok {
			var err error
			if d.notFound != nil {
				err = d.notFound(r.Method, path)
			}
			if err == nil {
				err = fmt.Errorf("%w: %s %s", httpapi.ErrRouteNotFound, r.Method, path)
			}
			httpapi.WriteMLflowError(w, r, d.log, err)
			return
		}
		var body []byte
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			body = queryAsJSON(r.URL.Query())
		} else {
			var err error
			if body, err = ReadBody(w, r); err != nil {
				httpapi.WriteMLflowError(w, r, d.log, err)
				return
			}
			if len(body) == 0 && r.Method == http.MethodDelete {
				// Some proxies drop DELETE bodies; MLflow fields may then come as a query.
				body = queryAsJSON(r.URL.Query())
			}
		}
		projectRef := fixedProject
		if projectRef == "" {
			projectRef = ps.ByName("project")
		}
		project, err := httpapi.ResolveProject(r.Context(), d.store, projectRef, rt.CreatesProject || fixedProject != "")
		if err != nil {
			httpapi.WriteMLflowError(w, r, d.log, err)
			return
		}
		resp, err := rt.serve(r.Context(), &Call{Project: project, Request: r, Params: params}, body)
		if err != nil {
			httpapi.WriteMLflowError(w, r, d.log, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, resp)
	}
}

// Invoke runs the route's handler on a call whose fields are body (a JSON object), as the dispatcher
// does after resolving the project: for in-process callers and tests.
func (r Route) Invoke(ctx context.Context, c *Call, body []byte) (any, error) {
	return r.serve(ctx, c, body)
}
