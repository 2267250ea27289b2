package sim

import (
	"context"
	"strings"
	"testing"

	"lockstep/db"
	"lockstep/dbtest"
)

// Database B's settings go into a spec's SQL as string literals the server
// reads back exactly — a database named q'x, a user with a backslash —
// whatever standard_conforming_strings says; they cannot end the literal
// early and run SQL of their own.
func TestFillBQuotesLiterals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	conn, err := dbtest.DB(t).Connect(ctx, db.AppName("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	want := []string{`/tmp/a b'c`, "5432", `q'x`, `o\'; DROP TABLE x; --`, `s\\t`}
	sql := fillB("SELECT <b_host>, <b_port>, <b_dbname>, <b_user>, <b_schema>", want[0], want[1], want[2], want[3], want[4])
	for _, scs := range []string{"on", "off"} {
		if _, err := conn.Exec(ctx, "SET standard_conforming_strings = "+scs); err != nil {
			t.Fatal(err)
		}
		got := make([]string, len(want))
		// The simple protocol, as a scenario's blocks run.
		rows, err := conn.PgConn().Exec(ctx, sql).ReadAll()
		if err != nil || len(rows) != 1 || len(rows[0].Rows) != 1 {
			t.Fatalf("standard_conforming_strings %s: %s: %v", scs, sql, err)
		}
		for i, v := range rows[0].Rows[0] {
			got[i] = string(v)
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("standard_conforming_strings %s: %s read back %q, want %q", scs, sql, got, want)
		}
	}
}

// TestServerMajor reads the major version out of server_version as servers
// report it: a session's client_connection_check_interval is set as it
// connects only from 14 on (before, the parameter would refuse the start).
func TestServerMajor(t *testing.T) {
	for v, want := range map[string]int{"15.20 (Debian 15.20-0+deb12u1)": 15, "17devel": 17, "9.6.24": 9, "13.1": 13, "": 0, "x": 0} {
		if got := serverMajor(v); got != want {
			t.Errorf("serverMajor(%q) = %d; want %d", v, got, want)
		}
	}
}
