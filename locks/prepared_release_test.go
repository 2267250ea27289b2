package locks

import (
	"strings"
	"testing"
	"time"
)

// TestPreparedHolderReleasedByCommitPrepared: a wait on a prepared
// transaction (coupled-2pc: T2@A waits for prepared T1@A, pid 0 in
// pg_blocking_pids) ends at COMMIT PREPARED or ROLLBACK PREPARED; the
// explanation said "(COMMIT or ROLLBACK)", which no session can send to a
// prepared transaction. An ordinary holder keeps those words.
func TestPreparedHolderReleasedByCommitPrepared(t *testing.T) {
	started := time.Now()
	xact := started.Add(-time.Second)
	s := &Snapshot{Taken: started.Add(time.Millisecond), DeadlockTimeout: time.Second}
	s.Backends = []Backend{
		{Pid: 100, Session: "T2@A", State: "active", WaitEventType: "Lock", WaitEvent: "transactionid",
			XactStart: &xact, BlockedBy: []int32{0}, Query: "UPDATE accounts SET balance = balance - 1 WHERE id = 1"},
		{Pid: 0, Session: "prepared T1@A", Prepared: "lockstep/ab12cd/T1@A", XactStart: &xact},
	}
	s.Locks = []Lock{
		{Pid: 100, Session: "T2@A", Type: "transactionid", TransactionID: 700, TxOwner: "prepared T1@A", Mode: "ShareLock", WaitStart: &started},
		{Pid: 0, Session: "prepared T1@A", Type: "transactionid", TransactionID: 700, TxOwner: "prepared T1@A", Mode: "ExclusiveLock", Granted: true},
	}
	g := BuildGraph(s)
	if len(g.Edges) != 1 || g.Edges[0].Holder != "prepared T1@A" {
		t.Fatalf("edges %+v; want T2@A → prepared T1@A", g.Edges)
	}
	e := g.Edges[0]
	if want := "Released when prepared T1@A's transaction ends (COMMIT PREPARED or ROLLBACK PREPARED, from any session), not before."; !strings.Contains(e.Why, want) {
		t.Errorf("the wait on a prepared transaction says\n%s\nwant %q", e.Why, want)
	}
	if e.Claim.Release != AtTransactionEnd {
		t.Errorf("release %v, want the transaction's end", e.Claim.Release)
	}
	plain := side("A", "T1", "T2", 100, 200, started)
	if why := plain.Graph.Edges[0].Why; !strings.Contains(why, "(COMMIT or ROLLBACK)") || strings.Contains(why, "PREPARED") {
		t.Errorf("an ordinary holder: %s", why)
	}
}
