package locks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/locks"
)

// BenchmarkWatchPoll is one poll of lockstep watch on a busy server: 1,000
// client backends, of which 50 hold between them 0, 10,000 or 50,000
// advisory locks (the "foreign" locks: no business of the watch), and an
// application of three sessions the watch chooses by name — with no wait
// among them (the watch reads pg_stat_activity only) and with a chain of
// two waits (it reads pg_locks too, for the chain's backends). It runs on
// a throwaway server of its own, with max_connections 1,100.
func BenchmarkWatchPoll(b *testing.B) {
	const backends, holders = 1000, 50
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{
		Server:    db.ServerOptions{MaxConnections: backends + 100},
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	conns := make([]*pgx.Conn, backends)
	var wg sync.WaitGroup
	errs := make(chan error, backends)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < backends; i += 8 {
				name := fmt.Sprintf("idle_%d", i)
				switch {
				case i < holders:
					name = fmt.Sprintf("holder_%d", i)
				case i < holders+3:
					name = fmt.Sprintf("benchapp_%d", i-holders)
				}
				c, err := d.Connect(ctx, name)
				if err != nil {
					errs <- err
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(ctx)
			}
		}
	}()
	exec := func(c *pgx.Conn, sql string) {
		if _, err := c.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	app := conns[holders : holders+3]
	exec(app[0], "CREATE SCHEMA IF NOT EXISTS "+d.Schema()+"; CREATE TABLE w (id int PRIMARY KEY, v int); INSERT INTO w VALUES (1, 0), (2, 0)")
	watcher, err := d.Connect(ctx, "bench-watch")
	if err != nil {
		b.Fatal(err)
	}
	defer watcher.Close(ctx)
	w, err := locks.NewWatch(ctx, watcher, locks.WatchOptions{Filter: locks.WatchFilter{App: "benchapp_%"}})
	if err != nil {
		b.Fatal(err)
	}
	anchorConn, err := d.Connect(ctx, "bench-anchor")
	if err != nil {
		b.Fatal(err)
	}
	defer anchorConn.Close(ctx)
	held := 0
	for _, foreign := range []int{0, 10000, 50000} {
		// Each holder takes its share of session-level advisory locks.
		for h := range holders {
			from, to := held+h*(foreign-held)/holders, held+(h+1)*(foreign-held)/holders
			if to > from {
				exec(conns[h], fmt.Sprintf("SELECT count(pg_advisory_lock(%d, k)) FROM generate_series(%d, %d) k", h, from, to-1))
			}
		}
		held = foreign
		for _, waiting := range []bool{false, true} {
			done := make(chan error, 2)
			if waiting {
				exec(app[0], "BEGIN; UPDATE w SET v = 1 WHERE id = 1")
				exec(app[1], "BEGIN; UPDATE w SET v = 1 WHERE id = 2")
				go func() { _, err := app[1].Exec(ctx, "UPDATE w SET v = 2 WHERE id = 1"); done <- err }()
				go func() { _, err := app[2].Exec(ctx, "UPDATE w SET v = 3 WHERE id = 2"); done <- err }()
				for {
					look, err := w.Poll(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if look.Tree.Sessions() == 3 {
						break
					}
				}
			}
			b.Run(fmt.Sprintf("foreign=%d/waits=%v", foreign, waiting), func(b *testing.B) {
				var look *locks.Look
				anchor := &lockCount{c: anchorConn}
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					if look, err = w.Poll(ctx); err != nil {
						b.Fatal(err)
					}
					took = append(took, time.Since(start))
					anchor.time(b)
				}
				anchor.report(b, took)
				if look.ReadLocks != waiting || (waiting && look.Tree.Sessions() != 3) || look.Watched != 3 {
					b.Fatalf("the poll did not see the app as set up: %+v", look)
				}
			})
			if waiting {
				exec(app[0], "COMMIT")
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				exec(app[1], "COMMIT")
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
