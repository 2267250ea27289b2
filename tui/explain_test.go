package tui

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"

	"lockstep/locks"
	"lockstep/sim"
)

// TestConflictLines draws both documented tables with every combination of
// held row and requested column marked, and checks the drawing against the
// table's data: every conflict an X, the held row alone marked, the
// deciding cell under the bracketed header.
func TestConflictLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		table        locks.ConflictTable
		held, wanted int
		heldLabel    string
		header       string // bracketed header of the requested column, "" for none
		cell         string // deciding cell, "" for none
	}{
		{"table conflict", locks.TableLevelConflicts(), int(locks.RowExclusive), int(locks.Share),
			"ROW EXCLUSIVE", "[S]", "[X]"},
		{"table compatible", locks.TableLevelConflicts(), int(locks.AccessShare), int(locks.RowExclusive),
			"ACCESS SHARE", "[RE]", "[·]"},
		{"table self-conflict", locks.TableLevelConflicts(), int(locks.ShareUpdateExclusive), int(locks.ShareUpdateExclusive),
			"SHARE UPDATE EXCLUSIVE", "[SUE]", "[X]"},
		{"row conflict", locks.RowLevelConflicts(), int(locks.ForKeyShare), int(locks.ForUpdate),
			"FOR KEY SHARE", "[U]", "[X]"},
		{"row compatible", locks.RowLevelConflicts(), int(locks.ForKeyShare), int(locks.ForNoKeyUpdate),
			"FOR KEY SHARE", "[NKU]", "[·]"},
		{"held only", locks.TableLevelConflicts(), int(locks.Exclusive), -1, "EXCLUSIVE", "", ""},
		{"wanted only", locks.RowLevelConflicts(), -1, int(locks.ForShare), "", "[S]", ""},
		{"none", locks.TableLevelConflicts(), -1, -1, "", "", ""},
		{"out of range", locks.RowLevelConflicts(), 9, 42, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lines := strings.Split(stripped(strings.Join(conflictLines(tc.table, tc.held, tc.wanted, newStyles(ThemeDefault, true)), "\n")), "\n")
			out := strings.Join(lines, "\n")
			n := len(tc.table.Modes)
			if len(lines) != n+2 {
				t.Fatalf("%d lines, want a header, %d rows and a legend:\n%s", len(lines), n, out)
			}
			body := lines[1 : 1+n]

			// Every conflict of the table shows as an X, bracketed or not.
			var xs, want int
			for i, row := range tc.table.Conflict {
				for _, f := range strings.Fields(body[i]) {
					if f == "X" || f == "[X]" {
						xs++
					}
				}
				for _, c := range row {
					if c {
						want++
					}
				}
			}
			if xs != want {
				t.Errorf("body shows %d X cells, table has %d conflicts:\n%s", xs, want, out)
			}

			// The held row, and only it, carries the marker.
			if got := strings.Count(strings.Join(body, "\n"), "▶"); got != boolToInt(tc.heldLabel != "") {
				t.Errorf("found %d held-row markers:\n%s", got, out)
			}
			if tc.heldLabel != "" {
				row := body[tc.held]
				if !strings.HasPrefix(row, "▶ "+tc.heldLabel+" ") {
					t.Errorf("held row = %q, want it to start with %q", row, "▶ "+tc.heldLabel)
				}
			}

			// The requested column's header is bracketed.
			header := lines[0]
			if tc.header != "" && !strings.Contains(header, tc.header) {
				t.Errorf("header = %q, want it to contain %q", header, tc.header)
			}
			if tc.header == "" && strings.Contains(header, "[") {
				t.Errorf("header = %q, want no bracketed column", header)
			}

			// Exactly one deciding cell, in the held row, under the bracketed header.
			cells := strings.Count(strings.Join(body, "\n"), "[")
			if tc.cell == "" {
				if cells != 0 {
					t.Errorf("found %d bracketed cells, want none:\n%s", cells, out)
				}
			} else {
				if cells != 1 {
					t.Errorf("found %d bracketed cells, want 1:\n%s", cells, out)
				}
				row := body[tc.held]
				idx := strings.Index(row, tc.cell)
				if idx < 0 {
					t.Fatalf("held row %q lacks deciding cell %q", row, tc.cell)
				}
				cellCol := utf8.RuneCountInString(row[:idx])
				hdrCol := utf8.RuneCountInString(header[:strings.Index(header, tc.header)])
				cellMid := cellCol + utf8.RuneCountInString(tc.cell)/2
				hdrMid := hdrCol + utf8.RuneCountInString(tc.header)/2
				if d := cellMid - hdrMid; d < -1 || d > 1 {
					t.Errorf("deciding cell at column %d, header %q at column %d; not aligned:\n%s",
						cellMid, tc.header, hdrMid, out)
				}
			}
		})
	}
}

func boolToInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A selected lock is explained by what it is (issue 26's job-queue): a
// waiter's tuple lock is the row queue's head, with no table-level matrix
// and no ACCESS EXCLUSIVE; a table lock taken by the holder's own LOCK
// TABLE says so, and otherwise its statements are examples.
func TestHeldLockWords(t *testing.T) {
	t.Parallel()
	page, tuple := int32(0), int16(1)
	snap := &locks.Snapshot{
		Backends: []locks.Backend{{Pid: 2, Session: "T2", Query: "SELECT id FROM ls_jobs … FOR UPDATE"},
			{Pid: 3, Session: "T3", Query: "LOCK TABLE ls_t IN SHARE MODE;"}},
		Graph: locks.Graph{Edges: []locks.Edge{{Waiter: "T2", WaiterPid: 2, Holder: "T1"}}},
	}
	words, table := heldLockWords(snap, locks.Lock{Pid: 2, Session: "T2", Type: "tuple", Relation: "ls_jobs",
		Page: &page, Tuple: &tuple, Mode: "AccessExclusiveLock", Granted: true})
	if table || strings.Contains(words, "ACCESS EXCLUSIVE") || strings.Contains(words, "LOCK TABLE") ||
		!strings.Contains(words, "tuple lock on ls_jobs row (0,1)") || !strings.Contains(words, "head of that row's queue") ||
		!strings.Contains(words, "T2 waits now for T1") {
		t.Errorf("a waiter's tuple lock: table %v, %q", table, words)
	}
	words, table = heldLockWords(snap, locks.Lock{Pid: 3, Session: "T3", Type: "relation", Relation: "ls_t", RelKind: "r",
		Mode: "ShareLock", Granted: true})
	if !table || !strings.Contains(words, "taken by its LOCK TABLE ls_t IN SHARE MODE") {
		t.Errorf("a LOCK TABLE's lock: %q", words)
	}
	snap.Backends[1].Query = "SELECT 1"
	words, _ = heldLockWords(snap, locks.Lock{Pid: 3, Session: "T3", Type: "relation", Relation: "ls_t", RelKind: "r",
		Mode: "ShareLock", Granted: true})
	if strings.Contains(words, "taken by its") || !strings.Contains(words, "a mode taken by e.g. CREATE INDEX") {
		t.Errorf("a table lock whose statement is not known: %q", words)
	}
}

// A negative amount is never wrapped apart from its minus sign (issue 26:
// "-10.00" was drawn as "-" and "10.00" on two lines).
func TestWrapKeepsTheMinusSign(t *testing.T) {
	t.Parallel()
	for w := 18; w <= 30; w++ {
		for _, l := range wrap("balance = balance + -10.00 WHERE id = 1", w) {
			if strings.HasSuffix(l, "-") || strings.HasPrefix(l, "10.00") {
				t.Errorf("width %d: %q", w, wrap("balance = balance + -10.00 WHERE id = 1", w))
			}
		}
	}
}

// A NOWAIT that failed on a row names the row locks the last poll read on
// that table, and claims no more of the Locks pane than is so.
func TestNowaitNamesTheRowLock(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	f := &sim.Failure{Kind: sim.FailNowait, Session: "T2", Relation: "ls_jobs",
		Err:        sim.ServerMessage{SQLState: "55P03", Message: `could not obtain lock on row in relation "ls_jobs"`},
		Holders:    []locks.Lock{{Session: "T1", Type: "relation", Relation: "ls_jobs", RelKind: "r", Mode: "RowShareLock", Granted: true}},
		RowHolders: []locks.RowLock{{Session: "T1", Relation: "ls_jobs", Ctid: "(0,1)", Mode: locks.ForUpdate}}}
	m, _ := failureMeaning(f, age)
	got := strings.Join(m, " ")
	if !strings.Contains(got, "T1 (FOR UPDATE on ls_jobs row (0,1))") || !strings.Contains(got, "T1 (ROW SHARE on the table)") {
		t.Errorf("NOWAIT with the holder's row lock read: %q", got)
	}
	f.RowHolders = nil
	m, _ = failureMeaning(f, age)
	if got := strings.Join(m, " "); strings.Contains(got, "Locks pane shows") || strings.Contains(got, "FOR UPDATE on") {
		t.Errorf("NOWAIT with no row lock read: %q", got)
	}
}

// The Locks pane lists a row lock once, as held by whoever holds it now: a
// multixact member whose transaction has ended is not listed (its session
// committed), and of two rows one session holds on a scenario's table only
// the one behind the wait is marked as blocking.
func TestLockRowsListedTrue(t *testing.T) {
	t.Parallel()
	held := locks.RowLock{Session: "T1", Pid: 1, Relation: "ls_items", Ctid: "(0,1)", Mode: locks.ForNoKeyUpdate}
	snap := &locks.Snapshot{
		Backends: []locks.Backend{{Pid: 1, Session: "T1"}, {Pid: 3, Session: "T3"}, {Pid: 4, Session: "T4"}},
		RowLocks: []locks.RowLock{
			{Session: "T1", Pid: 1, Relation: "ls_items", Ctid: "(0,2)", Mode: locks.ForNoKeyUpdate},
			held,
			{Session: "T4", Relation: "ls_items", Ctid: "(0,3)", Mode: locks.ForKeyShare, Multi: true, Ended: true},
		},
		Graph: locks.Graph{Edges: []locks.Edge{{Waiter: "T3", WaiterPid: 3, Holder: "T1", HolderPid: 1, HeldRow: &held}}},
	}
	s := newSelection()
	s.Rebuild(snap, []string{"T1", "T3", "T4"}, nil)
	var rows []string
	for _, it := range s.items {
		if it.row != nil {
			rows = append(rows, it.row.Session+" "+it.row.Target())
		}
	}
	if want := []string{"T1 ls_items row (0,1)", "T1 ls_items row (0,2)"}; strings.Join(rows, "|") != strings.Join(want, "|") {
		t.Errorf("rows listed %q, want %q (the one behind the wait first, no ended member)", rows, want)
	}
	p := &locksPane{sel: &s, snap: snap}
	for _, it := range s.items {
		if it.row == nil {
			continue
		}
		line := p.line(it, 3)
		if blocks := strings.Contains(line, "blocks T3"); blocks != (it.row.Ctid == "(0,1)") {
			t.Errorf("%s: %q", it.row.Target(), line)
		}
	}
}

// A transaction open with no other lock still holds its own virtual
// transaction id, which the Locks pane does not list: the pane must not say
// that no session holds a lock (issue 26: "in transaction" beside "no
// session holds one").
func TestLocksPaneNoneListedWhileATransactionIsOpen(t *testing.T) {
	t.Parallel()
	l := &look{st: newStyles("", true), vol: asIs{}}
	for _, c := range []struct {
		snap *locks.Snapshot
		want string
	}{
		{&locks.Snapshot{}, "no locks at the last poll: no session held or awaited one"},
		{&locks.Snapshot{Backends: []locks.Backend{{Pid: 1, Session: "T1"}},
			Locks: []locks.Lock{{Pid: 1, Session: "T1", Type: "virtualxid", VirtualXID: "3/7", Mode: "ExclusiveLock", Granted: true}}},
			"no locks at the last poll but each open transaction's own id (virtualxid, not listed)"},
	} {
		sel := &selection{}
		sel.Rebuild(c.snap, []string{"T1"}, nil)
		p := &locksPane{box: box{look: l}, sel: sel}
		p.SetSize(100, 8)
		p.Show(&frame{snap: c.snap})
		if got := ansi.Strip(strings.Join(p.View(), "\n")); !strings.Contains(got, c.want) {
			t.Errorf("locks %+v: pane\n%s\nwant it to say %q", c.snap.Locks, got, c.want)
		}
	}
}

// A scenario's deadlock victim keeps its aborted transaction open (its
// column says "aborted"): the pane says so, not "rolled back" (fk-deadlock).
func TestBrokenDeadlockAbortedVictim(t *testing.T) {
	t.Parallel()
	l := &look{st: newStyles("", true), vol: asIs{}}
	b := &brokenDeadlock{victim: "T2", detail: "Process 2 waits for ShareLock on transaction 1"}
	for _, c := range []struct {
		state     sim.State
		want, not string
	}{
		{sim.Aborted, "its transaction was aborted", "was rolled back"},
		{sim.RolledBack, "its transaction was rolled back", "aborted"},
	} {
		p := &explainPane{box: box{look: l}}
		p.f = &frame{sessions: []sim.SessionInfo{{Name: "T1", State: sim.InTransaction}, {Name: "T2", State: c.state}}, broken: b}
		_, lines := p.brokenLines(b, 200)
		got := ansi.Strip(strings.Join(lines, " "))
		if !strings.Contains(got, c.want) || strings.Contains(got, c.not) {
			t.Errorf("victim %v: %q, want %q and not %q", c.state, got, c.want, c.not)
		}
	}
}

// A scenario's session that went on after a failure outside a transaction
// block (ddl-queue-lock-timeout's retry) shows its retry in its row, not
// the failure the retry made good; right after the failure, the failure.
func TestSessionRowAfterRetry(t *testing.T) {
	t.Parallel()
	p := &sessionsPane{box: box{look: &look{st: newStyles("", true), vol: asIs{}}}}
	s := sim.SessionInfo{Name: "T2", Statements: []string{"m_alter", "m_retry"}, Next: 1,
		LastErr: &sim.ServerMessage{SQLState: "55P03", Message: "canceling statement due to lock timeout"}, ErrAt: 0}
	if k, _ := p.rowStatement(s); k != 0 || !strings.Contains(ansi.Strip(p.tail(s)), "55P03") {
		t.Errorf("right after the failure: row statement %d, tail %q", k, ansi.Strip(p.tail(s)))
	}
	s.Next, s.Finished = 2, true
	if k, _ := p.rowStatement(s); k != 1 || p.tail(s) != "" {
		t.Errorf("after the retry: row statement %d, tail %q; want the retry and no error", k, ansi.Strip(p.tail(s)))
	}
}

// TestAdvisoryConflictTableTitle: an advisory lock is decided by the
// table-level modes' conflicts, but it locks no table — the explanation of
// a selected advisory lock, waiting or held, must not title its table
// "Table-level lock conflicts" (it did, in the advisory strategy's wait).
func TestAdvisoryConflictTableTitle(t *testing.T) {
	t.Parallel()
	d := advisoryWait(t)
	m := d.m
	seen := 0
	for range len(m.sel.items) + 1 {
		d.key("down")
		if m.sel.cur < 0 {
			continue
		}
		it := m.sel.items[m.sel.cur]
		l := it.lock
		if it.edge != nil {
			l = it.edge.Lock
		}
		if l == nil || l.Type != "advisory" {
			continue
		}
		seen++
		s := d.screen()
		if strings.Contains(s, "Table-level") || !strings.Contains(s, "Explain — Advisory locks: Table 13.2's modes, no table locked") {
			t.Errorf("the selected advisory lock (%s's, granted %v) is explained under a title that is not its own:\n%s",
				l.Session, l.Granted, s)
		}
	}
	if seen < 3 {
		t.Fatalf("selected %d advisory locks; want the wait, T2's request and T1's lock:\n%s", seen, d.screen())
	}
}

// advisoryWait steps the advisory strategy until T2 waits for T1's key 1,
// with the wait polled: the wait, T2's request and T1's lock selectable.
func advisoryWait(t *testing.T) *driver {
	t.Helper()
	d := newDriver(t, "advisory")
	m := d.m
	d.step("1", 0) // BEGIN
	d.step("1", 0) // pg_advisory_xact_lock(…, 1)
	d.step("2", 1) // BEGIN
	d.step("2", 1) // waits for T1's key 1
	if m.live.sessions[1].State != sim.Waiting {
		t.Fatalf("T2 should wait for T1's advisory key:\n%s", d.screen())
	}
	d.until("the wait is polled", func() bool { d.screen(); return d.quiet() && len(m.sel.items) >= 3 })
	return d
}

// TestAdvisoryLocksPaneNamesTheAccount: the locks pane's column for what is
// locked showed "advisory key → accoun…" for each of T1's two keys, which
// could not then be told apart; the kind column says advisory already.
func TestAdvisoryLocksPaneNamesTheAccount(t *testing.T) {
	t.Parallel()
	d := advisoryWait(t)
	d.step("1", 0) // T1 takes key 2
	d.until("T1's second key is polled", func() bool {
		d.screen()
		n := 0
		for _, it := range d.m.sel.items {
			if it.lock != nil && it.lock.Type == "advisory" {
				n++
			}
		}
		return d.quiet() && n == 3
	})
	s := d.screen()
	for _, want := range []string{
		"T2  advisory key → account 1        ExclusiveLock     WAITING ← T1",
		"T1  advisory key → account 1        ExclusiveLock     ◀ blocks T2",
		"T1  advisory key → account 2        ExclusiveLock     granted",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the locks pane lacks %q:\n%s", want, s)
		}
	}
}

