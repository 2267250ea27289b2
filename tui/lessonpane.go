package tui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/x/ansi"

	"lockstep/learn"
)

// lessonPane is the lesson's narration above the sessions: what the last
// step did (the answer marked, what the server did, the lesson's why) and
// what the next one will do. It draws through a box, so a long
// explanation scrolls with a mark rather than being cut.
type lessonPane struct {
	box
	title string
	lines []string
}

func (p *lessonPane) View() []string { return p.draw(p.title, p.lines) }

// lessonTitle is the pane's title: the lesson, where the student is, the
// score so far.
func (m *Model) lessonTitle() string {
	ll := m.lesson
	l := ll.l
	which := "Lesson"
	if l.Number > 0 && ll.opts.Of > 0 {
		which = fmt.Sprintf("Lesson %d of %d", l.Number, ll.opts.Of)
	}
	step := min(ll.pos+1, len(ll.flat))
	where := fmt.Sprintf("step %d of %d", step, len(ll.flat))
	if ll.hist >= 0 {
		where = fmt.Sprintf("back at step %d of %d (esc: now)", ll.moments[ll.hist].pos, len(ll.flat))
	}
	title := which + " · " + l.Title + " · " + where
	if lp := ll.progress(); lp != nil {
		if right, asked := lp.Score(); asked > 0 {
			title += fmt.Sprintf(" · %d/%d right first time", right, asked)
		}
	}
	return title
}

// lessonLines are the pane's lines at width w: what has happened. In
// the lesson's history, the moment's step and what it did; else the last
// step's result, the lesson's start or a part's, or its end. What comes
// next — the narration and the question — is in the footer.
func (m *Model) lessonLines(w int) []string {
	ll := m.lesson
	st := m.look.st
	var out []string
	add := func(style func(...string) string, prefix, text string) {
		for i, l := range wrapAll([]string{text}, max(10, w-ansi.StringWidth(prefix))) {
			p := prefix
			if i > 0 {
				p = strings.Repeat(" ", ansi.StringWidth(prefix))
			}
			if style != nil {
				l = style(l)
			}
			out = append(out, p+l)
		}
	}
	if ll.hist >= 0 {
		mo := ll.moments[ll.hist]
		if mo.result == nil {
			add(nil, "", "The part's start: "+partLine(ll.l.Parts[ll.flat[min(mo.pos, len(ll.flat)-1)].Part]))
		} else {
			add(st.subtle.Render, "◀ this step: ", narration(mo.result.at))
			m.resultLines(mo.result, add)
		}
		if mo.pos < len(ll.flat) {
			add(st.subtle.Render, "▶ then: ", narration(ll.flat[mo.pos]))
		}
		return out
	}
	at, more := ll.at()
	if !more && ll.judge == nil && !ll.busy {
		// The end first: what was scored, what to do next.
		right, asked := 0, 0
		if lp := ll.progress(); lp != nil {
			right, asked = lp.Score()
		}
		done := "✓ Lesson done."
		if asked > 0 {
			done += fmt.Sprintf(" %d of %d questions right the first time.", right, asked)
		}
		add(st.ok.Render, "", done+" Next: "+m.lessonEndHint()+".")
		if ex := ll.l.Exercise; ex != nil {
			add(st.accent.Render, "Exercise: ", ex.Text)
			m.gradeLines(add)
		}
	}
	switch {
	case ll.judge != nil || ll.busy:
		add(st.wait.Render, "⏳ ", "on the server: "+narration(at))
	case ll.last != nil && ll.last.at.Part == ll.part:
		m.resultLines(ll.last, add)
	case ll.pos == 0 && ll.l.Intro != "":
		add(nil, "", ll.l.Intro)
	case more:
		p := ll.l.Parts[at.Part]
		summary := ""
		if m.opts.ScenarioSummary != "" && at.Part == ll.part && !ll.questionAhead() {
			summary = ": " + m.opts.ScenarioSummary
		}
		add(nil, "", fmt.Sprintf("Part %d of %d — %s%s", at.Part+1, len(ll.l.Parts), partLine(p), summary))
	}
	if len(out) == 0 {
		add(st.subtle.Render, "", "…")
	}
	return out
}

// resultLines say what an action did: a question's answer marked, with
// what the server did and the lesson's why; for a step without a question,
// what was worth noticing.
func (m *Model) resultLines(r *lessonResult, add func(func(...string) string, string, string)) {
	st := m.look.st
	q := r.at.Action.Question
	if q == nil || r.verdict == nil {
		mark, style := "✓ ", st.ok.Render
		text := narration(r.at)
		if next, ok := m.lesson.sameLineAfter(r.at); ok {
			// One line stepping several sessions: its sentence is not
			// done until the last of them has run.
			mark, style = "… ", st.run.Render
			text = r.at.Action.Session + "'s part ran; " + next.Action.Session + "'s is next: " + text
		}
		if r.obs.Problem != "" || r.obs.Timeout {
			mark, style = "✗ ", st.bad.Render
		}
		add(style, mark, text)
		for _, h := range r.obs.Notable() {
			add(nil, "  ", h)
		}
		return
	}
	v := r.verdict
	happened := ""
	for _, i := range v.True {
		if happened != "" {
			happened += "; "
		}
		happened += q.Options[i].Claim.String()
	}
	switch {
	case !v.Decided():
		add(st.warn.Render, "? ", fmt.Sprintf("None of the options was what happened (the lesson's mistake, not yours): %s", strings.Join(v.Happened, " ")))
		return
	case v.Answer < 0:
		add(st.bold.Render, "• ", "The server: "+happened+".")
	case v.Right:
		add(st.ok.Render, "✓ ", "Right: "+m.cast(happened)+".")
	default:
		add(st.bad.Render, "✗ ", fmt.Sprintf("Not so: you said %d (%s); the server: %s.", v.Answer+1, m.cast(q.Options[v.Answer].Claim.String()), m.cast(happened)))
	}
	for _, h := range v.Happened {
		add(nil, "  ", h)
	}
	if q.Why != "" {
		add(st.subtle.Render, "  Why: ", q.Why)
	}
}

