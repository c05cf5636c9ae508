package poll

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fakeTB records a Fatalf and, like the real one, ends the goroutine that called it. Methods poll
// has no business calling panic through the nil embedded testing.TB.
type fakeTB struct {
	testing.TB
	fatal string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fakeTB on a goroutine of its own (Fatalf ends it) and reports whether fn
// returned normally, and the Fatalf message if there was one.
func run(fn func(testing.TB)) (returned bool, fatal string) {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
		returned = true
	}()
	<-done
	return returned, tb.fatal
}

func TestUntilTrueAtOnce(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		Until(tb, time.Minute, "something", func() bool { calls++; return true })
	})
	if !returned || fatal != "" || calls != 1 {
		t.Fatalf("returned %v, fatal %q, %d calls; want a return after 1 call", returned, fatal, calls)
	}
}

func TestUntilBecomesTrue(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		Until(tb, time.Minute, "the fifth call", func() bool { calls++; return calls == 5 })
	})
	if !returned || fatal != "" || calls != 5 {
		t.Fatalf("returned %v, fatal %q, %d calls; want a return after 5 calls", returned, fatal, calls)
	}
}

// TestUntilTimeout: a condition that never holds fails the test, naming what was awaited, and Until
// does not return to its caller.
func TestUntilTimeout(t *testing.T) {
	const timeout = 30 * time.Millisecond
	calls := 0
	start := time.Now()
	returned, fatal := run(func(tb testing.TB) {
		Until(tb, timeout, "the moon to turn blue", func() bool { calls++; return false })
	})
	elapsed := time.Since(start)
	if returned {
		t.Fatal("Until returned after a timeout")
	}
	if !strings.Contains(fatal, "the moon to turn blue") || !strings.Contains(fatal, timeout.String()) {
		t.Fatalf("Fatalf message %q does not name what was awaited and the timeout", fatal)
	}
	if elapsed < timeout {
		t.Fatalf("gave up after %v, before the %v timeout", elapsed, timeout)
	}
	if calls < 2 {
		t.Fatalf("%d calls; want at least one before and one after the timeout", calls)
	}
}

func TestUntilZeroTimeoutChecksOnce(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		Until(tb, 0, "x", func() bool { calls++; return calls > 1 })
	})
	if returned || fatal == "" || calls != 1 {
		t.Fatalf("returned %v, fatal %q, %d calls; want one call and a failure", returned, fatal, calls)
	}
}

// TestUntilCondFatal: cond may fail the test itself, and Until then stops calling it.
func TestUntilCondFatal(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		Until(tb, time.Minute, "x", func() bool {
			calls++
			tb.Fatalf("gone")
			return false
		})
	})
	if returned || fatal != "gone" || calls != 1 {
		t.Fatalf("returned %v, fatal %q, %d calls; want cond's own failure after 1 call", returned, fatal, calls)
	}
}

func TestUntilOK(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		UntilOK(tb, time.Minute, "x", func() error {
			if calls++; calls < 3 {
				return errors.New("not yet")
			}
			return nil
		})
	})
	if !returned || fatal != "" || calls != 3 {
		t.Fatalf("returned %v, fatal %q, %d calls; want a return after 3 calls", returned, fatal, calls)
	}
}

// TestUntilOKTimeout: the failure names what was awaited and ends with the last error, not the first.
func TestUntilOKTimeout(t *testing.T) {
	calls := 0
	returned, fatal := run(func(tb testing.TB) {
		UntilOK(tb, 20*time.Millisecond, "the server", func() error {
			calls++
			return fmt.Errorf("status %d", 500+calls)
		})
	})
	if returned {
		t.Fatal("UntilOK returned after a timeout")
	}
	if want := fmt.Sprintf("the server: status %d", 500+calls); !strings.HasSuffix(fatal, want) {
		t.Fatalf("Fatalf message %q; want it to end with %q", fatal, want)
	}
}

// TestPauses: the pauses between checks grow as documented, so a long wait makes few checks. (Only
// lower bounds are certain: a sleep lasts at least as long as asked, on a loaded machine longer.)
func TestPauses(t *testing.T) {
	var at []time.Time
	returned, _ := run(func(tb testing.TB) {
		Until(tb, time.Minute, "x", func() bool { at = append(at, time.Now()); return len(at) == 12 })
	})
	if !returned {
		t.Fatal("Until did not return")
	}
	// 1+2+4+…+32 ms, then maxPause five times.
	if total := at[len(at)-1].Sub(at[0]); total < 63*time.Millisecond+5*maxPause {
		t.Fatalf("12 checks took %v; the pauses do not grow as documented", total)
	}
	for i := 1; i < len(at); i++ {
		if d := at[i].Sub(at[i-1]); d < min(firstPause<<(i-1), maxPause) {
			t.Fatalf("pause %d lasted %v, shorter than documented", i, d)
		}
	}
}
