package tui

import (
	"fmt"
	"strings"
	"time"

	"lockstep/sim"
)

// failureLines explain a statement's failure — or a session the server
// ended — as the deadlock pane explains a deadlock: the server's message
// whole (DETAIL and HINT), what it means here, from the facts the engine
// saw (sim.Failure), and what avoids it. Nothing is claimed that those
// facts do not show.
func (p *explainPane) failureLines(f *sim.Failure, w int) (string, []string) {
	st, vol := p.look.st, p.look.vol
	sev := f.Err.Severity
	if sev == "" {
		sev = "ERROR"
	}
	text := []string{st.bad.Render(fmt.Sprintf("✗ %s: %s %s: %s", f.Session, sev, f.Err.SQLState, f.Err.Message))}
	if f.Err.Detail != "" {
		text = append(text, st.subtle.Render("DETAIL: "+vol.Text(namedProcesses(oneLine(f.Err.Detail), p.f.sessions))))
	}
	if f.Err.Hint != "" {
		text = append(text, st.subtle.Render("HINT: "+vol.Text(oneLine(f.Err.Hint))))
	}
	means, avoid := failureMeaning(f, vol.Age)
	text = append(text, means...)
	if avoid != "" {
		text = append(text, st.ok.Render("Avoid it: ")+avoid)
	}
	return failureTitle(f), wrapAll(text, w)
}

// failureTitle names what failed and how.
func failureTitle(f *sim.Failure) string {
	switch f.Kind {
	case sim.FailIdleTimeout, sim.FailTerminated:
		return "The server ended " + f.Session + "'s session"
	}
	return fmt.Sprintf("Why %s's statement failed (%s)", f.Session, f.Err.SQLState)
}

// waitWords is the wait a failed statement stood in: the lock and its
// holder, as the last poll saw them.
func waitWords(f *sim.Failure) string {
	var parts []string
	for _, e := range f.Waits {
		what := e.Label()
		if held := heldWords(e); held != "" {
			parts = append(parts, what+", which "+e.Holder+" held ("+held+")")
		} else {
			parts = append(parts, what+", behind "+e.Holder)
		}
	}
	return strings.Join(parts, "; ")
}

// holdersOf are the failure's blockers, by name.
func holdersOf(f *sim.Failure) string {
	var names []string
	for _, e := range f.Waits {
		if !containsName(names, e.Holder) {
			names = append(names, e.Holder)
		}
	}
	return strings.Join(names, ", ")
}

func containsName(names []string, n string) bool {
	for _, m := range names {
		if m == n {
			return true
		}
	}
	return false
}

