package artifact

import (
	"errors"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

func TestStaticStorageRouting(t *testing.T) {
	bs := map[string]*backends.CheckedBackend{"local": checkedMemory("local"), "fast": checkedMemory("fast"), "cold": checkedMemory("cold")}
	st, err := NewStaticStorage(bs, "local", []Route{
		{Project: "team/vision", Model: "big-*", Backend: "cold"}, // more specific first: order decides
		{Project: "team/*", Backend: "fast"},
		{Model: "archive", Backend: "cold"},
		{Project: "*", Model: "scratch?", Backend: "fast"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ project, model, want string }{
		{"team/vision", "big-llm", "cold"},
		{"team/vision", "small", "fast"},
		{"team/a/b", "small", "local"}, // "*" stops at "/"
		{"other", "archive", "cold"},
		{"deep/group/proj", "scratch1", "fast"}, // a lone "*" matches any path
		{"deep/group/proj", "scratch12", "local"},
		{"other", "model", "local"},
	} {
		name, b := st.ForUpload(tc.project, tc.model)
		if name != tc.want || b != bs[tc.want] {
			t.Errorf("ForUpload(%q, %q) = %q, want %q", tc.project, tc.model, name, tc.want)
		}
	}
	for _, name := range []string{"local", "fast", "cold"} {
		if b, err := st.Get(name); err != nil || b != bs[name] {
			t.Errorf("Get(%q) = %v, %v", name, b, err)
		}
	}
	if b, err := st.Get(""); err != nil || b != bs["local"] {
		t.Errorf(`Get("") = %v, %v; want the default backend`, b, err)
	}
	_, err = st.Get("gone")
	if !errors.Is(err, backends.ErrUnavailable) || !strings.Contains(err.Error(), `"gone"`) {
		t.Errorf("Get(unknown) = %v; want ErrUnavailable naming the backend", err)
	}
}

func TestStaticStorageRejectsBadConfig(t *testing.T) {
	bs := map[string]*backends.CheckedBackend{"a": checkedMemory("a")}
	for name, tc := range map[string]struct {
		def    string
		routes []Route
		want   string
	}{
		"unknown default":       {"b", nil, `default backend "b"`},
		"empty default":         {"", nil, `default backend ""`},
		"route to unknown":      {"a", []Route{{Project: "x", Backend: "nope"}}, `names backend "nope"`},
		"malformed pattern":     {"a", []Route{{Project: "[", Backend: "a"}}, `pattern "["`},
		"malformed model glob":  {"a", []Route{{Model: "a[", Backend: "a"}}, `pattern "a["`},
		"route without backend": {"a", []Route{{Project: "x"}}, `names backend ""`},
	} {
		_, err := NewStaticStorage(bs, tc.def, tc.routes)
		if !errors.Is(err, ErrStorageConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want ErrStorageConfig mentioning %s", name, err, tc.want)
		}
	}
}

func checkedMemory(name string) *backends.CheckedBackend { return backends.Checked(name, memory.New()) }
