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
		} else if !strings.Contains(e.Why, "only as idle in transaction") || strings.Contains(e.Why, ".;") {
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

// TestMergeNamesAPostgresFdwRemotePart: in fdw-deadlock T2@B is the
// postgres_fdw connection T2@A's statement opened in B, not a connection of
// the application; the edge T2@B ⇢ T2@A said "the application holds one
// open while it waits on the other" and "its application is waiting on
// T2@A". It is the remote part of T2@A's transaction, ending with it.
func TestMergeNamesAPostgresFdwRemotePart(t *testing.T) {
	now := time.Now()
	a := side("A", "T2@A", "T1@A", 100, 200, now)
	b := side("B", "T1@B", "T2@B", 300, 400, now.Add(5*time.Millisecond))
	for i := range b.Backends {
		b.Backends[i].RemotePart = true
	}
	b.Graph = BuildGraph(b)
	m := Merge(a, b)
	var part, server *Edge
	for i, e := range m.Graph.Edges {
		switch {
		case e.Application && e.Waiter == "T2@B":
			part = &m.Graph.Edges[i]
		case !e.Application && e.Waiter == "T1@B":
			server = &m.Graph.Edges[i]
		}
	}
	if part == nil || server == nil {
		t.Fatalf("edges %+v", m.Graph.Edges)
	}
	if !part.RemotePart || strings.Contains(part.Why, "application") || !strings.Contains(part.Why, "T2@B is the remote part (postgres_fdw) of T2@A's transaction") ||
		part.Label() != "the transaction it is the remote part of (postgres_fdw)" {
		t.Errorf("remote part edge: %q, label %q", part.Why, part.Label())
	}
	if strings.Contains(server.Why, "its application is waiting") || !strings.Contains(server.Why, "it is the remote part (postgres_fdw) of T2@A's transaction") {
		t.Errorf("the server's edge to the remote part: %q", server.Why)
	}
}
