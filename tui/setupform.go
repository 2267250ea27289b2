package tui

import (
	"fmt"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/shopspring/decimal"

	"lockstep/ledger"
	"lockstep/sim"
)

// setupForm edits the number of sessions, their direction, the accounts
// and the amounts; applying it starts a new run.
type setupForm struct {
	look      *look
	w, h      int
	keys      setupKeys
	field     int
	sessions  int
	direction sim.Direction
	accounts  int
	amount    decimal.Decimal
	balance   decimal.Decimal
}

// setupKeys are the form's keys.
type setupKeys struct {
	Up, Down, Less, More, Apply, Close key.Binding
}

func (k setupKeys) ShortHelp() []key.Binding  { return []key.Binding{k.Up, k.Less, k.Apply, k.Close} }
func (k setupKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

var setupFields = []string{"sessions", "direction", "accounts", "amount per transfer", "opening balance"}

func newSetupForm(l *look) *setupForm {
	return &setupForm{look: l, keys: setupKeys{
		Up:    key.NewBinding(key.WithKeys("up"), key.WithHelp("↑/↓", "field")),
		Down:  key.NewBinding(key.WithKeys("down", "tab")),
		Less:  key.NewBinding(key.WithKeys("left", "-"), key.WithHelp("←/→", "change")),
		More:  key.NewBinding(key.WithKeys("right", "+")),
		Apply: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "new run")),
		Close: key.NewBinding(key.WithKeys("esc", "q", "s"), key.WithHelp("esc", "close")),
	}}
}

func (f *setupForm) SetSize(w, h int) { f.w, f.h = w, h }

// Open fills the form from the run's set-up.
func (f *setupForm) Open(cfg sim.Config) {
	f.field, f.sessions, f.direction = 0, cfg.Sessions, cfg.Direction
	f.accounts, f.amount, f.balance = cfg.Setup.Accounts, cfg.Amount, cfg.Setup.Balance
	if f.amount.IsZero() {
		f.amount = decimal.RequireFromString("10.00")
	}
}

// Update edits the form; it says when the form closes, and whether to
// apply it (Config).
func (f *setupForm) Update(msg tea.KeyPressMsg) menuResult {
	k := f.keys
	n := len(setupFields)
	switch {
	case key.Matches(msg, k.Close):
		return menuClosed
	case key.Matches(msg, k.Apply):
		return menuChosen
	case key.Matches(msg, k.Up):
		f.field = (f.field + n - 1) % n
	case key.Matches(msg, k.Down):
		f.field = (f.field + 1) % n
	case key.Matches(msg, k.Less):
		f.adjust(-1)
	case key.Matches(msg, k.More):
		f.adjust(+1)
	}
	return menuOpen
}

func (f *setupForm) adjust(d int) {
	switch f.field {
	case 0:
		f.sessions = min(sim.MaxSessions, max(sim.MinSessions, f.sessions+d))
	case 1:
		dirs := sim.Directions()
		f.direction = dirs[(int(f.direction)+d+len(dirs))%len(dirs)]
	case 2:
		f.accounts = min(20, max(2, f.accounts+d))
	case 3:
		step := decimal.RequireFromString("5.00")
		if a := f.amount.Add(step.Mul(decimal.NewFromInt(int64(d)))); a.IsPositive() {
			f.amount = a
		}
	case 4:
		if b := f.balance.Add(decimal.NewFromInt(int64(50 * d))); !b.IsNegative() {
			f.balance = b
		}
	}
}

// Config is the form as a run's set-up, on top of base. A ring has as many
// accounts as sessions, at least.
func (f *setupForm) Config(base sim.Config) sim.Config {
	cfg := base
	cfg.Sessions, cfg.Amount, cfg.Transfers, cfg.Direction = f.sessions, f.amount, nil, f.direction
	cfg.Setup = ledger.Setup{Accounts: f.accounts, Balance: f.balance}
	if f.direction == sim.Ring {
		cfg.Setup.Accounts = max(f.accounts, f.sessions)
	}
	return cfg
}

func (f *setupForm) View() []string {
	st := f.look.st
	values := []string{
		fmt.Sprint(f.sessions),
		f.direction.Describe(),
		fmt.Sprint(f.accounts),
		f.amount.StringFixed(2),
		f.balance.StringFixed(2),
	}
	var lines []string
	for i, n := range setupFields {
		line := fmt.Sprintf("%-20s ◂ %s ▸", n, values[i])
		if i == f.field {
			line = st.selected.Render("▸ " + line)
		} else {
			line = "  " + line
		}
		lines = append(lines, line)
	}
	return f.look.panel("Set-up", lines, f.w, f.h, true)
}
