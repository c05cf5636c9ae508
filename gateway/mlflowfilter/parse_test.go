package mlflowfilter

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func str(s string) Value              { return Value{Kind: ValueString, Str: s} }
func num(lit string, f float64) Value { return Value{Kind: ValueNumber, Str: lit, Num: f} }
func list(s ...string) Value          { return Value{Kind: ValueList, List: s} }

type parseFunc func(string) (Filter, error)

type okCase struct {
	in   string
	want Filter
}

func runOK(t *testing.T, name string, parse parseFunc, cases []okCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		if err != nil {
			t.Errorf("%s(%q): unexpected error %v", name, tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s(%q)\n got %#v\nwant %#v", name, tc.in, got, tc.want)
			continue
		}
		// The String form must be accepted by the same parser and mean
		// the same thing.
		again, err := parse(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("%s: round trip of %q via %q: got %#v, %v", name, tc.in, got.String(), again, err)
		}
	}
}

type badCase struct {
	in      string
	wantMsg string // substring of the error message
}

func runBad(t *testing.T, name string, parse parseFunc, cases []badCase) {
	t.Helper()
	for _, tc := range cases {
		got, err := parse(tc.in)
		if err == nil {
			t.Errorf("%s(%q): want error, got %#v", name, tc.in, got)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s(%q): error %v does not wrap ErrInvalid", name, tc.in, err)
		}
		if !strings.Contains(err.Error(), "position") {
			t.Errorf("%s(%q): error %q has no position", name, tc.in, err)
		}
		if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s(%q): error %q does not contain %q", name, tc.in, err, tc.wantMsg)
		}
	}
}

// Every filter string the 2.17.2 and 3.6 clients sent in the recorded
// traces, per endpoint.
func TestTraceFilters(t *testing.T) {
	tag := func(k, v string) Condition { return Condition{Tag, k, OpEq, str(v)} }
	name := func(op Comparator, v string) Condition { return Condition{Attribute, "name", op, str(v)} }
	prompt := Condition{Tag, "mlflow.prompt.is_prompt", OpNe, str("true")}

	var runs []okCase
	for _, id := range []string{"5f1b44611b", "6eb35928cc"} {
		runs = append(runs,
			okCase{"tags.wf_id = '" + id + "'", Filter{tag("wf_id", id)}},
			okCase{"tags.wf_id = '" + id + "' and metrics.acc > 0.6",
				Filter{tag("wf_id", id), {Metric, "acc", OpGt, num("0.6", 0.6)}}},
			okCase{"tags.wf_id = '" + id + "' and params.alpha = '0.5'",
				Filter{tag("wf_id", id), {Param, "alpha", OpEq, str("0.5")}}},
		)
	}
	runOK(t, "ParseRunFilter", ParseRunFilter, runs)

	runOK(t, "ParseExperimentFilter", ParseExperimentFilter, []okCase{
		{"name = 'My Experiment'", Filter{name(OpEq, "My Experiment")}},
	})

	runOK(t, "ParseModelFilter", ParseModelFilter, []okCase{
		{"name = 'nope-5f1b44611b'", Filter{name(OpEq, "nope-5f1b44611b")}},
		{"name = 'wf-model-5f1b44611b'", Filter{name(OpEq, "wf-model-5f1b44611b")}},
		{"name LIKE 'wf-model-5f1b44%'", Filter{name(OpLike, "wf-model-5f1b44%")}},
		{"name = 'wf-model-6eb35928cc'", Filter{name(OpEq, "wf-model-6eb35928cc")}},
		{"name = 'nope-6eb35928cc' AND tag.`mlflow.prompt.is_prompt` != 'true'",
			Filter{name(OpEq, "nope-6eb35928cc"), prompt}},
		{"name = 'wf-model-6eb35928cc' AND tag.`mlflow.prompt.is_prompt` != 'true'",
			Filter{name(OpEq, "wf-model-6eb35928cc"), prompt}},
		{"name LIKE 'wf-model-6eb359%' AND tag.`mlflow.prompt.is_prompt` != 'true'",
			Filter{name(OpLike, "wf-model-6eb359%"), prompt}},
		// 3.6 logged-models/search sends the same name syntax.
		{"name = 'big'", Filter{name(OpEq, "big")}},
		{"name = 'hello.txt'", Filter{name(OpEq, "hello.txt")}},
		{"name = 'does-not-exist-6eb35928cc'", Filter{name(OpEq, "does-not-exist-6eb35928cc")}},
	})

	runOK(t, "ParseVersionFilter", ParseVersionFilter, []okCase{
		{"name = 'wf-model-5f1b44611b'", Filter{name(OpEq, "wf-model-5f1b44611b")}},
		{"name = 'wf-model-6eb35928cc'", Filter{name(OpEq, "wf-model-6eb35928cc")}},
	})
}

