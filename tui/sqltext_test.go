package tui

import (
	"strings"
	"testing"
)

func TestWrapSQLKeepsTheLesson(t *testing.T) {
	for _, c := range []struct {
		sql   string
		width int
		want  []string
	}{
		// Fits: left alone.
		{"SELECT balance FROM accounts WHERE id = 1 FOR UPDATE", 60,
			[]string{"SELECT balance FROM accounts WHERE id = 1 FOR UPDATE"}},
		// The select list goes first; FOR UPDATE stays whole on one line.
		{"SELECT balance FROM accounts WHERE id = 1 FOR UPDATE", 44,
			[]string{"SELECT … FROM accounts WHERE id = 1", "FOR UPDATE"}},
		{"SELECT balance FROM accounts WHERE id = 1 FOR NO KEY UPDATE NOWAIT", 30,
			[]string{"SELECT … FROM accounts", "WHERE id = 1", "FOR NO KEY UPDATE NOWAIT"}},
		// RETURNING's list and an INSERT's columns go before any wrap.
		{"INSERT INTO entries (transfer_id, account_id, amount) VALUES (1, 2, 10.00) RETURNING id", 50,
			[]string{"INSERT INTO entries (…) VALUES (1, 2, 10.00)", "RETURNING …"}},
		{"UPDATE accounts SET balance = balance - 10.00 WHERE id = 12 RETURNING balance", 40,
			[]string{"UPDATE accounts SET balance = balance -", "10.00 WHERE id = 12 RETURNING …"}},
	} {
		got := wrapSQL("", c.sql, c.width, false)
		if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("wrapSQL(%q, %d) = %q, want %q", c.sql, c.width, got, c.want)
		}
		for _, l := range got {
			if n := len([]rune(l)); n > c.width {
				t.Errorf("wrapSQL(%q, %d): line %q is %d wide", c.sql, c.width, l, n)
			}
		}
	}
}

func TestWrapSQLBriefAndNamed(t *testing.T) {
	const sql = "UPDATE accounts SET balance = balance + CASE id WHEN 1 THEN -10 ELSE 10 END WHERE id IN (1, 2);"
	if got := wrapSQL("t1a_move: ", sql, 52, true); strings.Join(got, "|") != "t1a_move: UPDATE accounts SET … WHERE id IN (1, 2);" {
		t.Errorf("brief: %q", got)
	}
	// Not brief, the SET list stays and wraps.
	if got := wrapSQL("t1a_move: ", sql, 50, false); !strings.Contains(strings.Join(got, " "), "CASE id WHEN 1 THEN -10 ELSE 10 END") {
		t.Errorf("not brief: %q", got)
	}
	// A step's name does not stop the select list from going.
	if got := wrapSQL("t1r: ", "SELECT count(*) AS on_call FROM anomaly WHERE on_call", 40, false); strings.Join(got, "|") != "t1r: SELECT … FROM anomaly WHERE on_call" {
		t.Errorf("named: %q", got)
	}
}
