package tui

import (
	"context"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"

	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/pool"
)

// TestPoolView runs the pool scenario in its view: the exhausted pool is
// kept on screen, and f's first fix completes every task.
func TestPoolView(t *testing.T) {
	t.Parallel()
	setup := ledger.DefaultSetup()
	setup.Accounts = 8
	a := dbtest.Fresh(t, setup)
	b := dbtest.Second(t, a, &setup)
	m := newPoolModel(context.Background(), PoolOptions{Config: pool.Config{A: a, B: b, Size: 4}, Server: "test PostgreSQL"})
	defer m.stop()
	m.Update(keyMsg("x"))
	if !strings.Contains(m.status, "f, r, +/- start a run") {
		t.Errorf("a key the view does not take: status %q", m.status)
	}
	// settle feeds the run's messages until it ends; the batches of runs
	// replaced since are dropped, as the program drops them.
	settle := func(cmd tea.Cmd) {
		for m.running {
			_, cmd = m.Update(cmd())
		}
	}
	settle(m.Init())
	s := stripped(m.View().Content)
	if !strings.Contains(s, "POOL EXHAUSTED") || !strings.Contains(s, "4/4 in use · 0 idle · 0 connecting · 4 waiting acquirers") ||
		!strings.Contains(s, "Tasks — at the moment it hung") || !strings.Contains(s, "⏳ T1: holds A, waiting for a connection for B") {
		t.Fatalf("exhausted pool:\n%s", s)
	}
	// Keys pressed before the last run ended each start a run; the event
	// loop never waits for the one it replaces, and only the last one's
	// messages count.
	m.Update(keyMsg("f"))
	m.Update(keyMsg("+"))
	_, cmd := m.Update(keyMsg("-"))
	settle(cmd)
	if s := stripped(m.View().Content); !strings.Contains(s, "fix up-front") || !strings.Contains(s, "4 of 4 tasks committed") {
		t.Fatalf("after f + -:\n%s", s)
	}
	for _, size := range []int{80, 100, 120} {
		m.Update(tea.WindowSizeMsg{Width: size, Height: size * 3 / 10})
		lines := strings.Split(stripped(m.View().Content), "\n")
		if last := lines[len(lines)-1]; !strings.HasSuffix(last, "? help · q quit") {
			t.Errorf("at width %d the footer reads %q", size, last)
		}
	}
}
