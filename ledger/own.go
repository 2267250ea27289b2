package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"lockstep/db"
)

// What is lockstep's on a server, and the one way lockstep drops anything:
// lockstep drops or changes only what it made, as recorded where it made
// it. A schema is lockstep's for the current role when its comment is
// lockstep's mark naming that role and the role owns it (nspowner is the
// current role's oid — never "a role I am a member of": a superuser or a
// teacher who is a member of the students' roles owns none of their
// schemas). Inside such a schema, lockstep's are the ledger's tables (and
// what belongs to them: their indexes, sequences, constraints); anything
// else there is the user's. Nothing outside the schema is ever dropped
// with it unless the caller forces it, after saying what will go.

// oldMark is the comment lockstep put on its schemas before the mark named
// the role. Such a schema counts as lockstep's only for the role that owns
// it.
const oldMark = "lockstep ledger: created by lockstep, dropped by lockstep reset"

const (
	markPrefix = "lockstep: created by lockstep for role "
	markSuffix = "; lockstep reset, clean and the run that made it may drop it"
)

// Mark is the comment lockstep puts on a schema it creates for role.
func Mark(role string) string {
	return markPrefix + pgx.Identifier{role}.Sanitize() + markSuffix
}

// markRole is the role a schema's comment says lockstep made it for, and
// whether the comment is lockstep's mark at all. The old mark names no
// role: it reads as ("", true).
func markRole(comment string) (string, bool) {
	if comment == oldMark {
		return "", true
	}
	rest, ok := strings.CutPrefix(comment, markPrefix)
	if !ok {
		return "", false
	}
	quoted, ok := strings.CutSuffix(rest, markSuffix)
	if !ok || len(quoted) < 2 || quoted[0] != '"' || quoted[len(quoted)-1] != '"' {
		return "", false
	}
	return strings.ReplaceAll(quoted[1:len(quoted)-1], `""`, `"`), true
}

// ledgerTables are the ledger's tables, schema.sql's, and the job queue's
// (load's bench): inside a schema lockstep made, these are lockstep's.
var ledgerTables = []string{"accounts", "transfers", "entries", "ls_jobs"}

// ErrUnmarkedSchema is returned when lockstep would drop or fill a schema
// it did not create (for the current role).
var ErrUnmarkedSchema = errors.New("schema exists and was not created by lockstep")

// ErrSchemaNotYours is returned when the schema belongs to another role.
var ErrSchemaNotYours = errors.New("the schema belongs to another role")

// ErrSchemaInUse is returned when another lockstep run is live on the schema.
var ErrSchemaInUse = errors.New("another lockstep run is using the schema")

// ErrNotLocksteps is returned when a drop would take with it objects that
// are not lockstep's: a view or a foreign key elsewhere that depends on the
// ledger, or a table the user added to lockstep's schema. *CasualtiesError
// names them.
var ErrNotLocksteps = errors.New("objects lockstep did not make depend on it")

// ErrSchemaLocked is returned when a drop could not get its locks in time:
// another session (or a prepared transaction) holds a lock on the schema.
var ErrSchemaLocked = errors.New("the schema is locked")

// refusal is a refusal of one of the kinds above (Unwrap), in a sentence of
// its own: what is wrong and what to do.
type refusal struct {
	kind error
	msg  string
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.kind }

