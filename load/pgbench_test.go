package load

import (
	"errors"
	"testing"
)

// pgbench prints no rate when it completed no transaction: that is a round
// to leave out, not a failure of the comparison; a report with neither is.
func TestPgbenchTPS(t *testing.T) {
	done := `duration: 1 s
number of transactions actually processed: 2
number of failed transactions: 0 (0.000%)
latency average = 3512.706 ms
initial connection time = 6.345 ms
tps = 0.569362 (without initial connection time)
`
	if tps, err := pgbenchTPS(done); err != nil || tps != 0.569362 {
		t.Errorf("a report with a rate: %v, %v", tps, err)
	}
	idle := `duration: 1 s
number of transactions actually processed: 0
number of failed transactions: 0 (NaN%)
`
	if _, err := pgbenchTPS(idle); !errors.Is(err, ErrPgbenchIdle) {
		t.Errorf("a report of no transaction: %v, want ErrPgbenchIdle", err)
	}
	if _, err := pgbenchTPS("pgbench: error: something else\n"); err == nil || errors.Is(err, ErrPgbenchIdle) {
		t.Errorf("a report with no rate and no count: %v, want another error", err)
	}
}
