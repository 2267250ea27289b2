//go:build unix

package locks_test

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/locks"
)

// anchorSQL is the blocking tree with locks, as one writes it by hand
// for the facts a look of lockstep watch reads: every client session of
// the database, each waiter's blockers (pg_blocking_pids, asked only of a
// session waiting for a lock) and the lock it waits for, and what each
// blocker holds of that lock's object — one row per wait-for edge, with
// pg_locks read once. A look reads that in one statement too, and then
// draws the tree, finds the deadlocks, explains every edge and keeps its
// history.
const anchorSQL = `
WITH a AS MATERIALIZED (
    SELECT pid, usename, application_name, state, wait_event_type, xact_start, query,
           CASE WHEN wait_event_type = 'Lock' THEN pg_blocking_pids(pid) END AS blocked_by
    FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
),
l AS MATERIALIZED (SELECT * FROM pg_locks)
SELECT a.pid, a.usename, a.application_name, a.state, a.wait_event_type, a.xact_start, a.query,
       w.locktype, w.relation::regclass::text, w.mode, w.page, w.tuple, w.virtualxid, w.transactionid::text, w.waitstart,
       h.pid AS blocker, hl.mode AS held
FROM a
LEFT JOIN l w ON w.pid = a.pid AND NOT w.granted
LEFT JOIN LATERAL unnest(a.blocked_by) AS h(pid) ON true
LEFT JOIN l hl ON hl.pid = h.pid AND hl.granted AND hl.locktype = w.locktype
      AND hl.database IS NOT DISTINCT FROM w.database AND hl.relation IS NOT DISTINCT FROM w.relation
      AND hl.page IS NOT DISTINCT FROM w.page AND hl.tuple IS NOT DISTINCT FROM w.tuple
      AND hl.virtualxid IS NOT DISTINCT FROM w.virtualxid AND hl.transactionid IS NOT DISTINCT FROM w.transactionid
      AND hl.classid IS NOT DISTINCT FROM w.classid AND hl.objid IS NOT DISTINCT FROM w.objid
      AND hl.objsubid IS NOT DISTINCT FROM w.objsubid`

// bareSQL is the bare blocking list: each session with its blockers and
// the lock it waits for, not what the blockers hold. Printed beside, for
// scale: it cannot tell a blocker holding a conflicting lock from one
// queued ahead, so a deadlock from a queue.
const bareSQL = `
SELECT a.pid, a.usename, a.application_name, a.state, a.wait_event_type, a.xact_start, a.query,
       CASE WHEN a.wait_event_type = 'Lock' THEN pg_blocking_pids(a.pid) END AS blocked_by,
       l.locktype, l.relation::regclass::text, l.mode, l.page, l.tuple, l.virtualxid, l.transactionid::text, l.waitstart
FROM pg_stat_activity a
LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()`

// BenchmarkWatchBusy is the benchmark of scripts/watch-bench (run it with
// -benchtime 1x): on a throwaway server of its own (max_connections 1,000,
// so that its lock table holds 64,000), one look of lockstep watch against
// the blocking-tree query (anchorSQL) on the same state, interleaved, in
// three cases: (a) a row's queue 24 and 40 deep, queued in the reverse of
// the sessions' pid order; (b) 300 pgbench clients deadlocking on two rows,
// live and paused (SIGSTOP), with the history's deadlocks against the
// server's count; (c) 50,000 advisory locks held by an unrelated session,
// and a chain of three waiters. It prints a table; LOCKSTEP_BENCH_CASES
// (e.g. "a,c") runs some of the cases only.
func BenchmarkWatchBusy(b *testing.B) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		b.Skip("pgbench is not installed (apt-get install postgresql-client)")
	}
	cases := cmp.Or(os.Getenv("LOCKSTEP_BENCH_CASES"), "a,b,c")
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{
		Server:    db.ServerOptions{MaxConnections: 1000},
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	bb := &busyBench{b: b, d: d, ctx: ctx}
	admin := bb.connect("bench-admin")
	bb.exec(admin, `CREATE SCHEMA IF NOT EXISTS `+d.Schema()+`;
		CREATE TABLE q (id int PRIMARY KEY, v int); INSERT INTO q VALUES (1, 0);
		CREATE TABLE hot (id int PRIMARY KEY, v int); INSERT INTO hot VALUES (1, 0), (2, 0);
		CREATE TABLE chain (id int PRIMARY KEY, v int); INSERT INTO chain VALUES (1, 0), (2, 0), (3, 0)`)
	bb.admin = admin
	bb.anchor = bb.connect("bench-anchor")
	fmt.Printf("\n%-62s %9s %9s %7s %7s %9s %7s\n", "case (pairs of a look and the SQL, interleaved)", "look p50", "SQL p50", "ratio", "max", "look max", "÷ bare")
	for _, c := range []string{"a", "b", "c"} {
		if !slices.Contains(splitComma(cases), c) {
			continue
		}
		switch c {
		case "a":
			for _, depth := range []int{24, 40} {
				bb.queueCase(depth)
			}
		case "b":
			bb.deadlockCase()
		case "c":
			bb.manyLocksCase()
		}
	}
}

