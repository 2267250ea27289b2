// Package db gets lockstep a PostgreSQL database: the one named by --dsn,
// DATABASE_URL or the libpq environment, or else a private throwaway server
// started from the server binaries on this machine. It also keeps the
// conventions every connection follows: how a run and its backends are
// named (names.go), and how a server error's SQLSTATE is read (errors.go).
package db

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgerrcode"
	pgxdecimal "github.com/jackc/pgx-shopspring-decimal"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/lazyre"
)

// DefaultSchema is the schema the ledger lives in on the throwaway server
// unless --schema says otherwise. On a server someone else runs, the
// default is the login's own: lockstep_<role> (DefaultSchemaFor).
const DefaultSchema = "lockstep"

// DefaultSchemaFor is the schema a role's runs use by default on a shared
// server, so that a class of students with their own logins never collide:
// lockstep_<role>, the role's name made a plain identifier.
func DefaultSchemaFor(role string) string {
	var b strings.Builder
	b.WriteString("lockstep_")
	for _, r := range strings.ToLower(role) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

func defaultSchemaFor(source, role string) string {
	if source == "throwaway" {
		return DefaultSchema
	}
	return DefaultSchemaFor(role)
}

// Options say where the database comes from.
type Options struct {
	// DSN is the --dsn flag; it wins over everything else.
	DSN string
	// Schema is the ledger's schema, set as every connection's search_path;
	// "" means the default: lockstep on the throwaway server, lockstep_<role>
	// on any other.
	Schema string
	// Server tunes the throwaway server, when one is started.
	Server ServerOptions
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// NoThrowaway refuses to start a throwaway server (for child processes,
	// which must use their parent's database).
	NoThrowaway bool
	// KeepCheck keeps the connection Open checks the server with, for the
	// first Connect of the Database or a copy without a schema
	// (WithoutSchema) to take, renamed: a command that runs for a moment
	// (lockstep spec) then pays for one connection start less. The first
	// Connect of any other copy closes it, and so does Close.
	KeepCheck bool
	// QuietIO reads and writes the connections' sockets without waking the
	// Go scheduler's monitor thread (quietDial): for a run of short
	// statements one at a time (lockstep spec), a fifth of its CPU.
	QuietIO bool
}

// Database is where lockstep's sessions connect.
type Database struct {
	config  *pgx.ConnConfig
	server  *Server // nil for a server lockstep did not start
	owner   bool    // Close stops server
	schema  string
	source  string
	version string
	created bool // CREATE DATABASE was this lockstep's (the second database)
	pooled  bool // reached through a pooler lockstep started (Through)
	// spare is the connection Open checked the server with, when kept
	// (Options.KeepCheck): shared by the copies, taken at most once.
	spare *spareConn
}

// spareConn is a connection waiting for its first taker.
type spareConn struct {
	mu     sync.Mutex
	conn   *pgx.Conn
	config *pgx.ConnConfig // the settings it was made with, before its name
}

// libpqVars are the environment variables whose presence means the user has
// pointed libpq (and so pgx) at a server.
var libpqVars = [...]string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE"}

var schemaRE = lazyre.New(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidateSchema checks that name is a plain lower-case SQL identifier, so it
// can appear in search_path and SQL without quoting.
func ValidateSchema(name string) error {
	if !schemaRE.MatchString(name) {
		return fmt.Errorf("invalid --schema %q: use lower-case letters, digits and _ (not starting with a digit), at most 63 characters", name)
	}
	return nil
}

// Open finds the database in the documented order — DSN, DATABASE_URL, the
// libpq environment, else a throwaway server — and checks that it answers.
// Close releases it (and stops a throwaway server).
func Open(ctx context.Context, opts Options) (*Database, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	if opts.Schema != "" {
		if err := ValidateSchema(opts.Schema); err != nil {
			return nil, err
		}
	}
	d := &Database{schema: opts.Schema}
	dsn, source := opts.DSN, "--dsn"
	if dsn == "" {
		if v, ok := lookup("DATABASE_URL"); ok && v != "" {
			dsn, source = v, "DATABASE_URL"
		}
	}
	if dsn == "" {
		for _, name := range libpqVars {
			if v, ok := lookup(name); ok && v != "" {
				source = "PG* environment"
				break
			}
		}
		if source != "PG* environment" {
			source = ""
		}
	}
	if source == "" && opts.NoThrowaway {
		return nil, errors.New("no database given: set DATABASE_URL")
	}
	if source == "" {
		srv, err := StartServer(ctx, opts.Server)
		if err != nil {
			return nil, fmt.Errorf("starting a throwaway PostgreSQL: %w", err)
		}
		d.server, d.owner, source, dsn = srv, true, "throwaway", srv.URL("postgres")
	}
	d.source = source
	// pgx reads the libpq variables (PGHOST, PGPASSWORD, PGSERVICE, ~/.pgpass, …)
	// itself, as defaults beneath whatever the DSN says.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("invalid %s: %s; expected postgres://user:password@host:port/dbname or key=value pairs", source, parseProblem(err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if opts.QuietIO && cfg.DialFunc != nil {
		cfg.DialFunc = quietDial(cfg.DialFunc)
	}
	d.config = cfg
	if d.schema == "" {
		d.schema = defaultSchemaFor(source, cfg.User)
	}
	// Made without the schema's search_path, so that a copy without one
	// can take it (Options.KeepCheck).
	conn, err := d.ConnectConfig(ctx, d.WithoutSchema().ConnConfig(AppName("check")))
	if err != nil {
		d.Close()
		return nil, err
	}
	// The server reports its version when a connection starts.
	if d.version = conn.PgConn().ParameterStatus("server_version"); d.version == "" {
		if err := conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&d.version); err != nil {
			CloseConn(ctx, conn)
			d.Close()
			return nil, fmt.Errorf("reading the server version: %w", err)
		}
	}
	if opts.KeepCheck {
		d.spare = &spareConn{conn: conn, config: d.config}
	} else {
		CloseConn(ctx, conn)
	}
	return d, nil
}

