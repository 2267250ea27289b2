package sim

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
	"lockstep/locks"
)

// side is one database of a run: its control connection (cancels, resets,
// prepared transactions, balances) and its observer on a connection of its
// own. A one-database run has one side with no label; a two-database run
// has sides A and B. The engine's ctlMu guards ctl; its mu guards obs and
// obsConn, which the observer goroutine replaces when they are lost.
type side struct {
	label   string
	db      *db.Database
	run     db.RunID
	ctl     *pgx.Conn
	obs     *locks.Observer
	obsConn *pgx.Conn
	// ctlFree says a block lifted the control connection's lock_timeout;
	// what must not wait behind a session puts it back first (timed).
	ctlFree bool
	// ctlChecked is when the control connection last answered a ping.
	ctlChecked time.Time
	// made says this run created the side's schema (ctlMu guards it): the
	// run may drop it at its end; a schema it found, it leaves.
	made bool
	// replaced says the control connection was lost and made again (ctlMu
	// guards it): what the lost one's backend was doing may still run.
	replaced bool
}

// pingEvery bounds how often a control connection is pinged before use: a
// spec's permutations set up and tear down hundreds of times a second.
const pingEvery = time.Second

// what names the side in messages: "database B (lockstep_b)".
func (sd *side) what() string {
	if sd.label == "" {
		return "the database"
	}
	return "database " + sd.label + " (" + sd.db.Name() + ")"
}

