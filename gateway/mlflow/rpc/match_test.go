package rpc

import (
	"context"
	"maps"
	"net/http"
	"testing"
)

func TestDispatcherMatchesFixedRoutesThenPatterns(t *testing.T) {
	none := func(context.Context, *Call, *struct{}) (any, error) { return nil, nil }
	d := NewDispatcher(nil, nil, nil, []Route{
		Handle(http.MethodPost, "logged-models", none),
		Handle(http.MethodPost, "logged-models/search", none),
		Handle(http.MethodGet, "logged-models/{model_id}", none),
		Handle(http.MethodDelete, "logged-models/{model_id}/tags/{tag_key...}", none),
		Handle(http.MethodGet, "logged-models/{model_id}/artifacts/directories", none),
	}, nil)
	for _, tc := range []struct {
		method, path, route string
		params              map[string]string
	}{
		{"POST", "logged-models/search", "logged-models/search", nil}, // fixed beats {model_id}
		{"POST", "logged-models", "logged-models", nil},
		{"GET", "logged-models/m-1", "logged-models/{model_id}", map[string]string{"model_id": "m-1"}},
		{"DELETE", "logged-models/m-1/tags/owner", "logged-models/{model_id}/tags/{tag_key...}",
			map[string]string{"model_id": "m-1", "tag_key": "owner"}},
		// A tag key with slashes reaches the rest parameter whole, encoded or not; escapes are undone.
		{"DELETE", "logged-models/m-1/tags/a%2Fb%20c/%25", "logged-models/{model_id}/tags/{tag_key...}",
			map[string]string{"model_id": "m-1", "tag_key": "a/b c/%"}},
		{"DELETE", "logged-models/m-1/tags/a/b", "logged-models/{model_id}/tags/{tag_key...}",
			map[string]string{"model_id": "m-1", "tag_key": "a/b"}},
		{"GET", "logged-models/m%2D1", "logged-models/{model_id}", map[string]string{"model_id": "m-1"}},
		{"GET", "logged-models/m-1/artifacts/directories", "logged-models/{model_id}/artifacts/directories",
			map[string]string{"model_id": "m-1"}},
	} {
		rt, params, ok := d.match(tc.method, tc.path)
		if !ok || rt.Path != tc.route || !maps.Equal(params, tc.params) {
			t.Errorf("%s %s: %q %v %v, want %q %v", tc.method, tc.path, rt.Path, params, ok, tc.route, tc.params)
		}
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "logged-models/"},                  // an empty parameter
		{"DELETE", "logged-models/m-1/tags/"},      // an empty rest
		{"DELETE", "logged-models/m-1/tags"},       // no rest at all
		{"GET", "logged-models/m-1/extra"},         // too many segments
		{"PUT", "logged-models/m-1"},               // another method
		{"GET", "logged-models/m-1/artifacts/dir"}, // a literal that differs
	} {
		if rt, params, ok := d.match(tc.method, tc.path); ok {
			t.Errorf("%s %s matched %q %v", tc.method, tc.path, rt.Path, params)
		}
	}
}
