package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/mlgate/mlgate/metadata"
)

// MLflow's JSON is proto3 JSON written by Python: int64 values arrive as numbers or decimal strings,
// doubles as numbers or the strings "NaN", "Infinity", "-Infinity", and GET queries make every value a
// string. These types accept every form the client sends.

// i64 is an optional int64 sent as a number or a decimal string.
type i64 struct {
	V   int64
	Set bool
}

func (x *i64) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(bytes.Trim(b, `"`))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// 1.7e12 style numbers come from some clients for timestamps.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > math.MaxInt64 {
			return fmt.Errorf("%q is not an integer", s)
		}
		v = int64(f)
	}
	x.V, x.Set = v, true
	return nil
}

// f64 is a double that may be NaN or infinite on the wire in either direction.
type f64 float64

func (x *f64) UnmarshalJSON(b []byte) error {
	s := string(bytes.Trim(b, `"`))
	switch s {
	case "NaN", "nan":
		*x = f64(math.NaN())
	case "Infinity", "inf", "+Infinity":
		*x = f64(math.Inf(1))
	case "-Infinity", "-inf":
		*x = f64(math.Inf(-1))
	default:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		*x = f64(v)
	}
	return nil
}

func (x f64) MarshalJSON() ([]byte, error) {
	v := float64(x)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"Infinity"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Infinity"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// flexString is a string field that some clients send as a number (experiment_id: 1).
type flexString string

func (x *flexString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*x = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return errors.New("want a string")
	}
	*x = flexString(n.String())
	return nil
}

// strs is a repeated string field: a JSON array, or a single string (a GET query with one value).
type strs []string

func (x *strs) UnmarshalJSON(b []byte) error {
	var one flexString
	if err := one.UnmarshalJSON(b); err == nil {
		if string(b) != "null" {
			*x = strs{string(one)}
		}
		return nil
	}
	var many []flexString
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("want a list of strings")
	}
	out := make(strs, len(many))
	for i, v := range many {
		out[i] = string(v)
	}
	*x = out
	return nil
}

// experimentJSON is MLflow's Experiment message for a model.
type experimentJSON struct {
	ExperimentID     string         `json:"experiment_id"`
	Name             string         `json:"name"`
	ArtifactLocation string         `json:"artifact_location"`
	LifecycleStage   string         `json:"lifecycle_stage"`
	LastUpdateTime   int64          `json:"last_update_time"`
	CreationTime     int64          `json:"creation_time"`
	Tags             []metadata.Tag `json:"tags,omitempty"`
}

func toExperiment(m *metadata.Model) experimentJSON {
	id := strconv.FormatInt(m.IID, 10)
	tags := append([]metadata.Tag{{Key: "mlgate.name", Value: m.Name}}, m.Tags...)
	return experimentJSON{
		ExperimentID:     id,
		Name:             m.DisplayName,
		ArtifactLocation: "mlflow-artifacts:/" + id,
		LifecycleStage:   m.Lifecycle.String(),
		LastUpdateTime:   m.UpdatedAt.UnixMilli(),
		CreationTime:     m.CreatedAt.UnixMilli(),
		Tags:             tags,
	}
}

// metricJSON is MLflow's Metric message.
type metricJSON struct {
	Key       string `json:"key"`
	Value     f64    `json:"value"`
	Timestamp int64  `json:"timestamp"`
	Step      int64  `json:"step"`
}

func toMetrics(ms []metadata.Metric) []metricJSON {
	out := make([]metricJSON, len(ms))
	for i, m := range ms {
		out[i] = metricJSON{Key: m.Key, Value: f64(m.Value), Timestamp: m.Timestamp, Step: m.Step}
	}
	return out
}

// runInfoJSON is MLflow's RunInfo message for a candidate.
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

// runDataJSON is MLflow's RunData message.
type runDataJSON struct {
	Metrics []metricJSON     `json:"metrics,omitempty"`
	Params  []metadata.Param `json:"params,omitempty"`
	Tags    []metadata.Tag   `json:"tags,omitempty"`
}

// runJSON is MLflow's Run message.
type runJSON struct {
	Info   runInfoJSON `json:"info"`
	Data   runDataJSON `json:"data"`
	Inputs struct{}    `json:"inputs"`
}

