package pkgtypes

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func FuzzParseFormat(f *testing.F) {
	for _, seed := range [][2]string{
		{"fraud", "1.2.0"}, {"fraud/xgb", "1.2.0-rc.1+b.7"}, {"fraud", "candidate_7"},
		{"ml_experiment_12", "7"}, {"ml_experiment_12", "candidate_7"}, {"ml_experiment_012", "7"},
		{"ml_experiment_12", "07"}, {"ML_EXPERIMENT_1", "0.0.0"}, {"fr@ud", "1.0.0"}, {"-", "1.0.0"},
		{"a/b/../c", "1.0.0"}, {"fraud", "v1.0.0"}, {"fraud", "candidate_9223372036854775808"},
		{"ml_experiment_9223372036854775807", "9223372036854775807"}, {"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, name, version string) {
		r, err := Parse(name, version)
		if err != nil {
			if !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrInvalidVersion) {
				t.Fatalf("Parse(%q, %q) error %v wraps no name or version sentinel", name, version, err)
			}
			if r != (Ref{}) {
				t.Fatalf("Parse(%q, %q) returned %+v with error %v", name, version, r, err)
			}
			return
		}
		if r.Kind != ModelVersion && r.Kind != ModelCandidate && r.Kind != LegacyCandidate {
			t.Fatalf("Parse(%q, %q) gave kind %v", name, version, r.Kind)
		}
		n, v := Format(r)
		if n != name || v != version {
			t.Fatalf("Format(Parse(%q, %q)) = %q, %q", name, version, n, v)
		}
		r2, err := Parse(n, v)
		if err != nil || r2 != r {
			t.Fatalf("Parse(Format(%+v)) = %+v, %v", r, r2, err)
		}
	})
}

// escapeRoute builds the escaped route of t, so that accepted routes can be checked to round-trip.
func escapeRoute(t Target) string {
	var head string
	switch t.Ref.Kind {
	case CandidateRef:
		head = "candidate:" + strconv.FormatInt(t.Ref.CandidateIID, 10) + "/files"
	case VersionID:
		head = strconv.FormatInt(t.Ref.VersionID, 10) + "/files"
	case LoggedModelRef:
		head = t.Ref.LoggedModelID + "/files"
	default:
		n, v := Format(t.Ref)
		head = url.PathEscape(n) + "/" + url.PathEscape(v)
	}
	segs := strings.Split(t.Path, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return head + "/" + strings.Join(segs, "/")
}

func FuzzParseRoute(f *testing.F) {
	for _, seed := range []string{
		"ml_experiment_12/7/model/MLmodel", "ml_experiment_12/candidate_7/a.bin", "fraud%2Fxgb/1.2.0/model.onnx",
		"fraud/1.2.0-rc.1/", "fraud/candidate_7/a.txt", "candidate:7/files/a/b.txt", "team/fraud/1.0.0/x",
		"fraud/v1.0.0/x", "fraud/1.0/x", "fr@ud/1.0.0/x", "fraud/1.0.0/../x", "fraud/1.0.0/a//b",
		"candidate%3A7/files/a%20b", "12/files/x", "0/files/x", "fraud/1.0.0", "fraud/1.0.0/a%2Fb",
		"fraud/1.0.0/%2E%2E", "-/uploads/1", "", "/", "fraud%2F/1.0.0/x", "fraud/1.0.0+b%2Fc/x",
		"fraud/1.0.0/a%00b", "fraud/1.0.0/a%20", "ml_experiment_1/1", "12/fil%65s/x",
		"m-0123456789abcdef0123456789abcdef/files/a", "m-0123456789abcdef0123456789abcdef/1.0.0/a", "m-01/files/x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		tg, err := ParseRoute(rest)
		gtg, gerr := ParseGenericRoute(rest)
		if gerr == nil {
			if gtg.Ref.Kind != LegacyCandidate || gtg.Ref.LegacyCandidatePrefix {
				t.Fatalf("ParseGenericRoute(%q) = %+v", rest, gtg)
			}
			// Generic routes are a subset of ml_models routes.
			if err != nil || tg != gtg {
				t.Fatalf("ParseGenericRoute(%q) = %+v but ParseRoute = %+v, %v", rest, gtg, tg, err)
			}
		} else if !errors.Is(gerr, ErrInvalidName) && !errors.Is(gerr, ErrInvalidVersion) && !errors.Is(gerr, ErrInvalidPath) {
			t.Fatalf("ParseGenericRoute(%q) error %v wraps no sentinel", rest, gerr)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidName) && !errors.Is(err, ErrInvalidVersion) && !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("ParseRoute(%q) error %v wraps no sentinel", rest, err)
			}
			if tg != (Target{}) {
				t.Fatalf("ParseRoute(%q) returned %+v with error %v", rest, tg, err)
			}
			return
		}
		if tg.Path != "" {
			if err := ValidateFilePath(tg.Path); err != nil {
				t.Fatalf("ParseRoute(%q) accepted path %q: %v", rest, tg.Path, err)
			}
		}
		r := tg.Ref
		switch r.Kind {
		case ModelVersion, ModelCandidate, LegacyCandidate:
			if r2, err := Parse(Format(r)); err != nil || r2 != r {
				t.Fatalf("ParseRoute(%q) gave %+v, which does not re-parse: %+v, %v", rest, r, r2, err)
			}
		case CandidateRef:
			if r != (Ref{Kind: CandidateRef, CandidateIID: r.CandidateIID}) || r.CandidateIID <= 0 {
				t.Fatalf("ParseRoute(%q) gave %+v", rest, r)
			}
		case VersionID:
			if r != (Ref{Kind: VersionID, VersionID: r.VersionID}) || r.VersionID <= 0 {
				t.Fatalf("ParseRoute(%q) gave %+v", rest, r)
			}
		case LoggedModelRef:
			if r != (Ref{Kind: LoggedModelRef, LoggedModelID: r.LoggedModelID}) || !isLoggedModelID(r.LoggedModelID) {
				t.Fatalf("ParseRoute(%q) gave %+v", rest, r)
			}
		default:
			t.Fatalf("ParseRoute(%q) gave kind %v", rest, r.Kind)
		}
		again := escapeRoute(tg)
		if tg2, err := ParseRoute(again); err != nil || tg2 != tg {
			t.Fatalf("ParseRoute(%q) = %+v, but its re-escaped form %q gives %+v, %v", rest, tg, again, tg2, err)
		}
	})
}

