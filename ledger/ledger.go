// Package ledger is lockstep's ledger — accounts, transfers, entries — and the
// transfer strategies written as statement scripts, with a runner that runs a
// whole script with retries.
package ledger

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/shopspring/decimal"

	"lockstep/db"
)

// schemaMark is the comment lockstep puts on the schemas it creates; reset
// drops no schema without it.
const schemaMark = "lockstep ledger: created by lockstep, dropped by lockstep reset"

// ErrUnmarkedSchema is returned when reset would drop a schema lockstep did not create.
var ErrUnmarkedSchema = errors.New("schema exists and was not created by lockstep")

// ErrSchemaNotYours is returned when the schema belongs to another role.
var ErrSchemaNotYours = errors.New("the schema belongs to another role")

// ErrSchemaInUse is returned when another lockstep run is live on the schema.
var ErrSchemaInUse = errors.New("another lockstep run is using the schema")

// claimSQL is the advisory key a run holds, shared, on its schema while it is
// live: (hashtext(schema), 0). The ledger's own advisory keys are
// (hashtext(schema), account id), and account ids start at 1.
const claimSQL = "hashtext($1), 0"

// Claim marks schema as in use by the caller's run for as long as conn
// lives (a session-level advisory lock, shared: readers of one schema do
// not exclude each other). Reset refuses to drop a schema another
// connection claims. It fails with ErrSchemaInUse while another run is
// re-creating the schema.
func Claim(ctx context.Context, conn *pgx.Conn, schema string) error {
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock_shared("+claimSQL+")", schema).Scan(&ok); err != nil {
		return fmt.Errorf("claiming schema %s: %w", schema, err)
	}
	if !ok {
		return fmt.Errorf("%w: schema %s is being re-created by another lockstep right now; try again, or use another --schema", ErrSchemaInUse, schema)
	}
	return nil
}

// Release ends conn's claim on schema (Claim) at once: a closed
// connection's backend lingers a moment, and with it its locks.
func Release(ctx context.Context, conn *pgx.Conn, schema string) error {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock_shared("+claimSQL+")", schema); err != nil {
		return fmt.Errorf("releasing schema %s: %w", schema, err)
	}
	return nil
}

// claimants names the other backends that claim schema — who runs lockstep
// there, for a refusal — or is "" when none does.
func claimants(ctx context.Context, q Querier, schema string) string {
	rows, err := q.Query(ctx, `SELECT a.usename, a.application_name, a.pid, to_char(a.backend_start, 'HH24:MI:SS')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = hashtext($1)::oid AND l.objid = 0 AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.pid <> pg_backend_pid()
		ORDER BY a.backend_start`, schema)
	if err != nil {
		return ""
	}
	var who []string
	for rows.Next() {
		var user, app, since string
		var pid int32
		if rows.Scan(&user, &app, &pid, &since) == nil {
			run := app
			if run == "" {
				run = "a connection without a name"
			}
			if rest, ok := strings.CutPrefix(app, "lockstep/"); ok {
				run, _, _ = strings.Cut(rest, "/")
				run = "run " + run
			}
			who = append(who, fmt.Sprintf("role %s, %s (pid %d, since %s)", user, run, pid, since))
		}
	}
	rows.Close()
	return strings.Join(who, "; ")
}

// checkOwner refuses a schema that exists and belongs to a role the
// current one is not a member of (PostgreSQL would refuse to drop it, or
// to create tables in it).
func checkOwner(ctx context.Context, q Querier, schema string) error {
	var owner string
	var mine bool
	err := q.QueryRow(ctx, `SELECT pg_get_userbyid(nspowner), pg_has_role(nspowner, 'USAGE')
		FROM pg_namespace WHERE nspname = $1`, schema).Scan(&owner, &mine)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && mine:
		return nil
	case err != nil:
		return fmt.Errorf("looking up schema %s: %w", schema, err)
	}
	var me string
	if err := q.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		return fmt.Errorf("looking up the current role: %w", err)
	}
	return fmt.Errorf("%w: schema %s belongs to role %s; use one of your own, %s: leave out --schema, or pass --schema %s",
		ErrSchemaNotYours, schema, owner, db.DefaultSchemaFor(me), db.DefaultSchemaFor(me))
}

// Querier is what the ledger's queries run on: a connection, a pool or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DDL is the ledger's tables, schema.sql beside this file.
//
//go:embed schema.sql
var DDL string

// Ledger creates the ledger from its DDL (schema.sql).
type Ledger struct {
	ddl string
}

// New is the ledger schema.sql defines.
func New() *Ledger { return &Ledger{ddl: DDL} }

// Setup is what reset creates.
type Setup struct {
	Accounts int             // how many accounts, ids 1..Accounts
	Balance  decimal.Decimal // each account's opening balance
}

// DefaultSetup is the lecture's: two accounts with 100.00 each.
func DefaultSetup() Setup {
	return Setup{Accounts: 2, Balance: decimal.RequireFromString("100.00")}
}

// MaxAccounts bounds a ledger's size.
const MaxAccounts = 1_000_000

