package tui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// styles is the one palette of the interface. Colours adapt to a light or
// dark background; every meaning colour carries is also said by a symbol or
// a word, so NO_COLOR (which Bubble Tea honours) loses nothing.
type styles struct {
	title, subtle, dim, bold          lipgloss.Style
	ok, bad, warn, wait, run, accent  lipgloss.Style
	selected, cycle, banner           lipgloss.Style
	border, borderFocused, panelTitle lipgloss.Style
	key                               lipgloss.Style
}

func newStyles(isDark bool) styles {
	ld := lipgloss.LightDark(isDark)
	c := func(light, dark string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(dark)) }
	var (
		fg     = c("#1f2328", "#e6edf3")
		muted  = c("#57606a", "#8b949e")
		green  = c("#116329", "#3fb950")
		red    = c("#a40e26", "#ff7b72")
		yellow = c("#7d4e00", "#e3b341")
		blue   = c("#0550ae", "#79c0ff")
		purple = c("#6639ba", "#d2a8ff")
		border = c("#8c959f", "#484f58")
		selBg  = c("#ddf4ff", "#1f3a5f")
	)
	return styles{
		title:         lipgloss.NewStyle().Bold(true).Foreground(fg),
		subtle:        lipgloss.NewStyle().Foreground(muted),
		dim:           lipgloss.NewStyle().Foreground(muted).Faint(true),
		bold:          lipgloss.NewStyle().Bold(true),
		ok:            lipgloss.NewStyle().Foreground(green),
		bad:           lipgloss.NewStyle().Foreground(red).Bold(true),
		warn:          lipgloss.NewStyle().Foreground(yellow),
		wait:          lipgloss.NewStyle().Foreground(yellow).Bold(true),
		run:           lipgloss.NewStyle().Foreground(blue),
		accent:        lipgloss.NewStyle().Foreground(blue).Bold(true),
		selected:      lipgloss.NewStyle().Background(selBg).Bold(true),
		cycle:         lipgloss.NewStyle().Foreground(purple).Bold(true),
		banner:        lipgloss.NewStyle().Foreground(red).Bold(true).Reverse(true),
		border:        lipgloss.NewStyle().Foreground(border),
		borderFocused: lipgloss.NewStyle().Foreground(blue).Bold(true),
		panelTitle:    lipgloss.NewStyle().Bold(true).Foreground(blue),
		key:           lipgloss.NewStyle().Bold(true).Foreground(fg),
	}
}
