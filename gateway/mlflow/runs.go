package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata"
)

// runRPCs serves runs/*, metrics/* and logging: a run is a candidate.
func (s *Tracking) runRPCs() []rpc.Route {
	return []rpc.Route{
		// runs/create may create the project: start_run() without set_experiment logs into experiment "0".
		rpc.Handle(http.MethodPost, "runs/create", s.createRun).Creating(),
		rpc.Handle(http.MethodGet, "runs/get", s.getRun),
		rpc.Handle(http.MethodPost, "runs/update", s.updateRun),
		rpc.Handle(http.MethodPost, "runs/delete", s.deleteRun),
		rpc.Handle(http.MethodPost, "runs/restore", s.restoreRun),
		rpc.Handle(http.MethodPost, "runs/log-metric", s.logMetric),
		rpc.Handle(http.MethodPost, "runs/log-parameter", s.logParam),
		rpc.Handle(http.MethodPost, "runs/set-tag", s.setRunTag),
		rpc.Handle(http.MethodPost, "runs/delete-tag", s.deleteRunTag),
		rpc.Handle(http.MethodPost, "runs/log-batch", s.logBatch).Limits(logBatchBody),
		rpc.Handle(http.MethodPost, "runs/log-model", s.logModel),
		rpc.Handle(http.MethodPost, "runs/log-inputs", s.logInputs).Limits(logInputsBody),
		rpc.Handle(http.MethodPost, "runs/outputs", s.logOutputs),
		rpc.Handle(http.MethodGet, "metrics/get-history", s.getMetricHistory),
	}
}

// MLflow's names for the tags mlgate treats specially.
const (
	runNameTag      = "mlflow.runName"
	modelHistoryTag = "mlflow.log-model.history"
	// readOnlyPrefix marks the synthetic tags toRun and toExperiment add on output.
	readOnlyPrefix = "mlgate."
)

// Limits of one runs/log-batch request, MLflow's (the client splits bigger batches itself).
const (
	batchMaxMetrics = 1000
	batchMaxParams  = 100
	batchMaxTags    = 100
	batchMaxTotal   = 1000
)

// Body limits of the logging calls that may carry more than the default 1 MiB (httpapi's defaults bound
// every other call).
var (
	// A log-batch holds at most 1000 entries (MLflow's MAX_ENTITIES_PER_BATCH), the largest a 5000-byte
	// tag value; 100 such tags JSON-escaped as Python's client writes non-ASCII text (\uXXXX) stay under
	// 4 MiB, while MLflow's declared 1 MB (MAX_BATCH_LOG_REQUEST_SIZE) would refuse them. The list limit
	// is ten times MLflow's, so that a batch a little too long gets MLflow's own message (Validate) while
	// a hostile list is refused before it is decoded.
	logBatchBody = httpapi.BodyLimits{MaxBytes: 4 << 20, MaxItems: 10 * batchMaxTotal}
	// A log-inputs call carries up to 1000 datasets (MAX_DATASETS_PER_BATCH), one profile may have 16 MiB
	// (MAX_DATASET_PROFILE_SIZE) and a schema 1 MiB (MAX_DATASET_SCHEMA_SIZE): the largest body mlgate
	// accepts. A profile is held about six times at the peak (the body, the decoded string, the store's
	// JSON record and bbolt's page copy, with growth), so such calls run one at a time.
	logInputsBody = httpapi.BodyLimits{MaxBytes: 24 << 20, MaxItems: 1000, Amplification: 6}
)

// historyMaxResults is the most points metrics/get-history answers at once: what the client asks for.
const historyMaxResults = 25000

// runIDs are the two names the client gives a run's id; run resolves them.
type runIDs struct {
	RunID   string `json:"run_id"`
	RunUUID string `json:"run_uuid"`
}

// keyValue is a param or tag as a request carries it; values may come as numbers from other clients.
type keyValue struct {
	Key   string          `json:"key"`
	Value *rpc.FlexString `json:"value"`
}

// metricIn is a metric point as log-metric and log-batch carry it.
type metricIn struct {
	Key       string   `json:"key"`
	Value     *rpc.F64 `json:"value"`
	Timestamp rpc.I64  `json:"timestamp"`
	Step      rpc.I64  `json:"step"`
	// MLflow 3: the logged model and dataset the point measures.
	ModelID       string `json:"model_id"`
	DatasetName   string `json:"dataset_name"`
	DatasetDigest string `json:"dataset_digest"`
}

// validateKey checks a metric, param or tag key the way MLflow does: at most 250 bytes of letters,
// digits, '_', '-', '.', ' ', '/' and ':', and a name that stays the same when read as a relative path (no
// "..", "//", leading or trailing "/"), because MLflow may store keys as file names. what names the key in
// messages ("metric", "param", "tag"). The error wraps httpapi.ErrBadRequest.
func validateKey(what, key string) error {
	if key == "" {
		return fmt.Errorf("%w: missing value for required parameter 'key' (%s name)", httpapi.ErrBadRequest, what)
	}
	if len(key) > metadata.MaxTagKeyLen {
		return fmt.Errorf("%w: %s name '%.60s…' is %d bytes long, which exceeds the limit of %d",
			httpapi.ErrBadRequest, what, key, len(key), metadata.MaxTagKeyLen)
	}
	for _, r := range key {
		if !unicode.IsLetter(r) && !unicode.IsNumber(r) && !strings.ContainsRune("_-. /:", r) {
			return fmt.Errorf("%w: invalid %s name %q: names may only contain alphanumerics, underscores (_), "+
				"dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)", httpapi.ErrBadRequest, what, key)
		}
	}
	if norm := path.Clean(key); norm != key || norm == "." || strings.HasPrefix(norm, "..") || strings.HasPrefix(norm, "/") {
		return fmt.Errorf("%w: invalid %s name %q: names may be treated as files in certain cases, and must not "+
			"resolve to other names when treated as such; this name would resolve to %q", httpapi.ErrBadRequest, what, key, norm)
	}
	return nil
}

