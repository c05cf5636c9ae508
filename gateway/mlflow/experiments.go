package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// experimentRPCs serves experiments/*: an experiment is a model.
func (s *Tracking) experimentRPCs() []rpc.Route {
	return []rpc.Route{
		rpc.Handle(http.MethodPost, "experiments/create", s.createExperiment).Creating(),
		rpc.Handle(http.MethodGet, "experiments/get", s.getExperiment),
		rpc.Handle(http.MethodGet, "experiments/get-by-name", s.getExperimentByName),
		rpc.Handle(http.MethodPost, "experiments/update", s.updateExperiment),
		rpc.Handle(http.MethodPost, "experiments/delete", s.deleteExperiment),
		rpc.Handle(http.MethodPost, "experiments/restore", s.restoreExperiment),
		rpc.Handle(http.MethodPost, "experiments/set-experiment-tag", s.setExperimentTag),
		rpc.Handle(http.MethodPost, "experiments/delete-experiment-tag", s.deleteExperimentTag),
		rpc.Handle(http.MethodPost, "experiments/search-datasets", s.searchDatasets),
	}
}

// SemverBumpTag is the one mlgate.* model tag users may write: the semver part that
// automatic version numbers bump (section 1 of the MLflow contract).
const SemverBumpTag = "mlgate.semver_bump"

// ValidateExperimentTag checks an experiment (model) tag: an MLflow key, a value within the tag limit, and
// no write to the read-only mlgate.* tags except mlgate.semver_bump with major, minor or patch. The error
// wraps httpapi.ErrBadRequest.
func ValidateExperimentTag(key, value string) error {
	if err := validateKey("tag", key); err != nil {
		return err
	}
	if len(value) > metadata.MaxTagValueLen {
		return fmt.Errorf("%w: tag %q: value is %d bytes long, which exceeds the limit of %d",
			httpapi.ErrBadRequest, key, len(value), metadata.MaxTagValueLen)
	}
	switch {
	case key == SemverBumpTag:
		if value != "major" && value != "minor" && value != "patch" {
			return fmt.Errorf("%w: tag %s must be major, minor or patch, not %q", httpapi.ErrBadRequest, key, value)
		}
	case key == "mlgate.version":
		return fmt.Errorf("%w: tag mlgate.version is read when a model version is created; set it on "+
			"model-versions/create, not on the experiment", httpapi.ErrBadRequest)
	case strings.HasPrefix(key, readOnlyPrefix):
		return fmt.Errorf("%w: tag %q is read-only: tags starting with %q are set by mlgate (only %s may be written)",
			httpapi.ErrBadRequest, key, readOnlyPrefix, SemverBumpTag)
	}
	return nil
}

// checkActiveExperiment refuses changes to a deleted experiment, as MLflow does.
func checkActiveExperiment(m *metadata.Model) error {
	if m.Lifecycle != metadata.Active {
		return fmt.Errorf("%w: the experiment %d must be in the 'active' state; current state is %s",
			httpapi.ErrBadRequest, m.IID, m.Lifecycle)
	}
	return nil
}

// experimentIDRequest is the experiment_id field most experiment RPCs carry.
type experimentIDRequest struct {
	ExperimentID rpc.FlexString `json:"experiment_id"`
}

// updateExperimentRequest is the input of updateExperiment.
type updateExperimentRequest struct {
	experimentIDRequest
	NewName string `json:"new_name"`
}

