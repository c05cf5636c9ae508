// Package message holds MLflow's REST messages as mlgate writes them: the JSON shape the MLflow client
// reads (proto3 JSON, field names as in MLflow's service.proto and model_registry.proto). The server
// packages fill them; tests and MLflow clients written in Go (an importer) decode into them.
package message

import (
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// Experiment is MLflow's Experiment.
type Experiment struct {
	ExperimentID     string         `json:"experiment_id"`
	Name             string         `json:"name"`
	ArtifactLocation string         `json:"artifact_location"`
	LifecycleStage   string         `json:"lifecycle_stage"`
	LastUpdateTime   int64          `json:"last_update_time"`
	CreationTime     int64          `json:"creation_time"`
	Tags             []metadata.Tag `json:"tags,omitempty"`
}

// Metric is MLflow's Metric: one point. Value may be NaN or infinite on the wire. MLflow 3 adds the
// logged model and dataset a point measures, and the run that logged it (on a logged model's metrics).
type Metric struct {
	Key           string  `json:"key"`
	Value         rpc.F64 `json:"value"`
	Timestamp     int64   `json:"timestamp"`
	Step          int64   `json:"step"`
	DatasetName   string  `json:"dataset_name,omitempty"`
	DatasetDigest string  `json:"dataset_digest,omitempty"`
	ModelID       string  `json:"model_id,omitempty"`
	RunID         string  `json:"run_id,omitempty"`
}

// RunInfo is MLflow's RunInfo.
type RunInfo struct {
	RunID          string `json:"run_id"`
	RunUUID        string `json:"run_uuid"`
	RunName        string `json:"run_name"`
	ExperimentID   string `json:"experiment_id"`
	UserID         string `json:"user_id"`
	Status         string `json:"status"`
	StartTime      int64  `json:"start_time"`
	EndTime        int64  `json:"end_time,omitempty"`
	ArtifactURI    string `json:"artifact_uri"`
	LifecycleStage string `json:"lifecycle_stage"`
}

// RunData is MLflow's RunData: the latest value of each metric, params and tags.
type RunData struct {
	Metrics []Metric         `json:"metrics,omitempty"`
	Params  []metadata.Param `json:"params,omitempty"`
	Tags    []metadata.Tag   `json:"tags,omitempty"`
}

// Run is MLflow's Run.
type Run struct {
	Info    RunInfo     `json:"info"`
	Data    RunData     `json:"data"`
	Inputs  RunInputs   `json:"inputs"`
	Outputs *RunOutputs `json:"outputs,omitempty"` // MLflow 3; absent when the run produced no model
}

// RunInputs is MLflow's RunInputs; both lists are left out when empty, so a run without inputs shows
// "inputs": {}.
type RunInputs struct {
	DatasetInputs []DatasetInput `json:"dataset_inputs,omitempty"`
	ModelInputs   []ModelInput   `json:"model_inputs,omitempty"`
}

// DatasetInput is a dataset a run used, with the input's tags (mlflow.data.context).
type DatasetInput struct {
	Tags    []metadata.Tag `json:"tags,omitempty"`
	Dataset Dataset        `json:"dataset"`
}

// Dataset is MLflow's Dataset.
type Dataset struct {
	Name       string `json:"name"`
	Digest     string `json:"digest"`
	SourceType string `json:"source_type"`
	Source     string `json:"source"`
	Schema     string `json:"schema,omitempty"`
	Profile    string `json:"profile,omitempty"`
}

// ModelInput is a logged model a run used.
type ModelInput struct {
	ModelID string `json:"model_id"`
}

// RunOutputs is MLflow 3's RunOutputs.
type RunOutputs struct {
	ModelOutputs []ModelOutput `json:"model_outputs,omitempty"`
}

// ModelOutput is a logged model a run produced, at a step.
type ModelOutput struct {
	ModelID string `json:"model_id"`
	Step    int64  `json:"step"`
}

// LoggedModel is MLflow 3's LoggedModel.
type LoggedModel struct {
	Info LoggedModelInfo `json:"info"`
	Data LoggedModelData `json:"data"`
}

// LoggedModelInfo is MLflow 3's LoggedModelInfo.
type LoggedModelInfo struct {
	ModelID                string         `json:"model_id"`
	ExperimentID           string         `json:"experiment_id"`
	Name                   string         `json:"name"`
	CreationTimestampMs    int64          `json:"creation_timestamp_ms"`
	LastUpdatedTimestampMs int64          `json:"last_updated_timestamp_ms"`
	ArtifactURI            string         `json:"artifact_uri"`
	Status                 string         `json:"status"`
	StatusMessage          string         `json:"status_message,omitempty"`
	ModelType              string         `json:"model_type,omitempty"`
	SourceRunID            string         `json:"source_run_id,omitempty"`
	Tags                   []metadata.Tag `json:"tags,omitempty"`
	Registrations          []Registration `json:"registrations,omitempty"`
}

// Registration is a model version backed by a logged model.
type Registration struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// LoggedModelData is MLflow 3's LoggedModelData: params, and every metric point logged to the model.
type LoggedModelData struct {
	Params  []metadata.Param `json:"params,omitempty"`
	Metrics []Metric         `json:"metrics,omitempty"`
}

// RegisteredModel is MLflow's RegisteredModel.
type RegisteredModel struct {
	Name                 string         `json:"name"`
	CreationTimestamp    int64          `json:"creation_timestamp"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp"`
	Description          string         `json:"description,omitempty"`
	LatestVersions       []ModelVersion `json:"latest_versions,omitempty"`
	Tags                 []metadata.Tag `json:"tags,omitempty"`
	Aliases              []Alias        `json:"aliases,omitempty"`
}

// Alias is MLflow's RegisteredModelAlias: an alias and the version number it points at.
type Alias struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

// ModelVersion is MLflow's ModelVersion. Version is the per-model sequence number as a decimal string.
type ModelVersion struct {
	Name                 string         `json:"name"`
	Version              string         `json:"version"`
	CreationTimestamp    int64          `json:"creation_timestamp"`
	LastUpdatedTimestamp int64          `json:"last_updated_timestamp"`
	UserID               string         `json:"user_id,omitempty"`
	CurrentStage         string         `json:"current_stage"`
	Description          string         `json:"description"`
	Source               string         `json:"source"`
	RunID                string         `json:"run_id"`
	Status               string         `json:"status"`
	Tags                 []metadata.Tag `json:"tags,omitempty"`
	RunLink              string         `json:"run_link"`
	Aliases              []string       `json:"aliases,omitempty"`
	ModelID              string         `json:"model_id,omitempty"` // MLflow 3: the logged model backing it
}

// FileInfo is MLflow's FileInfo: a basename relative to the listed directory; directories carry no
// size.
type FileInfo struct {
	Path     string `json:"path"`
	IsDir    bool   `json:"is_dir"`
	FileSize *int64 `json:"file_size,omitempty"`
}
