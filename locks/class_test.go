package locks_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/locks"
)

// A teacher's view of the class sees a run's session waiting for another,
// named as the run names them, and no deadlock where there is none.
func TestClassSeesAWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	run := db.NewRunID()
	conns := map[string]*pgx.Conn{}
	for _, name := range []string{"T1", "T2", "control"} {
		c, err := d.Connect(ctx, run.AppName(name))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		conns[name] = c
	}
	// The run's control connection claims its schema, as the engine's does.
	if _, err := ledger.EnsureSchema(ctx, conns["control"], d.Schema()); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Claim(ctx, conns["control"], d.Schema()); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"CREATE TABLE class_probe ()", "BEGIN", "LOCK class_probe"} {
		if _, err := conns["T1"].Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := conns["T2"].Exec(ctx, "BEGIN; LOCK class_probe; COMMIT")
		done <- err
	}()
	watcher, err := d.Connect(ctx, db.AppName("test-class"))
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	// Until the server says T2 waits (the class view reads what it says).
	var mine locks.Run
	for mine.ID == "" || len(mine.Waits) == 0 {
		select {
		case err := <-done:
			t.Fatalf("T2's LOCK ended before it was seen waiting: %v", err)
		default:
		}
		runs, err := locks.Class(ctx, watcher)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.ID == string(run) {
				mine = r
			}
		}
	}
	if len(mine.Sessions) != 2 || mine.Waits[0] != "T2 waits for T1" || mine.Deadlock != "" || mine.Schema != d.Schema() {
		t.Fatalf("the run as the class sees it: %+v (schema %s)", mine, d.Schema())
	}
	if _, err := conns["T1"].Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A class of plain roles: each student's run, and teachers with and
// without pg_read_all_stats. No one's view fails on what the server hides;
// the teacher with it sees every run's state and schema, the one without
// sees the runs and their waits, their state hidden, and is told how to
// see it.
func TestClassOfPlainRoles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	admin, err := d.Connect(ctx, "test-admin")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	suffix := strings.ToLower(string(db.NewRunID()))
	students := []string{"student1_" + suffix, "student2_" + suffix, "student3_" + suffix}
	stats, plain := "teacher_stats_"+suffix, "teacher_plain_"+suffix
	for _, r := range append(slices.Clone(students), stats, plain) {
		if _, err := admin.Exec(ctx, "CREATE ROLE "+r+" LOGIN"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			c, err := d.Connect(context.Background(), "test-cleanup")
			if err == nil {
				c.Exec(context.Background(), "DROP ROLE IF EXISTS "+r)
				c.Close(context.Background())
			}
		})
	}
	if _, err := admin.Exec(ctx, "GRANT pg_read_all_stats TO "+stats); err != nil {
		t.Fatal(err)
	}
	connect := func(role, app string) *pgx.Conn {
		cfg := d.ConnConfig(app)
		cfg.User = role
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	exec := func(c *pgx.Conn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	runs := map[string]db.RunID{}
	var waiter *pgx.Conn
	for i, s := range students {
		run := db.NewRunID()
		runs[s] = run
		control := connect(s, run.AppName("control"))
		// The run claims its schema, the default of its role, as the engine's does.
		exec(control, fmt.Sprintf("SELECT pg_advisory_lock(hashtext('%s'), 0)", db.DefaultSchemaFor(s)))
		t1, t2 := connect(s, run.AppName("T1")), connect(s, run.AppName("T2"))
		if i == 0 {
			exec(t1, "BEGIN; SELECT pg_advisory_xact_lock(29, 1)")
			waiter = t2
		} else {
			exec(t1, "BEGIN; SELECT 1")
		}
	}
	done := make(chan error, 1)
	go func() { _, err := waiter.Exec(ctx, "SELECT pg_advisory_xact_lock(29, 1)"); done <- err }()
	view := func(role string) ([]locks.Run, []string) {
		t.Helper()
		c := connect(role, "test-class")
		cv, err := locks.NewClass(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		defer cv.Close()
		for deadline := time.Now().Add(30 * time.Second); ; {
			all, _, err := cv.Runs(ctx)
			if err != nil {
				t.Fatalf("class as %s: %v", role, err)
			}
			var mine []locks.Run
			for _, r := range all {
				for _, s := range students {
					if r.ID == string(runs[s]) {
						mine = append(mine, r)
					}
				}
			}
			if len(mine) == 3 && len(mine[0].Waits)+len(mine[1].Waits)+len(mine[2].Waits) == 1 || time.Now().After(deadline) {
				return mine, cv.Notes()
			}
		}
	}
	for _, role := range []string{stats, plain, students[1]} {
		got, notes := view(role)
		if len(got) != 3 {
			t.Fatalf("as %s: %d runs of 3: %+v", role, len(got), got)
		}
		for _, r := range got {
			own := r.User == role
			hidden := role != stats && !own
			if r.Schema != db.DefaultSchemaFor(r.User) || len(r.Sessions) != 2 || r.Hidden != hidden {
				t.Errorf("as %s, run of %s: %+v", role, r.User, r)
			}
			switch {
			case r.User == students[0]:
				if len(r.Waits) != 1 || r.Waits[0] != "T2 waits for T1" {
					t.Errorf("as %s, the waiting run: %+v", role, r)
				}
			case hidden:
				if r.State != "state hidden" || r.Since != nil {
					t.Errorf("as %s, a hidden run: %+v", role, r)
				}
			default:
				if r.State != "T1 idle in transaction "+strings.Fields(r.State)[len(strings.Fields(r.State))-1] || r.Since == nil {
					t.Errorf("as %s, a run in its transaction: %+v", role, r)
				}
			}
		}
		if (role == stats) != (len(notes) == 0) || (role != stats && !strings.Contains(notes[0], "GRANT pg_read_all_stats TO "+role)) {
			t.Errorf("notes as %s: %q", role, notes)
		}
	}
	// The holder's session ends: the waiter goes on.
	if err := func() error {
		c := connect(students[0], "test-end")
		_, err := c.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", runs[students[0]].AppName("T1"))
		return err
	}(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
