package maintenance

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/memory"
)

// lying is a memory backend that answers some calls wrongly.
type lying struct {
	*memory.Backend
	rotGets     bool // Get returns other bytes of the same length
	statAlways  bool // Stat succeeds for any key
	describeErr error
}

func (l *lying) Get(ctx context.Context, key string, rng backends.Range) (io.ReadCloser, backends.Info, error) {
	rc, info, err := l.Backend.Get(ctx, key, rng)
	if err != nil || !l.rotGets {
		return rc, info, err
	}
	rc.Close()
	return io.NopCloser(strings.NewReader(strings.Repeat("x", int(info.Size)))), info, nil
}

func (l *lying) Stat(ctx context.Context, key string) (backends.Info, error) {
	if l.statAlways {
		return backends.Info{Key: key}, nil
	}
	return l.Backend.Stat(ctx, key)
}

func (l *lying) Describe(ctx context.Context) (backends.Descriptor, error) {
	if l.describeErr != nil {
		return backends.Descriptor{}, l.describeErr
	}
	return l.Backend.Describe(ctx)
}

func probeBackend(l *lying) Backend { return Backend{Name: "p", Blobs: backends.Checked("p", l)} }

func blobCount(t *testing.T, m *memory.Backend) int {
	t.Helper()
	items, _, err := m.List(context.Background(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(items)
}

func TestRoundTrip(t *testing.T) {
	l := &lying{Backend: memory.New()}
	rep, err := RoundTrip(t.Context(), probeBackend(l))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range rep.Steps {
		steps = append(steps, s.Name)
	}
	if strings.Join(steps, ",") != "put,get,stat,delete" || rep.Size != RoundTripSize || len(rep.SHA256) != 64 {
		t.Fatalf("report %+v", rep)
	}
	if n := blobCount(t, l.Backend); n != 0 {
		t.Fatalf("%d blobs left after a round trip", n)
	}
}

// TestRoundTripRemovesItsProbe: a round trip that fails after the put still deletes the probe.
func TestRoundTripRemovesItsProbe(t *testing.T) {
	l := &lying{Backend: memory.New(), rotGets: true}
	rep, err := RoundTrip(t.Context(), probeBackend(l))
	if err == nil || !strings.Contains(err.Error(), `backend "p": get returned`) {
		t.Fatalf("round trip over rotten gets: %v", err)
	}
	if len(rep.Steps) != 1 || rep.Steps[0].Name != "put" {
		t.Fatalf("steps %+v, want the put only", rep.Steps)
	}
	if n := blobCount(t, l.Backend); n != 0 {
		t.Fatalf("%d blobs left after a failed round trip", n)
	}
}

func TestHealth(t *testing.T) {
	version, err := Health(t.Context(), probeBackend(&lying{Backend: memory.New()}))
	if err != nil || version != "memory 1" {
		t.Fatalf("healthy memory: %q, %v", version, err)
	}
	version, err = Health(t.Context(), probeBackend(&lying{Backend: memory.New(), statAlways: true}))
	if err == nil || !strings.Contains(err.Error(), "stat of an absent key succeeded") || version != "memory 1" {
		t.Fatalf("a backend that finds absent keys: %q, %v", version, err)
	}
	down := errors.New("down")
	version, err = Health(t.Context(), probeBackend(&lying{Backend: memory.New(), describeErr: down}))
	if !errors.Is(err, down) || version != "?" {
		t.Fatalf("a backend that cannot describe itself: %q, %v", version, err)
	}
}
