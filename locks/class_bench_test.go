package locks_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"lockstep/dbtest"
)

// BenchmarkClass30 is a class on one server: 30 runs of 3 sessions, each
// session inside a transfer holding its locks, and each run's observer
// polling every 200 ms, as lockstep does. An iteration is one 200 ms beat
// in which every observer polls once, at its own moment of the beat. It
// reports each poll's p50 and p99 and, on the throwaway server, the
// server's CPU over the beats, in percent of one core.
func BenchmarkClass30(b *testing.B) {
	const runs, beat = 30, 200 * time.Millisecond
	ctx := context.Background()
	fixtures := make([]*fixture, runs)
	for r := range runs {
		f := newFixture(b, 3, 6)
		for i := range 3 {
			f.exec(b, i, "BEGIN")
			f.exec(b, i, fmt.Sprintf("INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (%d, %d, 1)", 2*i+1, 2*i+2))
			f.exec(b, i, fmt.Sprintf("UPDATE accounts SET balance = balance - 1 WHERE id = %d", 2*i+1))
		}
		fixtures[r] = f
	}
	server := 0
	if srv := dbtest.DB(b).Server(); srv != nil && os.Getenv("DATABASE_URL") == "" {
		server = srv.Pid()
	}
	var (
		mu   sync.Mutex
		took []time.Duration
	)
	cpu0, start := dbtest.ServerCPU(server), time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		for r, f := range fixtures {
			wg.Go(func() {
				time.Sleep(beat * time.Duration(r) / runs) // spread over the beat
				t0 := time.Now()
				if _, err := f.obs.Poll(ctx); err != nil {
					b.Error(err)
				}
				d := time.Since(t0)
				mu.Lock()
				took = append(took, d)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	wall := time.Since(start)
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
	if server != 0 {
		b.ReportMetric(100*(dbtest.ServerCPU(server)-cpu0).Seconds()/wall.Seconds(), "server-cpu-%")
	}
}
