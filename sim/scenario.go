package sim

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"lockstep/ledger"
	"lockstep/spec"
)

// Script is what a session steps through: a transfer under a strategy, or
// a scenario session's steps.
type Script interface {
	Len() int
	SQL(i int) string
	Record(i int, row []any) error
}

// stepsScript is a scenario session's steps, with <run> filled in.
type stepsScript struct {
	steps []*spec.Step
	run   func(string) string
}

func (s stepsScript) Len() int                { return len(s.steps) }
func (s stepsScript) SQL(i int) string        { return s.run(s.steps[i].SQL) }
func (s stepsScript) Record(int, []any) error { return nil }
func (s stepsScript) Name(i int) string       { return s.steps[i].Name }

// ErrNoLedger is returned by Books in a scenario run, which has no ledger.
var ErrNoLedger = errors.New("this scenario has no ledger")

// scriptFor builds session i's script afresh.
func (e *Engine) scriptFor(s *session) Script {
	if sc := e.cfg.Scenario; sc != nil {
		return stepsScript{steps: sc.Sessions[s.idx].Steps, run: e.runSQL}
	}
	return e.cfg.Strategy.Script(s.transfer, e.cfg.DB.Schema())
}

// autoRollbackOnError says whether a failed script statement rolls the
// transaction back and ends the script, as application code would: yes for
// the transfer strategies and two-database scenarios, no for other
// scenarios, whose author decides.
func (e *Engine) autoRollbackOnError() bool {
	// In a two-database scenario the application gives up the connection
	// whose statement failed (a lock timeout): it cannot go on there.
	return e.cfg.TwoDatabases() || (e.cfg.Scenario == nil && e.cfg.Strategy.Transactional)
}

// prepare makes the data the sessions work on: the ledger, or a scenario's
// global setup blocks. It runs on the control connections. A two-database
// scenario gets the ledger in both databases, then its setup in both.
func (e *Engine) prepare(ctx context.Context) error {
	sc := e.cfg.Scenario
	for _, sd := range e.sides {
		if sc == nil || e.cfg.TwoDatabases() {
			if err := e.cfg.Ledger.Reset(ctx, sd.ctl, sd.db.Schema(), e.cfg.Setup); err != nil {
				if sd.label != "" {
					return fmt.Errorf("%s: %w", sd.what(), err)
				}
				return err
			}
		}
		if sc == nil {
			continue
		}
		// The scenario's tables go in the run's schema (search_path), so that
		// students sharing a server do not collide.
		if schema := sd.db.Schema(); schema != "" {
			if err := ledger.EnsureSchema(ctx, sd.ctl, schema); err != nil {
				return err
			}
		}
		for _, sql := range sc.Setup {
			if _, err := sd.ctl.Exec(ctx, sql); err != nil {
				return fmt.Errorf("the scenario's setup failed in %s: %w", sd.what(), err)
			}
		}
	}
	return nil
}

// teardown rolls back what the run left prepared and runs a scenario's
// global teardown, so that the database is left as it was found; the ledger
// stays for the user to look at. e.ctlMu is held.
func (e *Engine) teardown(ctx context.Context) error {
	if err := e.rollbackPrepared(ctx); err != nil {
		return err
	}
	sc := e.cfg.Scenario
	if sc == nil || sc.Teardown == "" {
		return nil
	}
	for _, sd := range e.sides {
		if _, err := sd.ctl.Exec(ctx, sc.Teardown); err != nil {
			return fmt.Errorf("the scenario's teardown failed in %s: %w", sd.what(), err)
		}
	}
	return nil
}

// sessionSetup runs a scenario session's setup on its connection; a setup
// that opens a transaction leaves the session in it.
func (e *Engine) sessionSetup(ctx context.Context, s *session, conn *pgx.Conn) error {
	sc := e.cfg.Scenario
	if sc == nil || sc.Sessions[s.idx].Setup == "" {
		return nil
	}
	if _, err := conn.Exec(ctx, sc.Sessions[s.idx].Setup); err != nil {
		return fmt.Errorf("the setup of session %s failed: %w", sc.Sessions[s.idx].Name, err)
	}
	if conn.PgConn().TxStatus() == 'T' {
		e.mu.Lock()
		s.state = InTransaction
		e.mu.Unlock()
	}
	if e.cfg.TwoDatabases() {
		s.readLockTimeout(ctx)
	}
	return nil
}

// sessionTeardown runs a scenario session's teardown before it closes.
func (e *Engine) sessionTeardown(ctx context.Context, s *session) {
	if sc := e.cfg.Scenario; sc != nil && sc.Sessions[s.idx].Teardown != "" && s.conn != nil && !s.conn.IsClosed() {
		_, _ = s.conn.Exec(ctx, sc.Sessions[s.idx].Teardown)
	}
}

// label is how views name a session: its scenario name, or "".
func (e *Engine) label(i int) string {
	if sc := e.cfg.Scenario; sc != nil {
		return sc.Sessions[i].Name
	}
	return ""
}
