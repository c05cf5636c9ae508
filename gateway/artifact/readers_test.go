package artifact

import (
	"sync"
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

// fakeClock is an injected clock for holds: timers fire only when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) afterFunc(d time.Duration, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timers = append(c.timers, fakeTimer{c.t.Add(d), f})
}

// advance moves the clock by d and runs the timers due, outside the clock's lock (they set new ones).
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	var due []func()
	keep := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.at.After(c.t) {
			due = append(due, tm.f)
		} else {
			keep = append(keep, tm)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, f := range due {
		f()
	}
}

// TestBlobReadersHold: a redirected download holds its blob for the hold's duration; a replacement
// meanwhile deletes the blob only when the last hold, extended by later redirects, has ended and
// every proxied reader is done too.
func TestBlobReadersHold(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	br := blobReaders{now: clk.now, afterFunc: clk.afterFunc}
	var deleted atomic.Int32
	del := func() { deleted.Add(1) }

	br.hold("k", 65*time.Minute) // 5m expiry + 1h grace
	if len(clk.timers) != 1 {
		t.Fatalf("%d timers for one hold", len(clk.timers))
	}
	clk.advance(10 * time.Minute)
	br.hold("k", 65*time.Minute) // a second redirect: ends at 75m, with no second timer
	if len(clk.timers) != 1 || br.readers["k"] != 1 {
		t.Fatalf("a second hold of one key: %d timers, %d readers", len(clk.timers), br.readers["k"])
	}
	if br.discard("k", del) || !br.inUse("k") {
		t.Fatal("a held blob was deleted at once, or is not in use")
	}
	clk.advance(55 * time.Minute) // 65m: the first hold's end, not the second's
	if deleted.Load() != 0 || !br.inUse("k") {
		t.Fatal("deleted at the first hold's end although a later redirect extended it")
	}
	release := br.acquire("k")    // a proxied download running past the hold
	clk.advance(10 * time.Minute) // 75m: the hold ends
	if deleted.Load() != 0 {
		t.Fatal("deleted while a proxied download still reads it")
	}
	release()
	poll.Until(t, 5*time.Second, "the deletion after the hold and the reader ended", func() bool { return deleted.Load() == 1 })
	if len(br.readers) != 0 || len(br.pending) != 0 || len(br.held) != 0 || len(clk.timers) != 0 {
		t.Fatalf("leftover state: %v %v %v %d timers", br.readers, br.pending, br.held, len(clk.timers))
	}

	// A hold that ends with nothing to delete leaves nothing behind, and the key can be held again.
	br.hold("x", time.Minute)
	clk.advance(time.Minute)
	if br.inUse("x") || len(br.held) != 0 {
		t.Fatal("an ended hold still counts")
	}
	br.hold("x", time.Minute)
	if !br.inUse("x") {
		t.Fatal("a new hold after one ended does not count")
	}
}

func TestAttachment(t *testing.T) {
	for name, want := range map[string]string{
		"model.onnx":   `attachment; filename=model.onnx`,
		"my model.bin": `attachment; filename="my model.bin"`,
		"modèle €.bin": `attachment; filename="mod_le _.bin"; filename*=UTF-8''mod%C3%A8le%20%E2%82%AC.bin`,
		"a\"b\\ü":      `attachment; filename="a_b__"; filename*=UTF-8''a%22b%5C%C3%BC`,
	} {
		if got := attachment(name); got != want {
			t.Errorf("attachment(%q) = %s, want %s", name, got, want)
		}
	}
}