func TestParseRunFilterValid(t *testing.T) {
	runOK(t, "ParseRunFilter", ParseRunFilter, []okCase{
		{"", Filter{}},
		{"   \t\n ", Filter{}},
		{"metrics.rmse < 1", Filter{{Metric, "rmse", OpLt, num("1", 1)}}},
		{"metric.rmse<=-1.5e-3", Filter{{Metric, "rmse", OpLe, num("-1.5e-3", -1.5e-3)}}},
		{"METRICS.rmse >= +2E10", Filter{{Metric, "rmse", OpGe, num("+2E10", 2e10)}}},
		{"metrics.a = .5 AND metrics.b != 5.", Filter{{Metric, "a", OpEq, num(".5", .5)}, {Metric, "b", OpNe, num("5.", 5)}}},
		{"metrics.`my key` > 0", Filter{{Metric, "my key", OpGt, num("0", 0)}}},
		{`metrics."a b" > 0`, Filter{{Metric, "a b", OpGt, num("0", 0)}}},
		{`metrics."a` + "`" + `b" > 0`, Filter{{Metric, "a`b", OpGt, num("0", 0)}}},
		{"params.lr = '0.1'", Filter{{Param, "lr", OpEq, str("0.1")}}},
		{"param.lr != \"0.1\"", Filter{{Param, "lr", OpNe, str("0.1")}}},
		{"parameter.opt LIKE 'ad%'", Filter{{Param, "opt", OpLike, str("ad%")}}},
		{"parameters.opt ilike 'AD%'", Filter{{Param, "opt", OpILike, str("AD%")}}},
		{"tags.mlflow.runName = 'x'", Filter{{Tag, "mlflow.runName", OpEq, str("x")}}},
		{"tag.`a-b/c` = \"it's\"", Filter{{Tag, "a-b/c", OpEq, str("it's")}}},
		{"tags.k = ''", Filter{{Tag, "k", OpEq, str("")}}},
		{"tags.k = 'AND OR'", Filter{{Tag, "k", OpEq, str("AND OR")}}},
		{"attributes.status = 'FINISHED'", Filter{{Attribute, "status", OpEq, str("FINISHED")}}},
		{"attribute.run_name LIKE '%x%'", Filter{{Attribute, "run_name", OpLike, str("%x%")}}},
		{"attr.user_id ILIKE 'Bob'", Filter{{Attribute, "user_id", OpILike, str("Bob")}}},
		{"run.artifact_uri != 's3://b/p'", Filter{{Attribute, "artifact_uri", OpNe, str("s3://b/p")}}},
		{"status = 'RUNNING'", Filter{{Attribute, "status", OpEq, str("RUNNING")}}},
		{"attributes.start_time > 1700000000000", Filter{{Attribute, "start_time", OpGt, num("1700000000000", 1700000000000)}}},
		{"end_time <= 5", Filter{{Attribute, "end_time", OpLe, num("5", 5)}}},
		{"attributes.`start_time` >= 5", Filter{{Attribute, "start_time", OpGe, num("5", 5)}}},
		{"attributes.run_id IN ('a', 'b')", Filter{{Attribute, "run_id", OpIn, list("a", "b")}}},
		{"run_id not   in ('a')", Filter{{Attribute, "run_id", OpNotIn, list("a")}}},
		{"attributes.run_id IN(\"a\",'b\"c')", Filter{{Attribute, "run_id", OpIn, list("a", `b"c`)}}},
		{"run_id = 'abc'", Filter{{Attribute, "run_id", OpEq, str("abc")}}},
		{"tags.a='x'AND tags.b='y'", Filter{{Tag, "a", OpEq, str("x")}, {Tag, "b", OpEq, str("y")}}},
		{"  tags.a = 'x'   aNd   metrics.m>1  ", Filter{{Tag, "a", OpEq, str("x")}, {Metric, "m", OpGt, num("1", 1)}}},
		{"metrics.acc>0.6", Filter{{Metric, "acc", OpGt, num("0.6", 0.6)}}},
		{"tags.k = 'ünïcödé ✓'", Filter{{Tag, "k", OpEq, str("ünïcödé ✓")}}},
	})
}