// gradeLines say how the exercise's last grade went.
func (m *Model) gradeLines(add func(func(...string) string, string, string)) {
	ll, st := m.lesson, m.look.st
	switch g := ll.grade; {
	case ll.grading:
		add(st.wait.Render, "⏳ ", "grading on the server: every interleaving of two sessions, both ways, then a chaos run…")
	case g == nil:
	case g.Passed:
		add(st.ok.Render, "✓ ", g.Summary())
	default:
		add(st.bad.Render, "✗ ", g.Summary())
		if g.Counterexample != nil {
			add(st.subtle.Render, "", "p plays that interleaving step by step; e edits your answer; g grades it again.")
		}
	}
}

// narration is an action's narration, or what it does when it has none.
func narration(at learn.At) string {
	a := at.Action
	if a.Say != "" {
		return a.Say
	}
	switch a.Kind {
	case learn.SQL:
		return a.Session + " runs " + a.SQL
	case learn.Bench:
		return "a short benchmark: " + strings.Join(a.Bench.Strategies, " against ")
	}
	return a.Kind.String() + " " + a.Session
}

// partLine is what a part runs, in a line.
func partLine(p *learn.Part) string {
	if p.Make != nil {
		return p.Summary
	}
	return p.Run.Describe()
}

// lessonPromptLines are what comes next, for the footer: the next step's
// narration and, when it has one, its question with the options keys 1–5
// answer.
func (m *Model) lessonPromptLines(w int) []string {
	ll := m.lesson
	if ll == nil || ll.hist >= 0 || ll.judge != nil || ll.busy {
		return nil
	}
	at, ok := ll.at()
	if !ok {
		return nil
	}
	st := m.look.st
	if at.Part != ll.part {
		return wrapAll([]string{st.accent.Render("▶ ") + fmt.Sprintf("Part %d of %d: %s — space starts it.",
			at.Part+1, len(ll.l.Parts), partLine(ll.l.Parts[at.Part]))}, w)
	}
	if !ll.ready {
		return []string{st.subtle.Render("starting the sessions…")}
	}
	next := narration(at)
	if at.Action.Question == nil {
		return wrapAll([]string{st.accent.Render("▶ ") + next + st.subtle.Render("  (space runs it)")}, w)
	}
	lines := wrapAll([]string{st.accent.Render("▶ ") + next}, w)
	q := at.Action.Question
	lines = append(lines, wrapAll([]string{st.banner.Render(" ? ") + " " + st.bold.Render(q.Text)}, w)...)
	var opts []string
	for i, o := range q.Options {
		opts = append(opts, st.key.Render(fmt.Sprint(i+1))+" "+m.cast(o.Text))
	}
	// One line when they fit (closer together if need be), else one an
	// option: the sessions above need the room.
	for _, sep := range []string{"  ·  ", " · ", "  "} {
		if one := strings.Join(opts, st.subtle.Render(sep)); ansi.StringWidth(one) <= w {
			return append(lines, one)
		}
	}
	for _, o := range opts {
		lines = append(lines, wrapAll([]string{o}, w)...)
	}
	return lines
}

// lessonRows draws the lesson's pane in at most a share of bodyH: all of
// it when it fits, else its first lines with a mark (it scrolls when it
// has the focus).
func (m *Model) lessonRows(bodyH int) []string {
	w := m.width
	lines := m.lessonLines(w - 4)
	// The sessions and the explanation keep room for a few lines each.
	most := max(5, min(bodyH/2, bodyH-11))
	if ll := m.lesson; ll.hist < 0 && ll.last != nil && ll.last.verdict != nil && ll.last.at.Part == ll.part {
		// An answer just judged: what the server did and why is the
		// lesson; the panes below keep a few lines each, marked.
		most = max(most, bodyH-10)
	}
	h := min(len(lines)+3, most)
	title := m.lessonTitle()
	if len(lines)+3 > h && m.focus != paneLesson {
		title += " · tab: scroll"
	}
	m.lesson.pane.title, m.lesson.pane.lines = title, lines
	m.lesson.pane.SetSize(w, h)
	return m.lesson.pane.View()
}

// lessonGridRoom is how much taller than the grid's floor the screen must
// be for the grid layout under a lesson's pane.
func lessonGridRoom(m *Model) int {
	if m.lesson == nil {
		return 0
	}
	return 8
}

// cast puts, after each session a scenario names its own way in a
// lesson's words (migration), the name the screen shows it by (T2):
// "migration (T2) waits for report (T1)".
func (m *Model) cast(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		core := strings.TrimRight(w, ",.;:")
		for _, s := range m.live.sessions {
			if s.Label != "" && s.Label != s.Name && core == s.Label {
				words[i] = core + " (" + s.Name + ")" + w[len(core):]
			}
		}
	}
	return strings.Join(words, " ")
}
