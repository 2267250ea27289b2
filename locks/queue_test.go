package locks_test

import (
	"testing"

	"lockstep/locks"
)

// TestQueueInOrder: two waiters for T1's transaction, each waiting for T1
// alone, are in no order — T1's end grants both — and are not numbered; a
// request behind another's, or a waiter waiting for another waiter, is a
// queue.
func TestQueueInOrder(t *testing.T) {
	t.Parallel()
	hard := locks.Queue{Target: "T1's transaction", Holders: []locks.QueueEntry{{Session: "T1", Mode: "ExclusiveLock"}},
		Waiters: []locks.QueueEntry{{Session: "T2", Mode: "ShareLock", WaitsFor: []string{"T1"}}, {Session: "T3", Mode: "ShareLock", WaitsFor: []string{"T1"}}}}
	if hard.InOrder() {
		t.Error("two waiters for T1 alone are in no order")
	}
	if got, want := hard.String(), "T1's transaction: held by T1 (ExclusiveLock); waiting, none behind another: T2 ShareLock, waits for T1 · T3 ShareLock, waits for T1"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	behind := hard
	behind.Waiters = []locks.QueueEntry{{Session: "T2", Mode: "ACCESS EXCLUSIVE", WaitsFor: []string{"T1"}}, {Session: "T3", Mode: "ACCESS SHARE", Behind: []string{"T2"}, Soft: true}}
	if !behind.InOrder() {
		t.Error("a request behind another's is in a queue")
	}
	waitsForWaiter := hard
	waitsForWaiter.Waiters = []locks.QueueEntry{{Session: "T2", WaitsFor: []string{"T1"}}, {Session: "T3", WaitsFor: []string{"T1", "T2"}}}
	if !waitsForWaiter.InOrder() {
		t.Error("a waiter waiting for another waiter is in a queue")
	}
}
