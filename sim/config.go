package sim

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"lockstep/db"
	"lockstep/lazyre"
	"lockstep/ledger"
	"lockstep/scenario"
)

// Direction says which way the sessions' transfers go.
type Direction int

const (
	// Same: every session transfers from account 1 to account 2.
	Same Direction = iota
	// Opposite: even-numbered sessions transfer from 2 to 1.
	Opposite
	// Ring: T1 moves from 1 to 2, T2 from 2 to 3, …, the last back to 1: a
	// cycle through every session, with as many accounts as sessions.
	Ring
)

// Directions lists every direction.
func Directions() []Direction { return []Direction{Same, Opposite, Ring} }

// ParseDirection reads a direction's name: same, opposite or ring.
func ParseDirection(s string) (Direction, error) {
	for _, d := range Directions() {
		if s == d.String() {
			return d, nil
		}
	}
	return Same, fmt.Errorf("unknown direction %q: use same, opposite or ring", s)
}

func (d Direction) String() string {
	switch d {
	case Opposite:
		return "opposite"
	case Ring:
		return "ring"
	}
	return "same"
}

// Describe says what the direction does, for a menu.
func (d Direction) Describe() string {
	switch d {
	case Opposite:
		return "opposite (even sessions 2 → 1)"
	case Ring:
		return "ring (T1 1 → 2, T2 2 → 3, …, last → 1)"
	}
	return "same (1 → 2)"
}

// Limits on the number of sessions.
const (
	MinSessions = 2
	MaxSessions = 9
)

// DefaultPoll is how often the observer polls when nothing is in flight.
const DefaultPoll = 200 * time.Millisecond

// Config sets up a run.
type Config struct {
	DB *db.Database
	// DB2 is the second database of a two-database scenario, whose sessions
	// are named T1@A, T1@B, …: those ending in @B connect to DB2.
	DB2       *db.Database
	Ledger    *ledger.Ledger
	Strategy  *ledger.Strategy
	Sessions  int
	Direction Direction
	// Amount is what each session transfers; zero means 10.00.
	Amount decimal.Decimal
	// Transfers, if set, gives each session its own transfer, overriding
	// Direction and Amount.
	Transfers []ledger.Transfer
	Setup     ledger.Setup
	// Poll is the observer's interval; zero means DefaultPoll.
	Poll time.Duration
	// Lean suits a view that needs to know only who waits for whom, and
	// only when it asks, as the isolation tester does: the observer polls
	// when asked (PollNow) rather than right after every statement, and
	// reads no lock rows; sessions do not read their timeouts, which serve
	// only to predict when a deadlock breaks.
	Lean bool
	// OnDemand, with Lean, suits a view that asks the server itself whether
	// a step waits (Engine.Blocked), as the isolation tester does, and
	// orders the completions it prints by its own rules: the observer then
	// polls only when asked (PollNow, and a beat while idle), and a
	// statement released by its blockers is reported as soon as it ends,
	// not held back until what released it has been reported; an Error
	// carries the server's message and no Failure (the explanation the
	// other views show).
	OnDemand bool
	// PollEachStep makes Play, before each step, wait for a poll begun
	// after the last statement settled: every moment of the run is then
	// observed, and a recording of it shows each with the locks it had
	// (lockstep run --record). With Books it waits too for a read of the
	// balances begun after it, so each moment has the balances it had; and
	// PlayToEnd, once the last statement has ended, waits for both again,
	// so the run's last moment is observed as well. Ignored when Lean.
	PollEachStep bool
	// RunID names the run in application_name; empty means a random one.
	RunID db.RunID
	// SessionDB, when set, is how the sessions of the first database
	// connect — through a pooler (db.Database.Through) — while the
	// observer and the control connection reach the server directly.
	SessionDB *db.Database
	// AppName, when set, gives session i's application_name instead of the
	// run's lockstep/<run>/T1 (the isolation tester's PGAPPNAME/session);
	// the observer then finds the sessions by their backends' pids.
	AppName func(i int) string
	// Init is SQL run on a session's connection when it connects, by session
	// name: e.g. {"T1": {"SET deadlock_timeout = '10s'"}} to choose the victim.
	Init map[string][]string
	// Scenario, if set, replaces the transfers: its sessions' steps are the
	// scripts, its setup and teardown blocks replace the ledger. Name names it.
	Scenario     *scenario.Spec
	ScenarioName string
	// DeferSetup makes New connect and start the sessions without running
	// the setup: the caller calls Setup, and reads its events as they come
	// (the isolation tester prints a setup block's rows before a later
	// block fails).
	DeferSetup bool
	// KeepTransactions leaves a session's transaction open at Teardown, as
	// the isolation tester does: only the session's own teardown block may
	// end it, and the next Setup finds it still open. A setup or teardown
	// block that then waits for such a session for StuckAfter (2s when
	// zero) — nothing in the scenario will end that transaction — is
	// reported as a Stalled event (TeardownWaits) and the session is rolled
	// back. Close rolls everything back as ever.
	KeepTransactions bool
	StuckAfter       time.Duration
	// QuickClose lets Close leave the run's backends to exit by themselves,
	// as the isolation tester's do, when every connection of the run ended
	// in order — each closed by the run, idle, with its goodbye sent, and
	// none lost or replaced on the way — instead of waiting on the server
	// until they are gone. Any other end (a connection lost, a statement
	// Close could not stop) is swept as ever.
	QuickClose bool
	// Scripts, when set, gives session i its script in place of the
	// strategy's or the scenario's steps (which still name the sessions and
	// set the run up): an exercise's answer, whose statements use what the
	// ones before them read.
	Scripts func(i int) Script
	// Books makes the engine read the balances and check the books whenever
	// a statement has ended, and send them as BooksRead events (for views
	// that show them).
	Books bool
}

