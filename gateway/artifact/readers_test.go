package artifact

import (
	"sync/atomic"
	"testing"
	"time"
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
	time.Sleep(20 * time.Millisecond)
	if deleted.Load() != 1 {
		t.Fatal("deleted while a reader remained")
	}
	r2()
	deadline := time.Now().Add(5 * time.Second)
	for deleted.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatal("not deleted after its last reader ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Readers of a blob nobody discarded leave nothing behind.
	br.acquire("other")()
	if len(br.readers) != 0 || len(br.pending) != 0 {
		t.Fatalf("leftover state: %v %v", br.readers, br.pending)
	}
}
