package ledger

import (
	"testing"

	"github.com/shopspring/decimal"
)

// money's fast path must print what decimal's own StringFixed(2) prints.
func TestMoneyMatchesStringFixed(t *testing.T) {
	for _, s := range []string{
		"0", "0.00", "-0.05", "0.5", "-0.5", "1", "-1", "10.00", "537e-2", "-537e-2",
		"123456789012.34", "-99999999999999.99", "1e3", "1.005", "-2.675", "0.001",
		"12345678901234567890.12", "5e-1", "-0.10",
	} {
		d := decimal.RequireFromString(s)
		if got, want := money(d), d.StringFixed(2); got != want {
			t.Errorf("money(%s) = %q, want %q", s, got, want)
		}
	}
	// Amounts built as the strategies build them.
	for c := int64(-100_000); c <= 100_000; c += 37 {
		d := decimal.New(c, -2)
		if got, want := money(d), d.StringFixed(2); got != want {
			t.Fatalf("money(%s) = %q, want %q", d, got, want)
		}
	}
}
