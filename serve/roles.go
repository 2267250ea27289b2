package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/ledger"
)

// Each student is a PostgreSQL role of their own, lockstep_s_<name>, with a
// random password kept only in serve's memory, and a schema of the same
// name that the role owns, marked as lockstep's for it (ledger.Mark): every
// session of the student — the script's statements and whatever they type —
// runs as that role, in that schema. The role has no SUPERUSER, CREATEDB,
// CREATEROLE, REPLICATION or BYPASSRLS, is a member of no role (so not of
// pg_signal_backend), and gets CONNECT on the database; CREATE it has in
// its own schema, as its owner. It gets no CREATE on the database: with
// it, one student could make a schema named after another before that one
// logs in. The two scenarios that choose their deadlock's victim SET
// deadlock_timeout, a superuser's setting; on PostgreSQL 15 and later a
// superuser serve grants that one parameter (GRANT SET ON PARAMETER),
// else those scenarios are not offered.
//
// serve remembers what it created and drops only that: each schema through
// ledger.DropSchema as its student (the one way lockstep drops a schema,
// which checks the mark and the owner), then each role.

// RolePrefix starts every student's role and schema name.
const RolePrefix = "lockstep_s_"

// connsPerStudent is what a student's run of the lecture holds: two
// sessions, the control connection and the observer.
var connsPerStudent = 4

// maxConnsPerStudent bounds a student's connections (CONNECTION LIMIT): a
// run of nine sessions holds eleven, and a run being replaced rolls back
// before the next one connects.
const maxConnsPerStudent = 24

// admin is serve's own connection, as the role that creates the students'.
type admin struct {
	d    *db.Database
	mu   sync.Mutex
	conn *pgx.Conn

	me          string
	super       bool
	setDeadlock bool // may GRANT SET ON PARAMETER deadlock_timeout
	database    string
	maxConns    int
	reserved    int

	made []*login // the students' roles and schemas serve created, in order
}

// login is how a student reaches the server.
type login struct {
	name, role, schema string
	password           string
	db                 *db.Database
}

// openAdmin connects and checks that the role may do what serve does.
func openAdmin(ctx context.Context, d *db.Database) (*admin, error) {
	conn, err := d.Connect(ctx, "lockstep/serve")
	if err != nil {
		return nil, err
	}
	a := &admin{d: d, conn: conn}
	var createRole, createDB bool
	var version int
	err = conn.QueryRow(ctx, `SELECT current_user, r.rolsuper, r.rolcreaterole,
			has_database_privilege(current_database(), 'CREATE'), current_database(),
			current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,
			current_setting('server_version_num')::int
		FROM pg_roles r WHERE r.rolname = current_user`).
		Scan(&a.me, &a.super, &createRole, &createDB, &a.database, &a.maxConns, &a.reserved, &version)
	if err != nil {
		a.close()
		return nil, fmt.Errorf("looking up what role %s may do: %w", d.User(), err)
	}
	switch {
	case !a.super && !createRole:
		a.close()
		return nil, fmt.Errorf("lockstep serve makes a PostgreSQL role for each student, and role %s may not create roles: "+
			"as a superuser, ALTER ROLE %s CREATEROLE; or pass --dsn with a role that has CREATEROLE", a.me, pgx.Identifier{a.me}.Sanitize())
	case !createDB:
		a.close()
		return nil, fmt.Errorf("lockstep serve makes each student's schema in database %s, and role %s may not create schemas there: "+
			"GRANT CREATE ON DATABASE %s TO %s (as its owner or a superuser)", a.database, a.me,
			pgx.Identifier{a.database}.Sanitize(), pgx.Identifier{a.me}.Sanitize())
	}
	a.setDeadlock = a.super && version >= 150000
	if a.super {
		// Row locks are read through pgrowlocks, which any role may call on
		// tables it can read: a student's own. Made once, for everyone.
		if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pgrowlocks SCHEMA public"); err != nil {
			_ = err // the students' locks panes then say how to add it
		}
	}
	return a, nil
}

func (a *admin) close() {
	if a.conn != nil {
		_ = a.conn.Close(context.Background())
	}
}

// room says how many more students the server's max_connections holds,
// each with a run of the lecture, besides the connections open now.
func (a *admin) room(ctx context.Context) (free, used int, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	err = a.conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'").Scan(&used)
	if err != nil {
		return 0, 0, fmt.Errorf("counting the server's connections: %w", err)
	}
	free = a.maxConns - a.reserved - used
	return free / connsPerStudent, used, nil
}

