package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"lockstep/ledger"
	"lockstep/scenario"
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
	steps []*scenario.Step
	run   func(string) string
}

func (s stepsScript) Len() int                { return len(s.steps) }
func (s stepsScript) SQL(i int) string        { return s.run(s.steps[i].SQL) }
func (s stepsScript) Record(int, []any) error { return nil }

// ErrNoLedger is returned by Books in a scenario run, which has no ledger.
var ErrNoLedger = errors.New("this scenario has no ledger")

// scriptFor builds session s's script afresh.
func (e *Engine) scriptFor(s *session) Script {
	if e.cfg.Scripts != nil {
		return e.cfg.Scripts(s.idx)
	}
	if sc := e.cfg.Scenario; sc != nil {
		return stepsScript{steps: sc.Sessions[s.idx].Steps, run: e.runSQL}
	}
	return e.cfg.Strategy.Script(s.transfer, e.cfg.DB.Schema())
}

// runSQL fills a scenario statement in for this run: <run> becomes the run's
// id, so that a prepared transaction's global id (unique on the whole
// server) is the run's own: PREPARE TRANSACTION 'lockstep/<run>/T1@A'. In a
// two-database run, <b_host>, <b_port>, <b_dbname>, <b_user> and
// <b_schema> say how to reach database B from A (a postgres_fdw server):
// each becomes an SQL string literal, quoted (a database named q'x is
// one), for a spec to write where a literal goes: OPTIONS (host <b_host>).
func (e *Engine) runSQL(sql string) string {
	sql = strings.ReplaceAll(sql, "<run>", string(e.runID))
	if e.cfg.DB2 != nil && strings.Contains(sql, "<b_") {
		c := e.cfg.DB2.ConnConfig("")
		sql = fillB(sql, c.Host, strconv.Itoa(int(c.Port)), c.Database, c.User, e.cfg.DB2.Schema())
	}
	return sql
}

