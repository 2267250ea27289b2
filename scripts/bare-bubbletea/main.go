// Command bare-bubbletea is the anchor for the interface's idle cost: a
// Bubble Tea program that draws one line in the alternate screen and then
// does nothing until q. What it costs at rest (Bubble Tea's own renderer
// loop, the input reader, Go's runtime) is what any Bubble Tea program
// costs; scripts/measure reports lockstep's idle CPU as a ratio to it,
// both measured in the same run.
package main

import (
	"fmt"
	"os"

	tea "charm.land/bubbletea/v2"
)

type model struct{}

func (model) Init() tea.Cmd { return nil }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if k, ok := msg.(tea.KeyPressMsg); ok && (k.String() == "q" || k.String() == "ctrl+c") {
		return m, tea.Quit
	}
	return m, nil
}

func (model) View() tea.View {
	v := tea.NewView("bare Bubble Tea program at rest: q quits")
	v.AltScreen = true
	return v
}

func main() {
	if _, err := tea.NewProgram(model{}).Run(); err != nil {
		fmt.Fprintln(os.Stderr, "bare-bubbletea:", err)
		os.Exit(1)
	}
}
