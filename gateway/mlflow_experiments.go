package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/mlgate/mlgate/metadata"
)

// experimentRPCs serves experiments/*: an experiment is a model.
func (s *Server) experimentRPCs() []mlflowRPC {
	return []mlflowRPC{
		{http.MethodPost, "experiments/create", true, s.createExperiment},
		{http.MethodGet, "experiments/get", false, s.getExperiment},
		{http.MethodGet, "experiments/get-by-name", false, s.getExperimentByName},
	}
}

// createExperiment creates a model whose display name is the experiment name and whose name is its slug.
func (s *Server) createExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		Name string         `json:"name"`
		Tags []metadata.Tag `json:"tags"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, required("name")
	}
	m := &metadata.Model{Project: req.project.ID, DisplayName: in.Name, Tags: in.Tags}
	if err := s.store.CreateModel(ctx, m); err != nil {
		return nil, fmt.Errorf("experiment %q: %w", in.Name, err)
	}
	return map[string]string{"experiment_id": strconv.FormatInt(m.IID, 10)}, nil
}

func (s *Server) getExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		ExperimentID flexString `json:"experiment_id"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.experiment(ctx, req, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}

// getExperimentByName looks a name up as a display name first, then as a model slug, so that models
// created through the package API are found by their name too.
func (s *Server) getExperimentByName(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		Name string `json:"experiment_name"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, required("experiment_name")
	}
	m, err := s.modelByName(ctx, req, in.Name)
	if err != nil {
		return nil, fmt.Errorf("could not find experiment with name '%s': %w", in.Name, err)
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}
