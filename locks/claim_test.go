package locks

import (
	"strings"
	"testing"
)

// Which statement took a table lock is said only when it is known: the
// holder's last statement is the LOCK TABLE that takes exactly that mode.
// Otherwise the statements that take the mode are examples, worded so.
func TestTakenByWordsSaysOnlyWhatIsKnown(t *testing.T) {
	cases := []struct {
		mode      TableMode
		rel, q    string
		want, not string
	}{
		{Share, "ls_t", "LOCK TABLE ls_t IN SHARE MODE;", "taken by its LOCK TABLE ls_t IN SHARE MODE", "e.g."},
		{Share, "ls_t", "lock ls_t in share mode", "taken by its lock ls_t in share mode", "e.g."},
		{AccessExclusive, "public.ls_t", "LOCK TABLE ls_t", "taken by its LOCK TABLE ls_t", "e.g."},
		// The line above took it, not this one: examples only.
		{Share, "ls_t", "SELECT 1", "a mode taken by e.g. CREATE INDEX", "taken by its"},
		{Share, "ls_t", "LOCK TABLE ls_t IN ACCESS SHARE MODE", "a mode taken by e.g.", "taken by its"},
		{Share, "ls_t", "LOCK TABLE ls_other IN SHARE MODE", "a mode taken by e.g.", "taken by its"},
		// Several statements sent at once (timeouts' "BEGIN; LOCK ls_t;"): the last took it.
		{AccessExclusive, "ls_t", "BEGIN; LOCK ls_t;", "taken by its LOCK ls_t", "e.g."},
		{Share, "ls_t", "LOCK ls_t IN SHARE MODE; SELECT 1", "a mode taken by e.g.", "taken by its"},
	}
	for _, c := range cases {
		got := TakenByWords(c.mode, c.rel, c.q)
		if !strings.Contains(got, c.want) || strings.Contains(got, c.not) {
			t.Errorf("TakenByWords(%s, %q, %q) = %q; want %q, not %q", c.mode, c.rel, c.q, got, c.want, c.not)
		}
	}
}

// A multixact is named with each member and its mode.
func TestMultixactWordsNameTheMembers(t *testing.T) {
	rows := []RowLock{
		{Relation: "ls_stock", Ctid: "(0,1)", Multi: true, Session: "T1", Mode: ForKeyShare},
		{Relation: "ls_stock", Ctid: "(0,1)", Multi: true, Session: "T2", Mode: ForShare},
		{Relation: "ls_stock", Ctid: "(0,2)", Multi: true, Session: "T3", Mode: ForShare},
	}
	got := MultixactWords(rows, "ls_stock", "(0,1)")
	if !strings.Contains(got, "multixact") || !strings.Contains(got, "T1's FOR KEY SHARE and T2's FOR SHARE") || strings.Contains(got, "T3") {
		t.Errorf("MultixactWords: %q", got)
	}
}

// Each release is said in words that name it.
func TestReleaseWords(t *testing.T) {
	for r, want := range map[Release]string{
		AtTransactionEnd:    "T1's transaction ends",
		AtSubtransactionEnd: "ROLLBACK TO SAVEPOINT",
		AtAdvisoryUnlock:    "pg_advisory_unlock for the key as many times as it took it",
		AtQueueAhead:        "T1 has had its lock",
		AtSessionEnd:        "session ends",
	} {
		if got := (Claim{Holder: "T1", Release: r}).ReleaseWords("T2"); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", r, got, want)
		}
	}
}