// controlConn opens the side's control connection. It starts with the
// server's own lock_timeout, as after a block (ctlFree): what must not queue
// behind a session sets its 50 ms first (timed) — a run whose first use of
// it is a block (a spec's setup) makes no round trip to set it and lift it.
func (sd *side) controlConn(ctx context.Context) (*pgx.Conn, error) {
	conn, err := sd.db.Connect(ctx, sd.run.AppName("control"+sd.label))
	if err != nil {
		return nil, fmt.Errorf("opening the control connection to %s: %w", sd.what(), err)
	}
	// The run's claim on its schema, first, for as long as the run lives:
	// no other lockstep may re-create or drop the schema under it. A
	// control connection that comes back takes it again before anything.
	if err := sd.claim(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

// claim takes the run's claim on the side's schema on conn (ledger.Claim).
// The control connection and the observer's both hold it, so that the
// claim outlives either one's loss: the observer's comes back by itself
// within a beat, before it polls again.
func (sd *side) claim(ctx context.Context, conn *pgx.Conn) error {
	if schema := sd.db.Schema(); schema != "" {
		return ledger.Claim(ctx, conn, schema)
	}
	return nil
}

// reconnectControl replaces a lost control connection (the server went
// away and came back); the engine's ctlMu is held.
func (sd *side) reconnectControl(ctx context.Context) error {
	// pgx learns that the server hung up only when it next uses the
	// connection: ask it, unless it answered a moment ago.
	if !sd.ctl.IsClosed() && time.Since(sd.ctlChecked) < pingEvery {
		return nil
	}
	if !sd.ctl.IsClosed() && sd.ctl.Ping(ctx) == nil {
		sd.ctlChecked = time.Now()
		return nil
	}
	sd.ctl.Close(ctx)
	sd.replaced = true
	conn, err := sd.controlConn(ctx)
	if err != nil {
		return err
	}
	sd.ctl, sd.ctlFree, sd.ctlChecked = conn, true, time.Now()
	return nil
}

// timed puts the control connection's lock_timeout back after a block
// lifted it, before a use that must not queue behind a session.
func (sd *side) timed(ctx context.Context) error {
	if !sd.ctlFree {
		return nil
	}
	if _, err := sd.ctl.Exec(ctx, "SET lock_timeout = '50ms'"); err != nil {
		return fmt.Errorf("setting the control connection's lock_timeout in %s: %w", sd.what(), err)
	}
	sd.ctlFree = false
	return nil
}

// execBlock runs a scenario's setup or teardown block on the control
// connection, free of its lock_timeout: a block waits like any client. The
// timeout stays lifted for the next block; timed puts it back when needed.
func (sd *side) execBlock(ctx context.Context, sql string) ([]Result, error) {
	if !sd.ctlFree {
		if _, err := sd.ctl.Exec(ctx, "RESET lock_timeout"); err != nil {
			return nil, err
		}
		sd.ctlFree = true
	}
	res, _, err := runSQL(ctx, sd.ctl.PgConn(), sql)
	return res, err
}

// newObserver opens the side's observer on a connection of its own. Row
// locks are read for the ledger, which lives in a schema of its own; SQL on
// the server's own search_path (the isolation tester's) has none.
func (sd *side) newObserver(ctx context.Context, prepared, waitsOnly, heldRows bool) (*pgx.Conn, *locks.Observer, error) {
	conn, err := sd.db.Connect(ctx, sd.run.AppName("observer"+sd.label))
	if err != nil {
		return nil, nil, fmt.Errorf("opening the observer's connection to %s: %w", sd.what(), err)
	}
	if err := sd.claim(ctx, conn); err != nil {
		conn.Close(ctx)
		return nil, nil, err
	}
	var opts []locks.Option
	if sd.label != "" {
		opts = append(opts, locks.WithLabel(sd.label))
	}
	if prepared {
		opts = append(opts, locks.WithPrepared())
	}
	if sd.db.Schema() == "" {
		opts = append(opts, locks.WithoutRowLocks())
	}
	if waitsOnly {
		opts = append(opts, locks.WaitsOnly())
	}
	if heldRows {
		// A scenario's own tables: its row locks, waited for or not.
		opts = append(opts, locks.WithHeldRowLocks())
	}
	obs, err := locks.NewObserver(ctx, conn, sd.run, sd.db.Schema(), opts...)
	if err != nil {
		conn.Close(ctx)
		return nil, nil, err
	}
	return conn, obs, nil
}

// ErrNoPreparedTransactions says a server cannot run two-phase commit.
var ErrNoPreparedTransactions = errors.New("max_prepared_transactions = 0")

// checkPrepared refuses, in plain words, two-phase commit on a server where
// PREPARE TRANSACTION cannot work.
func (sd *side) checkPrepared(ctx context.Context) error {
	var n int
	if err := sd.ctl.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n); err != nil {
		return fmt.Errorf("reading max_prepared_transactions in %s: %w", sd.what(), err)
	}
	if n == 0 {
		return fmt.Errorf("%s: the server has %w, so PREPARE TRANSACTION fails there: set max_prepared_transactions above 0 in postgresql.conf and restart it, or use lockstep's throwaway server (it has 16)",
			sd.what(), ErrNoPreparedTransactions)
	}
	return nil
}

// Prepared is a prepared transaction of the run: PREPARE TRANSACTION ran and
// neither COMMIT PREPARED nor ROLLBACK PREPARED has. It holds its locks with
// no backend.
type Prepared struct {
	Database string // the side's label
	GID      string
	Xid      uint32
	At       time.Time
	// Name is how the lock views name it: "prepared T1@B".
	Name string
}

// prepared lists the side's prepared transactions of the run, from
// pg_prepared_xacts; the engine's ctlMu is held.
func (sd *side) prepared(ctx context.Context) ([]Prepared, error) {
	if err := sd.reconnectControl(ctx); err != nil {
		return nil, err
	}
	rows, err := sd.ctl.Query(ctx, `SELECT gid, transaction::text::bigint, prepared FROM pg_prepared_xacts
		WHERE gid LIKE $1 AND database = current_database() ORDER BY prepared`, sd.run.Like(""))
	if err != nil {
		return nil, fmt.Errorf("reading pg_prepared_xacts in %s: %w", sd.what(), err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Prepared, error) {
		p := Prepared{Database: sd.label}
		var xid int64
		err := r.Scan(&p.GID, &xid, &p.At)
		p.Xid, p.Name = uint32(xid), locks.PreparedName(sd.run, p.GID)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading pg_prepared_xacts in %s: %w", sd.what(), err)
	}
	return list, nil
}

// endPrepared runs COMMIT PREPARED (commit true) or ROLLBACK PREPARED on
// one of the side's prepared transactions; the engine's ctlMu is held.
func (sd *side) endPrepared(ctx context.Context, gid string, commit bool) error {
	verb := "ROLLBACK PREPARED"
	if commit {
		verb = "COMMIT PREPARED"
	}
	if err := sd.reconnectControl(ctx); err != nil {
		return err
	}
	// Not under the control connection's lock_timeout: the prepared
	// transaction's own locks are the only ones it needs.
	if _, err := sd.ctl.Exec(ctx, verb+" "+quoteLiteral(gid)); err != nil {
		return fmt.Errorf("%s %s in %s: %w", verb, gid, sd.what(), err)
	}
	return nil
}

// quoteLiteral is s as an SQL string literal, as the server's quote_literal
// writes it: quotes doubled, and a backslash doubled in an E” literal, so
// that it reads the same whatever standard_conforming_strings says.
func quoteLiteral(s string) string {
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q
}

// ErrLedgerGone says the ledger's tables are gone: someone dropped the
// run's schema, or its tables, from outside the run.
var ErrLedgerGone = errors.New("the ledger is gone")

// ErrLedgerLocked says the balances could not be read because a session
// holds the accounts table exclusively.
var ErrLedgerLocked = errors.New("a session holds the accounts table exclusively")

// accounts reads the side's balances; the engine's ctlMu is held. It fails
// at once with ErrLedgerLocked rather than wait behind a session.
func (sd *side) accounts(ctx context.Context) ([]ledger.Account, error) {
	var accounts []ledger.Account
	err := sd.onControl(ctx, func() (err error) {
		accounts, err = ledger.Accounts(ctx, sd.ctl)
		return err
	})
	return accounts, sd.ledgerError(err)
}

// books checks the side's books; the engine's ctlMu is held.
func (sd *side) books(ctx context.Context) (ledger.Books, error) {
	var books ledger.Books
	err := sd.onControl(ctx, func() (err error) {
		books, err = ledger.CheckBooks(ctx, sd.ctl)
		return err
	})
	return books, sd.ledgerError(err)
}

// onControl runs f on the control connection, timed, connecting it again
// and running f once more when the connection turns out to be gone: the
// server ended it since it was last checked (a check is skipped within
// pingEvery of the last).
func (sd *side) onControl(ctx context.Context, f func() error) error {
	if err := sd.reconnectControl(ctx); err != nil {
		return err
	}
	err := sd.timed(ctx)
	if err == nil {
		err = f()
	}
	if err != nil && sd.ctl.IsClosed() {
		sd.ctlChecked = time.Time{}
		if rerr := sd.reconnectControl(ctx); rerr != nil {
			return err
		}
		if err = sd.timed(ctx); err == nil {
			err = f()
		}
	}
	return err
}

func (sd *side) ledgerError(err error) error {
	switch {
	case err == nil:
		return nil
	case db.SQLState(err) == pgerrcode.LockNotAvailable:
		return fmt.Errorf("%w: %w", ErrLedgerLocked, err)
	case db.SQLState(err) == pgerrcode.UndefinedTable || db.SQLState(err) == pgerrcode.InvalidSchemaName:
		return fmt.Errorf("%w: schema %s in %s has lost its tables (dropped from outside this run); a reset re-creates them",
			ErrLedgerGone, sd.db.Schema(), sd.db.Name())
	case sd.label != "":
		return fmt.Errorf("reading the balances in %s: %w", sd.what(), err)
	}
	return err
}
