package tui

import (
	"errors"
	"fmt"

	"lockstep/ledger"
	"lockstep/sim"
)

// accountsPane shows the balances and whether the books are kept, read by
// the engine outside every session's transaction; in a two-database run,
// both databases' balances side by side and whether they agree.
type accountsPane struct {
	look       *look
	w, h       int
	scenario   bool // a one-database scenario: no ledger
	accounts   []ledger.Account
	books      *ledger.Books
	byDatabase map[string][]ledger.Account
	problem    string
}

func (p *accountsPane) SetSize(w, h int) { p.w, p.h = w, h }

// Forget clears what an earlier run showed.
func (p *accountsPane) Forget(scenario bool) {
	*p = accountsPane{look: p.look, w: p.w, h: p.h, scenario: scenario}
}

// SetBalances takes a read of the balances; one that failed keeps the last
// read on screen and says why.
func (p *accountsPane) SetBalances(b sim.Balances) {
	switch {
	case errors.Is(b.Err, sim.ErrLedgerLocked):
		p.problem = "balances not read: a session holds the accounts table exclusively (shown as last read)"
	case b.Err != nil:
		p.problem = "balances not read: " + b.Err.Error()
	case b.ByDatabase != nil:
		p.byDatabase, p.accounts, p.books, p.problem = b.ByDatabase, nil, nil, ""
	default:
		p.accounts, p.books, p.problem = b.Accounts, b.Books, ""
	}
}

func (p *accountsPane) View() []string {
	st := p.look.st
	var lines []string
	for _, a := range p.accounts {
		lines = append(lines, fmt.Sprintf("%3d %-7s %10s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	if p.books != nil {
		if p.books.OK() {
			lines = append(lines, st.ok.Render("✓ "+p.books.Summary()))
		} else {
			lines = append(lines, st.bad.Render("✗ books broken: "+p.books.Summary()))
		}
	}
	if p.problem != "" {
		lines = append(lines, st.warn.Render(p.problem))
	}
	switch {
	case p.byDatabase != nil:
		lines = append(lines, p.twoDatabases()...)
	case p.scenario:
		lines = append(lines, st.subtle.Render("a scenario has no ledger: its own tables, in its setup"))
	}
	return p.look.panel("Accounts", wrapAll(lines, p.w-4), p.w, p.h, false)
}

// twoDatabases is both databases' balances, side by side.
func (p *accountsPane) twoDatabases() []string {
	st := p.look.st
	a, b := p.byDatabase["A"], p.byDatabase["B"]
	lines := []string{st.subtle.Render(fmt.Sprintf("%-7s %7s %7s", "", "in A", "in B"))}
	for i := range a {
		line := fmt.Sprintf("%d %-5s %7s", a[i].ID, a[i].Owner, a[i].Balance.StringFixed(2))
		if i < len(b) {
			line += fmt.Sprintf(" %7s", b[i].Balance.StringFixed(2))
		}
		lines = append(lines, line)
	}
	if sim.InSync(p.byDatabase) {
		return append(lines, st.ok.Render("✓ the databases agree"))
	}
	return append(lines, st.bad.Render("✗ the databases disagree"))
}
