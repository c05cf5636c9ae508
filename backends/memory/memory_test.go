package memory_test

import (
	"testing"

	"github.com/mlgate/mlgate/backends"
	"github.com/mlgate/mlgate/backends/backendtest"
	"github.com/mlgate/mlgate/backends/memory"
)

func newBackend(t *testing.T) backends.Backend {
	b := memory.NewWithMinPartSize(1 << 10)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	t.Run("bare", func(t *testing.T) { backendtest.Run(t, newBackend) })
	t.Run("checked", func(t *testing.T) {
		backendtest.Run(t, func(t *testing.T) backends.Backend { return backends.Checked("memory", newBackend(t)) })
	})
}

// TestConformanceS3PartSize proves the suite copes with S3's 5 MiB minimum part size.
func TestConformanceS3PartSize(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 5 MiB parts")
	}
	backendtest.Run(t, func(t *testing.T) backends.Backend { return backends.Checked("memory", memory.New()) })
}

func TestDefaultMinPartSize(t *testing.T) {
	d, err := memory.New().Describe(t.Context())
	if err != nil || d.MinPartSize != memory.DefaultMinPartSize {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	if _, err := memory.Factory(t.Context(), nil); err != nil {
		t.Fatalf("factory: %v", err)
	}
}

func BenchmarkMemory(b *testing.B) {
	backendtest.Bench(b, func(b *testing.B) backends.Backend { return backends.Checked("memory", memory.New()) })
}
