package sim

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
)

// side is one database of a run: its control connection (cancels, resets,
// prepared transactions) and its observer. A one-database run has one side
// with no label; a two-database run has sides A and B.
type side struct {
	label   string
	db      *db.Database
	ctl     *pgx.Conn
	obs     *locks.Observer
	obsConn *pgx.Conn
}

// what names the side in messages: "database B (lockstep_b)".
func (sd *side) what() string {
	if sd.label == "" {
		return "the database"
	}
	return "database " + sd.label + " (" + sd.db.Name() + ")"
}

var twoDBName = regexp.MustCompile(`^T[1-9]@[AB]$`)

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
		return errors.New("this scenario uses two databases; no second database was opened (--dsn2)")
	}
	return nil
}

// controlConn opens a side's control connection. Its lock_timeout keeps it
// from queueing behind a session.
func (e *Engine) controlConn(ctx context.Context, sd *side) (*pgx.Conn, error) {
	conn, err := sd.db.Connect(ctx, locks.SessionAppName(e.runID, "control"+sd.label))
	if err != nil {
		return nil, fmt.Errorf("opening the control connection to %s: %w", sd.what(), err)
	}
	if _, err = conn.Exec(ctx, "SET lock_timeout = '50ms'"); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("setting up the control connection to %s: %w", sd.what(), err)
	}
	return conn, nil
}

// newObserver opens a side's observer on a connection of its own.
func (e *Engine) newObserver(ctx context.Context, sd *side) (*pgx.Conn, *locks.Observer, error) {
	conn, err := sd.db.Connect(ctx, locks.SessionAppName(e.runID, "observer"+sd.label))
	if err != nil {
		return nil, nil, fmt.Errorf("opening the observer's connection to %s: %w", sd.what(), err)
	}
	var opts []locks.Option
	if sd.label != "" {
		opts = append(opts, locks.WithLabel(sd.label))
	}
	if e.cfg.usesTwoPhaseCommit() {
		opts = append(opts, locks.WithPrepared())
	}
	obs, err := locks.NewObserver(ctx, conn, e.runID, sd.db.Schema(), opts...)
	if err != nil {
		conn.Close(ctx)
		return nil, nil, err
	}
	return conn, obs, nil
}

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

// ErrNoPreparedTransactions says a server cannot run two-phase commit.
var ErrNoPreparedTransactions = errors.New("max_prepared_transactions = 0")

// checkPrepared refuses, in plain words, a two-phase-commit scenario on a
// server where PREPARE TRANSACTION cannot work.
func (e *Engine) checkPrepared(ctx context.Context) error {
	if !e.cfg.usesTwoPhaseCommit() {
		return nil
	}
	for _, sd := range e.sides {
		var n int
		if err := sd.ctl.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
			return fmt.Errorf("reading max_prepared_transactions in %s: %w", sd.what(), err)
		}
		if n == 0 {
			return fmt.Errorf("%s: the server has %w, so PREPARE TRANSACTION fails there: set max_prepared_transactions above 0 in postgresql.conf and restart it, or omit --dsn to use lockstep's throwaway server (it has 16)",
				sd.what(), ErrNoPreparedTransactions)
		}
	}
	return nil
}

// runSQL fills a scenario statement in for this run: <run> becomes the run's
// id, so that a prepared transaction's global id (unique on the whole
// server) is the run's own: PREPARE TRANSACTION 'lockstep/<run>/T1@A'.
func (e *Engine) runSQL(sql string) string { return strings.ReplaceAll(sql, "<run>", e.runID) }

// Prepared is a prepared transaction of the run: PREPARE TRANSACTION ran and
// neither COMMIT PREPARED nor ROLLBACK PREPARED has. It holds its locks with
// no backend.
type Prepared struct {
	Database string // the side's label
	GID      string
	Xid      uint32
	At       time.Time
}

// Name is how the lock views name it: "prepared T1@B".
func (p Prepared) Name(runID string) string { return locks.PreparedName(runID, p.GID) }