// validateRunTag checks a run tag: its key (validateKey), that it is not one of the read-only mlgate.*
// tags, and its value's length. The error wraps httpapi.ErrBadRequest.
func validateRunTag(key, value string) error {
	if err := validateKey("tag", key); err != nil {
		return err
	}
	if strings.HasPrefix(key, readOnlyPrefix) {
		return fmt.Errorf("%w: tag %q is read-only: tags starting with %q are set by mlgate", httpapi.ErrBadRequest, key, readOnlyPrefix)
	}
	if len(value) > metadata.MaxTagValueLen {
		return fmt.Errorf("%w: tag %q: value is %d bytes long, which exceeds the limit of %d",
			httpapi.ErrBadRequest, key, len(value), metadata.MaxTagValueLen)
	}
	return nil
}

// validateParam checks a param key and value; values are limited to GitLab's 250 bytes
// (metadata.MaxParamValueLen). The error wraps httpapi.ErrBadRequest.
func validateParam(key, value string) error {
	if err := validateKey("param", key); err != nil {
		return err
	}
	if len(value) > metadata.MaxParamValueLen {
		return fmt.Errorf("%w: param %q: value is %d bytes long, which exceeds the limit of %d",
			httpapi.ErrBadRequest, key, len(value), metadata.MaxParamValueLen)
	}
	return nil
}

// metricOf checks a metric point. Missing timestamps are refused only where MLflow requires them
// (log-metric); a batch point without one gets 0, proto2's default. The error wraps httpapi.ErrBadRequest.
func metricOf(in metricIn, timestampRequired bool) (metadata.Metric, error) {
	if err := validateKey("metric", in.Key); err != nil {
		return metadata.Metric{}, err
	}
	if in.Value == nil {
		return metadata.Metric{}, fmt.Errorf("%w: metric %q: missing value for required parameter 'value'", httpapi.ErrBadRequest, in.Key)
	}
	if timestampRequired && !in.Timestamp.Set {
		return metadata.Metric{}, rpc.Required("timestamp")
	}
	if in.Timestamp.V < 0 {
		return metadata.Metric{}, fmt.Errorf("%w: metric %q: invalid timestamp %d", httpapi.ErrBadRequest, in.Key, in.Timestamp.V)
	}
	m := metadata.Metric{Key: in.Key, Value: float64(*in.Value), Timestamp: in.Timestamp.V, Step: in.Step.V,
		DatasetName: in.DatasetName, DatasetDigest: in.DatasetDigest}
	if in.ModelID != "" {
		lmid, ok := metadata.ParseLMID(in.ModelID)
		if !ok {
			return metadata.Metric{}, httpapi.LoggedModelNotFound(in.ModelID, metadata.ErrNotFound)
		}
		m.LoggedModel = lmid
	}
	if len(m.DatasetName) > metadata.MaxDatasetNameLen || len(m.DatasetDigest) > metadata.MaxDatasetDigestLen {
		return metadata.Metric{}, fmt.Errorf("%w: metric %q: dataset_name is limited to %d bytes, dataset_digest to %d",
			httpapi.ErrBadRequest, in.Key, metadata.MaxDatasetNameLen, metadata.MaxDatasetDigestLen)
	}
	return m, nil
}

// validateRunName checks a run name against the candidate name limit. The error wraps httpapi.ErrBadRequest.
func validateRunName(name string) error {
	if len(name) > metadata.MaxCandidateName {
		return fmt.Errorf("%w: run name '%.60s…' is %d bytes long, which exceeds the limit of %d",
			httpapi.ErrBadRequest, name, len(name), metadata.MaxCandidateName)
	}
	return nil
}

// checkActiveRun refuses writes to a deleted run, with MLflow's code and wording (never INVALID_STATE, a 500).
func checkActiveRun(c *metadata.Candidate) error {
	if c.Lifecycle != metadata.Active {
		return fmt.Errorf("%w: the run %s must be in the 'active' state; current state is %s",
			httpapi.ErrBadRequest, c.EID, c.Lifecycle)
	}
	return nil
}

// activeRun resolves the request's run and refuses a deleted one: the common start of every logging RPC.
func (s *Tracking) activeRun(ctx context.Context, call *rpc.Call, ids runIDs) (*metadata.Candidate, error) {
	c, err := Run(ctx, s.store, call.Project.ID, ids.RunID, ids.RunUUID)
	if err != nil {
		return nil, err
	}
	return c, checkActiveRun(c)
}

// modelOf returns the model a candidate belongs to.
func (s *Tracking) modelOf(ctx context.Context, c *metadata.Candidate) (*metadata.Model, error) {
	m, err := s.store.Model(ctx, metadata.ModelRef{ID: c.ModelID})
	if err != nil {
		return nil, fmt.Errorf("experiment of run %s: %w", c.EID, err)
	}
	return m, nil
}

