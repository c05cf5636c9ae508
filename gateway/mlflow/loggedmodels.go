package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
)

// MLflow 3 logged models. A logged model belongs to the model (experiment) it was logged in and owns its
// files, which live at mlflow-artifacts:/<experiment id>/models/<model id>/artifacts and are served by
// the mlflow-artifacts proxy like a run's. A version can be backed by one (model-versions/create with
// model_id), copying no bytes.

// loggedModelRPCs serves logged-models/*.
func (s *Tracking) loggedModelRPCs() []rpc.Route {
	return []rpc.Route{
		rpc.Handle(http.MethodPost, "logged-models", s.createLoggedModel),
		rpc.Handle(http.MethodPost, "logged-models/search", s.searchLoggedModels).Limits(searchBody),
		rpc.Handle(http.MethodGet, "logged-models/{model_id}", s.getLoggedModel),
		rpc.Handle(http.MethodPatch, "logged-models/{model_id}", s.finalizeLoggedModel),
		rpc.Handle(http.MethodDelete, "logged-models/{model_id}", s.deleteLoggedModel),
		rpc.Handle(http.MethodPatch, "logged-models/{model_id}/tags", s.setLoggedModelTags),
		rpc.Handle(http.MethodDelete, "logged-models/{model_id}/tags/{tag_key...}", s.deleteLoggedModelTag),
		rpc.Handle(http.MethodPost, "logged-models/{model_id}/params", s.logLoggedModelParams),
		rpc.Handle(http.MethodGet, "logged-models/{model_id}/artifacts/directories", s.listLoggedModelArtifacts),
	}
}

// LoggedModelArtifactURI is where a logged model's files live for the client: the mlflow-artifacts
// proxy, resolved against the tracking URI as a run's artifact_uri is.
func LoggedModelArtifactURI(m *metadata.Model, lm *metadata.LoggedModel) string {
	return "mlflow-artifacts:/" + strconv.FormatInt(m.IID, 10) + "/models/" + lm.LMID.String() + "/artifacts"
}

// loggedModelMessage builds the LoggedModel message: metrics (every point, with its run; nil: read them)
// and the versions the logged model backs come from the store.
func (s *Tracking) loggedModelMessage(ctx context.Context, lm *metadata.LoggedModel, metrics []metadata.Metric) (message.LoggedModel, error) {
	return s.buildLoggedModel(ctx, lm, loggedModelParts{metrics: metrics})
}

// loggedModelParts is what a LoggedModel message is made of besides the logged model, when the caller has
// read it already (a search page, which reads them for all its rows at once); nil fields are read from
// the store.
type loggedModelParts struct {
	model    *metadata.Model     // the model (experiment) the logged model belongs to
	metrics  []metadata.Metric   // every point, with its run
	versions []*metadata.Version // the versions the logged model backs (VersionsBackedBy)
	// names holds the display names of registered models already read, by model ID: the messages of one
	// answer share it, so a model backed by many logged models is read once.
	names map[uint64]string
}

// buildLoggedModel is loggedModelMessage with some parts already read. Errors are the store's, wrapped
// with what was being read.
func (s *Tracking) buildLoggedModel(ctx context.Context, lm *metadata.LoggedModel, parts loggedModelParts) (message.LoggedModel, error) {
	m := parts.model
	if m == nil {
		var err error
		if m, err = s.store.Model(ctx, metadata.ModelRef{ID: lm.ModelID}); err != nil {
			return message.LoggedModel{}, fmt.Errorf("experiment of logged model %s: %w", lm.LMID, err)
		}
	}
	metrics := parts.metrics
	if metrics == nil {
		var err error
		if metrics, err = s.store.LoggedModelMetrics(ctx, lm.ID); err != nil {
			return message.LoggedModel{}, fmt.Errorf("metrics of logged model %s: %w", lm.LMID, err)
		}
	}
	out := message.LoggedModel{
		Info: message.LoggedModelInfo{
			ModelID:                lm.LMID.String(),
			ExperimentID:           strconv.FormatInt(m.IID, 10),
			Name:                   lm.Name,
			CreationTimestampMs:    lm.CreatedAt.UnixMilli(),
			LastUpdatedTimestampMs: lm.UpdatedAt.UnixMilli(),
			ArtifactURI:            LoggedModelArtifactURI(m, lm),
			Status:                 lm.Status.String(),
			StatusMessage:          lm.StatusMessage,
			ModelType:              lm.ModelType,
			Tags:                   lm.Tags,
		},
		Data: message.LoggedModelData{Params: lm.Params, Metrics: toMetrics(metrics)},
	}
	if lm.SourceRunID != 0 {
		out.Info.SourceRunID = lm.SourceRun.String()
	}
	if err := s.addRegistrations(ctx, lm, parts.versions, parts.names, &out.Info); err != nil {
		return message.LoggedModel{}, fmt.Errorf("versions backed by logged model %s: %w", lm.LMID, err)
	}
	return out, nil
}

