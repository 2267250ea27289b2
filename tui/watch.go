package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"lockstep/locks"
)

// WatchSource is what the watch view reads: a live watch (*locks.Watch),
// or a recording's looks.
type WatchSource interface {
	Poll(ctx context.Context) (*locks.Look, error)
	History() []locks.WatchEvent
	Notes() []string
	ReadOnly() bool
	DeadlockTimeout() time.Duration
	Signal(ctx context.Context, pid int32, terminate bool) error
	// Role is the role the watch acts as ("" for a replay).
	Role() string
}

// WatchOptions set up the watch view.
type WatchOptions struct {
	Watch WatchSource
	// Poll is how often the view looks again.
	Poll time.Duration
	// Server and Filter describe what is watched, for the header.
	Server, Filter string
	Theme          string
	// Clock is the time ages are counted to; nil means time.Now.
	Clock func() time.Time
}

// RunWatch shows the watch view until the user quits or ctx ends.
func RunWatch(ctx context.Context, opts WatchOptions, progOpts ...tea.ProgramOption) error {
	return runProgram(ctx, newWatchModel(ctx, opts), progOpts)
}

// watchPane names the watch view's panes, for the focus and the zoom.
type watchPane int

const (
	watchTree watchPane = iota
	watchWhy
	watchHistory
)

// watchModel is the watch view: the tree of waits (watch_tree.go), why the
// selected session waits (watch_why.go), and the history
// (watch_history.go), under the header and over the footer every screen
// shares, with its keys in one table.
type watchModel struct {
	ctx  context.Context
	opts WatchOptions
	lk   *look
	w, h int
	// notes are the watch's notes, said once at the top.
	notes []string
	// explain draws a standing deadlock as the stepping view does.
	explain *explainPane
	// rp is set when the view replays a recorded watch.
	rp *watchReplay

	look    *locks.Look
	history []locks.WatchEvent
	err     error
	status  string
	paused  bool
	polling bool
	// seq numbers the looks asked for: a reply to an older one than the
	// last asked is stale (a pause, a replay's jump) and dropped.
	seq int

	tree *watchTreePane
	why  *watchWhyPane
	hist *watchHistoryPane
	// focus is the pane ↑/↓ and the page keys act on; the why pane
	// explains the tree's selection, or the history's while that has (or
	// last had) the focus.
	focus, explained watchPane
	zoomed           bool
	// viewing is a history entry whose tree is shown instead of the live one.
	viewing *locks.WatchEvent
	table   actions
	holders // the help overlay and the question, in front of the keys
}

type (
	watchLookMsg struct {
		seq     int
		look    *locks.Look
		history []locks.WatchEvent
		err     error
	}
	watchTickMsg   struct{}
	watchSignalMsg struct {
		what string
		err  error
	}
)

func newWatchModel(ctx context.Context, opts WatchOptions) *watchModel {
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	lk := &look{st: newStyles(opts.Theme, true), vol: asIs{}}
	m := &watchModel{ctx: ctx, opts: opts, lk: lk, w: 120, h: 40, notes: opts.Watch.Notes()}
	m.explain = &explainPane{box: box{look: lk}, deadlock: opts.Watch.DeadlockTimeout()}
	m.tree = &watchTreePane{box: box{look: lk}, m: m}
	m.why = &watchWhyPane{box: box{look: lk}, m: m}
	m.hist = &watchHistoryPane{box: box{look: lk}, m: m}
	m.help.look = lk
	m.table = m.newTable()
	return m
}

func (m *watchModel) now() time.Time {
	if m.opts.Clock != nil {
		return m.opts.Clock()
	}
	return time.Now()
}

func (m *watchModel) Init() tea.Cmd { return m.poll() }

// poll looks once, off the event loop: the look, and the history as it
// left it, come back in a message, so that Update never waits on the watch.
func (m *watchModel) poll() tea.Cmd {
	if m.polling {
		return nil
	}
	m.polling = true
	m.seq++
	w, ctx, seq := m.opts.Watch, m.ctx, m.seq
	return func() tea.Msg {
		look, err := w.Poll(ctx)
		if err != nil {
			return watchLookMsg{seq: seq, err: err}
		}
		return watchLookMsg{seq: seq, look: look, history: w.History()}
	}
}

