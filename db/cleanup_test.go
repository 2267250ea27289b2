package db

import (
	"context"
	"testing"
	"time"
)

// A clean-up after a signal ends within CleanupBudget of the signal, however
// many clean-ups follow one another; one with no signal gets CleanupTimeout
// from its start; neither is cancelled with the context it cleans up after.
func TestCleanupIsBoundedFromTheSignal(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	ctx := WithEndTime(parent)
	before := time.Now()
	c1, done1 := Cleanup(ctx)
	defer done1()
	d1, ok := c1.Deadline()
	if !ok || d1.Before(before.Add(CleanupTimeout)) || c1.Err() != nil {
		t.Fatalf("before the signal: deadline %v after %v", d1.Sub(before), ok)
	}
	cancel()
	if c1.Err() != nil {
		t.Fatal("the clean-up was cancelled with its context")
	}
	// Begun before the signal, it is unhurried, and ends a budget after it.
	if d1.Before(before.Add(CleanupUnhurried)) {
		t.Errorf("a clean-up at a normal end ends %v from its start, want %v", d1.Sub(before), CleanupUnhurried)
	}
	select {
	case <-c1.Done():
	case <-time.After(CleanupBudget + 2*time.Second):
		t.Error("a clean-up begun before the signal did not end within a budget of it")
	}
	time.Sleep(10 * time.Millisecond)
	c2, done2 := Cleanup(ctx)
	defer done2()
	after := time.Now()
	d2, _ := c2.Deadline()
	// Counted from the signal, 10 ms ago: less than a budget from now.
	if d2.After(after.Add(CleanupBudget)) || !d2.Before(d1) {
		t.Errorf("a clean-up after the signal ends %v from now (budget %v), the one before %v", d2.Sub(after), CleanupBudget, d1.Sub(after))
	}
	if c2.Value(endKey{}) == nil {
		t.Error("the clean-up lost its context's values")
	}
}
