package tui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

// The teacher's screen of lockstep serve, built as the others are: a
// header and a footer (chrome.go), panes drawn through boxes that mark
// what they cut, every key an action of one table with its reason when it
// cannot act, the ? overlay and the one yes/no prompt. It shows the class
// (every student, their run, its state, connected or not), a student's
// screen as they see it, read-only, and pushes a run or a line to all.

// Classroom is the class lockstep serve holds, as the teacher's screen
// reads it and acts on it. Its methods are safe to call from any goroutine.
type Classroom interface {
	// Students is the class, in the order it joined.
	Students() []ClassStudent
	// Screen is a student's screen as last drawn, and its size.
	Screen(name string) (content string, w, h int, ok bool)
	// Watch says whether the teacher watches name's screen: while one
	// does, each of its frames signals Changed.
	Watch(name string, on bool)
	// Runs are what Push can start.
	Runs() []ClassRun
	// Current is the run the class was last given (a new student starts
	// there).
	Current() string
	// Push starts run in every student's interface from its first step —
	// now for those connected, at their next login for the others — and
	// says how many are connected.
	Push(run string) (int, error)
	// Broadcast shows text to every connected student; it says how many.
	Broadcast(text string) int
	// Changed is signalled when a student joins, leaves, steps, or (when
	// watched) draws a frame.
	Changed() <-chan struct{}
	// Describe is the header's second line: how students log in.
	Describe() string
}

// ClassStudent is one student of the class.
type ClassStudent struct {
	Name      string
	Connected bool
	// Since is when they connected, or, when not connected, left.
	Since time.Time
	// From is the address they connect from.
	From string
	// Run is where their run stands (their last, when not connected).
	Run Summary
	// Finished are the runs they took to their end, in order.
	Finished []string
}

// ClassRun is a run the teacher can push: a built-in scenario or a
// strategy, with its one line.
type ClassRun struct {
	Name, Summary string
}

// TeacherOptions set up the teacher's screen.
type TeacherOptions struct {
	Class   Classroom
	Theme   string
	NoColor bool
	// Clock is the time the screen shows; nil means time.Now.
	Clock func() time.Time
}

type teacherMode int

const (
	teacherList teacherMode = iota
	teacherWatch
	teacherPush
	teacherTyping
)

// teacherModel is the teacher's screen.
type teacherModel struct {
	ctx   context.Context
	opts  TeacherOptions
	class Classroom
	look  *look
	w, h  int
	clock func() time.Time

	mode     teacherMode
	students []ClassStudent
	selName  string // the selected student, by name: the list changes under it
	list     box
	detail   box
	// watching is the student whose screen is shown, and the mirror's box.
	watching string
	mirror   box
	runs     []ClassRun
	runSel   int
	runsBox  box
	input    textinput.Model

	table actions
	// listKeys and watchKeys act only in the class list, and only while
	// watching (syncKeys).
	listKeys, watchKeys []*action
	holders             // the help overlay and the question, in front of the keys
	status              string
}

type (
	classChangedMsg struct{}
	classListenMsg  struct{}
)

// NewTeacher is the teacher's screen over a class.
func NewTeacher(ctx context.Context, opts TeacherOptions) tea.Model {
	theme, err := ParseTheme(opts.Theme)
	if err != nil {
		theme = ThemeDefault
	}
	o := Options{NoColor: opts.NoColor}
	l := &look{st: o.styles(theme, true), vol: asIs{}}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	in := textinput.New()
	in.Placeholder = "a line for every student, e.g. now press h and d: the deadlock as it stood"
	in.CharLimit = 200
	m := &teacherModel{ctx: ctx, opts: opts, class: opts.Class, look: l, clock: clock, w: 120, h: 40,
		list: box{look: l}, detail: box{look: l}, mirror: box{look: l}, runsBox: box{look: l}, input: in}
	m.help.look = l
	m.table = m.newTable()
	m.students = m.class.Students()
	m.runs = m.class.Runs()
	return m
}

func (m *teacherModel) Init() tea.Cmd {
	return tea.Batch(m.listen(), tea.RequestBackgroundColor)
}

// listen waits for the class to change.
func (m *teacherModel) listen() tea.Cmd {
	ch, ctx := m.class.Changed(), m.ctx
	return func() tea.Msg {
		select {
		case <-ch:
			return classChangedMsg{}
		case <-ctx.Done():
			return nil
		}
	}
}

// selected is the index of the selected student, -1 when there is none.
func (m *teacherModel) selected() int {
	for i, s := range m.students {
		if s.Name == m.selName {
			return i
		}
	}
	if len(m.students) > 0 {
		m.selName = m.students[0].Name
		return 0
	}
	return -1
}

