package source

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// jsonInt decodes an int64 sent as a JSON number, as a decimal string (protobuf's JSON mapping of
// int64, which the reference server uses for some fields), or as null/absent (0).
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*n = 0
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			*n = 0
			return nil
		}
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = jsonInt(v)
		return nil
	}
	// Some servers write integral values as floats (1.7e12 or 12.0).
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<63-1 {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = jsonInt(f)
	return nil
}

// jsonFloat decodes a double sent as a JSON number or as a string: MLflow writes NaN and the infinities
// as "NaN", "Infinity" and "-Infinity", which encoding/json cannot represent as numbers.
type jsonFloat float64

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = 0
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	switch strings.TrimSpace(s) {
	case "NaN", "nan":
		*f = jsonFloat(math.NaN())
		return nil
	case "Infinity", "inf", "+Infinity", "Inf":
		*f = jsonFloat(math.Inf(1))
		return nil
	case "-Infinity", "-inf", "-Inf":
		*f = jsonFloat(math.Inf(-1))
		return nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*f = jsonFloat(v)
	return nil
}

// jsonString decodes a string that some servers send as a number or null (GitLab's user_id is null;
// a version may come as a number).
type jsonString string

func (s *jsonString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*s = ""
	case len(b) > 0 && b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jsonString(v)
	case len(b) > 0 && (b[0] == '-' || b[0] >= '0' && b[0] <= '9' || b[0] == 't' || b[0] == 'f'):
		*s = jsonString(b)
	default:
		return fmt.Errorf("not a string: %.40s", b)
	}
	return nil
}

type wireKV struct {
	Key   jsonString `json:"key"`
	Value jsonString `json:"value"`
}

type wireMetric struct {
	Key           jsonString `json:"key"`
	Value         jsonFloat  `json:"value"`
	Timestamp     jsonInt    `json:"timestamp"`
	Step          jsonInt    `json:"step"`
	ModelID       jsonString `json:"model_id"`
	DatasetName   jsonString `json:"dataset_name"`
	DatasetDigest jsonString `json:"dataset_digest"`
	RunID         jsonString `json:"run_id"`
}

type wireExperiment struct {
	ExperimentID     jsonString `json:"experiment_id"`
	Name             jsonString `json:"name"`
	ArtifactLocation jsonString `json:"artifact_location"`
	LifecycleStage   jsonString `json:"lifecycle_stage"`
	LastUpdateTime   jsonInt    `json:"last_update_time"`
	CreationTime     jsonInt    `json:"creation_time"`
	Tags             []wireKV   `json:"tags"`
}

type wireRun struct {
	Info struct {
		RunID          jsonString `json:"run_id"`
		RunUUID        jsonString `json:"run_uuid"`
		RunName        jsonString `json:"run_name"`
		ExperimentID   jsonString `json:"experiment_id"`
		UserID         jsonString `json:"user_id"`
		Status         jsonString `json:"status"`
		StartTime      jsonInt    `json:"start_time"`
		EndTime        jsonInt    `json:"end_time"`
		ArtifactURI    jsonString `json:"artifact_uri"`
		LifecycleStage jsonString `json:"lifecycle_stage"`
	} `json:"info"`
	Data struct {
		Metrics []wireMetric `json:"metrics"`
		Params  []wireKV     `json:"params"`
		Tags    []wireKV     `json:"tags"`
	} `json:"data"`
	Inputs struct {
		DatasetInputs []struct {
			Tags    []wireKV `json:"tags"`
			Dataset struct {
				Name       jsonString `json:"name"`
				Digest     jsonString `json:"digest"`
				SourceType jsonString `json:"source_type"`
				Source     jsonString `json:"source"`
				Schema     jsonString `json:"schema"`
				Profile    jsonString `json:"profile"`
			} `json:"dataset"`
		} `json:"dataset_inputs"`
		ModelInputs []struct {
			ModelID jsonString `json:"model_id"`
		} `json:"model_inputs"`
	} `json:"inputs"`
	Outputs struct {
		ModelOutputs []struct {
			ModelID jsonString `json:"model_id"`
			Step    jsonInt    `json:"step"`
		} `json:"model_outputs"`
	} `json:"outputs"`
}