func TestParseRunFilterInvalid(t *testing.T) {
	runBad(t, "ParseRunFilter", ParseRunFilter, []badCase{
		{"tags.a = 'x' OR tags.b = 'y'", "OR, which is not supported"},
		{"tags.a = 'x' or tags.b = 'y'", "OR"},
		{"tags.a = 'x' AND", "after AND"},
		{"AND tags.a = 'x'", "invalid attribute key 'AND'"},
		{"tags.a = 'x' tags.b = 'y'", "expected AND"},
		{"tags.a = 'x' && tags.b = 'y'", "expected AND"},
		{"tags.a = 'x' ANDtags.b = 'y'", "expected AND"},
		{"foo.a = 'x'", "invalid entity type 'foo'"},
		{"datasets.name = 'x'", "invalid entity type"},
		{"nonsense = 'x'", "invalid attribute key 'nonsense'"},
		{"attributes.nonsense = 'x'", "invalid attribute key"},
		{"attributes.lifecycle_stage = 'active'", "invalid attribute key"},
		{"name = 'x'", "invalid attribute key 'name'"},
		{"tags. = 'x'", "expected a key"},
		{"tags.`` = 'x'", "empty key"},
		{"tags.`abc = 'x'", "unterminated quoted key"},
		{"tags.a-b = 'x'", "invalid comparator"},
		{"tags.a", "expected a comparator"},
		{"tags.a 'x'", "invalid comparator"},
		{"tags.a == 'x'", "invalid comparator '=='"},
		{"tags.a <> 'x'", "invalid comparator '<>'"},
		{"tags.a => 'x'", "invalid comparator"},
		{"tags.a NOT LIKE 'x'", "NOT IN"},
		{"tags.a =", "expected a value"},
		{"tags.a = 'x", "unterminated string"},
		{"tags.a = x", "must be quoted"},
		{"tags.a = 1", "not quoted"},
		{"params.a = 0.5", "not quoted"},
		{"tags.a > 'x'", "invalid comparator '>' for tag 'a'"},
		{"tags.a IN ('x')", "invalid comparator 'IN'"},
		{"metrics.acc = '0.6'", "expected numeric value type for metric"},
		{"metrics.acc LIKE '1%'", "invalid comparator 'LIKE' for metric"},
		{"metrics.acc > 0.6.1", "malformed number"},
		{"metrics.acc > 1e", "exponent"},
		{"metrics.acc > -", "malformed number"},
		{"metrics.acc > 0x10", "malformed number"},
		{"metrics.acc > 1abc", "malformed number"},
		{"metrics.acc > 1e999", "out of range"},
		{"metrics.acc > inf", "must be quoted"},
		{"metrics.acc > NaN", "must be quoted"},
		{"attributes.start_time > '5'", "numeric"},
		{"attributes.start_time LIKE '5'", "invalid comparator"},
		{"attributes.status > 'x'", "invalid comparator"},
		{"attributes.status IN ('x')", "invalid comparator 'IN'"},
		{"attributes.run_id IN 'a'", "requires a list"},
		{"attributes.run_id = ('a')", "only allowed with IN"},
		{"attributes.run_id IN ()", "empty list"},
		{"attributes.run_id IN ('a',)", "quoted strings"},
		{"attributes.run_id IN ('a' 'b')", "expected ',' or ')'"},
		{"attributes.run_id IN ('a'", "unterminated list"},
		{"attributes.run_id IN (1, 2)", "quoted strings"},
		{"(tags.a = 'x')", "expected an identifier"},
		{"`tags.a` = 'x'", "expected an identifier"},
		{"tags.a = 'x' ;", "expected AND"},
		{"tags.a = 'x' AND AND tags.b = 'y'", ""},
	})
}

