package tui

import (
	"fmt"
	"image/color"
	"os"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
)

// Themes, by the name --theme and LOCKSTEP_THEME take.
const (
	ThemeDefault   = "default"
	ThemeProjector = "projector"
)

// ParseTheme checks a theme's name.
func ParseTheme(s string) (string, error) {
	switch s {
	case "", ThemeDefault:
		return ThemeDefault, nil
	case ThemeProjector:
		return ThemeProjector, nil
	}
	return "", fmt.Errorf("unknown theme %q: use default or projector", s)
}

// palette is a theme's colours, as hex. Every colour text is drawn in is
// readable on bg: at least 4.5:1 (WCAG AA) in the default theme, 7:1 in
// the projector's (a test computes them). border is no text's colour.
type palette struct {
	bg, fg, muted, green, red, yellow, blue, purple, border, selBg string
	// bgs are the backgrounds the palette must be readable on: a terminal's
	// own, which the default theme does not set, is one of these.
	bgs []string
}

// palettes are the default theme's dark and light palettes and the
// projector's, which sets the screen's background itself.
var (
	darkPalette = palette{bg: "#000000", fg: "#e6edf3", muted: "#9da7b3", green: "#3fb950", red: "#ff7b72",
		yellow: "#e3b341", blue: "#79c0ff", purple: "#d2a8ff", border: "#484f58", selBg: "#1f3a5f",
		bgs: []string{"#000000", "#1e1e1e", "#282c34"}}
	lightPalette = palette{bg: "#ffffff", fg: "#1f2328", muted: "#57606a", green: "#116329", red: "#a40e26",
		yellow: "#7d4e00", blue: "#0550ae", purple: "#6639ba", border: "#8c959f", selBg: "#ddf4ff",
		bgs: []string{"#ffffff", "#f6f8fa"}}
	projectorPalette = palette{bg: "#000000", fg: "#ffffff", muted: "#c6c6c6", green: "#5fff87", red: "#ff8787",
		yellow: "#ffd75f", blue: "#87d7ff", purple: "#d7afff", border: "#a8a8a8", selBg: "#ffffff",
		bgs: []string{"#000000"}}
)

// styles is the one palette of the interface. Every meaning colour carries
// is also said by a symbol or a word, so NO_COLOR (which Bubble Tea
// honours) loses nothing; and no meaning is in faint text.
type styles struct {
	pal                               palette
	title, subtle, bold, script       lipgloss.Style
	ok, bad, warn, wait, run, accent  lipgloss.Style
	selected, cycle, banner           lipgloss.Style
	border, borderFocused, panelTitle lipgloss.Style
	key                               lipgloss.Style
	// fullScreen is set by the projector theme: the screen's own
	// foreground and background, so contrast does not depend on the
	// terminal's — unless NO_COLOR asks for no colour at all.
	fullScreen bool
}

func newStyles(theme string, isDark bool) styles {
	p := lightPalette
	if isDark {
		p = darkPalette
	}
	if theme == ThemeProjector {
		p = projectorPalette
	}
	c := func(hex string) color.Color { return lipgloss.Color(hex) }
	st := styles{
		pal:           p,
		title:         lipgloss.NewStyle().Bold(true).Foreground(c(p.fg)),
		subtle:        lipgloss.NewStyle().Foreground(c(p.muted)),
		script:        lipgloss.NewStyle().Foreground(c(p.fg)),
		bold:          lipgloss.NewStyle().Bold(true),
		ok:            lipgloss.NewStyle().Foreground(c(p.green)),
		bad:           lipgloss.NewStyle().Foreground(c(p.red)).Bold(true),
		warn:          lipgloss.NewStyle().Foreground(c(p.yellow)),
		wait:          lipgloss.NewStyle().Foreground(c(p.yellow)).Bold(true),
		run:           lipgloss.NewStyle().Foreground(c(p.blue)),
		accent:        lipgloss.NewStyle().Foreground(c(p.blue)).Bold(true),
		selected:      lipgloss.NewStyle().Background(c(p.selBg)).Foreground(c(p.fg)).Bold(true),
		cycle:         lipgloss.NewStyle().Foreground(c(p.purple)).Bold(true),
		banner:        lipgloss.NewStyle().Foreground(c(p.bg)).Background(c(p.red)).Bold(true),
		border:        lipgloss.NewStyle().Foreground(c(p.border)),
		borderFocused: lipgloss.NewStyle().Foreground(c(p.blue)).Bold(true),
		panelTitle:    lipgloss.NewStyle().Bold(true).Foreground(c(p.blue)),
		key:           lipgloss.NewStyle().Bold(true).Foreground(c(p.fg)),
		fullScreen:    theme == ThemeProjector && os.Getenv("NO_COLOR") == "",
	}
	if theme == ThemeProjector {
		// Reverse video: the selection reads as far as the back of a room.
		st.selected = lipgloss.NewStyle().Foreground(c(p.bg)).Background(c(p.fg)).Bold(true)
	}
	return st
}

// helpStyles draws the keys in the theme's readable colours, not the
// help's own greys.
func (st styles) helpStyles() help.Styles {
	return help.Styles{
		Ellipsis:       st.subtle,
		ShortKey:       st.key,
		ShortDesc:      st.subtle,
		ShortSeparator: st.subtle,
		FullKey:        st.key,
		FullDesc:       st.subtle,
		FullSeparator:  st.subtle,
	}
}

// paint gives a view the theme's own background and foreground when the
// theme sets them (the projector's), so that contrast does not depend on
// the terminal's colours.
func (st styles) paint(v *tea.View) {
	if st.fullScreen {
		v.BackgroundColor = lipgloss.Color(st.pal.bg)
		v.ForegroundColor = lipgloss.Color(st.pal.fg)
	}
}