type wireAlias struct {
	Alias   jsonString `json:"alias"`
	Version jsonString `json:"version"`
}

type wireRegisteredModel struct {
	Name                 jsonString         `json:"name"`
	CreationTimestamp    jsonInt            `json:"creation_timestamp"`
	LastUpdatedTimestamp jsonInt            `json:"last_updated_timestamp"`
	Description          jsonString         `json:"description"`
	Tags                 []wireKV           `json:"tags"`
	Aliases              []wireAlias        `json:"aliases"`
	LatestVersions       []wireModelVersion `json:"latest_versions"`
}

type wireModelVersion struct {
	Name                 jsonString   `json:"name"`
	Version              jsonString   `json:"version"`
	CreationTimestamp    jsonInt      `json:"creation_timestamp"`
	LastUpdatedTimestamp jsonInt      `json:"last_updated_timestamp"`
	UserID               jsonString   `json:"user_id"`
	CurrentStage         jsonString   `json:"current_stage"`
	Description          jsonString   `json:"description"`
	Source               jsonString   `json:"source"`
	RunID                jsonString   `json:"run_id"`
	Status               jsonString   `json:"status"`
	RunLink              jsonString   `json:"run_link"`
	ModelID              jsonString   `json:"model_id"`
	Tags                 []wireKV     `json:"tags"`
	Aliases              []jsonString `json:"aliases"`
}

type wireLoggedModel struct {
	Info struct {
		ModelID                jsonString `json:"model_id"`
		ExperimentID           jsonString `json:"experiment_id"`
		Name                   jsonString `json:"name"`
		CreationTimestampMS    jsonInt    `json:"creation_timestamp_ms"`
		LastUpdatedTimestampMS jsonInt    `json:"last_updated_timestamp_ms"`
		ArtifactURI            jsonString `json:"artifact_uri"`
		Status                 jsonString `json:"status"`
		StatusMessage          jsonString `json:"status_message"`
		ModelType              jsonString `json:"model_type"`
		SourceRunID            jsonString `json:"source_run_id"`
		Tags                   []wireKV   `json:"tags"`
	} `json:"info"`
	Data struct {
		Params  []wireKV     `json:"params"`
		Metrics []wireMetric `json:"metrics"`
	} `json:"data"`
}

type wireFileInfo struct {
	Path     jsonString `json:"path"`
	IsDir    bool       `json:"is_dir"`
	FileSize jsonInt    `json:"file_size"`
}

func tags(in []wireKV) []Tag {
	if len(in) == 0 {
		return nil
	}
	out := make([]Tag, len(in))
	for i, t := range in {
		out[i] = Tag{Key: string(t.Key), Value: string(t.Value)}
	}
	return out
}

func params(in []wireKV) []Param {
	if len(in) == 0 {
		return nil
	}
	out := make([]Param, len(in))
	for i, t := range in {
		out[i] = Param{Key: string(t.Key), Value: string(t.Value)}
	}
	return out
}

func metrics(in []wireMetric) []Metric {
	if len(in) == 0 {
		return nil
	}
	out := make([]Metric, len(in))
	for i, m := range in {
		out[i] = m.metric()
	}
	return out
}

func (m wireMetric) metric() Metric {
	return Metric{Key: string(m.Key), Value: float64(m.Value), Timestamp: int64(m.Timestamp), Step: int64(m.Step),
		ModelID: string(m.ModelID), DatasetName: string(m.DatasetName), DatasetDigest: string(m.DatasetDigest), RunID: string(m.RunID)}
}

func (e wireExperiment) experiment() Experiment {
	return Experiment{ID: string(e.ExperimentID), Name: string(e.Name), ArtifactLocation: string(e.ArtifactLocation),
		LifecycleStage: string(e.LifecycleStage), Tags: tags(e.Tags), CreationTime: int64(e.CreationTime), LastUpdateTime: int64(e.LastUpdateTime)}
}

