package registry_test

import "github.com/mlgate/mlgate/metadata"

// MLflow's registry messages as the tests expect them on the wire: written from the contract, not shared
// with the code under test.

type registeredModelJSON struct {
	Name                 string              `json:"name"`
	CreationTimestamp    int64               `json:"creation_timestamp"`
	LastUpdatedTimestamp int64               `json:"last_updated_timestamp"`
	Description          string              `json:"description,omitempty"`
	LatestVersions       []modelVersionJSON  `json:"latest_versions,omitempty"`
	Tags                 []metadata.Tag      `json:"tags,omitempty"`
	Aliases              []registryAliasJSON `json:"aliases,omitempty"`
}

type registryAliasJSON struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

type modelVersionJSON struct {
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

// runJSON is the part of MLflow's Run message these tests read.
type runJSON struct {
	Info struct {
		RunID        string `json:"run_id"`
		ExperimentID string `json:"experiment_id"`
		ArtifactURI  string `json:"artifact_uri"`
	} `json:"info"`
}
