package artifact

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/mlgate/mlgate/backends/backendtest/poll"
)

func TestBlobReaders(t *testing.T) {
	var br blobReaders
	var deleted atomic.Int32
	del := func() { deleted.Add(1) }

	if !br.discard("free", del) || deleted.Load() != 1 {
		t.Fatalf("a blob nobody reads was not deleted at once")
	}

	r1, r2 := br.acquire("k"), br.acquire("k")
	if br.discard("k", del) {
		t.Fatal("a blob being read was deleted at once")
	}
	r1()
	r1() // a second release of the same reader counts once
	// The deletion starts only when the last reader ends, so nothing can be running yet: no wait needed.
	if deleted.Load() != 1 || len(br.pending) != 1 {
		t.Fatalf("deleted while a reader remained (deletes %d, pending %v)", deleted.Load(), br.pending)
	}
	r2()
	poll.Until(t, 5*time.Second, "the deletion after the last reader ended", func() bool { return deleted.Load() == 2 })
	// Readers of a blob nobody discarded leave nothing behind.
	br.acquire("other")()
	if len(br.readers) != 0 || len(br.pending) != 0 {
		t.Fatalf("leftover state: %v %v", br.readers, br.pending)
	}
}
