package source

// Entity types mirror MLflow's wire format, typed: strings as the source sent them, numbers as
// int64/float64 (NaN and ±Inf included), timestamps in milliseconds since the epoch.

type Tag struct{ Key, Value string }

type Param struct{ Key, Value string }

type Experiment struct {
	ID, Name, ArtifactLocation, LifecycleStage string
	Tags                                       []Tag
	CreationTime, LastUpdateTime               int64
}

type Run struct {
	ID, ExperimentID, Name, UserID, Status, LifecycleStage, ArtifactURI string
	StartTime, EndTime                                                  int64
	Params                                                              []Param
	Tags                                                                []Tag
	LatestMetrics                                                       []Metric
	DatasetInputs                                                       []DatasetInput
	ModelInputs                                                         []string // logged model ids
	ModelOutputs                                                        []ModelOutput
}

type Metric struct {
	Key                                        string
	Value                                      float64
	Timestamp, Step                            int64
	ModelID, DatasetName, DatasetDigest, RunID string
}

type DatasetInput struct {
	Name, Digest, SourceType, Source, Schema, Profile string
	Tags                                              []Tag
}

type ModelOutput struct {
	ModelID string
	Step    int64
}

type RegisteredModel struct {
	Name, Description             string
	Tags                          []Tag
	Aliases                       []Alias
	CreationTime, LastUpdatedTime int64
}

type Alias struct{ Alias, Version string }

type ModelVersion struct {
	Name, Version, Description, Source, RunID, RunLink, Status, CurrentStage, UserID, ModelID string
	Tags                                                                                      []Tag
	Aliases                                                                                   []string
	CreationTime, LastUpdatedTime                                                             int64
}

type LoggedModel struct {
	ID, ExperimentID, Name, ArtifactLocation, Status, StatusMessage, ModelType, SourceRunID string
	Params                                                                                  []Param
	Tags                                                                                    []Tag
	Metrics                                                                                 []Metric
	CreationTime, LastUpdatedTime                                                           int64
}

// FileInfo is one file under an artifact root.
type FileInfo struct {
	Path string // relative to the owner's artifact root, "/"-separated
	Size int64  // -1 when the source did not say
}
