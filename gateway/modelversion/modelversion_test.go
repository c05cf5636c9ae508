package modelversion

import (
	"math/rand/v2"
	"testing"

	"github.com/mlgate/mlgate/metadata"
)

func TestPickLatest(t *testing.T) {
	vs := func(semvers ...string) []*metadata.Version {
		out := make([]*metadata.Version, len(semvers))
		for i, s := range semvers {
			out[i] = &metadata.Version{Seq: int64(i + 1), Semver: s}
		}
		return out
	}
	for _, c := range []struct {
		versions []*metadata.Version
		want     string
	}{
		{vs("1.0.0", "1.1.0", "2.0.0-rc.1"), "1.1.0"},
		{vs("1.0.0", "1.10.0", "1.9.0"), "1.10.0"},
		{vs("1.0.0-alpha", "1.0.0-beta", "1.0.0-alpha.1"), "1.0.0-beta"},
		{vs("1.0.0+b", "1.0.0-rc.1"), "1.0.0+b"},
		{vs("1.2.0+build.5", "1.2.0+build.1"), "1.2.0+build.1"}, // equal precedence: the later version
		{vs("0.0.1"), "0.0.1"},
	} {
		for range 10 { // whatever the order of the list
			rand.Shuffle(len(c.versions), func(i, j int) { c.versions[i], c.versions[j] = c.versions[j], c.versions[i] })
			if got := PickLatest(c.versions); got == nil || got.Semver != c.want {
				t.Fatalf("%v: %v, want %s", c.versions, got, c.want)
			}
		}
	}
	if PickLatest(nil) != nil {
		t.Fatal("latest of none")
	}
}

func TestIsPrerelease(t *testing.T) {
	for s, want := range map[string]bool{"1.0.0": false, "1.0.0-rc.1": true, "1.0.0+b-1": false, "1.0.0-rc+b": true} {
		if IsPrerelease(s) != want {
			t.Errorf("%s: %v", s, !want)
		}
	}
}
