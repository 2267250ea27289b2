package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"

	"lockstep/pool"
)

// PoolOptions set up the pool-exhaustion view.
type PoolOptions struct {
	Config pool.Config
	// Prepare runs before every run with its config: it resets both
	// databases' ledgers.
	Prepare func(ctx context.Context, cfg pool.Config) error
	Server  string
	// Theme is default or projector.
	Theme string
}

// RunPool shows the pool-exhaustion scenario live: the pools' own
// statistics, every task's phase, the hang and its end; f switches fixes.
func RunPool(ctx context.Context, opts PoolOptions, progOpts ...tea.ProgramOption) error {
	m := newPoolModel(ctx, opts)
	defer m.stop()
	return runProgram(ctx, m, progOpts)
}

// poolRun is one run of the scenario, in a goroutine of its own: its
// events come on events, which it closes when it has cleaned up.
type poolRun struct {
	id     int
	cancel context.CancelFunc
	done   chan struct{} // closed once the run has rolled back and closed its pools
	events chan poolMsg
}

// poolModel is the view; each run of the scenario gets a number, so that
// messages from a run replaced by f or r are dropped.
type poolModel struct {
	ctx   context.Context
	opts  PoolOptions
	lk    *look
	bar   progress.Model
	w, h  int
	table actions
	holders
	status string
	run    *poolRun
	logs   scroller

	last    *pool.Event
	hung    *pool.Event // the state at the moment of exhaustion, kept on screen
	log     []string
	result  *pool.Result
	err     error
	running bool
}

// poolMsg is what a run's goroutine sends: an event, and last its end.
type poolMsg struct {
	ev   *pool.Event
	res  pool.Result
	err  error
	done bool
}

// poolBatchMsg is the messages of run that arrived since the last one.
type poolBatchMsg struct {
	run    int
	msgs   []poolMsg
	closed bool
}

func newPoolModel(ctx context.Context, opts PoolOptions) *poolModel {
	m := &poolModel{ctx: ctx, opts: opts, lk: &look{st: newStyles(opts.Theme, true), vol: asIs{}}, w: 120, h: 40,
		bar: progress.New(progress.WithWidth(24), progress.WithoutPercentage())}
	m.help.look = m.lk
	m.logs.follow = true
	m.table = m.newTable()
	return m
}

func (m *poolModel) newTable() actions {
	cfg := &m.opts.Config
	return actions{
		{Binding: key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "next fix")), bar: 1, group: "The run",
			long: "run again with the next fix: none, up-front, pool-per-database, semaphore",
			run: func(tea.KeyPressMsg) tea.Cmd {
				fixes := pool.Fixes()
				cfg.Fix = fixes[(int(cfg.Fix)+1)%len(fixes)]
				return m.start()
			}},
		{Binding: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "run again")), bar: 2, group: "The run",
			run: func(tea.KeyPressMsg) tea.Cmd { return m.start() }},
		{Binding: key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "pool size")), bar: 3, group: "The run",
			long: fmt.Sprintf("a bigger or smaller pool (2 to %d), and as many tasks: the run starts again", pool.MaxSize),
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				switch {
				case msg.String() == "+" && cfg.Size < pool.MaxSize:
					cfg.Size++
				case msg.String() == "-" && cfg.Size > 2:
					cfg.Size--
				default:
					m.status = fmt.Sprintf("the pool's size stays between 2 and %d", pool.MaxSize)
					return nil
				}
				return m.start()
			}},
		{Binding: key.NewBinding(key.WithKeys("pgup", "pgdown", "home", "end"), key.WithHelp("pgup/pgdown", "scroll log")), group: "Look",
			run: func(msg tea.KeyPressMsg) tea.Cmd { m.logs.Update(msg, 10); return nil }},
		{Binding: helpKey, group: "Look", run: func(tea.KeyPressMsg) tea.Cmd {
			m.openHelp("Keys — the pool-exhaustion scenario", m.table)
			return nil
		}},
		{Binding: quitKey, group: "Look", run: func(tea.KeyPressMsg) tea.Cmd { return tea.Quit }},
	}
}

