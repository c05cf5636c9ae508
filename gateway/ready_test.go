package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
	"github.com/mlgate/mlgate/gateway"
	"github.com/mlgate/mlgate/metadata"
	"github.com/mlgate/mlgate/metadata/boltstore"
)

// countingStore counts the readiness check's store reads and fails them while broken is set.
type countingStore struct {
	metadata.Store
	reads  atomic.Int64
	broken atomic.Bool
}

func (s *countingStore) Project(ctx context.Context, ref metadata.ProjectRef) (*metadata.Project, error) {
	s.reads.Add(1)
	if s.broken.Load() {
		return nil, errors.New("disk on fire")
	}
	return s.Store.Project(ctx, ref)
}

// TestReadyProbesShareOneCheck: concurrent probes of /ready cost one check, and a store that fails is
// named in a 503 without its error's text, which only the log gets.
func TestReadyProbesShareOneCheck(t *testing.T) {
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	store := &countingStore{Store: bolt}
	srv := httptest.NewServer(gateway.New(gateway.Config{}, store, backends.Checked("memory", memory.New()), nil).Handler())
	defer srv.Close()

	probe := func() (int, map[string]any) {
		resp, err := http.Get(srv.URL + "/ready")
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if code, body := probe(); code != http.StatusOK || body["status"] != "ready" {
				t.Errorf("/ready: %d %v", code, body)
			}
		})
	}
	wg.Wait()
	// Without sharing, every probe reads the store; with it, only probes more than the cache's second
	// apart do, and 16 probes at once span far less (a bound that does not depend on the machine's speed
	// would need a clock the route does not take).
	if n := store.reads.Load(); n >= 16 {
		t.Fatalf("16 concurrent probes read the store %d times, want them to share a check", n)
	}

	store.broken.Store(true)
	gw := gateway.New(gateway.Config{}, store, backends.Checked("memory", memory.New()), nil)
	fresh := httptest.NewServer(gw.Handler())
	defer fresh.Close()
	resp, err := http.Get(fresh.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string            `json:"status"`
		Failed map[string]string `json:"failed"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || body.Status != "unavailable" || body.Failed["store"] == "" || len(body.Failed) != 1 {
		t.Fatalf("/ready with a failing store: %d %+v; want 503 naming the store alone", resp.StatusCode, body)
	}
	if body.Failed["store"] == "disk on fire" {
		t.Fatal("/ready, a public route, shows the store's error text")
	}
}