// roleName is the role, and schema, of student name (lower-case already).
func roleName(name string) string { return RolePrefix + name }

// ErrTaken is returned when a student's role or schema exists and serve did
// not make it.
var ErrTaken = errors.New("the name is taken on the server")

// ensure makes student name's role and schema, or finds those it made at
// their earlier login (making the schema again if they dropped it).
func (a *admin) ensure(ctx context.Context, name string) (*login, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.made {
		if l.name == name {
			return l, a.ensureSchema(ctx, l)
		}
	}
	role := roleName(name)
	var roleExists, schemaExists bool
	err := a.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1),
			EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, role).Scan(&roleExists, &schemaExists)
	if err != nil {
		return nil, fmt.Errorf("looking up role %s: %w", role, err)
	}
	switch {
	case roleExists:
		return nil, fmt.Errorf("%w: role %s exists and this serve did not make it (an earlier serve that was killed?); "+
			"log in with another name, or drop it as a superuser (DROP OWNED BY %s; DROP ROLE %s)", ErrTaken, role, role, role)
	case schemaExists:
		return nil, fmt.Errorf("%w: schema %s exists and this serve did not make it; log in with another name", ErrTaken, role)
	}
	pw := make([]byte, 24)
	if _, err := rand.Read(pw); err != nil {
		return nil, fmt.Errorf("making a password: %w", err)
	}
	l := &login{name: name, role: role, schema: role, password: hex.EncodeToString(pw)}
	if l.db, err = a.d.WithLogin(role, l.password, l.schema); err != nil {
		return nil, err
	}
	err = pgx.BeginFunc(ctx, a.conn, func(tx pgx.Tx) error {
		// A password, not a parameter: CREATE ROLE takes none, so the
		// server quotes it (format's %L).
		stmts := []stmt{
			{"CREATE ROLE", "format('CREATE ROLE %I LOGIN PASSWORD %L NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT CONNECTION LIMIT " +
				fmt.Sprint(maxConnsPerStudent) + "', $1::text, $2::text)", []any{role, l.password}},
			{"COMMENT ON ROLE", "format('COMMENT ON ROLE %I IS %L', $1::text, 'lockstep serve: the role of a student; the serve that made it drops it when it stops')", []any{role}},
			{"GRANT CONNECT", "format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), $1::text)", []any{role}},
		}
		if !a.super {
			// To make the schema the student's, and to drop it as them.
			stmts = append(stmts, stmt{"GRANT the role to serve's", "format('GRANT %I TO %I', $1::text, current_user)", []any{role}})
		}
		stmts = append(stmts, stmt{"CREATE SCHEMA", "format('CREATE SCHEMA %I AUTHORIZATION %I', $1::text, $1::text)", []any{role}},
			stmt{"COMMENT ON SCHEMA", "format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)", []any{role, ledger.Mark(role)}})
		if a.setDeadlock {
			stmts = append(stmts, stmt{"GRANT SET ON PARAMETER deadlock_timeout", "format('GRANT SET ON PARAMETER deadlock_timeout TO %I', $1::text)", []any{role}})
		}
		return run(ctx, tx, stmts)
	})
	if err != nil {
		return nil, fmt.Errorf("making role %s: %w", role, err)
	}
	a.made = append(a.made, l)
	return l, nil
}

// ensureSchema makes a student's schema again when it is gone: the
// student dropped it (DROP SCHEMA, typed), which their role may, and
// cannot make it again.
func (a *admin) ensureSchema(ctx context.Context, l *login) error {
	var exists bool
	if err := a.conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", l.schema).Scan(&exists); err != nil {
		return fmt.Errorf("looking up schema %s: %w", l.schema, err)
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, a.conn, func(tx pgx.Tx) error {
		return run(ctx, tx, []stmt{
			{"CREATE SCHEMA", "format('CREATE SCHEMA %I AUTHORIZATION %I', $1::text, $1::text)", []any{l.schema}},
			{"COMMENT ON SCHEMA", "format('COMMENT ON SCHEMA %I IS %L', $1::text, $2::text)", []any{l.schema, ledger.Mark(l.role)}},
		})
	})
}

// stmt is a statement that takes no parameters, built by the server from
// values (format's %I and %L quote them), and named for errors: it may
// hold a password.
type stmt struct {
	name, format string
	args         []any
}

