package pkgtypes

import (
	"strings"
	"testing"
)

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		ModelVersion:    "ModelVersion",
		ModelCandidate:  "ModelCandidate",
		LegacyCandidate: "LegacyCandidate",
		CandidateRef:    "CandidateRef",
		VersionID:       "VersionID",
		LoggedModelRef:  "LoggedModelRef",
		0:               "Kind(0)",
		7:               "Kind(7)",
	} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}

func TestParse(t *testing.T) {
	const maxInt64 = "9223372036854775807"
	tests := []struct {
		name, version string
		want          Ref
		err           error
		errValue      string // the value the error must quote; defaults to name or version by sentinel
	}{
		{name: "fraud", version: "1.2.0", want: Ref{Kind: ModelVersion, Model: "fraud", Version: "1.2.0"}},
		{name: "fraud/xgb", version: "1.2.0-rc.1+b.7", want: Ref{Kind: ModelVersion, Model: "fraud/xgb", Version: "1.2.0-rc.1+b.7"}},
		{name: "fraud", version: "candidate_7", want: Ref{Kind: ModelCandidate, Model: "fraud", CandidateIID: 7}},
		{name: "fraud", version: "candidate_" + maxInt64, want: Ref{Kind: ModelCandidate, Model: "fraud", CandidateIID: 1<<63 - 1}},
		{name: "ml_experiment_12", version: "7", want: Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}},
		{name: "ml_experiment_12", version: "candidate_7", want: Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7, LegacyCandidatePrefix: true}},
		{name: "ml_experiment_" + maxInt64, version: maxInt64, want: Ref{Kind: LegacyCandidate, ModelIID: 1<<63 - 1, CandidateIID: 1<<63 - 1}},
		{name: "ML_EXPERIMENT_12", version: "1.0.0", want: Ref{Kind: ModelVersion, Model: "ML_EXPERIMENT_12", Version: "1.0.0"}},

		{name: "", version: "1.0.0", err: ErrInvalidName},
		{name: "fr@ud", version: "1.0.0", err: ErrInvalidName},
		{name: "fr@ud", version: "bad", err: ErrInvalidName}, // the name is checked first
		{name: "-", version: "1.0.0", err: ErrInvalidName},
		{name: "ml_experiment_0", version: "7", err: ErrInvalidName},
		{name: "ml_experiment_012", version: "7", err: ErrInvalidName},
		{name: "ml_experiment_9223372036854775808", version: "7", err: ErrInvalidName},
		{name: "ml_experiment_12", version: "0", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "07", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "candidate_07", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "9223372036854775808", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "1.0.0", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "-7", err: ErrInvalidVersion},
		{name: "ml_experiment_12", version: "+7", err: ErrInvalidVersion},
		{name: "fraud", version: "7", err: ErrInvalidVersion},
		{name: "fraud", version: "", err: ErrInvalidVersion},
		{name: "fraud", version: "v1.0.0", err: ErrInvalidVersion},
		{name: "fraud", version: "1.0", err: ErrInvalidVersion},
		{name: "fraud", version: "candidate_", err: ErrInvalidVersion},
		{name: "fraud", version: "candidate_0", err: ErrInvalidVersion},
		{name: "fraud", version: "candidate_x", err: ErrInvalidVersion},
		{name: "fraud", version: "candidate_7x", err: ErrInvalidVersion}, // GitLab's unanchored regex would take it
		{name: "fraud", version: "xcandidate_7", err: ErrInvalidVersion},
		{name: "fraud", version: "candidate:7", err: ErrInvalidVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name+"|"+tt.version, func(t *testing.T) {
			got, err := Parse(tt.name, tt.version)
			value := tt.version
			if tt.err == ErrInvalidName {
				value = tt.name
			}
			checkErr(t, err, tt.err, value)
			if got != tt.want {
				t.Fatalf("Parse(%q, %q) = %+v, want %+v", tt.name, tt.version, got, tt.want)
			}
			if err != nil {
				return
			}
			if n, v := Format(got); n != tt.name || v != tt.version {
				t.Errorf("Format(%+v) = %q, %q, want %q, %q", got, n, v, tt.name, tt.version)
			}
		})
	}
}

