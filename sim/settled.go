package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Settled asks the server, in one round trip on the control connection,
// whether the statements of the given sessions (those the caller has sent
// and not yet seen end) all wait for other sessions of the run — each, by
// the isolation tester's own question (pg_isolation_test_session_is_blocked),
// for a lock or a safe snapshot — and no wait is part of a cycle through
// them (a deadlock, hard or soft, that the server's deadlock check would
// end). Then none of them can move until a session of the run is given
// something to do, short of a timeout firing (see Timeouts): a view may
// conclude at once what it would otherwise wait to conclude. False when
// any of them runs, waits only for something outside the run, or is in a
// cycle; false too when a session's backend is not known (a pooler's).
func (e *Engine) Settled(ctx context.Context, sessions []int) (bool, error) {
	if len(sessions) == 0 {
		return false, nil
	}
	e.mu.Lock()
	running := make([]int32, 0, len(sessions))
	var sd *side
	for _, i := range sessions {
		if i < 0 || i >= len(e.sessions) {
			e.mu.Unlock()
			return false, fmt.Errorf("%w: T%d", ErrNoSession, i+1)
		}
		s := e.sessions[i]
		if s.pid == 0 || (sd != nil && s.side != sd) {
			e.mu.Unlock()
			return false, nil
		}
		sd = s.side
		running = append(running, s.pid)
	}
	pids := e.pidsIn(sd)
	e.mu.Unlock()
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if sd.ctl == nil || sd.ctl.IsClosed() {
		return false, fmt.Errorf("asking whether the running statements wait: %w", ErrClosed)
	}
	rows, err := sd.ctlRows(ctx, fmt.Sprintf("SELECT p, pg_catalog.pg_isolation_test_session_is_blocked(p, '%[2]s'), "+
		"pg_catalog.pg_blocking_pids(p) FROM unnest('%[1]s'::int4[]) AS p", int4Array(running), int4Array(pids)))
	if err != nil {
		return false, fmt.Errorf("asking whether the running statements wait: %w", err)
	}
	waitsFor := make(map[int32][]int32, len(running))
	all := true
	for _, row := range rows {
		pid, perr := strconv.ParseInt(string(row[0]), 10, 32)
		by, berr := parseInt4Array(row[2])
		if perr != nil || berr != nil {
			return false, fmt.Errorf("asking whether the running statements wait: the server's answer %q: %w", row, errors.Join(perr, berr))
		}
		all = all && string(row[1]) == "t"
		waitsFor[int32(pid)] = slices.DeleteFunc(by, func(b int32) bool { return !slices.Contains(pids, b) })
	}
	return all && len(waitsFor) == len(running) && !hasCycle(waitsFor), nil
}

// pidsIn are the backend pids of the sessions in sd's database (the spec's
// pids, to the tester's question), those known; e.mu is held.
func (e *Engine) pidsIn(sd *side) []int32 {
	pids := make([]int32, 0, len(e.sessions))
	for _, o := range e.sessions {
		if o.side == sd && o.pid != 0 {
			pids = append(pids, o.pid)
		}
	}
	return pids
}

// hasCycle says whether the wait-for graph has a cycle.
func hasCycle(waitsFor map[int32][]int32) bool {
	const (
		unseen = iota
		onPath
		done
	)
	state := make(map[int32]int, len(waitsFor))
	var visit func(p int32) bool
	visit = func(p int32) bool {
		switch state[p] {
		case onPath:
			return true
		case done:
			return false
		}
		state[p] = onPath
		for _, q := range waitsFor[p] {
			if visit(q) {
				return true
			}
		}
		state[p] = done
		return false
	}
	for p := range waitsFor {
		if visit(p) {
			return true
		}
	}
	return false
}

// timeoutSettings are the settings whose timer can end a wait, or the
// transaction a waiter waits for, with no session of the run acting.
var timeoutSettings = []string{"lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout",
	"idle_session_timeout", "transaction_timeout"}

// Timeouts says whether a session of the run starts with a timer that can
// end a wait by itself (lock_timeout, statement_timeout, or one that ends
// an idle session or transaction holding a lock): the settings the control
// connection starts with (what RESET gives it, whatever it SET since),
// which the server's configuration, the database's and the role's give
// every session alike. A SET a session runs later is
// the caller's to look for.
func (e *Engine) Timeouts(ctx context.Context) (bool, error) {
	sd := e.sides[0]
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	if sd.ctl == nil || sd.ctl.IsClosed() {
		return false, fmt.Errorf("reading the timeouts: %w", ErrClosed)
	}
	rows, err := sd.ctlRows(ctx, "SELECT count(*) FROM pg_catalog.pg_settings WHERE reset_val <> '0' AND name IN ('"+
		strings.Join(timeoutSettings, "', '")+"')")
	if err != nil {
		return false, fmt.Errorf("reading the timeouts: %w", err)
	}
	return len(rows) == 1 && string(rows[0][0]) != "0", nil
}

// ctlRows runs sql on the control connection with the simple protocol
// and returns its rows as text: one round trip, and none of pgx's typing
// (a spec asks this kind of question at every step that waits); e.ctlMu
// is held.
func (sd *side) ctlRows(ctx context.Context, sql string) ([][][]byte, error) {
	res, err := sd.ctl.PgConn().Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(res) != 1 {
		return nil, fmt.Errorf("%d results, want 1", len(res))
	}
	return res[0].Rows, nil
}

// int4Array is pids as an int4[] literal, '{1,2}' without the quotes.
func int4Array(pids []int32) string {
	b := make([]byte, 0, 2+8*len(pids))
	b = append(b, '{')
	for i, p := range pids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(p), 10)
	}
	return string(append(b, '}'))
}

// parseInt4Array reads an int4[] in the server's text form ({1,2}; {}).
func parseInt4Array(text []byte) ([]int32, error) {
	inner, opened := bytes.CutPrefix(text, []byte("{"))
	inner, closed := bytes.CutSuffix(inner, []byte("}"))
	if !opened || !closed {
		return nil, fmt.Errorf("not an array: %q", text)
	}
	if len(inner) == 0 {
		return nil, nil
	}
	var out []int32
	for f := range bytes.SplitSeq(inner, []byte(",")) {
		n, err := strconv.ParseInt(string(f), 10, 32)
		if err != nil {
			return nil, err
		}
		out = append(out, int32(n))
	}
	return out, nil
}