// A multixact member waits with no tuple lock: the row it waits on is the
// one its statement names, not the holder's first row lock. The ring of
// three under for-update: T2 (2→3) runs "… WHERE id = 2 FOR UPDATE" and
// waits for T1 (1→2), whose foreign-key checks locked accounts 1 and 2;
// the screen said "T1 holds FOR KEY SHARE on accounts id=1", a row T2's
// statement never touches, with id=1's multixact (T1 and T3).
func TestRowWaitNamesTheRowItsStatementWants(t *testing.T) {
	xid := func(pid int32, session string, id uint32, granted bool) Lock {
		mode := "ShareLock"
		if granted {
			mode = "ExclusiveLock"
		}
		return Lock{Pid: pid, Session: session, Type: "transactionid", TransactionID: id, Mode: mode, Granted: granted}
	}
	s := &Snapshot{
		Backends: []Backend{
			{Pid: 11, Session: "T1", State: "idle in transaction", Xid: 101},
			{Pid: 12, Session: "T2", State: "active", WaitEventType: "Lock", WaitEvent: "transactionid", Xid: 102,
				Query: "SELECT balance FROM accounts WHERE id = 2 FOR UPDATE", BlockedBy: []int32{11}},
			{Pid: 13, Session: "T3", State: "idle in transaction", Xid: 103},
		},
		Locks: []Lock{xid(11, "T1", 101, true), xid(12, "T2", 102, true), xid(13, "T3", 103, true), xid(12, "T2", 101, false)},
		RowLocks: []RowLock{
			{Account: 1, Ctid: "(0,1)", Multi: true, Pid: 11, Session: "T1", Mode: ForKeyShare},
			{Account: 1, Ctid: "(0,1)", Multi: true, Pid: 13, Session: "T3", Mode: ForKeyShare},
			{Account: 2, Ctid: "(0,2)", Multi: true, Pid: 11, Session: "T1", Mode: ForKeyShare},
			{Account: 2, Ctid: "(0,2)", Multi: true, Pid: 12, Session: "T2", Mode: ForKeyShare},
		},
	}
	g := BuildGraph(s)
	if len(g.Edges) != 1 {
		t.Fatalf("edges: %+v", g.Edges)
	}
	e := g.Edges[0]
	if e.HeldRow == nil || e.HeldRow.Account != 2 || !strings.Contains(e.Why, "T1 holds FOR KEY SHARE on accounts id=2") || strings.Contains(e.Why, "T3") {
		t.Errorf("T2 waits for T1 on accounts id=2: %s", e.Why)
	}
	for q, want := range map[string]int64{
		"SELECT balance FROM accounts WHERE id = 12 FOR UPDATE":                        12,
		"UPDATE accounts SET balance = balance - 10.00 WHERE id = 1 RETURNING balance": 1,
		"UPDATE accounts SET balance = balance + 1 WHERE id IN (1, 2)":                 0,
		"INSERT INTO entries (transfer_id, account_id, amount) VALUES (1, 2, 10.00)":   0,
	} {
		if got, _ := queriedAccount(q); got != want {
			t.Errorf("queriedAccount(%q) = %d, want %d", q, got, want)
		}
	}
}

// A waiter on a multixact waits for each member that still holds a
// conflicting lock: one whose transaction ended (pgrowlocks finds no backend
// for it; the header still names it) is not one it will wait for. In
// multixact, T2 rolled back while T3 waited for T1, and the explanation
// still said T3 waits "one after the other (T1, then T2)".
func TestMultixactWaitSkipsEndedMembers(t *testing.T) {
	waiter := &Backend{Pid: 3, Session: "T3"}
	rows := []RowLock{
		{Relation: "ls_stock", Ctid: "(0,1)", Multi: true, Pid: 1, Session: "T1", Mode: ForKeyShare},
		{Relation: "ls_stock", Ctid: "(0,1)", Multi: true, Pid: 2, Session: "T2", Mode: ForShare},
	}
	if got := multixactWaitWords(rows, rows[0], waiter, ForUpdate, "T1"); !strings.Contains(got, "one after the other (T1, then T2); now for T1") {
		t.Errorf("both members open: %q", got)
	}
	rows[1].Pid, rows[1].Ended = 0, true
	if got := multixactWaitWords(rows, rows[0], waiter, ForUpdate, "T1"); got != "" {
		t.Errorf("T2's transaction ended: %q, want no wait on it", got)
	}
}
