package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
)

// Leftover is something lockstep made on a server and left there: a marked
// schema, a prepared transaction of a run that has ended, the second
// database of coupled runs. Keep, when set, says why it must stay.
type Leftover struct {
	Kind string // "schema", "prepared transaction", "database"
	Name string
	Keep string
}

func (l Leftover) String() string {
	s := l.Kind + " " + l.Name
	if l.Keep != "" {
		s += " — kept: " + l.Keep
	}
	return s
}

// Leftovers lists what lockstep left in conn's database for its role: the
// marked schema named schema (every marked schema of the role with all),
// the prepared transactions of lockstep runs that have ended, and, with
// all, the marked second database when the role owns it. Nothing unmarked
// is ever listed: a schema or database lockstep did not create is not its
// to drop.
func Leftovers(ctx context.Context, conn *pgx.Conn, schema string, all bool) ([]Leftover, error) {
	var out []Leftover
	rows, err := conn.Query(ctx, `SELECT nspname FROM pg_namespace
		WHERE obj_description(oid, 'pg_namespace') = $1 AND pg_has_role(nspowner, 'USAGE')
		  AND ($2 OR nspname = $3)
		ORDER BY nspname`, schemaMark, all, schema)
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
		}
		out = append(out, l)
	}
	// A run's prepared transactions are named lockstep/<run>/<session>; a
	// run is over when none of its connections is left.
	rows, err = conn.Query(ctx, `SELECT p.gid FROM pg_prepared_xacts p
		WHERE p.gid LIKE 'lockstep/%' AND p.database = current_database() AND pg_has_role(p.owner, 'USAGE')
		  AND NOT EXISTS (SELECT FROM pg_stat_activity a
		                  WHERE a.application_name LIKE split_part(p.gid, '/', 1) || '/' || split_part(p.gid, '/', 2) || '/%')
		ORDER BY p.prepared`)
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
	if !all {
		return out, nil
	}
	var name string
	var others int
	err = conn.QueryRow(ctx, `SELECT d.datname, (SELECT count(*) FROM pg_stat_activity a WHERE a.datid = d.oid)
		FROM pg_database d
		WHERE d.datname = $1 AND shobj_description(d.oid, 'pg_database') = $2 AND pg_has_role(d.datdba, 'USAGE')`,
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

// SecondHoldsOnlyLockstep checks, on a connection to the second database,
// that nothing but lockstep's marked schemas lives there (and an empty
// public schema), so that dropping it loses nobody's work.
func SecondHoldsOnlyLockstep(ctx context.Context, conn *pgx.Conn) (string, error) {
	var foreign []string
	rows, err := conn.Query(ctx, `SELECT n.nspname FROM pg_namespace n
		WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
		  AND coalesce(obj_description(n.oid, 'pg_namespace'), '') <> $1
		  AND (n.nspname <> 'public' OR EXISTS (SELECT FROM pg_class c WHERE c.relnamespace = n.oid))
		ORDER BY 1`, schemaMark)
	if err != nil {
		return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
	}
	foreign, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("looking inside %s: %w", db.SecondName, err)
	}
	if len(foreign) > 0 {
		return "it also holds schema " + strings.Join(foreign, ", ") + ", which lockstep did not create", nil
	}
	return "", nil
}

// Remove drops one leftover. A database is dropped from conn, which must
// be connected elsewhere.
func Remove(ctx context.Context, conn *pgx.Conn, l Leftover) error {
	var sql string
	switch l.Kind {
	case "schema":
		// Under the same guard as Reset: no live run may lose its schema.
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var free bool
			if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock("+claimSQL+")", l.Name).Scan(&free); err != nil {
				return err
			}
			if !free {
				return fmt.Errorf("%w: schema %s (%s)", ErrSchemaInUse, l.Name, claimants(ctx, tx, l.Name))
			}
			_, err := tx.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{l.Name}.Sanitize()+" CASCADE")
			return err
		})
	case "prepared transaction":
		sql = "ROLLBACK PREPARED '" + strings.ReplaceAll(l.Name, "'", "''") + "'"
	case "database":
		sql = "DROP DATABASE " + pgx.Identifier{l.Name}.Sanitize()
	default:
		return fmt.Errorf("unknown leftover %s", l)
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("removing %s: %w", l, err)
	}
	return nil
}
