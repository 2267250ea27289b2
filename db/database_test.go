package db_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/db"
	"lockstep/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

func noEnv(string) (string, bool) { return "", false }

func TestOpenBadInputNeverShowsThePassword(t *testing.T) {
	t.Parallel()
	cfg := dbtest.DB(t).ConnConfig("x")
	cases := map[string]struct{ dsn, want string }{
		"unparsable":    {"postgres://bob:s3cret@localhost:notaport/x", "invalid --dsn"},
		"unreachable":   {"postgres://bob:s3cret@127.0.0.1:1/x?connect_timeout=2", "cannot reach PostgreSQL at 127.0.0.1:1"},
		"unknown role":  {fmt.Sprintf("host=%s port=%d dbname=%s user=nosuchrole password=s3cret", cfg.Host, cfg.Port, cfg.Database), "refused user \"nosuchrole\""},
		"no such db":    {fmt.Sprintf("host=%s port=%d dbname=nosuchdb user=%s password=s3cret", cfg.Host, cfg.Port, cfg.User), "database \"nosuchdb\" does not exist"},
		"bad schema":    {"", "invalid --schema"},
		"keyword typos": {"host=localhost pasword=s3cret", "unrecognized configuration parameter \"pasword\""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := db.Options{DSN: c.dsn, LookupEnv: noEnv}
			if name == "bad schema" {
				opts.Schema = "Robert'); DROP TABLE"
			}
			d, err := db.Open(context.Background(), opts)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cret") {
				t.Errorf("the password leaks: %s", msg)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("more than one line: %q", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("got %q, want it to say %q", msg, c.want)
			}
		})
	}
}

func TestOpenOrder(t *testing.T) {
	shared := dbtest.DB(t)
	cfg := shared.ConnConfig("x")
	good := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)
	ctx := context.Background()
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	// --dsn wins over a broken DATABASE_URL.
	d, err := db.Open(ctx, db.Options{DSN: good, LookupEnv: env(map[string]string{"DATABASE_URL": "postgres://x@127.0.0.1:1/x"})})
	if err != nil {
		t.Fatalf("--dsn should win over DATABASE_URL: %v", err)
	}
	if !strings.Contains(d.Describe(), "from --dsn") || d.Server() != nil {
		t.Errorf("Describe() = %q", d.Describe())
	}
	d.Close()
	// DATABASE_URL wins over PG* variables.
	d, err = db.Open(ctx, db.Options{LookupEnv: env(map[string]string{"DATABASE_URL": good, "PGHOST": "127.0.0.1", "PGPORT": "1"})})
	if err != nil {
		t.Fatalf("DATABASE_URL should win over PGHOST: %v", err)
	}
	if !strings.Contains(d.Describe(), "from DATABASE_URL") {
		t.Errorf("Describe() = %q", d.Describe())
	}
	d.Close()
	// The libpq variables, read by pgx itself.
	t.Setenv("PGHOST", cfg.Host)
	t.Setenv("PGPORT", fmt.Sprint(cfg.Port))
	t.Setenv("PGDATABASE", cfg.Database)
	t.Setenv("PGUSER", cfg.User)
	withoutURL := func(k string) (string, bool) {
		if k == "DATABASE_URL" {
			return "", false
		}
		return os.LookupEnv(k)
	}
	d, err = db.Open(ctx, db.Options{LookupEnv: withoutURL})
	if err != nil {
		t.Fatalf("PG* variables: %v", err)
	}
	if !strings.Contains(d.Describe(), "from PG* environment") {
		t.Errorf("Describe() = %q", d.Describe())
	}
	d.Close()
}

func TestOpenWithNothingStartsAThrowawayServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{LookupEnv: noEnv, Schema: "classroom_7"})
	if err != nil {
		t.Fatal(err)
	}
	srv := d.Server()
	if srv == nil {
		d.Close()
		t.Fatal("no throwaway server")
	}
	conn, err := d.Connect(ctx, "lockstep/test")
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	var app, path string
	err = conn.QueryRow(ctx, "SELECT current_setting('application_name'), current_setting('search_path')").Scan(&app, &path)
	conn.Close(ctx)
	if err != nil || app != "lockstep/test" || path != "classroom_7" {
		t.Errorf("application_name=%q search_path=%q err=%v", app, path, err)
	}
	if !strings.HasPrefix(d.Describe(), "throwaway PostgreSQL") {
		t.Errorf("Describe() = %q", d.Describe())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.Done():
	default:
		t.Fatal("server still running after Close")
	}
}