func (m *poolModel) Init() tea.Cmd { return m.start() }

// start begins a run of the current config. The run before it is
// cancelled, and the new run's goroutine — not the event loop — waits for
// it to clean up before resetting the ledgers.
func (m *poolModel) start() tea.Cmd {
	prev := m.run
	if prev != nil {
		prev.cancel()
	}
	id := 1
	if prev != nil {
		id = prev.id + 1
	}
	rctx, cancel := context.WithCancel(m.ctx)
	r := &poolRun{id: id, cancel: cancel, done: make(chan struct{}), events: make(chan poolMsg, 256)}
	m.run = r
	m.last, m.hung, m.log, m.result, m.err, m.running, m.status = nil, nil, nil, nil, nil, true, ""
	m.logs = scroller{follow: true}
	cfg, prepare := m.opts.Config, m.opts.Prepare
	go func() {
		defer close(r.done)
		defer close(r.events) // a listen still waiting on it returns
		if prev != nil {
			<-prev.done
		}
		send := func(pm poolMsg) {
			select {
			case r.events <- pm:
			case <-rctx.Done():
			}
		}
		var res pool.Result
		var err error
		if rctx.Err() == nil && prepare != nil {
			err = prepare(rctx, cfg)
		}
		if rctx.Err() == nil && err == nil {
			res, err = pool.Run(rctx, cfg, func(ev pool.Event) { send(poolMsg{ev: &ev}) })
		}
		send(poolMsg{res: res, err: err, done: true})
	}()
	return m.next()
}

// next reads the current run's next messages.
func (m *poolModel) next() tea.Cmd {
	r := m.run
	return listen(r.events, func(msgs []poolMsg, closed bool) tea.Msg {
		return poolBatchMsg{run: r.id, msgs: msgs, closed: closed}
	})
}

// stop ends the current run, if any, and waits a bounded time for it to
// roll back and close its pools.
func (m *poolModel) stop() {
	if m.run == nil {
		return
	}
	m.run.cancel()
	select {
	case <-m.run.done:
	case <-time.After(closeWithin):
	}
}

