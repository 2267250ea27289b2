package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/locks"
	"lockstep/record"

	tea "charm.land/bubbletea/v2"
)

// watchApp is an application of two sessions: a holds a row, idle in its
// transaction; b waits for it.
type watchApp struct {
	d      *db.Database
	prefix string
	a, b   *pgx.Conn
	bDone  chan error
}

func newWatchApp(t *testing.T) *watchApp {
	t.Helper()
	ctx := context.Background()
	w := &watchApp{d: dbtest.Schema(t), prefix: "tuiwatch_" + string(db.NewRunID()), bDone: make(chan error, 1)}
	conn := func(n string) *pgx.Conn {
		c, err := pgx.ConnectConfig(ctx, w.d.ConnConfig(w.prefix+"_"+n))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	w.a, w.b = conn("a"), conn("b")
	s := w.d.Schema()
	if _, err := w.a.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+s+"; CREATE TABLE "+s+".w (id int PRIMARY KEY, v int); INSERT INTO "+s+".w VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.a.Exec(ctx, "BEGIN; UPDATE w SET v = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, err := w.b.Exec(ctx, "UPDATE w SET v = 2 WHERE id = 1")
		w.bDone <- err
	}()
	// Before the connections close: b's statement ends when a's transaction does.
	t.Cleanup(func() {
		w.a.Exec(context.Background(), "ROLLBACK")
		<-finished
	})
	return w
}

