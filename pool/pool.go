// Package pool is the connection-pool exhaustion scenario between two
// databases. An application writes every change to databases A and B: it
// takes a connection for A and writes there in a transaction, then takes a
// connection for B, writes there, and commits both. With one pool of size P
// serving both databases, P concurrent tasks each hold a connection for A and
// wait for one for B: the pool is exhausted and everything hangs, although no
// database sees a single lock wait. Run plays the scenario on real
// connections — unfixed or with one of three fixes — reports every task's
// phase and the pools' own statistics, detects the exhaustion exactly, and
// ends the run cleanly when it happens.
package pool

import (
	"errors"
	"fmt"
	"strings"

	"lockstep/db"
	"lockstep/lazyre"
)

// Fix is how the application avoids exhausting its pool, or None.
type Fix int

// The fixes Run knows.
const (
	// None is the application as written: one shared pool, and each task
	// holds its connection for A while it waits for one for B.
	None Fix = iota
	// UpFront takes both connections before writing, A then B, one task at
	// a time.
	UpFront
	// PerDatabase gives each database a pool of its own.
	PerDatabase
	// Semaphore lets at most P-1 tasks take connections at once.
	Semaphore
)

// Fixes lists every Fix in the order they are explained.
func Fixes() []Fix { return []Fix{None, UpFront, PerDatabase, Semaphore} }

var fixNames = [...]string{None: "none", UpFront: "up-front", PerDatabase: "pool-per-database", Semaphore: "semaphore"}

// String is the fix's name as ParseFix reads it.
func (f Fix) String() string {
	if f < 0 || int(f) >= len(fixNames) {
		return fmt.Sprintf("Fix(%d)", int(f))
	}
	return fixNames[f]
}

// Summary says in one line what the fix does and why it cannot hang.
func (f Fix) Summary() string {
	switch f {
	case None:
		return "one shared pool; each task holds its connection for A while it waits for one for B, so P tasks exhaust the pool and hang"
	case UpFront:
		return "take both connections before writing, A then B, one task at a time: only the task taking its pair ever waits while holding one, so no cycle closes"
	case PerDatabase:
		return "one pool per database: a task holding A's connection waits on B's pool, whose holders need nothing more and will give theirs back"
	case Semaphore:
		return "a semaphore of P-1 permits around each task: at most P-1 tasks hold connections, so one is always left for someone's second"
	}
	return "unknown fix"
}

// ParseFix reads a fix's name: none, up-front, pool-per-database or semaphore.
func ParseFix(s string) (Fix, error) {
	for _, f := range Fixes() {
		if s == f.String() {
			return f, nil
		}
	}
	names := make([]string, 0, len(fixNames))
	for _, f := range Fixes() {
		names = append(names, f.String())
	}
	return None, fmt.Errorf("unknown pool fix %q: use one of %s", s, strings.Join(names, ", "))
}

// MaxSize bounds Config.Size and Config.Tasks: each task holds up to two
// server connections, and the throwaway server allows 200.
const MaxSize = 50

// Config is one run of the scenario.
type Config struct {
	// A and B are the two databases every change is written to. They must
	// be different databases, each holding the ledger in the schema their
	// connections' search_path names.
	A, B *db.Database
	// Size is P, the pool's MaxConns, at least 2. With PerDatabase each
	// database gets a pool of this size.
	Size int
	// Tasks is how many tasks run at once; 0 means Size. Task Ti moves 1.00
	// from account 2i-1 to account 2i, so the ledgers need 2×Tasks accounts.
	Tasks int
	// Fix is the fix applied, or None.
	Fix Fix
	// RunID names every connection lockstep/<RunID>/pool in
	// pg_stat_activity; empty means a random one (see Result.RunID).
	RunID db.RunID
}

var runIDRE = lazyre.New(`^[A-Za-z0-9.-]{1,40}$`)

// Validate reports a configuration Run cannot play, in one line.
func (c Config) Validate() error {
	switch {
	case c.A == nil:
		return errors.New("pool scenario: database A is missing")
	case c.B == nil:
		return errors.New("pool scenario: database B is missing: the scenario writes every change to two databases")
	case c.A.Label() == c.B.Label() && c.A.Name() == c.B.Name():
		return fmt.Errorf("pool scenario: A and B are the same database (%s): the scenario needs two", c.A.Label())
	}
	return c.ValidateShape()
}

// CheckSize says what is wrong with a pool of n connections.
func CheckSize(n int) error {
	switch {
	case n < 2:
		return errors.New("at least 2 (a task needs a connection for A and one for B)")
	case n > MaxSize:
		return fmt.Errorf("at most %d", MaxSize)
	}
	return nil
}

// CheckTasks says what is wrong with running n tasks at once.
func CheckTasks(n int) error {
	switch {
	case n < 0:
		return errors.New("cannot be negative (0 means one task per pool connection)")
	case n > MaxSize:
		return fmt.Errorf("at most %d", MaxSize)
	}
	return nil
}

// ValidateShape checks the numbers and the fix, which need no database: a
// command line checks them before it opens one.
func (c Config) ValidateShape() error {
	if err := CheckSize(c.Size); err != nil {
		return fmt.Errorf("pool size %d: %w", c.Size, err)
	}
	if err := CheckTasks(c.Tasks); err != nil {
		return fmt.Errorf("%d tasks: %w", c.Tasks, err)
	}
	switch {
	case c.Fix < None || c.Fix > Semaphore:
		return fmt.Errorf("unknown pool fix %d", int(c.Fix))
	case c.RunID != "" && !runIDRE.MatchString(string(c.RunID)):
		return fmt.Errorf("run id %q: use 1 to 40 letters, digits, '.' and '-'", c.RunID)
	}
	return nil
}

// TaskCount is how many tasks the run starts: Tasks, or Size when Tasks is 0.
func (c Config) TaskCount() int {
	if c.Tasks == 0 {
		return c.Size
	}
	return c.Tasks
}

// Accounts is how many ledger accounts each database needs: two per task,
// since task Ti moves 1.00 from account 2i-1 to 2i.
func (c Config) Accounts() int { return 2 * c.TaskCount() }

// AppName is the application_name of every connection of run runID.
func AppName(runID db.RunID) string { return runID.AppName("pool") }
