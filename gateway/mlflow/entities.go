package mlflow

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mlgate/mlgate/gateway/artifact"
	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

// toExperiment is a model as an experiment; the synthetic tag mlgate.name gives its slug.
func toExperiment(m *metadata.Model) message.Experiment {
	id := strconv.FormatInt(m.IID, 10)
	tags := append([]metadata.Tag{{Key: "mlgate.name", Value: m.Name}}, m.Tags...)
	return message.Experiment{
		ExperimentID:     id,
		Name:             m.DisplayName,
		ArtifactLocation: "mlflow-artifacts:/" + id,
		LifecycleStage:   m.Lifecycle.String(),
		LastUpdateTime:   m.UpdatedAt.UnixMilli(),
		CreationTime:     m.CreatedAt.UnixMilli(),
		Tags:             tags,
	}
}

// toMetrics converts stored points to MLflow's Metric messages, with the logged model, dataset and run
// a point was linked to, where it was.
func toMetrics(ms []metadata.Metric) []message.Metric {
	out := make([]message.Metric, len(ms))
	for i, m := range ms {
		out[i] = message.Metric{Key: m.Key, Value: rpc.F64(m.Value), Timestamp: m.Timestamp, Step: m.Step,
			DatasetName: m.DatasetName, DatasetDigest: m.DatasetDigest}
		if !m.LoggedModel.IsZero() {
			out[i].ModelID = m.LoggedModel.String()
		}
		if m.Run != (metadata.EID{}) {
			out[i].RunID = m.Run.String()
		}
	}
	return out
}

// toRunInfo is a candidate as a run's RunInfo.
func toRunInfo(m *metadata.Model, c *metadata.Candidate) message.RunInfo {
	return message.RunInfo{
		RunID:          c.EID.String(),
		RunUUID:        c.EID.String(),
		RunName:        c.Name,
		ExperimentID:   strconv.FormatInt(m.IID, 10),
		UserID:         c.UserID,
		Status:         c.Status.String(),
		StartTime:      c.StartTime,
		EndTime:        c.EndTime,
		ArtifactURI:    runquery.ArtifactURI(m, c),
		LifecycleStage: c.Lifecycle.String(),
	}
}

// toRun builds the full Run message; data may be nil for a run without params, metrics or tags.
// The synthetic tag mlgate.candidate_iid tells MLflow users the run's package coordinates.
func toRun(m *metadata.Model, c *metadata.Candidate, data *metadata.RunData) message.Run {
	out := message.Run{Info: toRunInfo(m, c)}
	if data != nil {
		out.Data.Metrics = toMetrics(data.Metrics)
		out.Data.Params = data.Params
		out.Data.Tags = data.Tags
		out.Inputs, out.Outputs = toRunIO(data.IO)
	}
	out.Data.Tags = append(out.Data.Tags, metadata.Tag{Key: runquery.CandidateIIDTag, Value: strconv.FormatInt(c.IID, 10)})
	return out
}

// toRunIO converts a run's inputs and outputs; outputs is nil when the run produced no logged model.
func toRunIO(io metadata.RunIO) (message.RunInputs, *message.RunOutputs) {
	var in message.RunInputs
	for _, d := range io.Datasets {
		in.DatasetInputs = append(in.DatasetInputs, message.DatasetInput{Tags: d.Tags, Dataset: message.Dataset{
			Name: d.Dataset.Name, Digest: d.Dataset.Digest, SourceType: d.Dataset.SourceType, Source: d.Dataset.Source,
			Schema: d.Dataset.Schema, Profile: d.Dataset.Profile}})
	}
	for _, l := range io.ModelInputs {
		in.ModelInputs = append(in.ModelInputs, message.ModelInput{ModelID: l.String()})
	}
	if len(io.Outputs) == 0 {
		return in, nil
	}
	out := &message.RunOutputs{}
	for _, o := range io.Outputs {
		out.ModelOutputs = append(out.ModelOutputs, message.ModelOutput{ModelID: o.LoggedModel.String(), Step: o.Step})
	}
	return in, out
}

