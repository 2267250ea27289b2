package learn

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"lockstep/lazyre"
	"lockstep/locks"
)

// ClaimKind is what a claim says will happen.
type ClaimKind int

// The claims an option can make. Each is decided by what the server does.
const (
	GoesOn      ClaimKind = iota // S goes on: its statement ends without waiting
	Waits                        // S waits [for A, B]: the server says its statement waits
	Deadlock                     // deadlock [, victim S]: a wait-for cycle the server breaks
	Distributed                  // distributed deadlock: a cycle no server sees
	Fails                        // S fails with CODE: its statement ends in that SQLSTATE
	Reads                        // S reads VALUE | S reads nothing: its statement's first value
	Balance                      // account N holds VALUE: the committed balance afterwards
	BooksKept                    // the books are kept
	BooksBroken                  // the books are broken
	Holds                        // S holds MODE on TARGET
	HoldsNone                    // S holds no lock on TARGET
	AsksFor                      // S asks for MODE on TARGET: the lock its statement waits for
	Faster                       // A moves more than B: a bench's transfers a second, by 20 % or more
	Same                         // about the same: within 20 % of each other
)

// Claim is one option's statement about the server, in a form the judge
// decides.
type Claim struct {
	Kind    ClaimKind
	Session string
	// Others are the sessions Waits names, or the strategy Faster compares with.
	Others  []string
	Victim  string // Deadlock: the victim, "" for any
	Code    string // Fails: the SQLSTATE
	Value   string // Reads, Balance
	Nothing bool   // Reads: no row
	Account int64  // Balance; a row target
	Table   string // a table target
	// Mode is the lock mode of Holds and AsksFor: a row mode when Row.
	Row       bool
	RowMode   locks.RowMode
	TableMode locks.TableMode
	Strategy  string // Faster
}

// Sessions are the sessions the claim names.
func (c Claim) Sessions() []string {
	var out []string
	if c.Session != "" {
		out = append(out, c.Session)
	}
	if c.Kind == Waits {
		out = append(out, c.Others...)
	}
	if c.Victim != "" {
		out = append(out, c.Victim)
	}
	return out
}

var (
	noteRE     = lazyre.New(`\s*\([^()]*\)\s*$`)
	sqlState   = lazyre.New(`^[0-9A-Z]{5}$`)
	nameRE     = lazyre.New(`^[A-Za-z_][A-Za-z0-9_@]*$`)
	strategyRE = lazyre.New(`^[a-z][a-z-]*$`)
	tableRE    = lazyre.New(`^[A-Za-z_][A-Za-z0-9_.]*$`)
	decimalRE  = lazyre.New(`^-?[0-9]+(\.[0-9]+)?$`)
)