func (m *teacherModel) move(d int) {
	i := m.selected()
	if i < 0 {
		return
	}
	i = max(0, min(len(m.students)-1, i+d))
	m.selName = m.students[i].Name
}

func (m *teacherModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		m.input.SetWidth(max(20, msg.Width-30))
	case tea.BackgroundColorMsg:
		theme, _ := ParseTheme(m.opts.Theme)
		m.look.st = Options{NoColor: m.opts.NoColor}.styles(theme, msg.IsDark())
	case classChangedMsg:
		m.students = m.class.Students()
		// Frames come as fast as the students step: a screen a tenth of a
		// second old is live enough, and the teacher's costs a tenth.
		return m, tea.Tick(100*time.Millisecond, func(time.Time) tea.Msg { return classListenMsg{} })
	case classListenMsg:
		return m, m.listen()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	if m.mode == teacherTyping {
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		return m, cmd
	}
	return m, nil
}

func (m *teacherModel) key(msg tea.KeyPressMsg) tea.Cmd {
	if msg.String() == "ctrl+c" {
		return m.quit()
	}
	if m.mode != teacherTyping {
		// Esc and the next key, arriving together (over SSH, often): two
		// keys, as the stepping view takes them.
		if cmd, ok := twoKeys(msg, m.key); ok {
			return cmd
		}
	}
	if cmd, held := m.hold(msg, &m.status); held {
		return cmd
	}
	switch m.mode {
	case teacherTyping:
		return m.typingKey(msg)
	case teacherPush:
		return m.pushKey(msg)
	}
	m.status = ""
	m.syncKeys()
	cmd, why, found := m.table.handle(msg)
	if why != "" {
		m.status = why
	}
	if !found && m.mode == teacherWatch {
		m.status = "read-only: you watch " + m.watching + "'s screen, and the keys are theirs · esc returns to the class"
	}
	return cmd
}

// quit leaves the teacher's screen; the class goes on.
func (m *teacherModel) quit() tea.Cmd {
	if m.watching != "" {
		m.class.Watch(m.watching, false)
	}
	return tea.Quit
}

func (m *teacherModel) newTable() actions {
	noStudent := func() string {
		if m.selected() < 0 {
			return "no student has logged in yet"
		}
		return ""
	}
	const class, watch = "The class", "Watching a student"
	table := actions{
		{Binding: key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "student")),
			long: "select the previous/next student", group: class, bar: 5, why: noStudent,
			run: func(tea.KeyPressMsg) tea.Cmd { m.move(-1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("down")), group: class, why: noStudent,
			run: func(tea.KeyPressMsg) tea.Cmd { m.move(+1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("enter", "w"), key.WithHelp("enter", "watch")),
			long: "watch the selected student's screen live, read-only", group: class, bar: 1, why: noStudent,
			run: func(tea.KeyPressMsg) tea.Cmd { m.watch(m.selName); return nil }},
		{Binding: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "push a run")),
			long:  "start a scenario (or a strategy's transfers) in every student's interface, from its first step",
			group: class, bar: 2,
			why: func() string {
				if len(m.runs) == 0 {
					return "there is no run a student's role can start"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.mode, m.runsBox.scroll = teacherPush, scroller{}
				for i, r := range m.runs {
					if r.Name == m.class.Current() {
						m.runSel = i
					}
				}
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("b"), key.WithHelp("b", "broadcast")),
			long: "send every connected student a line, shown at the foot of their screen", group: class, bar: 3,
			run: func(tea.KeyPressMsg) tea.Cmd {
				m.mode = teacherTyping
				m.input.Reset()
				return m.input.Focus()
			}},
		{Binding: key.NewBinding(key.WithKeys("pgup", "pgdown", "home", "end"), key.WithHelp("pgup/pgdown", "scroll")),
			long: "scroll the class list a page (or their screen, when watching)", group: class,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				if m.mode == teacherWatch {
					m.mirror.Scroll(msg)
				} else {
					m.list.Scroll(msg)
				}
				return nil
			}},
		{Binding: key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "another student")),
			long: "watch the previous/next student", group: watch, bar: 2,
			run: func(tea.KeyPressMsg) tea.Cmd { m.move(-1); m.watch(m.selName); return nil }},
		{Binding: key.NewBinding(key.WithKeys("right")), group: watch,
			run: func(tea.KeyPressMsg) tea.Cmd { m.move(+1); m.watch(m.selName); return nil }},
		{Binding: key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "scroll")),
			long: "scroll their screen when it is taller than yours", group: watch, bar: 3,
			run: func(msg tea.KeyPressMsg) tea.Cmd { m.mirror.Scroll(msg); return nil }},
		{Binding: key.NewBinding(key.WithKeys("down")), group: watch,
			run: func(msg tea.KeyPressMsg) tea.Cmd { m.mirror.Scroll(msg); return nil }},
		{Binding: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back to the class")),
			group: watch, bar: 1,
			run: func(tea.KeyPressMsg) tea.Cmd { m.unwatch(); return nil }},
		{Binding: helpKey, group: class,
			run: func(tea.KeyPressMsg) tea.Cmd {
				title := "Keys — the class"
				if m.mode == teacherWatch {
					title = "Keys — watching " + m.watching
				}
				m.openHelp(title, m.table)
				return nil
			}},
		{Binding: quitKey, group: class, long: "leave this screen (the class goes on; serve's Ctrl-C ends it)",
			run: func(tea.KeyPressMsg) tea.Cmd { return m.quit() }},
	}
	for _, a := range table {
		switch {
		case a.group == watch:
			m.watchKeys = append(m.watchKeys, a)
		case a.Help().Key != "?" && a.Help().Key != "q" && a.Help().Key != "pgup/pgdown":
			m.listKeys = append(m.listKeys, a)
		}
	}
	return table
}