// failureMeaning is what the failure means here, in sentences, and what
// avoids it. age renders a duration the run measured (a golden screen
// masks it).
func failureMeaning(f *sim.Failure, age func(time.Duration) string) ([]string, string) {
	who := f.Session
	committed := strings.Join(f.Committed, ", ")
	switch f.Kind {
	case sim.FailLockTimeout:
		timeout := "its lock_timeout"
		if f.LockTimeout > 0 {
			timeout += " (" + f.LockTimeout.String() + ")"
		}
		retry := who + "'s statement"
		if f.TxAborted {
			// No statement-level retry inside a transaction block: the
			// error aborted the whole transaction.
			retry = who + "'s whole transaction from its BEGIN (the error aborted it: its statement cannot be retried alone in it)"
		}
		if len(f.Waits) == 0 {
			// The wait ended before a poll saw it: whom it waited for is
			// not known, and is not guessed.
			m := fmt.Sprintf("%s waited for a lock another transaction held, and %s ran out before a poll saw the wait (whom it waited for is not known), so the server cancelled %s's statement; the holder keeps its lock.", who, timeout, who)
			return []string{m}, fmt.Sprintf("retry %s once the holder's transaction ends. lock_timeout is the bound on waiting: once it ran out the request left the lock's queue, and holds up no request queued behind it any longer.", retry)
		}
		m := fmt.Sprintf("%s waited %s for %s; %s ran out, so the server cancelled %s's statement; the holder keeps its lock.", who, age(f.Ran), waitWords(f), timeout, who)
		return []string{m}, fmt.Sprintf("keep %s's transaction short, so the lock is not held long; or retry %s once it ends. lock_timeout is the bound on waiting: once it ran out the request left the lock's queue, and holds up no request queued behind it any longer.", holdersOf(f), retry)
	case sim.FailNowait:
		m := who + " asked with NOWAIT: when a conflicting lock is held the server fails at once instead of waiting."
		if strings.Contains(f.Err.Message, "lock on row") {
			m += " Another transaction held a conflicting lock on the row (a row lock lives in the row itself, not in pg_locks)."
			if rows := rowHeldList(f); rows != "" {
				m += " Row locks on " + f.Relation + " in the last poll (pgrowlocks): " + rows + "."
			}
		}
		if held := heldList(f); held != "" {
			m += " Holding locks on " + f.Relation + " in the last poll: " + held + "."
		}
		return []string{m}, "FOR UPDATE SKIP LOCKED takes the rows nobody holds instead of failing; or retry once the holder's transaction ends."
	case sim.FailStatementTimeout:
		m := fmt.Sprintf("%s's statement ran %s, longer than its statement_timeout", who, age(f.Ran))
		if f.StatementTimeout > 0 {
			m += " (" + f.StatementTimeout.String() + ")"
		}
		m += ": the server cancelled it."
		if len(f.Waits) > 0 {
			m += " It was waiting for " + waitWords(f) + ": time spent waiting counts against statement_timeout too."
		}
		return []string{m}, "lock_timeout bounds only the wait, and says so (55P03); keep the holder's transaction short; raise statement_timeout only for statements meant to run long."
	case sim.FailCanceled:
		m := who + "'s statement was cancelled by a cancel request (pg_cancel_backend, or k here)."
		if len(f.Waits) > 0 {
			m += " It was waiting for " + waitWords(f) + "."
		}
		if !f.TxAborted {
			// An autocommit statement: no transaction to roll back.
			return []string{m}, "retry the statement when the reason to cancel is gone."
		}
		return []string{m}, "roll back and retry the transaction when the reason to cancel is gone."
	case sim.FailIdleTimeout:
		return []string{who + "'s session sat idle in its transaction longer than its idle_in_transaction_session_timeout: the server ended the session (FATAL). " +
				"Its backend is gone: its transaction rolled back and its locks were released. The Sessions pane marks it ended; r (reset) reconnects it."},
			"never leave a transaction open between statements (no waiting for a user inside BEGIN … COMMIT); the timeout, set for the application's roles, is the safety net."
	case sim.FailTerminated:
		return []string{"The server ended " + who + "'s session: its backend is gone, its transaction rolled back and its locks released. The Sessions pane marks it ended; r (reset) reconnects it."},
			"reconnect and retry the transaction; pg_terminate_backend is an operator's last resort."
	case sim.FailFirstUpdaterWins:
		m := who + "'s transaction is REPEATABLE READ or SERIALIZABLE: it sees the data as of its first statement (its snapshot). The row it went to change was changed by a transaction that committed after that snapshot"
		if writers := committedWriters(f); writers != "" {
			m += " — " + writers
		} else if committed != "" {
			m += " — " + committed + " committed while " + who + "'s transaction was open"
		}
		m += ". It may not overwrite a change it cannot see: the first updater wins, the second fails."
		if len(f.Waits) > 0 {
			m += " (" + who + " first waited for " + holdersOf(f) + "'s transaction, which held the row, to end: it committed, and the error came then.)"
		}
		return []string{m}, "retry " + who + "'s whole transaction from its BEGIN: the retry takes a new snapshot that sees the change. (Under READ COMMITTED the update would wait and re-read the row instead.)"
	case sim.FailSerializable:
		return serializableMeaning(f)
	case sim.FailSerialization:
		return []string{who + "'s transaction could not be serialized with the others: the server cancelled it."},
			"retry " + who + "'s transaction from its BEGIN."
	case sim.FailConstraint:
		m := who + "'s change broke a constraint: the server rejects it, whatever the isolation level."
		if len(f.Waits) > 0 {
			m = fmt.Sprintf("%s first waited for %s; when that transaction ended its row was there, and %s's change broke the constraint.", who, waitWords(f), who)
		}
		avoid := "check the data the constraint guards before changing it, in the same transaction."
		if f.Err.SQLState == "23505" {
			avoid = "INSERT … ON CONFLICT DO NOTHING (or DO UPDATE) takes an existing key in its stride; or retry with another key."
		}
		return []string{m}, avoid
	case sim.FailDeadlock:
		return nil, "take the locks in the same order in every transaction; retry the victim's transaction."
	}
	return nil, ""
}

// heldList names the locks others held on the relation a NOWAIT failed on.
// rowHeldList names the other sessions' row locks on the failure's table
// in the last poll: "T1 (FOR UPDATE on ls_jobs row (0,1))".
func rowHeldList(f *sim.Failure) string {
	var parts []string
	for _, r := range f.RowHolders {
		parts = append(parts, r.Session+" ("+r.Mode.String()+" on "+r.Target()+")")
	}
	return strings.Join(parts, ", ")
}