// CheckAccounts says what is wrong with a ledger of n accounts.
func CheckAccounts(n int) error {
	switch {
	case n < 2:
		return errors.New("a transfer needs at least 2 accounts")
	case n > MaxAccounts:
		return fmt.Errorf("at most %d accounts: a million take about 7 s to create, and a bigger ledger shows nothing more", MaxAccounts)
	}
	return nil
}

// CheckBalance says what is wrong with an opening balance.
func CheckBalance(b decimal.Decimal) error {
	switch {
	case b.IsNegative():
		return errors.New("an opening balance cannot be negative")
	case b.GreaterThanOrEqual(decimal.New(1, 10)):
		return errors.New("NUMERIC(12,2) holds at most 9999999999.99")
	}
	return nil
}

// Validate reports a setup that cannot be created, in words a user can act on.
func (s Setup) Validate() error {
	if err := CheckAccounts(s.Accounts); err != nil {
		return fmt.Errorf("%d accounts: %w", s.Accounts, err)
	}
	if err := CheckBalance(s.Balance); err != nil {
		return fmt.Errorf("opening balance %s: %w", s.Balance.StringFixed(2), err)
	}
	return nil
}

// Account is one row of accounts.
type Account struct {
	ID             int64
	Owner          string
	Balance        decimal.Decimal
	OpeningBalance decimal.Decimal
}

var owners = [...]string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}

// Reset drops the schema if lockstep created it, creates the ledger in it and
// opens the accounts. It refuses, with ErrUnmarkedSchema, to drop a schema
// without lockstep's mark.
func (l *Ledger) Reset(ctx context.Context, conn *pgx.Conn, schema string, setup Setup) error {
	if err := setup.Validate(); err != nil {
		return err
	}
	ident := pgx.Identifier{schema}.Sanitize()
	if err := checkOwner(ctx, conn, schema); err != nil {
		return err
	}
	var comment *string
	err := conn.QueryRow(ctx,
		"SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", schema).Scan(&comment)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("looking up schema %s: %w", schema, err)
	case comment == nil || *comment != schemaMark:
		return fmt.Errorf("%w: refusing to drop schema %q; choose another schema, or drop it yourself if it is yours to drop", ErrUnmarkedSchema, schema)
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// No other run may be live on the schema: its claim, shared,
		// conflicts with this lock (the caller's own claim does not).
		var free bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock("+claimSQL+")", schema).Scan(&free); err != nil {
			return fmt.Errorf("checking that no other lockstep uses schema %s: %w", schema, err)
		}
		if !free {
			who := claimants(ctx, tx, schema)
			if who == "" {
				who = "another connection"
			}
			return fmt.Errorf("%w: refusing to re-create schema %s under a live run (%s); use another --schema, or wait for that run to end",
				ErrSchemaInUse, schema, who)
		}
		steps := []string{
			"DROP SCHEMA IF EXISTS " + ident + " CASCADE",
			"CREATE SCHEMA " + ident,
			"COMMENT ON SCHEMA " + ident + " IS '" + schemaMark + "'",
			"SET LOCAL search_path = " + ident,
			l.ddl,
		}
		for _, sql := range steps {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("creating the ledger in schema %s: %w", schema, err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO accounts (id, owner, balance, opening_balance)
			SELECT g, coalesce(($3::text[])[g], 'account ' || g), $2, $2 FROM generate_series(1, $1::int) AS g`,
			setup.Accounts, setup.Balance, owners[:])
		if err != nil {
			return fmt.Errorf("opening %d accounts: %w", setup.Accounts, err)
		}
		return nil
	})
}

// ResetDatabase resets the ledger in d's schema on a connection of its own.
func (l *Ledger) ResetDatabase(ctx context.Context, d *db.Database, setup Setup) error {
	conn, err := d.Connect(ctx, db.AppName("reset"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return l.Reset(ctx, conn, d.Schema(), setup)
}

// EnsureSchema creates schema, marked as lockstep's, if it does not exist,
// for runs that put other tables there (scenarios); a later reset may then
// drop it.
func EnsureSchema(ctx context.Context, conn *pgx.Conn, schema string) error {
	ident := pgx.Identifier{schema}.Sanitize()
	if err := checkOwner(ctx, conn, schema); err != nil {
		return err
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("looking up schema %s: %w", schema, err)
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+ident); err != nil {
			return fmt.Errorf("creating schema %s: %w", schema, err)
		}
		_, err := tx.Exec(ctx, "COMMENT ON SCHEMA "+ident+" IS '"+schemaMark+"'")
		return err
	})
}

// Accounts reads every account, in id order.
func Accounts(ctx context.Context, q Querier) ([]Account, error) {
	rows, err := q.Query(ctx, "SELECT id, owner, balance, opening_balance FROM accounts ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("reading accounts: %w", err)
	}
	accounts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Account, error) {
		var a Account
		err := r.Scan(&a.ID, &a.Owner, &a.Balance, &a.OpeningBalance)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("reading accounts: %w", err)
	}
	return accounts, nil
}
