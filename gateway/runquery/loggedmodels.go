package runquery

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mlgate/mlgate/gateway/mlflowfilter"
	"github.com/mlgate/mlgate/metadata"
)

// Dataset names a dataset by name and digest. Both must equal a point's: an empty digest matches only
// points logged without one, which is what MLflow's server does (a restriction by name alone finds no
// point logged with a digest, as the recorded 3.6 reference shows).
type Dataset struct {
	Name, Digest string
}

func (d Dataset) matches(m metadata.Metric) bool {
	return m.DatasetName == d.Name && m.DatasetDigest == d.Digest
}

// LoggedModelQuery is a logged-models/search: Query's fields (View does not apply), plus MLflow's
// dataset restrictions.
type LoggedModelQuery struct {
	Query
	// Datasets restricts the metrics that filters see to points measured on one of these datasets;
	// empty: every point.
	Datasets []Dataset
	// OrderDatasets gives, per clause of Order, the dataset whose points decide a metric clause; the
	// zero Dataset: every point.
	OrderDatasets []Dataset
}

// LoggedModelRow is one logged model of a page: with Model and, once completed, its metrics (every
// point, ordered by key, step, timestamp).
type LoggedModelRow struct {
	Model       *metadata.Model
	LoggedModel *metadata.LoggedModel
	Metrics     []metadata.Metric
	completed   bool
}

// SearchLoggedModels returns the page of logged models of q that token points at: newest first, or in
// q.Order, where a metric is its latest point (highest step, then newest timestamp) among the points on
// the clause's dataset. The default order and one metric without a dataset come from the store's
// indexes; every other order is sorted in memory up to the sort limit. Errors as for Search.
func (e *Engine) SearchLoggedModels(ctx context.Context, q LoggedModelQuery, token string) (Page[LoggedModelRow], error) {
	src := &loggedModels{store: e.Store, models: make(map[uint64]*metadata.Model, len(q.Models)), q: &q}
	for _, m := range q.Models {
		src.models[m.ID] = m
		src.ids = append(src.ids, m.ID)
	}
	var extra []string
	for _, d := range q.Datasets {
		extra = append(extra, "f:"+d.Name+"\x02"+d.Digest)
	}
	for _, d := range q.OrderDatasets {
		extra = append(extra, "o:"+d.Name+"\x02"+d.Digest)
	}
	q.Query.View = metadata.ActiveOnly // one value, so tokens do not depend on it
	return search[LoggedModelRow](ctx, e, src, q.Query, strings.Join(extra, "\x01"), token)
}

// loggedModels is the source of logged models.
type loggedModels struct {
	store  metadata.Store
	models map[uint64]*metadata.Model
	ids    []uint64
	q      *LoggedModelQuery
}

func (*loggedModels) kind() string { return "logged models" }

func (l *loggedModels) indexed(order []mlflowfilter.OrderBy) (bool, *metadata.MetricOrder) {
	switch {
	case len(order) == 0:
		return true, nil
	case len(order) == 1 && order[0].Entity == mlflowfilter.Metric && l.orderDataset(0) == (Dataset{}):
		return true, &metadata.MetricOrder{Key: order[0].Key, Desc: order[0].Desc}
	case len(order) == 1 && order[0].Entity == mlflowfilter.Attribute && order[0].Key == "creation_timestamp" && order[0].Desc:
		return true, nil // the store's default order
	}
	return false, nil
}

func (l *loggedModels) orderDataset(i int) Dataset {
	if i < len(l.q.OrderDatasets) {
		return l.q.OrderDatasets[i]
	}
	return Dataset{}
}

func (l *loggedModels) index(ctx context.Context, _ metadata.ViewType, metric *metadata.MetricOrder, page metadata.Page) ([]LoggedModelRow, string, error) {
	lms, next, err := l.store.SearchLoggedModels(ctx, metadata.LoggedModelQuery{ModelIDs: l.ids, OrderByMetric: metric, Page: page})
	if err != nil {
		return nil, "", fmt.Errorf("searching logged models: %w", err)
	}
	rows := make([]LoggedModelRow, len(lms))
	for i, lm := range lms {
		rows[i] = LoggedModelRow{Model: l.models[lm.ModelID], LoggedModel: lm}
	}
	return rows, next, nil
}

