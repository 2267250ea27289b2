package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/progress"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

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

// poolKeys are the pool view's keys.
type poolKeys struct {
	Fix, Again, Size, Quit key.Binding
}

func (k poolKeys) ShortHelp() []key.Binding  { return []key.Binding{k.Fix, k.Again, k.Size, k.Quit} }
func (k poolKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// poolModel is the view; each run of the scenario gets a number, so that
// messages from a run replaced by f or r are dropped.
type poolModel struct {
	ctx    context.Context
	opts   PoolOptions
	st     styles
	keys   poolKeys
	help   help.Model
	bar    progress.Model
	width  int
	runID  int
	cancel context.CancelFunc
	done   chan struct{} // closed when the current run's goroutine returns
	events chan poolMsg

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
	run  int
	msgs []poolMsg
}

func newPoolModel(ctx context.Context, opts PoolOptions) *poolModel {
	st := newStyles(opts.Theme, true)
	h := help.New()
	h.Styles = st.helpStyles()
	return &poolModel{ctx: ctx, opts: opts, st: st, help: h,
		bar: progress.New(progress.WithWidth(24), progress.WithoutPercentage()),
		keys: poolKeys{
			Fix:   key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "next fix")),
			Again: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "run again")),
			Size:  key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "pool size")),
			Quit:  key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		}}
}

func (m *poolModel) Init() tea.Cmd { return m.start() }

// start begins a run of the current config, after the last one has ended.
func (m *poolModel) start() tea.Cmd {
	m.stop()
	m.runID++
	rctx, cancel := context.WithCancel(m.ctx)
	m.cancel, m.done, m.events = cancel, make(chan struct{}), make(chan poolMsg, 256)
	m.last, m.hung, m.log, m.result, m.err, m.running = nil, nil, nil, nil, nil, true
	cfg, events, done, prepare := m.opts.Config, m.events, m.done, m.opts.Prepare
	go func() {
		defer close(done)
		var res pool.Result
		var err error
		if prepare != nil {
			err = prepare(rctx, cfg)
		}
		if err == nil {
			res, err = pool.Run(rctx, cfg, func(ev pool.Event) {
				select {
				case events <- poolMsg{ev: &ev}:
				case <-rctx.Done():
				}
			})
		}
		// The end always arrives: the channel is read until it does.
		events <- poolMsg{res: res, err: err, done: true}
	}()
	return m.next()
}

// next reads the current run's next messages.
func (m *poolModel) next() tea.Cmd {
	run := m.runID
	return listen(m.events, func(msgs []poolMsg, _ bool) tea.Msg { return poolBatchMsg{run: run, msgs: msgs} })
}

// stop ends the current run, if any, and waits for it to clean up.
func (m *poolModel) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	// Drain, so the goroutine's last send cannot block.
	for {
		select {
		case <-m.done:
			m.cancel = nil
			return
		case <-m.events:
		}
	}
}

func (m *poolModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width = msg.Width
		m.help.SetWidth(msg.Width)
	case tea.BackgroundColorMsg:
		m.st = newStyles(m.opts.Theme, msg.IsDark())
		m.help.Styles = m.st.helpStyles()
	case poolBatchMsg:
		if msg.run != m.runID {
			return m, nil
		}
		for _, pm := range msg.msgs {
			if pm.done {
				m.finished(pm)
				return m, nil
			}
			m.take(*pm.ev)
		}
		return m, m.next()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
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

func (m *poolModel) key(msg tea.KeyPressMsg) tea.Cmd {
	cfg := &m.opts.Config
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Fix):
		fixes := pool.Fixes()
		cfg.Fix = fixes[(int(cfg.Fix)+1)%len(fixes)]
		return m.start()
	case key.Matches(msg, m.keys.Again):
		return m.start()
	case key.Matches(msg, m.keys.Size):
		if msg.String() == "+" && cfg.Size < pool.MaxSize {
			cfg.Size++
		} else if msg.String() == "-" && cfg.Size > 2 {
			cfg.Size--
		}
		return m.start()
	}
	return nil
}

