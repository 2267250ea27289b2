package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/jackc/pgx/v5"

	"lockstep/cli"
	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/ledger"
	"lockstep/sim"
	"lockstep/tui"
)

// The proving test of "lockstep never destroys what it did not make". A
// user's database — unmarked schemas with tables, public with tables (one
// named like a scenario's), a view and a foreign key from outside into
// lockstep's ledger, a table the user added to lockstep's own schema, a
// second role's lockstep schema and one an older lockstep marked, a temp
// dir of the user's named lockstep-notes, a live chaos run and a live
// interface — goes through every command that writes, as its owner, as a
// teacher who is a member of both students' roles, and as a superuser.
// Everything that is not lockstep's is then byte for byte as it was
// (pg_dump before and after; the temp dir's files), and each command did
// what it says: refused with a line naming why, or worked on lockstep's
// own schemas only.
//
// It is not parallel: it points TMPDIR at a directory of its own for the
// one command that starts a throwaway server.
func TestAUsersDatabaseSurvivesEveryCommand(t *testing.T) {
	ctx := context.Background()
	pgDump := findPgDump(t)
	admin := dbtest.DB(t)
	adminDSN := dbtest.DSN(t)
	tag := fmt.Sprintf("%d_%d", os.Getpid(), schemaSeq.Add(1))
	ann, bob, teacher := "ls_ann_"+tag, "ls_bob_"+tag, "ls_teacher_"+tag
	dbname := "ls_users_" + tag

	// The server's administrator: three plain roles and ann's own database.
	root, err := admin.Connect(ctx, db.AppName("test-fixture"))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close(ctx)
	run(t, root,
		"CREATE ROLE "+ann+" LOGIN", "CREATE ROLE "+bob+" LOGIN",
		"CREATE ROLE "+teacher+" LOGIN IN ROLE "+ann+", "+bob,
		"CREATE DATABASE "+dbname+" OWNER "+ann,
		"GRANT CONNECT, CREATE ON DATABASE "+dbname+" TO "+bob+", "+teacher)
	t.Cleanup(func() {
		c, err := admin.Connect(context.Background(), db.AppName("test-fixture"))
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		for _, sql := range []string{"DROP DATABASE IF EXISTS " + dbname + " WITH (FORCE)",
			"DROP ROLE IF EXISTS " + teacher, "DROP ROLE IF EXISTS " + ann, "DROP ROLE IF EXISTS " + bob} {
			if _, err := c.Exec(context.Background(), sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	dsn := func(role string) string {
		u, err := url.Parse(adminDSN)
		if err != nil {
			t.Fatal(err)
		}
		if role != "" {
			u.User = url.User(role)
		}
		u.Path = "/" + dbname
		return u.String()
	}
	annDSN, bobDSN, teacherDSN, superDSN := dsn(ann), dsn(bob), dsn(teacher), dsn("")
	connect := func(dsn string) *pgx.Conn {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	super, annSQL, bobSQL := connect(superDSN), connect(annDSN), connect(bobDSN)
	annLedger, bobLedger := db.DefaultSchemaFor(ann), db.DefaultSchemaFor(bob)
	// lockstep creates pgrowlocks in public when it may (it serves every
	// role, and it never drops it): a school's server has it already.
	run(t, super, "CREATE EXTENSION IF NOT EXISTS pgrowlocks SCHEMA public")

	cmd := func(want int, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := lockstep(t, args...)
		if code != want {
			t.Fatalf("lockstep %s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out, errOut
	}
	refused := func(want string, args ...string) {
		t.Helper()
		_, errOut := cmd(cli.ExitBadInput, args...)
		if args[0] == "bench" { // its progress comes first
			errOut = errOut[strings.LastIndex(strings.TrimSuffix(errOut, "\n"), "\n")+1:]
		}
		if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, want) {
			t.Errorf("lockstep %s: %q; want one line saying %q", strings.Join(args, " "), errOut, want)
		}
	}

	// The user's database.
	cmd(0, "reset", "--dsn", annDSN) // ann's ledger, in her default schema
	cmd(0, "reset", "--dsn", bobDSN) // bob's
	run(t, annSQL,
		"CREATE SCHEMA ann_app",
		"CREATE TABLE ann_app.customers (id serial PRIMARY KEY, name text)",
		"INSERT INTO ann_app.customers (name) VALUES ('Ada'), ('Grace')",
		"CREATE TABLE ann_app.orders (id int PRIMARY KEY, account bigint REFERENCES "+annLedger+".accounts (id))",
		"INSERT INTO ann_app.orders VALUES (1, 1)",
		"CREATE VIEW ann_app.rich AS SELECT owner, balance FROM "+annLedger+".accounts WHERE balance > 50",
		"CREATE SCHEMA reports",
		"CREATE TABLE reports.monthly (month date, total numeric)",
		"INSERT INTO reports.monthly VALUES ('2025-01-01', 12.5)",
		"CREATE TABLE public.notes (id int, note text)",
		"INSERT INTO public.notes VALUES (1, 'keep me')",
		// named like write-skew's table: a spec's teardown must not drop it
		"CREATE TABLE public.anomaly (id int, note text)",
		"INSERT INTO public.anomaly VALUES (7, 'the user''s, not the scenario''s')",
		// a table the user added to lockstep's own schema
		"CREATE TABLE "+annLedger+".scribbles (id int, note text)",
		"INSERT INTO "+annLedger+".scribbles VALUES (1, 'mine')",
	)
	run(t, bobSQL,
		"CREATE SCHEMA bob_work",
		"CREATE TABLE bob_work.t (x int)", "INSERT INTO bob_work.t VALUES (42)",
		// a schema an older lockstep marked, of bob's
		"CREATE SCHEMA bob_old",
		"COMMENT ON SCHEMA bob_old IS 'lockstep ledger: created by lockstep, dropped by lockstep reset'",
		"CREATE TABLE bob_old.accounts (id bigint PRIMARY KEY)", "INSERT INTO bob_old.accounts VALUES (1)",
	)

	// A temp dir with the user's own lockstep-* dirs in it.
	tmp, err := os.MkdirTemp("", "lsfx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // the throwaway server's user must enter it
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	for dir, file := range map[string]string{"lockstep-notes": "lecture.md", "lockstep-main": "go.mod", "lockstep-12345": "data.txt"} {
		if err := os.Mkdir(filepath.Join(tmp, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, dir, file), []byte("the user's "+dir+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(filepath.Join(tmp, dir), hourAgo, hourAgo)
	}

	// A live chaos run, on a schema of its own, for the whole test.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaosDone sync.WaitGroup
	chaosDone.Go(func() {
		var out, errOut bytes.Buffer
		_ = cli.Execute(chaosCtx, []string{"chaos", "--dsn", annDSN, "--schema", "lsfx_live", "--duration", "10m",
			"--kill-every", "2s", "--workers", "2"}, &out, &errOut)
	})
	t.Cleanup(func() { stopChaos(); chaosDone.Wait() })
	waitFor(t, "the live chaos run's claim", func() bool { return claimed(t, super, "lsfx_live") })

	// A live interface, driven as the tests of the interface drive it, on a
	// schema it creates; the user then adds a view over its ledger and a
	// table to its schema, as a student with psql beside it might.
	ui := startInterface(t, annDSN, "lsfx_tui")
	run(t, annSQL,
		"CREATE VIEW ann_app.tui_view AS SELECT id FROM lsfx_tui.accounts",
		"CREATE TABLE lsfx_tui.kept (x int)", "INSERT INTO lsfx_tui.kept VALUES (1)")

	// Lockstep's own: the schemas it made for ann (and for the superuser,
	// who has none yet); within them, the tables the user added are the
	// user's.
	locksteps := []string{annLedger, "lsfx_*", db.DefaultSchemaFor(admin.User())}
	usersInLocksteps := []string{annLedger + ".scribbles", "lsfx_tui.kept"}
	dump := func() string { return dumpUsers(t, pgDump, superDSN, locksteps, usersInLocksteps) }
	beforeDump, beforeFiles := dump(), files(t, tmp)
	for _, want := range []string{"CREATE VIEW ann_app.rich", "REFERENCES " + annLedger + ".accounts(id)", "keep me",
		"the user's, not the scenario's", "CREATE TABLE " + annLedger + ".scribbles", "bob_old", bobLedger + ".accounts",
		"ann_app.tui_view", "lsfx_tui.kept"} {
		if !strings.Contains(beforeDump, want) {
			t.Fatalf("the dump of the user's database lacks %q:\n%s", want, beforeDump)
		}
	}

	// reset
	refused("view ann_app.rich", "reset", "--dsn", annDSN) // a view and a foreign key depend on ann's ledger
	refused("constraint orders_account_fkey on table ann_app.orders", "reset", "--dsn", annDSN)
	refused("schema ann_app exists and lockstep did not create it", "reset", "--dsn", annDSN, "--schema", "ann_app")
	refused("schema public belongs to role pg_database_owner", "reset", "--dsn", annDSN, "--schema", "public")
	refused("belongs to role "+bob, "reset", "--dsn", annDSN, "--schema", bobLedger)
	refused("belongs to role "+bob, "reset", "--dsn", annDSN, "--schema", "bob_old")
	refused("is role "+teacher+"'s default", "reset", "--dsn", annDSN, "--schema", db.DefaultSchemaFor(teacher))
	refused("under a live run", "reset", "--dsn", annDSN, "--schema", "lsfx_live")
	refused("belongs to role "+ann, "reset", "--dsn", teacherDSN, "--schema", annLedger)
	refused("belongs to role "+ann, "reset", "--dsn", superDSN, "--schema", annLedger)
	cmd(0, "reset", "--dsn", annDSN, "--schema", "lsfx_reset")

	// run: transfers and scenarios, with and without --schema and --keep
	refused("view ann_app.rich", "run", "--dsn", annDSN, "--strategy", "ordered")
	_, errOut := cmd(0, "run", "--dsn", annDSN, "--strategy", "ordered", "--schema", "lsfx_run")
	if !strings.Contains(errOut, "dropped schema lsfx_run in "+dbname+", made for this run") {
		t.Errorf("run on a schema of its own: %s", errOut)
	}
	_, errOut = cmd(0, "run", "--dsn", annDSN, "--strategy", "ordered", "--schema", "lsfx_reset")
	if strings.Contains(errOut, "dropped") || !schemaExists(t, super, "lsfx_reset") {
		t.Errorf("a run on a schema it found dropped it: %s", errOut)
	}
	cmd(0, "run", "--dsn", annDSN, "--strategy", "ordered", "--schema", "lsfx_keep", "--keep")
	if !schemaExists(t, super, "lsfx_keep") {
		t.Error("run --keep dropped its schema")
	}
	cmd(0, "run", "--dsn", annDSN, "--scenario", "write-skew") // ann's ledger schema: the scenario's tables come and go
	rec := filepath.Join(t.TempDir(), "write-skew.jsonl")
	_, errOut = cmd(0, "run", "--dsn", annDSN, "--scenario", "write-skew", "--schema", "lsfx_sc", "--record", rec)
	if !strings.Contains(errOut, "dropped schema lsfx_sc") {
		t.Errorf("a scenario run on a schema of its own: %s", errOut)
	}
	cmd(0, "run", "--dsn", annDSN, "--scenario", "write-skew", "--schema", "lsfx_sc_kept", "--keep")
	refused("schema ann_app exists and lockstep did not create it", "run", "--dsn", annDSN, "--scenario", "write-skew", "--schema", "ann_app")
	refused("schema public belongs to role pg_database_owner", "run", "--dsn", annDSN, "--scenario", "write-skew", "--schema", "public")
	refused("belongs to role "+bob, "run", "--dsn", annDSN, "--scenario", "lost-update", "--schema", "bob_work")

	// replay --live
	cmd(0, "replay", rec, "--live", "--dsn", annDSN)
	cmd(0, "replay", rec, "--live", "--dsn", annDSN, "--schema", "lsfx_replay")
	refused("schema ann_app exists and lockstep did not create it", "replay", rec, "--live", "--dsn", annDSN, "--schema", "ann_app")
	refused("schema public belongs to role pg_database_owner", "replay", rec, "--live", "--dsn", annDSN, "--schema", "public")

	// spec: on the server's own search_path (public, where the user has a
	// table named like the scenario's) the setup fails, and no teardown runs
	// (on standard error, as the tester says it)
	out, errOut := cmd(cli.ExitFailure, "spec", "write-skew", "--dsn", annDSN)
	if !strings.HasPrefix(errOut, `setup failed: ERROR:  relation "anomaly" already exists`) {
		t.Errorf("spec over the user's anomaly table:\n%s%s", out, errOut)
	}
	// The schema spec made is dropped at its end: the spec's teardown left it empty.
	cmd(0, "spec", "write-skew", "--dsn", annDSN, "--schema", "lsfx_spec")
	refused("schema ann_app exists and lockstep did not create it", "spec", "write-skew", "--dsn", annDSN, "--schema", "ann_app")

	// chaos and bench
	cmd(0, "chaos", "--dsn", annDSN, "--schema", "lsfx_chaos", "--duration", "1s", "--kill-every", "500ms", "--workers", "2")
	refused("view ann_app.rich", "chaos", "--dsn", annDSN, "--duration", "1s", "--kill-every", "500ms")
	cmd(0, "bench", "--dsn", annDSN, "--schema", "lsfx_bench", "--duration", "300ms", "--workers", "1", "--strategy", "ordered")
	refused("schema reports exists and lockstep did not create it", "bench", "--dsn", annDSN, "--schema", "reports",
		"--workload", "job-queue", "--duration", "300ms", "--workers", "1")

	// The interface's r: the view the user made over its ledger is named,
	// the reset refused, the table the user added to its schema kept.
	ui.press("r")
	ui.until("the reset refused", "would also drop what lockstep did not make: view ann_app.tui_view")

	// clean: as ann (her schema with the user's table is kept, and so are
	// the live runs'), as the teacher and as the superuser (none of the
	// students' schemas is theirs)
	out, _ = cmd(0, "clean", "--dsn", annDSN, "--yes")
	if !strings.Contains(out, "schema "+annLedger+" — kept: it holds, or is depended on by, what lockstep did not make") ||
		strings.Contains(out, "removed schema "+annLedger) {
		t.Errorf("clean as ann:\n%s", out)
	}
	out, _ = cmd(0, "clean", "--dsn", annDSN, "--all-mine", "--yes")
	for _, want := range []string{"removed schema lsfx_keep", "removed schema lsfx_chaos", "removed schema lsfx_bench",
		"removed schema lsfx_reset", "removed schema lsfx_sc_kept",
		"schema lsfx_live — kept: a live run uses it", "schema lsfx_tui — kept: a live run uses it"} {
		if !strings.Contains(out, want) {
			t.Errorf("clean --all-mine as ann does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "lsfx_spec") {
		t.Errorf("spec left its empty schema lsfx_spec behind:\n%s", out)
	}
	for _, who := range []string{teacherDSN, superDSN} {
		out, _ = cmd(0, "clean", "--dsn", who, "--all-mine", "--yes")
		if strings.Contains(out, annLedger) || strings.Contains(out, "lsfx_") || strings.Contains(out, "bob_old") ||
			strings.Contains(out, bobLedger) || !strings.Contains(out, "nothing to remove") {
			t.Errorf("clean --all-mine as %s:\n%s", who, out)
		}
	}

	// A throwaway server's start clears its own dead temp dirs only.
	throwaway(t, tmp, func() { cmd(0, "reset") })

	ui.close()
	stopChaos()
	chaosDone.Wait()
	if after := dump(); after != beforeDump {
		t.Errorf("the user's database changed:\n%s", lineDiff(beforeDump, after))
	}
	if after := files(t, tmp); after != beforeFiles {
		t.Errorf("the temp dir's files changed:\nbefore:\n%s\nafter:\n%s", beforeFiles, after)
	}
}

func run(t *testing.T, conn *pgx.Conn, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func schemaExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// claimed says whether a lockstep run claims schema (ledger.Claim).
func claimed(t *testing.T, conn *pgx.Conn, schema string) bool {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = hashtext($1)::oid AND objid = 0 AND objsubid = 2 AND granted`, schema).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// waitFor waits until cond holds; the guard is against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// findPgDump finds pg_dump beside the server programs, where lockstep
// finds them (db.FindBinaries).
func findPgDump(t *testing.T) string {
	t.Helper()
	bins, err := db.FindBinaries()
	if err == nil {
		if p := filepath.Join(bins.Dir, "pg_dump"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no pg_dump beside the PostgreSQL server programs (.ci/run installs them)")
	}
	t.Skip("no pg_dump: install the PostgreSQL server package (postgresql-15)")
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// restrictLine is pg_dump's \restrict line, with a random key each time.
var restrictLine = regexp.MustCompile(`(?m)^\\(un)?restrict .*\n`)

// dumpUsers is pg_dump of everything in the database that is not
// lockstep's — every schema but the ones matching locksteps — and of the
// user's tables inside lockstep's schemas (data included).
func dumpUsers(t *testing.T, pgDump, dsn string, locksteps, usersInLocksteps []string) string {
	t.Helper()
	pg := func(args ...string) string {
		c := exec.Command(pgDump, append([]string{"--no-password", "--dbname=" + dsn}, args...)...)
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		if err := c.Run(); err != nil {
			t.Fatalf("pg_dump %s: %v: %s", strings.Join(args, " "), err, errOut.String())
		}
		return restrictLine.ReplaceAllString(out.String(), "")
	}
	var outside []string
	for _, s := range locksteps {
		outside = append(outside, "--exclude-schema="+s)
	}
	var inside []string
	for _, tbl := range usersInLocksteps {
		inside = append(inside, "--table="+tbl)
	}
	return pg(outside...) + "\n-- the user's tables in lockstep's schemas\n" + pg(inside...)
}

// files lists every file under dir with its contents.
func files(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		fmt.Fprintf(&b, "%s: %q %v\n", rel, data, err)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// throwaway runs f with the environment pointing lockstep at a throwaway
// server whose temp dirs go in tmp: no DATABASE_URL, no PG* variables.
func throwaway(t *testing.T, tmp string, f func()) {
	t.Helper()
	saved := map[string]*string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		if k == "DATABASE_URL" || strings.HasPrefix(k, "PG") || k == "TMPDIR" {
			saved[k] = &v
			os.Unsetenv(k)
		}
	}
	if _, ok := saved["TMPDIR"]; !ok {
		saved["TMPDIR"] = nil
	}
	os.Setenv("TMPDIR", tmp)
	defer func() {
		for k, v := range saved {
			if v == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *v)
			}
		}
	}()
	f()
}

// lineDiff shows the lines only one side has.
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		switch {
		case n > 0:
			out = append(out, "- "+l)
		case n < 0:
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}

// ui is the interface's model driven without a program, as its own tests
// drive it: Update is called here, commands run in goroutines and their
// messages come back in order of arrival.
type ui struct {
	t    *testing.T
	m    *tui.Model
	msgs chan tea.Msg
	done chan struct{}
}

func startInterface(t *testing.T, dsn, schema string) *ui {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{DSN: dsn, Schema: schema, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ledger.Lookup("for-update")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.Config{Ledger: ledger.New(), Strategy: s, Sessions: 2, Setup: ledger.DefaultSetup(), Poll: 50 * time.Millisecond}
	u := &ui{t: t, m: tui.New(ctx, tui.Options{DB: d, Config: cfg, Transfers: cfg, Server: d.Describe()}),
		msgs: make(chan tea.Msg, 64), done: make(chan struct{})}
	t.Cleanup(u.close)
	u.send(tea.WindowSizeMsg{Width: 300, Height: 60})
	u.do(u.m.Init())
	u.until("the interface's sessions are ready", "ready: ")
	return u
}

func (u *ui) do(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		select {
		case u.msgs <- msg:
		case <-u.done:
		}
	}()
}

func (u *ui) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
	case tea.BatchMsg:
		for _, c := range msg {
			u.do(c)
		}
	default:
		_, cmd := u.m.Update(msg)
		u.do(cmd)
	}
}

func (u *ui) press(key string) {
	u.send(tea.KeyPressMsg{Code: []rune(key)[0], Text: key})
}

func (u *ui) screen() string { return ansi.Strip(u.m.View().Content) }

// until feeds the model its messages until the screen shows want.
func (u *ui) until(what, want string) {
	u.t.Helper()
	guard := time.After(60 * time.Second)
	for !strings.Contains(strings.Join(strings.Fields(u.screen()), " "), want) {
		select {
		case msg := <-u.msgs:
			u.send(msg)
		case <-guard:
			u.t.Fatalf("never: %s (%q)\nscreen:\n%s", what, want, u.screen())
		}
	}
}

func (u *ui) close() {
	select {
	case <-u.done:
		return
	default:
	}
	close(u.done)
	u.m.Close()
}