func (l *loggedModels) complete(ctx context.Context, row LoggedModelRow) (LoggedModelRow, error) {
	if row.completed {
		return row, nil
	}
	ms, err := l.store.LoggedModelMetrics(ctx, row.LoggedModel.ID)
	if err != nil {
		return row, fmt.Errorf("logged model %s: %w", row.LoggedModel.LMID, err)
	}
	row.Metrics, row.completed = ms, true
	return row, nil
}

func (*loggedModels) strip(row LoggedModelRow) LoggedModelRow {
	row.Metrics, row.completed = nil, false
	return row
}

// prefetch reads the metrics of rows in one LoggedModelMetricsOf when the store has it.
func (l *loggedModels) prefetch(ctx context.Context, rows []*LoggedModelRow) error {
	b, ok := l.store.(metadata.BulkReader)
	if !ok {
		return nil
	}
	ids := make([]uint64, 0, len(rows))
	for _, row := range rows {
		if !row.completed {
			ids = append(ids, row.LoggedModel.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ms, err := b.LoggedModelMetricsOf(ctx, ids)
	if err != nil {
		return fmt.Errorf("metrics of %d logged models: %w", len(ids), err)
	}
	for _, row := range rows {
		if m, found := ms[row.LoggedModel.ID]; found && !row.completed {
			// An absent one stays incomplete: complete reads it, and fails as LoggedModelMetrics does.
			row.Metrics, row.completed = m, true
		}
	}
	return nil
}

// tieBreak settles ties newest first, then by model id.
func (*loggedModels) tieBreak(order []mlflowfilter.OrderBy) []mlflowfilter.OrderBy {
	return append(order,
		mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "creation_timestamp", Desc: true},
		mlflowfilter.OrderBy{Entity: mlflowfilter.Attribute, Key: "model_id"})
}

// latest is the latest point of key (highest step, then newest timestamp, then largest value) among
// those measured on one of datasets (all points when datasets is empty).
func latest(ms []metadata.Metric, key string, datasets []Dataset) (metadata.Metric, bool) {
	var best metadata.Metric
	found := false
	for _, m := range ms {
		if m.Key != key || (len(datasets) > 0 && !slices.ContainsFunc(datasets, func(d Dataset) bool { return d.matches(m) })) {
			continue
		}
		if !found || m.Step > best.Step || (m.Step == best.Step && (m.Timestamp > best.Timestamp ||
			(m.Timestamp == best.Timestamp && m.Value > best.Value))) {
			best, found = m, true
		}
	}
	return best, found
}

func (l *loggedModels) field(row LoggedModelRow, entity mlflowfilter.Entity, key string) (Value, bool) {
	lm := row.LoggedModel
	switch entity {
	case mlflowfilter.Metric:
		m, ok := latest(row.Metrics, key, l.datasetsFor(key))
		return Number(m.Value), ok
	case mlflowfilter.Param:
		v, ok := paramValue(lm.Params, key)
		return Text(v), ok
	case mlflowfilter.Tag:
		v, ok := tagValue(lm.Tags, key)
		return Text(v), ok
	}
	switch key {
	case "name":
		return Text(lm.Name), true
	case "status":
		return Text(lm.Status.String()), true
	case "model_type":
		return Text(lm.ModelType), true
	case "model_id":
		return Text(lm.LMID.String()), true
	case "source_run_id":
		return Text(lm.SourceRun.String()), lm.SourceRunID != 0
	case "creation_timestamp":
		return Number(float64(lm.CreatedAt.UnixMilli())), true
	case "last_updated_timestamp":
		return Number(float64(lm.UpdatedAt.UnixMilli())), true
	}
	return missing, false
}

// datasetsFor returns the datasets that decide metric key: those of the order clause on it when there
// is one with a dataset, else the query's filter restriction.
func (l *loggedModels) datasetsFor(key string) []Dataset {
	for i, o := range l.q.Order {
		if o.Entity == mlflowfilter.Metric && o.Key == key && l.orderDataset(i) != (Dataset{}) {
			return []Dataset{l.orderDataset(i)}
		}
	}
	return l.q.Datasets
}