// logToRun writes one batch to an active candidate, in one transaction. A mlflow.runName tag also
// renames the run, as MLflow keeps run_name and that tag in sync; the rename is part of the same
// transaction, so a batch that fails (a changed param, say) renames nothing.
func (s *Tracking) logToRun(ctx context.Context, c *metadata.Candidate, params []metadata.Param, metrics []metadata.Metric, tags []metadata.Tag) error {
	name, rename := "", false
	for _, t := range tags {
		if t.Key == runNameTag {
			name, rename = t.Value, true // the last one wins, as in the store
		}
	}
	rename = rename && name != c.Name
	if rename {
		if err := validateRunName(name); err != nil {
			return err
		}
	}
	write := func(ctx context.Context) error {
		if rename {
			if _, err := s.store.UpdateCandidate(ctx, c.ID, metadata.CandidateUpdate{Name: &name}); err != nil {
				return fmt.Errorf("renaming run %s: %w", c.EID, err)
			}
		}
		if err := s.store.LogBatch(ctx, c.ID, params, metrics, tags); err != nil {
			var named []metadata.LMID
			for _, m := range metrics {
				if !m.LoggedModel.IsZero() {
					named = append(named, m.LoggedModel)
				}
			}
			if errors.Is(err, metadata.ErrNotFound) && len(named) > 0 {
				// The run was just resolved: what is missing is a logged model the points name.
				return loggedModelsNotFound(err, named)
			}
			return fmt.Errorf("run %s: %w", c.EID, err)
		}
		return nil
	}
	if !rename {
		// LogBatch is one transaction by itself; outside an Update a store may write it its fastest way
		// (PostgreSQL: points alone in one round trip).
		return write(ctx)
	}
	return s.store.Update(ctx, write)
}

// loggedModelsNotFound words a miss of one of the logged models a call names (the store does not say
// which, nor whether it exists in another project); err is kept for the log.
func loggedModelsNotFound(err error, named []metadata.LMID) error {
	var ids []string
	for _, id := range named {
		if s := id.String(); !slices.Contains(ids, s) {
			ids = append(ids, s)
		}
	}
	return httpapi.WithClientMessage(err, "Logged model not found: the call names model_id %s, which must be "+
		"logged models of this project", strings.Join(ids, ", "))
}

// createRunRequest is the input of createRun.
type createRunRequest struct {
	ExperimentID rpc.FlexString `json:"experiment_id"`
	UserID       string         `json:"user_id"`
	RunName      string         `json:"run_name"`
	StartTime    rpc.I64        `json:"start_time"`
	Tags         []keyValue     `json:"tags"`
}

