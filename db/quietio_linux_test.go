package db_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
)

// TestQuietIOKeepsTheConnectionsWhole: with QuietIO, a connection's socket
// is read and written with raw system calls; everything a connection does
// still works as over net.Conn — a result larger than the socket's buffer
// (reads that wait for the poller), a statement larger than it (writes
// that wait for room), a context that ends a statement (the poller's
// deadline), an error, and the socket itself for whoever asks for it
// (Engine.Unread counts its unread bytes).
func TestQuietIOKeepsTheConnectionsWhole(t *testing.T) {
	t.Parallel()
	dsn := dbtest.DSN(t)
	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		quietIOWhole(t, dbtest.TCPDSN(t, dsn), "*db.quietConn")
	})
	t.Run("unix", func(t *testing.T) {
		t.Parallel()
		sock := dbtest.UnixDSN(t, dsn)
		quietIOWhole(t, sock, "*db.quietUnix")
	})
}

func quietIOWhole(t *testing.T, dsn, want string) {
	ctx := context.Background()
	d, err := db.Open(ctx, db.Options{DSN: dsn, LookupEnv: noEnv, QuietIO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	conn, err := d.WithoutSchema().Connect(ctx, db.AppName("test-quietio"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	nc := conn.PgConn().Conn()
	if t2, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS
		nc = t2.NetConn()
	}
	if got := fmt.Sprintf("%T", nc); got != want {
		t.Fatalf("the connection's socket is a %s; want %s", got, want)
	}
	if _, ok := nc.(syscall.Conn); !ok {
		t.Fatalf("the quiet socket %T does not give its syscall.Conn", nc)
	}
	var n, total int64
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(length(s)) FROM (SELECT repeat('x', 100) || g AS s FROM generate_series(1, 50000) g) t").Scan(&n, &total); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT repeat('x', 100) || g FROM generate_series(1, 50000) g")
	if err != nil {
		t.Fatal(err)
	}
	var got, bytes int64
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got++
		bytes += int64(len(s))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got != n || bytes != total {
		t.Fatalf("read %d rows, %d bytes over the quiet socket; the server sent %d, %d", got, bytes, n, total)
	}

	big := strings.Repeat("y", 4<<20)
	var length int
	if err := conn.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&length); err != nil {
		t.Fatal(err)
	}
	if length != len(big) {
		t.Fatalf("the server read %d bytes of a %d-byte parameter", length, len(big))
	}

	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = conn.Exec(tctx, "SELECT pg_sleep(30)")
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a statement past its context's deadline: %v; want the deadline", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the statement past its deadline took %s to end", took)
	}

	// A new connection (the last one was cut at its deadline) reports a
	// server error as ever.
	conn2, err := d.WithoutSchema().Connect(ctx, db.AppName("test-quietio"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if _, err := conn2.Exec(ctx, "SELECT 1/0"); db.SQLState(err) != "22012" {
		t.Fatalf("1/0 over the quiet socket: %v; want SQLSTATE 22012", err)
	}
	var one int
	if err := conn2.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 after an error: %d, %v", one, err)
	}
}
