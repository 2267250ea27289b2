package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

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

// watchKeys are the watch view's keys.
type watchKeys struct {
	Up, Down, Focus, Open, Back, Pause, Cancel, Terminate, Yes, No, Quit key.Binding
}

func (k watchKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Focus, k.Open, k.Pause, k.Cancel, k.Terminate, k.Quit}
}
func (k watchKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

func newWatchKeys() watchKeys {
	return watchKeys{
		Up:        key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "select")),
		Down:      key.NewBinding(key.WithKeys("down")),
		Focus:     key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "tree/history")),
		Open:      key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "tree as it stood")),
		Back:      key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "live")),
		Pause:     key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "pause")),
		Cancel:    key.NewBinding(key.WithKeys("k"), key.WithHelp("k", "cancel statement")),
		Terminate: key.NewBinding(key.WithKeys("T"), key.WithHelp("T", "terminate session")),
		Yes:       key.NewBinding(key.WithKeys("y")),
		No:        key.NewBinding(key.WithKeys("n", "esc")),
		Quit:      key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// watchModel is the watch view: the tree of waits, why the selected
// session waits, and the history.
type watchModel struct {
	ctx  context.Context
	opts WatchOptions
	lk   *look
	keys watchKeys
	help help.Model
	w, h int
	// notes are the watch's notes, said once at the top.
	notes []string
	// explain draws a standing deadlock as the stepping view does.
	explain *explainPane
	// moved is set once the user selects a node: until then the selection
	// follows the first waiter, so the screen says why without a key.
	moved bool
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

	historyFocus bool
	sel, top     int // selected node and the first drawn, in the tree's walk order
	hsel         int
	hmoved       bool              // the user chose a history entry
	viewing      *locks.WatchEvent // a history entry whose tree is shown instead of the live one
	confirm      *watchAction
}

// watchAction is a cancel or terminate waiting for the user's yes.
type watchAction struct {
	node      locks.TreeNode
	terminate bool
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
	st := newStyles(opts.Theme, true)
	h := help.New()
	h.Styles = st.helpStyles()
	m := &watchModel{ctx: ctx, opts: opts, lk: &look{st: st, vol: asIs{}}, keys: newWatchKeys(), help: h, w: 120, h: 40,
		notes: opts.Watch.Notes()}
	m.explain = &explainPane{box: box{look: m.lk}, deadlock: opts.Watch.DeadlockTimeout()}
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
		m.help.SetWidth(msg.Width)
	case tea.BackgroundColorMsg:
		m.lk.st = newStyles(m.opts.Theme, msg.IsDark())
		m.help.Styles = m.lk.st.helpStyles()
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
			m.clampSel()
		}
		if m.rp != nil {
			return m, nil // a replay moves by its keys
		}
		return m, tea.Tick(m.opts.Poll, func(time.Time) tea.Msg { return watchTickMsg{} })
	case watchReplayTickMsg:
		if m.rp == nil || !m.rp.playing || msg.seq != m.rp.seq {
			return m, nil
		}
		m.rp.pos++
		return m, m.replayShow()
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

func (m *watchModel) key(msg tea.KeyPressMsg) tea.Cmd {
	if m.rp != nil {
		if cmd, ok := m.replayKey(msg); ok {
			return cmd
		}
	}
	if m.confirm != nil {
		switch {
		case key.Matches(msg, m.keys.Yes):
			a := m.confirm
			m.confirm = nil
			return m.signal(a)
		case key.Matches(msg, m.keys.No), key.Matches(msg, m.keys.Quit):
			m.confirm, m.status = nil, "nothing sent"
		}
		return nil
	}
	switch {
	case key.Matches(msg, m.keys.Quit):
		return tea.Quit
	case key.Matches(msg, m.keys.Pause):
		m.paused = !m.paused
		if !m.paused {
			return m.poll()
		}
	case key.Matches(msg, m.keys.Focus):
		m.historyFocus = !m.historyFocus
		if m.historyFocus && !m.hmoved {
			m.hsel = len(m.history) - 1 // the newest first: it is what just happened
		}
	case key.Matches(msg, m.keys.Up):
		m.move(-1)
	case key.Matches(msg, m.keys.Down):
		m.move(1)
	case key.Matches(msg, m.keys.Open):
		if m.historyFocus && m.hsel < len(m.history) {
			ev := m.history[m.hsel]
			m.viewing, m.sel, m.top = &ev, 0, 0
		}
	case key.Matches(msg, m.keys.Back):
		m.viewing, m.sel, m.top, m.moved = nil, 0, 0, false
		m.clampSel()
	case key.Matches(msg, m.keys.Cancel), key.Matches(msg, m.keys.Terminate):
		terminate := key.Matches(msg, m.keys.Terminate)
		if m.opts.Watch.ReadOnly() {
			m.status = locks.ErrReadOnly.Error()
			return nil
		}
		n, ok := m.selected()
		if !ok || m.viewing != nil {
			m.status = "select a session of the live tree first (↑/↓)"
			return nil
		}
		if n.Pid == 0 {
			m.status = "a prepared transaction has no backend to signal: COMMIT PREPARED or ROLLBACK PREPARED it"
			return nil
		}
		m.confirm = &watchAction{node: n, terminate: terminate}
	}
	return nil
}