// ParseClaim reads an option's text: a claim, then perhaps a note in
// parentheses, shown but not judged ("T2 fails with 55P03 (lock_not_available)").
func ParseClaim(text string) (Claim, error) {
	body := strings.TrimSpace(noteRE.ReplaceAllString(text, ""))
	if body == "" {
		return Claim{}, fmt.Errorf("an empty option: write a claim such as \"T2 waits for T1\"")
	}
	words := strings.Fields(strings.ReplaceAll(body, ",", " , "))
	low := make([]string, len(words))
	for i, w := range words {
		low[i] = strings.ToLower(w)
	}
	is := func(i int, ws ...string) bool {
		if i+len(ws) > len(low) {
			return false
		}
		for k, w := range ws {
			if low[i+k] != w {
				return false
			}
		}
		return true
	}
	switch {
	case is(0, "deadlock") && len(low) == 1:
		return Claim{Kind: Deadlock}, nil
	case is(0, "deadlock", ",", "victim") && len(low) == 4:
		if !nameRE.MatchString(words[3]) {
			return Claim{}, fmt.Errorf("deadlock, victim %q: name a session, such as T1", words[3])
		}
		return Claim{Kind: Deadlock, Victim: words[3]}, nil
	case is(0, "distributed", "deadlock") && len(low) == 2:
		return Claim{Kind: Distributed}, nil
	case is(0, "the", "books", "are", "kept") && len(low) == 4:
		return Claim{Kind: BooksKept}, nil
	case is(0, "the", "books", "are", "broken") && len(low) == 4:
		return Claim{Kind: BooksBroken}, nil
	case is(0, "about", "the", "same") && len(low) == 3:
		return Claim{Kind: Same}, nil
	case is(0, "account") && len(low) == 4 && is(2, "holds"):
		n, err := strconv.ParseInt(words[1], 10, 64)
		if err != nil || n < 1 {
			return Claim{}, fmt.Errorf("account %q: an account is a number from 1", words[1])
		}
		v, err := parseValue(words[3])
		if err != nil {
			return Claim{}, err
		}
		return Claim{Kind: Balance, Account: n, Value: v}, nil
	}
	if is(1, "moves", "more", "than") && len(low) == 5 {
		if !strategyRE.MatchString(words[0]) || !strategyRE.MatchString(words[4]) {
			return Claim{}, fmt.Errorf("%q: name two strategies, such as \"ordered moves more than table-lock\"", body)
		}
		return Claim{Kind: Faster, Strategy: words[0], Others: []string{words[4]}}, nil
	}
	if len(words) < 2 || !nameRE.MatchString(words[0]) {
		return Claim{}, fmt.Errorf("%q is no claim lockstep can check: %s", body, claimForms)
	}
	c := Claim{Session: words[0]}
	switch {
	case is(1, "goes", "on") && len(low) == 3:
		c.Kind = GoesOn
	case is(1, "waits") && len(low) == 2:
		c.Kind = Waits
	case is(1, "waits", "for") && len(low) > 3:
		c.Kind = Waits
		for i := 3; i < len(words); i++ {
			if low[i] == "," || low[i] == "and" {
				continue
			}
			if !nameRE.MatchString(words[i]) {
				return Claim{}, fmt.Errorf("%s waits for %q: name sessions, such as T1, separated by commas or \"and\"", c.Session, words[i])
			}
			c.Others = append(c.Others, words[i])
		}
		if len(c.Others) == 0 {
			return Claim{}, fmt.Errorf("%q: waits for whom? name a session", body)
		}
	case is(1, "fails", "with") && len(low) == 4:
		c.Kind, c.Code = Fails, strings.ToUpper(words[3])
		if !sqlState.MatchString(c.Code) {
			return Claim{}, fmt.Errorf("%s fails with %q: give a SQLSTATE of five characters, such as 40P01", c.Session, words[3])
		}
	case is(1, "reads", "nothing") && len(low) == 3:
		c.Kind, c.Nothing = Reads, true
	case is(1, "reads") && len(low) == 3:
		v, err := parseValue(words[2])
		if err != nil {
			return Claim{}, err
		}
		c.Kind, c.Value = Reads, v
	case is(1, "holds", "no", "lock", "on") && len(low) > 5:
		c.Kind = HoldsNone
		if err := c.target(words[5:]); err != nil {
			return Claim{}, err
		}
	case is(1, "holds") || is(1, "asks", "for"):
		c.Kind, words = Holds, words[2:]
		if is(1, "asks") {
			c.Kind, words = AsksFor, words[1:]
		}
		on := -1
		for i, w := range words {
			if strings.EqualFold(w, "on") {
				on = i
			}
		}
		if on < 1 || on == len(words)-1 {
			return Claim{}, fmt.Errorf("%q: write a mode and what it is on, such as \"T1 holds FOR UPDATE on account 1\"", body)
		}
		mode := strings.Join(words[:on], " ")
		if err := c.target(words[on+1:]); err != nil {
			return Claim{}, err
		}
		if c.Account > 0 {
			m, ok := locks.ParseRowMode(mode)
			if !ok || !strings.HasPrefix(strings.ToUpper(mode), "FOR ") {
				return Claim{}, fmt.Errorf("%q is no row lock mode: FOR KEY SHARE, FOR SHARE, FOR NO KEY UPDATE or FOR UPDATE", mode)
			}
			c.Row, c.RowMode = true, m
		} else {
			m, ok := locks.ParseTableMode(mode)
			if !ok {
				return Claim{}, fmt.Errorf("%q is no table lock mode: ACCESS SHARE, ROW SHARE, ROW EXCLUSIVE, SHARE UPDATE EXCLUSIVE, SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE or ACCESS EXCLUSIVE", mode)
			}
			c.TableMode = m
		}
	default:
		return Claim{}, fmt.Errorf("%q is no claim lockstep can check: %s", body, claimForms)
	}
	return c, nil
}