func splitComma(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != ',' {
			i++
		}
		out = append(out, s[:i])
		if i == len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

type busyBench struct {
	b             *testing.B
	d             *db.Database
	ctx           context.Context
	admin, anchor *pgx.Conn
}

func (bb *busyBench) connect(app string) *pgx.Conn {
	c, err := bb.d.Connect(bb.ctx, app)
	if err != nil {
		bb.b.Fatal(err)
	}
	bb.b.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// connectMany opens n connections named app, eight at a time.
func (bb *busyBench) connectMany(app string, n int) []*pgx.Conn {
	out := make([]*pgx.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				c, err := bb.d.Connect(bb.ctx, app)
				if err != nil {
					errs <- err
					return
				}
				out[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		bb.b.Fatal(err)
	}
	bb.b.Cleanup(func() {
		for _, c := range out {
			if c != nil {
				c.Close(context.Background())
			}
		}
	})
	return out
}

func (bb *busyBench) exec(c *pgx.Conn, sql string) {
	bb.b.Helper()
	if _, err := c.Exec(bb.ctx, sql); err != nil {
		bb.b.Fatalf("%s: %v", sql, err)
	}
}

// waitsNow waits until the server says pid waits for a lock.
func (bb *busyBench) waitsNow(pid uint32) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		var waiting bool
		if err := bb.admin.QueryRow(bb.ctx, "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND NOT granted)", int32(pid)).Scan(&waiting); err != nil {
			bb.b.Fatal(err)
		}
		if waiting {
			return
		}
	}
	bb.b.Fatalf("pid %d never waited", pid)
}

// watch is a watch on every client session of the database, on a
// connection of its own, reading the server's log when log is set.
func (bb *busyBench) watch(log bool) *locks.Watch {
	opts := locks.WatchOptions{}
	if log {
		opts.ServerLog = bb.d.ServerLog()
	}
	w, err := locks.NewWatch(bb.ctx, bb.connect("bench-watch"), opts)
	if err != nil {
		bb.b.Fatal(err)
	}
	bb.b.Cleanup(w.Close)
	return w
}

// pair is one look, the anchor and the bare list on the same state.
type pair struct{ look, sql, bare time.Duration }

// sql runs the anchor and reads all its rows.
func (bb *busyBench) sql() time.Duration { return bb.run(anchorSQL) }

func (bb *busyBench) run(query string) time.Duration {
	start := time.Now()
	rows, err := bb.anchor.Query(bb.ctx, query)
	if err != nil {
		bb.b.Fatal(err)
	}
	for rows.Next() {
		if _, err := rows.Values(); err != nil {
			bb.b.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		bb.b.Fatal(err)
	}
	return time.Since(start)
}

func (bb *busyBench) look(w *locks.Watch) (time.Duration, *locks.Look) {
	start := time.Now()
	l, err := w.Poll(bb.ctx)
	if err != nil {
		bb.b.Fatal(err)
	}
	return time.Since(start), l
}

// pairs measures n pairs, alternating which goes first.
func (bb *busyBench) pairs(w *locks.Watch, n int) []pair {
	var out []pair
	for i := range n {
		var p pair
		if i%2 == 0 {
			p.look, _ = bb.look(w)
			p.sql = bb.sql()
			p.bare = bb.run(bareSQL)
		} else {
			p.bare = bb.run(bareSQL)
			p.sql = bb.sql()
			p.look, _ = bb.look(w)
		}
		out = append(out, p)
	}
	return out
}

// report prints a case's line: the medians, the median of the pairs'
// ratios and the largest, the slowest look.
func (bb *busyBench) report(name string, ps []pair) {
	var looks, sqls []time.Duration
	var ratios, bares []float64
	for _, p := range ps {
		looks, sqls = append(looks, p.look), append(sqls, p.sql)
		ratios = append(ratios, float64(p.look)/float64(p.sql))
		if p.bare > 0 {
			bares = append(bares, float64(p.look)/float64(p.bare))
		}
	}
	slices.Sort(ratios)
	slices.Sort(bares)
	bare := "-"
	if len(bares) > 0 {
		bare = strconv.FormatFloat(bares[len(bares)/2], 'f', 2, 64)
	}
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) + "ms"
	}
	fmt.Printf("%-62s %9s %9s %7.2f %7.2f %9s %7s\n", fmt.Sprintf("%s (%d)", name, len(ps)), ms(median(looks)), ms(median(sqls)),
		ratios[len(ratios)/2], ratios[len(ratios)-1], ms(slices.Max(looks)), bare)
}

