package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"github.com/charmbracelet/x/ansi"

	"lockstep/lazyre"
)

// look is what every pane draws with: the palette, and how values that
// differ from run to run are shown. The root model owns it and every pane
// shares it, so a change of background reaches them all.
type look struct {
	st  styles
	vol Volatile
	// wrapped keeps statements wrapped by width: a screen wraps the same
	// few dozen on every redraw, and the wrapping's regexps dominated it.
	wrapped map[wrapKey][]string
	// silent names the panels that were given more lines than they could
	// show, with no mark saying so (a scroller marks what it leaves out):
	// a test renders every screen and wants none.
	silent []string
}

type wrapKey struct {
	name, sql string
	width     int
	brief     bool
}

// maxWrapped bounds the wrapped statements kept; typed ones are new each time.
const maxWrapped = 4096

// wrapSQL is wrapSQL, remembered; callers must not change the lines.
func (l *look) wrapSQL(name, sql string, width int, brief bool) []string {
	k := wrapKey{name, sql, width, brief}
	if lines, ok := l.wrapped[k]; ok {
		return lines
	}
	if l.wrapped == nil || len(l.wrapped) >= maxWrapped {
		l.wrapped = map[wrapKey][]string{}
	}
	l.wrapped[k] = wrapSQL(name, sql, width, brief)
	return l.wrapped[k]
}

// panel draws a bordered box of exactly w×h cells, title first, as lines.
// Drawn by hand rather than with a lipgloss border: the screen is redrawn on
// every poll, and measuring whole joined blocks dominated the frame time.
func (l *look) panel(title string, lines []string, w, h int, focused bool) []string {
	if w < 4 || h < 2 {
		return make([]string, max(h, 0))
	}
	tl, tr, bl, br, hz, vt := "╭", "╮", "╰", "╯", "─", "│"
	bs := l.st.border
	if focused {
		tl, tr, bl, br, hz, vt = "┏", "┓", "┗", "┛", "━", "┃"
		bs = l.st.borderFocused
	}
	innerW, innerH := w-4, h-2
	if len(lines)+1 > innerH {
		l.silent = append(l.silent, title)
	}
	out := make([]string, 0, h)
	out = append(out, bs.Render(tl+strings.Repeat(hz, w-2)+tr))
	left, right := bs.Render(vt)+" ", " "+bs.Render(vt)
	body := append([]string{l.st.panelTitle.Render(title)}, lines...)
	for i := range innerH {
		s := ""
		if i < len(body) {
			s = body[i]
		}
		out = append(out, left+fit(s, innerW)+right)
	}
	return append(out, bs.Render(bl+strings.Repeat(hz, w-2)+br))
}

// box is a pane's frame: its size, whether it has the focus, and where it
// is scrolled to in content longer than it. Panes draw through it, so none
// cuts its text without a mark, and each scrolls the same way.
type box struct {
	look    *look
	w, h    int
	focused bool
	scroll  scroller
}

func (b *box) SetSize(w, h int) { b.w, b.h = w, h }

// Focus gives the box the focus (its border shows it) or takes it away.
func (b *box) Focus(on bool) { b.focused = on }

// Scroll takes a key that scrolls; it says whether it was one.
func (b *box) Scroll(msg tea.KeyPressMsg) bool { return b.scroll.Update(msg, b.bodyH()) }

// bodyH is how many lines the box shows under its title.
func (b *box) bodyH() int { return max(0, b.h-3) }

// draw is the box with title and as many of lines as fit, marking what is
// out of view.
func (b *box) draw(title string, lines []string) []string {
	return b.look.panel(title, b.scroll.View(lines, b.bodyH(), b.look.st), b.w, b.h, b.focused)
}

// hjoin puts boxes of equal height side by side.
func hjoin(a, b []string) []string {
	out := make([]string, max(len(a), len(b)))
	for i := range out {
		if i < len(a) {
			out[i] = a[i]
		}
		if i < len(b) {
			out[i] += b[i]
		}
	}
	return out
}

// fit pads or cuts a line to exactly w cells.
func fit(s string, w int) string {
	sw := ansi.StringWidth(s)
	if sw > w {
		s = ansi.Truncate(s, w, "…")
		sw = ansi.StringWidth(s)
	}
	return s + strings.Repeat(" ", max(0, w-sw))
}

// nbHyphen stands for a minus sign while text is wrapped: ansi.Wrap may
// break after any "-", which cut "-10.00" into "-" and "10.00".
const nbHyphen = "\u2011"

var minusRE = lazyre.New(`-([0-9.])`)

// wrap is ansi.Wrap that never breaks a number from its minus sign.
func wrap(s string, w int) []string {
	glued := minusRE.ReplaceAllString(s, nbHyphen+"$1")
	lines := strings.Split(ansi.Wrap(glued, w, ""), "\n")
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, nbHyphen, "-")
	}
	return lines
}

// wrapAll wraps each line to w cells, never breaking a phrase that carries
// the lesson ("FOR NO KEY UPDATE", "WHERE id = 1") across two lines.
func wrapAll(lines []string, w int) []string {
	var out []string
	for _, l := range lines {
		glued := lessonRE.ReplaceAllStringFunc(l, func(phrase string) string {
			return strings.Join(strings.Fields(phrase), nbsp)
		})
		for _, wrapped := range wrap(glued, w) {
			out = append(out, strings.ReplaceAll(wrapped, nbsp, " "))
		}
	}
	return out
}

// oneLine puts SQL on one line, its runs of blanks made single spaces.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