// claimForms lists what a claim may say, for an error.
const claimForms = "write one of: T1 goes on; T1 waits [for T2]; deadlock[, victim T1]; distributed deadlock; " +
	"T1 fails with 40P01; T1 reads 100.00; T1 reads nothing; account 1 holds 90.00; the books are kept; " +
	"the books are broken; T1 holds FOR UPDATE on account 1; T1 holds ACCESS SHARE on TABLE; " +
	"T1 holds no lock on account 1; T1 asks for ACCESS EXCLUSIVE on TABLE; A moves more than B; about the same"

// target reads "account N" or a table's name.
func (c *Claim) target(words []string) error {
	if len(words) == 2 && strings.EqualFold(words[0], "account") {
		n, err := strconv.ParseInt(words[1], 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("account %q: an account is a number from 1", words[1])
		}
		c.Account = n
		return nil
	}
	if len(words) == 1 && tableRE.MatchString(words[0]) {
		c.Table = words[0]
		return nil
	}
	return fmt.Errorf("%q: a lock is on \"account N\" or on a table, named as it is (accounts, ls_orders)", strings.Join(words, " "))
}

// parseValue reads a value a statement returns or an account holds: a
// number, a word, or 'quoted text'.
func parseValue(w string) (string, error) {
	if len(w) >= 2 && w[0] == '\'' && w[len(w)-1] == '\'' {
		return w[1 : len(w)-1], nil
	}
	if strings.ContainsAny(w, "'\"") {
		return "", fmt.Errorf("value %q: write a number, a word, or 'quoted text' without blanks", w)
	}
	return w, nil
}

// sameValue compares a value the server gave with one a claim names:
// numerically when both are numbers (100 is 100.00), else as text.
func sameValue(got, want string) bool {
	got, want = strings.TrimSpace(got), strings.TrimSpace(want)
	if decimalRE.MatchString(got) && decimalRE.MatchString(want) {
		g, err1 := decimal.NewFromString(got)
		w, err2 := decimal.NewFromString(want)
		if err1 == nil && err2 == nil {
			return g.Equal(w)
		}
	}
	return got == want
}

// String is the claim in the words a lesson writes it.
func (c Claim) String() string {
	switch c.Kind {
	case GoesOn:
		return c.Session + " goes on"
	case Waits:
		if len(c.Others) == 0 {
			return c.Session + " waits"
		}
		return c.Session + " waits for " + strings.Join(c.Others, ", ")
	case Deadlock:
		if c.Victim != "" {
			return "deadlock, victim " + c.Victim
		}
		return "deadlock"
	case Distributed:
		return "distributed deadlock"
	case Fails:
		return c.Session + " fails with " + c.Code
	case Reads:
		if c.Nothing {
			return c.Session + " reads nothing"
		}
		return c.Session + " reads " + c.Value
	case Balance:
		return fmt.Sprintf("account %d holds %s", c.Account, c.Value)
	case BooksKept:
		return "the books are kept"
	case BooksBroken:
		return "the books are broken"
	case Holds, HoldsNone, AsksFor:
		on := c.Table
		if c.Account > 0 {
			on = fmt.Sprintf("account %d", c.Account)
		}
		mode := c.TableMode.String()
		if c.Row {
			mode = c.RowMode.String()
		}
		switch c.Kind {
		case HoldsNone:
			return c.Session + " holds no lock on " + on
		case AsksFor:
			return c.Session + " asks for " + mode + " on " + on
		}
		return c.Session + " holds " + mode + " on " + on
	case Faster:
		return c.Strategy + " moves more than " + strings.Join(c.Others, "")
	case Same:
		return "about the same"
	}
	return fmt.Sprintf("ClaimKind(%d)", int(c.Kind))
}
