package pkgtypes

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var sentinels = []error{ErrInvalidName, ErrInvalidVersion, ErrInvalidPath}

// checkErr fails unless err wraps exactly want (nil meaning no error) and, when it is an error and value is
// given, quotes value so that users can see what was refused.
func checkErr(t *testing.T, err, want error, value string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got nil error, want %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Fatalf("errors.Is(%v, %v) = %v", err, s, got)
		}
	}
	if value != "" && len(value) <= 100 && !strings.Contains(err.Error(), strconv.Quote(value)) {
		t.Fatalf("error %q does not quote the value %q", err, value)
	}
}

func TestValidateModelName(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		name string
		ok   bool
	}{
		{"fraud", true},
		{"fraud/xgb", true},
		{"Team.A/fraud-detector_v2+gpu", true},
		{"0day", true},
		{"a/-", true},
		{"a/.hidden", true},
		{"a/b/c/d", true},
		{"ml_experiment_", true},
		{"ml_experiment_x1", true},
		{"ML_EXPERIMENT_12", true}, // reservation is case-sensitive, like the legacy route
		{"x_ml_experiment_12", true},
		{long, true},
		{long + "a", false},
		{"", false},
		{"-", false},
		{"-fraud", false},
		{".fraud", false},
		{"_fraud", false},
		{"+fraud", false},
		{"/fraud", false},
		{"fraud/", false},
		{"fraud//xgb", false},
		{"fraud/./xgb", false},
		{"fraud/..", false},
		{"fr@ud", false},
		{"fraud@prod", false},
		{"@scope/fraud", false},
		{"fraud xgb", false},
		{"fraud:1", false},
		{"fraud%2Fxgb", false},
		{"fraud\\xgb", false},
		{"frаud", false}, // Cyrillic а
		{"fraud\x00", false},
		{"ml_experiment_12", false},
		{"ml_experiment_0", false},
		{"ml_experiment_0012", false},
		{"ml_experiment_99999999999999999999999", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := ErrInvalidName
			if tt.ok {
				want = nil
			}
			checkErr(t, ValidateModelName(tt.name), want, tt.name)
		})
	}
}

func TestModelNameHints(t *testing.T) {
	for name, hint := range map[string]string{
		"fr@ud":            "'@'",
		"-":                "letter or digit",
		"ml_experiment_12": "reserved",
		"a//b":             "empty segment",
		"a/..":             "'..'",
		"a b":              `' '`,
	} {
		if err := ValidateModelName(name); err == nil || !strings.Contains(err.Error(), hint) {
			t.Errorf("ValidateModelName(%q) = %v, want a hint containing %q", name, err, hint)
		}
	}
}

