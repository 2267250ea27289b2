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
		return refused(ErrSchemaInUse, "schema %s is being re-created by another lockstep right now; try again, or use another --schema", schema)
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
// there, for a refusal — or is "" when none does. The caller's own run
// (its connections share the run's name, lockstep/<run>/…) is not another.
func claimants(ctx context.Context, q Querier, schema string) string {
	rows, err := q.Query(ctx, `SELECT a.usename, a.application_name, a.pid, to_char(a.backend_start, 'HH24:MI:SS')
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.classid = hashtext($1)::oid AND l.objid = 0 AND l.objsubid = 2
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND l.pid <> pg_backend_pid()
		  AND NOT (current_setting('application_name') LIKE 'lockstep/%/%'
		           AND a.application_name LIKE split_part(current_setting('application_name'), '/', 1) || '/'
		                                       || split_part(current_setting('application_name'), '/', 2) || '/%')
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
	// force drops what is not lockstep's but depends on the ledger's
	// tables (a view over accounts, a foreign key to it) with them, after
	// say names it; without it, Reset refuses (CasualtiesError).
	force bool
	say   func(string)
}

// Forced is the ledger whose Reset drops, with the ledger's tables, what
// depends on them and is not lockstep's, after telling say what will go.
func (l *Ledger) Forced(say func(string)) *Ledger {
	c := *l
	c.force, c.say = true, say
	return &c
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

// Reset creates the ledger in schema, afresh: it creates the schema,
// marked as lockstep's for the current role, when there is none, and
// otherwise replaces the ledger's tables in it — only them: what else the
// schema holds stays. It refuses a schema lockstep did not make for this
// role (ErrUnmarkedSchema, ErrSchemaNotYours), one a live run claims
// (ErrSchemaInUse), and tables that objects lockstep did not make depend on
// (CasualtiesError) unless the ledger is Forced. created says the schema
// is new.
func (l *Ledger) Reset(ctx context.Context, conn *pgx.Conn, schema string, setup Setup) (created bool, err error) {
	if err := setup.Validate(); err != nil {
		return false, err
	}
	doing := "re-creating the ledger in schema " + schema
	err = lockedTries(ctx, conn, schema, doing, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			created = false
			if err := boundWaits(ctx, tx); err != nil {
				return err
			}
			f, err := lookSchema(ctx, tx, schema)
			if err != nil {
				return err
			}
			if err := f.refuse(); err != nil {
				return err
			}
			// No other run may be live on the schema: its claim, shared,
			// conflicts with this lock (the caller's own claim does not).
			if err := unclaimed(ctx, tx, schema, "re-create"); err != nil {
				return err
			}
			if !f.exists {
				if err := createSchema(ctx, tx, f); err != nil {
					return err
				}
				created = true
			} else if err := l.dropTables(ctx, tx, f, doing); err != nil {
				return err
			}
			steps := []string{
				"SET LOCAL search_path = " + pgx.Identifier{schema}.Sanitize(),
				l.ddl,
			}
			for _, sql := range steps {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("creating the ledger in schema %s: %w", schema, err)
				}
			}
			_, err = tx.Exec(ctx, `INSERT INTO accounts (id, owner, balance, opening_balance)
			SELECT g, coalesce(($3::text[])[g], 'account ' || g), $2, $2 FROM generate_series(1, $1::int) AS g`,
				setup.Accounts, setup.Balance, owners[:])
			if err != nil {
				return fmt.Errorf("opening %d accounts: %w", setup.Accounts, err)
			}
			return nil
		})
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// ledgerDDLTables are the tables schema.sql creates, which a reset replaces.
var ledgerDDLTables = []string{"accounts", "transfers", "entries"}

// dropTables drops the ledger's tables in f, an existing schema of
// lockstep's, and nothing else: what depends on them and is not
// lockstep's is refused, or dropped after saying so when forced. A schema
// of an older lockstep gets the mark naming the role.
func (l *Ledger) dropTables(ctx context.Context, tx pgx.Tx, f schemaFacts, doing string) error {
	if f.oldMarked() {
		if err := mark(ctx, tx, f); err != nil {
			return err
		}
	}
	rows, err := tx.Query(ctx, `SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p') AND c.relname = ANY($2) ORDER BY c.oid`, f.oid, ledgerDDLTables)
	if err != nil {
		return fmt.Errorf("looking up the ledger's tables: %w", err)
	}
	var start []objRef
	var names []string
	for rows.Next() {
		var oid uint32
		var name string
		if err := rows.Scan(&oid, &name); err != nil {
			rows.Close()
			return err
		}
		start = append(start, objRef{classid: pgClassClass, objid: oid})
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("looking up the ledger's tables: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	gone, err := casualties(ctx, tx, start, f.oid, false)
	if err != nil {
		return err
	}
	if len(gone) == 0 || l.force {
		// Nothing may come to depend on them while we drop them; locked
		// only now that the drop goes ahead (a queued lock holds up the
		// sessions behind it).
		if _, err := tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return err
		}
		if gone, err = casualties(ctx, tx, start, f.oid, false); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		if !l.force {
			return &CasualtiesError{Doing: doing, Objects: gone,
				Remedy: "drop or change them yourself, or run lockstep reset --force to drop them with the ledger's tables"}
		}
		say(l.say, "dropping, with the ledger's tables in schema %s, what lockstep did not make (--force): %s", f.name, strings.Join(gone, ", "))
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+strings.Join(names, ", ")+" CASCADE"); err != nil {
		return fmt.Errorf("dropping the ledger's tables in schema %s: %w", f.name, err)
	}
	return nil
}

// ResetDatabase resets the ledger in d's schema on a connection of its own.
func (l *Ledger) ResetDatabase(ctx context.Context, d *db.Database, setup Setup) error {
	conn, err := d.Connect(ctx, db.AppName("reset"))
	if err != nil {
		return err
	}
	defer db.CloseConn(ctx, conn)
	_, err = l.Reset(ctx, conn, d.Schema(), setup)
	return err
}

// EnsureSchema creates schema, marked as lockstep's for the current role,
// if it does not exist, for runs that put other tables there (scenarios).
// An existing schema must be lockstep's for this role: a scenario's set-up
// and teardown create and drop tables, and lockstep fills no schema it did
// not make. created says the schema is new.
func EnsureSchema(ctx context.Context, conn *pgx.Conn, schema string) (created bool, err error) {
	err = lockedTries(ctx, conn, schema, "creating schema "+schema, func() error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			created = false
			f, err := lookSchema(ctx, tx, schema)
			if err != nil {
				return err
			}
			if err := f.refuse(); err != nil {
				return err
			}
			switch {
			case !f.exists:
				created = true
				return createSchema(ctx, tx, f)
			case f.oldMarked():
				return mark(ctx, tx, f)
			}
			return nil
		})
	})
	return created, err
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