// syncKeys enables the keys of the screen shown: the class list's, or
// the watch's.
func (m *teacherModel) syncKeys() {
	for _, a := range m.listKeys {
		a.SetEnabled(m.mode == teacherList)
	}
	for _, a := range m.watchKeys {
		a.SetEnabled(m.mode == teacherWatch)
	}
}

// watch shows name's screen.
func (m *teacherModel) watch(name string) {
	if name == "" {
		return
	}
	if m.watching != "" && m.watching != name {
		m.class.Watch(m.watching, false)
	}
	if m.watching != name {
		m.class.Watch(name, true)
		m.mirror.scroll = scroller{}
	}
	m.watching, m.mode = name, teacherWatch
}

func (m *teacherModel) unwatch() {
	if m.watching != "" {
		m.class.Watch(m.watching, false)
	}
	m.watching, m.mode = "", teacherList
}

func (m *teacherModel) typingKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		m.mode, m.status = teacherList, "nothing sent"
		m.input.Blur()
		return nil
	case "enter":
		text := strings.TrimSpace(m.input.Value())
		m.mode = teacherList
		m.input.Blur()
		if text == "" {
			m.status = "nothing sent: the line was empty"
			return nil
		}
		n := m.class.Broadcast(text)
		m.status = fmt.Sprintf("sent to %s: %s", plural(n, "student"), text)
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return cmd
}

func (m *teacherModel) pushKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc", "q", "p":
		m.mode = teacherList
	case "up":
		m.runSel = max(0, m.runSel-1)
	case "down":
		m.runSel = min(len(m.runs)-1, m.runSel+1)
	case "enter", "space":
		run := m.runs[m.runSel]
		m.mode = teacherList
		connected := 0
		for _, s := range m.students {
			if s.Connected {
				connected++
			}
		}
		m.ask = &prompt{
			question: fmt.Sprintf("Start %s for every student (%s connected now, the others at their next login), from its first step? Their runs now roll back. y starts it", run.Name, plural(connected, "student")),
			yes: func() tea.Cmd {
				n, err := m.class.Push(run.Name)
				if err != nil {
					m.status = err.Error()
				} else {
					m.status = fmt.Sprintf("%s started for %s connected; the others start it when they log in", run.Name, plural(n, "student"))
				}
				return nil
			},
			no: "nothing pushed",
		}
	}
	return nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (m *teacherModel) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "lockstep serve — the class"
	m.look.st.paint(&v)
	return v
}

func (m *teacherModel) render() string {
	if m.w < minWidth || m.h < minHeight {
		return ansi.Wrap(fmt.Sprintf("lockstep needs a terminal of at least %d×%d; this one is %d×%d — please enlarge it.",
			minWidth, minHeight, m.w, m.h), max(m.w, 1), "")
	}
	if m.mode == teacherWatch {
		if _, ok := m.find(m.watching); !ok {
			m.unwatch()
		}
	}
	header := m.header()
	footer := m.footer()
	bodyH := m.h - strings.Count(header, "\n") - 1 - strings.Count(footer, "\n") - 1
	var rows []string
	switch {
	case m.helpOpen:
		rows = m.help.View(m.w, bodyH)
	case m.mode == teacherWatch:
		rows = m.mirrorView(bodyH)
	case m.mode == teacherPush:
		rows = m.pushView(bodyH)
	default:
		rows = m.classView(bodyH)
	}
	return header + "\n" + strings.Join(rows, "\n") + "\n" + footer
}