// takeSpare is the kept check connection, named appName, when this copy
// may use it (the same role, no schema) and it is still there; any other
// first taker closes it. Nil otherwise.
func (d *Database) takeSpare(ctx context.Context, appName string) *pgx.Conn {
	if d.spare == nil {
		return nil
	}
	d.spare.mu.Lock()
	conn, fits := d.spare.conn, d.spare.config == d.config && d.schema == ""
	d.spare.conn = nil
	d.spare.mu.Unlock()
	if conn == nil {
		return nil
	}
	if !fits {
		CloseConn(ctx, conn)
		return nil
	}
	// One round trip, the unnamed statement: no statement cache entry.
	_, err := conn.PgConn().ExecParams(ctx, "SELECT pg_catalog.set_config('application_name', $1, false)",
		[][]byte{[]byte(appName)}, nil, nil, nil).Close()
	if err != nil {
		CloseConn(ctx, conn)
		return nil
	}
	return conn
}

// parseProblem is what pgx found wrong in a connection string, without the
// string itself (which may hold a password).
func parseProblem(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if inner := errors.Unwrap(pe); inner != nil {
			return inner.Error()
		}
		msg := pe.Error()
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			return msg[i+3:]
		}
	}
	return "cannot parse it"
}

// Connect opens a new connection named appName in pg_stat_activity, with the
// ledger's schema as search_path and NUMERIC mapped to decimal.Decimal.
func (d *Database) Connect(ctx context.Context, appName string) (*pgx.Conn, error) {
	if conn := d.takeSpare(ctx, appName); conn != nil {
		return conn, nil
	}
	return d.ConnectConfig(ctx, d.ConnConfig(appName))
}

// ConnectConfig opens a connection with cfg, a ConnConfig the caller has
// tuned (a notice handler, say), as Connect would.
func (d *Database) ConnectConfig(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			// Interrupted (a signal), not refused: nothing to explain.
			return nil, fmt.Errorf("connecting: %w", context.Canceled)
		}
		return nil, explainConnectError(cfg, d.source, err)
	}
	pgxdecimal.Register(conn.TypeMap())
	return conn, nil
}

// ConnConfig is a copy of the connection settings for appName, for callers
// that build their own pools.
func (d *Database) ConnConfig(appName string) *pgx.ConnConfig {
	cfg := d.config.Copy()
	cfg.RuntimeParams["application_name"] = appName
	if d.schema != "" {
		cfg.RuntimeParams["search_path"] = d.schema
	}
	return cfg
}

// WithSchema is the same database with another ledger schema. The copy does
// not own the server: closing it leaves the server running.
func (d *Database) WithSchema(schema string) (*Database, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, err
	}
	c := *d
	c.schema, c.owner = schema, false
	return &c, nil
}

// WithLogin is the same database reached as another role, user with
// password, its ledger in schema: a student of lockstep serve, who is a
// role of their own. The copy does not own the server.
func (d *Database) WithLogin(user, password, schema string) (*Database, error) {
	if err := ValidateSchema(schema); err != nil {
		return nil, err
	}
	c := *d
	c.config = d.config.Copy()
	c.config.User, c.config.Password = user, password
	c.schema, c.owner = schema, false
	return &c, nil
}

