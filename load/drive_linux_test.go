package load

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"lockstep/db"
	"lockstep/dbtest"
)

// answer waits for the answer to what d has sent, as drive does.
func (d *driven) answer(t *testing.T) (row []any, txStatus byte, err error) {
	t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if err := d.flush(); err != nil {
			t.Fatal(err)
		}
		fds := []unix.PollFd{{Fd: int32(d.sock.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, 1000); err != nil && !errors.Is(err, unix.EINTR) {
			t.Fatal(err)
		}
		n, rerr := unix.Read(d.sock.fd, buf)
		if errors.Is(rerr, unix.EAGAIN) || errors.Is(rerr, unix.EINTR) {
			continue
		}
		if rerr != nil || n == 0 {
			t.Fatalf("the connection is lost: %v", rerr)
		}
		d.in = append(d.in, buf[:n]...)
		status, answered, perr := d.parse()
		if perr != nil {
			t.Fatal(perr)
		}
		if answered {
			r := d.results[len(d.results)-1]
			return r.row, status, r.err
		}
	}
	t.Fatal("no answer within a minute")
	return nil, 0, nil
}

// TestDrivenPrepares checks the driven connection's statement cache
// against the server: a statement is prepared once and bound after; one
// whose Parse the server refused is not taken as prepared, and is parsed
// again (not bound to a name the server does not have) when it comes back;
// one whose Parse succeeded but whose execution failed stays prepared.
func TestDrivenPrepares(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d0 := dbtest.Schema(t)
	conn, err := d0.Connect(ctx, "lockstep/test/driven")
	if err != nil {
		t.Fatal(err)
	}
	socks, err := takeSockets(ctx, []*pgx.Conn{conn})
	if err != nil {
		t.Fatal(err)
	}
	if socks == nil {
		t.Skip("the test server's connection cannot be driven (TLS)")
	}
	defer socks[0].close()
	d := &driven{sock: socks[0]}
	prepared := func() string {
		t.Helper()
		d.send("SELECT coalesce(string_agg(name || ': ' || statement, '; ' ORDER BY name), '') FROM pg_prepared_statements")
		row, _, err := d.answer(t)
		if err != nil || len(row) != 1 {
			t.Fatalf("reading pg_prepared_statements: %v %v", row, err)
		}
		return row[0].(string)
	}
	run := func(text string, args ...string) ([]any, error) {
		t.Helper()
		d.sendPrepared(text, args)
		row, status, err := d.answer(t)
		if status != 'I' {
			t.Fatalf("%s: transaction status %c after Sync, want I", text, status)
		}
		return row, err
	}

	const missing = "SELECT count(*) FROM lockstep_not_yet WHERE n > $1::int"
	for range 2 {
		if _, err := run(missing, "0"); db.SQLState(err) != "42P01" {
			t.Fatalf("%s: %v, want 42P01 (undefined table) from its Parse", missing, err)
		}
		if got := prepared(); got != "" {
			t.Fatalf("after a refused Parse, prepared: %q", got)
		}
	}
	for _, sql := range []string{"CREATE TEMP TABLE lockstep_not_yet (n int)", "INSERT INTO lockstep_not_yet VALUES (1), (2), (3)"} {
		d.send(sql)
		if _, _, err := d.answer(t); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ arg, want string }{{"0", "3"}, {"1", "2"}, {"2", "1"}} {
		row, err := run(missing, c.arg)
		if err != nil || len(row) != 1 || row[0] != c.want {
			t.Fatalf("%s with %s: %v %v, want %s", missing, c.arg, row, err, c.want)
		}
	}
	want := "lockstep_1: " + missing
	if got := prepared(); got != want {
		t.Fatalf("prepared: %q, want %q (one statement, prepared once)", got, want)
	}

	const divide = "SELECT 12 / $1::int"
	if _, err := run(divide, "0"); db.SQLState(err) != "22012" {
		t.Fatalf("%s with 0: %v, want 22012 (division by zero) from its Execute", divide, err)
	}
	if row, err := run(divide, "4"); err != nil || len(row) != 1 || row[0] != "3" {
		t.Fatalf("%s with 4: %v %v, want 3", divide, row, err)
	}
	want += "; lockstep_2: " + divide
	if got := prepared(); got != want {
		t.Fatalf("prepared: %q, want %q", got, want)
	}
}