// ModelVersionsTag lists, on a logged model, the registered versions it backs. MLflow's server writes
// it when a version is created, and the 3.x client then rewrites it with its own entry appended. mlgate
// derives it from the versions that exist, unless a client has set it: then the client's value is
// shown, as MLflow's server shows it.
const ModelVersionsTag = "mlflow.modelVersions"

// addRegistrations fills the registered versions that lm backs (versions; nil: read them) into info: as
// the message's registrations, and as the mlflow.modelVersions tag MLflow's UI reads, written as MLflow's
// server writes it (Python's json.dumps) when no client has set it. names caches registered models'
// display names by ID (nil: a cache of this call's own).
func (s *Tracking) addRegistrations(ctx context.Context, lm *metadata.LoggedModel, versions []*metadata.Version, names map[uint64]string,
	info *message.LoggedModelInfo) error {
	if versions == nil {
		var err error
		if versions, err = s.store.VersionsBackedBy(ctx, lm.ID); err != nil {
			return err
		}
	}
	if len(versions) == 0 {
		return nil
	}
	if names == nil {
		names = map[uint64]string{}
	}
	var tag strings.Builder
	tag.WriteByte('[')
	for i, v := range versions {
		name, ok := names[v.ModelID]
		if !ok {
			m, err := s.store.Model(ctx, metadata.ModelRef{ID: v.ModelID})
			if err != nil {
				return err
			}
			name, names[v.ModelID] = m.DisplayName, m.DisplayName
		}
		if i > 0 {
			tag.WriteString(", ")
		}
		fmt.Fprintf(&tag, `{"name": %s, "version": %d}`, asciiJSONString(name), v.Seq)
		info.Registrations = append(info.Registrations, message.Registration{Name: name, Version: strconv.FormatInt(v.Seq, 10)})
	}
	tag.WriteByte(']')
	if slices.ContainsFunc(info.Tags, func(t metadata.Tag) bool { return t.Key == ModelVersionsTag }) {
		return nil
	}
	info.Tags = append(slices.Clone(info.Tags), metadata.Tag{Key: ModelVersionsTag, Value: tag.String()})
	slices.SortFunc(info.Tags, func(a, b metadata.Tag) int { return strings.Compare(a.Key, b.Key) })
	return nil
}

// asciiJSONString quotes s as Python's json.dumps does by default: non-ASCII characters as \uXXXX
// escapes (surrogate pairs beyond the BMP).
func asciiJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r < 0x10000):
			fmt.Fprintf(&b, `\u%04x`, r)
		case r >= 0x10000:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// createLoggedModelRequest is the input of createLoggedModel.
type createLoggedModelRequest struct {
	ExperimentID rpc.FlexString `json:"experiment_id"`
	Name         string         `json:"name"`
	ModelType    string         `json:"model_type"`
	SourceRunID  string         `json:"source_run_id"`
	Params       []keyValue     `json:"params"`
	Tags         []keyValue     `json:"tags"`

	params []metadata.Param
	tags   []metadata.Tag
}