// WithoutSchema is the same database with the server's own search_path, for
// SQL that is not about the ledger (isolation-tester specs). The copy does
// not own the server.
func (d *Database) WithoutSchema() *Database {
	c := *d
	c.schema, c.owner = "", false
	return &c
}

// Schema is the ledger's schema.
func (d *Database) Schema() string { return d.schema }

// Server is the throwaway server, or nil when the database is someone else's.
func (d *Database) Server() *Server { return d.server }

// Version is the server's version string, e.g. "15.20 (Debian 15.20-0+deb12u1)".
func (d *Database) Version() string { return d.version }

// Describe names the database for a header line, never with a password.
func (d *Database) Describe() string {
	major, _, _ := strings.Cut(d.version, " ")
	if d.server != nil {
		fetched := ""
		if f := d.server.Fetched(); f != "" {
			fetched = ", fetched"
		}
		return fmt.Sprintf("throwaway PostgreSQL %s (%s%s)", major, d.server.Where(), fetched)
	}
	host := d.config.Host
	if !strings.HasPrefix(host, "/") {
		host = net.JoinHostPort(host, fmt.Sprint(d.config.Port))
	}
	return fmt.Sprintf("PostgreSQL %s at %s/%s as %s (from %s)", major, host, d.config.Database, d.config.User, d.source)
}

// Close closes the kept check connection if nothing took it, and stops the
// throwaway server if this Database started it.
func (d *Database) Close() error {
	if d.spare != nil { // never taken: the copies share it
		d.spare.mu.Lock()
		conn := d.spare.conn
		d.spare.conn = nil
		d.spare.mu.Unlock()
		if conn != nil {
			CloseConn(context.Background(), conn)
		}
	}
	if d.server != nil && d.owner {
		return d.server.Stop()
	}
	return nil
}

// throwawayAdvice is how to reach a throwaway server instead of the one
// source named, "" when there is no such advice: the connection was to the
// throwaway server lockstep started, which no flag can replace.
func throwawayAdvice(source string) string {
	switch source {
	case "--dsn":
		return "omit --dsn to use a throwaway server"
	case "DATABASE_URL":
		return "unset DATABASE_URL to use a throwaway server"
	case "PG* environment":
		return "unset the PG* variables to use a throwaway server"
	case "--dsn2":
		return "omit --dsn2: lockstep then creates " + SecondName + " beside the first database"
	}
	return ""
}

// explainConnectError turns a connection failure into one line saying what
// is wrong and how to fix it; source is where the connection string came
// from (--dsn, DATABASE_URL, throwaway, …). The password never appears in it.
func explainConnectError(cfg *pgx.ConnConfig, source string, err error) error {
	where := cfg.Host
	if !strings.HasPrefix(where, "/") {
		where = net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgerrcode.InvalidPassword:
			return fmt.Errorf("password authentication failed for user %q at %s: check the password in --dsn, DATABASE_URL, PGPASSWORD or ~/.pgpass", cfg.User, where)
		case pgerrcode.InvalidAuthorizationSpecification:
			return fmt.Errorf("the server at %s refused user %q: %s; check pg_hba.conf or use another user", where, cfg.User, pgErr.Message)
		case pgerrcode.InvalidCatalogName:
			return fmt.Errorf("database %q does not exist at %s: create it (createdb %s) or name another in the DSN", cfg.Database, where, cfg.Database)
		case pgerrcode.TooManyConnections:
			return fmt.Errorf("the server at %s has no free connections (%s): close some sessions or raise max_connections", where, pgErr.Message)
		default:
			return fmt.Errorf("connecting to %s as %q: %s (SQLSTATE %s)", where, cfg.User, pgErr.Message, pgErr.Code)
		}
	}
	if strings.Contains(err.Error(), "server refused TLS connection") {
		return fmt.Errorf("the server at %s does not accept TLS (SSL) connections, and the connection string asks for one (sslmode=%s): "+
			"use sslmode=prefer or disable, or enable ssl on the server", where, sslMode(cfg))
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		if !strings.HasPrefix(cfg.Host, "/") && listening(net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))) {
			// The port answers TCP: what listens there kept quiet.
			return fmt.Errorf("something at %s accepted the connection but did not answer as PostgreSQL within %s; check the port (PostgreSQL's is usually 5432)",
				where, cfg.ConnectTimeout)
		}
		if source == "throwaway" {
			return fmt.Errorf("cannot reach the throwaway PostgreSQL lockstep started at %s: timed out; it stopped answering (quit and start lockstep again)", where)
		}
		advice := "check the host and port"
		if a := throwawayAdvice(source); a != "" {
			advice += ", or " + a
		}
		return fmt.Errorf("cannot reach PostgreSQL at %s: timed out; %s", where, advice)
	}
	cause := err.Error()
	if i := strings.LastIndex(cause, ": "); i >= 0 {
		cause = cause[i+2:]
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "dial" {
		// The connection was made, and what answered did not speak
		// PostgreSQL's protocol (an SSH or HTTP server on that port).
		return fmt.Errorf("something answered at %s, but it is not PostgreSQL; check the port (PostgreSQL's is usually 5432)", where)
	}
	if source == "throwaway" {
		return fmt.Errorf("cannot reach the throwaway PostgreSQL lockstep started at %s: %s; it is no longer running (quit and start lockstep again)", where, cause)
	}
	if a := throwawayAdvice(source); a != "" {
		return fmt.Errorf("cannot reach PostgreSQL at %s: %s; is the server running? (or %s)", where, cause, a)
	}
	return fmt.Errorf("cannot reach PostgreSQL at %s: %s; is the server running?", where, cause)
}

