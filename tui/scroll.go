package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// scroller is where a pane is in lines it cannot show at once. A pane
// that shows less than it has says so on its first and last lines ("↑ 3
// more lines", "↓ 5 more lines"), so nothing is ever cut without a mark.
type scroller struct {
	top int // the first line shown
	// follow keeps the end in view as lines are added (a log), until the
	// user scrolls up.
	follow bool
}

// scrollKeys move a scroller.
type scrollKeys struct {
	Up, Down, PageUp, PageDown, Home, End key.Binding
}

func newScrollKeys() scrollKeys {
	return scrollKeys{
		Up:       key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "scroll")),
		Down:     key.NewBinding(key.WithKeys("down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup/pgdown", "page")),
		PageDown: key.NewBinding(key.WithKeys("pgdown")),
		Home:     key.NewBinding(key.WithKeys("home"), key.WithHelp("home/end", "top/bottom")),
		End:      key.NewBinding(key.WithKeys("end")),
	}
}

var defaultScrollKeys = newScrollKeys()

// Update scrolls by a key, a page being h lines; it says whether the key
// was one of the scroller's.
func (s *scroller) Update(msg tea.KeyPressMsg, h int) bool {
	k := defaultScrollKeys
	page := max(1, h-2)
	switch {
	case key.Matches(msg, k.Up):
		s.top--
	case key.Matches(msg, k.Down):
		s.top++
	case key.Matches(msg, k.PageUp):
		s.top -= page
	case key.Matches(msg, k.PageDown):
		s.top += page
	case key.Matches(msg, k.Home):
		s.top = 0
	case key.Matches(msg, k.End):
		s.top = 1 << 30
	default:
		return false
	}
	s.top = max(0, s.top)
	s.follow = false
	return true
}

// Show keeps line i in view of an h-line window over n lines.
func (s *scroller) Show(i, n, h int) {
	if n <= h {
		s.top = 0
		return
	}
	// Lines under the markers are hidden: keep i off them.
	if i <= s.top {
		s.top = max(0, i-1)
	}
	if i >= s.top+h-1 {
		s.top = i - h + 2
	}
	s.top = max(0, min(s.top, n-h))
}

// View is the h lines of lines shown from top, the first and the last
// replaced by a mark when more lie beyond them.
func (s *scroller) View(lines []string, h int, st styles) []string {
	n := len(lines)
	if h <= 0 {
		return nil
	}
	if n <= h || h < 3 {
		s.top = 0
		if n > h && h > 0 {
			// Too small to scroll: the last line says what is cut.
			out := append([]string(nil), lines[:h]...)
			out[h-1] = st.subtle.Render(moreLines("↓", n-h+1))
			return out
		}
		return lines
	}
	if s.follow {
		s.top = n - h
	}
	s.top = max(0, min(s.top, n-h))
	out := append([]string(nil), lines[s.top:s.top+h]...)
	if s.top > 0 {
		out[0] = st.subtle.Render(moreLines("↑", s.top+1))
	}
	if end := s.top + h; end < n {
		out[h-1] = st.subtle.Render(moreLines("↓", n-end+1))
	}
	return out
}

// AtEnd says whether the last line is in view.
func (s *scroller) AtEnd(n, h int) bool { return s.top+h >= n }
