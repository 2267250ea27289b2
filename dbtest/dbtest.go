// Package dbtest gives each test binary one real PostgreSQL — DATABASE_URL
// when set, else lockstep's own throwaway server — and each test a ledger in
// a schema of its own. Only tests import it.
package dbtest

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"lockstep/db"
	"lockstep/ledger"
)

// shared is the test binary's database, set once by Main before any test runs.
var shared *db.Database

var schemaSeq atomic.Int64

// Main runs a package's tests against one database started for the whole
// test binary, stops it afterwards and fails the binary on leaked goroutines
// (but those the options name).
func Main(m *testing.M, ignore ...goleak.Option) {
	os.Exit(run(m, ignore))
}

func run(m *testing.M, ignore []goleak.Option) int {
	// A fuzzing process runs only the fuzz target, which needs no server:
	// each of its workers would start one.
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := db.Open(ctx, db.Options{
		// Only DATABASE_URL, not PG* variables, may point tests elsewhere.
		LookupEnv: func(k string) (string, bool) {
			if k == "DATABASE_URL" {
				return os.LookupEnv(k)
			}
			return "", false
		},
		Server: db.ServerOptions{DeadlockTimeout: 200 * time.Millisecond},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: no database for the tests:", err)
		return 1
	}
	shared = d
	stopWatch := watchServer(d, os.Stderr)
	code := m.Run()
	stopWatch()
	if twoPhase != nil && twoPhase != shared {
		if err := twoPhase.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: stopping the two-phase-commit server:", err)
			code = 1
		}
	}
	if err := d.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "dbtest: stopping the test database:", err)
		code = 1
	}
	if code == 0 {
		// Goroutines of work that ends on its own (timers, a cursor's blink)
		// get a few seconds to finish before they count as leaked.
		err := goleak.Find(ignore...)
		for deadline := time.Now().Add(3 * time.Second); err != nil && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find(ignore...)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: leaked goroutines:", err)
			code = 1
		}
	}
	return code
}

// watchServer watches the binary's throwaway server while the tests run:
// should it exit before they end, the end of its log goes to w at once, to say why (a test that then fails only says the connection was
// refused). The returned func ends the watch.
func watchServer(d *db.Database, w io.Writer) (stop func()) {
	srv := d.Server()
	if srv == nil {
		return func() {}
	}
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-done:
		case <-srv.Done():
			fmt.Fprintf(w, "dbtest: the test server exited during the tests; the end of its log (%s):\n%s",
				d.ServerLog(), logTail(d.ServerLog(), 30))
		}
	}()
	return func() {
		close(done)
		<-watched
	}
}

// logTail is the last n lines of the file at path, indented.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (" + err.Error() + ")\n"
	}
	defer f.Close()
	const most = 16 << 10
	if st, err := f.Stat(); err == nil && st.Size() > most {
		_, _ = f.Seek(-most, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	var out strings.Builder
	for _, l := range lines[max(0, len(lines)-n):] {
		out.WriteString("  " + l + "\n")
	}
	return out.String()
}

var (
	twoPhaseOnce sync.Once
	twoPhase     *db.Database
	twoPhaseErr  error
)

// TwoPhase is a database whose server allows prepared transactions: the
// test binary's own when its max_prepared_transactions is above 0, else a
// throwaway server (lockstep's own), started once for the binary.
func TwoPhase(tb testing.TB) *db.Database {
	tb.Helper()
	first := DB(tb)
	twoPhaseOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ok, err := AllowsPrepared(ctx, first)
		if err != nil || ok {
			twoPhase, twoPhaseErr = first, err
			return
		}
		twoPhase, twoPhaseErr = db.Open(ctx, db.Options{
			LookupEnv: func(string) (string, bool) { return "", false },
			Server:    db.ServerOptions{DeadlockTimeout: 200 * time.Millisecond},
		})
	})
	if twoPhaseErr != nil {
		tb.Fatal(twoPhaseErr)
	}
	return twoPhase
}