func (m *poolModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tea.BackgroundColorMsg:
		m.lk.st = newStyles(m.opts.Theme, msg.IsDark())
	case poolBatchMsg:
		if m.run == nil || msg.run != m.run.id {
			return m, nil
		}
		for _, pm := range msg.msgs {
			if pm.done {
				m.finished(pm)
				return m, nil
			}
			m.take(*pm.ev)
		}
		if msg.closed {
			return m, nil
		}
		return m, m.next()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

func (m *poolModel) key(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	if cmd, held := m.hold(msg, &m.status); held {
		return cmd
	}
	m.status = ""
	cmd, why, found := m.table.handle(msg)
	switch {
	case why != "":
		m.status = why
	case !found:
		m.status = "f, r, +/- start a run; ? lists every key"
	}
	return cmd
}

// take shows one event of the run.
func (m *poolModel) take(ev pool.Event) {
	m.last = &ev
	if ev.Kind == pool.KindExhausted {
		m.hung = &ev
	}
	if ev.Kind != pool.KindPool {
		m.log = append(m.log, ev.String())
	}
}

// finished shows how the run ended.
func (m *poolModel) finished(pm poolMsg) {
	m.running = false
	if pm.err != nil && !errors.Is(pm.err, context.Canceled) {
		m.err = pm.err
	} else if pm.err == nil {
		m.result = &pm.res
	}
}

func (m *poolModel) View() tea.View {
	v := tea.NewView(strings.Join(m.screen(), "\n"))
	m.lk.st.paint(&v)
	v.AltScreen = true
	return v
}

// screen is the whole screen: the header, the pools and tasks (at the
// moment the pool hung, once it has), how the run ended, the log, the keys.
func (m *poolModel) screen() []string {
	st := m.lk.st
	w, h := max(m.w, 40), max(m.h, 12)
	cfg := m.opts.Config
	head := headerLines(st, w, fmt.Sprintf("scenario pool · fix %s", cfg.Fix), cfg.Fix.Summary(),
		st.subtle.Render(fmt.Sprintf("%s · database A %s · database B %s · pool size %d · %d tasks",
			m.opts.Server, cfg.A.Label(), cfg.B.Label(), cfg.Size, cfg.TaskCount())))
	foot := footerLines(st, w, nil, m.status, keyBar(st, w, m.table.bar(), helpKey, quitKey))
	headN, footN := strings.Count(head, "\n")+1, strings.Count(foot, "\n")+1
	room := h - headN - footN
	if m.helpOpen {
		return append(append([]string{head}, m.help.View(w, room)...), foot)
	}
	inner := w - 4
	state, when := m.stateLines(inner)
	outcome := wrapAll(m.outcomeLines(), inner)
	stateH := min(len(state)+3, max(6, room-len(outcome)-3-5))
	outH := min(len(outcome)+3, max(3, room-stateH-5))
	logH := max(3, room-stateH-outH)
	body := m.lk.panel("Pools and tasks (pgxpool's own statistics)"+when, (&scroller{}).View(state, stateH-3, st), w, stateH, false)
	body = append(body, m.lk.panel("Outcome", outcome, w, outH, false)...)
	var logLines []string
	for _, l := range m.log {
		logLines = append(logLines, wrapAll([]string{st.subtle.Render(l)}, inner)...)
	}
	body = append(body, m.lk.panel("Log (pgup/pgdown scroll)", m.logs.View(logLines, logH-3, st), w, logH, false)...)
	return append(append([]string{head}, body...), foot)
}

// stateLines are the pools' statistics and every task's phase; when says
// which moment they are of.
func (m *poolModel) stateLines(w int) ([]string, string) {
	st := m.lk.st
	shown, when := m.last, ""
	if m.hung != nil {
		// The hang is the lesson: keep it on screen, not the clean-up after it.
		shown, when = m.hung, " — at the moment it hung"
	}
	if shown == nil {
		return []string{st.subtle.Render("resetting the ledgers and opening the pool…")}, ""
	}
	var lines []string
	for _, p := range shown.Pools {
		share := 0.0
		if p.Max > 0 {
			share = float64(p.InUse) / float64(p.Max)
		}
		lines = append(lines, wrapAll([]string{fmt.Sprintf("%-6s %s %d/%d in use · %d idle · %d connecting · %d waiting acquirers",
			p.Label, m.bar.ViewAs(share), p.InUse, p.Max, p.Idle, p.Constructing, p.Waiting)}, w)...)
		lines = append(lines, wrapAll([]string{"       " + st.subtle.Render(p.Counters())}, w)...)
	}
	lines = append(lines, st.panelTitle.Render("Tasks"+when))
	for _, s := range shown.Tasks {
		line := s.String()
		switch {
		case s.Phase == pool.PhaseCommitted:
			line = st.ok.Render("✓ " + line)
		case s.Phase.Done():
			line = st.bad.Render("✗ " + line)
		case strings.Contains(line, "waiting"):
			line = st.wait.Render("⏳ " + line)
		default:
			line = "  " + line
		}
		lines = append(lines, wrapAll([]string{line}, w)...)
	}
	return lines, when
}

// outcomeLines say how the run ended, or that it runs.
func (m *poolModel) outcomeLines() []string {
	st := m.lk.st
	switch {
	case m.err != nil:
		return []string{st.bad.Render("✗ " + m.err.Error())}
	case m.result != nil && m.result.Exhausted:
		return []string{st.banner.Render(" ⚠ POOL EXHAUSTED ") + " " + st.cycle.Render("every task holds a connection and waits for another; no database sees a lock wait"),
			st.subtle.Render(fmt.Sprintf("lockstep cancelled the waiting acquires and rolled back %d tasks · f tries a fix", m.result.RolledBack))}
	case m.result != nil:
		return []string{st.ok.Render(fmt.Sprintf("✓ %d of %d tasks committed in both databases", m.result.Completed, m.opts.Config.TaskCount()))}
	case m.running:
		return []string{st.run.Render("running…")}
	}
	return nil
}