func (m *poolModel) View() tea.View {
	cfg := m.opts.Config
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", m.st.title.Render("lockstep"), m.st.bold.Render(fmt.Sprintf("scenario pool · fix %s", cfg.Fix)))
	fmt.Fprintf(&b, "%s\n", m.st.subtle.Render(m.wrap(cfg.Fix.Summary())))
	fmt.Fprintf(&b, "%s\n\n", m.st.subtle.Render(m.wrap(fmt.Sprintf("%s · database A %s · database B %s · pool size %d · %d tasks",
		m.opts.Server, cfg.A.Label(), cfg.B.Label(), cfg.Size, cfg.TaskCount()))))
	shown, when := m.last, ""
	if m.hung != nil {
		// The hang is the lesson: keep it on screen, not the clean-up after it.
		shown, when = m.hung, " — at the moment it hung"
	}
	if shown != nil {
		m.viewState(&b, shown, when)
	} else {
		b.WriteString(m.st.subtle.Render("resetting the ledgers and opening the pool…") + "\n")
	}
	b.WriteString("\n")
	m.viewOutcome(&b)
	b.WriteString("\n" + m.st.panelTitle.Render("Log") + "\n")
	start := max(0, len(m.log)-12)
	for _, l := range m.log[start:] {
		if m.width > 4 {
			l = ansi.Truncate(l, m.width-2, "…")
		}
		b.WriteString(" " + m.st.subtle.Render(l) + "\n")
	}
	b.WriteString("\n" + m.help.View(m.keys))
	v := tea.NewView(b.String())
	m.st.paint(&v)
	v.AltScreen = true
	return v
}

func (m *poolModel) wrap(s string) string {
	if m.width > 0 {
		return ansi.Wrap(s, m.width, " ")
	}
	return s
}

// viewState shows the pools' statistics and every task's phase.
func (m *poolModel) viewState(b *strings.Builder, shown *pool.Event, when string) {
	b.WriteString(m.st.panelTitle.Render("Pools (pgxpool's own statistics)"+when) + "\n")
	for _, p := range shown.Pools {
		share := 0.0
		if p.Max > 0 {
			share = float64(p.InUse) / float64(p.Max)
		}
		fmt.Fprintf(b, " %-6s %s %d/%d in use · %d idle · %d connecting · %d waiting acquirers\n",
			p.Label, m.bar.ViewAs(share), p.InUse, p.Max, p.Idle, p.Constructing, p.Waiting)
		fmt.Fprintf(b, "        %s\n", m.st.subtle.Render(p.Counters()))
	}
	b.WriteString("\n" + m.st.panelTitle.Render("Tasks"+when) + "\n")
	for _, s := range shown.Tasks {
		line := " " + s.String()
		switch {
		case s.Phase == pool.PhaseCommitted:
			line = m.st.ok.Render(line)
		case s.Phase.Done():
			line = m.st.bad.Render(line)
		case strings.Contains(line, "waiting"):
			line = m.st.wait.Render(line)
		}
		b.WriteString(line + "\n")
	}
}

// viewOutcome says how the run ended, or that it runs.
func (m *poolModel) viewOutcome(b *strings.Builder) {
	switch {
	case m.err != nil:
		b.WriteString(m.st.bad.Render("✗ "+m.err.Error()) + "\n")
	case m.result != nil && m.result.Exhausted:
		b.WriteString(m.st.banner.Render(" ⚠ POOL EXHAUSTED ") + " " + m.st.cycle.Render("every task holds a connection and waits for another; no database sees a lock wait") + "\n")
		b.WriteString(m.st.subtle.Render(fmt.Sprintf("lockstep cancelled the waiting acquires and rolled back %d tasks · f tries a fix", m.result.RolledBack)) + "\n")
	case m.result != nil:
		b.WriteString(m.st.ok.Render(fmt.Sprintf("✓ %d of %d tasks committed in both databases", m.result.Completed, m.opts.Config.TaskCount())) + "\n")
	case m.running:
		b.WriteString(m.st.run.Render("running…") + "\n")
	}
}
