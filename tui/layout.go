package tui

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"lockstep/ledger"
	"lockstep/scenario"
)

// Minimum terminal size; below it one line asks for more.
const minWidth, minHeight = 80, 24

// The grid layout needs this much room; below it the compact one shows the
// sessions, the explanation, and one more pane at a time (v switches).
const gridWidth, gridHeight = 110, 34

// tabNames are the panes the compact layout shows one at a time.
var tabNames = []string{"Locks", "Graph", "Log", "Accounts"}

// View draws the whole screen in the alternate screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "lockstep"
	m.look.st.paint(&v)
	return v
}

// render lays the panes out over the frame shown. Everything that answers
// "why is this session waiting?" comes first: the sessions with their
// statements whole, the explanation, the graph and the locks behind the
// waits; the log and the accounts take what room is left.
func (m *Model) render() string {
	spy := m.spyClocks()
	defer func() { m.clk.every = spy.finest }()
	if m.width == 0 || m.height == 0 {
		return ""
	}
	if m.width < minWidth || m.height < minHeight {
		msg := fmt.Sprintf("lockstep needs a terminal of at least %d×%d; this one is %d×%d — please enlarge it.",
			minWidth, minHeight, m.width, m.height)
		return ansi.Wrap(msg, m.width, "")
	}
	m.showFrame()
	header := m.viewHeader()
	footer := m.viewFooter()
	bodyH := m.height - lipgloss.Height(header) - lipgloss.Height(footer)
	var rows []string
	if m.lesson != nil && !m.helpOpen && !m.zoomed && m.fatal == "" {
		lesson := m.lessonRows(bodyH)
		rows, bodyH = lesson, bodyH-len(lesson)
	}
	switch {
	case m.fatal != "" || m.starting:
		msg := "starting the sessions…"
		if m.fatal != "" {
			msg = "could not start the sessions: " + m.fatal + "\n\n" + fatalRemedy(m.fatalErr, m.cfg.Scenario != nil, scenario.FixFamily(m.cfg.ScenarioName) != nil)
		}
		rows = append(rows, m.look.panel("Sessions", wrapAll(strings.Split(msg, "\n"), m.width-4), m.width, bodyH, false)...)
	case m.helpOpen:
		rows = m.help.View(m.width, bodyH)
	case m.zoomed:
		rows = m.zoomView(m.width, bodyH)
	case m.width >= gridWidth && m.height >= gridHeight+lessonGridRoom(m):
		rows = append(rows, m.grid(bodyH)...)
	default:
		rows = append(rows, m.compact(bodyH)...)
	}
	return header + "\n" + strings.Join(rows, "\n") + "\n" + footer
}

// fatalRemedy says what the user can do when the sessions could not start:
// a schema another run holds, or another role owns, needs another --schema,
// which only a new start can take. In a scenario's run s offers nothing
// (the set-up form is the transfers'), so it is not offered.
func fatalRemedy(err error, scenario, fixes bool) string {
	if errors.Is(err, ledger.ErrSchemaInUse) || errors.Is(err, ledger.ErrSchemaNotYours) || errors.Is(err, ledger.ErrUnmarkedSchema) {
		return "q quits; start again with another --schema (or wait for the other run to end)."
	}
	if errors.Is(err, ledger.ErrNotLocksteps) {
		return "q quits; drop or change what the line names yourself, or run lockstep reset --force, then start again."
	}
	switch {
	case scenario && fixes:
		return "f starts the next fix, m picks a transfer strategy instead, q quits."
	case scenario:
		return "m picks a transfer strategy instead, q quits."
	}
	return "m picks another strategy, s another set-up, q quits."
}

// grid is the layout with room for everything: the sessions; the
// explanation beside the graph and the accounts; the locks beside the log.
func (m *Model) grid(bodyH int) []string {
	rows, rest, menu := m.sessionsOver(max(8, bodyH*35/100), bodyH)
	if menu {
		return rows
	}
	leftW := min(max(74, m.width*60/100), m.width-36)
	rightW := m.width - leftW
	// The locks below: their header, the two locks behind each of two
	// waits (a deadlock's), and the line that says more are there.
	const below = 9
	title, explain := m.explain.Content(leftW-4, rest-below-3)
	accNeed := len(m.accounts.Lines(rightW-4)) + 3
	graphNeed := len(m.graph.Lines(rightW-4)) + 3
	midH := min(max(len(explain)+3, graphNeed+accNeed, 8), rest-below)
	botH := rest - midH
	accH := min(accNeed, max(midH/2, midH-graphNeed))
	m.explain.SetSize(leftW, midH)
	m.graph.SetSize(rightW, midH-accH)
	m.accounts.SetSize(rightW, accH)
	m.locks.SetSize(leftW, botH)
	m.log.SetSize(rightW, botH)
	rows = append(rows, hjoin(m.explain.View(title, explain), append(m.graph.View(), m.accounts.View()...))...)
	return append(rows, hjoin(m.locks.View(), m.log.View())...)
}