func refused(kind error, format string, args ...any) error {
	return &refusal{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// CheckSchema says, before anything runs, whether lockstep may use schema
// (nil), or why not: it exists and is not lockstep's for the current role
// (ErrUnmarkedSchema, ErrSchemaNotYours), or, when lockstep would create it,
// it is another role's default (ErrSchemaNotYours). It changes nothing.
func CheckSchema(ctx context.Context, q Querier, schema string) error {
	f, err := lookSchema(ctx, q, schema)
	if err != nil {
		return err
	}
	if err := f.refuse(); err != nil {
		return err
	}
	return squatted(ctx, q, f)
}

// CasualtiesError refuses a drop that would take objects lockstep did not
// make with it.
type CasualtiesError struct {
	Doing   string   // "dropping schema s", "re-creating the ledger in schema s"
	Objects []string // as PostgreSQL describes them: "view public.rich"
	Remedy  string
}

func (e *CasualtiesError) Error() string {
	return fmt.Sprintf("%s would also drop what lockstep did not make: %s; %s", e.Doing, listed(e.Objects), e.Remedy)
}

func (e *CasualtiesError) Unwrap() error { return ErrNotLocksteps }

// listed joins up to eight names, then says how many more.
func listed(names []string) string {
	const most = 8
	if len(names) <= most {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
}

// schemaFacts is what the catalog says of a schema name.
type schemaFacts struct {
	name    string
	exists  bool
	oid     uint32
	owner   string
	mine    bool // owned by the current role
	comment string
	me      string // the current role
}

// locksteps says whether the schema is lockstep's for the current role.
func (f schemaFacts) locksteps() bool {
	role, marked := markRole(f.comment)
	return f.exists && f.mine && marked && (role == "" || role == f.me)
}

// oldMarked says whether the schema carries the mark of an older lockstep.
func (f schemaFacts) oldMarked() bool { return f.comment == oldMark }

func lookSchema(ctx context.Context, q Querier, schema string) (schemaFacts, error) {
	f := schemaFacts{name: schema}
	var (
		oid            *uint32
		owner, comment *string
		mine           *bool
	)
	err := q.QueryRow(ctx, `SELECT current_user, n.oid, pg_get_userbyid(n.nspowner),
			n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user), obj_description(n.oid, 'pg_namespace')
		FROM (SELECT 1) AS one LEFT JOIN pg_namespace n ON n.nspname = $1`, schema).
		Scan(&f.me, &oid, &owner, &mine, &comment)
	if err != nil {
		return f, fmt.Errorf("looking up schema %s: %w", schema, err)
	}
	if oid == nil {
		return f, nil
	}
	f.exists, f.oid, f.owner, f.mine = true, *oid, *owner, *mine
	if comment != nil {
		f.comment = *comment
	}
	return f, nil
}

// refuse says why lockstep may not drop or fill an existing schema, or nil
// when it is lockstep's for the current role.
func (f schemaFacts) refuse() error {
	switch {
	case !f.exists || f.locksteps():
		return nil
	case !f.mine:
		own := db.DefaultSchemaFor(f.me)
		if own == f.name {
			return refused(ErrSchemaNotYours, "schema %s, your default, was created by role %s; ask them to drop it (lockstep clean, logged in as %s), or pass --schema with a name of your own",
				f.name, f.owner, f.owner)
		}
		return refused(ErrSchemaNotYours, "schema %s belongs to role %s; use one of your own, %s: leave out --schema, or pass --schema %s",
			f.name, f.owner, own, own)
	}
	if role, marked := markRole(f.comment); marked && role != f.me {
		return refused(ErrUnmarkedSchema, "schema %s was made by lockstep for role %s, not for %s; lockstep leaves it alone: pass another --schema",
			f.name, role, f.me)
	}
	return refused(ErrUnmarkedSchema, "schema %s exists and lockstep did not create it: lockstep creates, fills and drops only schemas it made; pass a new --schema, or leave --schema out",
		f.name)
}

// squatted refuses to create schema when it is another role's default
// (lockstep_<role>): that role's runs would find it taken.
func squatted(ctx context.Context, q Querier, f schemaFacts) error {
	if f.exists || !strings.HasPrefix(f.name, "lockstep_") || f.name == db.DefaultSchemaFor(f.me) {
		return nil
	}
	rows, err := q.Query(ctx, "SELECT rolname FROM pg_roles WHERE rolname <> current_user AND rolname NOT LIKE 'pg\\_%'")
	if err != nil {
		return fmt.Errorf("looking up roles: %w", err)
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("looking up roles: %w", err)
	}
	for _, r := range roles {
		if db.DefaultSchemaFor(r) == f.name {
			return refused(ErrSchemaNotYours, "schema %s is role %s's default: lockstep does not create it for %s; use your own, %s (leave out --schema), or another name",
				f.name, r, f.me, db.DefaultSchemaFor(f.me))
		}
	}
	return nil
}

// createSchema creates schema and marks it as lockstep's for the current
// role; tx is the caller's transaction.
func createSchema(ctx context.Context, tx pgx.Tx, f schemaFacts) error {
	if err := squatted(ctx, tx, f); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{f.name}.Sanitize()); err != nil {
		return fmt.Errorf("creating schema %s: %w", f.name, err)
	}
	return mark(ctx, tx, f)
}

// mark puts the mark naming the current role on schema. COMMENT takes no
// parameters: the server quotes the literal (format's %L).
func mark(ctx context.Context, tx pgx.Tx, f schemaFacts) error {
	var sql string
	if err := tx.QueryRow(ctx, "SELECT format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)", f.name, Mark(f.me)).Scan(&sql); err != nil {
		return fmt.Errorf("marking schema %s: %w", f.name, err)
	}
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("marking schema %s: %w", f.name, err)
	}
	return nil
}

// mineSQL is the rule as SQL, for listings: schema n is lockstep's for the
// current role. $1 is Mark(current_user), $2 the old mark.
const mineSQL = `n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
	AND obj_description(n.oid, 'pg_namespace') IN ($1, $2)`

// boundWaits bounds the transaction's waits: a lock it cannot get within
// lockWait fails (55P03) rather than queue behind a session for ever, and
// no statement runs past statementWait. A tighter bound the connection
// already has (a run's control connection: 50 ms) stays.
func boundWaits(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true) WHERE current_setting('lock_timeout')::interval = '0'
		OR current_setting('lock_timeout')::interval > $1::interval`, lockWait)
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true) WHERE current_setting('statement_timeout')::interval = '0'
			OR current_setting('statement_timeout')::interval > $1::interval`, statementWait)
	}
	if err != nil {
		return fmt.Errorf("bounding the waits: %w", err)
	}
	return nil
}

