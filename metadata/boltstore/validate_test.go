package boltstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/pkgtypes"
)

// TestValidateTables covers the rules boltstore defines itself; names, paths and semvers are pkgtypes'.
func TestValidateTables(t *testing.T) {
	checks := []struct {
		name  string
		fn    func(string) error
		good  []string
		wrong []string
	}{
		{"project path", validateProjectPath,
			[]string{"a", "team/vision", "A.b-c_d", "team/-x", "a/0", "0a", strings.Repeat("a", 255)},
			[]string{"", "/a", "a/", "a//b", ".", "a/..", "a+b", "a b", strings.Repeat("a", 256),
				"-x", "0", "5", "007", "99999999999999999999"}},
		{"display name", validateDisplayName,
			[]string{"a", "My Model", "Ünïcode / Straße", strings.Repeat("é", 255)},
			[]string{"", "a\tb", "a\x00", "\xff", strings.Repeat("é", 256)}},
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

// TestPkgtypesErrorsWrapped checks that the store's errors for names, paths and semvers match both
// metadata.ErrInvalid and the pkgtypes sentinel.
func TestPkgtypesErrorsWrapped(t *testing.T) {
	semverErr := func(s string) error { _, err := parseSemver(s); return err }
	for _, c := range []struct {
		name     string
		fn       func(string) error
		good     string
		bad      string
		sentinel error
	}{
		{"model name", validateModelName, "fraud/xgb", "ml_experiment_1", pkgtypes.ErrInvalidName},
		{"file path", validateFilePath, "model/MLmodel", "a/../b", pkgtypes.ErrInvalidPath},
		{"semver", semverErr, "1.2.3-rc.1+b", "v1.2.3", pkgtypes.ErrInvalidVersion},
	} {
		if err := c.fn(c.good); err != nil {
			t.Errorf("%s %q: %v, want valid", c.name, c.good, err)
		}
		err := c.fn(c.bad)
		if !errors.Is(err, metadata.ErrInvalid) || !errors.Is(err, c.sentinel) {
			t.Errorf("%s %q: %v, want ErrInvalid and %v", c.name, c.bad, err, c.sentinel)
		}
	}
}

func TestParseSemverParts(t *testing.T) {
	for in, want := range map[string]semver{
		"0.0.0":                    {},
		"1.2.3":                    {major: 1, minor: 2, patch: 3},
		"1.2.3+b.4":                {major: 1, minor: 2, patch: 3},
		"1.0.0-rc.1":               {major: 1, pre: "rc.1"},
		"1.0.0-x-y.z+b-c":          {major: 1, pre: "x-y.z"},
		"18446744073709551615.0.1": {major: 1<<64 - 1, patch: 1},
	} {
		got, err := parseSemver(in)
		if err != nil || got != want {
			t.Errorf("parseSemver(%q) = %+v, %v, want %+v", in, got, err, want)
		}
	}
}
