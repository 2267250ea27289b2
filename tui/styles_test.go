package tui

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"charm.land/lipgloss/v2"
)

// contrast is the WCAG 2 contrast ratio of two colours given as #rrggbb.
func contrast(t *testing.T, a, b string) float64 {
	la, lb := luminance(t, a), luminance(t, b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// luminance is a #rrggbb colour's relative luminance (WCAG 2).
func luminance(t *testing.T, hex string) float64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	if err != nil || len(hex) != 7 {
		t.Fatalf("colour %q is not #rrggbb", hex)
	}
	channel := func(c uint64) float64 {
		s := float64(c) / 255
		if s <= 0.03928 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*channel(v>>16&0xff) + 0.7152*channel(v>>8&0xff) + 0.0722*channel(v&0xff)
}

func TestContrastHelper(t *testing.T) {
	// The WCAG's own extremes and a known pair.
	if c := contrast(t, "#000000", "#ffffff"); math.Abs(c-21) > 0.01 {
		t.Errorf("black on white: %.2f, want 21", c)
	}
	if c := contrast(t, "#777777", "#ffffff"); math.Abs(c-4.48) > 0.01 {
		t.Errorf("#777 on white: %.2f, want 4.48", c)
	}
}

// TestThemeContrast: every colour text is drawn in reads on every
// background its theme may meet — 4.5:1 (WCAG AA) in the default theme's
// palettes, 7:1 in the projector's — and so do the selection and the
// banner, drawn on colours of their own.
func TestThemeContrast(t *testing.T) {
	for _, c := range []struct {
		name string
		p    palette
		min  float64
	}{
		{"default dark", darkPalette, 4.5},
		{"default light", lightPalette, 4.5},
		{"projector", projectorPalette, 7},
	} {
		p := c.p
		texts := map[string]string{"fg": p.fg, "muted": p.muted, "green": p.green, "red": p.red,
			"yellow": p.yellow, "blue": p.blue, "purple": p.purple}
		for _, bg := range append([]string{p.bg}, p.bgs...) {
			for name, fg := range texts {
				if r := contrast(t, fg, bg); r < c.min {
					t.Errorf("%s: %s %s on %s is %.2f:1, want ≥ %.1f", c.name, name, fg, bg, r, c.min)
				}
			}
		}
		pairs := map[string][2]string{"selection": {p.fg, p.selBg}, "banner": {p.bg, p.red}}
		if c.name == "projector" {
			pairs["selection"] = [2]string{p.bg, p.fg} // reverse video
		}
		for name, pair := range pairs {
			if r := contrast(t, pair[0], pair[1]); r < c.min {
				t.Errorf("%s: the %s, %s on %s, is %.2f:1, want ≥ %.1f", c.name, name, pair[0], pair[1], r, c.min)
			}
		}
	}
}

// TestNoFaintText: no meaning is in faint text, in any theme.
func TestNoFaintText(t *testing.T) {
	for _, theme := range []string{ThemeDefault, ThemeProjector} {
		for _, dark := range []bool{true, false} {
			st := newStyles(theme, dark)
			for name, s := range map[string]lipgloss.Style{"title": st.title, "subtle": st.subtle, "script": st.script,
				"ok": st.ok, "bad": st.bad, "warn": st.warn, "wait": st.wait, "run": st.run, "accent": st.accent,
				"selected": st.selected, "cycle": st.cycle, "banner": st.banner, "key": st.key, "panelTitle": st.panelTitle} {
				if s.GetFaint() {
					t.Errorf("%s theme (dark %v): %s is faint", theme, dark, name)
				}
			}
		}
	}
}

func TestParseTheme(t *testing.T) {
	for in, want := range map[string]string{"": ThemeDefault, "default": ThemeDefault, "projector": ThemeProjector} {
		if got, err := ParseTheme(in); err != nil || got != want {
			t.Errorf("ParseTheme(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseTheme("neon"); err == nil || !strings.Contains(err.Error(), "use default or projector") {
		t.Errorf("ParseTheme(neon): %v", err)
	}
}