// fillB puts database B's connection settings into sql as string literals.
func fillB(sql, host, port, dbname, user, schema string) string {
	return strings.NewReplacer("<b_host>", quoteLiteral(host), "<b_port>", quoteLiteral(port),
		"<b_dbname>", quoteLiteral(dbname), "<b_user>", quoteLiteral(user), "<b_schema>", quoteLiteral(schema)).Replace(sql)
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

// BlockError is a scenario's setup or teardown block that failed.
type BlockError struct {
	Block Block
	// SQL is the block as sent (an error's position points into it).
	SQL string
	Err error
}

func (e *BlockError) Error() string {
	what := "setup"
	if e.Block.Teardown {
		what = "teardown"
	}
	if e.Block.Session != "" {
		what = "the " + what + " of session " + e.Block.Session
	} else {
		what = "the scenario's " + what
	}
	return what + " failed: " + e.Err.Error()
}

func (e *BlockError) Unwrap() error { return e.Err }

// prepare makes the data the sessions work on: the ledger, or a scenario's
// global setup blocks. It runs on the control connections; e.ctlMu is held.
// A two-database scenario gets the ledger in both databases, then its setup
// in both.
func (e *Engine) prepare(ctx context.Context) error {
	sc := e.cfg.Scenario
	for _, sd := range e.sides {
		// Re-creating the ledger or the schema must not queue behind a session.
		if sc == nil || e.cfg.TwoDatabases() || sd.db.Schema() != "" {
			if err := sd.timed(ctx); err != nil {
				return err
			}
		}
		if sc == nil || e.cfg.TwoDatabases() {
			made, err := e.cfg.Ledger.Reset(ctx, sd.ctl, sd.db.Schema(), e.cfg.Setup)
			if err != nil {
				if sd.label != "" {
					return fmt.Errorf("%s: %w", sd.what(), err)
				}
				return err
			}
			sd.made = sd.made || made
		}
		if sc == nil {
			continue
		}
		// The scenario's tables go in the run's schema (search_path), so that
		// students sharing a server do not collide.
		if schema := sd.db.Schema(); schema != "" {
			made, err := ledger.EnsureSchema(ctx, sd.ctl, schema)
			if err != nil {
				return err
			}
			sd.made = sd.made || made
		}
		for _, sql := range sc.Setup {
			if err := e.runBlock(ctx, sd, Block{}, e.runSQL(sql)); err != nil {
				return err
			}
		}
	}
	return nil
}

// runBlock runs a global block in sd and reports it as a BlockRan event.
func (e *Engine) runBlock(ctx context.Context, sd *side, b Block, sql string) error {
	stop := e.watchBlock(ctx, sd, int32(sd.ctl.PgConn().PID()), b, nil)
	res, err := sd.execBlock(ctx, sql)
	stop()
	e.emit(Event{Gen: e.generation(), Kind: BlockRan, Index: -1, Step: -1, SQL: sql, Block: b, Results: res, Err: ServerError(err)})
	if err != nil {
		if sd.label != "" {
			err = fmt.Errorf("in %s: %w", sd.what(), err)
		}
		return &BlockError{Block: b, SQL: sql, Err: err}
	}
	return nil
}

// teardown rolls back what the run left prepared and runs a scenario's
// global teardown, so that the database is left as it was found; the ledger
// stays for the user to look at. After a failed setup no teardown block
// runs, as PostgreSQL's isolation tester runs none: what the teardown
// would drop (a table named like the scenario's) may be what made the
// setup fail, and not the run's. e.ctlMu is held.
func (e *Engine) teardown(ctx context.Context) error {
	if err := e.rollbackPrepared(ctx); err != nil {
		return err
	}
	sc := e.cfg.Scenario
	if sc == nil || sc.Teardown == "" || e.setUpFailed() {
		return nil
	}
	var errs []error
	for _, sd := range e.sides {
		if err := e.runBlock(ctx, sd, Block{Teardown: true}, e.runSQL(sc.Teardown)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sessionSetup runs a scenario session's setup on its connection, from the
// session's worker or before it starts; a setup that opens a transaction
// leaves the session in it.
func (s *session) setup(ctx context.Context) error {
	e := s.e
	sc := e.cfg.Scenario
	if sc == nil || sc.Sessions[s.idx].Setup == "" {
		return nil
	}
	b := Block{Session: sc.Sessions[s.idx].Name}
	sql := e.runSQL(sc.Sessions[s.idx].Setup)
	s.sending = sql
	stop := e.watchBlock(ctx, s.side, s.pid, b, s)
	res, _, err := runSQL(ctx, s.conn.PgConn(), sql)
	stop()
	s.sending = ""
	e.emit(Event{Gen: e.generation(), Kind: BlockRan, Session: s.name, Index: s.idx, Step: -1, SQL: sql,
		Block: b, Results: res, Err: ServerError(err)})
	if err != nil {
		return &BlockError{Block: b, SQL: sql, Err: err}
	}
	if s.conn.PgConn().TxStatus() == 'T' {
		e.mu.Lock()
		s.state = InTransaction
		e.mu.Unlock()
	}
	s.readTimeouts(ctx)
	return nil
}

// teardown runs a scenario session's teardown on its connection (none
// after a failed setup), then rolls back whatever it left open (unless
// Config.KeepTransactions, or the connection is closing anyway). A failed
// teardown is reported and does not stop the others.
func (s *session) teardown(ctx context.Context, closing bool) {
	if s.conn == nil || s.conn.IsClosed() {
		return
	}
	e := s.e
	if sc := e.cfg.Scenario; sc != nil && sc.Sessions[s.idx].Teardown != "" && !e.setUpFailed() {
		sql := e.runSQL(sc.Sessions[s.idx].Teardown)
		b := Block{Teardown: true, Session: sc.Sessions[s.idx].Name}
		stop := func() {}
		if !closing {
			stop = e.watchBlock(ctx, s.side, s.pid, b, s)
		}
		s.sending = sql
		res, _, err := runSQL(ctx, s.conn.PgConn(), sql)
		stop()
		s.sending = ""
		e.emit(Event{Gen: e.generation(), Kind: BlockRan, Session: s.name, Index: s.idx, Step: -1, SQL: sql,
			Block: b, Results: res, Err: ServerError(err)})
	}
	if e.cfg.KeepTransactions && !closing {
		s.syncState()
		return
	}
	if !s.conn.IsClosed() && s.conn.PgConn().TxStatus() != 'I' {
		_, _ = s.conn.Exec(ctx, "ROLLBACK")
	}
}

// syncState sets an idle session's state from its connection's
// transaction status, after a block ran on it.
func (s *session) syncState() {
	e := s.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.state.Busy() || s.conn == nil || s.conn.IsClosed() {
		return
	}
	switch s.conn.PgConn().TxStatus() {
	case 'T':
		s.state = InTransaction
	case 'E':
		s.state = Aborted
	}
}

// label is how views name a session: its scenario name, or "".
func (e *Engine) label(i int) string {
	if sc := e.cfg.Scenario; sc != nil {
		return sc.Sessions[i].Name
	}
	return ""
}