// signal sends what the user confirmed.
func (m *watchModel) signal(a *watchAction) tea.Cmd {
	w, ctx := m.opts.Watch, m.ctx
	what := fmt.Sprintf("cancelled the statement of pid %d (%s)", a.node.Pid, a.node.Session)
	if a.terminate {
		what = fmt.Sprintf("terminated pid %d (%s): its transaction rolled back", a.node.Pid, a.node.Session)
	}
	return func() tea.Msg {
		return watchSignalMsg{what: what, err: w.Signal(ctx, a.node.Pid, a.terminate)}
	}
}

// tree is the tree on screen: the live one, or a history entry's.
func (m *watchModel) tree() locks.Tree {
	if m.viewing != nil {
		return m.viewing.Tree
	}
	if m.look == nil {
		return locks.Tree{}
	}
	return m.look.Tree
}

// nodes is the tree in walk order, with each node's depth.
func (m *watchModel) nodes() ([]locks.TreeNode, []int) {
	var ns []locks.TreeNode
	var ds []int
	m.tree().Walk(func(n *locks.TreeNode, d int) {
		ns = append(ns, *n)
		ds = append(ds, d)
	})
	return ns, ds
}

func (m *watchModel) selected() (locks.TreeNode, bool) {
	ns, _ := m.nodes()
	if m.sel < len(ns) {
		return ns[m.sel], true
	}
	return locks.TreeNode{}, false
}

func (m *watchModel) move(d int) {
	if m.historyFocus {
		m.hsel = max(0, min(len(m.history)-1, m.hsel+d))
		m.hmoved = true
		return
	}
	ns, _ := m.nodes()
	m.sel = max(0, min(len(ns)-1, m.sel+d))
	m.moved = true
}

func (m *watchModel) clampSel() {
	ns, ds := m.nodes()
	if !m.moved && m.viewing == nil {
		// Follow the first waiter: its line in the why pane is the lesson;
		// while a deadlock stands, the first of its sessions, so that the
		// why pane explains the deadlock.
		m.sel = 0
		for i, d := range ds {
			if d > 0 {
				m.sel = i
				break
			}
		}
		for i, n := range ns {
			if m.cycleOf(n) != nil {
				m.sel = i
				break
			}
		}
	}
	m.sel = max(0, min(len(ns)-1, m.sel))
	m.hsel = max(0, min(len(m.history)-1, m.hsel))
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
	head := wrapAll([]string{st.title.Render("lockstep watch") + st.subtle.Render(" — "+m.opts.Server)}, w)
	head = append(head, wrapAll([]string{m.summary()}, w)...)
	for _, n := range m.notes {
		head = append(head, wrapAll([]string{st.warn.Render("note: " + n)}, w)...)
	}
	if m.err != nil {
		head = append(head, wrapAll([]string{st.bad.Render("✗ " + m.err.Error())}, w)...)
	}
	foot := m.footer(w)
	room := h - len(head) - len(foot)
	histH := min(max(4, len(m.history)+3), max(4, room/3))
	if room < 14 {
		histH = 4
	}
	var body []string
	if w >= 110 {
		leftW := w * 11 / 20
		rightW := w - leftW
		whyH := room - histH
		right := append(m.whyPane(rightW, whyH), m.historyPane(rightW, histH)...)
		body = hjoin(m.treePane(leftW, room), right)
	} else {
		treeH := (room - histH) * 3 / 5
		if n, ok := m.selected(); ok && m.viewing == nil && m.cycleOf(n) != nil {
			// A deadlock stands: its explanation is the lesson, the tree
			// gives it room.
			if room < 22 {
				histH = 4
			}
			treeH = (room - histH) * 2 / 5
		}
		whyH := room - histH - treeH
		body = append(m.treePane(w, treeH), m.whyPane(w, whyH)...)
		body = append(body, m.historyPane(w, histH)...)
	}
	return append(append(head, body...), foot...)
}

