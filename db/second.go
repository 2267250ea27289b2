package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// DatabaseMark is the comment on a database lockstep created.
const DatabaseMark = "created by lockstep for two-database runs; lockstep clean --all-mine drops it"

// Created says whether this lockstep created the database (the second
// database of a coupled run), so that the command can say so.
func (d *Database) Created() bool { return d.created }

// SecondName is the database lockstep creates beside the first one when no
// --dsn2 names a second database.
const SecondName = "lockstep_b"

// Name is the database's name on its server.
func (d *Database) Name() string { return d.config.Database }

// OpenSecond finds the second database of a two-database run: dsn2 when
// given, else database lockstep_b on the first one's server, created when it
// does not exist (on the throwaway server, always). It shares the first's
// schema; closing it never stops a server.
func OpenSecond(ctx context.Context, first *Database, dsn2 string) (*Database, error) {
	if dsn2 == "" {
		return first.sibling(ctx, SecondName)
	}
	cfg, err := pgx.ParseConfig(dsn2)
	if err != nil {
		return nil, fmt.Errorf("invalid --dsn2: %s; expected postgres://user:password@host:port/dbname or key=value pairs", parseProblem(err))
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	d := &Database{config: cfg, schema: first.schema, source: "--dsn2"}
	if err := d.check(ctx); err != nil {
		return nil, fmt.Errorf("the second database (--dsn2): %s", err)
	}
	if d.sameAs(first) {
		return nil, errors.New("--dsn2 names the same database as the first: a coupled run needs two databases (omit --dsn2 and lockstep creates " + SecondName + " beside the first)")
	}
	return d, nil
}

// sibling is database name on d's server, created if need be.
func (d *Database) sibling(ctx context.Context, name string) (*Database, error) {
	c := *d
	c.owner = false
	c.config = d.config.Copy()
	c.config.Database = name
	c.source = d.source
	err := c.check(ctx)
	if err == nil {
		return &c, nil
	}
	if SQLState(err) != pgerrcode.InvalidCatalogName {
		return nil, fmt.Errorf("the second database %s: %w", name, err)
	}
	conn, err := d.Connect(ctx, AppName("createdb"))
	if err != nil {
		return nil, err
	}
	defer CloseConn(ctx, conn)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		// Another lockstep may have created it a moment ago.
		if code := SQLState(err); code != pgerrcode.DuplicateDatabase && code != pgerrcode.UniqueViolation {
			return nil, fmt.Errorf("creating the second database %s (or pass --dsn2): %w", name, err)
		}
	} else {
		// Marked, so that lockstep clean may drop it and nothing it did not make.
		if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{name}.Sanitize()+" IS '"+DatabaseMark+"'"); err != nil {
			return nil, fmt.Errorf("marking the second database %s: %w", name, err)
		}
		c.created = true
	}
	if err := c.check(ctx); err != nil {
		return nil, fmt.Errorf("the second database %s: %w", name, err)
	}
	return &c, nil
}

// check connects once and reads the server version.
func (d *Database) check(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, d.ConnConfig(AppName("check")))
	if err != nil {
		return checkError{explainConnectError(d.config, d.source, err), err}
	}
	defer CloseConn(ctx, conn)
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&d.version); err != nil {
		return fmt.Errorf("reading the server version: %w", err)
	}
	return nil
}

// checkError is a connection failure explained, keeping the server's error
// for callers that match its SQLSTATE.
type checkError struct {
	explained error
	cause     error
}

func (e checkError) Error() string { return e.explained.Error() }
func (e checkError) Unwrap() error { return e.cause }

// sameAs is true when both name one database on one server.
func (d *Database) sameAs(o *Database) bool {
	return d.config.Host == o.config.Host && d.config.Port == o.config.Port && d.config.Database == o.config.Database
}

// Label describes the database in a few words for a header: its name and
// where it lives.
func (d *Database) Label() string {
	if d.server != nil {
		return d.config.Database + " (throwaway)"
	}
	return fmt.Sprintf("%s at %s:%d", d.config.Database, d.config.Host, d.config.Port)
}
