package ledger_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
)

// BenchmarkDependencyWalk measures what the look at pg_depend before a drop
// costs, against its anchor in the same run: a reset of the ledger, which
// includes its own walk over the ledger's tables. The two alternate, and
// the ratio is of their medians (walk/reset).
//
//	go test ./ledger -run '^$' -bench DependencyWalk -benchtime 40x
func BenchmarkDependencyWalk(b *testing.B) {
	ctx := context.Background()
	d := dbtest.Schema(b)
	conn, err := d.Connect(ctx, db.AppName("bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	l := ledger.New()
	if _, err := l.Reset(ctx, conn, d.Schema(), ledger.DefaultSetup()); err != nil {
		b.Fatal(err)
	}
	var resets, walks []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := l.Reset(ctx, conn, d.Schema(), ledger.DefaultSetup()); err != nil {
			b.Fatal(err)
		}
		resets = append(resets, time.Since(start))
		start = time.Now()
		if _, err := ledger.Casualties(ctx, conn, d.Schema()); err != nil {
			b.Fatal(err)
		}
		walks = append(walks, time.Since(start))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.ReportMetric(float64(med(walks).Microseconds())/1000, "walk-ms")
	b.ReportMetric(float64(med(resets).Microseconds())/1000, "reset-ms")
	b.ReportMetric(float64(med(walks))/float64(med(resets)), "walk/reset")
}