func run(ctx context.Context, tx pgx.Tx, stmts []stmt) error {
	for _, s := range stmts {
		var sql string
		if err := tx.QueryRow(ctx, "SELECT "+s.format, s.args...).Scan(&sql); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// dropAll ends what is left of the students' backends, drops each schema
// serve made (as its student, through ledger.DropSchema, several at once)
// and then the roles; it says what it could not drop, one line each.
func (a *admin) dropAll(ctx context.Context) []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.made) == 0 {
		return nil
	}
	var errs []error
	roles := make([]string, len(a.made))
	for i, l := range a.made {
		roles[i] = l.role
	}
	// The runs have rolled back and closed, or are being ended now (which
	// rolls back what they held); a role cannot go while a backend is left.
	if err := a.endBackends(ctx, roles); err != nil {
		errs = append(errs, err)
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		gone []*login
		slot = make(chan struct{}, 8)
		mine sync.Mutex // serve's own connection, for a fallback
	)
	for _, l := range a.made {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot <- struct{}{}
			defer func() { <-slot }()
			err := a.dropSchemaAs(ctx, l, &mine)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("kept schema %s and role %s: %w", l.schema, l.role, err))
				return
			}
			gone = append(gone, l)
		}()
	}
	wg.Wait()
	if err := a.dropRoles(ctx, gone); err != nil {
		// One at a time, to say which role is kept and why.
		for _, l := range gone {
			if err := a.dropRoles(ctx, []*login{l}); err != nil {
				errs = append(errs, fmt.Errorf("kept role %s: %w", l.role, err))
			}
		}
	}
	var kept []*login
	for _, l := range a.made {
		var exists bool
		if err := a.conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", l.role).Scan(&exists); err != nil || exists {
			kept = append(kept, l)
		}
	}
	a.made = kept
	return errs
}

// endBackends ends the backends of roles and waits until they are gone.
func (a *admin) endBackends(ctx context.Context, roles []string) error {
	for {
		var left int
		err := a.conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE usename = ANY($1) AND pid <> pg_backend_pid()`, roles).Scan(&left)
		if err != nil {
			return fmt.Errorf("ending the students' backends: %w", err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d backends of the students did not end in time", left)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// dropSchemaAs drops a student's schema as the student, on a connection
// of theirs: lockstep's one rule for what it may drop (the mark names the
// role, the role owns it) is then checked for them.
func (a *admin) dropSchemaAs(ctx context.Context, l *login, mine *sync.Mutex) error {
	conn, err := l.db.Connect(ctx, "lockstep/serve/drop")
	if err != nil {
		// The student changed their password (a role may): as them, on
		// serve's own connection.
		mine.Lock()
		defer mine.Unlock()
		return a.dropSchema(ctx, l)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return ledger.DropSchema(ctx, conn, l.schema, ledger.DropOptions{Made: true})
}

// dropSchema drops a student's schema as the student, on serve's own
// connection (SET ROLE).
func (a *admin) dropSchema(ctx context.Context, l *login) error {
	if _, err := a.conn.Exec(ctx, "SET ROLE "+pgx.Identifier{l.role}.Sanitize()); err != nil {
		return err
	}
	err := ledger.DropSchema(ctx, a.conn, l.schema, ledger.DropOptions{Made: true})
	if _, rerr := a.conn.Exec(context.WithoutCancel(ctx), "RESET ROLE"); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// dropRoles drops roles in one transaction, with what was granted them.
func (a *admin) dropRoles(ctx context.Context, ls []*login) error {
	if len(ls) == 0 {
		return nil
	}
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = l.role
	}
	list := "(SELECT string_agg(quote_ident(r), ', ') FROM unnest($1::text[]) r)"
	return pgx.BeginFunc(ctx, a.conn, func(tx pgx.Tx) error {
		stmts := []stmt{{"REVOKE CONNECT", "format('REVOKE CONNECT ON DATABASE %I FROM %s', current_database(), " + list + ")", []any{names}}}
		if a.setDeadlock {
			stmts = append(stmts, stmt{"REVOKE SET ON PARAMETER", "format('REVOKE SET ON PARAMETER deadlock_timeout FROM %s', " + list + ")", []any{names}})
		}
		return run(ctx, tx, append(stmts, stmt{"DROP ROLE", "format('DROP ROLE %s', " + list + ")", []any{names}}))
	})
}