func (m *watchModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
	case tea.BackgroundColorMsg:
		m.lk.st = newStyles(m.opts.Theme, msg.IsDark())
		m.explain.Restyle()
	case watchLookMsg:
		if msg.seq != m.seq {
			return m, nil // stale: a newer look is on its way
		}
		m.polling = false
		if msg.err != nil {
			if m.ctx.Err() != nil {
				return m, tea.Quit
			}
			m.err = msg.err
		} else {
			m.err = nil
			m.look = msg.look
			m.history = msg.history
			m.tree.follow()
			m.hist.clamp()
		}
		if m.rp != nil {
			return m, nil // a replay moves by its keys
		}
		return m, tea.Tick(m.opts.Poll, func(time.Time) tea.Msg { return watchTickMsg{} })
	case timelineTickMsg:
		cmd, ended := m.rp.tl.Tick(msg)
		if ended {
			m.status = "the end of the recording (space plays it again)"
		}
		m.rp.show(m)
		return m, cmd
	case watchTickMsg:
		if m.paused {
			return m, nil
		}
		return m, m.poll()
	case watchSignalMsg:
		if msg.err != nil {
			m.status = msg.err.Error()
		} else {
			m.status = msg.what
		}
		return m, m.poll()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	return m, nil
}

// key routes a key: Ctrl-C quits; the help overlay or a question holds the
// keys while open; else the view's table.
func (m *watchModel) key(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return tea.Quit
	}
	if cmd, ok := twoKeys(msg, m.key); ok {
		return cmd
	}
	if cmd, held := m.hold(msg, &m.status); held {
		return cmd
	}
	m.status = ""
	cmd, why, found := m.table.handle(msg)
	if why != "" {
		m.status = why
	}
	if !found && key.Matches(msg, helpKey) {
		m.openHelp()
	}
	return cmd
}

func (m *watchModel) openHelp() {
	title := "Keys — watching the server's locks"
	if m.rp != nil {
		title = "Keys — replaying a recorded watch"
	}
	m.holders.openHelp(title, m.table)
}

