package locks

import (
	"strings"
	"testing"
	"time"
)

// side builds one database's snapshot: waiter waits (pg_blocking_pids names
// the holder's pid) for holder, idle in transaction, on a transactionid lock.
func side(label, waiter, holder string, waiterPid, holderPid int32, started time.Time) *Snapshot {
	xact := started.Add(-time.Second)
	s := &Snapshot{Taken: started.Add(time.Millisecond), DeadlockTimeout: time.Second}
	s.Backends = []Backend{
		{Pid: waiterPid, Session: waiter, Database: label, State: "active", WaitEventType: "Lock", WaitEvent: "transactionid",
			XactStart: &xact, BlockedBy: []int32{holderPid}, Query: "UPDATE accounts SET balance = balance - 1 WHERE id = 1"},
		{Pid: holderPid, Session: holder, Database: label, State: "idle in transaction", XactStart: &xact, Xid: 700},
	}
	s.Locks = []Lock{
		{Pid: waiterPid, Session: waiter, Database: label, Type: "transactionid", TransactionID: 700, TxOwner: holder, Mode: "ShareLock", WaitStart: &started},
		{Pid: holderPid, Session: holder, Database: label, Type: "transactionid", TransactionID: 700, TxOwner: holder, Mode: "ExclusiveLock", Granted: true},
	}
	s.Graph = BuildGraph(s)
	return s
}

func TestMergeFindsTheDistributedDeadlock(t *testing.T) {
	now := time.Now()
	// Two servers may hand out the same pids: 100 and 200 on both.
	a := side("A", "T1@A", "T2@A", 100, 200, now)
	b := side("B", "T2@B", "T1@B", 100, 200, now.Add(5*time.Millisecond))
	for _, s := range []*Snapshot{a, b} {
		if len(s.Graph.Cycles) != 0 || len(s.Graph.Edges) != 1 {
			t.Fatalf("one database alone: %d edges, %d cycles; want 1 and 0", len(s.Graph.Edges), len(s.Graph.Cycles))
		}
	}
	m := Merge(a, b)
	if len(m.Graph.Cycles) != 1 {
		t.Fatalf("%d cycles, want 1; edges %+v", len(m.Graph.Cycles), m.Graph.Edges)
	}
	c := m.Graph.Cycles[0]
	if c.String() != "T1@A → T2@A → T2@B → T1@B → T1@A" || !c.Distributed || c.BreakAt != nil {
		t.Errorf("cycle %s: distributed %v, break at %v", c, c.Distributed, c.BreakAt)
	}
	var app int
	for _, e := range m.Graph.Edges {
		if e.Application {
			app++
			if Logical(e.Waiter) != Logical(e.Holder) || e.Waiter == e.Holder {
				t.Errorf("application edge %s → %s joins two logical sessions", e.Waiter, e.Holder)
			}
		} else if !strings.Contains(e.Why, "only as idle in transaction") {
			t.Errorf("server edge %s → %s does not say its holder looks idle: %s", e.Waiter, e.Holder, e.Why)
		}
	}
	if app != 2 {
		t.Errorf("%d application edges, want 2", app)
	}
	// With the cycle open (T2@B not waiting), nothing is reported.
	b.Backends[0].WaitEventType, b.Backends[0].BlockedBy = "", nil
	b.Graph = BuildGraph(b)
	if m := Merge(a, b); len(m.Graph.Cycles) != 0 {
		t.Errorf("an open chain reported as %s", m.Graph.Cycles[0])
	}
}

func TestMergeOfOneIsItself(t *testing.T) {
	s := side("", "T1", "T2", 1, 2, time.Now())
	if Merge(s) != s {
		t.Error("merging one snapshot should return it")
	}
}