// TestSIReadLockIsNoRowQueue: a SERIALIZABLE transaction's SIReadLock on a
// tuple was named "accounts id=1 (row queue)" and explained as the head of
// that row's queue ("The first session to wait for a locked row takes it")
// — a predicate lock records a read and blocks no one.
func TestSIReadLockIsNoRowQueue(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "serializable")
	m := d.m
	for range 5 { // BEGIN, the three inserts, SELECT balance … WHERE id = 1
		d.step("1", 0)
	}
	isSIRead := func(it item) bool {
		return it.lock != nil && it.lock.Type == "tuple" && it.lock.Mode == locks.SIReadMode
	}
	d.until("T1's SIReadLock on a row is polled", func() bool {
		d.screen()
		return d.quiet() && slices.ContainsFunc(m.sel.items, isSIRead)
	})
	for range len(m.sel.items) {
		if it, ok := m.sel.Selected(); ok && isSIRead(it) {
			break
		}
		d.key("down")
	}
	s := d.screen()
	if strings.Contains(s, "row queue") || strings.Contains(s, "(row qu…") || strings.Contains(s, "head of that row's queue") {
		t.Errorf("an SIReadLock is said to be a place in a row's queue:\n%s", s)
	}
	if !strings.Contains(s, "a predicate lock of its") || !strings.Contains(s, "It blocks no one") {
		t.Errorf("the selected SIReadLock is not explained as a predicate lock:\n%s", s)
	}
}

