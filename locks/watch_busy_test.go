package locks_test

// The watch on busy servers (issue 29): each test pins one thing seen to
// break there, on the real server.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/dbtest"
	"lockstep/locks"
)

// waitsNow blocks until the server says session n of the app waits for a lock.
func (a *app) waitsNow(n string) {
	a.t.Helper()
	c, err := pgx.ConnectConfig(context.Background(), a.d.ConnConfig("test-probe"))
	if err != nil {
		a.t.Fatal(err)
	}
	defer c.Close(context.Background())
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		var waiting bool
		if err := c.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)", a.pids[n]).Scan(&waiting); err != nil {
			a.t.Fatal(err)
		}
		if waiting {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.t.Fatalf("%s never waited", n)
}

func deadlockEntries(h []locks.WatchEvent) []locks.WatchEvent {
	var out []locks.WatchEvent
	for _, ev := range h {
		if ev.Kind == "deadlock" {
			out = append(out, ev)
		}
	}
	return out
}

// A row's queue 30 deep, queued in the reverse of the sessions' pid order:
// the look that enumerated paths doubled its time with each waiter; now
// the tree is 31 nodes, no deadlock, and the JSON has each session and
// edge once.
func TestWatchDenseQueue(t *testing.T) {
	t.Parallel()
	names := []string{"holder"}
	for i := range 30 {
		names = append(names, fmt.Sprintf("q%02d", i))
	}
	a := newApp(t, names...)
	w := a.watch(locks.WatchOptions{Threshold: time.Millisecond})
	queue := slices.Clone(names[1:])
	slices.SortFunc(queue, func(x, y string) int { return int(a.pids[y] - a.pids[x]) })
	a.exec("holder", "BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	for _, n := range queue {
		a.start(n, "UPDATE w SET v = 2 WHERE id = 1")
		a.waitsNow(n)
	}
	look := until(t, w, "the whole queue", func(l *locks.Look) bool { return l.Tree.Sessions() == 31 })
	nodes := 0
	look.Tree.Walk(func(*locks.TreeNode, int) { nodes++ })
	if nodes != 31 || len(look.Tree.Cycles) != 0 || len(look.Tree.SoftCycles) != 0 || look.Tree.Roots[0].Session != a.name("holder") {
		t.Fatalf("%d nodes:\n%s", nodes, look.Tree)
	}
	// The last in the queue waits for the head's tuple lock, behind the 28
	// between them.
	last := find(look.Tree, a.name(queue[29]))
	if len(last) != 1 || last[0].Soft || last[0].AlsoBehind != 28 {
		t.Errorf("the queue's last: %+v", last)
	}
	doc := look.Document(nil)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]string]bool{}
	for _, e := range doc.Edges {
		k := [2]string{e.Waiter, e.Holder}
		if seen[k] {
			t.Errorf("edge %v twice", k)
		}
		seen[k] = true
	}
	if len(doc.Sessions) != 31 || len(doc.Edges) < 30 || len(b) > 200_000 {
		t.Errorf("the document: %d sessions, %d edges, %d bytes", len(doc.Sessions), len(doc.Edges), len(b))
	}
	// The history has a wait per waiter, and no tree in the document.
	if !strings.Contains(string(b), `"new_history"`) || strings.Contains(string(b), `"roots"`) {
		t.Errorf("the document's history repeats the tree: %.300s", b)
	}
	a.exec("holder", "ROLLBACK")
	for _, n := range queue {
		if err := a.wait(n); err != nil {
			t.Fatal(err)
		}
	}
}

