package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

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
}

// RunPool shows the pool-exhaustion scenario live: the pools' own
// statistics, every task's phase, the hang and its end; f switches fixes.
func RunPool(ctx context.Context, opts PoolOptions, progOpts ...tea.ProgramOption) error {
	m := newPoolModel(ctx, opts)
	defer m.stop()
	return runProgram(ctx, m, progOpts)
}

// poolModel is the view; each run of the scenario gets a number, so that
// messages from a run replaced by f or r are dropped.
type poolModel struct {
	ctx    context.Context
	opts   PoolOptions
	st     styles
	bar    progress.Model
	width  int
	runID  int
	cancel context.CancelFunc
	done   chan struct{} // closed when the current run's goroutine returns
	events chan tea.Msg

	last    *pool.Event
	hung    *pool.Event // the state at the moment of exhaustion, kept on screen
	log     []string
	result  *pool.Result
	err     error
	running bool
}

type poolEventMsg struct {
	run int
	ev  pool.Event
}

type poolDoneMsg struct {
	run int
	res pool.Result
	err error
}

func newPoolModel(ctx context.Context, opts PoolOptions) *poolModel {
	return &poolModel{ctx: ctx, opts: opts, st: newStyles(true), bar: progress.New(progress.WithWidth(24), progress.WithoutPercentage())}
}

func (m *poolModel) Init() tea.Cmd { return m.start() }

// start begins a run of the current config, after the last one has ended.
func (m *poolModel) start() tea.Cmd {
	m.stop()
	m.runID++
	run, ctx := m.runID, m.ctx
	rctx, cancel := context.WithCancel(ctx)
	m.cancel, m.done, m.events = cancel, make(chan struct{}), make(chan tea.Msg, 256)
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
				case events <- poolEventMsg{run: run, ev: ev}:
				case <-rctx.Done():
				}
			})
		}
		// The done message always arrives: the channel is read until it does.
		events <- poolDoneMsg{run: run, res: res, err: err}
	}()
	return m.next()
}

// next reads the current run's next message.
func (m *poolModel) next() tea.Cmd {
	events := m.events
	return func() tea.Msg { return <-events }
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
	case tea.BackgroundColorMsg:
		m.st = newStyles(msg.IsDark())
	case poolEventMsg:
		if msg.run != m.runID {
			return m, nil
		}
		ev := msg.ev
		m.last = &ev
		if ev.Kind == pool.KindExhausted {
			m.hung = &ev
		}
		if ev.Kind != pool.KindPool {
			m.log = append(m.log, ev.String())
		}
		return m, m.next()
	case poolDoneMsg:
		if msg.run != m.runID {
			return m, nil
		}
		m.running = false
		if msg.err != nil && !errors.Is(msg.err, context.Canceled) {
			m.err = msg.err
		} else if msg.err == nil {
			m.result = &msg.res
		}
		return m, nil
	case tea.KeyPressMsg:
		switch msg.String() {
		case "q", "ctrl+c":
			return m, tea.Quit
		case "f":
			fixes := pool.Fixes()
			m.opts.Config.Fix = fixes[(int(m.opts.Config.Fix)+1)%len(fixes)]
			return m, m.start()
		case "r":
			return m, m.start()
		case "+", "-":
			if msg.String() == "+" && m.opts.Config.Size < pool.MaxSize {
				m.opts.Config.Size++
			} else if msg.String() == "-" && m.opts.Config.Size > 2 {
				m.opts.Config.Size--
			}
			return m, m.start()
		}
	}
	return m, nil
}

func (m *poolModel) View() tea.View {
	cfg := m.opts.Config
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", m.st.title.Render("lockstep"), m.st.bold.Render(fmt.Sprintf("scenario pool · fix %s", cfg.Fix)))
	wrap := func(s string) string {
		if m.width > 0 {
			return ansi.Wrap(s, m.width, " ")
		}
		return s
	}
	fmt.Fprintf(&b, "%s\n", m.st.subtle.Render(wrap(cfg.Fix.Summary())))
	fmt.Fprintf(&b, "%s\n\n", m.st.dim.Render(wrap(fmt.Sprintf("%s · database A %s · database B %s · pool size %d · %d tasks",
		m.opts.Server, cfg.A.Label(), cfg.B.Label(), cfg.Size, cfg.TaskCount()))))
	shown, when := m.last, ""
	if m.hung != nil {
		// The hang is the lesson: keep it on screen, not the clean-up after it.
		shown, when = m.hung, " — at the moment it hung"
	}
	if shown != nil {
		b.WriteString(m.st.panelTitle.Render("Pools (pgxpool's own statistics)"+when) + "\n")
		for _, p := range shown.Pools {
			share := 0.0
			if p.Max > 0 {
				share = float64(p.InUse) / float64(p.Max)
			}
			fmt.Fprintf(&b, " %-6s %s %d/%d in use · %d idle · %d connecting · %d waiting acquirers\n",
				p.Label, m.bar.ViewAs(share), p.InUse, p.Max, p.Idle, p.Constructing, p.Waiting)
			fmt.Fprintf(&b, "        %s\n", m.st.dim.Render(p.Counters()))
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
	} else {
		b.WriteString(m.st.subtle.Render("resetting the ledgers and opening the pool…") + "\n")
	}
	b.WriteString("\n")
	switch {
	case m.err != nil:
		b.WriteString(m.st.bad.Render("✗ "+m.err.Error()) + "\n")
	case m.result != nil && m.result.Exhausted:
		b.WriteString(m.st.banner.Render(" ⚠ POOL EXHAUSTED ") + " " + m.st.cycle.Render("every task holds a connection and waits for another; no database sees a lock wait") + "\n")
		b.WriteString(m.st.subtle.Render(fmt.Sprintf("lockstep cancelled the waiting acquires and rolled back %d tasks · f tries a fix", m.result.RolledBack)) + "\n")
	case m.result != nil:
		b.WriteString(m.st.ok.Render(fmt.Sprintf("✓ %d of %d tasks committed in both databases", m.result.Completed, cfg.TaskCount())) + "\n")
	case m.running:
		b.WriteString(m.st.run.Render("running…") + "\n")
	}
	b.WriteString("\n" + m.st.panelTitle.Render("Log") + "\n")
	start := max(0, len(m.log)-12)
	for _, l := range m.log[start:] {
		if m.width > 4 {
			l = ansi.Truncate(l, m.width-2, "…")
		}
		b.WriteString(" " + m.st.dim.Render(l) + "\n")
	}
	b.WriteString("\n" + m.st.subtle.Render("f next fix · r run again · +/- pool size · q quit"))
	v := tea.NewView(b.String())
	v.AltScreen = true
	return v
}