func TestParseModelExperimentVersionFilters(t *testing.T) {
	runOK(t, "ParseModelFilter", ParseModelFilter, []okCase{
		{"name ILIKE '%Foo%'", Filter{{Attribute, "name", OpILike, str("%Foo%")}}},
		{"name != 'x' and tags.team = 'ml'", Filter{{Attribute, "name", OpNe, str("x")}, {Tag, "team", OpEq, str("ml")}}},
		{"attributes.name = 'x'", Filter{{Attribute, "name", OpEq, str("x")}}},
		{"creation_time > 10", Filter{{Attribute, "creation_time", OpGt, num("10", 10)}}},
	})
	runBad(t, "ParseModelFilter", ParseModelFilter, []badCase{
		{"metrics.acc > 1", "invalid entity type 'metrics'"},
		{"params.a = 'x'", "invalid entity type"},
		{"name > 'x'", "invalid comparator '>'"},
		{"name IN ('x')", "invalid comparator"},
		{"run_id = 'x'", "invalid attribute key"},
		{"status = 'x'", "invalid attribute key"},
		{"name = 'a' OR name = 'b'", "OR"},
	})

	runOK(t, "ParseExperimentFilter", ParseExperimentFilter, []okCase{
		{"last_update_time <= 1e12 and tags.k LIKE 'v%'", Filter{{Attribute, "last_update_time", OpLe, num("1e12", 1e12)}, {Tag, "k", OpLike, str("v%")}}},
	})
	runBad(t, "ParseExperimentFilter", ParseExperimentFilter, []badCase{
		{"creation_time = 'x'", "numeric"},
		{"experiment_id = '1'", "invalid attribute key"},
	})

	runOK(t, "ParseVersionFilter", ParseVersionFilter, []okCase{
		{"run_id IN ('a','b')", Filter{{Attribute, "run_id", OpIn, list("a", "b")}}},
		{"run_id = 'a' AND name = 'm'", Filter{{Attribute, "run_id", OpEq, str("a")}, {Attribute, "name", OpEq, str("m")}}},
		{"version_number >= 2", Filter{{Attribute, "version_number", OpGe, num("2", 2)}}},
		{"version = 3", Filter{{Attribute, "version_number", OpEq, num("3", 3)}}},
		{"source_path LIKE 'runs:/%'", Filter{{Attribute, "source_path", OpLike, str("runs:/%")}}},
		{"tags.`x.y` != 'z'", Filter{{Tag, "x.y", OpNe, str("z")}}},
	})
	runBad(t, "ParseVersionFilter", ParseVersionFilter, []badCase{
		{"version_number = '2'", "numeric"},
		{"name IN ('a')", "invalid comparator"},
		{"metrics.a > 1", "invalid entity type"},
		{"stage = 'Production'", "invalid attribute key"},
	})
}