// summary is the header's second line: what is watched, and how the poll goes.
func (m *watchModel) summary() string {
	st := m.lk.st
	if m.look == nil {
		return st.subtle.Render("looking…")
	}
	l := m.look
	parts := []string{fmt.Sprintf("%d sessions watched (%s)", l.Watched, m.opts.Filter),
		fmt.Sprintf("%d in a transaction", l.InTransaction)}
	if l.Partial() {
		parts[1] += fmt.Sprintf(" (%d of other roles: hidden)", l.Hidden)
	}
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
	s := strings.Join(parts, " · ")
	if m.paused {
		s = st.warn.Render("⏸ PAUSED") + " · " + s
	}
	if m.rp != nil {
		s = m.rp.banner(st) + " " + s
		if note := m.rp.note(); note != "" {
			s += " · " + note
		}
	}
	return s
}

// footer is the confirmation when one is asked, else the status and the keys.
func (m *watchModel) footer(w int) []string {
	st := m.lk.st
	if a := m.confirm; a != nil {
		verb := "Cancel the statement of"
		after := "(its transaction stays open unless the application rolls it back)"
		if a.terminate {
			verb, after = "Terminate", "(its session ends and its transaction rolls back)"
		}
		user := a.node.User
		if user == "" {
			user = "?"
		}
		var lines []string
		if role := m.opts.Watch.Role(); role != "" && a.node.User != role {
			lines = append(lines, st.bad.Render(fmt.Sprintf("⚠ pid %d is not yours: it is role %s's session, and you act as %s. "+
				"Signalling it interrupts someone else's work.", a.node.Pid, user, role)))
		}
		q := fmt.Sprintf("%s pid %d — user %s, %s — running: %s %s? y: yes, n: no", verb, a.node.Pid, user, a.node.Session, a.node.Statement(), after)
		return wrapAll(append(lines, st.banner.Render(" ? ")+" "+st.bold.Render(q)), w)
	}
	var out []string
	if m.status != "" {
		out = append(out, fit(st.subtle.Render(m.status), w))
	}
	if m.rp != nil {
		return append(out, fit(m.help.ShortHelpView(append(append([]key.Binding(nil), watchReplayKeys...), m.keys.Up, m.keys.Focus, m.keys.Open, m.keys.Quit)), w))
	}
	return append(out, fit(m.help.View(m.keys), w))
}

// treePane draws the tree: each root blocker with its state and statement,
// each waiter under what it waits for; the selected node marked.
func (m *watchModel) treePane(w, h int) []string {
	st := m.lk.st
	title := "Who waits for whom (roots block, the indented wait)"
	if m.viewing != nil {
		title = "The tree at " + m.viewing.Time.Format("15:04:05") + " (history; esc: live)"
	}
	inner := w - 4
	ns, ds := m.nodes()
	var lines []string
	t := m.tree()
	for _, c := range t.Cycles {
		lines = append(lines, wrapAll([]string{st.cycle.Render("⟳ DEADLOCK " + c)}, inner)...)
	}
	for _, c := range t.SoftCycles {
		lines = append(lines, wrapAll([]string{st.warn.Render("⟲ a cycle through a queue, not a deadlock: "+c) +
			st.subtle.Render(" ("+locks.SoftCycleWhy+")")}, inner)...)
	}
	if len(ns) == 0 {
		msg := "No session waits."
		if m.look != nil && m.look.IdleInTransaction > 0 {
			msg += " Sessions idle in a transaction hold their locks until they end: the next to ask for one of those waits."
		}
		lines = append(lines, wrapAll([]string{st.subtle.Render(msg)}, inner)...)
		return m.panel(title, lines, w, h, !m.historyFocus)
	}
	// Keep the selected node in sight: draw from top, moved to show sel.
	// Counted up from the selected node, so a frame draws what fits, not
	// the whole tree; a line is kept for "more above" and "more below".
	sel := min(m.sel, len(ns)-1)
	if sel < m.top {
		m.top = sel
	}
	avail := h - 3 - len(lines)
	if sel < len(ns)-1 {
		avail--
	}
	used := 0
	for i := sel; i >= m.top; i-- {
		used += len(m.nodeLines(ns[i], ds[i], inner, false))
		above := 0
		if i > 0 {
			above = 1
		}
		if used+above > avail && i < sel {
			m.top = i + 1
			break
		}
	}
	if m.top > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("↑ %d more above", m.top)))
	}
	// The nodes that fit whole — the selected one always — and a line
	// saying how many more there are below.
	last := m.top
	for ; last < len(ns); last++ {
		nl := m.nodeLines(ns[last], ds[last], inner, last == m.sel && !m.historyFocus)
		room := h - 3
		if last < len(ns)-1 {
			room--
		}
		if last > sel && len(lines)+len(nl) > room {
			break
		}
		lines = append(lines, nl...)
	}
	if more := len(ns) - last; more > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("↓ %d more below (↑/↓ moves)", more)))
	}
	if t.Omitted > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("(%d more waits of sessions drawn already are not drawn again)", t.Omitted)))
	}
	return m.panel(title, lines, w, h, !m.historyFocus)
}

