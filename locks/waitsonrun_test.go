package locks

import (
	"slices"
	"testing"
)

// A wait is the run's when a blocker is one of its sessions or its
// prepared transactions; a wait only on backends outside it (autovacuum,
// another client, a prepared transaction of no run) is not.
func TestWaitsOnRun(t *testing.T) {
	s := &Snapshot{Backends: []Backend{
		{Pid: 10, Session: "T1"},
		{Pid: 11, Session: "T2", WaitEventType: "Lock", BlockedBy: []int32{10}},
		{Pid: 0, Session: "prepared T1", Prepared: "lockstep/ab12cd/T1"},
	}}
	for _, c := range []struct {
		name    string
		b       Backend
		onRun   bool
		outside []int32
	}{
		{"not waiting", Backend{Pid: 12, Session: "T3"}, false, nil},
		{"on a session", Backend{Pid: 12, Session: "T3", WaitEventType: "Lock", BlockedBy: []int32{10}}, true, nil},
		{"on autovacuum alone", Backend{Pid: 12, Session: "T3", WaitEventType: "Lock", BlockedBy: []int32{4711}}, false, []int32{4711}},
		{"on a session and autovacuum", Backend{Pid: 12, Session: "T3", WaitEventType: "Lock", BlockedBy: []int32{4711, 11}}, true, []int32{4711}},
		{"on the run's prepared transaction", Backend{Pid: 12, Session: "T3", WaitEventType: "Lock", BlockedBy: []int32{0}}, true, nil},
		{"for a safe snapshot, outside", Backend{Pid: 12, Session: "T3", SafeSnapshotBlockedBy: []int32{4712}}, false, []int32{4712}},
	} {
		onRun, outside := s.WaitsOnRun(c.b)
		if onRun != c.onRun || !slices.Equal(outside, c.outside) {
			t.Errorf("%s: WaitsOnRun = %v, %v; want %v, %v", c.name, onRun, outside, c.onRun, c.outside)
		}
	}
	// A prepared transaction of no run: pid 0 with no backend of the snapshot.
	bare := &Snapshot{Backends: []Backend{{Pid: 10, Session: "T1"}}}
	if onRun, outside := bare.WaitsOnRun(Backend{Pid: 12, WaitEventType: "Lock", BlockedBy: []int32{0}}); onRun || !slices.Equal(outside, []int32{0}) {
		t.Errorf("a foreign prepared transaction: %v, %v", onRun, outside)
	}
}