// TestVoidResultIsNotCut: pg_advisory_xact_lock returns void, whose text is
// empty; the sessions pane showed "→ pg_advisory_xact_lock =" and nothing
// after, which reads as a cut line.
func TestVoidResultIsNotCut(t *testing.T) {
	t.Parallel()
	d := newDriver(t, "advisory")
	d.step("1", 0)    // BEGIN
	d.step("1", 0)    // pg_advisory_xact_lock(…, 1)
	d.key("tab", "z") // the sessions pane, whole
	// The statement's rows come with its end's event, which a loaded
	// machine may apply after the session's state says it is done.
	d.until("T1's result shown", func() bool { return strings.Contains(d.screen(), "→ pg_advisory_xact_lock =") })
	s := d.screen()
	if !strings.Contains(s, "→ pg_advisory_xact_lock = (empty)") {
		t.Errorf("the void result of T1's pg_advisory_xact_lock is not shown as an empty value:\n%s", s)
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.TrimRight(strings.Trim(l, "│ "), " "), "pg_advisory_xact_lock =") &&
			strings.HasSuffix(strings.TrimRight(strings.TrimSuffix(strings.TrimRight(l, " "), "│"), " "), "=") {
			t.Errorf("a line ends at '=': %q", l)
		}
	}
}

// A lock_timeout shorter than a poll (ddl-queue-lock-timeout's 1 ms) ends
// a wait no poll saw; its 55P03 was explained as "T2 asked with NOWAIT",
// which it did not. It is a lock_timeout, and whom it waited for is not
// guessed; a NOWAIT's own words still make it a NOWAIT.
func TestUnseenLockTimeoutIsNotNowait(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	timeout := sim.ServerMessage{SQLState: "55P03", Message: "canceling statement due to lock timeout"}
	if k := sim.Classify(&timeout, false); k != sim.FailLockTimeout {
		t.Fatalf("a lock timeout no poll saw: %s", k)
	}
	f := &sim.Failure{Kind: sim.FailLockTimeout, Session: "T2", Err: timeout, LockTimeout: time.Millisecond, Ran: 2 * time.Millisecond}
	m, avoid := failureMeaning(f, age)
	got := strings.Join(m, " ") + " " + avoid
	if strings.Contains(got, "NOWAIT") || strings.Contains(got, " for ;") || strings.Contains(got, "keep 's") ||
		!strings.Contains(got, "its lock_timeout (1ms) ran out before a poll saw the wait") {
		t.Errorf("an unseen lock timeout: %q", got)
	}
	nowait := sim.ServerMessage{SQLState: "55P03", Message: `could not obtain lock on relation "ls_orders"`}
	if k := sim.Classify(&nowait, false); k != sim.FailNowait {
		t.Errorf("NOWAIT: %s", k)
	}
}

