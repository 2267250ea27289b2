package serve

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/tui"
)

// TestTwoStudentsApart logs two students in at once: each steps their own
// sessions, as their own role, in their own schema, and neither screen
// shows anything of the other — not their name, role, sessions' pids or
// run.
func TestTwoStudentsApart(t *testing.T) {
	ts := startServe(t, nil)
	a, b := uniq("ann"), uniq("bob")
	ca, cb := ts.student(a, 120, 40), ts.student(b, 100, 30)
	ca.waitFor("▶ BEGIN")
	cb.waitFor("▶ BEGIN")
	ts.step(ca, a, "1", 1)
	ts.step(ca, a, "1", 2)
	ts.step(cb, b, "2", 1)
	conn := adminConn(t)
	pids := func(role string) []string {
		rows, err := conn.Query(context.Background(), "SELECT pid::text FROM pg_stat_activity WHERE usename = $1", role)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	pa, pb := pids(roleName(a)), pids(roleName(b))
	if len(pa) < 4 || len(pb) < 4 {
		t.Fatalf("each student's run holds its sessions, control and observer: %d and %d backends", len(pa), len(pb))
	}
	// Screens redraw as they go: look at a few.
	for range 5 {
		sa, sb := ca.screen(), cb.screen()
		for _, leak := range append([]string{b, roleName(b)}, pb...) {
			if regexp.MustCompile(`\b` + regexp.QuoteMeta(leak) + `\b`).MatchString(sa) {
				t.Errorf("%s's screen shows %s of %s:\n%s", a, leak, b, sa)
			}
		}
		for _, leak := range append([]string{a, roleName(a)}, pa...) {
			if regexp.MustCompile(`\b` + regexp.QuoteMeta(leak) + `\b`).MatchString(sb) {
				t.Errorf("%s's screen shows %s of %s:\n%s", b, leak, a, sb)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Each runs as their own role, in their own schema, which that role owns.
	for _, name := range []string{a, b} {
		var owner, comment string
		err := conn.QueryRow(context.Background(), `SELECT pg_get_userbyid(nspowner), obj_description(oid, 'pg_namespace')
			FROM pg_namespace WHERE nspname = $1`, roleName(name)).Scan(&owner, &comment)
		if err != nil {
			t.Fatal(err)
		}
		if owner != roleName(name) || !strings.Contains(comment, roleName(name)) {
			t.Errorf("schema %s: owner %s, comment %q", roleName(name), owner, comment)
		}
		var apps []string
		rows, _ := conn.Query(context.Background(), "SELECT DISTINCT application_name FROM pg_stat_activity WHERE usename = $1", roleName(name))
		apps, _ = pgx.CollectRows(rows, pgx.RowTo[string])
		for _, app := range apps {
			if !strings.HasPrefix(app, "lockstep/") {
				t.Errorf("%s has a backend that is not a run's: %q", name, app)
			}
		}
	}
	sa := ca.screen()
	if !strings.Contains(sa, "you are "+a) {
		t.Errorf("%s's header does not name them:\n%s", a, sa)
	}
}

// TestSecurityList types, as one student, what would reach another's data
// — DROP SCHEMA, SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION,
// pg_cancel_backend and pg_terminate_backend of the other's pid, a SELECT
// from the other's schema, an UPDATE there — and checks that the server
// refuses each (and says so on the screen), and that the other student's
// schema, rows and sessions are as they were. It also reads the roles'
// attributes: no SUPERUSER, CREATEROLE, CREATEDB, no membership of
// pg_signal_backend, CONNECT but not CREATE on the database.
func TestSecurityList(t *testing.T) {
	ts := startServe(t, nil)
	a, b := uniq("eve"), uniq("bob")
	ca, cb := ts.student(a, 120, 40), ts.student(b, 120, 40)
	ca.waitFor("▶ BEGIN")
	cb.waitFor("▶ BEGIN")
	ts.step(cb, b, "1", 1) // bob's T1 holds a transaction open
	conn := adminConn(t)
	var bobPid int
	if err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity WHERE usename = $1 AND application_name LIKE 'lockstep/%/T1'`,
		roleName(b)).Scan(&bobPid); err != nil {
		t.Fatal(err)
	}
	bs := roleName(b)
	typed := []struct{ sql, refusal string }{
		{"DROP SCHEMA " + bs + " CASCADE", "must be owner of schema"},
		{"SET ROLE " + bs, "permission denied to set role"},
		{"SET ROLE postgres", "permission denied to set role"},
		{"SET SESSION AUTHORIZATION " + bs, "permission denied to set session"},
		{fmt.Sprintf("SELECT pg_cancel_backend(%d)", bobPid), "must be a member of the role whose"},
		{fmt.Sprintf("SELECT pg_terminate_backend(%d)", bobPid), "must be a member of the role whose"},
		{"SELECT * FROM " + bs + ".accounts", "permission denied for schema"},
		{"UPDATE " + bs + ".accounts SET balance = 0", "permission denied for schema"},
	}
	for _, tc := range typed {
		ca.press("e")
		ca.waitFor("T1 SQL")
		ca.typeLine(tc.sql)
		// The statement's first words, failed, and the server's refusal
		// (the screen wraps the rest to the column).
		ca.waitFor("✗ "+tc.sql[:min(len(tc.sql), 24)], "✗ 42501 "+tc.refusal)
	}
	// RESET ROLE is allowed — and leaves the student as themselves: they
	// logged in as their role, so there is nothing to return to.
	ca.press("e")
	ca.waitFor("T1 SQL")
	ca.typeLine("RESET ROLE")
	ca.waitFor("⌨ RESET ROLE")
	ca.press("e")
	ca.waitFor("T1 SQL")
	ca.typeLine("SELECT current_user AS who_am_i")
	ca.waitFor("who_am_i = " + roleName(a))

	// The other student is untouched: schema, rows, the open transaction.
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{bs, "accounts"}.Sanitize()).Scan(&n); err != nil || n != 2 {
		t.Errorf("%s's accounts: %d rows, %v", b, n, err)
	}
	var state string
	if err := conn.QueryRow(context.Background(), "SELECT state FROM pg_stat_activity WHERE pid = $1", bobPid).Scan(&state); err != nil || state != "idle in transaction" {
		t.Errorf("%s's T1 (pid %d): %q, %v", b, bobPid, state, err)
	}
	cb.waitFor("● in transaction")

	// The same, straight to the server as the student's role, SQLSTATE by
	// SQLSTATE: the screen is not what refuses.
	st, _ := ts.run(a)
	_ = st
	l, err := ts.admin.ensure(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := l.db.Connect(context.Background(), db.AppName("test-security"))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(context.Background())
	for _, tc := range typed {
		_, err := sc.Exec(context.Background(), tc.sql)
		if code := db.SQLState(err); code != pgerrcode.InsufficientPrivilege {
			t.Errorf("%s as %s: SQLSTATE %q (%v), want 42501", tc.sql, l.role, code, err)
		}
	}
	var super, createRole, createDB, signal, connect, create bool
	err = conn.QueryRow(context.Background(), `SELECT r.rolsuper, r.rolcreaterole, r.rolcreatedb,
			pg_has_role(r.rolname, 'pg_signal_backend', 'MEMBER'),
			has_database_privilege(r.rolname, current_database(), 'CONNECT'),
			has_database_privilege(r.rolname, current_database(), 'CREATE')
		FROM pg_roles r WHERE r.rolname = $1`, l.role).Scan(&super, &createRole, &createDB, &signal, &connect, &create)
	if err != nil {
		t.Fatal(err)
	}
	if super || createRole || createDB || signal || !connect || create {
		t.Errorf("role %s: superuser %v, createrole %v, createdb %v, pg_signal_backend %v, connect %v, create on the database %v",
			l.role, super, createRole, createDB, signal, connect, create)
	}
}

// TestTeacherViewWatchPush logs the teacher in beside two students: the
// class view lists both with their runs' states; one student's deadlock
// shows there; enter watches that student's screen live, and a key the
// teacher presses steps nothing of theirs; a push starts a scenario for
// both from its first step; a broadcast reaches both; a student who
// leaves shows as not connected.
func TestTeacherViewWatchPush(t *testing.T) {
	ts := startServe(t, nil)
	a, b := uniq("amy"), uniq("ben")
	ca, cb := ts.student(a, 120, 40), ts.student(b, 80, 24)
	ca.waitFor("▶ BEGIN")
	cb.waitFor("▶ BEGIN")
	tc := ts.teacherClient(120, 40)
	tc.waitFor("Students (2,", a, b)
	for i, k := range strings.Fields("1 2 1 2 1 2 1 2 1") {
		ts.step(ca, a, k, i+1)
	}
	tc.waitFor("⏳ waiting — T1 waits for T2")
	// Select amy (the first) and watch.
	tc.press("enter")
	s := tc.waitFor("watching "+a, "read-only", "Why T1 waits for T2")
	if !strings.Contains(s, "you are "+a) {
		t.Errorf("the teacher does not see %s's screen:\n%s", a, s)
	}
	// The deadlock, live on the teacher's screen.
	ca.waitUntil("T1 waiting a second", func(s string) bool {
		m := waitedRE.FindStringSubmatch(s)
		return m != nil && m[1] >= "1"
	})
	ca.press("2")
	tc.waitFor("Deadlock broken: T2 was the victim")
	// Read-only: the teacher's keys step nothing of the student's. Once the
	// break has settled (T1's SELECT went on: nine statements), nothing
	// but a key of the student's moves the run.
	before := ts.waitRun(a, "the break settled", func(s tui.ClassStudent) bool {
		return s.Run.Settled && s.Run.State == tui.RunDeadlock && s.Run.Done >= 9
	})
	tc.press("1", "space", "c")
	tc.waitFor("read-only")
	time.Sleep(300 * time.Millisecond)
	after, _ := ts.run(a)
	if after.Run.Done != before.Run.Done {
		t.Errorf("the teacher's keys stepped %s's sessions: %d statements, then %d", a, before.Run.Done, after.Run.Done)
	}
	tc.press("esc")
	tc.waitFor("Students (2,", "⟳ deadlock")

	// A push: both start fk-deadlock's first step.
	tc.press("p")
	tc.waitFor("Push a run to every student")
	for i, r := range ts.class.Runs() {
		if r.Name == "lost-update" {
			for range i - indexOf(ts.class.Runs(), ts.class.Current()) {
				tc.press("down")
			}
		}
	}
	tc.press("enter")
	tc.waitFor("Start lost-update for every student")
	tc.press("y")
	ca.waitFor("scenario lost-update")
	cb.waitFor("scenario lost-update")
	for _, n := range []string{a, b} {
		ts.waitRun(n, "lost-update from its first step", func(s tui.ClassStudent) bool {
			return s.Run.Run == "lost-update" && s.Run.Done == 0 && s.Run.Settled
		})
	}
	tc.waitFor("run: lost-update")

	// A broadcast.
	tc.press("b")
	tc.waitFor("to every student:")
	tc.typeLine("look at the locks pane")
	tc.waitFor("sent to 2 students")
	ca.waitFor("from the teacher: look at the locks pane")
	cb.waitFor("from the teacher: look at the locks pane")

	// A student who leaves.
	cb.press("q")
	cb.waitFor("quit and roll back?")
	cb.press("y")
	cb.waitEnd()
	tc.waitFor("○ left")
}

func indexOf(runs []tui.ClassRun, name string) int {
	for i, r := range runs {
		if r.Name == name {
			return i
		}
	}
	return 0
}

// TestColoursPerClient: each client gets the colours its environment asks
// for — NO_COLOR none, COLORTERM=truecolor 24-bit, LOCKSTEP_THEME the
// projector's black screen — whatever the others asked.
func TestColoursPerClient(t *testing.T) {
	ts := startServe(t, nil)
	plain := ts.student(uniq("nocolor"), 100, 30, "NO_COLOR=1")
	deep := ts.student(uniq("deep"), 100, 30, "COLORTERM=truecolor")
	proj := ts.student(uniq("proj"), 100, 30, "LOCKSTEP_THEME=projector", "COLORTERM=truecolor")
	for _, c := range []*client{plain, deep, proj} {
		c.waitFor("▶ BEGIN", "Accounts")
	}
	if sgr := colourSGR(plain.output()); sgr != "" {
		t.Errorf("NO_COLOR: the output has colours: %q", sgr)
	}
	if colourSGR(deep.output()) == "" {
		t.Errorf("the colour test finds no colour where there is some")
	}
	if out := deep.output(); !strings.Contains(out, "38;2;") {
		t.Errorf("COLORTERM=truecolor: no 24-bit colour in the output")
	}
	if out := proj.output(); !strings.Contains(out, "\x1b]11;") && !strings.Contains(out, "48;2;0;0;0") {
		t.Errorf("LOCKSTEP_THEME=projector: the screen's black background was not set")
	}
}

var sgrRE = regexp.MustCompile(`\x1b\[([0-9;:]*)m`)

// colourSGR is the first SGR sequence in out that sets a colour, or "".
func colourSGR(out string) string {
	for _, m := range sgrRE.FindAllStringSubmatch(out, -1) {
		for _, p := range strings.FieldsFunc(m[1], func(r rune) bool { return r == ';' || r == ':' }) {
			var n int
			if _, err := fmt.Sscan(p, &n); err != nil {
				continue
			}
			if n >= 30 && n <= 38 || n >= 40 && n <= 48 || n >= 90 && n <= 97 || n >= 100 && n <= 107 {
				return m[0]
			}
		}
	}
	return ""
}