func (w wireRun) run() Run {
	id := string(w.Info.RunID)
	if id == "" {
		id = string(w.Info.RunUUID)
	}
	r := Run{ID: id, ExperimentID: string(w.Info.ExperimentID), Name: string(w.Info.RunName), UserID: string(w.Info.UserID),
		Status: string(w.Info.Status), LifecycleStage: string(w.Info.LifecycleStage), ArtifactURI: string(w.Info.ArtifactURI),
		StartTime: int64(w.Info.StartTime), EndTime: int64(w.Info.EndTime),
		Params: params(w.Data.Params), Tags: tags(w.Data.Tags), LatestMetrics: metrics(w.Data.Metrics)}
	if r.Name == "" {
		// Old servers leave run_name out and keep the name only in the mlflow.runName tag.
		for _, t := range r.Tags {
			if t.Key == "mlflow.runName" {
				r.Name = t.Value
			}
		}
	}
	for _, d := range w.Inputs.DatasetInputs {
		r.DatasetInputs = append(r.DatasetInputs, DatasetInput{Name: string(d.Dataset.Name), Digest: string(d.Dataset.Digest),
			SourceType: string(d.Dataset.SourceType), Source: string(d.Dataset.Source), Schema: string(d.Dataset.Schema),
			Profile: string(d.Dataset.Profile), Tags: tags(d.Tags)})
	}
	for _, m := range w.Inputs.ModelInputs {
		r.ModelInputs = append(r.ModelInputs, string(m.ModelID))
	}
	for _, m := range w.Outputs.ModelOutputs {
		r.ModelOutputs = append(r.ModelOutputs, ModelOutput{ModelID: string(m.ModelID), Step: int64(m.Step)})
	}
	return r
}

// registryMillis normalizes a registry timestamp to milliseconds. GitLab writes seconds there (and
// milliseconds on runs); a value below 1e11 cannot be milliseconds of any date after March 1973 but is
// seconds of a date before year 5000, so the magnitude decides. That also keeps GitLab-style servers that
// do send milliseconds (mlgate's own /api/v4 routes) right.
func registryMillis(v jsonInt) int64 {
	if v > 0 && v < 1e11 {
		return int64(v) * 1000
	}
	return int64(v)
}

func (w wireRegisteredModel) model() RegisteredModel {
	m := RegisteredModel{Name: string(w.Name), Description: string(w.Description), Tags: tags(w.Tags),
		CreationTime: registryMillis(w.CreationTimestamp), LastUpdatedTime: registryMillis(w.LastUpdatedTimestamp)}
	for _, a := range w.Aliases {
		m.Aliases = append(m.Aliases, Alias{Alias: string(a.Alias), Version: string(a.Version)})
	}
	return m
}

func (w wireModelVersion) version() ModelVersion {
	v := ModelVersion{Name: string(w.Name), Version: string(w.Version), Description: string(w.Description), Source: string(w.Source),
		RunID: string(w.RunID), RunLink: string(w.RunLink), Status: string(w.Status), CurrentStage: string(w.CurrentStage),
		UserID: string(w.UserID), ModelID: string(w.ModelID), Tags: tags(w.Tags),
		CreationTime: registryMillis(w.CreationTimestamp), LastUpdatedTime: registryMillis(w.LastUpdatedTimestamp)}
	for _, a := range w.Aliases {
		v.Aliases = append(v.Aliases, string(a))
	}
	return v
}

func (w wireLoggedModel) model() LoggedModel {
	i := w.Info
	return LoggedModel{ID: string(i.ModelID), ExperimentID: string(i.ExperimentID), Name: string(i.Name),
		ArtifactLocation: string(i.ArtifactURI), Status: string(i.Status), StatusMessage: string(i.StatusMessage),
		ModelType: string(i.ModelType), SourceRunID: string(i.SourceRunID), Tags: tags(i.Tags),
		Params: params(w.Data.Params), Metrics: metrics(w.Data.Metrics),
		CreationTime: int64(i.CreationTimestampMS), LastUpdatedTime: int64(i.LastUpdatedTimestampMS)}
}
