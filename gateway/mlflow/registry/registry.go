// Package registry serves the MLflow model registry on the merged model.
//
// A registered model is a model (the same record as the experiment of that name), a model version is a
// metadata.Version: MLflow's "version" is its per-model Seq as a decimal string, and its semver (the
// package version) is exposed as an extra alias and as the synthetic tag mlgate.semver.
//
// Registry visibility rule: registered-models/* sees a model only when its InRegistry flag is set. The flag
// is set by registered-models/create (which adopts an existing experiment of that name), by
// model-versions/create and by a package upload of a semver; every way of creating a version sets it, so
// "in the registry or with versions" is the same set. registered-models/delete removes the versions and
// aliases and clears the flag, leaving the model (and its runs and tags, which the experiment shares) to
// experiments/*. experiments/* shows every model. Neither MLflow view is flooded by the other's objects.
package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/internal/pagetoken"
	"github.com/mlgate/mlgate/gateway/mlflow"
	"github.com/mlgate/mlgate/gateway/mlflow/message"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/gateway/runquery"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// Deps is what the registry needs.
type Deps struct {
	Store metadata.Store
}

// Registry serves registered-models/* and model-versions/*.
type Registry struct {
	store metadata.Store
}

// New builds the registry API.
func New(d Deps) *Registry {
	return &Registry{store: d.Store}
}

// Routes serves registered-models/* and model-versions/*: a registered model is a model.
func (s *Registry) Routes() []rpc.Route {
	return []rpc.Route{
		rpc.Handle(http.MethodPost, "registered-models/create", s.createRegisteredModel).Creating(),
		rpc.Handle(http.MethodGet, "registered-models/get", s.getRegisteredModel),
		rpc.Handle(http.MethodPatch, "registered-models/update", s.updateRegisteredModel),
		rpc.Handle(http.MethodPost, "registered-models/rename", s.renameRegisteredModel),
		rpc.Handle(http.MethodDelete, "registered-models/delete", s.deleteRegisteredModel),
		rpc.Handle(http.MethodGet, "registered-models/search", s.searchRegisteredModels),
		rpc.Handle(http.MethodPost, "registered-models/get-latest-versions", s.getLatestVersions),
		rpc.Handle(http.MethodGet, "registered-models/get-latest-versions", s.getLatestVersions),
		rpc.Handle(http.MethodPost, "registered-models/set-tag", s.setRegisteredModelTag),
		rpc.Handle(http.MethodDelete, "registered-models/delete-tag", s.deleteRegisteredModelTag),
		rpc.Handle(http.MethodPost, "registered-models/alias", s.setRegisteredModelAlias),
		rpc.Handle(http.MethodGet, "registered-models/alias", s.getModelVersionByAlias),
		rpc.Handle(http.MethodDelete, "registered-models/alias", s.deleteRegisteredModelAlias),
		rpc.Handle(http.MethodPost, "model-versions/create", s.createModelVersion),
		rpc.Handle(http.MethodGet, "model-versions/get", s.getModelVersion),
		rpc.Handle(http.MethodPatch, "model-versions/update", s.updateModelVersion),
		rpc.Handle(http.MethodDelete, "model-versions/delete", s.deleteModelVersion),
		rpc.Handle(http.MethodGet, "model-versions/search", s.searchModelVersions),
		rpc.Handle(http.MethodGet, "model-versions/get-download-uri", s.getModelVersionDownloadURI),
		rpc.Handle(http.MethodPost, "model-versions/set-tag", s.setModelVersionTag),
		rpc.Handle(http.MethodDelete, "model-versions/delete-tag", s.deleteModelVersionTag),
		rpc.Handle(http.MethodPost, "model-versions/transition-stage", s.transitionModelVersionStage),
	}
}

// Tag keys of the mlgate. namespace that the registry reads or writes itself.
const (
	semverTag        = "mlgate.semver"  // synthetic, read-only: a version's semver
	nameTag          = "mlgate.name"    // synthetic, read-only: a model's slug
	versionTag       = "mlgate.version" // input of model-versions/create: the semver to use
	gitlabVersionTag = "gitlab.version" // GitLab's spelling of the same input, kept as a tag
	stageNone        = "None"
)

// Search limits: the client's defaults are 100 registered models and 10000 versions per page. Larger
// requests are clamped, never refused.
const (
	modelsPageDefault   = 100
	modelsPageMax       = 1000
	versionsPageDefault = 10000
	versionsPageMax     = 10000
)

// mlflowError is an error whose message is exactly what MLflow would say, classified by kind.
type mlflowError struct {
	msg  string
	kind error
}

func (e *mlflowError) Error() string         { return e.msg }
func (e *mlflowError) Unwrap() error         { return e.kind }
func (e *mlflowError) ClientMessage() string { return e.msg }

func mlflowErrorf(kind error, format string, args ...any) error {
	return &mlflowError{msg: fmt.Sprintf(format, args...), kind: kind}
}

// protoBool is a proto bool sent as a JSON bool or, from a GET query, as a string.
type protoBool bool

func (b *protoBool) UnmarshalJSON(data []byte) error {
	switch strings.ToLower(strings.Trim(string(data), `"`)) {
	case "true", "1":
		*b = true
	case "false", "0", "", "null":
		*b = false
	default:
		return errors.New("want true or false")
	}
	return nil
}

// stageOf is a version's stage as MLflow shows it: "None" when never set.
func stageOf(v *metadata.Version) string {
	if v.Stage == "" {
		return stageNone
	}
	return v.Stage
}

// canonicalStage maps a stage name in any case to MLflow's spelling. An unknown name is
// httpapi.ErrBadRequest, worded as MLflow words it.
func canonicalStage(stage string) (string, error) {
	for _, st := range metadata.VersionStages {
		if strings.EqualFold(st, stage) {
			return st, nil
		}
	}
	return "", mlflowErrorf(httpapi.ErrBadRequest, "Invalid Model Version stage: %s. Value must be one of %s.",
		stage, strings.Join(metadata.VersionStages, ", "))
}

// versionInfo is what a ModelVersion message needs beyond the version record.
type versionInfo struct {
	model   *metadata.Model
	aliases map[int64][]string // seq → real aliases, sorted
	cands   map[uint64]*metadata.Candidate
	logged  map[uint64]*metadata.LoggedModel
}

// versionInfoOf loads the aliases of m for rendering its versions.
func (s *Registry) versionInfoOf(ctx context.Context, m *metadata.Model) (*versionInfo, error) {
	list, err := s.store.Aliases(ctx, m.ID)
	if err != nil {
		return nil, fmt.Errorf("aliases of model %q: %w", m.DisplayName, err)
	}
	info := &versionInfo{model: m, aliases: map[int64][]string{}, cands: map[uint64]*metadata.Candidate{},
		logged: map[uint64]*metadata.LoggedModel{}}
	for _, a := range list {
		info.aliases[a.Seq] = append(info.aliases[a.Seq], a.Alias)
	}
	return info, nil
}

// candidate returns a version's backing candidate, caching it for the rest of the request.
func (s *Registry) candidateOf(ctx context.Context, info *versionInfo, id uint64) (*metadata.Candidate, error) {
	if c, ok := info.cands[id]; ok {
		return c, nil
	}
	c, err := s.store.Candidate(ctx, metadata.CandidateRef{ID: id})
	if err != nil {
		return nil, fmt.Errorf("candidate backing a version of %q: %w", info.model.DisplayName, err)
	}
	info.cands[id] = c
	return c, nil
}