func TestRefAccessors(t *testing.T) {
	tests := []struct {
		ref                 Ref
		name, version, text string
	}{
		{Ref{Kind: ModelVersion, Model: "fraud/xgb", Version: "1.2.0"}, "fraud/xgb", "1.2.0", "fraud/xgb/1.2.0"},
		{Ref{Kind: ModelCandidate, Model: "fraud", CandidateIID: 7}, "fraud", "candidate_7", "fraud/candidate_7"},
		{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, "ml_experiment_12", "7", "ml_experiment_12/7"},
		{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7, LegacyCandidatePrefix: true}, "ml_experiment_12", "candidate_7", "ml_experiment_12/candidate_7"},
		{Ref{Kind: CandidateRef, CandidateIID: 7}, "", "", "candidate:7"},
		{Ref{Kind: VersionID, VersionID: 12}, "", "", "version:12"},
		{Ref{Kind: LoggedModelRef, LoggedModelID: "m-0123456789abcdef0123456789abcdef"}, "", "", "m-0123456789abcdef0123456789abcdef"},
		{Ref{}, "", "", "invalid(Kind(0))"},
	}
	for _, tt := range tests {
		if got := tt.ref.PackageName(); got != tt.name {
			t.Errorf("%+v.PackageName() = %q, want %q", tt.ref, got, tt.name)
		}
		if got := tt.ref.PackageVersion(); got != tt.version {
			t.Errorf("%+v.PackageVersion() = %q, want %q", tt.ref, got, tt.version)
		}
		if n, v := Format(tt.ref); n != tt.name || v != tt.version {
			t.Errorf("Format(%+v) = %q, %q, want %q, %q", tt.ref, n, v, tt.name, tt.version)
		}
		if got := tt.ref.String(); got != tt.text {
			t.Errorf("%+v.String() = %q, want %q", tt.ref, got, tt.text)
		}
	}
	// Format of the route-only kinds must not parse, so they cannot be mistaken for a package.
	for _, r := range []Ref{{Kind: CandidateRef, CandidateIID: 7}, {Kind: VersionID, VersionID: 1}, {Kind: LoggedModelRef, LoggedModelID: "m-0123456789abcdef0123456789abcdef"}, {}} {
		if _, err := Parse(Format(r)); err == nil {
			t.Errorf("Parse(Format(%+v)) succeeded", r)
		}
	}
}

type routeTest struct {
	rest string
	want Target
	err  error
	hint string // a substring the error must contain
}

func runRouteTests(t *testing.T, parse func(string) (Target, error), tests []routeTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.rest, func(t *testing.T) {
			got, err := parse(tt.rest)
			if tt.err == nil {
				checkErr(t, err, nil, "")
			} else {
				checkErr(t, err, tt.err, "") // the quoted value is a decoded segment, checked by hint where it matters
				if !strings.Contains(err.Error(), tt.hint) {
					t.Errorf("error %q does not contain %q", err, tt.hint)
				}
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestParseRouteArchitectureTable holds every row of the table in architecture.md section 6.2.
func TestParseRouteArchitectureTable(t *testing.T) {
	runRouteTests(t, ParseRoute, []routeTest{
		{rest: "ml_experiment_12/7/model/MLmodel", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, "model/MLmodel"}},
		{rest: "ml_experiment_12/candidate_7/a.bin", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7, LegacyCandidatePrefix: true}, "a.bin"}},
		{rest: "fraud%2Fxgb/1.2.0/model.onnx", want: Target{Ref{Kind: ModelVersion, Model: "fraud/xgb", Version: "1.2.0"}, "model.onnx"}},
		{rest: "fraud/1.2.0-rc.1/", want: Target{Ref{Kind: ModelVersion, Model: "fraud", Version: "1.2.0-rc.1"}, ""}},
		{rest: "fraud/candidate_7/a.txt", want: Target{Ref{Kind: ModelCandidate, Model: "fraud", CandidateIID: 7}, "a.txt"}},
		{rest: "candidate:7/files/a/b.txt", want: Target{Ref{Kind: CandidateRef, CandidateIID: 7}, "a/b.txt"}},
		{rest: "team/fraud/1.0.0/x", err: ErrInvalidVersion, hint: "team%2Ffraud/"},
		{rest: "fraud/v1.0.0/x", err: ErrInvalidVersion, hint: "'v' prefix"},
		{rest: "fraud/1.0/x", err: ErrInvalidVersion, hint: "MAJOR.MINOR.PATCH"},
		{rest: "fr@ud/1.0.0/x", err: ErrInvalidName, hint: "'@'"},
		{rest: "fraud/1.0.0/../x", err: ErrInvalidPath, hint: "'..'"},
		{rest: "fraud/1.0.0/a//b", err: ErrInvalidPath, hint: "empty segment"},
	})
}

