package locks_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockCount is a poll's anchor: `SELECT count(*) FROM pg_locks` on the same
// server in the same state, the least any look at the lock table costs. A
// benchmark times it between its own iterations (the timer stopped) and
// reports the ratio of the two medians: what a poll costs beyond reading
// the lock table at all.
type lockCount struct {
	c    *pgx.Conn
	took []time.Duration
}

// time runs the anchor once, the benchmark's timer stopped.
func (a *lockCount) time(b *testing.B) {
	b.StopTimer()
	defer b.StartTimer()
	var n int64
	start := time.Now()
	if err := a.c.QueryRow(context.Background(), "SELECT count(*) FROM pg_locks").Scan(&n); err != nil {
		b.Fatal(err)
	}
	a.took = append(a.took, time.Since(start))
}

// report gives the poll's median, the anchor's and their ratio.
func (a *lockCount) report(b *testing.B, took []time.Duration) {
	if len(took) == 0 || len(a.took) == 0 {
		return
	}
	p, c := median(took), median(a.took)
	b.ReportMetric(float64(p.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(c.Microseconds())/1000, "count-pg_locks-ms")
	b.ReportMetric(float64(p)/float64(c), "x-count-pg_locks")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