// transfers is each session's transfer under the config.
func (c Config) transfers() []ledger.Transfer {
	if len(c.Transfers) > 0 {
		return c.Transfers
	}
	amount := c.Amount
	if amount.IsZero() {
		amount = decimal.RequireFromString("10.00")
	}
	out := make([]ledger.Transfer, c.Sessions)
	for i := range out {
		out[i] = ledger.Transfer{From: 1, To: 2, Amount: amount}
		switch {
		case c.Direction == Opposite && (i+1)%2 == 0:
			out[i] = ledger.Transfer{From: 2, To: 1, Amount: amount}
		case c.Direction == Ring:
			from := int64(i%c.Setup.Accounts) + 1
			out[i] = ledger.Transfer{From: from, To: from%int64(c.Sessions) + 1, Amount: amount}
		}
	}
	return out
}

// CheckSessions says what is wrong with running n sessions of transfers.
func CheckSessions(n int) error {
	if n < MinSessions || n > MaxSessions {
		return fmt.Errorf("choose %d to %d", MinSessions, MaxSessions)
	}
	return nil
}

// CheckPoll says what is wrong with polling every d.
func CheckPoll(d time.Duration) error {
	if d < 0 {
		return errors.New("must be positive")
	}
	return nil
}

// Validate reports a config that cannot run, in words a user can act on.
// TooFewAccountsError is a ring with more sessions than the ledger has
// accounts: each session moves money to the next account.
type TooFewAccountsError struct{ Sessions, Have int }

func (e *TooFewAccountsError) Error() string {
	return fmt.Sprintf("a ring of %d sessions needs %d accounts; the ledger has %d", e.Sessions, e.Sessions, e.Have)
}