func (m *teacherModel) find(name string) (ClassStudent, bool) {
	for _, s := range m.students {
		if s.Name == name {
			return s, true
		}
	}
	return ClassStudent{}, false
}

func (m *teacherModel) header() string {
	st := m.look.st
	connected := 0
	for _, s := range m.students {
		if s.Connected {
			connected++
		}
	}
	if m.mode == teacherWatch {
		s, _ := m.find(m.watching)
		_, w, h, _ := m.class.Screen(m.watching)
		// The size first: where the screen is cut is the line to keep.
		line2 := st.subtle.Render(fmt.Sprintf("their screen is %d×%d", w, h))
		if w > m.w {
			line2 += st.warn.Render(" (wider than yours: cut lines end in …)")
		}
		line2 += " · " + s.Run.Run + " · " + stateWord(st, s.Run.State)
		if s.Run.Detail != "" {
			line2 += " — " + s.Run.Detail
		}
		if !s.Connected {
			line2 = st.warn.Render("○ not connected: the last screen they saw") + " · " + line2
		}
		return headerLines(st, m.w, "watching "+m.watching, "read-only, live", line2)
	}
	what := fmt.Sprintf("class — %s, %d connected", plural(len(m.students), "student"), connected)
	return headerLines(st, m.w, what, "run: "+m.class.Current(), st.subtle.Render(m.class.Describe()))
}

func (m *teacherModel) footer() string {
	st := m.look.st
	var keys string
	switch {
	case m.helpOpen:
		keys = keyBar(st, m.w, barOf(key.NewBinding(key.WithKeys("?", "esc"), key.WithHelp("?/esc", "close the help")),
			key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓ pgup/pgdown", "scroll"))))
	case m.ask != nil:
		keys = keyBar(st, m.w, promptBar)
	case m.mode == teacherTyping:
		keys = keyBar(st, m.w, barOf(key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "send it to every student")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))))
	case m.mode == teacherPush:
		keys = keyBar(st, m.w, barOf(key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "choose")),
			key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "push it (asks first)")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close"))))
	default:
		m.syncKeys()
		keys = keyBar(st, m.w, m.table.bar(), helpKey, quitKey)
	}
	footer := footerLines(st, m.w, m.ask, m.status, keys)
	if m.mode == teacherTyping {
		footer = st.accent.Render("to every student: ") + m.input.View() + "\n" + footer
	}
	return footer
}

// stateWord is a run's state as a symbol and a word: the colour says
// nothing the word does not.
func stateWord(st styles, s RunState) string {
	switch s {
	case RunWaiting:
		return st.wait.Render("⏳ waiting")
	case RunDeadlock:
		return st.cycle.Render("⟳ deadlock")
	case RunDone:
		return st.ok.Render("✓ done")
	case RunFailed:
		return st.bad.Render("✗ failed")
	case RunStarting:
		return st.subtle.Render("… starting")
	}
	return st.run.Render("▶ stepping")
}

// classView is the class, a line a student — their state in a symbol and
// a word, its detail as far as it fits (marked where cut) — then the
// selected student whole.
func (m *teacherModel) classView(h int) []string {
	st := m.look.st
	sel := m.selected()
	inner := m.w - 4
	detail := m.detailLines(sel, inner)
	detailH := min(len(detail)+3, 8, max(4, h/3))
	listH := h - detailH
	nameW, runW := len("student"), len("run")
	for _, s := range m.students {
		nameW = max(nameW, ansi.StringWidth(s.Name))
		runW = max(runW, ansi.StringWidth(s.Run.Run))
	}
	// A long name goes on a line of its own rather than push the state off.
	nameW, runW = min(nameW, 16), min(runW, 22)
	const connW = 12 // "● 10:31", "○ left 10:40"
	lead := 2 + nameW + 1 + connW + 1 + runW + 1
	var lines []string
	selLine := 0
	lines = append(lines, st.subtle.Render(fit("  "+fit("student", nameW)+" "+fit("connected", connW)+" "+fit("run", runW)+" state", inner)))
	for i, s := range m.students {
		mark := "  "
		if i == sel {
			mark = st.selected.Render("▸") + " "
			selLine = len(lines)
		}
		conn := st.ok.Render("●") + " " + s.Since.Format("15:04")
		if !s.Connected {
			conn = st.subtle.Render("○ left " + s.Since.Format("15:04"))
		}
		state := stateWord(st, s.Run.State)
		if n := len(s.Finished); n > 0 {
			state += st.subtle.Render(fmt.Sprintf(" (%d finished)", n))
		}
		if s.Run.Detail != "" {
			state += st.subtle.Render(" — ") + s.Run.Detail
		}
		if !s.Connected && s.Run.State != RunDone {
			// Their sessions rolled back when they left: what stood then
			// stands no more.
			state = st.subtle.Render("↺ rolled back; was ") + state
		}
		name := s.Name
		if ansi.StringWidth(name) > nameW {
			lines = append(lines, mark+name)
			mark, name = "  ", ""
		}
		lines = append(lines, mark+fit(name, nameW)+" "+fit(conn, connW)+" "+fit(s.Run.Run, runW)+" "+fit(state, max(10, inner-lead)))
	}
	if len(m.students) == 0 {
		lines = append(lines, wrapAll([]string{st.subtle.Render("No student has logged in yet. " + m.class.Describe())}, inner)...)
	}
	m.list.SetSize(m.w, listH)
	m.list.scroll.Show(selLine, len(lines), m.list.bodyH())
	connected := 0
	for _, s := range m.students {
		if s.Connected {
			connected++
		}
	}
	rows := m.list.draw(fmt.Sprintf("Students (%d, %d connected)", len(m.students), connected), lines)
	m.detail.SetSize(m.w, detailH)
	title := "Student"
	if sel >= 0 {
		title = m.students[sel].Name + " · enter watches their screen"
	}
	return append(rows, m.detail.draw(title, detail)...)
}