// In fdw-deadlock database A sees T2@A waiting behind T1@A, which is not
// idle in transaction but running: its UPDATE waits for its postgres_fdw
// remote part. The standing deadlock said "each sees a session waiting
// behind one idle in transaction" there too.
func TestDistributedDeadlockThroughFdwSaysWhatEachServerSees(t *testing.T) {
	t.Parallel()
	p := &explainPane{box: box{look: &look{st: newStyles("", true), vol: asIs{}}}}
	p.room = 40
	c := &locks.Cycle{Distributed: true, Sessions: []string{"T1@A", "T1@B", "T2@B", "T2@A"}, Edges: []locks.Edge{
		{Waiter: "T1@A", Holder: "T1@B", Application: true, Remote: true, Why: "T1@A's statement in A waits for its remote part"},
		{Waiter: "T1@B", Holder: "T2@B", Why: "T1@B waits for T2@B"},
		{Waiter: "T2@B", Holder: "T2@A", Application: true, RemotePart: true, Why: "T2@B is the remote part of T2@A's transaction"},
		{Waiter: "T2@A", Holder: "T1@A", Why: "T2@A waits for T1@A"},
	}}
	_, lines := p.standing(c, 200)
	got := strings.Join(lines, " ")
	if !strings.Contains(got, "each sees a session waiting behind one idle in transaction or running a statement that waits for its postgres_fdw remote part") {
		t.Errorf("through postgres_fdw:\n%s", got)
	}
	c.Edges[0].Remote, c.Edges[2].RemotePart = false, false
	_, lines = p.standing(c, 200)
	if got := strings.Join(lines, " "); !strings.Contains(got, "each sees a session waiting behind one idle in transaction, so no 40P01") {
		t.Errorf("two applications' connections:\n%s", got)
	}
}