// panel is a pane whose lines, when more than fit, end with a line that
// says how many are not shown: nothing is cut without a mark.
func (m *watchModel) panel(title string, lines []string, w, h int, focused bool) []string {
	if room := h - 3; room > 0 && len(lines) > room {
		cut := len(lines) - room + 1
		lines = append(lines[:room-1:room-1], m.lk.st.subtle.Render(fmt.Sprintf("… %d more lines (a taller terminal shows them)", cut)))
	}
	return m.lk.panel(title, lines, w, h, focused)
}

// nodeLines draws one node: a root's who, state and statement; a waiter's
// relation to its parent, its lock, and its statement, wrapped — never cut.
func (m *watchModel) nodeLines(n locks.TreeNode, depth, w int, selected bool) []string {
	st := m.lk.st
	indent := strings.Repeat("   ", max(0, depth-1))
	mark := "  "
	if selected {
		mark = st.selected.Render("▶") + " "
	}
	var first string
	var sql []string
	if depth == 0 {
		first = mark + m.rootHeader(n)
		sql = m.lk.wrapSQL("", n.Statement(), w-4, false)
		indent = "  "
	} else {
		rel := st.wait.Render(n.Relation())
		if n.Soft {
			rel = st.warn.Render(n.Relation())
		}
		first = mark + indent + "└─ " + st.bold.Render(n.Session) + " " + rel
		if n.AlsoBehind > 0 {
			first += st.subtle.Render(n.Also())
		}
		if n.Lock != "" {
			first += st.subtle.Render(" · wants ") + n.Lock
		}
		indent += "     "
		if !n.Again {
			sql = m.lk.wrapSQL("", n.Statement(), w-ansi.StringWidth(indent), false)
		}
	}
	out := hanging(first, w, indent+"   ")
	for _, l := range sql {
		out = append(out, indent+st.script.Render(l))
	}
	return out
}

// hanging wraps s to w cells, its continuation lines indented.
func hanging(s string, w int, indent string) []string {
	lines := wrapAll([]string{s}, w)
	if len(lines) < 2 {
		return lines
	}
	rest := wrapAll([]string{strings.Join(lines[1:], " ")}, w-ansi.StringWidth(indent))
	for i := range rest {
		rest[i] = indent + rest[i]
	}
	return append(lines[:1], rest...)
}

// rootHeader is a root blocker's line: who, as whom, in what state, for how long.
func (m *watchModel) rootHeader(n locks.TreeNode) string {
	st := m.lk.st
	s := st.bold.Render(n.Session)
	if n.User != "" {
		s += st.subtle.Render(" · user " + n.User)
	}
	state := n.State
	if state == "" && n.Query == locks.HiddenQuery {
		state = "state hidden"
	}
	if state != "" {
		styled := st.run.Render(state)
		if strings.HasPrefix(state, "idle in transaction") {
			styled = st.bad.Render("⚠ " + state)
		}
		s += " · " + styled
	}
	if n.XactStart != nil {
		now := m.now()
		if m.viewing != nil {
			now = m.viewing.TreeAt
		}
		s += st.subtle.Render(" · transaction open " + locks.Age(now.Sub(*n.XactStart)))
	}
	return s
}

