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

// Metric is MLflow's Metric: one point. Value may be NaN or infinite on the wire.
type Metric struct {
	Key       string  `json:"key"`
	Value     rpc.F64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
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
	Info   RunInfo  `json:"info"`
	Data   RunData  `json:"data"`
	Inputs struct{} `json:"inputs"`
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
}
