package locks_test

import (
	"context"
	"testing"

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
