// Package poll lets tests wait for something that happens asynchronously (a process exiting, a
// server answering, a counter reaching a value) by checking for it repeatedly, instead of sleeping a
// fixed time: a fixed sleep is too long on a fast machine and too short on a loaded one.
package poll

import (
	"errors"
	"testing"
	"time"
)

// Pauses between checks: the first check is immediate, then the pause doubles from firstPause up to
// maxPause, so a condition that is nearly true costs little time and one that takes seconds (a
// process starting) costs few checks.
const (
	firstPause = time.Millisecond
	maxPause   = 50 * time.Millisecond
)

// Until calls cond until it returns true, and fails the test with t.Fatalf, naming what it waited
// for, when timeout passes first. cond is called at least once, and once more after timeout has
// passed, before Until gives up.
//
// cond runs on the caller's goroutine, so it may call t.Fatal itself to stop waiting for something
// that can no longer happen (a process that exited). Until returns only when cond returned true.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := wait(timeout, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	}); err != nil {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// UntilOK is Until for a check that says why it is not satisfied yet: it calls check until it
// returns nil, and on timeout the t.Fatalf message names what and ends with check's last error.
func UntilOK(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	if err := wait(timeout, check); err != nil {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

var errNotYet = errors.New("not yet")

// wait calls check until it returns nil (then wait returns nil) or timeout has passed (then it
// returns check's last error).
func wait(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	pause := firstPause
	for {
		err := check()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		time.Sleep(min(pause, left))
		pause = min(2*pause, maxPause)
	}
}
