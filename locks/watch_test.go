package locks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/db/dbtest"
	"lockstep/locks"
)

// watch finds sessions lockstep did not start, by their application's name,
// and draws their waits as a tree: the root blocker, a waiter under it, and
// a waiter with two blockers under each.
func TestWatchTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.Schema(t)
	app := "tapp_" + string(db.NewRunID())
	conns := map[string]*pgx.Conn{}
	for _, n := range []string{"a", "b", "c"} {
		cfg := d.ConnConfig(app + "_" + n)
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		conns[n] = c
	}
	ddl := "CREATE SCHEMA IF NOT EXISTS " + d.Schema() + "; CREATE TABLE " + d.Schema() + ".w (id int PRIMARY KEY, v int); INSERT INTO " + d.Schema() + ".w VALUES (1, 0)"
	if _, err := conns["a"].Exec(ctx, ddl); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"BEGIN", "UPDATE w SET v = v + 1 WHERE id = 1"} {
		if _, err := conns["a"].Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	watcher, err := d.Connect(ctx, db.AppName("test-watch"))
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	obs, err := locks.NewObserver(ctx, watcher, db.RunID("watch"), "", locks.WithoutRowLocks())
	if err != nil {
		t.Fatal(err)
	}
	var tree locks.Tree
	// until polls the server until the tree has the shape wanted (the
	// deadline is only a guard against a hang).
	until := func(waiters int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			targets, err := locks.WatchTargets(ctx, watcher, locks.WatchFilter{App: app + "%"})
			if err != nil {
				t.Fatal(err)
			}
			obs.Named(targets)
			snap, err := obs.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tree = locks.BuildTree(snap)
			if len(targets) == 3 && len(tree.Roots) == 1 && len(tree.Roots[0].Waiters) == waiters {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the tree never formed: %s", tree)
			}
		}
	}
	done := make(chan error, 2)
	go func() { _, err := conns["b"].Exec(ctx, "UPDATE w SET v = v + 1 WHERE id = 1"); done <- err }()
	until(1) // b waits for a
	go func() { _, err := conns["c"].Exec(ctx, "BEGIN; LOCK w; COMMIT"); done <- err }()
	until(2) // and c for both
	root := tree.Roots[0]
	if !strings.HasPrefix(root.Session, app+"_a ") || root.State != "idle in transaction" {
		t.Fatalf("root: %+v", root)
	}
	var b, c locks.TreeNode
	for _, w := range root.Waiters {
		switch {
		case strings.HasPrefix(w.Session, app+"_b "):
			b = w
		case strings.HasPrefix(w.Session, app+"_c "):
			c = w
		}
	}
	// b waits for a's row; c waits for a (and, under b, for b too): two blockers.
	if b.Session == "" || !strings.Contains(b.Waits, "waits for it to end") || len(b.Waiters) != 1 ||
		!strings.HasPrefix(b.Waiters[0].Session, app+"_c ") || c.Session == "" || !strings.Contains(c.Lock, "ACCESS EXCLUSIVE") {
		t.Fatalf("tree:\n%s", tree)
	}
	if s := tree.String(); !strings.Contains(s, "idle in transaction") || !strings.Contains(s, "└─ "+b.Session+" waits for it") {
		t.Errorf("drawn tree:\n%s", s)
	}
	if _, err := conns["a"].Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