func TestIsReservedModelName(t *testing.T) {
	for s, want := range map[string]bool{
		"ml_experiment_1":     true,
		"ml_experiment_12":    true,
		"ml_experiment_0":     true,
		"ml_experiment_007":   true,
		"ml_experiment_":      false,
		"ml_experiment_1a":    false,
		"ml_experiment_-1":    false,
		"ml_experiment_1/x":   false,
		"xml_experiment_1":    false,
		"ML_experiment_1":     false,
		"ml_experiment_１":     false, // full-width digit
		"":                    false,
		"ml_experiment_12 ":   false,
		"ml_experiment_12\n":  false,
		"ml_experiment_12.0":  false,
		"ml_experiment_12_13": false,
	} {
		if got := IsReservedModelName(s); got != want {
			t.Errorf("IsReservedModelName(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestSlugify(t *testing.T) {
	tests := []struct{ in, want string }{
		{"My Experiment", "my_experiment"},
		{"/Users/ana/Churn v2", "users_ana_churn_v2"},
		{"fraud", "fraud"},
		{"Fraud-Detector.v2", "fraud-detector.v2"},
		{"a  b", "a_b"},  // a run becomes one '_'
		{"a _b", "a__b"}, // '_' is kept, only runs of other characters collapse
		{"a/b\\c:d@e", "a_b_c_d_e"},
		{"__a__", "a"},
		{"...a---", "a"},
		{"-._", "model"},
		{"", "model"},
		{"   ", "model"},
		{"日本語", "model"},
		{"Ünïcödé", "n_c_d"},
		{"café au lait", "caf_au_lait"},
		{"\u212A", "k"}, // Kelvin sign lower-cases to ASCII k
		{"ml_experiment_12", "x_ml_experiment_12"},
		{"ML Experiment 12", "x_ml_experiment_12"},
		{"[ml_experiment_7]", "x_ml_experiment_7"},
		{"ml_experiment_", "ml_experiment"},
		{strings.Repeat("a", 300), strings.Repeat("a", 255)},
		{strings.Repeat("a", 254) + " b", strings.Repeat("a", 254)},
		{strings.Repeat("!", 1000) + "abc", "abc"},
		{strings.Repeat(".", 300) + "abc", "abc"},
		{"ml_experiment_" + strings.Repeat("1", 241), "x_ml_experiment_" + strings.Repeat("1", 239)},
		{"a\x00b", "a_b"},
		{"\xff\xfeab", "ab"},
	}
	for _, tt := range tests {
		got := Slugify(tt.in)
		if got != tt.want {
			t.Errorf("Slugify(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if err := ValidateModelName(got); err != nil {
			t.Errorf("Slugify(%q) = %q, which is invalid: %v", tt.in, got, err)
		}
		if again := Slugify(got); again != got {
			t.Errorf("Slugify not idempotent: %q → %q → %q", tt.in, got, again)
		}
	}
}

func TestValidateSemver(t *testing.T) {
	valid := []string{
		"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
		"1.0.0-x-y-z.--", "1.0.0-alpha+001", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
		"1.0.0+21AF26D3----117B344092BD", "1.2.0-rc.1", "1.0.0--", "1.0.0-0a", "1.0.0-00a", "1.0.0+0",
		"1.0.0+00", "18446744073709551615.18446744073709551615.18446744073709551615",
		"1.0.0-99999999999999999999999999999",
		"1.0.0-" + strings.Repeat("a", 249),
	}
	invalid := []string{
		"", "1", "1.2", "1.2.3.4", "v1.2.3", "V1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+",
		"1.2.3-01", "1.2.3-alpha..1", "1.2.3-alpha.", "1.2.3+a..b", "1.2.3+a.", "1.2.3-al_pha",
		"1.2.3+b_uild", "1.2.3 ", " 1.2.3", "1.2.-3", "-1.2.3", "1.2.3-α", "+1.2.3", "1..2", "a.b.c",
		"18446744073709551616.0.0", "0.18446744073709551616.0", "0.0.18446744073709551616",
		"1.2.3-a+b+c", "1.2.3\n", "1.2.3/x", "１.2.3", "1.0.0-" + strings.Repeat("a", 250),
		"candidate_7", "latest",
	}
	for _, v := range valid {
		checkErr(t, ValidateSemver(v), nil, v)
	}
	for _, v := range invalid {
		t.Run(v, func(t *testing.T) { checkErr(t, ValidateSemver(v), ErrInvalidVersion, v) })
	}
}

func TestSemverHints(t *testing.T) {
	for v, hint := range map[string]string{
		"v1.0.0":                   "'v' prefix",
		"1.0":                      "MAJOR.MINOR.PATCH",
		"01.0.0":                   "leading zeros",
		"1.0.0-01":                 "leading zeros",
		"18446744073709551616.0.0": "64 bits",
	} {
		if err := ValidateSemver(v); err == nil || !strings.Contains(err.Error(), hint) {
			t.Errorf("ValidateSemver(%q) = %v, want a hint containing %q", v, err, hint)
		}
	}
}

func TestCompareSemver(t *testing.T) {
	// Strictly increasing, from semver.org §11 plus edge cases; invalid strings sort last by string order.
	ordered := []string{
		"0.0.0",
		"0.0.1",
		"0.1.0",
		"1.0.0-0",
		"1.0.0-1",
		"1.0.0-2",
		"1.0.0-10",
		"1.0.0-99999999999999999999",
		"1.0.0-100000000000000000000",
		"1.0.0--",
		"1.0.0-A",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1",
		"1.2.0",
		"1.10.0",
		"2.0.0",
		"10.0.0",
		"18446744073709551615.0.0",
		"",
		"1.0",
		"latest",
		"v1.0.0",
	}
	for i, a := range ordered {
		for j, b := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareSemver(a, b); got != want {
				t.Errorf("CompareSemver(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
	for _, pair := range [][2]string{
		{"1.0.0+a", "1.0.0+b"},
		{"1.0.0+a", "1.0.0"},
		{"1.0.0-rc.1+x", "1.0.0-rc.1"},
	} {
		if got := CompareSemver(pair[0], pair[1]); got != 0 {
			t.Errorf("CompareSemver(%q, %q) = %d, want 0 (build metadata is ignored)", pair[0], pair[1], got)
		}
	}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, CompareSemver)
	if !slices.Equal(shuffled, ordered) {
		t.Errorf("sorting with CompareSemver gave %q", shuffled)
	}
}

func TestNextMinor(t *testing.T) {
	const max = "18446744073709551615"
	tests := []struct{ in, want string }{
		{"", "1.0.0"},
		{"1.0.0", "1.1.0"},
		{"1.2.3", "1.3.0"},
		{"0.0.1", "0.1.0"},
		{"2.0.0-rc.1", "2.1.0"},
		{"1.2.3+build.5", "1.3.0"},
		{"1.9.0", "1.10.0"},
		{"1." + max + ".0", "2.0.0"},
		{max + "." + max + ".0", max + "." + max + ".1"},
		{max + "." + max + "." + max + "-rc", max + "." + max + "." + max},
		{max + "." + max + "." + max, ""},
		{"v1.0.0", ""},
		{"1.0", ""},
	}
	for _, tt := range tests {
		got := NextMinor(tt.in)
		if got != tt.want {
			t.Errorf("NextMinor(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got != "" && tt.in != "" && CompareSemver(got, tt.in) <= 0 {
			t.Errorf("NextMinor(%q) = %q does not order after its input", tt.in, got)
		}
		if got != "" {
			checkErr(t, ValidateSemver(got), nil, got)
		}
	}
}

func TestNextVersion(t *testing.T) {
	for _, c := range []struct{ highest, part, want string }{
		{"", BumpMajor, "1.0.0"},
		{"", BumpPatch, "1.0.0"},
		{"", BumpMinor, "1.0.0"},
		{"1.2.3", BumpMajor, "2.0.0"},
		{"1.2.3", BumpMinor, "1.3.0"},
		{"1.2.3", BumpPatch, "1.2.4"},
		{"1.2.3-rc.1", BumpPatch, "1.2.3"},
		{"1.2.3-rc.1", BumpMajor, "2.0.0"},
		{"1.2.3+build", BumpPatch, "1.2.4"},
		{"1.2.3", "huge", ""},
		{"", "huge", ""},
		{"v1", BumpPatch, ""},
	} {
		got := NextVersion(c.highest, c.part)
		if got != c.want {
			t.Errorf("NextVersion(%q, %q) = %q, want %q", c.highest, c.part, got, c.want)
		}
		if got != "" && c.highest != "" && CompareSemver(got, c.highest) <= 0 {
			t.Errorf("NextVersion(%q, %q) = %q does not order after it", c.highest, c.part, got)
		}
	}
}