// queueCase: a holder and depth waiters queued for its row, in the
// reverse of their pid order.
func (bb *busyBench) queueCase(depth int) {
	holder := bb.connect("queue")
	waiters := bb.connectMany("queue", depth)
	slices.SortFunc(waiters, func(x, y *pgx.Conn) int { return cmp.Compare(y.PgConn().PID(), x.PgConn().PID()) })
	bb.exec(holder, "BEGIN; UPDATE q SET v = v + 1 WHERE id = 1")
	done := make(chan error, depth)
	for _, c := range waiters {
		go func() { _, err := c.Exec(bb.ctx, "UPDATE q SET v = v + 1 WHERE id = 1"); done <- err }()
		bb.waitsNow(c.PgConn().PID())
	}
	w := bb.watch(false)
	for range 3 { // warm up: the statement prepared, the pages read
		bb.look(w)
		bb.sql()
	}
	_, l := bb.look(w)
	if l.Tree.Sessions() != depth+1 || len(l.Tree.Cycles) != 0 {
		bb.b.Fatalf("the queue as the watch sees it: %d sessions, %v", l.Tree.Sessions(), l.Tree.Cycles)
	}
	bb.report(fmt.Sprintf("(a) a row's queue %d deep, reverse pid order", depth), bb.pairs(w, 60))
	bb.exec(holder, "ROLLBACK")
	for range depth {
		if err := <-done; err != nil {
			bb.b.Fatal(err)
		}
	}
}

// manyLocksCase: a session holds 50,000 advisory locks; three waiters in
// a chain, each behind the one before.
func (bb *busyBench) manyLocksCase() {
	many := bb.connect("many")
	bb.exec(many, "SELECT count(pg_advisory_lock(29, k)) FROM generate_series(1, 50000) k")
	w := bb.watch(false)
	for range 3 {
		bb.look(w)
		bb.sql()
	}
	bb.report("(c) 50,000 locks of an unrelated session, no one waits", bb.pairs(w, 60))
	cs := bb.connectMany("chain", 4)
	bb.exec(cs[0], "BEGIN; UPDATE chain SET v = 1 WHERE id = 1")
	done := make(chan error, 3)
	for i := 1; i <= 3; i++ {
		if i < 3 {
			bb.exec(cs[i], fmt.Sprintf("BEGIN; UPDATE chain SET v = 1 WHERE id = %d", i+1))
		}
		go func() {
			_, err := cs[i].Exec(bb.ctx, fmt.Sprintf("UPDATE chain SET v = 2 WHERE id = %d", i))
			done <- err
		}()
		bb.waitsNow(cs[i].PgConn().PID())
	}
	for range 3 {
		bb.look(w)
		bb.sql()
	}
	_, l := bb.look(w)
	if l.Tree.Sessions() != 4 || len(l.Snapshot.Locks) > 20 {
		bb.b.Fatalf("the chain as the watch sees it: %d sessions, %d lock rows", l.Tree.Sessions(), len(l.Snapshot.Locks))
	}
	bb.report("(c) 50,000 locks of an unrelated session, 3 waiters chained", bb.pairs(w, 60))
	bb.exec(cs[0], "COMMIT")
	for i := 1; i <= 3; i++ {
		if err := <-done; err != nil {
			bb.b.Fatal(err)
		}
		if i < 3 {
			bb.exec(cs[i], "COMMIT")
		}
	}
	bb.exec(many, "SELECT pg_advisory_unlock_all()")
}

