package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// Any file given to --config either fails with ErrConfig or yields a config whose routes and default
// name declared backends, each with a known type or a pinned plugin.
func FuzzParseFileConfig(f *testing.F) {
	for _, seed := range []string{goodConfig, "", "backends: []", "backends: [{name: a, type: memory}]\ndefault_backend: a",
		"routes: [{project: '*', backend: x}]", "a: &a [*a, *a]", "max_file_size: 1XB", "backends: [{name: '../x', type: localfs}]",
		"backends:\n  - name: p\n    plugin: {path: /bin/true, sha256: nope}"} {
		f.Add(seed)
	}
	types := backendTypes()
	f.Fuzz(func(t *testing.T, doc string) {
		fc, err := parseFileConfig(strings.NewReader(doc), types)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			return
		}
		var names []string
		for _, b := range fc.Backends {
			names = append(names, b.Name)
			if b.Plugin == nil && !slices.Contains(types, b.Type) {
				t.Fatalf("accepted backend %q of unknown type %q", b.Name, b.Type)
			}
			if b.Plugin != nil && !sha256Pattern.MatchString(b.Plugin.SHA256) {
				t.Fatalf("accepted plugin %q without a pinned sha256", b.Name)
			}
		}
		if len(fc.Backends) > 0 && !slices.Contains(names, fc.DefaultBackend) {
			t.Fatalf("accepted default %q outside %v", fc.DefaultBackend, names)
		}
		for _, r := range fc.routes() {
			if !slices.Contains(names, r.Backend) {
				t.Fatalf("accepted a route to %q outside %v", r.Backend, names)
			}
		}
	})
}