// Three sessions tangled, with two cycles through one of them: one
// deadlock, one entry however many looks see it, its victim unknown at
// once where the server's log cannot be read.
func TestWatchTangleIsOneEntry(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b", "c")
	w := a.watch(locks.WatchOptions{Threshold: time.Hour}) // no log: the SQL path finds none on this server
	for _, n := range []string{"a", "b", "c"} {
		a.exec(n, "SET deadlock_timeout = '1h'")
	}
	// a and c hold SHARE on w; b holds row 2 and asks for EXCLUSIVE on w
	// (b → a, b → c); a wants row 2 (a → b); c wants row 2 too, queued
	// behind a for its tuple lock (c → a).
	a.exec("a", "BEGIN; LOCK w IN SHARE MODE")
	a.exec("c", "BEGIN; LOCK w IN SHARE MODE")
	a.exec("b", "BEGIN; SELECT v FROM w WHERE id = 2 FOR UPDATE")
	a.start("a", "SELECT v FROM w WHERE id = 2 FOR UPDATE")
	a.waitsNow("a")
	a.start("c", "SELECT v FROM w WHERE id = 2 FOR UPDATE")
	a.waitsNow("c")
	a.start("b", "LOCK w IN EXCLUSIVE MODE")
	look := until(t, w, "the tangle", func(l *locks.Look) bool { return len(l.Snapshot.Graph.Cycles) == 1 })
	c := look.Snapshot.Graph.Cycles[0]
	if len(c.All()) != 3 || len(c.Sessions) != 2 {
		t.Fatalf("the tangle: %+v", c)
	}
	for range 5 {
		if _, err := w.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	ds := deadlockEntries(w.History())
	if len(ds) != 1 || ds[0].Ended || len(ds[0].Sessions) != 3 || !strings.Contains(ds[0].What, "tangled with") {
		t.Fatalf("deadlock entries: %+v", ds)
	}
	if w.LogNote() != "" && !strings.Contains(ds[0].Verdict, "victim unknown") {
		t.Errorf("no log to read, yet the verdict is %q", ds[0].Verdict)
	}
	// b's statement is cancelled: the tangle is over, and so is its entry.
	if err := w.Signal(context.Background(), a.pids["b"], false); err != nil {
		t.Fatal(err)
	}
	if err := a.wait("b"); err == nil {
		t.Fatal("b's LOCK was not cancelled")
	}
	until(t, w, "the tangle over", func(*locks.Look) bool {
		ds := deadlockEntries(w.History())
		return len(ds) == 1 && ds[0].Ended
	})
	// b still holds row 2: a waits for b's end, c for a's.
	a.exec("b", "ROLLBACK")
	if err := a.wait("a"); err != nil {
		t.Fatal(err)
	}
	a.exec("a", "ROLLBACK")
	if err := a.wait("c"); err != nil {
		t.Fatal(err)
	}
	a.exec("c", "ROLLBACK")
}

// X holds ACCESS SHARE and waits for Z's row; Y's ACCESS EXCLUSIVE waits
// for X; Z's ACCESS SHARE queues behind Y. A cycle, through a queue: the
// server would let Z go ahead of Y, and breaks nothing. No deadlock, in
// the graph or the history.
func TestWatchSoftCycleIsNoDeadlock(t *testing.T) {
	t.Parallel()
	a := newApp(t, "x", "y", "z")
	w := a.watch(locks.WatchOptions{Threshold: time.Millisecond})
	for _, n := range []string{"x", "y", "z"} {
		a.exec(n, "SET deadlock_timeout = '1h'")
	}
	// The table locks on s, the row on w: a session holding a lock on a
	// table goes ahead of the queue for another on it.
	a.exec("x", "CREATE TABLE s (id int)")
	a.exec("x", "BEGIN; SELECT count(*) FROM s")
	a.exec("z", "BEGIN; UPDATE w SET v = 1 WHERE id = 2")
	a.start("y", "BEGIN; LOCK s IN ACCESS EXCLUSIVE MODE")
	a.waitsNow("y")
	a.start("z", "SELECT count(*) FROM s")
	a.waitsNow("z")
	a.start("x", "UPDATE w SET v = 2 WHERE id = 2")
	look := until(t, w, "the cycle through the queue", func(l *locks.Look) bool { return len(l.Snapshot.Graph.SoftCycles) == 1 })
	if len(look.Snapshot.Graph.Cycles) != 0 || len(look.Tree.Cycles) != 0 || look.Tree.Sessions() != 3 {
		t.Fatalf("a soft cycle as a deadlock:\n%s", look.Tree)
	}
	if s := look.Tree.String(); strings.Contains(s, "DEADLOCK") || !strings.Contains(s, "not a deadlock") {
		t.Errorf("drawn:\n%s", s)
	}
	if ds := deadlockEntries(w.History()); len(ds) != 0 {
		t.Errorf("history: %+v", ds)
	}
	// Y gives up: Z goes on, then X.
	if err := w.Signal(context.Background(), a.pids["y"], false); err != nil {
		t.Fatal(err)
	}
	if a.wait("y") == nil {
		t.Fatal("y's LOCK was not cancelled")
	}
	if err := a.wait("z"); err != nil {
		t.Fatal(err)
	}
	a.exec("z", "COMMIT")
	if err := a.wait("x"); err != nil {
		t.Fatal(err)
	}
	a.exec("x", "COMMIT")
	a.exec("y", "ROLLBACK")
}

// A watched session holding thousands of locks that no wait is about:
// the look reads none of them, only the rows that explain the chain.
func TestWatchReadsOnlyTheLocksThatExplain(t *testing.T) {
	t.Parallel()
	a := newApp(t, "many", "a", "b")
	w := a.watch(locks.WatchOptions{})
	a.exec("many", "BEGIN; SELECT count(pg_advisory_xact_lock(29, k)) FROM generate_series(1, 3000) k")
	a.exec("a", "BEGIN; LOCK w IN SHARE MODE")
	a.start("b", "BEGIN; LOCK w IN EXCLUSIVE MODE; COMMIT")
	look := until(t, w, "b under a", func(l *locks.Look) bool { return len(find(l.Tree, a.name("b"))) == 1 })
	if n := len(look.Snapshot.Locks); n > 10 || look.Watched != 3 {
		t.Errorf("%d lock rows read for one wait (%d watched)", n, look.Watched)
	}
	for _, l := range look.Snapshot.Locks {
		if l.Pid == a.pids["many"] {
			t.Fatalf("a lock of the unrelated session read: %+v", l)
		}
	}
	e := look.Snapshot.Graph.Edges[0]
	if e.Held == nil || e.Held.Mode != "ShareLock" || e.Queued || !strings.Contains(e.Why, "holds SHARE on it") {
		t.Errorf("the edge: %+v", e)
	}
	a.exec("a", "COMMIT")
	if err := a.wait("b"); err != nil {
		t.Fatal(err)
	}
	a.exec("many", "COMMIT")
}

// --all, watching from another database: a relation is named with its
// database, and a request queued behind another is soft — the other's
// ACCESS EXCLUSIVE on some other table of that database is not on this one.
func TestWatchAllDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := dbtest.Schema(t)
	admin, err := pgx.ConnectConfig(ctx, base.ConnConfig("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	dbname := strings.ToLower("i29_all_" + base.Schema())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+dbname); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.ConnectConfig(context.Background(), base.ConnConfig("test-cleanup"))
		if err == nil {
			c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+dbname+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	app := "allapp_" + base.Schema()
	conns := map[string]*pgx.Conn{}
	for _, n := range []string{"x", "y", "z"} {
		cfg := base.ConnConfig(app)
		cfg.Database = dbname
		delete(cfg.RuntimeParams, "search_path")
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		conns[n] = c
	}
	exec := func(n, sql string) {
		t.Helper()
		if _, err := conns[n].Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %s: %v", n, sql, err)
		}
	}
	exec("x", "CREATE TABLE s (id int); CREATE TABLE v (id int)")
	exec("x", "BEGIN; SELECT count(*) FROM s")
	exec("y", "BEGIN; LOCK v IN ACCESS EXCLUSIVE MODE")
	yDone, zDone := make(chan error, 1), make(chan error, 1)
	go func() { _, err := conns["y"].Exec(ctx, "LOCK s IN ACCESS EXCLUSIVE MODE"); yDone <- err }()
	watcher, err := pgx.ConnectConfig(ctx, base.ConnConfig("test-watch"))
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	w, err := locks.NewWatch(ctx, watcher, locks.WatchOptions{Filter: locks.WatchFilter{App: app, AllDatabases: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	until(t, w, "y waiting", func(l *locks.Look) bool { return len(l.Snapshot.Graph.Edges) == 1 })
	go func() { _, err := conns["z"].Exec(ctx, "SELECT count(*) FROM s"); zDone <- err }()
	look := until(t, w, "z queued", func(l *locks.Look) bool { return len(l.Snapshot.Graph.Edges) == 2 })
	for _, e := range look.Snapshot.Graph.Edges {
		if !strings.Contains(e.Lock.Target(), "of database "+dbname) {
			t.Errorf("%s's lock named %q", e.Waiter, e.Lock.Target())
		}
		switch e.Waiter {
		case fmt.Sprintf("%s %d", app, conns["z"].PgConn().PID()):
			if !e.Queued || e.Held != nil {
				t.Errorf("z behind y: %+v (held %+v)", e, e.Held)
			}
		default:
			if e.Queued || e.Held == nil || e.Held.Mode != "AccessShareLock" {
				t.Errorf("y behind x: %+v", e)
			}
		}
	}
	if root := look.Tree.Roots[0]; root.Database != dbname || !strings.Contains(root.Header(time.Now()), "database "+dbname) {
		t.Errorf("root: %+v", root)
	}
	exec("x", "COMMIT")
	if err := <-yDone; err != nil {
		t.Fatal(err)
	}
	exec("y", "COMMIT")
	if err := <-zDone; err != nil {
		t.Fatal(err)
	}
}

// A deadlock outside the filter is not the filter's: the database's
// counter rises for it, and the watch says it may be anyone's.
func TestWatchDeadlockOutsideTheFilter(t *testing.T) {
	t.Parallel()
	a := newApp(t, "a", "b")
	other := newApp(t, "idle")
	w := other.watch(locks.WatchOptions{}) // chooses other's idle session; no log (SQL path: no collector)
	counter := func() int64 {
		var n int64
		if err := other.conns["idle"].QueryRow(context.Background(),
			"SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := counter()
	until(t, w, "the first look", func(*locks.Look) bool { return true })
	a.exec("a", "SET deadlock_timeout = '10ms'; BEGIN; UPDATE w SET v = 1 WHERE id = 1")
	a.exec("b", "SET deadlock_timeout = '10ms'; BEGIN; UPDATE w SET v = 2 WHERE id = 2")
	a.start("a", "UPDATE w SET v = 1 WHERE id = 2")
	a.waitsNow("a")
	a.start("b", "UPDATE w SET v = 2 WHERE id = 1")
	errA, errB := a.wait("a"), a.wait("b")
	if (errA == nil) == (errB == nil) {
		t.Fatalf("one of the two should be the victim: %v, %v", errA, errB)
	}
	a.exec("a", "ROLLBACK") // the victim reports its deadlock once its transaction ends
	a.exec("b", "ROLLBACK")
	until(t, w, "a look after the counter rose", func(*locks.Look) bool { return counter() > before })
	if _, err := w.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, ev := range deadlockEntries(w.History()) {
		if !ev.Unattributed || ev.Seen {
			t.Errorf("a deadlock outside the filter taken as the filter's: %+v", ev)
		}
	}
}