// deadlockScript is each pgbench client's transaction: both rows, in a
// random order.
const deadlockScript = `\set a random(1, 2)
BEGIN;
UPDATE hot SET v = v + 1 WHERE id = :a;
UPDATE hot SET v = v + 1 WHERE id = 3 - :a;
END;
`

// deadlockCase: 300 pgbench clients deadlocking on two rows for 40 s,
// retrying each deadlock. Two watches look every 500 ms — one reading the
// server's log, one its counter only — each look paired with the SQL; in
// the middle pgbench is stopped (SIGSTOP) for a state that stands still.
// Then each watch's deadlock entries against the server's count.
func (bb *busyBench) deadlockCase() {
	const clients, seconds = 300, 40
	script := filepath.Join(bb.b.TempDir(), "deadlock.sql")
	if err := os.WriteFile(script, []byte(deadlockScript), 0o644); err != nil {
		bb.b.Fatal(err)
	}
	cfg := bb.d.ConnConfig("pgbench")
	counter := func() int64 {
		var n int64
		if err := bb.admin.QueryRow(bb.ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
			bb.b.Fatal(err)
		}
		return n
	}
	withLog, withoutLog := bb.watch(true), bb.watch(false)
	before := counter()
	cmd := exec.Command("pgbench", "-n", "-f", script, "-c", strconv.Itoa(clients), "-j", "2", "-T", strconv.Itoa(seconds),
		"--max-tries=0", "-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, cfg.Database)
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+bb.d.Schema(), "PGAPPNAME=pgbench")
	out, err := os.CreateTemp(bb.b.TempDir(), "pgbench")
	if err != nil {
		bb.b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		bb.b.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGCONT)
			cmd.Process.Kill()
			<-finished
		}
	}()
	var live, paused []pair
	var slowest time.Duration
	start := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	stopped := false
loop:
	for {
		select {
		case err := <-finished:
			if err != nil {
				b, _ := os.ReadFile(out.Name())
				bb.b.Fatalf("pgbench: %v\n%s", err, b)
			}
			break loop
		case <-tick.C:
		}
		if !stopped && time.Since(start) > seconds/2*time.Second {
			// Stopped, the clients send nothing: the server breaks the
			// deadlocks standing, the winners keep their rows, idle in
			// their transactions, and the rest wait behind them.
			stopped = true
			cmd.Process.Signal(syscall.SIGSTOP)
			time.Sleep(3 * time.Second)
			paused = bb.pairs(withLog, 20)
			cmd.Process.Signal(syscall.SIGCONT)
			continue
		}
		var p pair
		var l *locks.Look
		if len(live)%2 == 0 {
			p.look, l = bb.look(withLog)
			p.sql = bb.sql()
		} else {
			p.sql = bb.sql()
			p.look, l = bb.look(withLog)
		}
		slowest = max(slowest, p.look)
		if l.Watched >= clients/2 {
			live = append(live, p)
		}
		bb.look(withoutLog)
	}
	// The server's count settles as the clients' backends end.
	last := counter()
	for settled := time.Now(); time.Since(settled) < 2*time.Second; time.Sleep(200 * time.Millisecond) {
		if n := counter(); n != last {
			last, settled = n, time.Now()
		}
	}
	for range 2 {
		bb.look(withLog)
		bb.look(withoutLog)
	}
	bb.report(fmt.Sprintf("(b) %d clients deadlocking on two rows, live", clients), live)
	bb.report(fmt.Sprintf("(b) %d clients, paused (SIGSTOP)", clients), paused)
	entries := func(w *locks.Watch) (all, seen int) {
		for _, ev := range w.History() {
			if ev.Kind == "deadlock" && ev.Seen {
				seen++
			}
		}
		return w.Made("deadlock"), seen
	}
	server := last - before
	a, s := entries(withLog)
	fmt.Printf("(b) deadlocks: the server counted %d; history entries with the log: %d (%.3f×; %d of the newest kept seen standing)", server, a, float64(a)/float64(server), s)
	a, s = entries(withoutLog)
	fmt.Printf("; with the counter only: %d (%.3f×; %d seen standing); slowest look %s against a 500ms interval\n",
		a, float64(a)/float64(server), s, slowest.Round(time.Millisecond))
}
