package tui

import (
	"cmp"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"go.uber.org/goleak"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

func TestMain(m *testing.M) {
	// teatest leaves a goroutine waiting for SIGINT for the life of the process.
	dbtest.Main(m, goleak.IgnoreTopFunction("github.com/charmbracelet/x/exp/teatest/v2.NewTestModel.func2"))
}

// masked shows every value that differs from run to run as dots, dashes
// or N, so that whole screens compare with golden files.
type masked struct{}

var longNumber = regexp.MustCompile(`\d{3,}`)

func (masked) Pid(int32) string                     { return "·····" }
func (masked) Time(time.Time) string                { return "--:--:--.---" }
func (masked) Age(time.Duration) string             { return "··" }
func (masked) RunID(db.RunID) string                { return "······" }
func (masked) DeadlockTimeout(time.Duration) string { return "··" }
func (masked) Text(s string) string                 { return longNumber.ReplaceAllString(s, "N") }

// testOptions is the lecture's set-up on a schema of the test's own. T2's
// shorter deadlock_timeout makes it the certain victim of a deadlock that T2
// closes; it is the server's default, 1 s, so that the observer, polling
// every 50 ms, sees the cycle stand before the server's check breaks it.
func testOptions(t *testing.T, strategy string) Options {
	t.Helper()
	s, err := ledger.Lookup(strategy)
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		DB:       dbtest.Schema(t),
		Server:   "test PostgreSQL",
		Volatile: masked{},
		Config: sim.Config{
			Ledger: dbtest.Ledger(t), Strategy: s, Sessions: 2, Setup: ledger.DefaultSetup(), Poll: 50 * time.Millisecond,
			Init: map[string][]string{
				"T1": {"SET deadlock_timeout = '1min'"},
				"T2": {"SET deadlock_timeout = '1s'"},
			},
		},
	}
}

// watch follows the messages a model takes, to tell when its screen shows a
// settled state: a running engine, no statement whose fate is unknown, a
// lock snapshot newer than the last event, and — with a ledger — the
// balances read since the last statement ended.
type watch struct {
	lastEvent, lastPoll, lastBooks, lastChange time.Time
}

// see takes note of msg, before the model gets it.
func (w *watch) see(m *Model, msg tea.Msg) {
	switch msg := msg.(type) {
	case engineReadyMsg:
		if msg.id == m.engID {
			// Whatever the new engine sends comes after this: its first
			// poll and balances count.
			*w = watch{}
		}
	case eventsMsg:
		if msg.id != m.engID {
			return
		}
		for _, ev := range msg.events {
			if ev.Gen < m.gen {
				continue // the model drops it too
			}
			switch ev.Kind {
			case sim.Polled:
				w.lastPoll = ev.Snapshot.Taken
			case sim.BooksRead:
				w.lastBooks = ev.Books.Taken
			case sim.Completed, sim.Error, sim.ResetDone:
				w.lastEvent, w.lastChange = ev.Time, ev.Time
			default:
				w.lastEvent = ev.Time
			}
		}
	}
}

func (w *watch) quiet(m *Model) bool {
	if m.eng == nil || m.starting || !w.lastPoll.After(w.lastEvent) {
		return false
	}
	if m.cfg.HasLedger() && !w.lastBooks.After(w.lastChange) {
		return false
	}
	for _, s := range m.live.sessions {
		if s.State == sim.Running {
			return false
		}
	}
	return true
}

// driver runs a model without a program: it calls Update itself and runs
// commands in goroutines, feeding their messages back in order of arrival.
type driver struct {
	t     testing.TB
	m     *Model
	w     watch
	msgs  chan tea.Msg
	done  chan struct{} // closed when the test ends: commands still running drop their message
	quit  bool
	width int
	// after, when set, sees each message once the model has taken it.
	after func(tea.Msg)
	// guard is how long until waits before it calls the model hung (30 s
	// when zero).
	guard time.Duration
}

func newTestDriver(t testing.TB, m *Model) *driver {
	d := &driver{t: t, m: m, msgs: make(chan tea.Msg, 64), done: make(chan struct{})}
	t.Cleanup(func() { close(d.done) })
	return d
}

// start shows the model at width×height and waits until its engine is ready.
func (d *driver) start(width, height int) {
	d.t.Helper()
	d.send(tea.WindowSizeMsg{Width: width, Height: height})
	d.run(d.m.Init())
	d.until("the engine is ready", d.quiet)
}

func newDriver(t *testing.T, strategy string) *driver {
	t.Helper()
	m := New(context.Background(), testOptions(t, strategy))
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(120, 40)
	return d
}