// toModelVersion renders v. Its semver is listed after its real aliases so that models:/name@<semver>
// reads as an alias to the user, and it is added as the read-only tag mlgate.semver.
// loggedModelOf returns a logged model backing a version, read once per reply.
func (s *Registry) loggedModelOf(ctx context.Context, info *versionInfo, id uint64) (*metadata.LoggedModel, error) {
	if lm, ok := info.logged[id]; ok {
		return lm, nil
	}
	lm, err := s.store.LoggedModel(ctx, metadata.LoggedModelRef{ID: id})
	if err != nil {
		return nil, fmt.Errorf("logged model backing a version of %q: %w", info.model.DisplayName, err)
	}
	info.logged[id] = lm
	return lm, nil
}

// runAndModelOf returns the run_id and model_id a version shows: its candidate's run id, or its logged
// model's id and source run (none when the logged model has no source run).
func (s *Registry) runAndModelOf(ctx context.Context, info *versionInfo, v *metadata.Version) (runID, modelID string, err error) {
	if v.LoggedModelID != 0 {
		lm, err := s.loggedModelOf(ctx, info, v.LoggedModelID)
		if err != nil {
			return "", "", err
		}
		if lm.SourceRunID != 0 {
			runID = lm.SourceRun.String()
		}
		return runID, lm.LMID.String(), nil
	}
	c, err := s.candidateOf(ctx, info, v.CandidateID)
	if err != nil {
		return "", "", err
	}
	return c.EID.String(), "", nil
}

func (s *Registry) toModelVersion(ctx context.Context, info *versionInfo, v *metadata.Version) (message.ModelVersion, error) {
	runID, modelID, err := s.runAndModelOf(ctx, info, v)
	if err != nil {
		return message.ModelVersion{}, err
	}
	tags := append(slices.Clone(v.Tags), metadata.Tag{Key: semverTag, Value: v.Semver})
	aliases := append(slices.Clone(info.aliases[v.Seq]), v.Semver)
	return message.ModelVersion{
		Name:                 info.model.DisplayName,
		Version:              strconv.FormatInt(v.Seq, 10),
		CreationTimestamp:    v.CreatedAt.UnixMilli(),
		LastUpdatedTimestamp: v.UpdatedAt.UnixMilli(),
		UserID:               v.UserID,
		CurrentStage:         stageOf(v),
		Description:          v.Description,
		Source:               v.Source,
		RunID:                runID,
		Status:               "READY",
		Tags:                 tags,
		RunLink:              v.RunLink,
		Aliases:              aliases,
		ModelID:              modelID,
	}, nil
}

// allVersions returns every version of a model in Seq order.
func (s *Registry) allVersions(ctx context.Context, modelID uint64) ([]*metadata.Version, error) {
	var out []*metadata.Version
	page := metadata.Page{Limit: 1000}
	for {
		vs, next, err := s.store.ListVersions(ctx, modelID, page)
		if err != nil {
			return nil, fmt.Errorf("versions of model %d: %w", modelID, err)
		}
		out = append(out, vs...)
		if next == "" {
			return out, nil
		}
		page.Token = next
	}
}