// lockWait and statementWait bound what a reset or a drop may wait for.
// statementWait leaves room for a ledger of a million accounts (about 7 s).
const (
	lockWait      = "5s"
	statementWait = "60s"
)

// lockHolders names who holds a lock on schema's tables, other than this
// connection: sessions (pid, role, application, state) and prepared
// transactions; prepared says one of them is a lockstep run's. q must be
// usable (a failed transaction rolled back).
func lockHolders(ctx context.Context, q Querier, schema string) (who []string, prepared bool) {
	rows, err := q.Query(ctx, `SELECT DISTINCT coalesce(p.gid, ''), coalesce(a.pid, 0), coalesce(a.usename, ''),
			coalesce(a.application_name, ''), coalesce(a.state, '')
		FROM pg_locks l
		JOIN pg_class c ON c.oid = l.relation AND l.locktype = 'relation'
		LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		LEFT JOIN LATERAL (SELECT px.gid FROM pg_locks x JOIN pg_prepared_xacts px ON x.transactionid = px.transaction
		                    WHERE l.pid IS NULL AND x.pid IS NULL AND x.locktype = 'transactionid'
		                      AND x.virtualtransaction = l.virtualtransaction LIMIT 1) p ON true
		WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1)
		  AND l.granted AND (l.pid IS NULL OR l.pid <> pg_backend_pid())
		ORDER BY 1, 2 LIMIT 5`, schema)
	if err != nil {
		return nil, false
	}
	defer rows.Close()
	for rows.Next() {
		var gid, user, app, state string
		var pid int32
		if rows.Scan(&gid, &pid, &user, &app, &state) != nil {
			continue
		}
		switch {
		case gid != "":
			who = append(who, "prepared transaction "+gid)
			prepared = prepared || strings.HasPrefix(gid, "lockstep/")
		case pid != 0:
			s := fmt.Sprintf("pid %d (role %s", pid, user)
			if app != "" {
				s += ", " + app
			}
			if state != "" {
				s += ", " + state
			}
			who = append(who, s+")")
		}
	}
	return who, prepared
}