func TestParseOrderBy(t *testing.T) {
	got, err := ParseRunOrderBy([]string{"metrics.acc DESC", "metrics.acc ASC", "attributes.start_time", "params.lr asc",
		"tags.`a b` desc", "start_time DESC", "  run_name  ", "metric.`x`DESC"})
	want := []OrderBy{{Metric, "acc", true}, {Metric, "acc", false}, {Attribute, "start_time", false},
		{Param, "lr", false}, {Tag, "a b", true}, {Attribute, "start_time", true}, {Attribute, "run_name", false}}
	if err == nil {
		t.Fatalf("want error for missing whitespace before direction, got %v", got)
	}
	got, err = ParseRunOrderBy([]string{"metrics.acc DESC", "metrics.acc ASC", "attributes.start_time", "params.lr asc",
		"tags.`a b` desc", "start_time DESC", "  run_name  "})
	if err != nil || !reflect.DeepEqual(got, want[:7]) {
		t.Fatalf("ParseRunOrderBy: got %v, %v; want %v", got, err, want[:7])
	}
	for _, o := range got {
		again, err := ParseRunOrderBy([]string{o.String()})
		if err != nil || len(again) != 1 || again[0] != o {
			t.Errorf("round trip %q: %v %v", o.String(), again, err)
		}
	}
	if got, err := ParseRunOrderBy(nil); got != nil || err != nil {
		t.Errorf("nil clauses: %v %v", got, err)
	}

	for _, bad := range [][]string{{""}, {"metrics.acc DOWN"}, {"metrics.acc DESC x"}, {"foo.bar"},
		{"nonsense"}, {"metrics.acc DESC, params.x"}, {"metrics."}} {
		if _, err := ParseRunOrderBy(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "order_by[0]") {
			t.Errorf("ParseRunOrderBy(%q): want ErrInvalid naming the clause, got %v", bad, err)
		}
	}

	got, err = ParseModelOrderBy([]string{"name ASC", "last_update_time DESC", "creation_time", "version_number desc"})
	want = []OrderBy{{Attribute, "name", false}, {Attribute, "last_update_time", true}, {Attribute, "creation_time", false}, {Attribute, "version_number", true}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseModelOrderBy: got %v, %v", got, err)
	}
	for _, bad := range [][]string{{"metrics.acc"}, {"tags.x"}, {"start_time"}, {"name", "bogus DESC"}} {
		if _, err := ParseModelOrderBy(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseModelOrderBy(%q): want ErrInvalid, got %v", bad, err)
		}
	}
}

func TestErrorMessageNamesTokenAndPosition(t *testing.T) {
	_, err := ParseRunFilter("tags.a = 'x' AND bogus.k = 'y'")
	if err == nil || !strings.Contains(err.Error(), `position 17`) || !strings.Contains(err.Error(), `"bogus.k"`) {
		t.Fatalf("got %v", err)
	}
}

func TestMatch(t *testing.T) {
	mustOne := func(s string, p parseFunc) Condition {
		f, err := p(s)
		if err != nil || len(f) != 1 {
			t.Fatalf("%q: %v %v", s, f, err)
		}
		return f[0]
	}
	strCases := []struct {
		filter string
		v      string
		want   bool
	}{
		{"tags.a = 'x'", "x", true},
		{"tags.a = 'x'", "xx", false}, // never a substring match
		{"tags.a != 'x'", "y", true},
		{"tags.a != 'x'", "x", false},
		{"tags.a LIKE 'x%'", "xyz", true},
		{"tags.a LIKE 'x%'", "Xyz", false},
		{"tags.a ILIKE 'x%'", "Xyz", true},
		{"run_id IN ('a','b')", "b", true},
		{"run_id IN ('a','b')", "c", false},
		{"run_id NOT IN ('a','b')", "c", true},
		{"run_id NOT IN ('a','b')", "a", false},
	}
	for _, tc := range strCases {
		if got := mustOne(tc.filter, ParseRunFilter).MatchString(tc.v); got != tc.want {
			t.Errorf("%q MatchString(%q) = %v", tc.filter, tc.v, got)
		}
	}
	numCases := []struct {
		filter string
		v      float64
		want   bool
	}{
		{"metrics.m = 1", 1, true},
		{"metrics.m != 1", 1, false},
		{"metrics.m < 1", 0.5, true},
		{"metrics.m <= 1", 1, true},
		{"metrics.m > 1", 1, false},
		{"metrics.m >= 1", 1, true},
		{"metrics.m > 0.6", math.NaN(), false},
		{"metrics.m != 0.6", math.NaN(), true},
	}
	for _, tc := range numCases {
		if got := mustOne(tc.filter, ParseRunFilter).MatchNumber(tc.v); got != tc.want {
			t.Errorf("%q MatchNumber(%v) = %v", tc.filter, tc.v, got)
		}
	}
	// Mismatched kinds never match rather than guessing.
	if mustOne("metrics.m = 1", ParseRunFilter).MatchString("1") {
		t.Error("numeric condition matched a string")
	}
	if mustOne("tags.a = '1'", ParseRunFilter).MatchNumber(1) {
		t.Error("string condition matched a number")
	}
}