// latestPerStage returns the highest version per stage among versions (in Seq order), restricted to
// stages when it is non-empty, in Seq order.
func latestPerStage(versions []*metadata.Version, stages map[string]bool) []*metadata.Version {
	latest := map[string]*metadata.Version{}
	for _, v := range versions {
		st := stageOf(v)
		if len(stages) > 0 && !stages[st] {
			continue
		}
		if cur, ok := latest[st]; !ok || v.Seq > cur.Seq {
			latest[st] = v
		}
	}
	out := make([]*metadata.Version, 0, len(latest))
	for _, v := range latest {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *metadata.Version) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// lastUpdated is a registered model's last_updated_timestamp: MLflow moves it when a version is
// created, which the model record alone does not show.
func lastUpdated(m *metadata.Model, versions []*metadata.Version) int64 {
	ts := m.UpdatedAt.UnixMilli()
	for _, v := range versions {
		ts = max(ts, v.CreatedAt.UnixMilli())
	}
	return ts
}

// modelTags are a model's tags plus the synthetic mlgate.name (its package name).
func modelTags(m *metadata.Model) []metadata.Tag {
	return append(slices.Clone(m.Tags), metadata.Tag{Key: nameTag, Value: m.Name})
}

// toRegisteredModel renders m with its latest version per stage and its aliases. versions may be nil,
// in which case they are loaded.
func (s *Registry) toRegisteredModel(ctx context.Context, m *metadata.Model, versions []*metadata.Version) (message.RegisteredModel, error) {
	if versions == nil {
		var err error
		if versions, err = s.allVersions(ctx, m.ID); err != nil {
			return message.RegisteredModel{}, err
		}
	}
	info, err := s.versionInfoOf(ctx, m)
	if err != nil {
		return message.RegisteredModel{}, err
	}
	out := message.RegisteredModel{
		Name:                 m.DisplayName,
		CreationTimestamp:    m.CreatedAt.UnixMilli(),
		LastUpdatedTimestamp: lastUpdated(m, versions),
		Description:          m.Description,
		Tags:                 modelTags(m),
	}
	for _, v := range latestPerStage(versions, nil) {
		mv, err := s.toModelVersion(ctx, info, v)
		if err != nil {
			return message.RegisteredModel{}, err
		}
		out.LatestVersions = append(out.LatestVersions, mv)
	}
	seqs := make([]int64, 0, len(info.aliases))
	for seq := range info.aliases {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		for _, a := range info.aliases[seq] {
			out.Aliases = append(out.Aliases, message.Alias{Alias: a, Version: strconv.FormatInt(seq, 10)})
		}
	}
	slices.SortFunc(out.Aliases, func(a, b message.Alias) int { return strings.Compare(a.Alias, b.Alias) })
	return out, nil
}

// Input validation.

// checkName checks a registered model name parameter: present and at most 255 characters.
func checkName(field, name string) error {
	if name == "" {
		return rpc.Required(field)
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > metadata.MaxDisplayNameLen {
		return mlflowErrorf(httpapi.ErrBadRequest, "Invalid value for parameter '%s': must be 1-%d characters of UTF-8",
			field, metadata.MaxDisplayNameLen)
	}
	return nil
}

// checkTag validates a user tag of a registered model or version. Keys in the mlgate. namespace
// are mlgate's own and refused, except the inputs listed in allowed.
func checkTag(t metadata.Tag, allowed ...string) error {
	if t.Key == "" {
		return rpc.Required("key")
	}
	if len(t.Key) > metadata.MaxTagKeyLen {
		return mlflowErrorf(httpapi.ErrBadRequest, "Tag key '%.60s...' exceeds the maximum length of %d", t.Key, metadata.MaxTagKeyLen)
	}
	if len(t.Value) > metadata.MaxTagValueLen {
		return mlflowErrorf(httpapi.ErrBadRequest, "Tag value for key '%s' exceeds the maximum length of %d", t.Key, metadata.MaxTagValueLen)
	}
	if strings.HasPrefix(t.Key, "mlgate.") && !slices.Contains(allowed, t.Key) {
		return mlflowErrorf(httpapi.ErrBadRequest, "Tag key '%s' is reserved: keys starting with 'mlgate.' are set by mlgate", t.Key)
	}
	return nil
}

func checkTags(tags []metadata.Tag, allowed ...string) error {
	for _, t := range tags {
		if err := checkTag(t, allowed...); err != nil {
			return err
		}
	}
	return nil
}

// Resolvers.

// model resolves a registered model name (display name, then slug) to a model in the registry.
// ErrNotFound, in MLflow's words, for an unknown name or a model that is only an experiment.
func (s *Registry) model(ctx context.Context, call *rpc.Call, name string) (*metadata.Model, error) {
	if err := checkName("name", name); err != nil {
		return nil, err
	}
	m, err := mlflow.ModelByName(ctx, s.store, call.Project.ID, name)
	if errors.Is(err, metadata.ErrNotFound) || err == nil && !m.InRegistry {
		return nil, mlflowErrorf(metadata.ErrNotFound, "Registered Model with name=%s not found", name)
	}
	if err != nil {
		return nil, fmt.Errorf("registered model %q: %w", name, err)
	}
	return m, nil
}

// versionRef turns MLflow's version parameter into a store ref: all digits is the sequence
// number, anything else must be a semver. httpapi.ErrBadRequest for neither, ErrNotFound for version 0.
func versionRef(modelID uint64, version string) (metadata.VersionRef, error) {
	if version == "" {
		return metadata.VersionRef{}, rpc.Required("version")
	}
	if strings.Trim(version, "0123456789") == "" {
		seq, err := strconv.ParseInt(version, 10, 64)
		if err != nil {
			return metadata.VersionRef{}, mlflowErrorf(httpapi.ErrBadRequest, "Invalid value for parameter 'version': %q is out of range", version)
		}
		if seq == 0 {
			return metadata.VersionRef{}, mlflowErrorf(metadata.ErrNotFound, "Model Version (version=%s) not found", version)
		}
		return metadata.VersionRef{ModelID: modelID, Seq: seq}, nil
	}
	if err := pkgtypes.ValidateSemver(version); err != nil {
		return metadata.VersionRef{}, mlflowErrorf(httpapi.ErrBadRequest,
			"Invalid value for parameter 'version': %.60q is neither a version number nor a semver", version)
	}
	return metadata.VersionRef{ModelID: modelID, Semver: version}, nil
}

// version resolves a registered model name and a version number or semver.
func (s *Registry) version(ctx context.Context, call *rpc.Call, name, version string) (*metadata.Model, *metadata.Version, error) {
	m, err := s.model(ctx, call, name)
	if err != nil {
		return nil, nil, err
	}
	ref, err := versionRef(m.ID, version)
	if err != nil {
		return nil, nil, err
	}
	v, err := s.store.Version(ctx, ref)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, nil, mlflowErrorf(metadata.ErrNotFound, "Model Version (name=%s, version=%s) not found", name, version)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("model %q version %s: %w", name, version, err)
	}
	return m, v, nil
}

// versionReply renders one version as {"model_version": …}.
func (s *Registry) versionReply(ctx context.Context, m *metadata.Model, v *metadata.Version) (any, error) {
	info, err := s.versionInfoOf(ctx, m)
	if err != nil {
		return nil, err
	}
	mv, err := s.toModelVersion(ctx, info, v)
	if err != nil {
		return nil, err
	}
	return map[string]any{"model_version": mv}, nil
}

func (s *Registry) modelReply(ctx context.Context, m *metadata.Model) (any, error) {
	rm, err := s.toRegisteredModel(ctx, m, nil)
	if err != nil {
		return nil, err
	}
	return map[string]any{"registered_model": rm}, nil
}

// Registered models.

// createRegisteredModelRequest is the input of createRegisteredModel.
type createRegisteredModelRequest struct {
	Name        string         `json:"name"`
	Tags        []metadata.Tag `json:"tags"`
	Description string         `json:"description"`
}

// createRegisteredModel creates a model whose display name is name, or adopts the experiment of that name
// into the registry (setting description and tags). RESOURCE_ALREADY_EXISTS when the model is already in
// the registry; INVALID_PARAMETER_VALUE for bad names or tags and for a deleted experiment of that name.
func (s *Registry) createRegisteredModel(ctx context.Context, call *rpc.Call, in *createRegisteredModelRequest) (any, error) {
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	for _, t := range in.Tags {
		// A registered model is an experiment: its tags follow the same rules (mlgate.semver_bump allowed).
		if err := mlflow.ValidateExperimentTag(t.Key, t.Value); err != nil {
			return nil, err
		}
	}
	exists := mlflowErrorf(metadata.ErrExists, "Registered Model (name=%s) already exists.", in.Name)
	m, err := mlflow.ModelByName(ctx, s.store, call.Project.ID, in.Name)
	switch {
	case errors.Is(err, metadata.ErrNotFound):
		m = &metadata.Model{Project: call.Project.ID, DisplayName: in.Name, Description: in.Description,
			Tags: in.Tags, InRegistry: true}
		if err := s.store.CreateModel(ctx, m); errors.Is(err, metadata.ErrExists) {
			return nil, exists // a concurrent create won
		} else if err != nil {
			return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
		}
	case err != nil:
		return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
	case m.InRegistry:
		return nil, exists
	case m.Lifecycle == metadata.Deleted:
		return nil, mlflowErrorf(httpapi.ErrBadRequest,
			"Experiment '%s' is deleted: restore it before registering it, or choose another name", in.Name)
	default:
		inRegistry := true
		u := metadata.ModelUpdate{InRegistry: &inRegistry, SetTags: in.Tags}
		if in.Description != "" {
			u.Description = &in.Description
		}
		if m, err = s.store.UpdateModel(ctx, m.ID, u); err != nil {
			return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
		}
	}
	return s.modelReply(ctx, m)
}

// getRegisteredModelRequest is the input of getRegisteredModel.
type getRegisteredModelRequest struct {
	Name string `json:"name"`
}

func (s *Registry) getRegisteredModel(ctx context.Context, call *rpc.Call, in *getRegisteredModelRequest) (any, error) {
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	return s.modelReply(ctx, m)
}

// updateRegisteredModelRequest is the input of updateRegisteredModel.
type updateRegisteredModelRequest struct {
	Name        string  `json:"name"`
	Description *string `json:"description"`
}

// updateRegisteredModel sets the description; an absent description changes nothing.
func (s *Registry) updateRegisteredModel(ctx context.Context, call *rpc.Call, in *updateRegisteredModelRequest) (any, error) {
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	if in.Description != nil {
		if m, err = s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{Description: in.Description}); err != nil {
			return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
		}
	}
	return s.modelReply(ctx, m)
}

// renameRegisteredModelRequest is the input of renameRegisteredModel.
type renameRegisteredModelRequest struct {
	Name    string `json:"name"`
	NewName string `json:"new_name"`
}

// renameRegisteredModel changes the display name (which is also the experiment name); the slug, and so
// every package URL, stays. RESOURCE_ALREADY_EXISTS when another model has new_name.
func (s *Registry) renameRegisteredModel(ctx context.Context, call *rpc.Call, in *renameRegisteredModelRequest) (any, error) {
	if err := checkName("new_name", in.NewName); err != nil {
		return nil, err
	}
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	m, err = s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{DisplayName: &in.NewName})
	if errors.Is(err, metadata.ErrExists) {
		return nil, mlflowErrorf(metadata.ErrExists, "Registered Model (name=%s) already exists.", in.NewName)
	}
	if err != nil {
		return nil, fmt.Errorf("renaming registered model %q: %w", in.Name, err)
	}
	return s.modelReply(ctx, m)
}

// deleteRegisteredModelRequest is the input of deleteRegisteredModel.
type deleteRegisteredModelRequest struct {
	Name string `json:"name"`
}