// Validate checks the params and tags as a run's are checked (httpapi.ErrBadRequest).
func (in *createLoggedModelRequest) Validate() error {
	var err error
	if in.params, in.tags, err = paramsAndTags(in.Params, in.Tags); err != nil {
		return err
	}
	if len(in.Name) > metadata.MaxLoggedModelNameLen || len(in.ModelType) > metadata.MaxModelTypeLen {
		return fmt.Errorf("%w: name and model_type are limited to %d bytes", httpapi.ErrBadRequest, metadata.MaxLoggedModelNameLen)
	}
	return nil
}

func paramsAndTags(ps, ts []keyValue) ([]metadata.Param, []metadata.Tag, error) {
	params := make([]metadata.Param, len(ps))
	for i, p := range ps {
		v, err := paramOf(p)
		if err != nil {
			return nil, nil, err
		}
		params[i] = v
	}
	tags := make([]metadata.Tag, len(ts))
	for i, t := range ts {
		v, err := tagOf(t)
		if err != nil {
			return nil, nil, err
		}
		tags[i] = v
	}
	return params, tags, nil
}

// createLoggedModel creates a logged model, PENDING until finalized, in an experiment (default "0"),
// optionally from a run of the project. Its name defaults to a generated one. Errors: 400 for bad params
// or tags, a deleted experiment, or a deleted source run; 404 for an unknown experiment or run.
func (s *Tracking) createLoggedModel(ctx context.Context, call *rpc.Call, in *createLoggedModelRequest) (any, error) {
	if in.ExperimentID == "" {
		in.ExperimentID = "0"
	}
	m, err := Experiment(ctx, s.store, call.Project.ID, string(in.ExperimentID))
	if err != nil {
		return nil, err
	}
	if err := checkActiveExperiment(m); err != nil {
		return nil, err
	}
	lm := &metadata.LoggedModel{ModelID: m.ID, Name: in.Name, ModelType: in.ModelType, Params: in.params, Tags: in.tags,
		UserID: userOf(ctx, "")}
	if lm.Name == "" {
		lm.Name = randomRunName()
	}
	if in.SourceRunID != "" {
		c, err := Run(ctx, s.store, call.Project.ID, in.SourceRunID, "")
		if err != nil {
			return nil, err
		}
		if err := checkActiveRun(c); err != nil {
			return nil, err
		}
		lm.SourceRunID = c.ID
	}
	if err := s.store.CreateLoggedModel(ctx, lm); err != nil {
		return nil, fmt.Errorf("creating logged model %q: %w", lm.Name, err)
	}
	msg, err := s.loggedModelMessage(ctx, lm, []metadata.Metric{})
	if err != nil {
		return nil, err
	}
	return map[string]any{"model": msg}, nil
}

// modelIDRequest is the input of the RPCs that only name a logged model (in the path).
type modelIDRequest struct{}

func (s *Tracking) loggedModelOf(ctx context.Context, call *rpc.Call) (*metadata.LoggedModel, error) {
	return httpapi.LoggedModelOf(ctx, s.store, call.Project.ID, call.Params["model_id"])
}

// getLoggedModel answers {"model": LoggedModel}; 404 for an unknown logged model.
func (s *Tracking) getLoggedModel(ctx context.Context, call *rpc.Call, _ *modelIDRequest) (any, error) {
	lm, err := s.loggedModelOf(ctx, call)
	if err != nil {
		return nil, err
	}
	msg, err := s.loggedModelMessage(ctx, lm, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"model": msg}, nil
}

// finalizeLoggedModelRequest is the input of finalizeLoggedModel.
type finalizeLoggedModelRequest struct {
	Status *rpc.FlexString `json:"status"`

	status metadata.LoggedModelStatus
}

// Validate reads the status, by name or proto number: READY or UPLOAD_FAILED (httpapi.ErrBadRequest
// otherwise; PENDING is where a model starts, not where it is finalized).
func (in *finalizeLoggedModelRequest) Validate() error {
	if in.Status == nil {
		return rpc.Required("status")
	}
	st, ok := metadata.ParseLoggedModelStatus(string(*in.Status))
	if !ok || st == metadata.LoggedModelPending {
		return fmt.Errorf("%w: invalid value %q for parameter 'status': use LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED",
			httpapi.ErrBadRequest, string(*in.Status))
	}
	in.status = st
	return nil
}