// compact is the layout for smaller terminals: the sessions, the
// explanation, and below them one pane at a time behind a tab bar. The
// explanation is whole when it can be: the sessions first say in fewer
// lines whom each waits for (each keeps its line while they take at most
// half the screen), then the pane below gives up its room, down to a
// glimpse of itself and then to nothing.
func (m *Model) compact(bodyH int) []string {
	floor := min(m.sessions.BriefHeight(m.width), bodyH/2)
	rows, rest, menu := m.sessionsOver(max(7, bodyH*30/100, floor), bodyH)
	if menu {
		return rows
	}
	// The pane below wants, with a wait, room for its header, the lock
	// asked for, the one that blocks it and a mark (8 lines with the tab
	// bar); else a glimpse (least: the tab bar, a title and a line).
	const least = 5
	want := least
	if _, waits := m.shown().newestWait(); waits {
		want = 8
	}
	// The conflict table only where it leaves the pane below its room.
	title, explain := m.explain.Content(m.width-4, bodyH-floor-want-3)
	need := len(explain) + 3
	if short := need + want - rest; short > 0 {
		if target := max(floor, bodyH-rest-short); target < bodyH-rest {
			rows, rest, _ = m.sessionsOver(target, bodyH)
		}
	}
	whyH := min(need, rest)
	if rest-whyH < least {
		// No room for a pane below: the tab bar alone keeps the books'
		// verdict in view; the explanation takes the rest.
		whyH = max(3, rest-1)
	} else if spare := rest - whyH - want; spare > 0 {
		// The explanation is short: the sessions take what the pane below
		// does not need.
		rows, rest, _ = m.sessionsOver(bodyH-rest+spare, bodyH)
	}
	if whyH < need {
		// Cut: say so with the room the table would have had.
		title, explain = m.explain.Content(m.width-4, whyH-3)
	}
	m.explain.SetSize(m.width, whyH)
	rows = append(rows, m.explain.View(title, explain)...)
	tabH := rest - whyH
	if tabH < 1 {
		return rows
	}
	rows = append(rows, m.tabBar())
	if tabH < least {
		return rows
	}
	pane := m.tabPanes()[m.tab]
	pane.SetSize(m.width, tabH-1)
	return append(rows, pane.View()...)
}

// tabPanes are the panes behind tabNames, in order.
func (m *Model) tabPanes() []pane {
	return []pane{m.locks, m.graph, m.log, m.accounts}
}

// sessionsOver draws the sessions in at most maxH of bodyH lines, and
// under them the strategy menu or the set-up form when one is open (menu).
// rest is the room left below the sessions.
func (m *Model) sessionsOver(maxH, bodyH int) (rows []string, rest int, menu bool) {
	sessH := m.sessions.Fit(m.width, maxH)
	m.sessions.SetSize(m.width, sessH)
	rows, rest = m.sessions.View(), bodyH-sessH
	if below := m.menus(m.width, rest); below != nil {
		return append(rows, below...), 0, true
	}
	return rows, rest, false
}

// tabBar names the compact layout's panes, the shown one marked, and ends
// with the books' verdict, which must stay in view.
func (m *Model) tabBar() string {
	st := m.look.st
	var parts []string
	for i, name := range tabNames {
		if name == "Accounts" && !m.hasLedger() {
			name = "Outcome" // a scenario's tables are its own
		}
		if i == m.tab {
			parts = append(parts, st.selected.Render("["+name+"]"))
		} else {
			parts = append(parts, st.subtle.Render(" "+name+" "))
		}
	}
	tabs := strings.Join(parts, " ")
	hint := st.subtle.Render("  v switches")
	v := m.accounts.Verdict()
	if v == "" {
		return ansi.Truncate(tabs+hint, m.width, "…")
	}
	// The verdict whole when it fits, else its brief form — a cut one can
	// read as its opposite ("BROKEN: total 200.00 = 20…"); the hint goes
	// before the brief verdict is cut.
	brief := m.accounts.BriefVerdict()
	for _, bar := range []string{tabs + hint + "  " + v, tabs + hint + "  " + brief, tabs + "  " + brief} {
		if ansi.StringWidth(bar) <= m.width {
			return bar
		}
	}
	return ansi.Truncate(tabs+"  "+brief, m.width, "…")
}