// deleteRegisteredModel removes the model's versions and aliases and takes it out of the registry. A
// model with runs stays as an experiment, with its runs, files and tags; one without runs is removed
// entirely, so its name is free again (contract section 1).
func (s *Registry) deleteRegisteredModel(ctx context.Context, call *rpc.Call, in *deleteRegisteredModelRequest) (any, error) {
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	// One transaction: a failure leaves the model as it was, never half out of the registry.
	err = s.store.Update(ctx, func(ctx context.Context) error {
		versions, err := s.allVersions(ctx, m.ID)
		if err != nil {
			return err
		}
		for _, v := range versions {
			if err := s.store.DeleteVersion(ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}); err != nil {
				return fmt.Errorf("deleting version %d of %q: %w", v.Seq, in.Name, err)
			}
		}
		// Deleting a version deletes the aliases pointing at it, so this finds none unless the store
		// broke that rule; then it repairs it.
		aliases, err := s.store.Aliases(ctx, m.ID)
		if err != nil {
			return fmt.Errorf("aliases of %q: %w", in.Name, err)
		}
		for _, a := range aliases {
			if err := s.store.DeleteAlias(ctx, m.ID, a.Alias); err != nil {
				return fmt.Errorf("deleting alias %q of %q: %w", a.Alias, in.Name, err)
			}
		}
		// A model without runs was only ever a registry entry: remove it, so its name is free again. A
		// model with runs stays as an experiment.
		runs, _, err := s.store.ListCandidates(ctx, m.ID, metadata.Page{Limit: 1})
		if err != nil {
			return fmt.Errorf("runs of %q: %w", in.Name, err)
		}
		if len(runs) == 0 {
			return s.store.PurgeModel(ctx, m.ID)
		}
		inRegistry := false
		_, err = s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{InRegistry: &inRegistry})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
	}
	return struct{}{}, nil
}

// searchParams are the paging fields shared by both searches.
type searchParams struct {
	Filter     string         `json:"filter"`
	MaxResults rpc.I64        `json:"max_results"`
	OrderBy    rpc.Strs       `json:"order_by"`
	PageToken  rpc.FlexString `json:"page_token"`
}

// limit clamps max_results into [1, max], with def when absent or not positive.
func (p searchParams) limit(def, maxN int) int {
	if !p.MaxResults.Set || p.MaxResults.V <= 0 {
		return def
	}
	return int(min(p.MaxResults.V, int64(maxN)))
}

// pageToken decodes the page token of a registry search of kind ("models" or "versions") into an
// offset. The token is bound to the filter and order it was issued for, so one reused with another query
// is refused (httpapi.ErrBadRequest) instead of skipping arbitrary rows; max_results may change.
func (p *searchParams) pageToken(kind string) (fp string, offset int, err error) {
	fp = pagetoken.Fingerprint(append([]string{"registry", kind, p.Filter}, p.OrderBy...)...)
	t, err := pagetoken.Parse(string(p.PageToken), fp)
	return fp, t.Offset, err
}

// orderAliases are MLflow's order_by names for registry searches that mlflowfilter spells
// differently.
var orderAliases = map[string]string{
	"timestamp":              "last_update_time",
	"last_updated_timestamp": "last_update_time",
	"creation_timestamp":     "creation_time",
	"version":                "version_number",
}

// orderBy parses registry order_by clauses, accepting MLflow's timestamp names. Registered
// models cannot be ordered by version_number. Errors are httpapi.ErrBadRequest.
func orderBy(clauses []string, versions bool) ([]mlflowfilter.OrderBy, error) {
	mapped := make([]string, len(clauses))
	for i, c := range clauses {
		c = strings.TrimSpace(c)
		end := strings.IndexFunc(c, unicode.IsSpace)
		if end < 0 {
			end = len(c)
		}
		if a, ok := orderAliases[c[:end]]; ok {
			c = a + c[end:]
		}
		mapped[i] = c
	}
	obs, err := mlflowfilter.ParseModelOrderBy(mapped)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", httpapi.ErrBadRequest, err)
	}
	if !versions {
		for _, o := range obs {
			if o.Key == "version_number" {
				return nil, mlflowErrorf(httpapi.ErrBadRequest, "Invalid order by key 'version_number' for registered model search")
			}
		}
	}
	return obs, nil
}

// matchName matches a name condition against the display name; = also accepts the slug, as
// every by-name lookup does, and != is its negation.
func matchName(c mlflowfilter.Condition, m *metadata.Model) bool {
	switch c.Op {
	case mlflowfilter.OpEq:
		return c.MatchString(m.DisplayName) || c.MatchString(m.Name)
	case mlflowfilter.OpNe:
		return c.MatchString(m.DisplayName) && c.MatchString(m.Name)
	}
	return c.MatchString(m.DisplayName)
}

// matchTag matches a tag condition; a missing tag matches only the negative comparators.
func matchTag(c mlflowfilter.Condition, tags []metadata.Tag) bool {
	for _, t := range tags {
		if t.Key == c.Key {
			return c.MatchString(t.Value)
		}
	}
	return c.Op == mlflowfilter.OpNe || c.Op == mlflowfilter.OpNotIn
}

// modelRow is one registered model during a search.
type modelRow struct {
	model       *metadata.Model
	versions    []*metadata.Version
	lastUpdated int64
}

// models lists the project's models that are in the registry, with their versions.
func (s *Registry) models(ctx context.Context, project int64) ([]modelRow, error) {
	var rows []modelRow
	page := metadata.Page{Limit: 1000}
	for {
		ms, next, err := s.store.ListModels(ctx, project, page)
		if err != nil {
			return nil, fmt.Errorf("listing models: %w", err)
		}
		for _, m := range ms {
			if !m.InRegistry {
				continue
			}
			vs, err := s.allVersions(ctx, m.ID)
			if err != nil {
				return nil, err
			}
			rows = append(rows, modelRow{model: m, versions: vs, lastUpdated: lastUpdated(m, vs)})
		}
		if next == "" {
			return rows, nil
		}
		page.Token = next
	}
}

