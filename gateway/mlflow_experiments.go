package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/metadata"
)

// experimentRPCs serves experiments/*: an experiment is a model.
func (s *Server) experimentRPCs() []mlflowRPC {
	return []mlflowRPC{
		{http.MethodPost, "experiments/create", true, s.createExperiment},
		{http.MethodGet, "experiments/get", false, s.getExperiment},
		{http.MethodGet, "experiments/get-by-name", false, s.getExperimentByName},
		{http.MethodPost, "experiments/update", false, s.updateExperiment},
		{http.MethodPost, "experiments/delete", false, s.deleteExperiment},
		{http.MethodPost, "experiments/restore", false, s.restoreExperiment},
		{http.MethodPost, "experiments/set-experiment-tag", false, s.setExperimentTag},
	}
}

// experimentsSemverBumpTag is the one mlgate.* model tag users may write: the semver part that
// automatic version numbers bump (section 1 of the MLflow contract).
const experimentsSemverBumpTag = "mlgate.semver_bump"

// experimentsValidateTag checks an experiment (model) tag: an MLflow key, a value within the tag limit, and
// no write to the read-only mlgate.* tags except mlgate.semver_bump with major, minor or patch. The error
// wraps ErrBadRequest.
func experimentsValidateTag(key, value string) error {
	if err := runsValidateKey("tag", key); err != nil {
		return err
	}
	if len(value) > metadata.MaxTagValueLen {
		return fmt.Errorf("%w: tag %q: value is %d bytes long, which exceeds the limit of %d",
			ErrBadRequest, key, len(value), metadata.MaxTagValueLen)
	}
	switch {
	case key == experimentsSemverBumpTag:
		if value != "major" && value != "minor" && value != "patch" {
			return fmt.Errorf("%w: tag %s must be major, minor or patch, not %q", ErrBadRequest, key, value)
		}
	case key == "mlgate.version":
		return fmt.Errorf("%w: tag mlgate.version is read when a model version is created; set it on "+
			"model-versions/create, not on the experiment", ErrBadRequest)
	case strings.HasPrefix(key, runsReadOnlyPrefix):
		return fmt.Errorf("%w: tag %q is read-only: tags starting with %q are set by mlgate (only %s may be written)",
			ErrBadRequest, key, runsReadOnlyPrefix, experimentsSemverBumpTag)
	}
	return nil
}

// experimentsActive refuses changes to a deleted experiment, as MLflow does.
func experimentsActive(m *metadata.Model) error {
	if m.Lifecycle != metadata.Active {
		return fmt.Errorf("%w: the experiment %d must be in the 'active' state; current state is %s",
			ErrBadRequest, m.IID, m.Lifecycle)
	}
	return nil
}

// experimentsID is the experiment_id field most experiment RPCs carry.
type experimentsID struct {
	ExperimentID flexString `json:"experiment_id"`
}

// updateExperiment renames an experiment: the model's display name changes, its slug (package name) stays.
// Errors: 400 RESOURCE_ALREADY_EXISTS when another model of the project has the name (deleted ones
// included); 400 for a missing or bad name or a deleted experiment; 404 for an unknown experiment.
func (s *Server) updateExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		experimentsID
		NewName string `json:"new_name"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	if in.NewName == "" {
		return nil, required("new_name")
	}
	m, err := s.experiment(ctx, req, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if m.Lifecycle != metadata.Active {
		return nil, fmt.Errorf("%w: cannot rename a non-active experiment (%d)", ErrBadRequest, m.IID)
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{DisplayName: &in.NewName}); err != nil {
		if errors.Is(err, metadata.ErrExists) {
			return nil, fmt.Errorf("experiment(name=%s) already exists: %w", in.NewName, metadata.ErrExists)
		}
		return nil, fmt.Errorf("renaming experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
}

// deleteExperiment marks the model deleted, and with it its active runs (restore brings back exactly
// those). Deleting a deleted experiment is a no-op. Errors: 400 while the model is in the registry, so
// that registry data cannot disappear through the tracking API; 404 for an unknown experiment.
func (s *Server) deleteExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	var in experimentsID
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.experiment(ctx, req, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if m.InRegistry {
		return nil, fmt.Errorf("%w: experiment %d is the registered model '%s': delete it from the registry first "+
			"(registered-models/delete), then delete the experiment", ErrBadRequest, m.IID, m.DisplayName)
	}
	return s.experimentsSetLifecycle(ctx, m, metadata.Deleted)
}

// restoreExperiment marks the model active again, with the runs its deletion deleted; runs deleted on
// their own stay deleted. Restoring an active experiment is a no-op. 404 for an unknown experiment.
func (s *Server) restoreExperiment(ctx context.Context, req *mlflowRequest) (any, error) {
	var in experimentsID
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	m, err := s.experiment(ctx, req, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	return s.experimentsSetLifecycle(ctx, m, metadata.Active)
}

func (s *Server) experimentsSetLifecycle(ctx context.Context, m *metadata.Model, to metadata.Lifecycle) (any, error) {
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{Lifecycle: &to}); err != nil {
		return nil, fmt.Errorf("experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
}

// setExperimentTag sets a model tag. Errors: 400 for a bad key, an over-long value, a read-only mlgate.*
// key or a deleted experiment; 404 for an unknown experiment.
func (s *Server) setExperimentTag(ctx context.Context, req *mlflowRequest) (any, error) {
	var in struct {
		experimentsID
		Key   string      `json:"key"`
		Value *flexString `json:"value"`
	}
	if err := req.decode(&in); err != nil {
		return nil, err
	}
	if in.Key == "" {
		return nil, required("key")
	}
	if in.Value == nil {
		return nil, required("value")
	}
	tag := metadata.Tag{Key: in.Key, Value: string(*in.Value)}
	if err := experimentsValidateTag(tag.Key, tag.Value); err != nil {
		return nil, err
	}
	m, err := s.experiment(ctx, req, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if err := experimentsActive(m); err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{SetTags: []metadata.Tag{tag}}); err != nil {
		return nil, fmt.Errorf("experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
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
	for _, t := range in.Tags {
		if err := experimentsValidateTag(t.Key, t.Value); err != nil {
			return nil, err
		}
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