func heldList(f *sim.Failure) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range f.Holders {
		k := l.Session + " " + l.ModeWords()
		if seen[k] {
			continue
		}
		seen[k] = true
		parts = append(parts, l.Session+" ("+l.ModeWords()+" on the table)")
	}
	return strings.Join(parts, ", ")
}

// committedWriters names the transactions that committed while the failed
// one was open and wrote a table its failed statement writes, each with
// its writing statement; "" when the engine kept none.
func committedWriters(f *sim.Failure) string {
	if len(f.Own) == 0 {
		return ""
	}
	_, writes := sim.Tables(f.Own[len(f.Own)-1])
	var parts []string
	for _, o := range f.Overlapping {
		if !o.Committed {
			continue
		}
		for _, q := range o.Statements {
			if _, w := sim.Tables(q); len(common(w, writes)) > 0 {
				parts = append(parts, o.Session+" ("+shortSQL(q)+"), which committed while "+f.Session+"'s transaction was open")
				break
			}
		}
	}
	return strings.Join(parts, "; ")
}

// serializableMeaning explains a 40001 of SERIALIZABLE's read/write
// dependencies from what the engine saw: the server's DETAIL (which role
// the cancelled transaction had), the statements its transaction ran, and
// those of every transaction open alongside it — which of them read a
// table the other wrote. It claims an order-free cycle only when the
// statements show dependencies both ways with one transaction.
func serializableMeaning(f *sim.Failure) ([]string, string) {
	who := f.Session
	lines := []string{"Under SERIALIZABLE the server tracks, among concurrent serializable transactions, what each read that another wrote without seeing it (a read/write dependency), and cancels one when those could make the result differ from every order of running them one after the other." + reasonWords(who, f.Err.Detail)}
	avoid := "retry " + who + "'s whole transaction from its BEGIN (the HINT's advice): the retry sees what the others committed. Or, under READ COMMITTED, lock the rows the decision reads (SELECT … FOR UPDATE), so the second transaction waits for the first and decides on what it committed."
	if len(f.Own) == 0 {
		return lines, avoid
	}
	ownReads, ownWrites := sim.Tables(strings.Join(f.Own, "\n"))
	lines = append(lines, who+"'s transaction ran "+stmtList(f.Own, true)+".")
	both, related := "", false
	var inserts []string
	for _, o := range f.Overlapping {
		reads, writes := sim.Tables(strings.Join(o.Statements, "\n"))
		out, in := common(ownReads, writes), common(reads, ownWrites)
		if len(out) == 0 && len(in) == 0 {
			continue
		}
		related = true
		end := "still open"
		switch {
		case o.Committed:
			end = "committed while " + who + "'s was open"
		case !o.Open:
			end = "rolled back"
		}
		var deps []string
		if len(out) > 0 {
			deps = append(deps, fmt.Sprintf("%s read %s, which %s wrote", who, strings.Join(out, ", "), o.Session))
		}
		if len(in) > 0 {
			deps = append(deps, fmt.Sprintf("%s read %s, which %s wrote", o.Session, strings.Join(in, ", "), who))
		}
		lines = append(lines, fmt.Sprintf("Open alongside it, %s's transaction (%s) ran %s. So %s, neither seeing the other's write, as their transactions overlapped (table by table, as the statements name them; which rows, the server's predicate locks judge: SIReadLock in the Locks pane).",
			o.Session, end, stmtList(o.Statements, false), strings.Join(deps, "; and ")))
		if len(out) > 0 && len(in) > 0 && both == "" {
			both = o.Session
		}
		inserts = append(inserts, insertsInto(o.Statements, out)...)
		inserts = append(inserts, insertsInto(f.Own, in)...)
	}
	if len(inserts) > 0 {
		// FOR UPDATE locks the rows a read finds; a row inserted later is
		// not among them (anti-dependency: each read misses the other's
		// INSERT), so the second transaction would not wait.
		avoid = "retry " + who + "'s whole transaction from its BEGIN (the HINT's advice): the retry sees what the others committed. Under READ COMMITTED, SELECT … FOR UPDATE would not do: it locks only rows that exist, and the write a read missed here is an INSERT (" +
			strings.Join(inserts, "; ") + "). Take one lock every such transaction needs before it reads (LOCK TABLE … IN SHARE ROW EXCLUSIVE MODE, which conflicts with itself, or pg_advisory_xact_lock on one key), so the second waits for the first and decides on what it committed."
	}
	switch {
	case both != "":
		// Tables, not rows: in a ring of transfers T2 reads accounts 2 and
		// 3 and T1 wrote account 1, and the pattern ran through T3.
		lines = append(lines, fmt.Sprintf("If the rows meet as the tables do, no serial order of %s and %s gives these results: run one after the other, the second would see the first's write, and here each read missed the other's. Table names cannot tell: the server judges by the rows and pages each read (SIReadLock), and the pattern it acted on may run through more than two transactions; it cancelled %s's.", both, who, who))
	case !related:
		lines = append(lines, "No other transaction of the run, as its statements name tables, read what "+who+" wrote or wrote what it read: the dependency is through what the statements do not name (an index, a foreign key's check) or with a transaction outside lockstep's sessions.")
	}
	return lines, avoid
}