// lockedTries runs try — one transaction whose lock waits are bounded (the
// connection's lock_timeout, or boundWaits) — again while the lock it could
// not get was a passing one: held by nobody on schema's tables. A catalog
// that autovacuum truncates is locked ACCESS EXCLUSIVE for a moment, and a
// control connection that gives up after 50 ms (so as never to queue
// behind a session) would fail on a busy server for no reason a user can
// act on. A lock held on the schema's tables fails at once, naming its
// holder; a passing lock that is still in the way after lockWaitTotal
// fails as held by another session.
func lockedTries(ctx context.Context, conn *pgx.Conn, schema, doing string, try func() error) error {
	give := time.Now().Add(lockWaitTotal)
	pause := 10 * time.Millisecond
	for {
		err := try()
		if db.SQLState(err) != pgerrcode.LockNotAvailable {
			return err
		}
		who, prepared := lockHolders(ctx, conn, schema)
		if len(who) > 0 || !time.Now().Before(give) {
			return lockedError(doing, schema, who, prepared)
		}
		select {
		case <-ctx.Done():
			return lockedError(doing, schema, who, prepared)
		case <-time.After(pause):
		}
		pause = min(2*pause, 200*time.Millisecond)
	}
}

// lockWaitTotal bounds lockedTries' tries, as lockWait bounds one wait.
const lockWaitTotal = 5 * time.Second

// lockedError explains a lock that could not be had in time: who holds a
// lock on the schema's tables (lockHolders), or "another session".
func lockedError(doing, schema string, who []string, prepared bool) error {
	holder := "another session"
	if len(who) > 0 {
		holder = strings.Join(who, "; ")
	}
	remedy := "end that session, or try again when it is done"
	if prepared {
		remedy = "lockstep clean rolls back the prepared transactions of lockstep runs that have ended"
	}
	return refused(ErrSchemaLocked, "%s gave up waiting for a lock: %s holds one on schema %s; %s",
		doing, holder, schema, remedy)
}

// objRef is a catalog object: its catalog's oid and its own.
type objRef struct{ classid, objid uint32 }