// coupled-lock-timeout: T1@A's UPDATE fails with 55P03 inside its
// transaction block, which the error aborts. The advice said "retry T1@A's
// statement once it ends", which PostgreSQL cannot do inside that
// transaction: the whole transaction is retried.
func TestLockTimeoutInATransactionRetriesTheTransaction(t *testing.T) {
	t.Parallel()
	age := func(d time.Duration) string { return d.String() }
	f := &sim.Failure{Kind: sim.FailLockTimeout, Session: "T1@A", TxAborted: true, LockTimeout: time.Second, Ran: time.Second,
		Err:   sim.ServerMessage{SQLState: "55P03", Message: "canceling statement due to lock timeout"},
		Waits: []locks.Edge{{Waiter: "T1@A", Holder: "T2@A"}}}
	_, avoid := failureMeaning(f, age)
	if strings.Contains(avoid, "retry T1@A's statement") || !strings.Contains(avoid, "retry T1@A's whole transaction from its BEGIN") {
		t.Errorf("in a transaction block: %s", avoid)
	}
	f.TxAborted = false
	if _, avoid := failureMeaning(f, age); !strings.Contains(avoid, "retry T1@A's statement once it ends") {
		t.Errorf("a statement that is its own transaction: %s", avoid)
	}
}

// A column whose script stopped at a failed statement says so under the
// error: the statements listed below it (the victim's COMMIT) will not run,
// and without a word they read as still to come. A failure the script goes
// on after (a retry outside a transaction block) says nothing of the kind.
func TestColumnSaysTheScriptStops(t *testing.T) {
	t.Parallel()
	p := &sessionsPane{box: box{look: &look{st: newStyles("", true), vol: asIs{}}}, f: &frame{results: map[resultKey]result{}}}
	p.f.sessions = []sim.SessionInfo{{Name: "T2", State: sim.Aborted, Statements: []string{"UPDATE t SET v = 1 WHERE id = 2;", "UPDATE t SET v = 1 WHERE id = 1;", "COMMIT;"},
		Next: 2, Finished: true, CurrentStep: -1, ErrAt: 1, LastErr: &sim.ServerMessage{SQLState: "40P01", Message: "deadlock detected"}}}
	col := ansi.Strip(strings.Join(p.column(0, 60), "\n"))
	if !strings.Contains(col, "✗ 40P01 deadlock detected — its script stops here") {
		t.Errorf("the victim's column:\n%s", col)
	}
	p.f.sessions[0].Finished, p.f.sessions[0].State = false, sim.Idle
	if col := ansi.Strip(strings.Join(p.column(0, 60), "\n")); strings.Contains(col, "stops here") {
		t.Errorf("a script that goes on after its failure:\n%s", col)
	}
	// Ended by hand (x): no error, the script stops before its next statement.
	p.f.sessions[0] = sim.SessionInfo{Name: "T1", State: sim.RolledBack, Statements: []string{"SAVEPOINT s;", "ROLLBACK TO SAVEPOINT s;", "COMMIT;"},
		Next: 1, Finished: true, CurrentStep: -1, ErrAt: -1}
	col = ansi.Strip(strings.Join(p.column(0, 60), "\n"))
	if i, j := strings.Index(col, "its script stops here"), strings.Index(col, "ROLLBACK TO SAVEPOINT"); i < 0 || j < i {
		t.Errorf("a script ended by hand:\n%s", col)
	}
	p.f.sessions[0].Finished = false
	if col := ansi.Strip(strings.Join(p.column(0, 60), "\n")); strings.Contains(col, "stops here") {
		t.Errorf("a script still going:\n%s", col)
	}
}