// detailLines are the selected student, whole: where they are, their
// run's state in full, what they finished.
func (m *teacherModel) detailLines(sel, inner int) []string {
	st := m.look.st
	if sel < 0 {
		return nil
	}
	s := m.students[sel]
	var lines []string
	where := "connected from " + s.From + " since " + s.Since.Format("15:04:05")
	if !s.Connected {
		where = "not connected since " + s.Since.Format("15:04:05") + ": their transactions rolled back; their next login starts " + s.Run.Run + " again"
	}
	lines = append(lines, wrapAll([]string{where}, inner)...)
	run := s.Run.Run + ": " + stateWord(st, s.Run.State)
	if s.Run.Detail != "" {
		run += " — " + s.Run.Detail
	}
	if !s.Connected && s.Run.State != RunDone {
		// As in the list: what stood when they left stands no more.
		run = s.Run.Run + ": " + st.subtle.Render("↺ rolled back when they left; it was ") + stateWord(st, s.Run.State)
		if s.Run.Detail != "" {
			run += " — " + s.Run.Detail
		}
	}
	lines = append(lines, wrapAll([]string{run}, inner)...)
	fin := "finished: none yet"
	if len(s.Finished) > 0 {
		fin = "finished: " + strings.Join(s.Finished, ", ")
	}
	return append(lines, wrapAll([]string{st.subtle.Render(fin)}, inner)...)
}

// mirrorView is the watched student's screen as they see it, scrolled
// where it is taller than the room, each line cut with a mark where it is
// wider.
func (m *teacherModel) mirrorView(h int) []string {
	content, _, _, ok := m.class.Screen(m.watching)
	if !ok || content == "" {
		content = m.look.st.subtle.Render("(nothing drawn yet)")
	}
	lines := strings.Split(content, "\n")
	if m.mirror.scroll.follow {
		m.mirror.scroll.follow = false
	}
	view := m.mirror.scroll.View(lines, h, m.look.st)
	out := make([]string, h)
	for i := range out {
		if i < len(view) {
			out[i] = fit(view[i], m.w)
		} else {
			out[i] = strings.Repeat(" ", m.w)
		}
	}
	return out
}

// pushView lists the runs a push can start.
func (m *teacherModel) pushView(h int) []string {
	st := m.look.st
	inner := m.w - 4
	var lines []string
	selLine := 0
	for i, r := range m.runs {
		mark := "  "
		name := fit(r.Name, 26)
		if i == m.runSel {
			mark = st.selected.Render("▸") + " "
			name = st.selected.Render(name)
			selLine = len(lines)
		}
		cur := ""
		if r.Name == m.class.Current() {
			cur = st.subtle.Render(" (the class's now)")
		}
		first := mark + name + " "
		for j, w := range wrapAll([]string{r.Summary + cur}, max(10, inner-29)) {
			if j == 0 {
				lines = append(lines, first+w)
			} else {
				lines = append(lines, strings.Repeat(" ", 29)+w)
			}
		}
	}
	m.runsBox.SetSize(m.w, h)
	m.runsBox.scroll.Show(selLine, len(lines), m.runsBox.bodyH())
	return m.runsBox.draw("Push a run to every student (they start it from its first step)", lines)
}
