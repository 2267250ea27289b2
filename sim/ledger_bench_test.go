package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/sim"
)

// BenchmarkStepBalances is what the interface waits for after every step:
// the balances it shows and the books, read by the engine, on a ledger of 2
// and of 1,000,000 accounts, with the lecture's two transfers half done.
func BenchmarkStepBalances(b *testing.B) {
	ctx := context.Background()
	s, _ := ledger.Lookup("for-update")
	for _, n := range []int{2, 1_000_000} {
		eng, err := sim.New(ctx, sim.Config{DB: dbtest.Schema(b), Ledger: dbtest.Ledger(b), Strategy: s, Sessions: 2,
			Setup: ledger.Setup{Accounts: n, Balance: decimal.RequireFromString("100.00")}, Poll: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		for i := range 2 {
			for range 3 { // BEGIN, the transfer, its first entry
				if err := eng.Step(i); err != nil {
					b.Fatal(err)
				}
				for eng.Sessions()[i].State.Busy() {
					<-eng.Events()
				}
			}
		}
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			var bal sim.Balances
			for b.Loop() {
				bal = eng.ReadBalances(ctx)
			}
			if bal.Err != nil || bal.Books == nil || !bal.Books.OK() || len(bal.Accounts) == 0 || len(bal.Accounts) > sim.ShownAccounts+2 {
				b.Fatalf("balances: %+v", bal)
			}
		})
		if err := eng.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