func TestParseRoute(t *testing.T) {
	const lmid = "m-0123456789abcdef0123456789abcdef"
	fraud := Ref{Kind: ModelVersion, Model: "fraud", Version: "1.0.0"}
	runRouteTests(t, ParseRoute, []routeTest{
		// Package roots.
		{rest: "fraud/1.0.0", want: Target{fraud, ""}},
		{rest: "fraud/1.0.0/", want: Target{fraud, ""}},
		{rest: "candidate:7/files", want: Target{Ref{Kind: CandidateRef, CandidateIID: 7}, ""}},
		{rest: "candidate:7/files/", want: Target{Ref{Kind: CandidateRef, CandidateIID: 7}, ""}},
		{rest: "12/files/", want: Target{Ref{Kind: VersionID, VersionID: 12}, ""}},
		{rest: "ml_experiment_12/7", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, ""}},
		{rest: lmid + "/files", want: Target{Ref{Kind: LoggedModelRef, LoggedModelID: lmid}, ""}},
		{rest: lmid + "/files/", want: Target{Ref{Kind: LoggedModelRef, LoggedModelID: lmid}, ""}},
		{rest: lmid + "/files/model/MLmodel", want: Target{Ref{Kind: LoggedModelRef, LoggedModelID: lmid}, "model/MLmodel"}},
		{rest: lmid + "/1.0.0/a", want: Target{Ref{Kind: ModelVersion, Model: lmid, Version: "1.0.0"}, "a"}}, // a model named like an id

		// Decoding happens per segment, after splitting.
		{rest: "candidate%3A7/files/a.txt", want: Target{Ref{Kind: CandidateRef, CandidateIID: 7}, "a.txt"}},
		{rest: "12/files/model/MLmodel", want: Target{Ref{Kind: VersionID, VersionID: 12}, "model/MLmodel"}},
		{rest: "12/fil%65s/x", want: Target{Ref{Kind: VersionID, VersionID: 12}, "x"}},
		{rest: "fraud/1.0.0/my%20model/w%2Bb.bin", want: Target{fraud, "my model/w+b.bin"}},
		{rest: "fraud/1.0.0/a+b", want: Target{fraud, "a+b"}}, // '+' is not a space in a path
		{rest: "fraud%2Fxgb%2Fv2/candidate_3/a", want: Target{Ref{Kind: ModelCandidate, Model: "fraud/xgb/v2", CandidateIID: 3}, "a"}},
		{rest: "Fraud/1.0.0%2Bbuild.1/a", want: Target{Ref{Kind: ModelVersion, Model: "Fraud", Version: "1.0.0+build.1"}, "a"}},
		{rest: "fraud/1.0.0+build.1/a", want: Target{Ref{Kind: ModelVersion, Model: "fraud", Version: "1.0.0+build.1"}, "a"}},
		{rest: "12/1.0.0/a", want: Target{Ref{Kind: ModelVersion, Model: "12", Version: "1.0.0"}, "a"}}, // a numeric model name
		{rest: "ml_experiment_12/7/a%20b/c", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, "a b/c"}},

		// Names.
		{rest: "", err: ErrInvalidName, hint: "empty"},
		{rest: "/fraud/1.0.0/x", err: ErrInvalidName, hint: "empty"},
		{rest: "-/uploads/abc", err: ErrInvalidName, hint: "letter or digit"},
		{rest: "fr%40ud/1.0.0/x", err: ErrInvalidName, hint: "'@'"},
		{rest: "fraud%zz/1.0.0/x", err: ErrInvalidName, hint: "malformed"},
		{rest: "fraud%2F/1.0.0/x", err: ErrInvalidName, hint: "empty segment"},
		{rest: "%2Ffraud/1.0.0/x", err: ErrInvalidName, hint: "letter or digit"},
		{rest: "fraud%2F..%2Fx/1.0.0/x", err: ErrInvalidName, hint: "'..'"},
		{rest: "ml_experiment_012/7/x", err: ErrInvalidName, hint: "leading zeros"},
		{rest: "candidate:0/files/x", err: ErrInvalidName, hint: "candidate iid"},
		{rest: "candidate:/files/x", err: ErrInvalidName, hint: "candidate iid"},
		{rest: "candidate:x/files/x", err: ErrInvalidName, hint: "candidate iid"},
		{rest: "candidate:9223372036854775808/files/x", err: ErrInvalidName, hint: "candidate iid"},
		{rest: "0/files/x", err: ErrInvalidName, hint: "version id"},
		{rest: "012/files/x", err: ErrInvalidName, hint: "version id"},
		{rest: "99999999999999999999/files/x", err: ErrInvalidName, hint: "version id"},
		{rest: "Candidate:7/files/x", err: ErrInvalidName, hint: "':'"},
		{rest: "m-0123/files/x", err: ErrInvalidName, hint: "32 lowercase hex"},
		{rest: strings.ToUpper(lmid[2:]) + "/files/x", err: ErrInvalidVersion, hint: "%2F"},
		{rest: "m-" + strings.ToUpper(lmid[2:]) + "/files/x", err: ErrInvalidName, hint: "32 lowercase hex"},
		{rest: lmid + "0/files/x", err: ErrInvalidName, hint: "32 lowercase hex"},
		{rest: "m-0123456789abcdef0123456789abcdeg/files/x", err: ErrInvalidName, hint: "32 lowercase hex"},

		// Versions.
		{rest: "fraud", err: ErrInvalidVersion, hint: "empty"},
		{rest: "fraud/", err: ErrInvalidVersion, hint: "empty"},
		{rest: "fraud//x", err: ErrInvalidVersion, hint: "empty"},
		{rest: "fraud/%zz/x", err: ErrInvalidVersion, hint: "malformed"},
		{rest: "fraud/1.0.0%2Fx/y", err: ErrInvalidVersion, hint: ""},
		{rest: "fraud/latest/model.pkl", err: ErrInvalidVersion, hint: "fraud%2Flatest/"},
		{rest: "team/fraud", err: ErrInvalidVersion, hint: "%2F"},
		{rest: "fraud/candidate_x/a", err: ErrInvalidVersion, hint: "candidate_<iid>"},
		{rest: "fraud/7/a", err: ErrInvalidVersion, hint: "MAJOR.MINOR.PATCH"},
		{rest: "fraud/files/a", err: ErrInvalidVersion, hint: "%2F"},
		{rest: "candidate:7", err: ErrInvalidVersion, hint: "candidate:<iid>/files"},
		{rest: "candidate:7/", err: ErrInvalidVersion, hint: "candidate:<iid>/files"},
		{rest: "candidate:7/a.txt", err: ErrInvalidVersion, hint: "candidate:<iid>/files"},
		{rest: "ml_experiment_12/1.0.0/x", err: ErrInvalidVersion, hint: "candidate iid"},
		{rest: "ml_experiment_12/abc/x", err: ErrInvalidVersion, hint: "candidate iid"}, // no %2F hint: the name is an experiment

		// Paths.
		{rest: "fraud/1.0.0//", err: ErrInvalidPath, hint: "leading '/'"},
		{rest: "fraud/1.0.0/dir/", err: ErrInvalidPath, hint: "empty segment"},
		{rest: "fraud/1.0.0/a%2Fb", err: ErrInvalidPath, hint: "%2F"},
		{rest: "fraud/1.0.0/..%2Fx", err: ErrInvalidPath, hint: "%2F"},
		{rest: "fraud/1.0.0/%2E%2E/x", err: ErrInvalidPath, hint: "'..'"},
		{rest: "fraud/1.0.0/a/%2e", err: ErrInvalidPath, hint: "'..'"},
		{rest: "fraud/1.0.0/a%00b", err: ErrInvalidPath, hint: "control"},
		{rest: "fraud/1.0.0/a%5Cb", err: ErrInvalidPath, hint: `'\'`},
		{rest: "fraud/1.0.0/a%zz", err: ErrInvalidPath, hint: "malformed"},
		{rest: "fraud/1.0.0/a%20", err: ErrInvalidPath, hint: "space"},
		{rest: "fraud/1.0.0/%ff", err: ErrInvalidPath, hint: "UTF-8"},
		{rest: "fraud/1.0.0/a:b", err: ErrInvalidPath, hint: "':'"},
		{rest: "candidate:7/files/../x", err: ErrInvalidPath, hint: "'..'"},
		{rest: "12/files//x", err: ErrInvalidPath, hint: "leading '/'"},
		{rest: "fraud/1.0.0/" + strings.Repeat("a", 256), err: ErrInvalidPath, hint: "255"},
	})
}