// finalizeLoggedModel sets the status of a logged model once its files are uploaded (READY) or failed
// (UPLOAD_FAILED), and answers the logged model. 404 for an unknown logged model.
func (s *Tracking) finalizeLoggedModel(ctx context.Context, call *rpc.Call, in *finalizeLoggedModelRequest) (any, error) {
	lm, err := s.loggedModelOf(ctx, call)
	if err != nil {
		return nil, err
	}
	if lm, err = s.store.UpdateLoggedModel(ctx, lm.ID, metadata.LoggedModelUpdate{Status: &in.status}); err != nil {
		return nil, fmt.Errorf("logged model %s: %w", call.Params["model_id"], err)
	}
	msg, err := s.loggedModelMessage(ctx, lm, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"model": msg}, nil
}

// deleteLoggedModel deletes a logged model, its metrics and its files; downloads already running finish
// on the old bytes first. A logged model that backs a version is kept: 400 INVALID_PARAMETER_VALUE
// saying so. 404 for an unknown logged model.
func (s *Tracking) deleteLoggedModel(ctx context.Context, call *rpc.Call, _ *modelIDRequest) (any, error) {
	lm, err := s.loggedModelOf(ctx, call)
	if err != nil {
		return nil, err
	}
	err = s.artifacts.DeleteRows(ctx, func(ctx context.Context) ([]*metadata.File, error) {
		return s.store.DeleteLoggedModel(ctx, lm.ID)
	})
	if errors.Is(err, metadata.ErrConflict) {
		return nil, fmt.Errorf("%w: logged model %s backs %s: delete the version first",
			httpapi.ErrBadRequest, lm.LMID, s.versionsBackedBy(ctx, lm))
	}
	if err != nil {
		return nil, fmt.Errorf("logged model %s: %w", lm.LMID, err)
	}
	return struct{}{}, nil
}

// versionsBackedBy names the registered model versions a logged model backs, for messages:
// "version 2 of model 'fraud'", or "a registered model version" when they cannot be read.
func (s *Tracking) versionsBackedBy(ctx context.Context, lm *metadata.LoggedModel) string {
	vs, err := s.store.VersionsBackedBy(ctx, lm.ID)
	if err != nil || len(vs) == 0 {
		return "a registered model version"
	}
	var names []string
	for _, v := range vs {
		m, err := s.store.Model(ctx, metadata.ModelRef{ID: v.ModelID})
		if err != nil {
			return "a registered model version"
		}
		names = append(names, fmt.Sprintf("version %d of model '%s'", v.Seq, m.DisplayName))
	}
	return strings.Join(names, ", ")
}

// loggedModelTagsRequest is the input of setLoggedModelTags.
type loggedModelTagsRequest struct {
	Tags []keyValue `json:"tags"`
	tags []metadata.Tag
}

// Validate checks the tags as run tags are checked (httpapi.ErrBadRequest).
func (in *loggedModelTagsRequest) Validate() (err error) {
	_, in.tags, err = paramsAndTags(nil, in.Tags)
	return err
}

// setLoggedModelTags sets tags of a logged model. 400 for a bad tag; 404 for an unknown logged model.
func (s *Tracking) setLoggedModelTags(ctx context.Context, call *rpc.Call, in *loggedModelTagsRequest) (any, error) {
	return s.updateLoggedModel(ctx, call, metadata.LoggedModelUpdate{SetTags: in.tags})
}

// deleteLoggedModelTag removes a tag of a logged model; an absent tag is not an error. 404 for an unknown
// logged model.
func (s *Tracking) deleteLoggedModelTag(ctx context.Context, call *rpc.Call, _ *modelIDRequest) (any, error) {
	return s.updateLoggedModel(ctx, call, metadata.LoggedModelUpdate{DeleteTags: []string{call.Params["tag_key"]}})
}

