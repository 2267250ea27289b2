package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
)

// Leftover is something lockstep made on a server and left there: a
// prepared transaction of a run that has ended, a marked schema, the second
// database of coupled runs. Keep, when set, says why it must stay; Takes
// names what is not lockstep's and would go with it (only with --force).
type Leftover struct {
	Kind  string // "prepared transaction", "schema", "database"
	Name  string
	Keep  string
	Takes []string
}

func (l Leftover) String() string {
	s := l.Kind + " " + l.Name
	if l.Keep != "" {
		s += " — kept: " + l.Keep
	} else if len(l.Takes) > 0 {
		s += " — with what lockstep did not make (--force): " + listed(l.Takes)
	}
	return s
}

// Leftovers lists what lockstep left in conn's database for the current
// role, by the one rule of own.go: the prepared transactions of lockstep
// runs that have ended (their global ids are lockstep's, and the role
// prepared them) that hold locks in schema (all of them with all), first,
// since a drop would wait for their locks; the
// schema named schema (every such schema of the role with all) when it is
// lockstep's for this role; and, with all, the marked second database when
// this role created it. A schema a live run claims is kept, naming the
// run; so is one that holds, or is depended on by, what lockstep did not
// make — unless force, when those are listed as going with it.
func Leftovers(ctx context.Context, conn *pgx.Conn, schema string, all, force bool) ([]Leftover, error) {
	var out []Leftover
	var me string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		return nil, fmt.Errorf("looking up the current role: %w", err)
	}
	// A run's prepared transactions are named lockstep/<run>/<session>; a
	// run is over when none of its connections is left.
	// Without all, those that hold locks in the schema: what stands in its way.
	rows, err := conn.Query(ctx, `SELECT p.gid FROM pg_prepared_xacts p
		WHERE p.gid LIKE 'lockstep/%/%' AND p.database = current_database() AND p.owner = current_user
		  AND NOT EXISTS (SELECT FROM pg_stat_activity a
		                  WHERE a.application_name LIKE split_part(p.gid, '/', 1) || '/' || split_part(p.gid, '/', 2) || '/%')
		  AND ($1 OR EXISTS (
		        SELECT FROM pg_locks t
		        JOIN pg_locks l ON l.virtualtransaction = t.virtualtransaction AND l.pid IS NULL AND l.locktype = 'relation'
		        JOIN pg_class c ON c.oid = l.relation
		        WHERE t.locktype = 'transactionid' AND t.transactionid = p.transaction AND t.pid IS NULL
		          AND c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $2)))
		ORDER BY p.prepared`, all, schema)
	if err != nil {
		return nil, fmt.Errorf("listing lockstep's prepared transactions: %w", err)
	}
	gids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing lockstep's prepared transactions: %w", err)
	}
	for _, g := range gids {
		out = append(out, Leftover{Kind: "prepared transaction", Name: g})
	}
	rows, err = conn.Query(ctx, `SELECT n.nspname FROM pg_namespace n WHERE `+mineSQL+`
		  AND ($3 OR n.nspname = $4)
		ORDER BY n.nspname`, Mark(me), oldMark, all, schema)
	if err != nil {
		return nil, fmt.Errorf("listing lockstep's schemas: %w", err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing lockstep's schemas: %w", err)
	}
	for _, s := range schemas {
		l := Leftover{Kind: "schema", Name: s}
		if who := claimants(ctx, conn, s); who != "" {
			l.Keep = "a live run uses it (" + who + ")"
		} else if l.Takes, err = Casualties(ctx, conn, s); err != nil {
			l.Keep = "cannot look inside it: " + err.Error()
		} else if len(l.Takes) > 0 && !force {
			l.Keep = "it holds, or is depended on by, what lockstep did not make: " + listed(l.Takes) + " (--force drops them with it)"
		}
		out = append(out, l)
	}
	if !all {
		return out, nil
	}
	var name string
	var others int
	err = conn.QueryRow(ctx, `SELECT d.datname, (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid)
		FROM pg_database d
		WHERE d.datname = $1 AND shobj_description(d.oid, 'pg_database') = $2
		  AND d.datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)`,
		db.SecondName, db.DatabaseMark).Scan(&name, &others)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("looking for database %s: %w", db.SecondName, err)
	default:
		l := Leftover{Kind: "database", Name: name}
		if others > 0 {
			l.Keep = fmt.Sprintf("%d connections to it are open", others)
		}
		out = append(out, l)
	}
	return out, nil
}

