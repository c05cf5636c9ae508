package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/julienschmidt/httprouter"
	"github.com/mlgate/mlgate/metadata"
)

// DefaultMLflowProject is the project that the unprefixed /api/2.0/mlflow routes work in.
const DefaultMLflowProject = "default"

// maxMLflowBody bounds the JSON body of one MLflow RPC; log-batch of 1000 metrics is about 100 KB.
const maxMLflowBody = 16 << 20

// mlflowRequest is one decoded MLflow RPC: its project and its fields, from the query string (GET) or
// the JSON body (everything else).
type mlflowRequest struct {
	project *metadata.Project
	r       *http.Request
	body    map[string]json.RawMessage
}

// str returns a string field, "" when absent.
func (m *mlflowRequest) str(name string) (string, error) {
	if m.r.Method == http.MethodGet {
		return m.r.URL.Query().Get(name), nil
	}
	raw, ok := m.body[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("%w: field %q must be a string", ErrBadRequest, name)
	}
	return v, nil
}

// required returns a non-empty string field, or INVALID_PARAMETER_VALUE naming it.
func (m *mlflowRequest) required(name string) (string, error) {
	v, err := m.str(name)
	if err == nil && v == "" {
		err = fmt.Errorf("%w: missing value for required parameter '%s'", ErrBadRequest, name)
	}
	return v, err
}

// tags decodes a repeated {key, value} field of a JSON body.
func (m *mlflowRequest) tags(name string) ([]metadata.Tag, error) {
	raw, ok := m.body[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var tags []metadata.Tag
	if err := json.Unmarshal(raw, &tags); err != nil {
		return nil, fmt.Errorf("%w: field %q must be a list of {key, value}", ErrBadRequest, name)
	}
	return tags, nil
}

type mlflowHandler func(ctx context.Context, req *mlflowRequest) (any, error)

// mlflowRPC is one row of the MLflow RPC table.
type mlflowRPC struct {
	method string
	path   string // after /api/2.0/mlflow/
	write  bool   // may create the project
	fn     mlflowHandler
}

// mlflowRPCs is the table of MLflow RPCs mlgate serves; everything else answers ENDPOINT_NOT_FOUND,
// which the client treats as "not supported" rather than retrying.
func (s *Server) mlflowRPCs() []mlflowRPC {
	return []mlflowRPC{
		{http.MethodPost, "experiments/create", true, s.createExperiment},
		{http.MethodGet, "experiments/get", false, s.getExperiment},
		{http.MethodGet, "experiments/get-by-name", false, s.getExperimentByName},
	}
}

// mlflowDispatch serves one MLflow prefix. fixedProject is the project path for the unprefixed
// routes, "" when the route carries :project.
func (s *Server) mlflowDispatch(fixedProject string) httprouter.Handle {
	table := map[string]mlflowRPC{}
	for _, rpc := range s.mlflowRPCs() {
		table[rpc.method+" "+rpc.path] = rpc
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		path := strings.Trim(ps.ByName("rpc"), "/")
		rpc, ok := table[r.Method+" "+path]
		if !ok {
			writeMLflowError(w, r, s.log, fmt.Errorf("%w: %s %s", ErrRouteNotFound, r.Method, path))
			return
		}
		req := &mlflowRequest{r: r}
		if r.Method != http.MethodGet {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxMLflowBody))
			if err != nil {
				writeMLflowError(w, r, s.log, fmt.Errorf("%w: reading request body: %v", ErrBadRequest, err))
				return
			}
			if len(strings.TrimSpace(string(body))) > 0 {
				if err := json.Unmarshal(body, &req.body); err != nil {
					writeMLflowError(w, r, s.log, fmt.Errorf("%w: request body is not a JSON object: %v", ErrBadRequest, err))
					return
				}
			}
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

// experimentJSON is MLflow's Experiment message for a model.
type experimentJSON struct {
	ExperimentID     string         `json:"experiment_id"`
	Name             string         `json:"name"`
	ArtifactLocation string         `json:"artifact_location"`
	LifecycleStage   string         `json:"lifecycle_stage"`
	LastUpdateTime   int64          `json:"last_update_time"`
	CreationTime     int64          `json:"creation_time"`
	Tags             []metadata.Tag `json:"tags,omitempty"`
}

func toExperiment(m *metadata.Model) experimentJSON {
	return experimentJSON{
		ExperimentID:     strconv.FormatInt(m.IID, 10),
		Name:             m.DisplayName,
		ArtifactLocation: "mlflow-artifacts:/" + strconv.FormatInt(m.IID, 10),
		LifecycleStage:   m.Lifecycle.String(),
		LastUpdateTime:   m.UpdatedAt.UnixMilli(),
		CreationTime:     m.CreatedAt.UnixMilli(),
		Tags:             m.Tags,
	}
}

// createExperiment creates a model whose display name is the experiment name and whose name is its slug.
func (s *Server) createExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	name, err := req.required("name")
	if err != nil {
		return nil, err
	}
	tags, err := req.tags("tags")
	if err != nil {
		return nil, err
	}
	m := &metadata.Model{Project: req.project.ID, DisplayName: name, Tags: tags}
	if err := s.store.CreateModel(ctx, m); err != nil {
		return nil, fmt.Errorf("experiment %q: %w", name, err)
	}
	return map[string]string{"experiment_id": strconv.FormatInt(m.IID, 10)}, nil
}

func (s *Server) getExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	raw, err := req.required("experiment_id")
	if err != nil {
		return nil, err
	}
	iid, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || iid < 1 {
		return nil, fmt.Errorf("%w: experiment_id %q is not a positive integer", ErrBadRequest, raw)
	}
	m, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, IID: iid})
	if err != nil {
		return nil, fmt.Errorf("experiment with id %d: %w", iid, err)
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}

// getExperimentByName looks a name up as a display name first, then as a model slug, so that models
// created through the package API are found by their name too.
func (s *Server) getExperimentByName(ctx context.Context, req *mlflowRequest) (any, error) {
	name, err := req.required("experiment_name")
	if err != nil {
		return nil, err
	}
	m, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, DisplayName: name})
	if errors.Is(err, metadata.ErrNotFound) {
		m, err = s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, Name: name})
	}
	if errors.Is(err, metadata.ErrInvalid) {
		err = metadata.ErrNotFound // a name that could not exist is simply not found
	}
	if err != nil {
		return nil, fmt.Errorf("could not find experiment with name '%s': %w", name, err)
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}
