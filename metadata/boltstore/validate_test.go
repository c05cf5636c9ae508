package boltstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

func TestValidateTables(t *testing.T) {
	checks := []struct {
		name  string
		fn    func(string) error
		good  []string
		wrong []string
	}{
		{"model name", validateModelName,
			[]string{"a", "Fraud", "fraud/xgb", "a.b_c-d+e", "9lives", "ml_experiment", "ml_experiment_", "ml_experiment_1a", "x/ml_experiment_1", strings.Repeat("a", 255)},
			[]string{"", "-a", ".a", "_a", "+a", "/a", "a/", "a//b", "a@b", "@a", "a b", "ä", "a\x00", "ml_experiment_1", "ml_experiment_007", strings.Repeat("a", 256)}},
		{"project path", validateProjectPath,
			[]string{"a", "team/vision", "A.b-c_d", "-x", strings.Repeat("a", 255)},
			[]string{"", "/a", "a/", "a//b", ".", "a/..", "a+b", "a b", strings.Repeat("a", 256)}},
		{"file path", validateFilePath,
			[]string{"a", "model/MLmodel", "a b/c+d-e_f.g", "..a", "a..", strings.Repeat("a", 255), strings.Repeat("abcdefg/", 127) + "abcdefg"},
			[]string{"", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "a\\b", "a:b", "ä", "a\tb", strings.Repeat("a", 256), strings.Repeat("abcdefg/", 128) + "a"}},
		{"semver", func(s string) error { _, err := parseSemver(s); return err },
			[]string{"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-x-y-z.--",
				"1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85", "1.0.0+21AF26D3----117B344092BD", "1.0.0-0a", "1.0.0+001",
				"18446744073709551615.0.0"},
			[]string{"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-", "1.2.3+", "1.2.3-01", "1.2.3-a..b",
				"1.2.3-a_b", "1.2.3+a+b", " 1.2.3", "1.2.3 ", "-1.2.3", "18446744073709551616.0.0", "1.2.3-" + strings.Repeat("a", 250)}},
	}
	for _, c := range checks {
		for _, s := range c.good {
			if err := c.fn(s); err != nil {
				t.Errorf("%s %.40q: %v, want valid", c.name, s, err)
			}
		}
		for _, s := range c.wrong {
			if err := c.fn(s); !errors.Is(err, metadata.ErrInvalid) {
				t.Errorf("%s %.40q: %v, want ErrInvalid", c.name, s, err)
			}
		}
	}
}

func TestSlugify(t *testing.T) {
	for in, want := range map[string]string{
		"My Experiment":       "my_experiment",
		"/Users/ana/Churn v2": "users_ana_churn_v2",
		"a  --  b":            "a_--_b",
		"__x__":               "x",
		"!!!":                 "model",
		"":                    "model",
		"ML_Experiment_12":    "x_ml_experiment_12",
		"Ünïcode Straße":      "n_code_stra_e",
		"\u212AELVIN":         "kelvin", // U+212A KELVIN SIGN lower-cases to ASCII k
		"v1.2.3-rc":           "v1.2.3-rc",
	} {
		got := slugify(in)
		if got != want {
			t.Errorf("slugify(%q) = %q, want %q", in, got, want)
		}
		if err := validateModelName(got); err != nil {
			t.Errorf("slugify(%q) = %q is not a valid name: %v", in, got, err)
		}
	}
	if got := slugify(strings.Repeat("Ü", 255)); got != "model" {
		t.Errorf("all non-ASCII: %q", got)
	}
	if got := slugify(strings.Repeat("é", 300)); len(got) > maxModelNameLen {
		t.Errorf("slug of %d bytes", len(got))
	}
}

// TestCompareSemver uses the precedence chain of semver.org, item 11.
func TestCompareSemver(t *testing.T) {
	chain := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
		"1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0-1", "2.0.0-99999999999999999999", "2.0.0-a", "2.0.0"}
	for i, a := range chain {
		for j, b := range chain {
			va, _ := parseSemver(a)
			vb, err := parseSemver(b)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := compareSemver(va, vb); got != want {
				t.Errorf("compareSemver(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	a, _ := parseSemver("1.0.0+a")
	b, _ := parseSemver("1.0.0+b")
	if compareSemver(a, b) != 0 {
		t.Error("build metadata must not affect precedence")
	}
}