func TestParseGenericRoute(t *testing.T) {
	runRouteTests(t, ParseGenericRoute, []routeTest{
		{rest: "ml_experiment_12/7/model/MLmodel", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, "model/MLmodel"}},
		{rest: "ml_experiment_12/7/", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, ""}},
		{rest: "ml_experiment_12/7", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 12, CandidateIID: 7}, ""}},
		{rest: "ml_experiment_1/1/a%20b.txt", want: Target{Ref{Kind: LegacyCandidate, ModelIID: 1, CandidateIID: 1}, "a b.txt"}},

		{rest: "fraud/1.0.0/x", err: ErrInvalidName, hint: "generic packages"},
		{rest: "fraud/7/x", err: ErrInvalidName, hint: "generic packages"},
		{rest: "candidate:7/files/x", err: ErrInvalidName, hint: "generic packages"},
		{rest: "m-0123456789abcdef0123456789abcdef/files/x", err: ErrInvalidName, hint: "generic packages"},
		{rest: "12/files/x", err: ErrInvalidName, hint: "generic packages"},
		{rest: "", err: ErrInvalidName, hint: "generic packages"},
		{rest: "%zz/7/x", err: ErrInvalidName, hint: "malformed"},
		{rest: "ml_experiment_0/7/x", err: ErrInvalidName, hint: "experiment iid"},
		{rest: "ml_experiment_12/candidate_7/x", err: ErrInvalidVersion, hint: "bare candidate iid"},
		{rest: "ml_experiment_12/1.0.0/x", err: ErrInvalidVersion, hint: "candidate iid"},
		{rest: "ml_experiment_12", err: ErrInvalidVersion, hint: "candidate iid"},
		{rest: "ml_experiment_12/07/x", err: ErrInvalidVersion, hint: "candidate iid"},
		{rest: "ml_experiment_12/7/../x", err: ErrInvalidPath, hint: "'..'"},
		{rest: "ml_experiment_12/7/a%2Fb", err: ErrInvalidPath, hint: "%2F"},
	})
}

func TestErrorQuotesAndTruncates(t *testing.T) {
	long := strings.Repeat("x", 5000) + "@"
	err := ValidateModelName(long)
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("ValidateModelName(5000 bytes) = %v, want a short error", err)
	}
	_, err = ParseRoute("fraud/1.0.0/a/..")
	if err == nil || !strings.Contains(err.Error(), `"a/.."`) {
		t.Fatalf("ParseRoute error %v does not quote the path", err)
	}
}