// createRun creates a candidate in the experiment's model (experiment_id defaults to "0", the default
// model). run_name defaults to the mlflow.runName tag, else a generated "adjective-animal-123" name, and
// the tag is set to the run name. Errors: 400 for bad tags, a run_name that contradicts the mlflow.runName
// tag, or a deleted experiment; 404 for an unknown experiment.
func (s *Tracking) createRun(ctx context.Context, call *rpc.Call, in *createRunRequest) (any, error) {
	if in.ExperimentID == "" {
		in.ExperimentID = "0"
	}
	tags := make([]metadata.Tag, 0, len(in.Tags)+1)
	tagName, hasTagName := "", false
	for _, t := range in.Tags {
		tag, err := tagOf(t)
		if err != nil {
			return nil, err
		}
		if tag.Key == runNameTag {
			tagName, hasTagName = tag.Value, true
		}
		tags = append(tags, tag)
	}
	name := in.RunName
	switch {
	case name != "" && hasTagName && name != tagName:
		return nil, fmt.Errorf("%w: both 'run_name' argument and 'mlflow.runName' tag are specified, but with "+
			"different values (run_name='%s', mlflow.runName='%s')", httpapi.ErrBadRequest, name, tagName)
	case name == "" && hasTagName && tagName != "":
		name = tagName
	case name == "":
		name = randomRunName()
	}
	if err := validateRunName(name); err != nil {
		return nil, err
	}
	if !hasTagName || tagName != name {
		tags = append(tags, metadata.Tag{Key: runNameTag, Value: name})
	}
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if m.Lifecycle != metadata.Active {
		return nil, fmt.Errorf("%w: the experiment %s must be in the 'active' state; current state is %s",
			httpapi.ErrBadRequest, in.ExperimentID, m.Lifecycle)
	}
	c := &metadata.Candidate{
		Project:   call.Project.ID,
		ModelID:   m.ID,
		Name:      name,
		UserID:    userOf(ctx, in.UserID),
		Status:    metadata.Running,
		StartTime: in.StartTime.V,
	}
	if err := s.store.CreateCandidate(ctx, c, tags); err != nil {
		return nil, fmt.Errorf("creating run in experiment %s: %w", in.ExperimentID, err)
	}
	data, err := s.store.RunData(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return map[string]any{"run": toRun(m, c, data)}, nil
}

// userOf is the run's user: the authenticated principal when there is one (its token's name, else
// its id), so that runs cannot claim another user; else what the client sent.
func userOf(ctx context.Context, given string) string {
	if tok := httpapi.Principal(ctx); tok != nil {
		if tok.Name != "" {
			return tok.Name
		}
		return tok.ID
	}
	return given
}

// tagOf turns a request tag into a validated tag; a missing value is an error, an empty one is fine.
func tagOf(t keyValue) (metadata.Tag, error) {
	if t.Value == nil {
		return metadata.Tag{}, fmt.Errorf("%w: tag %q: missing value for required parameter 'value'", httpapi.ErrBadRequest, t.Key)
	}
	if err := validateRunTag(t.Key, string(*t.Value)); err != nil {
		return metadata.Tag{}, err
	}
	return metadata.Tag{Key: t.Key, Value: string(*t.Value)}, nil
}

// paramOf turns a request param into a validated param.
func paramOf(p keyValue) (metadata.Param, error) {
	if p.Value == nil {
		return metadata.Param{}, fmt.Errorf("%w: param %q: missing value for required parameter 'value'", httpapi.ErrBadRequest, p.Key)
	}
	if err := validateParam(p.Key, string(*p.Value)); err != nil {
		return metadata.Param{}, err
	}
	return metadata.Param{Key: p.Key, Value: string(*p.Value)}, nil
}

// getRun answers {"run": …} with the latest metrics, params and tags; deleted runs are shown too, with
// lifecycle_stage "deleted". 404 for an unknown run.
func (s *Tracking) getRun(ctx context.Context, call *rpc.Call, in *runIDs) (any, error) {
	c, err := Run(ctx, s.store, call.Project.ID, in.RunID, in.RunUUID)
	if err != nil {
		return nil, err
	}
	m, err := s.modelOf(ctx, c)
	if err != nil {
		return nil, err
	}
	data, err := s.store.RunData(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return map[string]any{"run": toRun(m, c, data)}, nil
}

// parseStatus reads a RunStatus given by name ("FINISHED") or by proto number (RUNNING = 1 …
// KILLED = 5).
func parseStatus(v string) (metadata.RunStatus, error) {
	if st, ok := metadata.ParseRunStatus(v); ok {
		return st, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 1 && n <= int(metadata.Killed)+1 {
		return metadata.RunStatus(n - 1), nil
	}
	return 0, fmt.Errorf("%w: invalid value %q for parameter 'status': use RUNNING, SCHEDULED, FINISHED, FAILED or KILLED",
		httpapi.ErrBadRequest, v)
}

// updateRunRequest is the input of updateRun.
type updateRunRequest struct {
	runIDs
	Status  *rpc.FlexString `json:"status"`
	EndTime rpc.I64         `json:"end_time"`
	RunName string          `json:"run_name"`
}

// updateRun changes status, end_time and run_name (only the fields given) and answers {"run_info": …}.
// A new run_name also rewrites the mlflow.runName tag, in the same store transaction as the rename.
// Errors: 400 for a bad status or name, or a deleted run; 404 for an unknown run.
func (s *Tracking) updateRun(ctx context.Context, call *rpc.Call, in *updateRunRequest) (any, error) {
	var u metadata.CandidateUpdate
	if in.Status != nil {
		st, err := parseStatus(string(*in.Status))
		if err != nil {
			return nil, err
		}
		u.Status = &st
	}
	if in.EndTime.Set {
		u.EndTime = &in.EndTime.V
	}
	if in.RunName != "" {
		if err := validateRunName(in.RunName); err != nil {
			return nil, err
		}
		u.Name = &in.RunName
	}
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	err = s.store.Update(ctx, func(ctx context.Context) error {
		updated, err := s.store.UpdateCandidate(ctx, c.ID, u)
		if err != nil {
			return fmt.Errorf("run %s: %w", c.EID, err)
		}
		c = updated
		if u.Name != nil {
			if err := s.store.LogBatch(ctx, c.ID, nil, nil, []metadata.Tag{{Key: runNameTag, Value: c.Name}}); err != nil {
				return fmt.Errorf("run %s: %w", c.EID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m, err := s.modelOf(ctx, c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"run_info": toRunInfo(m, c)}, nil
}

// deleteRun marks a run deleted; its files stay, since versions may be backed by it. Deleting a deleted
// run is a no-op. 404 for an unknown run.
func (s *Tracking) deleteRun(ctx context.Context, call *rpc.Call, in *runIDs) (any, error) {
	return s.setRunLifecycle(ctx, call, in, metadata.Deleted)
}

// restoreRun marks a run active again. 400 while its experiment is deleted (restore the experiment
// instead, which restores the runs deleted with it); 404 for an unknown run.
func (s *Tracking) restoreRun(ctx context.Context, call *rpc.Call, in *runIDs) (any, error) {
	return s.setRunLifecycle(ctx, call, in, metadata.Active)
}

func (s *Tracking) setRunLifecycle(ctx context.Context, call *rpc.Call, in *runIDs, to metadata.Lifecycle) (any, error) {
	c, err := Run(ctx, s.store, call.Project.ID, in.RunID, in.RunUUID)
	if err != nil {
		return nil, err
	}
	if to == metadata.Active {
		m, err := s.modelOf(ctx, c)
		if err != nil {
			return nil, err
		}
		if m.Lifecycle != metadata.Active {
			// An active run in a deleted experiment would be invisible and would not follow its
			// experiment's restore.
			return nil, fmt.Errorf("%w: run %s belongs to the deleted experiment %d; restore the experiment first",
				httpapi.ErrBadRequest, c.EID, m.IID)
		}
	}
	if _, err := s.store.UpdateCandidate(ctx, c.ID, metadata.CandidateUpdate{Lifecycle: &to}); err != nil {
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return struct{}{}, nil
}

// logMetricRequest is the input of logMetric.
type logMetricRequest struct {
	runIDs
	metricIn
	metric metadata.Metric // the point, once Validate passed
}

// Validate checks the point; key, value and timestamp are required (httpapi.ErrBadRequest).
func (in *logMetricRequest) Validate() (err error) {
	in.metric, err = metricOf(in.metricIn, true)
	return err
}

// logMetric appends one point; key, value and timestamp are required, step defaults to 0. An exact
// duplicate point (a retried request) is stored once. 400 for bad input or a deleted run; 404 for an
// unknown run.
func (s *Tracking) logMetric(ctx context.Context, call *rpc.Call, in *logMetricRequest) (any, error) {
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.logToRun(ctx, c, nil, []metadata.Metric{in.metric}, nil)
}

// logParamRequest is the input of logParam.
type logParamRequest struct {
	runIDs
	keyValue
}

// logParam logs an immutable param: the same value again is a no-op, another value is 400.
func (s *Tracking) logParam(ctx context.Context, call *rpc.Call, in *logParamRequest) (any, error) {
	if in.Key == "" {
		return nil, rpc.Required("key")
	}
	p, err := paramOf(in.keyValue)
	if err != nil {
		return nil, err
	}
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.logToRun(ctx, c, []metadata.Param{p}, nil, nil)
}

// setRunTagRequest is the input of setRunTag.
type setRunTagRequest struct {
	runIDs
	keyValue
}

// setRunTag sets a run tag; mlflow.runName renames the run too. 400 for a bad or read-only (mlgate.*) key,
// an over-long value or a deleted run; 404 for an unknown run.
func (s *Tracking) setRunTag(ctx context.Context, call *rpc.Call, in *setRunTagRequest) (any, error) {
	if in.Key == "" {
		return nil, rpc.Required("key")
	}
	t, err := tagOf(in.keyValue)
	if err != nil {
		return nil, err
	}
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.logToRun(ctx, c, nil, nil, []metadata.Tag{t})
}

// deleteRunTagRequest is the input of deleteRunTag.
type deleteRunTagRequest struct {
	runIDs
	Key string `json:"key"`
}

// deleteRunTag removes a run tag. 404 for an unknown run or a key the run has no tag for; 400 for a
// read-only mlgate.* key or a deleted run.
func (s *Tracking) deleteRunTag(ctx context.Context, call *rpc.Call, in *deleteRunTagRequest) (any, error) {
	if in.Key == "" {
		return nil, rpc.Required("key")
	}
	if strings.HasPrefix(in.Key, readOnlyPrefix) {
		return nil, fmt.Errorf("%w: tag %q is read-only: tags starting with %q are set by mlgate", httpapi.ErrBadRequest, in.Key, readOnlyPrefix)
	}
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteTag(ctx, c.ID, in.Key); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return nil, httpapi.NotFound("No tag with name: %s in run with id %s", in.Key, c.EID)
		}
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return struct{}{}, nil
}

// logBatchRequest is the input of logBatch.
type logBatchRequest struct {
	runIDs
	Metrics []metricIn `json:"metrics"`
	Params  []keyValue `json:"params"`
	Tags    []keyValue `json:"tags"`

	// The batch, once Validate passed.
	metrics []metadata.Metric
	params  []metadata.Param
	tags    []metadata.Tag
}

// Validate checks MLflow's limits (≤1000 metrics, ≤100 params, ≤100 tags, ≤1000 in total) and every
// entry, and refuses one param given twice with different values (httpapi.ErrBadRequest).
func (in *logBatchRequest) Validate() error {
	for _, lim := range []struct {
		what  string
		n, of int
	}{
		{"metrics", len(in.Metrics), batchMaxMetrics},
		{"params", len(in.Params), batchMaxParams},
		{"tags", len(in.Tags), batchMaxTags},
		{"total metrics, params, and tags", len(in.Metrics) + len(in.Params) + len(in.Tags), batchMaxTotal},
	} {
		if lim.n > lim.of {
			return fmt.Errorf("%w: a batch logging request can contain at most %d %s. Got %d. "+
				"Please split up the batch across multiple requests and try again", httpapi.ErrBadRequest, lim.of, lim.what, lim.n)
		}
	}
	in.metrics = make([]metadata.Metric, len(in.Metrics))
	for i, mi := range in.Metrics {
		m, err := metricOf(mi, false)
		if err != nil {
			return err
		}
		in.metrics[i] = m
	}
	in.params = make([]metadata.Param, len(in.Params))
	seen := make(map[string]string, len(in.Params))
	for i, pi := range in.Params {
		p, err := paramOf(pi)
		if err != nil {
			return err
		}
		if v, ok := seen[p.Key]; ok && v != p.Value {
			return fmt.Errorf("%w: duplicate parameter keys have been submitted with different values: %q",
				httpapi.ErrBadRequest, p.Key)
		}
		seen[p.Key] = p.Value
		in.params[i] = p
	}
	in.tags = make([]metadata.Tag, len(in.Tags))
	for i, ti := range in.Tags {
		t, err := tagOf(ti)
		if err != nil {
			return err
		}
		in.tags[i] = t
	}
	return nil
}

// logBatch writes metrics, params and tags in one store transaction, all or nothing. Limits, MLflow's:
// ≤1000 metrics, ≤100 params, ≤100 tags, ≤1000 in total; beyond them, and for any bad entry, 400 and
// nothing is written (Validate). A mlflow.runName tag renames the run in the same transaction (see logToRun).
func (s *Tracking) logBatch(ctx context.Context, call *rpc.Call, in *logBatchRequest) (any, error) {
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	if len(in.metrics)+len(in.params)+len(in.tags) == 0 {
		return struct{}{}, nil
	}
	return struct{}{}, s.logToRun(ctx, c, in.params, in.metrics, in.tags)
}

// logModelRequest is the input of logModel.
type logModelRequest struct {
	runIDs
	ModelJSON string `json:"model_json"`
	entry     []byte // ModelJSON compacted, once Validate passed
}

// Validate checks that model_json is a JSON object with MLflow's mandatory model fields
// (httpapi.ErrBadRequest otherwise).
func (in *logModelRequest) Validate() error {
	if in.ModelJSON == "" {
		return rpc.Required("model_json")
	}
	var model map[string]json.RawMessage
	if err := json.Unmarshal([]byte(in.ModelJSON), &model); err != nil {
		return fmt.Errorf("%w: malformed model info: model_json is not a valid JSON object: %v", httpapi.ErrBadRequest, err)
	}
	var missing []string
	for _, f := range []string{"artifact_path", "flavors", "utc_time_created", "run_id"} {
		if _, ok := model[f]; !ok {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: model json is missing mandatory fields: %s", httpapi.ErrBadRequest, strings.Join(missing, ", "))
	}
	var entry bytes.Buffer
	if err := json.Compact(&entry, []byte(in.ModelJSON)); err != nil {
		return fmt.Errorf("%w: malformed model info: %v", httpapi.ErrBadRequest, err)
	}
	in.entry = entry.Bytes()
	return nil
}

// logModel appends model_json to the run tag mlflow.log-model.history (a JSON list), as MLflow does. The
// tag is read and rewritten in one store transaction, so concurrent log-model calls on one run each keep
// their entry. When the list would exceed the tag value limit (5000 bytes) the call is 400 and the tag
// is left as it was: the model's artifacts are already stored, and the client only warns.
func (s *Tracking) logModel(ctx context.Context, call *rpc.Call, in *logModelRequest) (any, error) {
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	return struct{}{}, s.store.Update(ctx, func(ctx context.Context) error {
		data, err := s.store.RunData(ctx, c.ID)
		if err != nil {
			return fmt.Errorf("run %s: %w", c.EID, err)
		}
		var history []json.RawMessage
		for _, t := range data.Tags {
			if t.Key == modelHistoryTag && t.Value != "" {
				if err := json.Unmarshal([]byte(t.Value), &history); err != nil {
					return fmt.Errorf("%w: run %s: tag %s is not a JSON list, so the model cannot be appended to it; "+
						"delete the tag to start a new history", httpapi.ErrBadRequest, c.EID, modelHistoryTag)
				}
			}
		}
		value, err := json.Marshal(append(history, in.entry))
		if err != nil {
			return fmt.Errorf("%w: encoding the model history: %v", httpapi.ErrBadRequest, err)
		}
		if len(value) > metadata.MaxTagValueLen {
			return fmt.Errorf("%w: run %s: recording this model would make tag %s %d bytes long, over the limit "+
				"of %d; the model's artifacts are stored, only its entry in the history is refused",
				httpapi.ErrBadRequest, c.EID, modelHistoryTag, len(value), metadata.MaxTagValueLen)
		}
		return s.logToRun(ctx, c, nil, nil, []metadata.Tag{{Key: modelHistoryTag, Value: string(value)}})
	})
}

// logInputsRequest is the input of logInputs.
type logInputsRequest struct {
	runIDs
	Datasets []struct {
		Tags    []keyValue `json:"tags"`
		Dataset *struct {
			Name       string `json:"name"`
			Digest     string `json:"digest"`
			SourceType string `json:"source_type"`
			Source     string `json:"source"`
			Schema     string `json:"schema"`
			Profile    string `json:"profile"`
		} `json:"dataset"`
	} `json:"datasets"`
	Models []struct {
		ModelID string `json:"model_id"`
	} `json:"models"`

	datasets []metadata.DatasetInput
	models   []metadata.LMID
}

// Validate checks each dataset's mandatory fields and MLflow's size limits (schema, profile, source,
// input tags), and that every model input names a logged model id (httpapi.ErrBadRequest).
func (in *logInputsRequest) Validate() error {
	if in.RunID == "" && in.RunUUID == "" {
		return rpc.Required("run_id")
	}
	for i, d := range in.Datasets {
		if d.Dataset == nil {
			return fmt.Errorf("%w: datasets[%d]: missing value for required parameter 'dataset'", httpapi.ErrBadRequest, i)
		}
		for _, f := range []struct {
			name, v string
			max     int
		}{
			{"name", d.Dataset.Name, metadata.MaxDatasetNameLen}, {"digest", d.Dataset.Digest, metadata.MaxDatasetDigestLen},
			{"source_type", d.Dataset.SourceType, metadata.MaxDatasetSourceType}, {"source", d.Dataset.Source, metadata.MaxDatasetSourceLen},
		} {
			if f.v == "" {
				return fmt.Errorf("%w: datasets[%d].dataset: missing value for required parameter '%s'", httpapi.ErrBadRequest, i, f.name)
			}
			if len(f.v) > f.max {
				return fmt.Errorf("%w: datasets[%d].dataset: '%s' is %d bytes long, which exceeds the limit of %d",
					httpapi.ErrBadRequest, i, f.name, len(f.v), f.max)
			}
		}
		if len(d.Dataset.Schema) > metadata.MaxDatasetSchemaLen || len(d.Dataset.Profile) > metadata.MaxDatasetProfileLen {
			return fmt.Errorf("%w: datasets[%d].dataset: schema is limited to %d bytes and profile to %d",
				httpapi.ErrBadRequest, i, metadata.MaxDatasetSchemaLen, metadata.MaxDatasetProfileLen)
		}
		in2 := metadata.DatasetInput{Dataset: metadata.Dataset{Name: d.Dataset.Name, Digest: d.Dataset.Digest,
			SourceType: d.Dataset.SourceType, Source: d.Dataset.Source, Schema: d.Dataset.Schema, Profile: d.Dataset.Profile}}
		for _, t := range d.Tags {
			if t.Key == "" || t.Value == nil || len(t.Key) > metadata.MaxInputTagKeyLen || len(*t.Value) > metadata.MaxInputTagValueLen {
				return fmt.Errorf("%w: datasets[%d]: input tag %.60q: key must be 1–%d bytes and value at most %d",
					httpapi.ErrBadRequest, i, t.Key, metadata.MaxInputTagKeyLen, metadata.MaxInputTagValueLen)
			}
			in2.Tags = append(in2.Tags, metadata.Tag{Key: t.Key, Value: string(*t.Value)})
		}
		in.datasets = append(in.datasets, in2)
	}
	for i, m := range in.Models {
		lmid, ok := metadata.ParseLMID(m.ModelID)
		if !ok {
			return fmt.Errorf("%w: models[%d]: %q is not a logged model id", httpapi.ErrBadRequest, i, m.ModelID)
		}
		in.models = append(in.models, lmid)
	}
	return nil
}

// logInputs links datasets (stored once per experiment, by name and digest) and logged models to a run
// as its inputs; runs/get shows them as inputs.dataset_inputs and inputs.model_inputs. Logging the same
// input again changes nothing. 400 for a malformed dataset or a deleted run; 404 for an unknown run or
// logged model.
func (s *Tracking) logInputs(ctx context.Context, call *rpc.Call, in *logInputsRequest) (any, error) {
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	if len(in.datasets)+len(in.models) == 0 {
		return struct{}{}, nil
	}
	if err := s.store.LogInputs(ctx, c.ID, in.datasets, in.models); err != nil {
		if errors.Is(err, metadata.ErrNotFound) && len(in.models) > 0 {
			return nil, loggedModelsNotFound(err, in.models)
		}
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return struct{}{}, nil
}

// logOutputsRequest is the input of logOutputs.
type logOutputsRequest struct {
	runIDs
	Models []struct {
		ModelID string  `json:"model_id"`
		Step    rpc.I64 `json:"step"`
	} `json:"models"`

	outputs []metadata.ModelOutput
}

// Validate checks that every output names a logged model id (httpapi.ErrBadRequest).
func (in *logOutputsRequest) Validate() error {
	if in.RunID == "" && in.RunUUID == "" {
		return rpc.Required("run_id")
	}
	for i, m := range in.Models {
		lmid, ok := metadata.ParseLMID(m.ModelID)
		if !ok {
			return fmt.Errorf("%w: models[%d]: %q is not a logged model id", httpapi.ErrBadRequest, i, m.ModelID)
		}
		in.outputs = append(in.outputs, metadata.ModelOutput{LoggedModel: lmid, Step: m.Step.V})
	}
	return nil
}

// logOutputs links logged models to a run as its outputs (runs/get shows outputs.model_outputs). 400 for
// a malformed model id or a deleted run; 404 for an unknown run or logged model.
func (s *Tracking) logOutputs(ctx context.Context, call *rpc.Call, in *logOutputsRequest) (any, error) {
	c, err := s.activeRun(ctx, call, in.runIDs)
	if err != nil {
		return nil, err
	}
	if len(in.outputs) == 0 {
		return struct{}{}, nil
	}
	if err := s.store.LogOutputs(ctx, c.ID, in.outputs); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			ids := make([]metadata.LMID, len(in.outputs))
			for i, o := range in.outputs {
				ids[i] = o.LoggedModel
			}
			return nil, loggedModelsNotFound(err, ids)
		}
		return nil, fmt.Errorf("run %s: %w", c.EID, err)
	}
	return struct{}{}, nil
}

// historyJSON is GetMetricHistory's answer; an empty history is {}.
type historyJSON struct {
	Metrics       []message.Metric `json:"metrics,omitempty"`
	NextPageToken string           `json:"next_page_token,omitempty"`
}

// getMetricHistoryRequest is the input of getMetricHistory.
type getMetricHistoryRequest struct {
	runIDs
	MetricKey  string  `json:"metric_key"`
	MaxResults rpc.I64 `json:"max_results"`
	PageToken  string  `json:"page_token"`
}

// getMetricHistory returns every point of one metric ordered by step, then timestamp, up to max_results
// (default and ceiling 25000, what the client asks for) with a next_page_token when more remain. An
// unknown key on a known run is {}. 400 for a missing metric_key or a foreign page_token; 404 for an
// unknown run.
func (s *Tracking) getMetricHistory(ctx context.Context, call *rpc.Call, in *getMetricHistoryRequest) (any, error) {
	if in.MetricKey == "" {
		return nil, rpc.Required("metric_key")
	}
	limit := historyMaxResults
	if in.MaxResults.Set && in.MaxResults.V > 0 && in.MaxResults.V < historyMaxResults {
		limit = int(in.MaxResults.V)
	}
	c, err := Run(ctx, s.store, call.Project.ID, in.RunID, in.RunUUID)
	if err != nil {
		return nil, err
	}
	// The store pages in smaller pieces; gather them so the client gets one answer per max_results.
	var out historyJSON
	token := in.PageToken
	for {
		ms, next, err := s.store.MetricHistory(ctx, c.ID, in.MetricKey, metadata.Page{Token: token, Limit: limit - len(out.Metrics)})
		if err != nil {
			return nil, fmt.Errorf("metric %q of run %s: %w", in.MetricKey, c.EID, err)
		}
		out.Metrics = append(out.Metrics, toMetrics(ms)...)
		token = next
		if next == "" || len(ms) == 0 || len(out.Metrics) >= limit {
			break
		}
	}
	out.NextPageToken = token
	return out, nil
}

// randomRunName generates a readable run name the way MLflow does: "<adjective>-<animal>-<0..999>".
func randomRunName() string {
	return adjectives[rand.IntN(len(adjectives))] + "-" + animals[rand.IntN(len(animals))] + "-" +
		strconv.Itoa(rand.IntN(1000))
}

var adjectives = []string{
	"able", "abundant", "adaptable", "adorable", "adventurous", "agreeable", "ambitious", "amazing", "amusing",
	"auspicious", "awesome", "beautiful", "bedecked", "bemused", "big", "bittersweet", "blushing", "bold",
	"bouncy", "brawny", "bright", "burly", "bustling", "calm", "capable", "carefree", "caring", "casual",
	"charming", "chill", "classy", "clean", "colorful", "crawling", "dapper", "debonair", "delicate",
	"dazzling", "enchanting", "entertaining", "enthused", "esteemed", "exultant", "fearless", "flawless",
	"fortunate", "friendly", "funny", "gaudy", "gentle", "gifted", "glamorous", "grandiose", "gregarious",
	"handsome", "hilarious", "honorable", "illustrious", "incongruous", "indecisive", "industrious",
	"intelligent", "inquisitive", "invincible", "judicious", "kindly", "languid", "learned", "legendary",
	"likeable", "loud", "luminous", "luxuriant", "lyrical", "magnificent", "marvelous", "masked", "melodic",
	"merciful", "mercurial", "monumental", "mysterious", "nebulous", "nervous", "nimble", "nosy", "omniscient",
	"orderly", "overjoyed", "peaceful", "painted", "persistent", "placid", "polite", "popular", "powerful",
	"puzzled", "rambunctious", "rare", "rebellious", "respected", "resilient", "righteous", "rogue",
	"rumbling", "salty", "sassy", "secretive", "selective", "sedate", "serious", "shivering", "skillful",
	"sincere", "skittish", "silent", "smiling", "sneaky", "sophisticated", "spiffy", "stately", "suave",
	"stylish", "tasteful", "thoughtful", "thundering", "traveling", "treasured", "trusting", "unequaled",
	"upset", "unique", "unleashed", "useful", "upbeat", "unruly", "valuable", "vaunted", "victorious",
	"welcoming", "whimsical", "wistful", "wise", "worried", "youthful", "zealous",
}

var animals = []string{
	"ant", "ape", "asp", "auk", "bass", "bat", "bear", "bee", "bird", "boar", "bug", "calf", "carp", "cat",
	"chimp", "cod", "colt", "conch", "cow", "crab", "crane", "croc", "crow", "cub", "deer", "doe", "dog",
	"dolphin", "donkey", "dove", "duck", "eel", "elk", "fawn", "finch", "fish", "flea", "fly", "foal", "fowl",
	"fox", "frog", "gnat", "gnu", "goat", "goose", "grouse", "grub", "gull", "hare", "hawk", "hen", "hog",
	"horse", "hound", "jay", "kit", "kite", "koi", "lamb", "lark", "loon", "lynx", "mare", "midge", "mink",
	"mole", "moose", "moth", "mouse", "mule", "newt", "owl", "ox", "panda", "penguin", "perch", "pig", "pug",
	"quail", "ram", "rat", "ray", "robin", "roo", "rook", "seal", "shad", "shark", "sheep", "shoat", "shrew",
	"shrike", "shrimp", "skink", "skunk", "sloth", "slug", "smelt", "snail", "snake", "snipe", "sow",
	"sponge", "squid", "squirrel", "stag", "steed", "stoat", "stork", "swan", "tern", "toad", "trout",
	"turtle", "vole", "wasp", "whale", "wolf", "worm", "wren", "yak", "zebra",
}