// The logged-models/search grammar: every filter the 3.6 trace sent, the attribute aliases, and keys
// of other searches refused.
func TestParseLoggedModelFilterAndOrderKey(t *testing.T) {
	attr := func(k string, op Comparator, v Value) Condition { return Condition{Attribute, k, op, v} }
	runOK(t, "ParseLoggedModelFilter", ParseLoggedModelFilter, []okCase{
		{"name = 'model'", Filter{attr("name", OpEq, str("model"))}},
		{"metrics.acc > 0.5", Filter{{Metric, "acc", OpGt, num("0.5", 0.5)}}},
		{"metrics.acc >= 0.7", Filter{{Metric, "acc", OpGe, num("0.7", 0.7)}}},
		{"params.factor = '3.0'", Filter{{Param, "factor", OpEq, str("3.0")}}},
		{"tags.stage = 'candidate'", Filter{{Tag, "stage", OpEq, str("candidate")}}},
		{"name = 'external-model' AND model_type = 'agent'",
			Filter{attr("name", OpEq, str("external-model")), attr("model_type", OpEq, str("agent"))}},
		{"status = 'LOGGED_MODEL_READY'", Filter{attr("status", OpEq, str("LOGGED_MODEL_READY"))}},
		{"creation_time > 5", Filter{attr("creation_timestamp", OpGt, num("5", 5))}},
		{"creation_timestamp_ms > 5", Filter{attr("creation_timestamp", OpGt, num("5", 5))}},
		{"last_updated_timestamp <= 5", Filter{attr("last_updated_timestamp", OpLe, num("5", 5))}},
		{"source_run_id = 'abc'", Filter{attr("source_run_id", OpEq, str("abc"))}},
		{"attributes.name LIKE 'm%'", Filter{attr("name", OpLike, str("m%"))}},
	})
	runBad(t, "ParseLoggedModelFilter", ParseLoggedModelFilter, []badCase{
		{"start_time > 0", "start_time"},
		{"run_name = 'x'", "run_name"},
		{"metrics.acc = 'x'", ""},
		{"creation_timestamp = 'yesterday'", ""},
		{"datasets.name = 'x'", ""},
	})

	for field, want := range map[string]OrderBy{
		"metrics.acc":   {Metric, "acc", false},
		"params.lr":     {Param, "lr", false},
		"tags.`a b`":    {Tag, "a b", false},
		"name":          {Attribute, "name", false},
		"creation_time": {Attribute, "creation_timestamp", false},
		"model_id":      {Attribute, "model_id", false},
	} {
		got, err := ParseLoggedModelOrderKey(field)
		if err != nil || got != want {
			t.Errorf("ParseLoggedModelOrderKey(%q) = %v, %v; want %v", field, got, err, want)
		}
	}
	for _, bad := range []string{"", "start_time", "metrics.", "bogus.x", "name DESC x"} {
		if _, err := ParseLoggedModelOrderKey(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseLoggedModelOrderKey(%q): want ErrInvalid, got %v", bad, err)
		}
	}
}