// searchRegisteredModels lists the models in the registry (see the visibility rule at the top of this
// file) that match filter, ordered by order_by and then by name. INVALID_PARAMETER_VALUE for a bad filter,
// order_by or page token.
func (s *Registry) searchRegisteredModels(ctx context.Context, call *rpc.Call, in *searchParams) (any, error) {
	filter, err := mlflowfilter.ParseModelFilter(in.Filter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", httpapi.ErrBadRequest, err)
	}
	order, err := orderBy(in.OrderBy, false)
	if err != nil {
		return nil, err
	}
	fp, offset, err := in.pageToken("models")
	if err != nil {
		return nil, err
	}
	limit := in.limit(modelsPageDefault, modelsPageMax)
	rows, err := s.models(ctx, call.Project.ID)
	if err != nil {
		return nil, err
	}
	rows = slices.DeleteFunc(rows, func(r modelRow) bool {
		for _, c := range filter {
			var ok bool
			switch {
			case c.Entity == mlflowfilter.Tag:
				ok = matchTag(c, modelTags(r.model))
			case c.Key == "name":
				ok = matchName(c, r.model)
			case c.Key == "creation_time":
				ok = c.MatchNumber(float64(r.model.CreatedAt.UnixMilli()))
			case c.Key == "last_update_time":
				ok = c.MatchNumber(float64(r.lastUpdated))
			}
			if !ok {
				return true
			}
		}
		return false
	})
	slices.SortStableFunc(rows, func(a, b modelRow) int {
		for _, o := range order {
			var d int
			switch o.Key {
			case "name":
				d = strings.Compare(a.model.DisplayName, b.model.DisplayName)
			case "creation_time":
				d = a.model.CreatedAt.Compare(b.model.CreatedAt)
			case "last_update_time":
				d = cmp.Compare(a.lastUpdated, b.lastUpdated)
			}
			if o.Desc {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return strings.Compare(a.model.DisplayName, b.model.DisplayName)
	})
	var out struct {
		RegisteredModels []message.RegisteredModel `json:"registered_models,omitempty"`
		NextPageToken    string                    `json:"next_page_token,omitempty"`
	}
	if offset < len(rows) {
		end := min(offset+limit, len(rows))
		for _, r := range rows[offset:end] {
			rm, err := s.toRegisteredModel(ctx, r.model, r.versions)
			if err != nil {
				return nil, err
			}
			out.RegisteredModels = append(out.RegisteredModels, rm)
		}
		if end < len(rows) {
			out.NextPageToken = pagetoken.Token{Query: fp, Offset: end}.String()
		}
	}
	return out, nil
}

// getLatestVersionsRequest is the input of getLatestVersions.
type getLatestVersionsRequest struct {
	Name   string   `json:"name"`
	Stages rpc.Strs `json:"stages"`
}

// getLatestVersions answers the highest version per stage, for the requested stages (any case) or for
// every stage present. INVALID_PARAMETER_VALUE for an unknown stage.
func (s *Registry) getLatestVersions(ctx context.Context, call *rpc.Call, in *getLatestVersionsRequest) (any, error) {
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	stages := map[string]bool{}
	for _, st := range in.Stages {
		canon, err := canonicalStage(st)
		if err != nil {
			return nil, err
		}
		stages[canon] = true
	}
	versions, err := s.allVersions(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	info, err := s.versionInfoOf(ctx, m)
	if err != nil {
		return nil, err
	}
	out := struct {
		ModelVersions []message.ModelVersion `json:"model_versions"`
	}{ModelVersions: []message.ModelVersion{}}
	for _, v := range latestPerStage(versions, stages) {
		mv, err := s.toModelVersion(ctx, info, v)
		if err != nil {
			return nil, err
		}
		out.ModelVersions = append(out.ModelVersions, mv)
	}
	return out, nil
}

// setRegisteredModelTagRequest is the input of setRegisteredModelTag.
type setRegisteredModelTagRequest struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	Value string `json:"value"`
}

// setRegisteredModelTag sets a model tag (shared with the experiment). Keys starting with mlgate. are
// refused.
func (s *Registry) setRegisteredModelTag(ctx context.Context, call *rpc.Call, in *setRegisteredModelTagRequest) (any, error) {
	tag := metadata.Tag{Key: in.Key, Value: in.Value}
	if err := mlflow.ValidateExperimentTag(tag.Key, tag.Value); err != nil {
		return nil, err
	}
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{SetTags: []metadata.Tag{tag}}); err != nil {
		return nil, fmt.Errorf("tagging registered model %q: %w", in.Name, err)
	}
	return struct{}{}, nil
}

// deleteRegisteredModelTagRequest is the input of deleteRegisteredModelTag.
type deleteRegisteredModelTagRequest struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// deleteRegisteredModelTag removes a model tag; an absent key is not an error, as in MLflow.
func (s *Registry) deleteRegisteredModelTag(ctx context.Context, call *rpc.Call, in *deleteRegisteredModelTagRequest) (any, error) {
	if err := checkTag(metadata.Tag{Key: in.Key}); err != nil {
		return nil, err
	}
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.UpdateModel(ctx, m.ID, metadata.ModelUpdate{DeleteTags: []string{in.Key}}); err != nil {
		return nil, fmt.Errorf("untagging registered model %q: %w", in.Name, err)
	}
	return struct{}{}, nil
}

// Aliases.

type aliasRequest struct {
	Name    string         `json:"name"`
	Alias   string         `json:"alias"`
	Version rpc.FlexString `json:"version"`
}

// setRegisteredModelAlias points alias at a version (given by number or semver), moving it if it exists.
// INVALID_PARAMETER_VALUE for an alias MLflow reserves and for a semver, which already resolves as an
// alias of its own version.
func (s *Registry) setRegisteredModelAlias(ctx context.Context, call *rpc.Call, in *aliasRequest) (any, error) {
	if in.Alias == "" {
		return nil, rpc.Required("alias")
	}
	if err := metadata.ValidateAlias(in.Alias); err != nil {
		return nil, err
	}
	if pkgtypes.ValidateSemver(in.Alias) == nil {
		return nil, mlflowErrorf(httpapi.ErrBadRequest,
			"Invalid alias '%s': a semver already names the version that has it; choose another alias", in.Alias)
	}
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	if err := s.store.SetAlias(ctx, m.ID, in.Alias, v.Seq); err != nil {
		return nil, fmt.Errorf("alias %q of %q: %w", in.Alias, in.Name, err)
	}
	return struct{}{}, nil
}

// getModelVersionByAlias resolves a real alias, else a version's semver (so models:/name@1.1.0 works).
// An unknown alias is 400 INVALID_PARAMETER_VALUE, as in MLflow.
func (s *Registry) getModelVersionByAlias(ctx context.Context, call *rpc.Call, in *aliasRequest) (any, error) {
	if in.Alias == "" {
		return nil, rpc.Required("alias")
	}
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	ref := metadata.VersionRef{ModelID: m.ID, Alias: in.Alias}
	v, err := s.store.Version(ctx, ref)
	if errors.Is(err, metadata.ErrAliasNotFound) && pkgtypes.ValidateSemver(in.Alias) == nil {
		v, err = s.store.Version(ctx, metadata.VersionRef{ModelID: m.ID, Semver: in.Alias})
	}
	if errors.Is(err, metadata.ErrAliasNotFound) || errors.Is(err, metadata.ErrNotFound) {
		return nil, mlflowErrorf(metadata.ErrAliasNotFound, "Registered model alias %s not found.", in.Alias)
	}
	if err != nil {
		return nil, fmt.Errorf("alias %q of %q: %w", in.Alias, in.Name, err)
	}
	return s.versionReply(ctx, m, v)
}

// deleteRegisteredModelAlias removes an alias; an unknown alias is not an error, as in MLflow.
func (s *Registry) deleteRegisteredModelAlias(ctx context.Context, call *rpc.Call, in *aliasRequest) (any, error) {
	if in.Alias == "" {
		return nil, rpc.Required("alias")
	}
	m, err := s.model(ctx, call, in.Name)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteAlias(ctx, m.ID, in.Alias); err != nil && !errors.Is(err, metadata.ErrAliasNotFound) {
		return nil, fmt.Errorf("alias %q of %q: %w", in.Alias, in.Name, err)
	}
	return struct{}{}, nil
}

// Model versions.

// runSource is what a version's source names: a candidate (by run id) and a directory inside it.
type runSource struct {
	runID   string
	subpath string
}

// parseRunSource recognises runs:/<run_id>/<path> and mlflow-artifacts:[//host]/<iid>/<run_id>/
// artifacts/<path>. ok is false for any other form.
func parseRunSource(source string) (src runSource, ok bool) {
	if rest, found := strings.CutPrefix(source, "runs:/"); found {
		rest = strings.TrimLeft(rest, "/")
		src.runID, src.subpath, _ = strings.Cut(rest, "/")
		return src, src.runID != ""
	}
	rest, found := strings.CutPrefix(source, "mlflow-artifacts:")
	if !found {
		return src, false
	}
	if host, found := strings.CutPrefix(rest, "//"); found {
		_, rest, _ = strings.Cut(host, "/")
	}
	parts := strings.SplitN(strings.TrimLeft(rest, "/"), "/", 4)
	if len(parts) < 3 || parts[0] == "" || strings.Trim(parts[0], "0123456789") != "" || parts[2] != "artifacts" {
		return src, false
	}
	src.runID = parts[1]
	if len(parts) == 4 {
		src.subpath = parts[3]
	}
	return src, true
}

// sourceOfModelsURI resolves models:/<name>/<version> or models:/<name>@<alias> to that version,
// so that registering a version of a version reuses its files.
func (s *Registry) sourceOfModelsURI(ctx context.Context, call *rpc.Call, source string) (*metadata.Version, bool, error) {
	rest, found := strings.CutPrefix(source, "models:/")
	if !found {
		return nil, false, nil
	}
	rest = strings.Trim(rest, "/")
	if name, alias, isAlias := strings.Cut(rest, "@"); isAlias {
		m, err := s.model(ctx, call, name)
		if err != nil {
			return nil, true, err
		}
		v, err := s.store.Version(ctx, metadata.VersionRef{ModelID: m.ID, Alias: alias})
		if errors.Is(err, metadata.ErrAliasNotFound) && pkgtypes.ValidateSemver(alias) == nil {
			v, err = s.store.Version(ctx, metadata.VersionRef{ModelID: m.ID, Semver: alias})
		}
		if err != nil {
			return nil, true, fmt.Errorf("source %s: %w", source, err)
		}
		return v, true, nil
	}
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return nil, true, mlflowErrorf(httpapi.ErrBadRequest, "Invalid source %q: expected models:/<name>/<version>", source)
	}
	_, v, err := s.version(ctx, call, rest[:i], rest[i+1:])
	return v, true, err
}

