package mlflow_test

import (
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// MLflow's messages as the tests expect them on the wire: written from the contract, not shared with the
// code under test, so that a change to the server's types cannot silently change what is asserted.

type experimentJSON struct {
	ExperimentID     string         `json:"experiment_id"`
	Name             string         `json:"name"`
	ArtifactLocation string         `json:"artifact_location"`
	LifecycleStage   string         `json:"lifecycle_stage"`
	LastUpdateTime   int64          `json:"last_update_time"`
	CreationTime     int64          `json:"creation_time"`
	Tags             []metadata.Tag `json:"tags,omitempty"`
}

type metricJSON struct {
	Key       string  `json:"key"`
	Value     rpc.F64 `json:"value"`
	Timestamp int64   `json:"timestamp"`
	Step      int64   `json:"step"`
}

type runInfoJSON struct {
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

type runDataJSON struct {
	Metrics []metricJSON     `json:"metrics,omitempty"`
	Params  []metadata.Param `json:"params,omitempty"`
	Tags    []metadata.Tag   `json:"tags,omitempty"`
}

type runJSON struct {
	Info   runInfoJSON `json:"info"`
	Data   runDataJSON `json:"data"`
	Inputs struct{}    `json:"inputs"`
}