// listening says whether a TCP connection to addr opens within a second.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// sslMode is the sslmode the connection string asked for, as far as pgx's
// config shows it: a TLS config that verifies is verify-*, else require.
func sslMode(cfg *pgx.ConnConfig) string {
	if cfg.TLSConfig != nil && !cfg.TLSConfig.InsecureSkipVerify {
		return "verify-ca or verify-full"
	}
	return "require"
}

// EndBackends makes sure no backend whose application_name matches pattern
// (a LIKE pattern) is left: it terminates them and waits until the server
// has let them all go, since a closed connection's backend exits a moment
// after its client hangs up. It checks on a connection named outside any
// run, whose own lingering backend is then nobody's concern.
func (d *Database) EndBackends(ctx context.Context, pattern string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.Connect(ctx, "")
	if err != nil {
		return fmt.Errorf("checking that no backend matches %s: %w", pattern, err)
	}
	defer CloseConn(ctx, conn)
	return endBackends(ctx, conn, pattern)
}

// EndBackendsOn is EndBackends on conns, a run's connections about to be
// closed (one per server it uses): each first takes a name outside the
// run, so that none ends another, and their own backends, lingering a
// moment after the close, match nobody's pattern.
func EndBackendsOn(ctx context.Context, pattern string, conns ...*pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, conn := range conns {
		if _, err := conn.Exec(ctx, "SET application_name = ''"); err != nil {
			return fmt.Errorf("ending backends %s: %w", pattern, err)
		}
	}
	for _, conn := range conns {
		if err := endBackends(ctx, conn, pattern); err != nil {
			return err
		}
	}
	return nil
}

func endBackends(ctx context.Context, conn *pgx.Conn, pattern string) error {
	// From PostgreSQL 14 on, pg_terminate_backend can wait for the backend
	// to be gone; before, the loop below looks again until it is.
	terminate := "pg_terminate_backend(pid)"
	major, _, _ := strings.Cut(conn.PgConn().ParameterStatus("server_version"), ".")
	if n, err := strconv.Atoi(major); err == nil && n >= 14 {
		terminate = "pg_terminate_backend(pid, 1000)"
	}
	for {
		var left int
		// One round trip (no statement to prepare): a run ends with it.
		err := conn.QueryRow(ctx, `SELECT count(`+terminate+`) FROM pg_stat_activity
			WHERE application_name LIKE $1 AND pid <> pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol, pattern).Scan(&left)
		if err != nil {
			return fmt.Errorf("ending backends %s: %w", pattern, err)
		}
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d backends matching %s did not exit", left, pattern)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ChildEnv is the environment a child process (a chaos worker) needs to
// reach this same database through DATABASE_URL. It is passed in the
// environment, not on the command line, where a password would show in ps.
func (d *Database) ChildEnv() []string {
	if d.server != nil {
		return []string{"DATABASE_URL=" + d.server.URL(d.config.Database)}
	}
	if s := d.config.ConnString(); s != "" {
		return []string{"DATABASE_URL=" + s}
	}
	return nil // the PG* variables the child inherits say it all
}

// User is the role lockstep connects as.
func (d *Database) User() string { return d.config.User }

// ServerLog is the server's log file when lockstep can read it: the
// throwaway server's, whether this lockstep started it or another one
// (lockstep db) did and the connection reaches it through its socket dir.
// "" otherwise.
func (d *Database) ServerLog() string {
	dir := d.config.Host
	if d.server != nil {
		dir = d.server.dir
	}
	if !filepath.IsAbs(dir) {
		return ""
	}
	for _, name := range []string{ownerFile, "server.log"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return ""
		}
	}
	return filepath.Join(dir, "server.log")
}