// semverFromTags reads the semver a new version asks for from its tags: mlgate.version, or GitLab's
// gitlab.version. "" means the store's default, the next minor. INVALID_PARAMETER_VALUE for a value that is
// not a semver, or two tags that disagree.
func semverFromTags(tags []metadata.Tag) (string, error) {
	var semver, from string
	for _, t := range tags {
		if t.Key != versionTag && t.Key != gitlabVersionTag {
			continue
		}
		if err := pkgtypes.ValidateSemver(t.Value); err != nil {
			return "", mlflowErrorf(httpapi.ErrBadRequest, "Invalid value for tag '%s': %v", t.Key, err)
		}
		if semver != "" && semver != t.Value {
			return "", mlflowErrorf(httpapi.ErrBadRequest, "Tags '%s' (%s) and '%s' (%s) ask for different versions", from, semver, t.Key, t.Value)
		}
		semver, from = t.Value, t.Key
	}
	return semver, nil
}

// bumpedSemver applies the model's tag mlgate.semver_bump (major or patch) to its highest
// version. "" means the store's default, the next minor, which is also what "minor" asks for. It reads
// the model and its versions with ctx, so that called inside the transaction that creates the version,
// no concurrent create can take the same semver in between.
func (s *Registry) bumpedSemver(ctx context.Context, modelID uint64) (string, error) {
	m, err := s.store.Model(ctx, metadata.ModelRef{ID: modelID})
	if err != nil {
		return "", err
	}
	part := ""
	for _, t := range m.Tags {
		if t.Key == mlflow.SemverBumpTag {
			part = t.Value
		}
	}
	if part == "" || part == pkgtypes.BumpMinor {
		return "", nil
	}
	highest := ""
	page := metadata.Page{Limit: 1000}
	for {
		vs, next, err := s.store.ListVersions(ctx, m.ID, page)
		if err != nil {
			return "", fmt.Errorf("versions of %q: %w", m.DisplayName, err)
		}
		for _, v := range vs {
			if highest == "" || pkgtypes.CompareSemver(v.Semver, highest) > 0 {
				highest = v.Semver
			}
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	semver := pkgtypes.NextVersion(highest, part)
	if semver == "" {
		return "", mlflowErrorf(httpapi.ErrBadRequest, "Cannot bump %s of version %s (tag %s): set tag %s on the version",
			part, highest, mlflow.SemverBumpTag, versionTag)
	}
	return semver, nil
}

// backing is what a new version's files are: a candidate's or a logged model's, under subpath.
type backing struct {
	candidateID, loggedModelID uint64
	subpath                    string
}

// backingOf resolves the source of model-versions/create: a logged model (model_id, or source
// models:/m-<id>), another version (models:/<name>/<version>, models:/<name>@<alias>), a run's artifacts
// (runs:/<run id>/<path>, mlflow-artifacts:/<exp>/<run id>/artifacts/<path>), or a run_id with any
// source. INVALID_PARAMETER_VALUE for a source that names nothing mlgate stores or contradicts run_id or
// model_id; RESOURCE_DOES_NOT_EXIST for an unknown run, version or logged model.
func (s *Registry) backingOf(ctx context.Context, call *rpc.Call, in *createModelVersionRequest) (backing, error) {
	var b backing
	modelID := in.ModelID
	if rest, found := strings.CutPrefix(in.Source, "models:/"); found {
		if id := strings.Trim(rest, "/"); strings.HasPrefix(id, metadata.LMIDPrefix) && !strings.Contains(id, "/") {
			if modelID != "" && modelID != id {
				return b, mlflowErrorf(httpapi.ErrBadRequest, "source %s names logged model %s, but model_id is %s", in.Source, id, modelID)
			}
			modelID = id
		}
	}
	if modelID != "" {
		lm, err := httpapi.LoggedModelOf(ctx, s.store, call.Project.ID, modelID)
		if err != nil {
			return b, err
		}
		b.loggedModelID = lm.ID
		return b, nil
	}
	if from, isModels, err := s.sourceOfModelsURI(ctx, call, in.Source); err != nil {
		return b, err
	} else if isModels {
		b.candidateID, b.loggedModelID, b.subpath = from.CandidateID, from.LoggedModelID, from.Subpath
		return b, nil
	}
	var cand *metadata.Candidate
	var err error
	if src, ok := parseRunSource(in.Source); ok {
		if in.RunID != "" && in.RunID != src.runID {
			return b, mlflowErrorf(httpapi.ErrBadRequest, "source %s names run %s, but run_id is %s", in.Source, src.runID, in.RunID)
		}
		if cand, err = mlflow.Run(ctx, s.store, call.Project.ID, src.runID, ""); err != nil {
			return b, err
		}
		b.subpath = src.subpath
	} else if in.RunID != "" {
		if cand, err = mlflow.Run(ctx, s.store, call.Project.ID, in.RunID, ""); err != nil {
			return b, err
		}
		// A source inside the run's artifact root (its artifact_uri plus a path) selects that directory;
		// any other source is kept as given and the version is the whole run.
		owner, err := s.store.Model(ctx, metadata.ModelRef{ID: cand.ModelID})
		if err != nil {
			return b, fmt.Errorf("model of run %s: %w", in.RunID, err)
		}
		if rest, found := strings.CutPrefix(in.Source, runquery.ArtifactURI(owner, cand)); found && (rest == "" || rest[0] == '/') {
			b.subpath = rest
		}
	} else {
		return b, mlflowErrorf(httpapi.ErrBadRequest,
			"Invalid source %q: give runs:/<run_id>/<path>, models:/<model_id>, or the run_id of a run stored by mlgate", in.Source)
	}
	b.candidateID = cand.ID
	b.subpath = strings.Trim(b.subpath, "/")
	if b.subpath != "" {
		if err := pkgtypes.ValidateFilePath(b.subpath); err != nil {
			return b, fmt.Errorf("source %s: %w", in.Source, err)
		}
	}
	return b, nil
}

// createModelVersionRequest is the input of createModelVersion.
type createModelVersionRequest struct {
	Name        string         `json:"name"`
	Source      string         `json:"source"`
	RunID       string         `json:"run_id"`
	ModelID     string         `json:"model_id"` // MLflow 3: the logged model whose files the version is
	Tags        []metadata.Tag `json:"tags"`
	RunLink     string         `json:"run_link"`
	Description string         `json:"description"`
}

// createModelVersion promotes a run (candidate) or an MLflow 3 logged model into a version of the named
// model, copying no bytes: the version points at the owner of the files and a directory inside them. The run may belong to another model
// of the project. The model must exist (404 RESOURCE_DOES_NOT_EXIST otherwise, as in MLflow, which wants
// registered-models/create first); an experiment that is not yet in the registry is adopted.
// The semver comes from the tag mlgate.version or gitlab.version, else from the model's tag
// mlgate.semver_bump (major, minor or patch) applied to its highest version, else is the next minor.
// INVALID_PARAMETER_VALUE for a source that names no run mlgate stores, a bad semver or tag;
// RESOURCE_ALREADY_EXISTS when the semver is taken; RESOURCE_DOES_NOT_EXIST for an unknown run.
func (s *Registry) createModelVersion(ctx context.Context, call *rpc.Call, in *createModelVersionRequest) (any, error) {
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	if in.Source == "" && in.RunID == "" {
		return nil, rpc.Required("source")
	}
	if err := checkTags(in.Tags, versionTag); err != nil {
		return nil, err
	}
	semver, err := semverFromTags(in.Tags)
	if err != nil {
		return nil, err
	}
	m, err := mlflow.ModelByName(ctx, s.store, call.Project.ID, in.Name)
	if errors.Is(err, metadata.ErrNotFound) {
		return nil, mlflowErrorf(metadata.ErrNotFound, "Registered Model with name=%s not found", in.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("registered model %q: %w", in.Name, err)
	}
	if m.Lifecycle == metadata.Deleted {
		return nil, mlflowErrorf(httpapi.ErrBadRequest, "Experiment '%s' is deleted: restore it before registering versions", in.Name)
	}

	backing, err := s.backingOf(ctx, call, in)
	if err != nil {
		return nil, err
	}

	tags := slices.DeleteFunc(slices.Clone(in.Tags), func(t metadata.Tag) bool { return t.Key == versionTag })
	v := &metadata.Version{
		Project:       call.Project.ID,
		ModelID:       m.ID,
		Semver:        semver,
		CandidateID:   backing.candidateID,
		LoggedModelID: backing.loggedModelID,
		Subpath:       backing.subpath,
		Source:        in.Source,
		RunLink:       in.RunLink,
		Description:   in.Description,
		Tags:          tags,
	}
	// The semver is chosen and taken in one transaction: concurrent creates with automatic semvers get
	// distinct ones instead of racing for the same.
	err = s.store.Update(ctx, func(ctx context.Context) error {
		if semver == "" {
			var err error
			if v.Semver, err = s.bumpedSemver(ctx, m.ID); err != nil {
				return err
			}
		}
		return s.store.CreateVersion(ctx, v)
	})
	if errors.Is(err, metadata.ErrExists) {
		return nil, mlflowErrorf(metadata.ErrExists, "Model Version (name=%s, semver=%s) already exists.", in.Name, v.Semver)
	} else if err != nil {
		return nil, fmt.Errorf("creating a version of %q: %w", in.Name, err)
	}
	m.InRegistry = true
	return s.versionReply(ctx, m, v)
}

type versionRequest struct {
	Name    string         `json:"name"`
	Version rpc.FlexString `json:"version"`
}

// getModelVersion accepts the version number (MLflow's "version") or the semver.
func (s *Registry) getModelVersion(ctx context.Context, call *rpc.Call, in *versionRequest) (any, error) {
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	return s.versionReply(ctx, m, v)
}

// updateModelVersionRequest is the input of updateModelVersion.
type updateModelVersionRequest struct {
	versionRequest
	Description *string `json:"description"`
}

// updateModelVersion sets the description; an absent description changes nothing.
func (s *Registry) updateModelVersion(ctx context.Context, call *rpc.Call, in *updateModelVersionRequest) (any, error) {
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	if in.Description != nil {
		ref := metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}
		if v, err = s.store.UpdateVersion(ctx, ref, metadata.VersionUpdate{Description: in.Description}); err != nil {
			return nil, fmt.Errorf("updating version %s of %q: %w", in.Version, in.Name, err)
		}
	}
	return s.versionReply(ctx, m, v)
}

// deleteModelVersion removes the version and its aliases; the run and its files stay.
func (s *Registry) deleteModelVersion(ctx context.Context, call *rpc.Call, in *versionRequest) (any, error) {
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteVersion(ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}); err != nil {
		return nil, fmt.Errorf("deleting version %s of %q: %w", in.Version, in.Name, err)
	}
	return struct{}{}, nil
}

// versionRow is one version during a search.
type versionRow struct {
	model   *metadata.Model
	version *metadata.Version
	runID   string
}

// searchModelVersions lists the versions of registered models that match filter (name, run_id with = or
// IN, source_path, version_number, timestamps, tags), ordered by order_by, then by name and by version
// number descending as MLflow does. INVALID_PARAMETER_VALUE for a bad filter, order_by or page token.
func (s *Registry) searchModelVersions(ctx context.Context, call *rpc.Call, in *searchParams) (any, error) {
	filter, err := mlflowfilter.ParseVersionFilter(in.Filter)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", httpapi.ErrBadRequest, err)
	}
	order, err := orderBy(in.OrderBy, true)
	if err != nil {
		return nil, err
	}
	fp, offset, err := in.pageToken("versions")
	if err != nil {
		return nil, err
	}
	limit := in.limit(versionsPageDefault, versionsPageMax)
	models, err := s.models(ctx, call.Project.ID)
	if err != nil {
		return nil, err
	}
	infos := map[uint64]*versionInfo{}
	var rows []versionRow
	for _, mr := range models {
		if !modelMayMatch(filter, mr.model) {
			continue
		}
		info := &versionInfo{model: mr.model, cands: map[uint64]*metadata.Candidate{}, logged: map[uint64]*metadata.LoggedModel{}}
		infos[mr.model.ID] = info
		for _, v := range mr.versions {
			runID, _, err := s.runAndModelOf(ctx, info, v)
			if err != nil {
				return nil, err
			}
			row := versionRow{model: mr.model, version: v, runID: runID}
			if versionMatches(filter, row) {
				rows = append(rows, row)
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b versionRow) int { return compareVersions(order, a, b) })
	var out struct {
		ModelVersions []message.ModelVersion `json:"model_versions,omitempty"`
		NextPageToken string                 `json:"next_page_token,omitempty"`
	}
	if offset < len(rows) {
		end := min(offset+limit, len(rows))
		for _, r := range rows[offset:end] {
			info := infos[r.model.ID]
			if info.aliases == nil {
				full, err := s.versionInfoOf(ctx, r.model)
				if err != nil {
					return nil, err
				}
				info.aliases = full.aliases
			}
			mv, err := s.toModelVersion(ctx, info, r.version)
			if err != nil {
				return nil, err
			}
			out.ModelVersions = append(out.ModelVersions, mv)
		}
		if end < len(rows) {
			out.NextPageToken = pagetoken.Token{Query: fp, Offset: end}.String()
		}
	}
	return out, nil
}

// modelMayMatch applies the filter's name conditions to a model, so that versions of other
// models are not loaded.
func modelMayMatch(filter mlflowfilter.Filter, m *metadata.Model) bool {
	for _, c := range filter {
		if c.Entity == mlflowfilter.Attribute && c.Key == "name" && !matchName(c, m) {
			return false
		}
	}
	return true
}

func versionMatches(filter mlflowfilter.Filter, r versionRow) bool {
	v := r.version
	for _, c := range filter {
		var ok bool
		switch {
		case c.Entity == mlflowfilter.Tag:
			ok = matchTag(c, append(slices.Clone(v.Tags), metadata.Tag{Key: semverTag, Value: v.Semver}))
		case c.Key == "name":
			ok = matchName(c, r.model)
		case c.Key == "run_id":
			ok = c.MatchString(r.runID)
		case c.Key == "source_path":
			ok = c.MatchString(v.Source)
		case c.Key == "version_number":
			ok = c.MatchNumber(float64(v.Seq))
		case c.Key == "creation_time":
			ok = c.MatchNumber(float64(v.CreatedAt.UnixMilli()))
		case c.Key == "last_update_time":
			ok = c.MatchNumber(float64(v.UpdatedAt.UnixMilli()))
		}
		if !ok {
			return false
		}
	}
	return true
}

func compareVersions(order []mlflowfilter.OrderBy, a, b versionRow) int {
	byName, bySeq := false, false
	for _, o := range order {
		var d int
		switch o.Key {
		case "name":
			byName = true
			d = strings.Compare(a.model.DisplayName, b.model.DisplayName)
		case "version_number":
			bySeq = true
			d = cmp.Compare(a.version.Seq, b.version.Seq)
		case "creation_time":
			d = a.version.CreatedAt.Compare(b.version.CreatedAt)
		case "last_update_time":
			d = a.version.UpdatedAt.Compare(b.version.UpdatedAt)
		}
		if o.Desc {
			d = -d
		}
		if d != 0 {
			return d
		}
	}
	if !byName {
		if d := strings.Compare(a.model.DisplayName, b.model.DisplayName); d != 0 {
			return d
		}
	}
	if !bySeq {
		return cmp.Compare(b.version.Seq, a.version.Seq)
	}
	return 0
}

// getModelVersionDownloadURI answers where the version's files are for the client: the backing run's
// artifact root (under the run's own model, which may differ from the version's) plus the sub-path, an
// mlflow-artifacts URI the client resolves against the tracking URI without another call.
func (s *Registry) getModelVersionDownloadURI(ctx context.Context, call *rpc.Call, in *versionRequest) (any, error) {
	_, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	var uri string
	if v.LoggedModelID != 0 {
		lm, err := s.store.LoggedModel(ctx, metadata.LoggedModelRef{ID: v.LoggedModelID})
		if err != nil {
			return nil, fmt.Errorf("logged model backing version %s of %q: %w", in.Version, in.Name, err)
		}
		owner, err := s.store.Model(ctx, metadata.ModelRef{ID: lm.ModelID})
		if err != nil {
			return nil, fmt.Errorf("model of the logged model backing version %s of %q: %w", in.Version, in.Name, err)
		}
		uri = mlflow.LoggedModelArtifactURI(owner, lm)
	} else {
		c, err := s.store.Candidate(ctx, metadata.CandidateRef{ID: v.CandidateID})
		if err != nil {
			return nil, fmt.Errorf("run backing version %s of %q: %w", in.Version, in.Name, err)
		}
		owner, err := s.store.Model(ctx, metadata.ModelRef{ID: c.ModelID})
		if err != nil {
			return nil, fmt.Errorf("model of the run backing version %s of %q: %w", in.Version, in.Name, err)
		}
		uri = runquery.ArtifactURI(owner, c)
	}
	if v.Subpath != "" {
		uri += "/" + v.Subpath
	}
	return map[string]string{"artifact_uri": uri}, nil
}

type versionTagRequest struct {
	versionRequest
	Key   string `json:"key"`
	Value string `json:"value"`
}

// setModelVersionTag sets a version tag. Keys starting with mlgate. (mlgate.semver among them) are
// refused: the semver of a version never changes.
func (s *Registry) setModelVersionTag(ctx context.Context, call *rpc.Call, in *versionTagRequest) (any, error) {
	tag := metadata.Tag{Key: in.Key, Value: in.Value}
	if err := checkTag(tag); err != nil {
		return nil, err
	}
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	ref := metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}
	if _, err := s.store.UpdateVersion(ctx, ref, metadata.VersionUpdate{SetTags: []metadata.Tag{tag}}); err != nil {
		return nil, fmt.Errorf("tagging version %s of %q: %w", in.Version, in.Name, err)
	}
	return struct{}{}, nil
}

