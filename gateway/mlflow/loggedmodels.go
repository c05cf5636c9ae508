package mlflow

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
)

// MLflow 3.x logged models. mlgate has no logged-model entity yet: the 3.x client's artifact calls only
// need logged-models/search to answer (RunsArtifactRepository looks for a logged model named like the
// first path component, without error handling), so search answers an empty result and every other
// logged-model RPC answers 501 NOT_IMPLEMENTED with a message that says what to do instead.

// loggedModelsUnsupported is the message of every logged-model RPC mlgate does not serve.
const loggedModelsUnsupported = "logged models (MLflow 3 log_model) are not supported by mlgate yet; " +
	"log model files as run artifacts (mlflow.log_artifacts) and register them with model-versions/create"

// loggedModelRPCs serves logged-models/*: the routes without a path parameter. The ones with a model id
// in the path cannot be rows of the exact-match table; loggedModelRouteError answers them.
func (s *Tracking) loggedModelRPCs() []rpc.Route {
	return []rpc.Route{
		rpc.Handle(http.MethodPost, "logged-models/search", s.searchLoggedModels),
		rpc.Handle(http.MethodPost, "logged-models", func(context.Context, *rpc.Call, *struct{}) (any, error) {
			return nil, fmt.Errorf("%w: POST logged-models: %s", httpapi.ErrNotImplemented, loggedModelsUnsupported)
		}),
	}
}

// searchLoggedModelsRequest is the input of searchLoggedModels.
type searchLoggedModelsRequest struct {
	ExperimentIDs rpc.Strs       `json:"experiment_ids"`
	Filter        rpc.FlexString `json:"filter"`
	MaxResults    rpc.I64        `json:"max_results"`
	PageToken     rpc.FlexString `json:"page_token"`
}

// Validate refuses an experiment id that is not a non-negative integer, or a negative max_results
// (httpapi.ErrBadRequest).
func (in *searchLoggedModelsRequest) Validate() error {
	for _, id := range in.ExperimentIDs {
		if v, err := strconv.ParseInt(id, 10, 64); err != nil || v < 0 {
			return fmt.Errorf("%w: experiment_ids: %q is not a valid experiment id", httpapi.ErrBadRequest, id)
		}
	}
	if in.MaxResults.Set && in.MaxResults.V < 0 {
		return fmt.Errorf("%w: max_results must be positive, got %d", httpapi.ErrBadRequest, in.MaxResults.V)
	}
	return nil
}

// searchLoggedModels answers POST logged-models/search. There are no logged models, so the answer is
// always an empty list; the request is still checked (Validate) so a malformed one is a 400, as it will
// be once logged models exist.
func (s *Tracking) searchLoggedModels(context.Context, *rpc.Call, *searchLoggedModelsRequest) (any, error) {
	return struct {
		Models []struct{} `json:"models"`
	}{Models: []struct{}{}}, nil
}

// loggedModelRoutes are MLflow 3.6's logged-model routes with a model id in the path ("*" is one
// segment, a trailing "**" any rest), as method and pattern after /api/2.0/mlflow/.
var loggedModelRoutes = []struct{ method, pattern string }{
	{http.MethodGet, "logged-models/*"},
	{http.MethodPatch, "logged-models/*"},  // finalize
	{http.MethodDelete, "logged-models/*"}, // delete
	{http.MethodPatch, "logged-models/*/tags"},
	{http.MethodDelete, "logged-models/*/tags/**"},
	{http.MethodGet, "logged-models/*/artifacts/directories"},
	{http.MethodGet, "logged-models/*/artifacts/files"},
	{http.MethodPost, "logged-models/*/params"},
}

// NotFound answers the calls the RPC table cannot hold (logged-model routes with an id in the path):
// ErrNotImplemented for those, nil for every other method and path (after /api/2.0/mlflow/, without
// surrounding "/").
func NotFound(method, path string) error { return loggedModelRouteError(method, path) }

// loggedModelRouteError returns the 501 answer (httpapi.ErrNotImplemented) for a logged-model RPC with a path
// parameter, or nil when method and path (after /api/2.0/mlflow/, without surrounding "/") are not one.
// The dispatcher calls it for requests its table does not hold.
func loggedModelRouteError(method, path string) error {
	segs := strings.Split(path, "/")
	for _, rt := range loggedModelRoutes {
		if rt.method == method && matchLoggedModelRoute(strings.Split(rt.pattern, "/"), segs) {
			return fmt.Errorf("%w: %s %s: %s", httpapi.ErrNotImplemented, method, path, loggedModelsUnsupported)
		}
	}
	return nil
}

func matchLoggedModelRoute(pattern, segs []string) bool {
	for i, p := range pattern {
		if p == "**" {
			return len(segs) > i
		}
		if i >= len(segs) || segs[i] == "" || (p != "*" && p != segs[i]) {
			return false
		}
	}
	return len(segs) == len(pattern)
}
