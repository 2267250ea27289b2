package ledger_test

import (
	"testing"

	"github.com/shopspring/decimal"

	"lockstep/ledger"
)

// BenchmarkRenderOrdered renders a whole ordered transfer's statements, as
// the runner does for every transfer.
func BenchmarkRenderOrdered(b *testing.B) {
	s, _ := ledger.Lookup("ordered")
	for b.Loop() {
		script := s.Script(ledger.Transfer{From: 3, To: 7, Amount: decimal.New(537, -2)}, "lockstep")
		_ = script.Record(1, []any{"42"})
		for i := range script.Statements {
			_ = script.SQL(i)
		}
	}
}