func FuzzSlugify(f *testing.F) {
	for _, seed := range []string{
		"My Experiment", "/Users/ana/Churn v2", "", "___", "ml_experiment_12", "ML Experiment 12", "日本語",
		"\u212A", "İstanbul", "a\x00b", "\xff", strings.Repeat("ab ", 200), strings.Repeat(".", 300) + "x",
		"ml_experiment_" + strings.Repeat("9", 241),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := Slugify(in)
		if err := ValidateModelName(s); err != nil {
			t.Fatalf("Slugify(%q) = %q: %v", in, s, err)
		}
		if again := Slugify(s); again != s {
			t.Fatalf("Slugify not idempotent: %q → %q → %q", in, s, again)
		}
	})
}

func FuzzCompareSemver(f *testing.F) {
	for _, seed := range [][3]string{
		{"1.0.0", "1.0.0-rc.1", "2.0.0"}, {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-1"},
		{"1.0.0+a", "1.0.0+b", "1.0.0"}, {"1.0.0-10", "1.0.0-9", "1.0.0-a"}, {"", "v1.0.0", "1.0"},
		{"18446744073709551615.0.0", "18446744073709551616.0.0", "1.0.0-00"},
		{"1.0.0-99999999999999999999", "1.0.0-100000000000000000000", "1.0.0--"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, ba := CompareSemver(a, b), CompareSemver(b, a)
		if ab != -ba || ab < -1 || ab > 1 {
			t.Fatalf("CompareSemver(%q, %q) = %d but CompareSemver(%q, %q) = %d", a, b, ab, b, a, ba)
		}
		if CompareSemver(a, a) != 0 {
			t.Fatalf("CompareSemver(%q, itself) != 0", a)
		}
		if bc := CompareSemver(b, c); ab <= 0 && bc <= 0 && CompareSemver(a, c) > 0 {
			t.Fatalf("not transitive: %q <= %q <= %q but %q > %q", a, b, c, a, c)
		}
		if next := NextMinor(a); next != "" && (ValidateSemver(next) != nil || a != "" && CompareSemver(next, a) <= 0) {
			t.Fatalf("NextMinor(%q) = %q", a, next)
		}
	})
}
