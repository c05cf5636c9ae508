package runquery

import (
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

// MatchesAttributes evaluates the filter's attribute clauses, which need no RunData read.
func MatchesAttributes(f mlflowfilter.Filter, m *metadata.Model, c *metadata.Candidate) bool {
	for _, cond := range f {
		if cond.Entity != mlflowfilter.Attribute {
			continue
		}
		var ok bool
		switch cond.Key {
		case "run_name":
			ok = cond.MatchString(c.Name)
		case "status":
			ok = cond.MatchString(c.Status.String())
		case "user_id":
			ok = cond.MatchString(c.UserID)
		case "artifact_uri":
			ok = cond.MatchString(ArtifactURI(m, c))
		case "run_id":
			ok = cond.MatchString(c.EID.String())
		case "start_time":
			ok = cond.MatchNumber(float64(c.StartTime))
		case "end_time":
			// An unset end_time is SQL NULL in MLflow: no comparison matches it.
			ok = c.EndTime != 0 && cond.MatchNumber(float64(c.EndTime))
		}
		if !ok {
			return false
		}
	}
	return true
}

// MatchesData evaluates the filter's metric, param and tag clauses. A run without the metric never
// matches a metric clause (MLflow compares the latest value in SQL, where a missing row matches
// nothing); a run without the param or tag matches only the negative comparators (section 9.2 of the
// MLflow contract).
func MatchesData(f mlflowfilter.Filter, c *metadata.Candidate, data *metadata.RunData) bool {
	for _, cond := range f {
		var ok bool
		switch cond.Entity {
		case mlflowfilter.Attribute:
			continue
		case mlflowfilter.Metric:
			v, found := MetricValue(data, cond.Key)
			ok = found && cond.MatchNumber(v)
		case mlflowfilter.Param:
			v, found := ParamValue(data, cond.Key)
			ok = MatchOptionalString(cond, v, found)
		case mlflowfilter.Tag:
			v, found := TagValue(c, data, cond.Key)
			ok = MatchOptionalString(cond, v, found)
		}
		if !ok {
			return false
		}
	}
	return true
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

// ParamValue is a run's param.
func ParamValue(data *metadata.RunData, key string) (string, bool) {
	i, ok := slices.BinarySearchFunc(data.Params, key, func(p metadata.Param, k string) int { return strings.Compare(p.Key, k) })
	if !ok {
		return "", false
	}
	return data.Params[i].Value, true
}

// TagValue is a run's tag, including the synthetic CandidateIIDTag.
func TagValue(c *metadata.Candidate, data *metadata.RunData, key string) (string, bool) {
	if key == CandidateIIDTag {
		return strconv.FormatInt(c.IID, 10), true
	}
	i, ok := slices.BinarySearchFunc(data.Tags, key, func(t metadata.Tag, k string) int { return strings.Compare(t.Key, k) })
	if !ok {
		return "", false
	}
	return data.Tags[i].Value, true
}
