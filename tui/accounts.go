package tui

import (
	"fmt"

	"lockstep/ledger"
	"lockstep/sim"
)

// accountsPane shows the committed balances — read by the engine outside
// every session's transaction, so a session's uncommitted change is not in
// them — and whether the books are kept; in a two-database run, both
// databases' balances side by side and whether they agree.
type accountsPane struct {
	box
	// maxRows bounds the account rows drawn: a frame formats what a screen
	// can show, whatever the ledger's size.
	maxRows  int
	scenario bool // a one-database scenario: no ledger
	expected string
	b        booksState
}

// Show takes the frame's last read of the balances; in a scenario, what
// PostgreSQL's documentation says it does instead.
func (p *accountsPane) Show(f *frame, scenario bool, expected string) {
	p.b, p.scenario, p.expected = f.books, scenario, expected
}

// Lines are the pane's body at width w.
func (p *accountsPane) Lines(w int) []string {
	st := p.look.st
	// The verdict first: it must stay in view when the pane is short.
	var lines []string
	if v := p.Verdict(); v != "" {
		lines = append(lines, v)
	}
	shown := p.b.accounts
	if p.maxRows > 0 && len(shown) > p.maxRows {
		shown = shown[:p.maxRows]
	}
	for _, a := range shown {
		lines = append(lines, fmt.Sprintf("%3d %-7s %10s", a.ID, a.Owner, a.Balance.StringFixed(2)))
	}
	if more := max(p.b.count, len(p.b.accounts)) - len(shown); more > 0 {
		lines = append(lines, st.subtle.Render(fmt.Sprintf("… and %d more accounts", more)))
	}
	if p.b.partial != "" {
		lines = append(lines, st.subtle.Render(p.b.partial))
	}
	if p.b.problem != "" {
		lines = append(lines, st.warn.Render(p.b.problem))
	}
	switch {
	case p.b.byDatabase != nil:
		lines = append(lines, p.twoDatabases()...)
	case p.scenario && p.expected != "":
		lines = append(lines, "PostgreSQL's documented outcome "+p.expected,
			st.subtle.Render("compare it with the results in the Sessions pane"))
	case p.scenario:
		// Not "a scenario has no ledger": the two-database scenarios do.
		lines = append(lines, "this scenario states no outcome to compare with: what happened is in the Sessions pane and the log",
			st.subtle.Render("no accounts to show: its tables are its own, made by its setup"))
	case p.b.missing:
		lines = append(lines, st.subtle.Render("balances not recorded at this moment"))
	case !p.b.read:
		lines = append(lines, st.subtle.Render("reading the balances…"))
	}
	return wrapAll(lines, w)
}

// Verdict is the books' verdict in one line: kept, broken, or — with two
// databases — whether they agree; "" before the first read.
func (p *accountsPane) Verdict() string { return p.verdict(false) }

// BriefVerdict is the verdict for a line with no room for all of it (the
// tab bar): what is wrong in the fewest words, " …" marking the rest.
func (p *accountsPane) BriefVerdict() string { return p.verdict(true) }

func (p *accountsPane) verdict(brief bool) string {
	st := p.look.st
	say := func(b *ledger.Books) string {
		if brief {
			return b.Brief()
		}
		return b.Summary()
	}
	switch {
	case p.b.books != nil && p.b.books.OK():
		return st.ok.Render("✓ books kept: " + say(p.b.books))
	case p.b.books != nil:
		return st.bad.Render("✗ books BROKEN: " + say(p.b.books))
	case p.b.byDatabase != nil && sim.InSync(p.b.byDatabase):
		return st.ok.Render("✓ the databases agree")
	case p.b.byDatabase != nil:
		return st.bad.Render("✗ the databases DISAGREE")
	}
	return ""
}

func (p *accountsPane) View() []string {
	title := "Accounts (committed)"
	if p.scenario {
		title = "Outcome"
	}
	return p.draw(title, p.Lines(p.w-4))
}

// twoDatabases is both databases' balances, side by side.
func (p *accountsPane) twoDatabases() []string {
	st := p.look.st
	a, b := p.b.byDatabase["A"], p.b.byDatabase["B"]
	lines := []string{st.subtle.Render(fmt.Sprintf("%-7s %7s %7s", "", "in A", "in B"))}
	for i := range a {
		line := fmt.Sprintf("%d %-5s %7s", a[i].ID, a[i].Owner, a[i].Balance.StringFixed(2))
		if i < len(b) {
			line += fmt.Sprintf(" %7s", b[i].Balance.StringFixed(2))
		}
		lines = append(lines, line)
	}
	return lines
}
