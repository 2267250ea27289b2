package isolation

import (
	"context"
	"testing"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/sim"
)

// TestLibpqText sends statements that fail to the real server and words
// each error as libpq does: every expected text is what psql 15 (libpq
// 15.20, the isolation tester's library) printed for the same statement
// (psql -c). They pin the cursor line: a line of several, \r\n and a lone
// \r as line ends, tabs, a combining mark (one column), wide characters (two),
// a long line cut on either side, a position at the end of the input.
func TestLibpqText(t *testing.T) {
	ctx := context.Background()
	conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test-libpq"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, c := range []struct{ sql, want string }{
		{"SELECT 1,\r\n  nosuch1 +\r\n 2;", `ERROR:  column "nosuch1" does not exist
LINE 2:   nosuch1 +
          ^
`},
		{"SELECT 1,\r  nosuch2;", `ERROR:  column "nosuch2" does not exist
LINE 2:   nosuch2;
          ^
`},
		{"SELECT 1 +\n\n\t\tnosuch3;", `ERROR:  column "nosuch3" does not exist
LINE 3:   nosuch3;
          ^
`},
		{"SELECT 'é' || 'e\u0301' || nosuch4;", "ERROR:  column \"nosuch4\" does not exist\n" +
			"LINE 1: SELECT 'é' || 'e\u0301' || nosuch4;\n" +
			"                              ^\n"},
		{"SELECT (1", `ERROR:  syntax error at end of input
LINE 1: SELECT (1
                 ^
`},
		{"SELECT 1 +\n", `ERROR:  syntax error at end of input
LINE 2: 
        ^
`},
		{"SELECT 1 FROM generate_series(1,2) AS gs(x) WHERE x = 1 AND x < 1000000000 AND nosuch5 = 1 AND x > 0 AND x < 99999999999999;",
			`ERROR:  column "nosuch5" does not exist
LINE 1: ...(1,2) AS gs(x) WHERE x = 1 AND x < 1000000000 AND nosuch5 = ...
                                                             ^
`},
		{"SELECT '日本語日本語日本語日本語日本語日本語日本語日本語日本語' || nosuch6 || '日本語日本語日本語日本語日本語日本語';",
			`ERROR:  column "nosuch6" does not exist
LINE 1: ...語日本語日本語日本語日本語日本語日本語日本語' || nosuch6 ||...
                                                            ^
`},
		{"DO $$ BEGIN PERFORM nosuch7; END $$", `ERROR:  column "nosuch7" does not exist
LINE 1: SELECT nosuch7
               ^
QUERY:  SELECT nosuch7
CONTEXT:  PL/pgSQL function inline_code_block line 1 at PERFORM
`},
		{"SELECT nosuch_fn(1)", `ERROR:  function nosuch_fn(integer) does not exist
LINE 1: SELECT nosuch_fn(1)
               ^
HINT:  No function matches the given name and argument types. You might need to add explicit type casts.
`},
	} {
		_, err := conn.Exec(ctx, c.sql)
		m := sim.ServerError(err)
		if m == nil {
			t.Fatalf("%q: want a server error, got %v", c.sql, err)
		}
		if got := libpqText(m, c.sql, true); got != c.want {
			t.Errorf("%q:\n--- want (psql)\n%s--- got\n%s", c.sql, c.want, got)
		}
	}
}

// TestLibpqTextWithoutQuery: a position with no statement to show it in is
// said in words, as libpq says it; a notice never shows its CONTEXT.
func TestLibpqTextWithoutQuery(t *testing.T) {
	m := &sim.ServerMessage{Severity: "WARNING", Message: "careful", Position: 12, Context: "somewhere", Hint: "a hint"}
	if got, want := libpqText(m, "", false), "WARNING:  careful at character 12\nHINT:  a hint\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// A position past the statement's end draws no cursor.
	m = &sim.ServerMessage{Severity: "ERROR", Message: "odd", Position: 40}
	if got, want := libpqText(m, "SELECT 1", true), "ERROR:  odd\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