// runArtifactURI is where a run's artifacts live for the client: the mlflow-artifacts proxy, resolved
// against the tracking URI, so a per-project tracking URI keeps its project prefix.
func runArtifactURI(m *metadata.Model, c *metadata.Candidate) string {
	return "mlflow-artifacts:/" + strconv.FormatInt(m.IID, 10) + "/" + c.EID.String() + "/artifacts"
}

func toRunInfo(m *metadata.Model, c *metadata.Candidate) runInfoJSON {
	return runInfoJSON{
		RunID:          c.EID.String(),
		RunUUID:        c.EID.String(),
		RunName:        c.Name,
		ExperimentID:   strconv.FormatInt(m.IID, 10),
		UserID:         c.UserID,
		Status:         c.Status.String(),
		StartTime:      c.StartTime,
		EndTime:        c.EndTime,
		ArtifactURI:    runArtifactURI(m, c),
		LifecycleStage: c.Lifecycle.String(),
	}
}

// toRun builds the full Run message; data may be nil for a run without params, metrics or tags.
// The synthetic tag mlgate.candidate_iid tells MLflow users the run's package coordinates.
func toRun(m *metadata.Model, c *metadata.Candidate, data *metadata.RunData) runJSON {
	out := runJSON{Info: toRunInfo(m, c)}
	if data != nil {
		out.Data.Metrics = toMetrics(data.Metrics)
		out.Data.Params = data.Params
		out.Data.Tags = data.Tags
	}
	out.Data.Tags = append(out.Data.Tags, metadata.Tag{Key: "mlgate.candidate_iid", Value: strconv.FormatInt(c.IID, 10)})
	return out
}

// experiment resolves an experiment_id of the request's project: "0" is the project's default model,
// created on first use. A missing id or one that is not a non-negative integer is ErrBadRequest; an
// unknown one is metadata.ErrNotFound.
func (s *Server) experiment(ctx context.Context, req *mlflowRequest, id string) (*metadata.Model, error) {
	if id == "" {
		return nil, required("experiment_id")
	}
	iid, err := strconv.ParseInt(id, 10, 64)
	if err != nil || iid < 0 {
		return nil, fmt.Errorf("%w: experiment_id %q is not a valid experiment id", ErrBadRequest, id)
	}
	if iid == 0 {
		return s.store.EnsureDefaultModel(ctx, req.project.ID)
	}
	m, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, IID: iid})
	if err != nil {
		return nil, fmt.Errorf("no experiment with id %s: %w", id, err)
	}
	return m, nil
}

// modelByName finds a model by display name first, then by slug, as MLflow names both experiments and
// registered models by the display name. A name that could not exist is metadata.ErrNotFound.
func (s *Server) modelByName(ctx context.Context, req *mlflowRequest, name string) (*metadata.Model, error) {
	m, err := s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, DisplayName: name})
	if errors.Is(err, metadata.ErrNotFound) || errors.Is(err, metadata.ErrInvalid) {
		m, err = s.store.Model(ctx, metadata.ModelRef{Project: req.project.ID, Name: name})
	}
	if errors.Is(err, metadata.ErrInvalid) {
		err = fmt.Errorf("%w: %w", metadata.ErrNotFound, err)
	}
	return m, err
}

// run resolves run_id / run_uuid (either, or both when equal) to a candidate of the request's project.
// Missing or malformed ids are ErrBadRequest; an unknown one is metadata.ErrNotFound.
func (s *Server) run(ctx context.Context, req *mlflowRequest, runID, runUUID string) (*metadata.Candidate, error) {
	if runID == "" {
		runID = runUUID
	} else if runUUID != "" && runUUID != runID {
		return nil, fmt.Errorf("%w: run_id %q and run_uuid %q differ", ErrBadRequest, runID, runUUID)
	}
	if runID == "" {
		return nil, required("run_id")
	}
	eid, ok := metadata.ParseEID(runID)
	if !ok || eid == (metadata.EID{}) {
		return nil, fmt.Errorf("run with id=%s not found: %w", runID, metadata.ErrNotFound)
	}
	c, err := s.store.Candidate(ctx, metadata.CandidateRef{EID: eid, Project: req.project.ID})
	if err != nil {
		return nil, fmt.Errorf("run with id=%s not found: %w", runID, err)
	}
	return c, nil
}
