package load_test

import (
	"context"
	"testing"
	"time"

	"lockstep/db/dbtest"
	"lockstep/ledger"
	"lockstep/load"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// BenchmarkOrdered8 is the bench's target combination: ordered, 8 workers,
// 1,000 accounts; it reports transfers per second.
func BenchmarkOrdered8(b *testing.B) {
	d := dbtest.Schema(b)
	s, _ := ledger.Lookup("ordered")
	for b.Loop() {
		r, err := load.Bench(context.Background(), load.BenchConfig{DB: d, Ledger: dbtest.Ledger(b), Strategy: s, Workers: 8, Accounts: 1000, Duration: 3 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Throughput, "transfers/s")
	}
}
