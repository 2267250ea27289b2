package tui

import (
	"context"
	"strings"
	"testing"

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
	m.Update(keyMsg("x")) // no key but f, r, +, - and q does anything
	settle := func(cmd func() any) {
		for m.running {
			msg := cmd()
			m.Update(msg)
		}
	}
	first := m.Init()
	settle(func() any { return first() })
	s := stripped(m.View().Content)
	if !strings.Contains(s, "POOL EXHAUSTED") || !strings.Contains(s, "4/4 in use · 0 idle · 0 connecting · 4 waiting acquirers") ||
		!strings.Contains(s, "Tasks — at the moment it hung\n T1: holds A, waiting for a connection for B\n T2: holds A, waiting") {
		t.Fatalf("exhausted pool:\n%s", s)
	}
	_, cmd := m.Update(keyMsg("f"))
	settle(func() any { return cmd() })
	if s := stripped(m.View().Content); !strings.Contains(s, "fix up-front") || !strings.Contains(s, "4 of 4 tasks committed") {
		t.Fatalf("after f:\n%s", s)
	}
}
