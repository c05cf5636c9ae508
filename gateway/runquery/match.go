package runquery

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
)

// ArtifactURI is where a run's artifacts live for the MLflow client: the mlflow-artifacts proxy,
// resolved against the tracking URI, so a per-project tracking URI keeps its project prefix. It is also
// the value filters and orderings on attributes.artifact_uri see.
func ArtifactURI(m *metadata.Model, c *metadata.Candidate) string {
	return "mlflow-artifacts:/" + strconv.FormatInt(m.IID, 10) + "/" + c.EID.String() + "/artifacts"
}

// CandidateIIDTag is the synthetic, read-only tag that shows a run's package coordinates; runs/get
// shows it and filters and orderings see it.
const CandidateIIDTag = "mlgate.candidate_iid"

// Row is one run of a page with everything needed to show it.
type Row struct {
	Model     *metadata.Model
	Candidate *metadata.Candidate
	Data      *metadata.RunData // nil until the row is completed
}

// Search returns the page of runs of q that token (from a previous Page.Next; "" for the first page)
// points at. Orderings by nothing, start_time DESC or one metric come from the store's indexes. Errors:
// httpapi.ErrBadRequest for a token of another query, or an ordering without an index over more than the
// sort limit of matching runs; metadata.ErrInvalid from the store for a bad metric key; the store's
// errors otherwise.
func (e *Engine) Search(ctx context.Context, q Query, token string) (Page[Row], error) {
	return search[Row](ctx, e, newRuns(e.Store, q), q, "", token)
}

// runs is the source of candidates.
type runs struct {
	store     metadata.Store
	models    map[uint64]*metadata.Model
	ids       []uint64
	attribute func(key string, m *metadata.Model, c *metadata.Candidate) (Value, bool)
}

func newRuns(store metadata.Store, q Query) *runs {
	r := &runs{store: store, models: make(map[uint64]*metadata.Model, len(q.Models)), attribute: q.Attribute}
	for _, m := range q.Models {
		r.models[m.ID] = m
		r.ids = append(r.ids, m.ID)
	}
	return r
}

func (*runs) kind() string { return "runs" }

func (*runs) indexed(order []mlflowfilter.OrderBy) (bool, *metadata.MetricOrder) {
	switch {
	case len(order) == 0:
		return true, nil
	case len(order) == 1 && order[0].Entity == mlflowfilter.Metric:
		return true, &metadata.MetricOrder{Key: order[0].Key, Desc: order[0].Desc}
	case len(order) == 1 && order[0].Entity == mlflowfilter.Attribute && order[0].Key == "start_time" && order[0].Desc:
		return true, nil // the store's default order
	}
	return false, nil
}

func (r *runs) index(ctx context.Context, view metadata.ViewType, metric *metadata.MetricOrder, page metadata.Page) ([]Row, string, error) {
	cs, next, err := r.store.SearchCandidates(ctx, metadata.CandidateQuery{ModelIDs: r.ids, View: view, OrderByMetric: metric, Page: page})
	if err != nil {
		return nil, "", fmt.Errorf("searching runs: %w", err)
	}
	rows := make([]Row, len(cs))
	for i, c := range cs {
		rows[i] = Row{Model: r.models[c.ModelID], Candidate: c}
	}
	return rows, next, nil
}

func (r *runs) complete(ctx context.Context, row Row) (Row, error) {
	if row.Data != nil {
		return row, nil
	}
	data, err := r.store.RunData(ctx, row.Candidate.ID)
	if err != nil {
		return row, fmt.Errorf("run %s: %w", row.Candidate.EID, err)
	}
	row.Data = data
	return row, nil
}

func (*runs) strip(row Row) Row {
	row.Data = nil
	return row
}