// casualtiesSQL lists what a DROP … CASCADE of the start objects ($1
// catalogs, $2 oids) would take with it that is not lockstep's, as
// PostgreSQL describes each object, by walking pg_depend as the drop
// would. An object's "top" is what it belongs to (an index to its table, a
// default to its column's table, a view's rule to the view): an object is
// lockstep's when a top of it is a start object, or lives in schema $3 and
// is one of lockstep's tables ($4) — or any object of $3 when $5 (a schema
// the caller's run created, all of whose contents are the run's). Parts
// dropped with their whole (a view's row type, a table's triggers) are not
// listed; nor are parts of a whole that is listed. Objects in $3 come
// first.
const casualtiesSQL = `WITH RECURSIVE
start(classid, objid) AS (SELECT * FROM unnest($1::oid[], $2::oid[])),
doomed(classid, objid, objsubid) AS (
	SELECT classid, objid, 0 FROM start
	UNION
	SELECT x.classid, x.objid, x.objsubid FROM doomed m, LATERAL (
		SELECT d.classid, d.objid, d.objsubid FROM pg_depend d
		 WHERE d.refclassid = m.classid AND d.refobjid = m.objid AND (m.objsubid = 0 OR d.refobjsubid = m.objsubid)
		UNION ALL
		SELECT d.refclassid, d.refobjid, 0 FROM pg_depend d
		 WHERE d.classid = m.classid AND d.objid = m.objid AND m.objsubid = 0 AND d.deptype = 'i'
	) x
),
up(classid, objid, objsubid, c, o, depth) AS (
	SELECT classid, objid, objsubid, classid, objid, 0 FROM doomed
	UNION
	SELECT u.classid, u.objid, u.objsubid, d.refclassid, d.refobjid, u.depth + 1
	  FROM up u JOIN pg_depend d ON d.classid = u.c AND d.objid = u.o AND d.deptype IN ('a', 'i')
	 WHERE u.depth < 10
),
tops AS (
	SELECT u.classid, u.objid, u.objsubid, u.c, u.o,
	       EXISTS (SELECT FROM pg_depend d WHERE d.classid = u.c AND d.objid = u.o
	                 AND d.refclassid = 'pg_namespace'::regclass AND d.refobjid = $3) AS in_schema
	  FROM up u
	 WHERE NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = u.c AND d.objid = u.o AND d.deptype IN ('a', 'i'))
),
judged AS (
	SELECT t.classid, t.objid, t.objsubid,
	       bool_or((t.c, t.o) IN (SELECT classid, objid FROM start)
	               OR (t.in_schema AND ($5 OR (t.c = 'pg_class'::regclass AND t.o = ANY($4))))) AS ours,
	       bool_or(t.in_schema) AS in_schema,
	       bool_or((t.c, t.o) = (t.classid, t.objid) AND t.objsubid = 0
	               OR (t.c, t.o, 0) NOT IN (SELECT classid, objid, objsubid FROM doomed)) AS shown
	  FROM tops t GROUP BY 1, 2, 3
)
SELECT pg_describe_object(j.classid, j.objid, j.objsubid)
  FROM judged j
 WHERE NOT j.ours AND j.shown
   AND NOT EXISTS (SELECT FROM pg_depend d JOIN doomed o ON o.classid = d.refclassid AND o.objid = d.refobjid
                    WHERE d.classid = j.classid AND d.objid = j.objid AND d.deptype = 'i')
   AND (j.classid, j.objid) NOT IN (SELECT classid, objid FROM start)
 ORDER BY j.in_schema DESC, 1`