// AllowsPrepared says whether d's server has max_prepared_transactions above 0.
func AllowsPrepared(ctx context.Context, d *db.Database) (bool, error) {
	conn, err := d.Connect(ctx, db.AppName("test-check"))
	if err != nil {
		return false, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT current_setting('max_prepared_transactions')::int").Scan(&n)
	return n > 0, err
}

// DSN is a connection string for the test binary's database, for tests
// that drive the command line.
func DSN(tb testing.TB) string {
	tb.Helper()
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DB(tb).Server().URL("postgres")
}

// DB is the test binary's database, with the default schema.
func DB(tb testing.TB) *db.Database {
	tb.Helper()
	// Read during the tests, so that go test's cache knows the results
	// depend on DATABASE_URL (reads in TestMain are not recorded).
	_ = os.Getenv("DATABASE_URL")
	if shared == nil {
		tb.Fatal("dbtest: the package's TestMain must call dbtest.Main")
	}
	return shared
}

// Schema is the test database with a schema name no other test uses; the
// schema is dropped when the test ends.
func Schema(tb testing.TB) *db.Database {
	tb.Helper()
	return SchemaOn(tb, DB(tb))
}

// SchemaOn is Schema on another of the binary's databases (TwoPhase).
func SchemaOn(tb testing.TB, on *db.Database) *db.Database {
	tb.Helper()
	name := fmt.Sprintf("lockstep_t%d_%d", os.Getpid(), schemaSeq.Add(1))
	d, err := on.WithSchema(name)
	if err != nil {
		tb.Fatal(err)
	}
	dropAtEnd(tb, d)
	return d
}

// dropAtEnd drops d's schema when the test ends.
func dropAtEnd(tb testing.TB, d *db.Database) {
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := d.Connect(ctx, db.AppName("test-cleanup"))
		if err != nil {
			tb.Errorf("dropping schema %s in %s: %v", d.Schema(), d.Name(), err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+d.Schema()+" CASCADE"); err != nil {
			tb.Errorf("dropping schema %s in %s: %v", d.Schema(), d.Name(), err)
		}
	})
}

// Optional gives way when a program a test needs is missing (found is
// false): README names it optional, so the test is skipped in one line
// naming the package that brings it — unless CI is set, where .ci/run
// installs it and the test is required.
func Optional(tb testing.TB, found bool, program, pkg string) {
	tb.Helper()
	switch {
	case found:
	case os.Getenv("CI") != "":
		tb.Fatalf("%s is not installed, and CI is set: .ci/run installs it (apt-get install %s)", program, pkg)
	default:
		tb.Skipf("%s is not installed (optional): apt-get install %s, or brew install %s, to run this test", program, pkg, pkg)
	}
}

// Ledger is the ledger defined by the module's schema.sql.
func Ledger(tb testing.TB) *ledger.Ledger {
	tb.Helper()
	return ledger.New()
}

// Fresh is a new schema holding a freshly reset ledger with setup.
func Fresh(tb testing.TB, setup ledger.Setup) *db.Database {
	tb.Helper()
	d := Schema(tb)
	if err := Ledger(tb).ResetDatabase(context.Background(), d, setup); err != nil {
		tb.Fatal(err)
	}
	return d
}

// Second is the second database of a two-database test: lockstep_b beside
// the test binary's database, with first's schema, which is dropped there
// when the test ends. With setup, the ledger is reset in it.
func Second(tb testing.TB, first *db.Database, setup *ledger.Setup) *db.Database {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := db.OpenSecond(ctx, first, "")
	if err != nil {
		tb.Fatal(err)
	}
	dropAtEnd(tb, d)
	if setup != nil {
		if err := Ledger(tb).ResetDatabase(ctx, d, *setup); err != nil {
			tb.Fatal(err)
		}
	}
	return d
}

// Role creates a login role for the test — plain: no superuser, no
// CREATEDB, no CREATEROLE, with CONNECT and CREATE on the test database, as
// a school server gives each student — and opens the database as it, with
// its default schema (lockstep_<role>). The role's name starts with
// prefix; members, when given, become members of it (a teacher's role that
// is a member of the students'). What the role owns and the role itself
// are dropped when the test ends. It needs the test database's user to be
// a superuser, as the throwaway server's is.
func Role(tb testing.TB, prefix string, memberOf ...string) *db.Database {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := DB(tb).Connect(ctx, db.AppName("test-roles"))
	if err != nil {
		tb.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("%s_%d_%d", prefix, os.Getpid(), schemaSeq.Add(1))
	dbname := DB(tb).Name()
	stmts := []string{
		"CREATE ROLE " + role + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
		"GRANT CONNECT, CREATE ON DATABASE " + pgxIdent(dbname) + " TO " + role,
	}
	for _, m := range memberOf {
		stmts = append(stmts, "GRANT "+m+" TO "+role)
	}
	for _, sql := range stmts {
		if _, err := admin.Exec(ctx, sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := DB(tb).Connect(ctx, db.AppName("test-roles"))
		if err != nil {
			tb.Error(err)
			return
		}
		defer conn.Close(ctx)
		// Its backends first: a role with sessions cannot go.
		_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1", role)
		for _, sql := range []string{"DROP OWNED BY " + role + " CASCADE", "DROP ROLE " + role} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				tb.Errorf("%s: %v", sql, err)
			}
		}
	})
	cfg := DB(tb).ConnConfig("")
	u := url.URL{Scheme: "postgres", User: url.User(role), Path: "/" + dbname}
	q := url.Values{}
	if strings.HasPrefix(cfg.Host, "/") {
		q.Set("host", cfg.Host)
		q.Set("port", strconv.Itoa(int(cfg.Port)))
	} else {
		u.Host = net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	}
	u.RawQuery = q.Encode()
	d, err := db.Open(ctx, db.Options{DSN: u.String(), LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func pgxIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