func (d *driver) quiet() bool { return d.w.quiet(d.m) }

func (d *driver) run(cmd tea.Cmd) {
	if cmd != nil {
		go func() {
			msg := cmd()
			select {
			case d.msgs <- msg:
			case <-d.done:
			}
		}()
	}
}

func (d *driver) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case tea.BatchMsg:
		for _, c := range msg {
			d.run(c)
		}
	case tea.QuitMsg:
		d.quit = true
	case nil:
	default:
		d.w.see(d.m, msg)
		_, cmd := d.m.Update(msg)
		if d.after != nil {
			d.after(msg)
		}
		d.run(cmd)
	}
}

func (d *driver) key(keys ...string) {
	for _, k := range keys {
		d.send(keyMsg(k))
	}
}

// namedKeys are the keys the tests press by name.
var namedKeys = map[string]tea.KeyPressMsg{
	"space":     {Code: tea.KeySpace, Text: " "},
	"enter":     {Code: tea.KeyEnter},
	"esc":       {Code: tea.KeyEscape},
	"tab":       {Code: tea.KeyTab},
	"shift+tab": {Code: tea.KeyTab, Mod: tea.ModShift},
	"left":      {Code: tea.KeyLeft},
	"right":     {Code: tea.KeyRight},
	"up":        {Code: tea.KeyUp},
	"down":      {Code: tea.KeyDown},
	"home":      {Code: tea.KeyHome},
	"end":       {Code: tea.KeyEnd},
	"pgup":      {Code: tea.KeyPgUp},
	"pgdown":    {Code: tea.KeyPgDown},
	"ctrl+c":    {Code: 'c', Mod: tea.ModCtrl},
}

// press sends each key to m in turn and returns the last key's command.
func press(m tea.Model, keys ...string) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(keyMsg(k))
	}
	return cmd
}

func keyMsg(k string) tea.KeyPressMsg {
	if msg, ok := namedKeys[k]; ok {
		return msg
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

// until feeds messages to the model until cond holds; the guard is against
// a hang, not a timing assertion.
func (d *driver) until(what string, cond func() bool) {
	d.t.Helper()
	guard := time.After(cmp.Or(d.guard, 30*time.Second))
	for !cond() {
		select {
		case msg := <-d.msgs:
			d.send(msg)
		case <-guard:
			d.t.Fatalf("never: %s\nscreen:\n%s", what, d.screen())
		}
	}
}

func (d *driver) screen() string { return stripped(d.m.View().Content) }

// step steps session i (by key) and waits until its statement finished or waits.
func (d *driver) step(k string, i int) {
	d.t.Helper()
	before := d.m.eng.Sessions()[i].Next
	d.key(k)
	d.until("session settles", func() bool {
		s := d.m.live.sessions[i]
		return (s.Next > before || s.State == sim.Waiting || s.LastErr != nil) && d.quiet()
	})
}

func stripped(s string) string {
	lines := strings.Split(ansi.Strip(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// victim is the session the server chose as the last deadlock's victim.
func victim(m *Model) string {
	if m.live.broken == nil {
		return ""
	}
	return m.live.broken.victim
}

// coupledDeadlock opens the coupled scenario at width×height and steps it,
// by hand, into its distributed deadlock: T1@B, T2@A, T1@A (waits), T2@B
// (waits) — the spec's permutation.
func coupledDeadlock(t *testing.T, width, height int) *driver {
	t.Helper()
	sc, err := scenario.LoadBuiltin("coupled", "")
	if err != nil {
		t.Fatal(err)
	}
	a := dbtest.SchemaOn(t, dbtest.TwoPhase(t))
	opts := testOptions(t, "for-update")
	opts.DB = a
	opts.Transfers = opts.Config
	opts.Config = sim.Config{Scenario: sc, ScenarioName: "coupled", Sessions: len(sc.Sessions), Poll: 50 * time.Millisecond,
		Ledger: dbtest.Ledger(t), Setup: ledger.DefaultSetup(), DB2: dbtest.Second(t, a, nil)}
	opts.ScenarioSummary = "two databases kept in sync"
	m := New(context.Background(), opts)
	t.Cleanup(m.Close)
	d := newTestDriver(t, m)
	d.start(width, height)
	for _, k := range []string{"2", "3", "1", "4"} {
		i := int(k[0] - '1')
		d.key(k)
		d.until("the step settles", func() bool {
			return d.quiet() && (m.live.sessions[i].Next == 1 || m.live.sessions[i].State == sim.Waiting)
		})
	}
	d.until("the distributed deadlock", func() bool { return m.live.cycle != nil && d.quiet() })
	return d
}