// What answers on the port decides the line: a server that refuses TLS
// when the DSN asks for it is named so (not "not PostgreSQL"); a server
// that accepts the connection and never answers (an HTTP server waiting for
// a request line) is not "unreachable".
func TestOpenSaysWhatAnswered(t *testing.T) {
	t.Parallel()
	serve := func(t *testing.T, handle func(net.Conn)) string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					handle(c)
				}()
			}
		}()
		return l.Addr().String()
	}
	noTLS := serve(t, func(c net.Conn) {
		buf := make([]byte, 8) // the SSLRequest
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write([]byte("N"))
			io.Copy(io.Discard, c)
		}
	})
	silent := serve(t, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, c)
	})
	cases := map[string]struct{ dsn, want string }{
		"tls refused": {"postgres://bob:s3cret@" + noTLS + "/x?sslmode=require", "does not accept TLS (SSL) connections, and the connection string asks for one (sslmode=require)"},
		"silent":      {"postgres://bob:s3cret@" + silent + "/x?connect_timeout=1", "accepted the connection but did not answer as PostgreSQL within 1s"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d, err := db.Open(context.Background(), db.Options{DSN: c.dsn, LookupEnv: noEnv})
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%v; want %q", err, c.want)
			}
		})
	}
}

// TestKeepCheckHandsTheCheckOver: with KeepCheck, the connection Open
// checked the server with is the first one a copy without a schema asks
// for, renamed, and a copy with a schema never gets it (its search_path
// is set when a connection starts) — it closes it and connects anew.
func TestKeepCheckHandsTheCheckOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := dbtest.DSN(t)
	backends := func(t *testing.T, conn interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, app string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Run("taken", func(t *testing.T) {
		t.Parallel()
		d, err := db.Open(ctx, db.Options{DSN: dsn, LookupEnv: noEnv, KeepCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		opened := time.Now()
		app := db.AppName("keepcheck-" + string(db.NewRunID()))
		first, err := d.WithoutSchema().Connect(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		defer first.Close(ctx)
		second, err := d.WithoutSchema().Connect(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		defer second.Close(ctx)
		var name, path string
		if err := first.QueryRow(ctx, "SELECT current_setting('application_name'), current_setting('search_path')").Scan(&name, &path); err != nil {
			t.Fatal(err)
		}
		if name != app || strings.Contains(path, d.Schema()) {
			t.Errorf("the kept connection is named %q with search_path %q; want %q and the server's own", name, path, app)
		}
		for i, conn := range []*pgx.Conn{first, second} {
			var before bool
			if err := conn.QueryRow(ctx, "SELECT backend_start < $1 FROM pg_stat_activity WHERE pid = pg_backend_pid()", opened).Scan(&before); err != nil {
				t.Fatal(err)
			}
			if before != (i == 0) {
				t.Errorf("connection %d started before Open returned: %v; want only the first (the kept one)", i+1, before)
			}
		}
		if n := backends(t, second, app); n != 2 {
			t.Errorf("%d backends named %s; want 2 (the kept one, and a new one)", n, app)
		}
	})
	t.Run("refused with a schema", func(t *testing.T) {
		t.Parallel()
		d, err := db.Open(ctx, db.Options{DSN: dsn, LookupEnv: noEnv, KeepCheck: true, Schema: "keepcheck"})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		app := db.AppName("keepcheck-" + string(db.NewRunID()))
		conn, err := d.Connect(ctx, app)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var path string
		if err := conn.QueryRow(ctx, "SELECT current_setting('search_path')").Scan(&path); err != nil {
			t.Fatal(err)
		}
		if path != "keepcheck" {
			t.Errorf("search_path %q; want keepcheck", path)
		}
	})
}