// newTable is the watch view's keys: what each does and when it cannot.
// A replay's table has the timeline's keys where a live watch pauses.
func (m *watchModel) newTable() actions {
	const moving, acting, look = "Move through the tree and the history", "Act on a session", "The view"
	signal := func(terminate bool) func() string {
		return func() string { return m.signalWhyNot(terminate) }
	}
	t := actions{
		{Binding: key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "select")), group: moving, bar: 1,
			long: "select a session of the tree, or an entry of the history, whichever has the focus (the why pane scrolls when it has it)",
			run:  func(tea.KeyPressMsg) tea.Cmd { m.move(-1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("down")), group: moving,
			run: func(tea.KeyPressMsg) tea.Cmd { m.move(+1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "focus")), group: moving, bar: 2,
			long: "give the next pane the focus — tree, why, history (shift+tab the one before)",
			run:  func(tea.KeyPressMsg) tea.Cmd { m.cycleFocus(+1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("shift+tab")), group: moving,
			run: func(tea.KeyPressMsg) tea.Cmd { m.cycleFocus(-1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "tree as it stood")), group: moving, bar: 4,
			long: "show the tree as it stood at the selected history entry (esc: live)",
			why: func() string {
				if m.explained != watchHistory || m.hist.sel < 0 || m.hist.sel >= len(m.history) {
					return "tab to the history and select an entry first"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				ev := m.history[m.hist.sel]
				m.viewing = &ev
				m.tree.sel, m.tree.top = 0, 0
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")), group: moving,
			long: "un-zoom; else back to the live tree, its selection following the first waiter again",
			run: func(tea.KeyPressMsg) tea.Cmd {
				if m.zoomed {
					m.zoomed = false
					return nil
				}
				m.viewing = nil
				m.tree.sel, m.tree.top, m.tree.moved = 0, 0, false
				m.tree.follow()
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("z"), key.WithHelp("z", "zoom")), group: look, bar: 5,
			long: "zoom the focused pane to the whole screen, and back",
			run:  func(tea.KeyPressMsg) tea.Cmd { m.zoomed = !m.zoomed; return nil }},
	}
	if m.rp == nil {
		t = append(t,
			&action{Binding: key.NewBinding(key.WithKeys("pgup", "pgdown", "home", "end"), key.WithHelp("pgup/pgdown", "scroll")), group: look,
				long: "scroll the focused pane a page; home/end to its top or bottom",
				run:  func(msg tea.KeyPressMsg) tea.Cmd { m.scroll(msg); return nil }},
			&action{Binding: key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause")), group: look, bar: 3,
				long: "pause the looks (the screen keeps the last), and go on",
				run: func(tea.KeyPressMsg) tea.Cmd {
					m.paused = !m.paused
					if !m.paused {
						return m.poll()
					}
					return nil
				}})
	} else {
		tk := newTimelineKeys()
		replayMove := func(msg tea.KeyPressMsg) tea.Cmd {
			cmd, _ := m.rp.tl.Update(msg, tk)
			m.rp.show(m)
			return cmd
		}
		t = append(t,
			&action{Binding: key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdown", "scroll")), group: look,
				long: "scroll the focused pane a page",
				run:  func(msg tea.KeyPressMsg) tea.Cmd { m.scroll(msg); return nil }},
			&action{Binding: tk.Play, group: look, bar: 1, run: replayMove},
			&action{Binding: key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "look")), group: look, bar: 1,
				long: "the look before/after", run: replayMove},
			&action{Binding: tk.Forward, group: look, run: replayMove},
			&action{Binding: tk.First, group: look, run: replayMove},
			&action{Binding: tk.Last, group: look, run: replayMove},
			&action{Binding: tk.Speed, group: look, run: replayMove},
			&action{Binding: key.NewBinding(key.WithKeys("d", "D"), key.WithHelp("d/D", "deadlock")), group: look, bar: 2,
				long: "the next/previous look with a deadlock standing",
				run:  func(msg tea.KeyPressMsg) tea.Cmd { m.rp.jumpDeadlock(m, msg.String() == "D"); return nil }})
	}
	return append(t,
		&action{Binding: key.NewBinding(key.WithKeys("k"), key.WithHelp("k", "cancel")), group: acting, bar: 6,
			long: "cancel the selected session's running statement (pg_cancel_backend; asks first)",
			why:  signal(false),
			run:  func(tea.KeyPressMsg) tea.Cmd { m.askSignal(false); return nil }},
		&action{Binding: key.NewBinding(key.WithKeys("T"), key.WithHelp("T", "terminate")), group: acting, bar: 6,
			long: "end the selected session (pg_terminate_backend; its transaction rolls back; asks first)",
			why:  signal(true),
			run:  func(tea.KeyPressMsg) tea.Cmd { m.askSignal(true); return nil }},
		&action{Binding: helpKey, group: look, run: func(tea.KeyPressMsg) tea.Cmd { m.openHelp(); return nil }},
		&action{Binding: quitKey, group: look, run: func(tea.KeyPressMsg) tea.Cmd { return tea.Quit }})
}

// signalWhyNot says why k (or T) can do nothing now, or "".
func (m *watchModel) signalWhyNot(terminate bool) string {
	switch {
	case m.rp != nil:
		return "a replay signals nothing: the sessions are long gone"
	case m.opts.Watch.ReadOnly():
		return locks.ErrReadOnly.Error()
	case m.viewing != nil:
		return "the tree shown is history: esc returns to the live one, whose sessions can be signalled"
	}
	n, ok := m.tree.selected()
	switch {
	case !ok:
		return "select a session of the tree first (↑/↓)"
	case n.Pid == 0:
		return "a prepared transaction has no backend to signal: COMMIT PREPARED or ROLLBACK PREPARED it"
	case !terminate && n.State != "active" && n.State != "":
		return fmt.Sprintf("pid %d is %s: it runs no statement to cancel; T ends its session (its transaction rolls back)", n.Pid, n.State)
	}
	return ""
}