// Experiment resolves an experiment_id of a project: "0" is the project's default model, created on
// first use. A missing id, or one that is not a non-negative integer, is httpapi.ErrBadRequest; an
// unknown one is metadata.ErrNotFound.
func Experiment(ctx context.Context, store metadata.Store, project int64, id string) (*metadata.Model, error) {
	if id == "" {
		return nil, rpc.Required("experiment_id")
	}
	iid, err := strconv.ParseInt(id, 10, 64)
	if err != nil || iid < 0 {
		return nil, fmt.Errorf("%w: experiment_id %q is not a valid experiment id", httpapi.ErrBadRequest, id)
	}
	if iid == 0 {
		return store.EnsureDefaultModel(ctx, project)
	}
	m, err := store.Model(ctx, metadata.ModelRef{Project: project, IID: iid})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, ExperimentNotFound(id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("experiment %s: %w", id, err)
	}
	return m, nil
}

// ExperimentNotFound is MLflow's answer for an experiment id that names no experiment of the project;
// err (a metadata.ErrNotFound) is kept for the log.
func ExperimentNotFound(id string, err error) error {
	return httpapi.WithClientMessage(err, "No Experiment with id=%s exists", id)
}

// RunNotFound is MLflow's answer for a run id that names no run of the project, whether it exists in
// another project or not at all; err (a metadata.ErrNotFound) is kept for the log.
func RunNotFound(runID string, err error) error {
	return httpapi.WithClientMessage(err, "Run with id=%s not found", runID)
}

// ModelByName finds a model of a project by display name first, then by slug, as MLflow names both
// experiments and registered models by the display name. A name that could not exist is
// metadata.ErrNotFound, as is an unknown one.
func ModelByName(ctx context.Context, store metadata.Store, project int64, name string) (*metadata.Model, error) {
	m, err := store.Model(ctx, metadata.ModelRef{Project: project, DisplayName: name})
	if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrInvalid) {
		m, err = store.Model(ctx, metadata.ModelRef{Project: project, Name: name})
	}
	if errors.Is(err, metadata.ErrInvalid) {
		err = fmt.Errorf("%w: %w", metadata.ErrNotFound, err)
	}
	return m, err
}

// Run resolves run_id / run_uuid (either, or both when equal) to a candidate of a project. Missing or
// contradicting ids are httpapi.ErrBadRequest; an unknown or malformed one is metadata.ErrNotFound.
func Run(ctx context.Context, store metadata.Store, project int64, runID, runUUID string) (*metadata.Candidate, error) {
	if runID == "" {
		runID = runUUID
	} else if runUUID != "" && runUUID != runID {
		return nil, fmt.Errorf("%w: run_id %q and run_uuid %q differ", httpapi.ErrBadRequest, runID, runUUID)
	}
	if runID == "" {
		return nil, rpc.Required("run_id")
	}
	eid, ok := metadata.ParseEID(runID)
	if !ok || eid == (metadata.EID{}) {
		return nil, RunNotFound(runID, metadata.ErrNotFound)
	}
	c, err := store.Candidate(ctx, metadata.CandidateRef{EID: eid, Project: project})
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, RunNotFound(runID, err)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", runID, err)
	}
	return c, nil
}

// FileInfos converts a listing of directory dir into MLflow's FileInfo messages, with paths under dir
// ("" gives bare names, as the mlflow-artifacts proxy lists; the tracking API's listings give paths
// from the artifact root).
func FileInfos(dir string, entries []artifact.DirEntry) []message.FileInfo {
	out := make([]message.FileInfo, len(entries))
	for i, e := range entries {
		p := e.Name
		if dir != "" {
			p = dir + "/" + e.Name
		}
		out[i] = message.FileInfo{Path: p, IsDir: e.IsDir}
		if !e.IsDir {
			size := e.Size
			out[i].FileSize = &size
		}
	}
	return out
}
