package tui

import "charm.land/bubbles/v2/key"

// keyMap is every key of the main screen.
type keyMap struct {
	Prev, Next         key.Binding
	Step, StepN        key.Binding
	Commit, Rollback   key.Binding
	Cancel, Type       key.Binding
	Strategy, Setup    key.Binding
	Autoplay, Speed    key.Binding
	Permutation        key.Binding
	Fix                key.Binding
	CommitPrepared     key.Binding
	RollbackPrepared   key.Binding
	Up, Down, Unselect key.Binding
	ScrollLog          key.Binding
	Reset, Help, Quit  key.Binding
}

func newKeyMap() keyMap {
	return keyMap{
		Prev:             key.NewBinding(key.WithKeys("left", "shift+tab"), key.WithHelp("←/shift+tab", "previous session")),
		Next:             key.NewBinding(key.WithKeys("right", "tab"), key.WithHelp("→/tab", "next session")),
		Step:             key.NewBinding(key.WithKeys("space", "enter"), key.WithHelp("space", "step")),
		StepN:            key.NewBinding(key.WithKeys("1", "2", "3", "4", "5", "6", "7", "8", "9"), key.WithHelp("1–9", "step session N")),
		Commit:           key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "commit")),
		Rollback:         key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "rollback")),
		Cancel:           key.NewBinding(key.WithKeys("k"), key.WithHelp("k", "cancel statement")),
		Type:             key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "type SQL")),
		Strategy:         key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "strategy")),
		Setup:            key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "set-up")),
		Autoplay:         key.NewBinding(key.WithKeys("a"), key.WithHelp("a", "autoplay")),
		Speed:            key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "autoplay speed")),
		Permutation:      key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "next permutation")),
		Fix:              key.NewBinding(key.WithKeys("f"), key.WithHelp("f", "next fix")),
		CommitPrepared:   key.NewBinding(key.WithKeys("C"), key.WithHelp("C/X", "end prepared")),
		RollbackPrepared: key.NewBinding(key.WithKeys("X"), key.WithHelp("X", "ROLLBACK PREPARED the oldest")),
		Up:               key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "select lock or wait")),
		Down:             key.NewBinding(key.WithKeys("down")),
		Unselect:         key.NewBinding(key.WithKeys("esc")),
		ScrollLog:        key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdown", "scroll the log")),
		Reset:            key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reset")),
		Help:             key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "all keys")),
		Quit:             key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp is the footer; a two-database run shows its own keys instead
// of typing and the strategy menu.
func (k keyMap) ShortHelp() []key.Binding {
	if k.Fix.Enabled() {
		return []key.Binding{k.Step, k.Commit, k.Rollback, k.Cancel, k.Fix, k.CommitPrepared, k.Help, k.Quit}
	}
	return []key.Binding{k.Step, k.Next, k.Commit, k.Rollback, k.Type, k.Strategy, k.Autoplay, k.Reset, k.Help, k.Quit}
}

// twoDatabases enables the keys of a two-database run, and only those there.
func (k *keyMap) twoDatabases(on bool) {
	k.Fix.SetEnabled(on)
	k.CommitPrepared.SetEnabled(on)
	k.RollbackPrepared.SetEnabled(on)
}

// FullHelp is every key, in columns.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Step, k.StepN, k.Prev, k.Next},
		{k.Commit, k.Rollback, k.Cancel, k.Type},
		{k.Strategy, k.Setup, k.Autoplay, k.Speed, k.Permutation, k.Fix, k.CommitPrepared},
		{k.Up, k.ScrollLog, k.Reset, k.Help, k.Quit},
	}
}