// askSignal asks before cancelling or terminating the selected session.
func (m *watchModel) askSignal(terminate bool) {
	n, _ := m.tree.selected()
	verb := "Cancel the statement of"
	after := "(its transaction stays open unless the application rolls it back)"
	if terminate {
		verb, after = "Terminate", "(its session ends and its transaction rolls back)"
	}
	user := n.User
	if user == "" {
		user = "?"
	}
	p := &prompt{
		question: fmt.Sprintf("%s pid %d — user %s, %s — running: %s %s? y: yes, n: no", verb, n.Pid, user, n.Session, n.Statement(), after),
		no:       "nothing sent",
	}
	if role := m.opts.Watch.Role(); role != "" && n.User != role {
		p.warn = fmt.Sprintf("⚠ pid %d is not yours: it is role %s's session, and you act as %s. Signalling it interrupts someone else's work.", n.Pid, user, role)
	}
	w, ctx := m.opts.Watch, m.ctx
	what := fmt.Sprintf("cancelled the statement of pid %d (%s)", n.Pid, n.Session)
	if terminate {
		what = fmt.Sprintf("terminated pid %d (%s): its transaction rolled back", n.Pid, n.Session)
	}
	p.yes = func() tea.Cmd {
		return func() tea.Msg { return watchSignalMsg{what: what, err: w.Signal(ctx, n.Pid, terminate)} }
	}
	m.ask = p
}

// cycleFocus gives the next pane the focus (d = -1: the one before).
func (m *watchModel) cycleFocus(d int) {
	m.focus = watchPane((int(m.focus) + d + 3) % 3)
	switch m.focus {
	case watchTree:
		m.explained = watchTree
	case watchHistory:
		m.explained = watchHistory
		if !m.hist.moved {
			m.hist.sel = len(m.history) - 1 // the newest first: it is what just happened
		}
	}
}

// move selects the next node or entry, or scrolls the why pane.
func (m *watchModel) move(d int) {
	switch m.focus {
	case watchHistory:
		m.hist.move(d)
	case watchWhy:
		msg := tea.KeyPressMsg{Code: tea.KeyDown}
		if d < 0 {
			msg = tea.KeyPressMsg{Code: tea.KeyUp}
		}
		m.why.Scroll(msg)
	default:
		m.tree.move(d)
	}
}

// scroll scrolls the focused pane by a page key.
func (m *watchModel) scroll(msg tea.KeyPressMsg) {
	switch m.focus {
	case watchHistory:
		m.hist.Scroll(msg)
	case watchWhy:
		m.why.Scroll(msg)
	default:
		m.tree.page(msg)
	}
}

// tree is the tree on screen: the live one, or a history entry's.
func (m *watchModel) shownTree() locks.Tree {
	if m.viewing != nil {
		return m.viewing.Tree
	}
	if m.look == nil {
		return locks.Tree{}
	}
	return m.look.Tree
}

func (m *watchModel) View() tea.View {
	var v tea.View
	v.AltScreen = true
	v.SetContent(strings.Join(m.screen(), "\n"))
	m.lk.st.paint(&v)
	return v
}

