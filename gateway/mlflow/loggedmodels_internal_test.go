package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/mlgate/mlgate/gateway/httpapi"
	"github.com/mlgate/mlgate/gateway/mlflow/rpc"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

func TestMLflowLoggedModels(t *testing.T) {
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := New(Deps{Store: store})
	p, err := store.EnsureProject(context.Background(), rpc.DefaultProject)
	if err != nil {
		t.Fatal(err)
	}
	rpcs := map[string]rpc.Route{}
	for _, rt := range s.loggedModelRPCs() {
		rpcs[rt.Method+" "+rt.Path] = rt
	}
	search, ok := rpcs["POST logged-models/search"]
	if !ok {
		t.Fatal("no POST logged-models/search")
	}
	// The 3.6 client's request, from the trace.
	resp, err := search.Invoke(context.Background(), &rpc.Call{Project: p}, []byte(`{"experiment_ids": ["1"], "filter": "name = 'data'"}`))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(resp); string(b) != `{"models":[]}` {
		t.Fatalf("search: %s", b)
	}
	_, err = search.Invoke(context.Background(), &rpc.Call{Project: p}, []byte(`{"experiment_ids": ["one"]}`))
	if c, _ := httpapi.Classify(err); c.MLflowCode != "INVALID_PARAMETER_VALUE" {
		t.Fatalf("bad experiment id: %v", err)
	}

	create, ok := rpcs["POST logged-models"]
	if !ok {
		t.Fatal("no POST logged-models")
	}
	_, err = create.Invoke(context.Background(), &rpc.Call{Project: p}, []byte(`{"experiment_id": "1"}`))
	if c, _ := httpapi.Classify(err); c.MLflowCode != "NOT_IMPLEMENTED" || httpapi.MLflowStatusOf(c) != http.StatusNotImplemented {
		t.Fatalf("create: %v", err)
	}
	for _, tc := range []struct {
		method, path string
		unserved     bool
	}{
		{http.MethodGet, "logged-models/m-0123", true},
		{http.MethodPatch, "logged-models/m-0123", true},
		{http.MethodDelete, "logged-models/m-0123", true},
		{http.MethodPatch, "logged-models/m-0123/tags", true},
		{http.MethodDelete, "logged-models/m-0123/tags/a.b", true},
		{http.MethodGet, "logged-models/m-0123/artifacts/directories", true},
		{http.MethodPost, "logged-models/m-0123/params", true},
		{http.MethodPost, "logged-models/search", false},
		{http.MethodGet, "logged-models", false},
		{http.MethodDelete, "logged-models//tags/x", false},
		{http.MethodGet, "runs/get", false},
	} {
		err := loggedModelRouteError(tc.method, tc.path)
		if got := errors.Is(err, httpapi.ErrNotImplemented); got != tc.unserved {
			t.Errorf("%s %s: %v", tc.method, tc.path, err)
		}
	}
}