// prefetch reads the run data of rows in one RunDataOf when the store has it.
func (r *runs) prefetch(ctx context.Context, rows []*Row) error {
	b, ok := r.store.(metadata.BulkReader)
	if !ok {
		return nil
	}
	ids := make([]uint64, 0, len(rows))
	for _, row := range rows {
		if row.Data == nil {
			ids = append(ids, row.Candidate.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	data, err := b.RunDataOf(ctx, ids)
	if err != nil {
		return fmt.Errorf("run data of %d runs: %w", len(ids), err)
	}
	for _, row := range rows {
		if row.Data == nil {
			row.Data = data[row.Candidate.ID] // nil when absent: complete reads it, and fails as RunData does
		}
	}
	return nil
}

// tieBreak appends start_time DESC unless the order has start_time, then run_id, as MLflow does.
func (*runs) tieBreak(order []mlflowfilter.OrderBy) []mlflowfilter.OrderBy {
	hasStart := slices.ContainsFunc(order, func(o mlflowfilter.OrderBy) bool {
		return o.Entity == mlflowfilter.Attribute && o.Key == "start_time"
	})
	if !hasStart {
		order = append(order, mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "start_time", Desc: true})
	}
	return append(order, mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "run_id"})
}

func (r *runs) field(row Row, entity mlflowfilter.Entity, key string) (Value, bool) {
	c := row.Candidate
	switch entity {
	case mlflowfilter.Metric:
		if row.Data == nil {
			return missing, false
		}
		v, ok := MetricValue(row.Data, key)
		return Number(v), ok
	case mlflowfilter.Param:
		if row.Data == nil {
			return missing, false
		}
		v, ok := ParamValue(row.Data, key)
		return Text(v), ok
	case mlflowfilter.Tag:
		if key == CandidateIIDTag {
			return Text(strconv.FormatInt(c.IID, 10)), true
		}
		if row.Data == nil {
			return missing, false
		}
		v, ok := tagValue(row.Data.Tags, key)
		return Text(v), ok
	}
	switch key {
	case "run_name":
		return Text(c.Name), true
	case "status":
		return Text(c.Status.String()), true
	case "user_id":
		return Text(c.UserID), true
	case "artifact_uri":
		return Text(ArtifactURI(row.Model, c)), true
	case "run_id":
		return Text(c.EID.String()), true
	case "start_time":
		return Number(float64(c.StartTime)), true
	case "end_time":
		// An unset end_time is SQL NULL in MLflow: missing, so no comparison matches it.
		return Number(float64(c.EndTime)), c.EndTime != 0
	case "duration":
		return Number(float64(c.EndTime - c.StartTime)), c.EndTime != 0
	}
	if r.attribute != nil {
		return r.attribute(key, row.Model, c)
	}
	return missing, false
}

// MatchOptionalString evaluates a string clause on a key the entity may lack: a missing key matches
// only the negative comparators.
func MatchOptionalString(c mlflowfilter.Condition, v string, found bool) bool {
	if !found {
		return c.Op == mlflowfilter.OpNe || c.Op == mlflowfilter.OpNotIn
	}
	return c.MatchString(v)
}

// RunData lists are sorted by key, so lookups are binary searches.

// MetricValue is the latest value of a run's metric.
func MetricValue(data *metadata.RunData, key string) (float64, bool) {
	i, ok := slices.BinarySearchFunc(data.Metrics, key, func(m metadata.Metric, k string) int { return strings.Compare(m.Key, k) })
	if !ok {
		return 0, false
	}
	return data.Metrics[i].Value, true
}

// ParamValue is a param of a run (or of any key-sorted param list's owner).
func ParamValue(data *metadata.RunData, key string) (string, bool) {
	return paramValue(data.Params, key)
}

func paramValue(params []metadata.Param, key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(params, key, func(p metadata.Param, k string) int { return strings.Compare(p.Key, k) })
	if !ok {
		return "", false
	}
	return params[i].Value, true
}

func tagValue(tags []metadata.Tag, key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(tags, key, func(t metadata.Tag, k string) int { return strings.Compare(t.Key, k) })
	if !ok {
		return "", false
	}
	return tags[i].Value, true
}