// casualties lists what dropping start (with CASCADE) would take with it
// that is not lockstep's; see casualtiesSQL. Names are schema-qualified.
func casualties(ctx context.Context, tx pgx.Tx, start []objRef, schema uint32, all bool) ([]string, error) {
	if len(start) == 0 {
		return nil, nil
	}
	classes := make([]uint32, len(start))
	oids := make([]uint32, len(start))
	for i, s := range start {
		classes[i], oids[i] = s.classid, s.objid
	}
	var ours []uint32
	rows, err := tx.Query(ctx, "SELECT oid FROM pg_class WHERE relnamespace = $1 AND relkind IN ('r', 'p') AND relname = ANY($2)",
		schema, ledgerTables)
	if err == nil {
		ours, err = pgx.CollectRows(rows, pgx.RowTo[uint32])
	}
	if err != nil {
		return nil, fmt.Errorf("looking up the ledger's tables: %w", err)
	}
	// pg_describe_object qualifies the names it cannot see: see none.
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = pg_catalog"); err != nil {
		return nil, err
	}
	rows, err = tx.Query(ctx, casualtiesSQL, classes, oids, schema, ours, all)
	if err != nil {
		return nil, fmt.Errorf("looking up what depends on it: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// DropOptions say how far a drop may go.
type DropOptions struct {
	// Made says the caller's run created the schema: everything in it is
	// the run's. Otherwise only the ledger's tables in it are lockstep's.
	Made bool
	// Force drops, too, what is not lockstep's but would go with it (a view
	// over the ledger, a table the user added), after Say names each.
	Force bool
	Say   func(string)
}

// DropSchema drops schema, the one way lockstep drops one: only when it is
// lockstep's for the current role, no live run claims it, and nothing that
// is not lockstep's would go with it — inside it or elsewhere (unless
// opts.Force, after saying so). Every wait is bounded: a lock held
// elsewhere fails with ErrSchemaLocked, naming the holder.
func DropSchema(ctx context.Context, conn *pgx.Conn, schema string, opts DropOptions) error {
	doing := "dropping schema " + schema
	return lockedTries(ctx, conn, schema, doing, func() error { return dropSchema(ctx, conn, schema, doing, opts) })
}

// dropSchema is one try of DropSchema.
func dropSchema(ctx context.Context, conn *pgx.Conn, schema, doing string, opts DropOptions) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := boundWaits(ctx, tx); err != nil {
			return err
		}
		f, err := lookSchema(ctx, tx, schema)
		if err != nil || !f.exists {
			return err
		}
		if err := f.refuse(); err != nil {
			return err
		}
		if err := unclaimed(ctx, tx, schema, "drop"); err != nil {
			return err
		}
		start := []objRef{{classid: pgNamespaceClass, objid: f.oid}}
		gone, err := casualties(ctx, tx, start, f.oid, opts.Made)
		if err != nil {
			return err
		}
		if len(gone) == 0 || opts.Force {
			// Nothing may come to depend on the schema's tables while we
			// drop: a view or a foreign key on a table needs a lock on it.
			// Only now, when the drop will go ahead: a lock queued here
			// would hold up the sessions behind it.
			if err := lockSchemaTables(ctx, tx, f.oid); err != nil {
				return err
			}
			if gone, err = casualties(ctx, tx, start, f.oid, opts.Made); err != nil {
				return err
			}
		}
		if len(gone) > 0 {
			if !opts.Force {
				return &CasualtiesError{Doing: doing, Objects: gone,
					Remedy: "move or drop them yourself, or pass --force to drop them with it"}
			}
			say(opts.Say, "dropping, with schema %s, what lockstep did not make (--force): %s", schema, strings.Join(gone, ", "))
		}
		_, err = tx.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		return err
	})
}

// pgNamespaceClass is pg_namespace's oid (2615), the catalog a schema is in.
const pgNamespaceClass = 2615

// pgClassClass is pg_class's oid (1259), the catalog a table is in.
const pgClassClass = 1259

func say(to func(string), format string, args ...any) {
	if to != nil {
		to(fmt.Sprintf(format, args...))
	}
}

// lockSchemaTables takes ACCESS EXCLUSIVE on every table and view of the
// schema, within the transaction's lock_timeout.
func lockSchemaTables(ctx context.Context, tx pgx.Tx, schema uint32) error {
	rows, err := tx.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relnamespace = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY c.oid`, schema)
	if err != nil {
		return fmt.Errorf("listing the schema's tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		return err
	}
	_, err = tx.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS EXCLUSIVE MODE")
	return err
}

// unclaimed fails with ErrSchemaInUse while another connection claims
// schema (Claim): a live run. The caller's own claim does not count, nor
// its own run's other connections' (a run claims on its control and its
// observer connection). Otherwise the transaction holds the claim's key
// exclusively, so that no run claims the schema while it is re-created or
// dropped.
func unclaimed(ctx context.Context, tx pgx.Tx, schema, verb string) error {
	var free bool
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock("+claimSQL+")", schema).Scan(&free); err != nil {
		return fmt.Errorf("checking that no other lockstep uses schema %s: %w", schema, err)
	}
	if free {
		return nil
	}
	who := claimants(ctx, tx, schema)
	if who == "" {
		var mine bool
		// Only the caller's own run holds it (its observer): its own to re-create.
		if err := tx.QueryRow(ctx, `SELECT current_setting('application_name') LIKE 'lockstep/%/%'`).Scan(&mine); err == nil && mine {
			return nil
		}
		who = "another connection"
	}
	return refused(ErrSchemaInUse, "refusing to %s schema %s under a live run (%s); use another --schema, or wait for that run to end",
		verb, schema, who)
}
