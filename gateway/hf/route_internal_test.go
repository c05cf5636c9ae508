package hf

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/gateway/httpapi"
)

// Every placement of the markers that fits the grammar is a reading, leftmost first; escaped slashes
// stay inside their segment; a malformed escape is a 400; a path that fits no route has no reading.
func TestParseRoute(t *testing.T) {
	show := func(ts []target) string {
		var out []string
		for _, t := range ts {
			out = append(out, fmt.Sprintf("%d|%s|%s|%s|%s", t.kind, t.name, t.repoID, t.rev, t.path))
		}
		return strings.Join(out, " ; ")
	}
	for rest, want := range map[string]string{
		"/team/vision/api/models/m":                    "1|team/vision/m|m||",
		"/team/vision/api/models/org/m/revision/1.0.0": "1|team/vision/org/m|org/m|1.0.0| ; 1|team/vision/org/m/revision/1.0.0|org/m/revision/1.0.0||",
		"/p/api/models/m/revision/1.0.0%2Bb.1":         "1|p/m|m|1.0.0+b.1| ; 1|p/m/revision/1.0.0+b.1|m/revision/1.0.0+b.1||",
		"/p/api/models/m/tree/main":                    "2|p/m|m|main| ; 1|p/m/tree/main|m/tree/main||",
		"/p/api/models/m/tree/main/a%2Fb":              "2|p/m|m|main|a/b ; 1|p/m/tree/main/a/b|m/tree/main/a/b||",
		"/p/m/resolve/main/a/b.bin":                    "3|p/m||main|a/b.bin",
		"/p/m/resolve/main/resolve/x/y":                "3|p/m||main|resolve/x/y ; 3|p/m/resolve/main||x|y",
		"/a/b/c/resolve/abc/f":                         "3|a/b/c||abc|f",
		"/api/models/m":                                "",
		"/p/m/resolve/main":                            "",
		"/p//m/resolve/main/x":                         "",
		"/p/m/resolve/main/":                           "",
		"/p/m/resolve//x":                              "",
		"/":                                            "",
		"/p/api/models/":                               "",
		"/p/api/models/m/revision/":                    "",
	} {
		ts, err := parseRoute(rest)
		if err != nil {
			t.Errorf("%s: %v", rest, err)
			continue
		}
		if got := show(ts); got != want {
			t.Errorf("%s:\n got %s\nwant %s", rest, got, want)
		}
	}
	if _, err := parseRoute("/p/api/models/m%ZZ"); !errors.Is(err, httpapi.ErrBadRequest) {
		t.Errorf("malformed escape: %v", err)
	}
}

// parseRoute never panics, and every reading it returns names a repository and, on a tree or
// resolve route, a revision; a resolve reading names a file.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/team/vision/api/models/m/revision/main", "/p/api/models/o/m/tree/main/a%2Fb",
		"/p/m/resolve/1.0.0%2Bb/a/b", "/api/models/", "//resolve//", "/p/api/models/api/models/x", "%", "/p/m/resolve/main/%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		ts, err := parseRoute(rest)
		if err != nil {
			if !errors.Is(err, httpapi.ErrBadRequest) || ts != nil {
				t.Fatalf("%q: %v", rest, err)
			}
			return
		}
		for _, tg := range ts {
			if tg.name == "" || strings.HasPrefix(tg.name, "/") || (tg.kind != routeInfo && tg.rev == "") ||
				(tg.kind == routeResolve && tg.path == "") {
				t.Fatalf("%q: reading %+v", rest, tg)
			}
		}
	})
}