// insertsInto are the INSERT statements among stmts that write one of
// tables, shortened.
func insertsInto(stmts, tables []string) []string {
	var out []string
	for _, q := range stmts {
		if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(q)), "INSERT") {
			continue
		}
		if _, w := sim.Tables(q); len(common(w, tables)) > 0 {
			out = append(out, shortSQL(q))
		}
	}
	return out
}

// reasonWords is what the DETAIL's reason code says of the cancelled
// transaction's role, or "" for a reason it does not know.
func reasonWords(who, detail string) string {
	d := strings.ToLower(detail)
	var s string
	switch {
	case strings.Contains(d, "identification as a pivot"):
		s = " Its DETAIL names " + who + " the pivot: a concurrent transaction read what " + who + " wrote, and " + who + " read what a concurrent transaction wrote — two such dependencies through one transaction, which every anomaly needs"
	case strings.Contains(d, "conflict out to old pivot"), strings.Contains(d, "conflict out to pivot"):
		s = " Its DETAIL says " + who + " read what a transaction wrote that is the pivot of two such dependencies and has committed: the pivot can no longer be cancelled, so " + who + " is"
	case strings.Contains(d, "prepared pivot"):
		s = " Its DETAIL says the pivot of two such dependencies is a prepared transaction, which can no longer be cancelled: " + who + "'s COMMIT would complete the pattern"
	default:
		return ""
	}
	// "During commit attempt", "during conflict out checking" and "during
	// conflict in checking" are the server's words for a transaction that
	// another's check had already marked to die (predicate.c: "someone else
	// has already decided that we need to die"), cancelled at its next
	// COMMIT, read or write: not where the pattern was found.
	marked := "; another transaction's statement or COMMIT had completed the pattern and the server marked " + who + " to be cancelled, "
	switch {
	case strings.Contains(d, "during commit attempt"):
		s += marked + "which it did at " + who + "'s COMMIT"
	case strings.Contains(d, "during write"):
		s += "; the server found it as " + who + " wrote"
	case strings.Contains(d, "during read"):
		s += "; the server found it as " + who + " read"
	case strings.Contains(d, "conflict out checking"):
		s += marked + "which it did as " + who + " next read (this statement)"
	case strings.Contains(d, "conflict in checking"):
		s += marked + "which it did as " + who + " next wrote (this statement)"
	}
	return s + "."
}

// stmtList is a transaction's statements, each with what it read and
// wrote; failedLast marks the last one as the one that failed.
func stmtList(stmts []string, failedLast bool) string {
	var parts []string
	for i, q := range stmts {
		reads, writes := sim.Tables(q)
		var what string
		switch {
		case len(writes) > 0 && len(common(reads, writes)) == len(writes) && len(reads) == len(writes):
			what = "read and wrote " + strings.Join(writes, ", ")
		case len(writes) > 0 && len(reads) > 0:
			what = "read " + strings.Join(reads, ", ") + " and wrote " + strings.Join(writes, ", ")
		case len(writes) > 0:
			what = "wrote " + strings.Join(writes, ", ")
		case len(reads) > 0:
			what = "read " + strings.Join(reads, ", ")
		}
		part := shortSQL(q)
		if what != "" {
			part = what + " (" + part + ")"
		}
		if failedLast && i == len(stmts)-1 {
			part += ", which failed"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", then ")
}

// shortSQL is a statement on one line without its closing semicolon, cut
// with a mark past 70 characters.
func shortSQL(q string) string {
	q = strings.TrimRight(strings.TrimSpace(oneLine(q)), "; ")
	if r := []rune(q); len(r) > 70 {
		return string(r[:69]) + "…"
	}
	return q
}

// common are the names in both lists, in a's order.
func common(a, b []string) []string {
	var out []string
	for _, x := range a {
		if containsName(b, x) && !containsName(out, x) {
			out = append(out, x)
		}
	}
	return out
}
