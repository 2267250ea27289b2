package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/sim"
)

// BenchmarkPollServerCPU is what the interface's observer costs the server
// (poll 200 ms, its default) while 0, 10,000 or 50,000 locks are held by
// other sessions: idle (no step for 4 s), and stepping (a step every
// 500 ms). It reports the server's CPU over the window, in percent of one
// core, and the poll interval in force. Run it with -benchtime 1x; it
// starts a throwaway server of its own, whose processes it reads in /proc.
func BenchmarkPollServerCPU(b *testing.B) {
	ctx := context.Background()
	// A server of its own, whose lock table holds 50,000 locks (its size is
	// max_locks_per_transaction × max_connections).
	d, err := db.Open(ctx, db.Options{Server: db.ServerOptions{MaxConnections: 1000},
		LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	srv := d.Server()
	led := dbtest.Ledger(b)
	s, _ := ledger.Lookup("ordered")
	holders := make([]*pgx.Conn, 10)
	for i := range holders {
		c, err := d.Connect(ctx, db.AppName(fmt.Sprintf("bench-holder-%d", i)))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		holders[i] = c
	}
	held := 0
	for _, foreign := range []int{0, 10_000, 50_000} {
		for i, c := range holders {
			from, to := held+i*(foreign-held)/len(holders), held+(i+1)*(foreign-held)/len(holders)
			if to > from {
				if _, err := c.Exec(ctx, fmt.Sprintf("SELECT count(pg_advisory_lock(%d, k)) FROM generate_series(%d, %d) k", 7000+i, from, to-1)); err != nil {
					b.Fatal(err)
				}
			}
		}
		held = foreign
		for _, mode := range []string{"idle", "stepping"} {
			b.Run(fmt.Sprintf("foreign=%d/%s", foreign, mode), func(b *testing.B) {
				run, err := d.WithSchema(fmt.Sprintf("bench_cpu_%d_%s", foreign, mode))
				if err != nil {
					b.Fatal(err)
				}
				eng, err := sim.New(ctx, sim.Config{DB: run, Ledger: led, Strategy: s, Sessions: 2,
					Setup: ledger.DefaultSetup(), Poll: sim.DefaultPoll, Books: true})
				if err != nil {
					b.Fatal(err)
				}
				defer eng.Close(ctx)
				go func() {
					for range eng.Events() {
					}
				}()
				time.Sleep(time.Second) // the start's polls and reads are not the window's
				for b.Loop() {
					cpu0, start := dbtest.ServerCPU(srv.Pid()), time.Now()
					for k := range 8 {
						if mode == "stepping" && k%2 == 0 {
							if err := eng.Step(k / 2 % 2); err != nil {
								b.Fatal(err)
							}
						}
						time.Sleep(500 * time.Millisecond)
					}
					b.ReportMetric(100*(dbtest.ServerCPU(srv.Pid())-cpu0).Seconds()/time.Since(start).Seconds(), "server-cpu-%")
				}
				every, _ := eng.PollInterval()
				b.ReportMetric(float64(every.Milliseconds()), "poll-ms")
			})
		}
	}
}