// screen is the whole screen as lines: the header, the panes, the footer.
func (m *watchModel) screen() []string {
	st := m.lk.st
	w, h := max(m.w, 40), max(m.h, 12)
	head := strings.Split(headerLines(st, w, "watch", m.opts.Server, m.summary()), "\n")
	for _, n := range m.notes {
		head = append(head, wrapAll([]string{st.warn.Render("note: " + n)}, w)...)
	}
	if m.err != nil {
		head = append(head, wrapAll([]string{st.bad.Render("✗ " + m.err.Error())}, w)...)
	}
	foot := strings.Split(m.footer(w), "\n")
	room := h - len(head) - len(foot)
	m.tree.Focus(m.focus == watchTree)
	m.why.Focus(m.focus == watchWhy)
	m.hist.Focus(m.focus == watchHistory)
	var body []string
	switch {
	case m.helpOpen:
		body = m.help.View(w, room)
	case m.zoomed:
		p := []pane{m.tree, m.why, m.hist}[m.focus]
		p.SetSize(w, room)
		body = p.View()
	case w >= 110:
		histH := min(max(4, len(m.history)+3), max(4, room/3))
		if room < 14 {
			histH = 4
		}
		leftW := w * 11 / 20
		rightW := w - leftW
		m.tree.SetSize(leftW, room)
		m.why.SetSize(rightW, room-histH)
		m.hist.SetSize(rightW, histH)
		body = hjoin(m.tree.View(), append(m.why.View(), m.hist.View()...))
	default:
		histH := min(max(4, len(m.history)+3), max(4, room/3))
		if room < 14 {
			histH = 4
		}
		treeH := (room - histH) * 3 / 5
		if n, ok := m.tree.selected(); ok && m.viewing == nil && m.cycleOf(n) != nil {
			// A deadlock stands: its explanation is the lesson, the tree
			// gives it room.
			if room < 22 {
				histH = 4
			}
			treeH = (room - histH) * 2 / 5
		}
		m.tree.SetSize(w, treeH)
		m.why.SetSize(w, room-histH-treeH)
		m.hist.SetSize(w, histH)
		body = append(append(m.tree.View(), m.why.View()...), m.hist.View()...)
	}
	return append(append(head, body...), foot...)
}

// summary is the header's second line: what is watched, and how the poll goes.
func (m *watchModel) summary() string {
	st := m.lk.st
	var parts []string
	switch {
	case m.rp != nil:
		parts = append(parts, m.rp.banner(st))
	case m.opts.Watch.ReadOnly():
		parts = append(parts, st.banner.Render(" READ-ONLY "))
	}
	if m.paused {
		parts = append(parts, st.warn.Render("⏸ PAUSED"))
	}
	if m.look == nil {
		return strings.Join(append(parts, st.subtle.Render("looking…")), " · ")
	}
	l := m.look
	watched := fmt.Sprintf("%d sessions watched (%s)", l.Watched, m.opts.Filter)
	inTx := fmt.Sprintf("%d in a transaction", l.InTransaction)
	if l.Partial() {
		inTx += fmt.Sprintf(" (%d of other roles: hidden)", l.Hidden)
	}
	parts = append(parts, watched, inTx)
	if l.IdleInTransaction > 0 {
		parts = append(parts, st.bad.Render(fmt.Sprintf("%d idle in transaction", l.IdleInTransaction)))
	}
	poll := fmt.Sprintf("looked at %s in %s, every %s", l.Taken.Format("15:04:05"), l.Took.Round(100*time.Microsecond), m.opts.Poll)
	if !l.ReadLocks {
		poll += " (no one waits: pg_locks not read)"
	}
	if l.Took > m.opts.Poll {
		poll += st.warn.Render(fmt.Sprintf(" — a look takes longer than the interval: one every %s", l.Took.Round(time.Millisecond)))
	}
	parts = append(parts, st.subtle.Render(poll))
	if m.rp != nil {
		if note := m.rp.note(); note != "" {
			parts = append(parts, note)
		}
	}
	return strings.Join(parts, " · ")
}

// footer is the question when one is asked, else the status, then the keys.
func (m *watchModel) footer(w int) string {
	st := m.lk.st
	keys := keyBar(st, w, m.table.bar(), helpKey, quitKey)
	switch {
	case m.helpOpen:
		keys = keyBar(st, w, barOf(key.NewBinding(key.WithKeys("?", "esc"), key.WithHelp("?/esc", "close the help"))))
	case m.ask != nil:
		keys = keyBar(st, w, promptBar)
	case m.zoomed:
		keys = keyBar(st, w, m.table.bar(), zoomBackKey, helpKey, quitKey)
	}
	return footerLines(st, w, m.ask, m.status, keys)
}

// cycleOf is the standing deadlock the node is in, if any.
func (m *watchModel) cycleOf(n locks.TreeNode) *locks.Cycle {
	if m.look == nil || m.look.Snapshot == nil {
		return nil
	}
	for i, c := range m.look.Snapshot.Graph.Cycles {
		for _, s := range c.All() {
			if s == n.Session {
				return &m.look.Snapshot.Graph.Cycles[i]
			}
		}
	}
	return nil
}