// menus is the strategy menu or the set-up form, when open, in the room
// below the sessions.
func (m *Model) menus(w, h int) []string {
	switch m.mode {
	case modeStrategy:
		m.menu.SetSize(w, h)
		return m.menu.View()
	case modeSetup:
		m.form.SetSize(w, h)
		return m.form.View()
	}
	return nil
}

func (m *Model) viewHeader() string {
	st, vol := m.look.st, m.look.vol
	summary := m.opts.ScenarioSummary
	if m.cfg.Scenario == nil && m.cfg.Strategy != nil && (m.lesson == nil || m.lesson.title == "") {
		summary = m.cfg.Strategy.Summary
	}
	if m.lesson != nil && m.lesson.questionAhead() {
		summary = ""
	}
	var line2 string
	f := m.shown()
	switch {
	case m.mode == modeHistory:
		line2 = m.historyBanner() + " " + st.subtle.Render(vol.Time(f.at)) + " " + f.what
	case f.lost:
		line2 = st.banner.Render(" NOT LIVE ") + " " + st.bad.Render("the observer lost the server ("+f.lostWhy+"): the screen shows the last it knew · r reconnects")
	default:
		auto := "autoplay off"
		if m.auto.on {
			auto = fmt.Sprintf("autoplay ▶ every %s", m.auto.Every())
		}
		server := m.opts.Server
		if m.cfg.TwoDatabases() && m.cfg.DB2 != nil {
			server += fmt.Sprintf(" · A = %s, B = %s", m.cfg.DB.Name(), m.cfg.DB2.Name())
		}
		deadlock, run := "—", "—" // until a run has started
		if m.runID != "" {
			deadlock, run = vol.DeadlockTimeout(m.deadlock), vol.RunID(m.runID)
		}
		poll := "poll " + m.cfg.Poll.String()
		if m.eng != nil {
			if every, took := m.eng.PollInterval(); took > 0 {
				poll = st.warn.Render(fmt.Sprintf("polling every %s: one poll takes %s (the server holds many locks)",
					every, took.Round(time.Millisecond)))
			}
		}
		line2 = st.subtle.Render(fmt.Sprintf("%s · ", server)) + poll + st.subtle.Render(fmt.Sprintf(" · deadlock_timeout %s · run %s · %s",
			deadlock, run, auto))
	}
	return headerLines(st, m.width, m.runName(), summary, line2)
}

func (m *Model) viewFooter() string {
	st := m.look.st
	footer := footerLines(st, m.width, m.ask, m.footerStatus(), m.footerKeys())
	if q := m.lessonPromptLines(m.width); q != nil && m.ask == nil && !m.helpOpen && m.mode != modeTyping {
		footer = strings.Join(q, "\n") + "\n" + footer
	}
	if m.mode == modeTyping && m.sessions.Selected() < len(m.live.sessions) {
		footer = st.accent.Render(m.live.sessions[m.sessions.Selected()].Name+" SQL ") + m.input.View() + "\n" + footer
	}
	return footer
}

// zoomBackKey is how a zoomed pane goes back, in the footer.
var zoomBackKey = key.NewBinding(key.WithKeys("esc", "z"), key.WithHelp("esc/z", "unzoom"))

// footerKeys is the footer's line of keys: those of what has the keys
// now, ending with help and quit wherever they apply.
func (m *Model) footerKeys() string {
	st, w := m.look.st, m.width
	switch {
	case m.helpOpen:
		return keyBar(st, w, barOf(key.NewBinding(key.WithKeys("?", "esc"), key.WithHelp("?/esc", "close the help")),
			key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓ pgup/pgdown", "scroll"))))
	case m.ask != nil:
		return keyBar(st, w, promptBar)
	case m.lesson != nil && m.mode != modeTyping:
		return keyBar(st, w, m.keyTable().bar(), helpKey, quitKey)
	}
	switch m.mode {
	case modeTyping:
		return keyBar(st, w, typingBar)
	case modeStrategy:
		return keyBar(st, w, barOf(m.menu.keys.ShortHelp()...))
	case modeSetup:
		return keyBar(st, w, barOf(m.form.keys.ShortHelp()...))
	}
	tail := []key.Binding{helpKey, quitKey}
	if m.zoomed {
		// The way out of a zoom first: it hides the rest of the screen.
		tail = append([]key.Binding{zoomBackKey}, tail...)
	}
	if m.mode == modeHistory {
		return keyBar(st, w, m.histTable.bar(), tail...)
	}
	return keyBar(st, w, m.table.bar(), tail...)
}