// model is the watch view over the app's sessions, sized w×h.
func (wa *watchApp) model(t *testing.T, readOnly bool, w, h int) *watchModel {
	t.Helper()
	ctx := context.Background()
	conn, err := wa.d.Connect(ctx, "test-watch")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	lw, err := locks.NewWatch(ctx, conn, locks.WatchOptions{Filter: locks.WatchFilter{App: wa.prefix + "_%"}, ReadOnly: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	m := newWatchModel(ctx, WatchOptions{Watch: lw, Server: "test", Filter: wa.prefix})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

// pollUntil looks again until cond holds; the guard is against a hang.
func pollUntil(t *testing.T, m *watchModel, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); {
		m.polling = false
		m.Update(m.poll()())
		if time.Now().After(deadline) {
			t.Fatalf("never: %s\n%s", what, stripped(m.View().Content))
		}
	}
}

// The screen answers "why is b waiting?" at every size without a key (the
// selection follows the first waiter):
// the blocker idle in its transaction, b under it with its statement, and why.
func TestWatchScreen(t *testing.T) {
	t.Parallel()
	wa := newWatchApp(t)
	for _, size := range [][2]int{{120, 40}, {100, 30}, {80, 24}} {
		m := wa.model(t, true, size[0], size[1])
		pollUntil(t, m, "b waiting", func() bool { return m.look != nil && len(m.look.Tree.Roots) == 1 })
		m.lk.silent = nil
		screen := stripped(m.View().Content)
		noSilentCuts(t, m.lk.silent, screen)
		if !regexp.MustCompile(`waits for it ⏳ [0-9.]+(ms|s|m)`).MatchString(screen) {
			t.Errorf("%dx%d: the waiter should say how long it has waited:\n%s", size[0], size[1], screen)
		}
		for _, want := range []string{"idle in transaction", "UPDATE w SET v = 1 WHERE id = 1", "UPDATE w SET v = 2 WHERE id = 1",
			"waits for it", "Why " + wa.prefix + "_b", "wants ShareLock on", "FOR NO KEY UPDATE"} {
			if !strings.Contains(screen, want) {
				t.Errorf("%dx%d: %q missing:\n%s", size[0], size[1], want, screen)
			}
		}
		if lines := strings.Split(screen, "\n"); len(lines) > size[1] {
			t.Errorf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
	}
}

// Cancel asks first, naming pid, user and statement; n sends nothing, y
// cancels; a read-only watch refuses.
func TestWatchCancelNeedsConfirmation(t *testing.T) {
	t.Parallel()
	wa := newWatchApp(t)
	ro := wa.model(t, true, 100, 30)
	pollUntil(t, ro, "b waiting", func() bool { return ro.look != nil && len(ro.look.Tree.Roots) == 1 })
	press(ro, "down", "k")
	if ro.ask != nil || !strings.Contains(ro.status, "read-only") {
		t.Fatalf("read-only: asked %v, status %q", ro.ask, ro.status)
	}
	// A read-only watch says so in its header and offers no k or T.
	if s := stripped(ro.View().Content); !strings.Contains(headerOf(s), "READ-ONLY") || strings.Contains(lastLine(s), "k cancel") ||
		strings.Contains(lastLine(s), "T terminate") {
		t.Errorf("read-only: the header should say so and the footer offer no signal:\n%s", s)
	}

	m := wa.model(t, false, 100, 30)
	pollUntil(t, m, "b waiting", func() bool { return m.look != nil && len(m.look.Tree.Roots) == 1 })
	press(m, "down", "k")
	bPid := wa.b.PgConn().PID()
	screen := stripped(m.View().Content)
	want := fmt.Sprintf("Cancel the statement of pid %d — user %s, %s_b %d — running: UPDATE w SET v = 2 WHERE id = 1",
		bPid, wa.d.User(), wa.prefix, bPid)
	if m.ask == nil || !strings.Contains(strings.ReplaceAll(screen, "\n", " "), want) {
		t.Fatalf("no confirmation naming %q:\n%s", want, screen)
	}
	press(m, "n")
	if m.ask != nil || m.status != "nothing sent" {
		t.Fatalf("after n: %v %q", m.ask, m.status)
	}
	// k on the blocker, idle in its transaction, says it runs nothing to
	// cancel and offers T.
	press(m, "up", "k")
	if m.ask != nil || !strings.Contains(m.status, "runs no statement to cancel; T ends its session") {
		t.Errorf("k on an idle blocker: asked %v, status %q", m.ask, m.status)
	}
	press(m, "down")
	pollUntil(t, m, "b still waiting", func() bool { return len(m.look.Tree.Roots) == 1 })
	cmd := press(m, "k", "y")
	if cmd == nil {
		t.Fatal("y sent nothing")
	}
	m.Update(cmd())
	if !strings.Contains(m.status, fmt.Sprintf("cancelled the statement of pid %d", bPid)) {
		t.Errorf("status %q", m.status)
	}
	var pgErr *pgconn.PgError
	if err := <-wa.bDone; !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.QueryCanceled {
		t.Errorf("b after the cancel: %v", err)
	}
}

// A recorded watch replays in the watch view, look by look, with no
// database: the look before the wait, then the wait explained.
func TestWatchReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wa := newWatchApp(t)
	live := wa.model(t, true, 100, 30)
	var buf bytes.Buffer
	rec, err := record.NewWriter(&buf, record.Header{Command: "watch", Server: "test", Run: record.Run{Name: "watch", Summary: wa.prefix}})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, live, "b waiting", func() bool { return live.look != nil && len(live.look.Tree.Roots) == 1 })
	before := *live.look
	before.Tree, before.Snapshot = locks.Tree{}, &locks.Snapshot{Taken: live.look.Taken.Add(-time.Second)}
	before.Taken = before.Snapshot.Taken
	for _, l := range []*locks.Look{&before, live.look} {
		if err := rec.Look(l); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	recording, err := record.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	model, err := NewWatchReplay(ctx, recording, "")
	if err != nil {
		t.Fatal(err)
	}
	m := model.(*watchModel)
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	m.Update(m.poll()())
	if s := stripped(m.View().Content); !strings.Contains(s, "REPLAY 1/2") || !strings.Contains(s, "No session waits") {
		t.Fatalf("first look:\n%s", s)
	}
	press(m, "right")
	s := stripped(m.View().Content)
	if !strings.Contains(s, "REPLAY 2/2") || !strings.Contains(s, "UPDATE w SET v = 2 WHERE id = 1") || !strings.Contains(s, "Why "+wa.prefix+"_b") {
		t.Errorf("second look:\n%s", s)
	}
	press(m, "k")
	if !strings.Contains(m.status, "signals nothing") {
		t.Errorf("k in a replay: %q", m.status)
	}
	press(m, "left")
	if m.rp.tl.pos != 0 {
		t.Errorf("← went to look %d", m.rp.tl.pos+1)
	}
}