// deleteModelVersionTag removes a version tag; an absent key is not an error, as in MLflow.
func (s *Registry) deleteModelVersionTag(ctx context.Context, call *rpc.Call, in *versionTagRequest) (any, error) {
	if err := checkTag(metadata.Tag{Key: in.Key}); err != nil {
		return nil, err
	}
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	ref := metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}
	if _, err := s.store.UpdateVersion(ctx, ref, metadata.VersionUpdate{DeleteTags: []string{in.Key}}); err != nil {
		return nil, fmt.Errorf("untagging version %s of %q: %w", in.Version, in.Name, err)
	}
	return struct{}{}, nil
}

// transitionModelVersionStageRequest is the input of transitionModelVersionStage.
type transitionModelVersionStageRequest struct {
	versionRequest
	Stage   string    `json:"stage"`
	Archive protoBool `json:"archive_existing_versions"`
}

// transitionModelVersionStage sets a version's stage (None, Staging, Production, Archived in any case).
// With archive_existing_versions, the model's other versions in that stage become Archived; MLflow allows
// the flag only for Staging and Production and so does mlgate (INVALID_PARAMETER_VALUE otherwise).
func (s *Registry) transitionModelVersionStage(ctx context.Context, call *rpc.Call, in *transitionModelVersionStageRequest) (any, error) {
	if in.Stage == "" {
		return nil, rpc.Required("stage")
	}
	stage, err := canonicalStage(in.Stage)
	if err != nil {
		return nil, err
	}
	if in.Archive && stage != "Staging" && stage != "Production" {
		return nil, mlflowErrorf(httpapi.ErrBadRequest,
			"Model version transition cannot archive existing model versions because '%s' is not an Active stage. Valid stages are Staging, Production", stage)
	}
	m, v, err := s.version(ctx, call, in.Name, string(in.Version))
	if err != nil {
		return nil, err
	}
	v, err = s.store.UpdateVersion(ctx, metadata.VersionRef{ModelID: m.ID, Seq: v.Seq}, metadata.VersionUpdate{Stage: &stage})
	if err != nil {
		return nil, fmt.Errorf("transitioning version %s of %q: %w", in.Version, in.Name, err)
	}
	if in.Archive {
		versions, err := s.allVersions(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		archived := "Archived"
		for _, other := range versions {
			if other.Seq == v.Seq || stageOf(other) != stage {
				continue
			}
			ref := metadata.VersionRef{ModelID: m.ID, Seq: other.Seq}
			if _, err := s.store.UpdateVersion(ctx, ref, metadata.VersionUpdate{Stage: &archived}); err != nil && !errors.Is(err, metadata.ErrNotFound) {
				return nil, fmt.Errorf("archiving version %d of %q: %w", other.Seq, in.Name, err)
			}
		}
	}
	return s.versionReply(ctx, m, v)
}
