package ui

import (
	"fmt"
	"testing"
)

func TestChartTicksAreRound(t *testing.T) {
	ticks, lo, hi := niceTicks(0, 19, 5, true)
	if lo != 0 || hi != 20 || fmt.Sprint(ticks) != "[0 5 10 15 20]" {
		t.Fatalf("steps 0..19: %v [%v, %v]", ticks, lo, hi)
	}
	ticks, lo, hi = niceTicks(0.0833, 0.4, 4, false)
	if lo != 0 || hi != 0.4 || len(ticks) != 5 {
		t.Fatalf("loss 0.0833..0.4: %v [%v, %v]", ticks, lo, hi)
	}
	if ticks, _, _ := niceTicks(-1, 1, 5, true); fmt.Sprint(ticks) != "[-1 0 1]" {
		t.Fatalf("one step: %v", ticks)
	}
}