func (c Config) Validate() error {
	if c.Scenario != nil {
		if n := len(c.Scenario.Sessions); n < 1 || n > MaxSessions {
			return fmt.Errorf("the scenario has %d sessions; lockstep steps 1 to %d", n, MaxSessions)
		}
		if c.Sessions != len(c.Scenario.Sessions) {
			return fmt.Errorf("%d sessions for a scenario of %d", c.Sessions, len(c.Scenario.Sessions))
		}
		if c.TwoDatabases() {
			return c.validateTwoDatabases()
		}
		return nil
	}
	if err := CheckSessions(c.Sessions); err != nil {
		return fmt.Errorf("%d sessions: %w", c.Sessions, err)
	}
	if c.Strategy == nil {
		return errors.New("no strategy chosen")
	}
	if len(c.Transfers) > 0 && len(c.Transfers) != c.Sessions {
		return fmt.Errorf("%d transfers for %d sessions", len(c.Transfers), c.Sessions)
	}
	if c.Direction == Ring && c.Setup.Accounts < c.Sessions {
		return &TooFewAccountsError{Sessions: c.Sessions, Have: c.Setup.Accounts}
	}
	for i, t := range c.transfers() {
		if t.From == t.To || t.From < 1 || t.To < 1 || int(max(t.From, t.To)) > c.Setup.Accounts {
			return fmt.Errorf("T%d's transfer %s: accounts must differ and exist (1..%d)", i+1, t, c.Setup.Accounts)
		}
		if !t.Amount.IsPositive() {
			return fmt.Errorf("T%d's transfer %s: the amount must be positive", i+1, t)
		}
	}
	if err := CheckPoll(c.Poll); err != nil {
		return fmt.Errorf("poll interval %s: %w", c.Poll, err)
	}
	return c.Setup.Validate()
}

// TwoDatabases says whether the run's sessions are connections to two
// databases: a scenario whose sessions are named T1@A, T1@B, ….
func (c Config) TwoDatabases() bool {
	if c.Scenario == nil {
		return false
	}
	for _, s := range c.Scenario.Sessions {
		if strings.Contains(s.Name, "@") {
			return true
		}
	}
	return false
}

// HasLedger says whether the run has balances to read: transfers, or a
// two-database scenario (the ledger in both databases).
func (c Config) HasLedger() bool { return c.Scenario == nil || c.TwoDatabases() }

// Name is what the run is: its strategy, or "scenario NAME".
func (c Config) Name() string {
	if c.Scenario != nil {
		return "scenario " + c.ScenarioName
	}
	if c.Strategy == nil {
		return ""
	}
	return c.Strategy.Name
}

// sessionName is session i's name: T1, T2, …, or in a two-database
// scenario the scenario's own name for it (T1@A).
func (c Config) sessionName(i int) string {
	if c.TwoDatabases() {
		return c.Scenario.Sessions[i].Name
	}
	return fmt.Sprintf("T%d", i+1)
}

var twoDBName = lazyre.New(`^T[1-9]@[AB]$`)

// validateTwoDatabases checks a two-database scenario's session names and
// that a second database was given.
func (c Config) validateTwoDatabases() error {
	seen := map[string]bool{}
	for _, s := range c.Scenario.Sessions {
		if !twoDBName.MatchString(s.Name) {
			return fmt.Errorf("session %q: in a two-database scenario name every session T<n>@A or T<n>@B (the logical session and its database)", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("session %q appears twice", s.Name)
		}
		seen[s.Name] = true
	}
	if c.DB2 == nil {
		return ErrNoSecondDatabase
	}
	return nil
}

// ErrNoSecondDatabase says a two-database scenario was given one database.
var ErrNoSecondDatabase = errors.New("this scenario uses two databases; no second database was opened")

// usesTwoPhaseCommit says whether the scenario prepares transactions.
func (c Config) usesTwoPhaseCommit() bool {
	if c.Scenario == nil {
		return false
	}
	for _, s := range c.Scenario.Sessions {
		for _, st := range s.Steps {
			if strings.Contains(strings.ToUpper(st.SQL), "PREPARE TRANSACTION") {
				return true
			}
		}
	}
	return false
}