// updateExperiment renames an experiment: the model's display name changes, its slug (package name) stays.
// Errors: 400 RESOURCE_ALREADY_EXISTS when another model of the project has the name (deleted ones
// included); 400 for a missing or bad name or a deleted experiment; 404 for an unknown experiment.
func (s *Tracking) updateExperiment(ctx context.Context, call *rpc.Call, in *updateExperimentRequest) (any, error) {
	if in.NewName == "" {
		return nil, rpc.Required("new_name")
	}
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if m.Lifecycle != metadata.Active {
		return nil, fmt.Errorf("%w: cannot rename a non-active experiment (%d)", httpapi.ErrBadRequest, m.IID)
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
func (s *Tracking) deleteExperiment(ctx context.Context, call *rpc.Call, in *experimentIDRequest) (any, error) {
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if m.InRegistry {
		return nil, fmt.Errorf("%w: experiment %d is the registered model '%s': delete it from the registry first "+
			"(registered-models/delete), then delete the experiment", httpapi.ErrBadRequest, m.IID, m.DisplayName)
	}
	return s.setExperimentLifecycle(ctx, m, metadata.Deleted)
}

// restoreExperiment marks the model active again, with the runs its deletion deleted; runs deleted on
// their own stay deleted. Restoring an active experiment is a no-op. 404 for an unknown experiment.
func (s *Tracking) restoreExperiment(ctx context.Context, call *rpc.Call, in *experimentIDRequest) (any, error) {
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	return s.setExperimentLifecycle(ctx, m, metadata.Active)
}

func (s *Tracking) setExperimentLifecycle(ctx context.Context, m *metadata.Model, to metadata.Lifecycle) (any, error) {
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{Lifecycle: &to}); err != nil {
		return nil, fmt.Errorf("experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
}

// setExperimentTagRequest is the input of setExperimentTag.
type setExperimentTagRequest struct {
	experimentIDRequest
	Key   string          `json:"key"`
	Value *rpc.FlexString `json:"value"`
}

// setExperimentTag sets a model tag. Errors: 400 for a bad key, an over-long value, a read-only mlgate.*
// key or a deleted experiment; 404 for an unknown experiment.
func (s *Tracking) setExperimentTag(ctx context.Context, call *rpc.Call, in *setExperimentTagRequest) (any, error) {
	if in.Key == "" {
		return nil, rpc.Required("key")
	}
	if in.Value == nil {
		return nil, rpc.Required("value")
	}
	tag := metadata.Tag{Key: in.Key, Value: string(*in.Value)}
	if err := ValidateExperimentTag(tag.Key, tag.Value); err != nil {
		return nil, err
	}
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if err := checkActiveExperiment(m); err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{SetTags: []metadata.Tag{tag}}); err != nil {
		return nil, fmt.Errorf("experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
}

// createExperimentRequest is the input of createExperiment.
type createExperimentRequest struct {
	Name string         `json:"name"`
	Tags []metadata.Tag `json:"tags"`
}

// createExperiment creates a model whose display name is the experiment name and whose name is its slug.
func (s *Tracking) createExperiment(ctx context.Context, call *rpc.Call, in *createExperimentRequest) (any, error) {
	if in.Name == "" {
		return nil, rpc.Required("name")
	}
	for _, t := range in.Tags {
		if err := ValidateExperimentTag(t.Key, t.Value); err != nil {
			return nil, err
		}
	}
	m := &metadata.Model{Project: call.Project.ID, DisplayName: in.Name, Tags: in.Tags}
	if err := s.store.CreateModel(ctx, m); errors.Is(err, metadata.ErrExists) {
		return nil, httpapi.WithClientMessage(err, "Experiment(name=%s) already exists.", in.Name) // MLflow's words
	} else if err != nil {
		return nil, fmt.Errorf("experiment %q: %w", in.Name, err)
	}
	return map[string]string{"experiment_id": strconv.FormatInt(m.IID, 10)}, nil
}

// getExperimentRequest is the input of getExperiment.
type getExperimentRequest struct {
	ExperimentID rpc.FlexString `json:"experiment_id"`
}

func (s *Tracking) getExperiment(ctx context.Context, call *rpc.Call, in *getExperimentRequest) (any, error) {
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}

// getExperimentByNameRequest is the input of getExperimentByName.
type getExperimentByNameRequest struct {
	Name string `json:"experiment_name"`
}

// getExperimentByName looks a name up as a display name first, then as a model slug, so that models
// created through the package API are found by their name too.
func (s *Tracking) getExperimentByName(ctx context.Context, call *rpc.Call, in *getExperimentByNameRequest) (any, error) {
	if in.Name == "" {
		return nil, rpc.Required("experiment_name")
	}
	m, err := ModelByName(ctx, s.store, call.Project.ID, in.Name)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, httpapi.WithClientMessage(err, "Could not find experiment with name '%s'", in.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("experiment %q: %w", in.Name, err)
	}
	return map[string]any{"experiment": toExperiment(m)}, nil
}

// deleteExperimentTagRequest is the input of deleteExperimentTag.
type deleteExperimentTagRequest struct {
	experimentIDRequest
	Key string `json:"key"`
}

// Validate refuses a missing key and the read-only mlgate.* tags but mlgate.semver_bump
// (httpapi.ErrBadRequest).
func (in *deleteExperimentTagRequest) Validate() error {
	if in.Key == "" {
		return rpc.Required("key")
	}
	if strings.HasPrefix(in.Key, readOnlyPrefix) && in.Key != SemverBumpTag {
		return fmt.Errorf("%w: tag %q is read-only: tags starting with %q are set by mlgate", httpapi.ErrBadRequest, in.Key, readOnlyPrefix)
	}
	return nil
}

// deleteExperimentTag removes a model tag (MLflow 3). 404 for an unknown experiment or a key it has no
// tag for; 400 for a deleted experiment or a read-only key.
func (s *Tracking) deleteExperimentTag(ctx context.Context, call *rpc.Call, in *deleteExperimentTagRequest) (any, error) {
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if err := checkActiveExperiment(m); err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(m.Tags, func(t metadata.Tag) bool { return t.Key == in.Key }) {
		return nil, httpapi.NotFound("No tag with name: %s in experiment with id %d", in.Key, m.IID)
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{DeleteTags: []string{in.Key}}); err != nil {
		return nil, fmt.Errorf("experiment %d: %w", m.IID, err)
	}
	return struct{}{}, nil
}

// searchDatasetsRequest is the input of searchDatasets.
type searchDatasetsRequest struct {
	ExperimentIDs rpc.Strs `json:"experiment_ids"`
}

// datasetSummary is MLflow's DatasetSummary.
type datasetSummary struct {
	ExperimentID string `json:"experiment_id"`
	Name         string `json:"name"`
	Digest       string `json:"digest"`
	Context      string `json:"context,omitempty"`
}

// searchDatasets lists the datasets runs of the experiments logged as inputs, one entry per context
// (mlflow.data.context) they were used in; MLflow's UI calls it. Unknown experiments contribute nothing.
// 400 for an experiment id that is not a non-negative integer.
func (s *Tracking) searchDatasets(ctx context.Context, call *rpc.Call, in *searchDatasetsRequest) (any, error) {
	models, err := s.searchedModels(ctx, call, in.ExperimentIDs)
	if err != nil {
		return nil, err
	}
	out := struct {
		Summaries []datasetSummary `json:"dataset_summaries,omitempty"`
	}{}
	if len(models) == 0 {
		return out, nil
	}
	iids := make(map[uint64]int64, len(models))
	ids := make([]uint64, len(models))
	for i, m := range models {
		iids[m.ID], ids[i] = m.IID, m.ID
	}
	sums, err := s.store.SearchDatasets(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("searching datasets: %w", err)
	}
	for _, d := range sums {
		out.Summaries = append(out.Summaries, datasetSummary{ExperimentID: strconv.FormatInt(iids[d.ModelID], 10),
			Name: d.Name, Digest: d.Digest, Context: d.Context})
	}
	return out, nil
}
