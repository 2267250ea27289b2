package dbtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// UnixDSN is dsn through the server's Unix socket, when it has one here;
// the test is skipped when that socket is not on this machine (a server
// reached over the network).
func UnixDSN(tb testing.TB, dsn string) string {
	tb.Helper()
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	if strings.HasPrefix(cfg.Host, "/") {
		return dsn
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	var dirs string
	var port int
	if err := conn.QueryRow(ctx, "SELECT current_setting('unix_socket_directories'), current_setting('port')::int").Scan(&dirs, &port); err != nil {
		tb.Fatal(err)
	}
	dir, _, _ := strings.Cut(dirs, ",")
	dir = strings.TrimSpace(dir)
	if _, err := os.Stat(fmt.Sprintf("%s/.s.PGSQL.%d", dir, port)); err != nil {
		tb.Skipf("the server's Unix socket is not here (%v)", err)
	}
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d", url.PathEscape(cfg.User), url.PathEscape(cfg.Database), url.QueryEscape(dir), port)
}

// TCPDSN is dsn over TCP: as it is when it names a host, else through a
// loopback listener of the test's own that relays each connection to the
// Unix socket dsn names (the throwaway server listens on no TCP port).
func TCPDSN(tb testing.TB, dsn string) string {
	tb.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.HasPrefix(cfg.Host, "/") {
		return dsn
	}
	sock := fmt.Sprintf("%s/.s.PGSQL.%d", cfg.Host, cfg.Port)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				s, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c); s.Close() }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.PathEscape(cfg.User), port, url.PathEscape(cfg.Database))
}
