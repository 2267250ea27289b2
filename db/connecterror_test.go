package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// timeoutErr is a connection attempt that timed out, as net reports one.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestConnectErrorAdviceFitsTheSource: the advice to use a throwaway server
// names what to leave out — --dsn, DATABASE_URL, the PG* variables, --dsn2 —
// and is never given for the throwaway server itself (a sweep saw "omit
// --dsn to use a throwaway server" for a connection to the throwaway
// server, started with no --dsn).
func TestConnectErrorAdviceFitsTheSource(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://bob:s3cret@127.0.0.1:1/x?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, refused := pgx.ConnectConfig(ctx, cfg)
	if refused == nil {
		t.Fatal("a connection to port 1 succeeded")
	}
	timedOut := fmt.Errorf("dial: %w", timeoutErr{})
	cases := []struct {
		source    string
		want, not []string
	}{
		{"--dsn", []string{"omit --dsn to use a throwaway server"}, nil},
		{"DATABASE_URL", []string{"unset DATABASE_URL to use a throwaway server"}, []string{"--dsn"}},
		{"PG* environment", []string{"unset the PG* variables to use a throwaway server"}, []string{"--dsn"}},
		{"--dsn2", []string{"omit --dsn2: lockstep then creates lockstep_b"}, []string{"omit --dsn "}},
		{"throwaway", []string{"the throwaway PostgreSQL lockstep started"}, []string{"omit", "--dsn", "to use a throwaway server"}},
	}
	for _, c := range cases {
		for what, cause := range map[string]error{"refused": refused, "timed out": timedOut} {
			msg := explainConnectError(cfg, c.source, cause).Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s, %s: %q lacks %q", c.source, what, msg, w)
				}
			}
			for _, n := range c.not {
				if strings.Contains(msg, n) {
					t.Errorf("%s, %s: %q says %q", c.source, what, msg, n)
				}
			}
			if strings.Contains(msg, "s3cret") {
				t.Errorf("%s, %s: the password leaks: %q", c.source, what, msg)
			}
		}
	}
	var ne interface{ Timeout() bool }
	if !errors.As(timedOut, &ne) {
		t.Fatal("the timeout is not a net.Error")
	}
}
