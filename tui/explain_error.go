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
		m := fmt.Sprintf("%s waited %s for %s; its lock_timeout", who, age(f.Ran), waitWords(f))
		if f.LockTimeout > 0 {
			m += " (" + f.LockTimeout.String() + ")"
		}
		m += " ran out, so the server cancelled " + who + "'s statement; the holder keeps its lock."
		return []string{m}, fmt.Sprintf("keep %s's transaction short, so the lock is not held long; or retry %s's statement once it ends. lock_timeout is the bound on waiting: the wait failed fast instead of queueing the others behind it.", holdersOf(f), who)
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
		return []string{m}, "roll back and retry the transaction when the reason to cancel is gone."
	case sim.FailIdleTimeout:
		return []string{who + "'s session sat idle in its transaction longer than its idle_in_transaction_session_timeout: the server ended the session (FATAL). " +
				"Its backend is gone: its transaction rolled back and its locks were released. Its column says so; reset reconnects it."},
			"never leave a transaction open between statements (no waiting for a user inside BEGIN … COMMIT); the timeout, set for the application's roles, is the safety net."
	case sim.FailTerminated:
		return []string{"The server ended " + who + "'s session: its backend is gone, its transaction rolled back and its locks released. Its column says so; reset reconnects it."},
			"reconnect and retry the transaction; pg_terminate_backend is an operator's last resort."
	case sim.FailFirstUpdaterWins:
		m := who + "'s transaction is REPEATABLE READ or SERIALIZABLE: it sees the data as of its first statement (its snapshot). The row it went to change was changed by a transaction that committed after that snapshot"
		if committed != "" {
			m += " — " + committed + " committed while " + who + "'s transaction was open"
		}
		m += ". It may not overwrite a change it cannot see: the first updater wins, the second fails."
		if len(f.Waits) > 0 {
			m += " (" + who + " first waited for " + holdersOf(f) + "'s transaction, which held the row, to end: it committed, and the error came then.)"
		}
		return []string{m}, "retry " + who + "'s whole transaction from its BEGIN: the retry takes a new snapshot that sees the change. (Under READ COMMITTED the update would wait and re-read the row instead.)"
	case sim.FailSerializable:
		m := "Under SERIALIZABLE the server tracks what each transaction read that another wrote. " + who + "'s transaction and "
		if committed != "" {
			m += committed + " (committed while it was open)"
		} else {
			m += "another serializable transaction"
		}
		m += " read and wrote each other's data so that no order of running them one after the other gives these results: one must go, and the server cancelled " + who + "'s."
		return []string{m}, "retry " + who + "'s transaction from its BEGIN (the HINT's advice); or lock what the decision reads (SELECT … FOR UPDATE) so the conflict becomes a wait."
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