// whyPane explains the selected node: why a waiter waits, with the row of
// the conflict table that decides it; what a root blocker is doing.
func (m *watchModel) whyPane(w, h int) []string {
	st := m.lk.st
	inner := w - 4
	n, ok := m.selected()
	if m.historyFocus && m.hsel < len(m.history) {
		return m.historyDetail(&m.history[m.hsel], w, h)
	}
	if m.viewing != nil && !ok {
		return m.historyDetail(m.viewing, w, h)
	}
	if c := m.cycleOf(n); ok && m.viewing == nil && c != nil {
		m.explain.now, m.explain.room = m.now(), h-3
		title, lines := m.explain.standing(c, inner)
		return m.panel(title, lines, w, h, false)
	}
	if !ok {
		return m.panel("Why does a session wait?", wrapAll([]string{st.subtle.Render(
			"When a watched session waits for a lock, the tree shows it under the session that blocks it, and this pane says why: " +
				"the lock it wants, the lock the other holds, and the row of PostgreSQL's conflict table that decides it.")}, inner), w, h, false)
	}
	if n.Edge == nil {
		var lines []string
		waiters := len(n.Waiters)
		title := fmt.Sprintf("%s blocks %d session(s)", n.Session, waiters)
		switch {
		case strings.HasPrefix(n.State, "idle in transaction"):
			lines = append(lines, st.bad.Render("⚠ idle in transaction:")+" its application has sent no statement since the last one, nor COMMIT or ROLLBACK. "+
				"Every lock the transaction took stays held until it ends — the sessions under it wait for that.")
		case n.State == "active":
			lines = append(lines, "It is running a statement; the locks it holds stay held until its transaction ends, not when the statement does.")
		}
		lines = append(lines, st.subtle.Render("Its last statement is the tree's; the lock each waiter wants is on its line. "+
			"k cancels its statement, T ends its session (both ask first)."))
		return m.panel(title, wrapAll(lines, inner), w, h, false)
	}
	e := n.Edge
	title := "Why " + e.Waiter + " waits for " + e.Holder
	lines := wrapAll([]string{e.Why}, inner)
	if e.Queued {
		lines = append(lines, wrapAll([]string{st.subtle.Render("A soft block: it would not conflict with what is held, but PostgreSQL grants locks in order, so it waits its turn behind the conflicting request ahead of it.")}, inner)...)
	}
	if e.Conflict != nil {
		table := conflictLines(e.Conflict.Table(), e.Conflict.Held, e.Conflict.Wanted, st)
		if len(lines)+len(table) <= h-3 && ansi.StringWidth(table[0]) <= inner {
			lines = append(lines, table...)
		}
	}
	return m.panel(title, lines, w, h, false)
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

// historyDetail shows a history entry: what, when, the statements, and the server's own report.
func (m *watchModel) historyDetail(ev *locks.WatchEvent, w, h int) []string {
	st := m.lk.st
	lines := []string{ev.What}
	if ev.Verdict != "" {
		lines = append(lines, ev.Verdict)
	}
	if ev.Counted {
		lines = append(lines, st.subtle.Render("counted by the server (pg_stat_database.deadlocks)"))
	}
	for _, s := range ev.Statements {
		lines = append(lines, st.subtle.Render("  "+s))
	}
	if ev.Detail != "" {
		lines = append(lines, st.subtle.Render("the server's report:"))
		for _, d := range strings.Split(ev.Detail, "\n") {
			lines = append(lines, "  "+d)
		}
	}
	return m.panel(ev.Time.Format("15:04:05")+" — "+historyKind(*ev), wrapAll(lines, w-4), w, h, false)
}

func historyKind(ev locks.WatchEvent) string {
	switch {
	case ev.Kind == "deadlock" && ev.Seen:
		return "a deadlock seen"
	case ev.Kind == "deadlock":
		return "a deadlock the server broke between two looks"
	case ev.Kind == "server":
		return "the server's verdict"
	}
	return "a long wait"
}

// historyPane lists past long waits and deadlocks, newest last.
func (m *watchModel) historyPane(w, h int) []string {
	st := m.lk.st
	hist := m.history
	title := "History: waits over the threshold, deadlocks"
	if len(hist) == 0 {
		return m.lk.panel(title, []string{st.subtle.Render("nothing yet")}, w, h, m.historyFocus)
	}
	room := h - 3
	// The newest entries, unless the user is choosing one.
	first := max(0, len(hist)-room)
	if m.historyFocus {
		first = max(0, min(m.hsel-room+1, len(hist)-room))
		first = max(0, min(first, m.hsel))
	}
	var lines []string
	for i := first; i < len(hist) && len(lines) < room; i++ {
		ev := hist[i]
		mark := "  "
		if i == m.hsel && m.historyFocus {
			mark = st.selected.Render("▶") + " "
		}
		what := ev.What
		switch ev.Kind {
		case "wait":
			now := "waited"
			if !ev.Ended {
				now = "waiting"
			}
			what = fmt.Sprintf("%s %s: %s", now, locks.Age(ev.Lasted), ev.What)
		case "deadlock":
			what = st.cycle.Render("⟳ " + ev.What)
			if ev.Verdict != "" {
				what += st.subtle.Render(" — " + ev.Verdict)
			}
		case "server":
			what = st.bad.Render("✗ " + ev.What)
		}
		lines = append(lines, mark+st.subtle.Render(ev.Time.Format("15:04:05"))+" "+what)
	}
	return m.lk.panel(title, lines, w, h, m.historyFocus)
}
