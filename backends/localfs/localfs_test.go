package localfs_test

import (
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/localfs"
)

// newBackend opens a fresh root and, once the suite has cleaned up, checks that no operation left
// anything in the staging areas.
func newBackend(t *testing.T) *localfs.Backend {
	b, err := localfs.New(t.TempDir(), localfs.WithMinPartSize(1<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		left, err := b.StagingOrphans(0)
		if err != nil || len(left) > 0 {
			t.Errorf("staging leftovers: %v, %v", left, err)
		}
		_ = b.Close()
	})
	return b
}

func TestConformance(t *testing.T) {
	t.Run("bare", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend { return newBackend(t) })
	})
	t.Run("checked", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend { return backends.Checked("localfs", newBackend(t)) })
	})
}

// BenchmarkLocalfs measures localfs through Checked, as cmd wires it. The 1 GiB case is the disk-speed
// target: go test -bench 'Localfs/.*/1GiB' -benchtime 3x ./backends/localfs/
func BenchmarkLocalfs(b *testing.B) {
	backendtest.Bench(b, func(b *testing.B) backends.Backend {
		l, err := localfs.New(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = l.Close() })
		return backends.Checked("localfs", l)
	}, 1<<20, 64<<20, 1<<30)
}