// loggedModelParamsRequest is the input of logLoggedModelParams.
type loggedModelParamsRequest struct {
	Params []keyValue `json:"params"`
	params []metadata.Param
}

// Validate checks the params as run params are checked (httpapi.ErrBadRequest).
func (in *loggedModelParamsRequest) Validate() (err error) {
	in.params, _, err = paramsAndTags(in.Params, nil)
	return err
}

// logLoggedModelParams logs params of a logged model; they are immutable as a run's are (the same value
// again is a no-op, another value 400). 404 for an unknown logged model.
func (s *Tracking) logLoggedModelParams(ctx context.Context, call *rpc.Call, in *loggedModelParamsRequest) (any, error) {
	return s.updateLoggedModel(ctx, call, metadata.LoggedModelUpdate{Params: in.params})
}

func (s *Tracking) updateLoggedModel(ctx context.Context, call *rpc.Call, u metadata.LoggedModelUpdate) (any, error) {
	lm, err := s.loggedModelOf(ctx, call)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateLoggedModel(ctx, lm.ID, u); err != nil {
		return nil, fmt.Errorf("logged model %s: %w", lm.LMID, err)
	}
	return struct{}{}, nil
}

// listLoggedModelArtifactsRequest is the input of listLoggedModelArtifacts.
type listLoggedModelArtifactsRequest struct {
	Path string `json:"artifact_directory_path"`
}

// listLoggedModelArtifacts lists one level of a logged model's files, as the mlflow-artifacts proxy lists
// a run's. 400 for a bad path; 404 for an unknown logged model.
func (s *Tracking) listLoggedModelArtifacts(ctx context.Context, call *rpc.Call, in *listLoggedModelArtifactsRequest) (any, error) {
	lm, err := s.loggedModelOf(ctx, call)
	if err != nil {
		return nil, err
	}
	dir := strings.Trim(in.Path, "/")
	entries, err := s.artifacts.ListDir(ctx, lm.ID, dir)
	if err != nil {
		return nil, err
	}
	m, err := s.store.Model(ctx, metadata.ModelRef{ID: lm.ModelID})
	if err != nil {
		return nil, err
	}
	return struct {
		RootURI string             `json:"root_uri"`
		Files   []message.FileInfo `json:"files,omitempty"`
	}{LoggedModelArtifactURI(m, lm), FileInfos(dir, entries)}, nil
}

// searchLoggedModelsRequest is the input of searchLoggedModels.
type searchLoggedModelsRequest struct {
	ExperimentIDs rpc.Strs `json:"experiment_ids"`
	Filter        string   `json:"filter"`
	Datasets      []struct {
		Name   string `json:"dataset_name"`
		Digest string `json:"dataset_digest"`
	} `json:"datasets"`
	OrderBy []struct {
		FieldName     string `json:"field_name"`
		Ascending     *bool  `json:"ascending"`
		DatasetName   string `json:"dataset_name"`
		DatasetDigest string `json:"dataset_digest"`
	} `json:"order_by"`
	MaxResults rpc.I64 `json:"max_results"`
	PageToken  string  `json:"page_token"`

	query runquery.LoggedModelQuery
}

