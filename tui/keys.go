package tui

import "charm.land/bubbles/v2/key"

// keyMap is every key of the main screen, live.
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
	History, Log, Pane key.Binding
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
		Unselect:         key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "follow the newest wait")),
		History:          key.NewBinding(key.WithKeys("h"), key.WithHelp("h", "history")),
		Log:              key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "log full screen")),
		Pane:             key.NewBinding(key.WithKeys("v"), key.WithHelp("v", "next pane")),
		ScrollLog:        key.NewBinding(key.WithKeys("pgup", "pgdown"), key.WithHelp("pgup/pgdown", "scroll the log")),
		Reset:            key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reset")),
		Help:             key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "all keys")),
		Quit:             key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp is the footer; a two-database run shows its own keys instead
// of typing and the strategy menu.
func (k keyMap) ShortHelp() []key.Binding {
	if k.Fix.Enabled() {
		return []key.Binding{k.Step, k.Commit, k.Rollback, k.Cancel, k.Fix, k.CommitPrepared, k.History, k.Help, k.Quit}
	}
	return []key.Binding{k.Step, k.Next, k.Commit, k.Rollback, k.Type, k.Strategy, k.Autoplay, k.History, k.Reset, k.Help, k.Quit}
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
		{k.Up, k.Unselect, k.History, k.Log, k.Pane, k.ScrollLog},
		{k.Reset, k.Help, k.Quit},
	}
}

// historyKeys are history mode's keys.
type historyKeys struct {
	Back, Forward, First, Last, Leave, Up key.Binding
}

func newHistoryKeys() historyKeys {
	return historyKeys{
		Back:    key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "previous/next moment")),
		Forward: key.NewBinding(key.WithKeys("right")),
		First:   key.NewBinding(key.WithKeys("home"), key.WithHelp("home/end", "first/last")),
		Last:    key.NewBinding(key.WithKeys("end")),
		Leave:   key.NewBinding(key.WithKeys("esc", "h"), key.WithHelp("esc", "back to live")),
		Up:      key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select lock or wait")),
	}
}

func (k historyKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Back, k.First, k.Up, k.Leave}
}

func (k historyKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

// promptKeys are the keys of a question or an input line.
type promptKeys []key.Binding

func (k promptKeys) ShortHelp() []key.Binding  { return k }
func (k promptKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k} }

var (
	typingKeys = promptKeys{
		key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "run it")),
		key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
	}
	quitKeys = promptKeys{
		key.NewBinding(key.WithKeys("y", "q"), key.WithHelp("y/q", "quit, rolling every session back")),
		key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("any other key", "stays")),
	}
)