// Prepared lists the run's prepared transactions in every database, from pg_prepared_xacts.
func (e *Engine) Prepared(ctx context.Context) ([]Prepared, error) {
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	return e.prepared(ctx)
}

// prepared lists them; e.ctlMu is held.
func (e *Engine) prepared(ctx context.Context) ([]Prepared, error) {
	var out []Prepared
	for _, sd := range e.sides {
		if err := e.reconnectControl(ctx, sd); err != nil {
			return nil, err
		}
		rows, err := sd.ctl.Query(ctx, `SELECT gid, transaction::text::bigint, prepared FROM pg_prepared_xacts
			WHERE gid LIKE $1 AND database = current_database() ORDER BY prepared`, "lockstep/"+e.runID+"/%")
		if err != nil {
			return nil, fmt.Errorf("reading pg_prepared_xacts in %s: %w", sd.what(), err)
		}
		for rows.Next() {
			p := Prepared{Database: sd.label}
			var xid int64
			if err := rows.Scan(&p.GID, &xid, &p.At); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading pg_prepared_xacts in %s: %w", sd.what(), err)
			}
			p.Xid = uint32(xid)
			out = append(out, p)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("reading pg_prepared_xacts in %s: %w", sd.what(), err)
		}
	}
	return out, nil
}

// ResolvePrepared ends a prepared transaction of the run, as an operator
// would after a crash: COMMIT PREPARED (commit true) or ROLLBACK PREPARED,
// in the database that holds it.
func (e *Engine) ResolvePrepared(ctx context.Context, p Prepared, commit bool) error {
	if !strings.HasPrefix(p.GID, "lockstep/"+e.runID+"/") {
		return fmt.Errorf("%q is not a prepared transaction of this run", p.GID)
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	for _, sd := range e.sides {
		if sd.label != p.Database {
			continue
		}
		verb := "ROLLBACK PREPARED"
		if commit {
			verb = "COMMIT PREPARED"
		}
		if err := e.reconnectControl(ctx, sd); err != nil {
			return err
		}
		// Not under the control connection's lock_timeout: the prepared
		// transaction's own locks are the only ones it needs.
		if _, err := sd.ctl.Exec(ctx, verb+" "+quoteLiteral(p.GID)); err != nil {
			return fmt.Errorf("%s %s in %s: %w", verb, p.GID, sd.what(), err)
		}
		e.kickObserver()
		return nil
	}
	return fmt.Errorf("no database %q in this run", p.Database)
}

// rollbackPrepared rolls back whatever the run left prepared, so that no
// lock outlives it; e.ctlMu is held.
func (e *Engine) rollbackPrepared(ctx context.Context) error {
	if !e.cfg.usesTwoPhaseCommit() {
		return nil
	}
	list, err := e.prepared(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range list {
		for _, sd := range e.sides {
			if sd.label == p.Database {
				if _, err := sd.ctl.Exec(ctx, "ROLLBACK PREPARED "+quoteLiteral(p.GID)); err != nil {
					errs = append(errs, fmt.Errorf("rolling back prepared transaction %s: %w", p.GID, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Balances reads the ledger's accounts in every database of a two-database
// run, by label, on the control connections.
func (e *Engine) Balances(ctx context.Context) (map[string][]ledger.Account, error) {
	if !e.cfg.TwoDatabases() {
		return nil, errors.New("balances by database: this run has one database")
	}
	e.ctlMu.Lock()
	defer e.ctlMu.Unlock()
	out := map[string][]ledger.Account{}
	for _, sd := range e.sides {
		if err := e.reconnectControl(ctx, sd); err != nil {
			return nil, err
		}
		accounts, err := ledger.Accounts(ctx, sd.ctl)
		if err != nil {
			return nil, fmt.Errorf("reading the balances in %s: %w", sd.what(), err)
		}
		out[sd.label] = accounts
	}
	return out, nil
}

// InSync says whether both databases hold the same balances.
func InSync(balances map[string][]ledger.Account) bool {
	a, b := balances["A"], balances["B"]
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || !a[i].Balance.Equal(b[i].Balance) {
			return false
		}
	}
	return true
}
