package tui

import (
	"fmt"
	"io"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/list"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"lockstep/ledger"
)

// strategyItem is a strategy in the menu.
type strategyItem struct{ s *ledger.Strategy }

func (i strategyItem) FilterValue() string { return i.s.Name }

// strategyDelegate draws a strategy on one line: its name and what it shows.
type strategyDelegate struct{ look *look }

func (d strategyDelegate) Height() int                         { return 1 }
func (d strategyDelegate) Spacing() int                        { return 0 }
func (d strategyDelegate) Update(tea.Msg, *list.Model) tea.Cmd { return nil }

func (d strategyDelegate) Render(w io.Writer, m list.Model, index int, it list.Item) {
	s := it.(strategyItem).s
	line := fmt.Sprintf("%-18s %s", s.Name, s.Summary)
	if index == m.Index() {
		line = d.look.st.selected.Render("▸ " + line)
	} else {
		line = "  " + line
	}
	fmt.Fprint(w, ansi.Truncate(line, m.Width(), "…"))
}

// strategyKeys are the menu's own keys; ↑/↓ and the page keys are the list's.
type strategyKeys struct {
	Move, Choose, Close key.Binding
}

func (k strategyKeys) ShortHelp() []key.Binding  { return []key.Binding{k.Move, k.Choose, k.Close} }
func (k strategyKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// strategyMenu picks the transfer strategy; choosing one starts a new run.
type strategyMenu struct {
	look *look
	w, h int
	list list.Model
	keys strategyKeys
}

func newStrategyMenu(l *look) *strategyMenu {
	var items []list.Item
	for _, s := range ledger.Strategies() {
		items = append(items, strategyItem{s})
	}
	lm := list.New(items, strategyDelegate{look: l}, 0, 0)
	// Filtering first: turning it off afterwards leaves the title's row
	// counted out of the height.
	lm.SetFilteringEnabled(false)
	lm.SetShowTitle(false)
	lm.SetShowStatusBar(false)
	lm.SetShowPagination(false)
	lm.SetShowHelp(false)
	lm.DisableQuitKeybindings()
	return &strategyMenu{look: l, list: lm, keys: strategyKeys{
		Move:   key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "choose")),
		Choose: key.NewBinding(key.WithKeys("enter", "space"), key.WithHelp("enter", "switch (the run starts again)")),
		Close:  key.NewBinding(key.WithKeys("esc", "q", "m"), key.WithHelp("esc", "close")),
	}}
}

func (p *strategyMenu) SetSize(w, h int) {
	p.w, p.h = w, h
	// Room below the list for the chosen strategy's whole summary.
	p.list.SetSize(max(0, w-4), max(1, h-6))
}

// Open shows the menu on the strategy named current.
func (p *strategyMenu) Open(current string) {
	for i, s := range ledger.Strategies() {
		if s.Name == current {
			p.list.Select(i)
		}
	}
}

// menuResult is what a key did to a menu or form.
type menuResult int

const (
	menuOpen   menuResult = iota // still open
	menuClosed                   // closed, nothing chosen
	menuChosen                   // closed with a choice
)

// Update moves through the menu; it says when the menu closes, and whether
// with a choice (Chosen).
func (p *strategyMenu) Update(msg tea.KeyPressMsg) (menuResult, tea.Cmd) {
	switch {
	case key.Matches(msg, p.keys.Close):
		return menuClosed, nil
	case key.Matches(msg, p.keys.Choose):
		return menuChosen, nil
	}
	var cmd tea.Cmd
	p.list, cmd = p.list.Update(msg)
	return menuOpen, cmd
}

// Chosen is the strategy the menu is on.
func (p *strategyMenu) Chosen() *ledger.Strategy { return p.list.SelectedItem().(strategyItem).s }

func (p *strategyMenu) View() []string {
	st := p.look.st
	lines := splitLines(p.list.View())
	n := len(p.list.Items())
	title := "Strategy"
	if shown := p.list.Paginator.PerPage; shown < n {
		title = fmt.Sprintf("Strategy (page %d of %d, ↑/↓ scrolls)", p.list.Paginator.Page+1, p.list.Paginator.TotalPages)
	}
	chosen := p.Chosen()
	lines = append(lines, "")
	lines = append(lines, wrapAll([]string{st.accent.Render(chosen.Name+": ") + chosen.Summary}, p.w-4)...)
	return p.look.panel(title, lines, p.w, p.h, true)
}

// splitLines is a block's lines; an empty block has none.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