// Casualties names what dropping schema would take with it that lockstep
// did not make: objects inside it other than the ledger's tables, and
// objects elsewhere that depend on what is inside it. It only looks.
func Casualties(ctx context.Context, conn *pgx.Conn, schema string) ([]string, error) {
	var gone []string
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		f, err := lookSchema(ctx, tx, schema)
		if err != nil || !f.exists {
			return err
		}
		gone, err = casualties(ctx, tx, []objRef{{classid: pgNamespaceClass, objid: f.oid}}, f.oid, false)
		return err
	})
	return gone, err
}

// SecondHoldsOnlyLockstep checks, on a connection to the second database,
// that nothing but the current role's lockstep schemas, holding nothing
// lockstep did not make, lives there (and an empty public schema), so that
// dropping it loses nobody's work. It returns why not, or "".
func SecondHoldsOnlyLockstep(ctx context.Context, conn *pgx.Conn) (string, error) {
	var me string
	if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&me); err != nil {
		return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
	}
	rows, err := conn.Query(ctx, `SELECT n.nspname, `+mineSQL+` FROM pg_namespace n
		WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
		  AND (n.nspname <> 'public'
		       OR EXISTS (SELECT FROM pg_depend d WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = n.oid))
		ORDER BY 1`, Mark(me), oldMark)
	if err != nil {
		return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
	}
	type schema struct {
		name string
		mine bool
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (schema, error) {
		var s schema
		err := r.Scan(&s.name, &s.mine)
		return s, err
	})
	if err != nil {
		return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
	}
	var foreign, holding []string
	for _, s := range list {
		if !s.mine {
			foreign = append(foreign, s.name)
			continue
		}
		gone, err := Casualties(ctx, conn, s.name)
		if err != nil {
			return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
		}
		holding = append(holding, gone...)
	}
	switch {
	case len(foreign) > 0:
		return "it also holds schema " + strings.Join(foreign, ", ") + ", which lockstep did not create for " + me, nil
	case len(holding) > 0:
		return "it holds what lockstep did not make: " + listed(holding), nil
	}
	return "", nil
}

// RemoveOptions say how far Remove may go.
type RemoveOptions = DropOptions

// Remove removes one leftover, every wait bounded: a prepared transaction
// is rolled back, a schema dropped by DropSchema's rule, a database
// dropped from conn, which must be connected elsewhere.
func Remove(ctx context.Context, conn *pgx.Conn, l Leftover, opts RemoveOptions) error {
	ctx, cancel := context.WithTimeout(ctx, removeWait)
	defer cancel()
	var sql string
	switch l.Kind {
	case "schema":
		if err := DropSchema(ctx, conn, l.Name, opts); err != nil {
			return fmt.Errorf("removing %s: %w", l, err)
		}
		return nil
	case "prepared transaction":
		sql = "ROLLBACK PREPARED " + quoteLiteral(l.Name)
	case "database":
		sql = "DROP DATABASE " + pgx.Identifier{l.Name}.Sanitize()
	default:
		return fmt.Errorf("unknown leftover %s", l)
	}
	// Neither runs in a transaction block: the session's own bounds.
	if _, err := conn.Exec(ctx, "SET lock_timeout = '"+lockWait+"'; SET statement_timeout = '"+statementWait+"'"); err != nil {
		return fmt.Errorf("removing %s: %w", l, err)
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("removing %s: %w", l, err)
	}
	return nil
}

// removeWait bounds one removal, whatever the server does.
const removeWait = 90 * time.Second

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