// Validate parses the search: experiment ids, the filter, datasets, order_by and max_results
// (httpapi.ErrBadRequest for any that is malformed).
func (in *searchLoggedModelsRequest) Validate() error {
	for _, id := range in.ExperimentIDs {
		if v, err := strconv.ParseInt(id, 10, 64); err != nil || v < 0 {
			return fmt.Errorf("%w: experiment_ids: %q is not a valid experiment id", httpapi.ErrBadRequest, id)
		}
	}
	q := &in.query
	q.Scope = "logged-models/search"
	var err error
	if q.Limit, err = maxResultsOf(in.MaxResults); err != nil {
		return err
	}
	if q.Filter, err = mlflowfilter.ParseLoggedModelFilter(in.Filter); err != nil {
		return fmt.Errorf("%w: invalid filter: %w", httpapi.ErrBadRequest, err)
	}
	for i, d := range in.Datasets {
		if d.Name == "" {
			return fmt.Errorf("%w: datasets[%d]: missing value for required parameter 'dataset_name'", httpapi.ErrBadRequest, i)
		}
		q.Datasets = append(q.Datasets, runquery.Dataset{Name: d.Name, Digest: d.Digest})
	}
	for i, o := range in.OrderBy {
		if o.FieldName == "" {
			return fmt.Errorf("%w: order_by[%d]: missing value for required parameter 'field_name'", httpapi.ErrBadRequest, i)
		}
		ob, err := mlflowfilter.ParseLoggedModelOrderKey(o.FieldName)
		if err != nil {
			return fmt.Errorf("%w: order_by[%d]: %w", httpapi.ErrBadRequest, i, err)
		}
		ob.Desc = o.Ascending != nil && !*o.Ascending
		q.Order = append(q.Order, ob)
		q.OrderDatasets = append(q.OrderDatasets, runquery.Dataset{Name: o.DatasetName, Digest: o.DatasetDigest})
	}
	return nil
}

// searchLoggedModels answers logged-models/search through the query engine runs/search uses: the filter
// grammar on metrics, params, tags and the logged-model attributes, dataset restrictions, order_by on
// any of them, several experiments and page tokens. Unknown experiment ids contribute nothing. Errors:
// 400 for a malformed search or a token of another one. Answers {} when nothing matches.
func (s *Tracking) searchLoggedModels(ctx context.Context, call *rpc.Call, in *searchLoggedModelsRequest) (any, error) {
	var err error
	if in.query.Models, err = s.searchedModels(ctx, call, in.ExperimentIDs); err != nil {
		return nil, err
	}
	page, err := s.search.SearchLoggedModels(ctx, in.query, in.PageToken)
	if err != nil {
		return nil, err
	}
	out := struct {
		Models        []message.LoggedModel `json:"models,omitempty"`
		NextPageToken string                `json:"next_page_token,omitempty"`
	}{NextPageToken: page.Next}
	// The page's rows come with their model and metrics; read the versions they back in one call when the
	// store can, instead of one per row.
	var versions map[uint64][]*metadata.Version
	if b, ok := s.store.(metadata.BulkReader); ok && len(page.Rows) > 1 {
		ids := make([]uint64, len(page.Rows))
		for i, row := range page.Rows {
			ids[i] = row.LoggedModel.ID
		}
		if versions, err = b.VersionsBackedByAny(ctx, ids); err != nil {
			return nil, fmt.Errorf("versions backed by %d logged models: %w", len(ids), err)
		}
	}
	names := map[uint64]string{}
	for _, row := range page.Rows {
		msg, err := s.buildLoggedModel(ctx, row.LoggedModel, loggedModelParts{model: row.Model, metrics: row.Metrics,
			versions: versions[row.LoggedModel.ID], names: names})
		if err != nil {
			return nil, err
		}
		out.Models = append(out.Models, msg)
	}
	return out, nil
}

// NotFound answers the calls no RPC serves: MLflow's tracing and GenAI routes under /api/2.0/mlflow/
// (traces, assessments, evaluation datasets, scorers) get ENDPOINT_NOT_FOUND saying that mlgate does not
// store traces, so that the client's tracing warns and goes on; nil for every other method and path
// (after /api/2.0/mlflow/, without surrounding "/").
func NotFound(method, path string) error {
	first, _, _ := strings.Cut(path, "/")
	if slices.Contains([]string{"traces", "unified-traces", "get-online-trace-details", "datasets", "scorers"}, first) {
		return TracesUnsupported(method, path)
	}
	return nil
}

// TracesUnsupported is the answer to every tracing and GenAI evaluation route (ENDPOINT_NOT_FOUND).
func TracesUnsupported(method, path string) error {
	return fmt.Errorf("%w: %s %s: mlgate stores models, runs and their artifacts; it does not store traces, "+
		"assessments, evaluation datasets or scorers (MLflow GenAI observability)", httpapi.ErrRouteNotFound, method, path)
}
