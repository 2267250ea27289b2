// Command plain-pgconn is an anchor for `lockstep spec` at specs whose
// steps never wait: it plays a spec's permutations as PostgreSQL's
// isolation tester does (setup, each session's setup, the steps, each
// session's teardown, teardown) with nothing around the statements — each
// sent with pgx's pgconn as it comes, its result read on the one goroutine,
// printed in the tester's format. What it costs is what a plain Go program
// on pgconn costs for those statements, with none of lockstep's engine
// (sessions' workers, events, the player) and none of its savings (db's
// sockets, its GC setting). It is called as the tester is, so that
// scripts/isolation-suite --vs compares lockstep with it, and --tester
// compares it with the tester:
//
//	plain-pgconn DSN < SPEC
//
// A step that waits for a lock hangs it until its statement's time runs
// out (30 s): it knows nothing of waits, only of statements.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/isolation"
	"lockstep/scenario"
)

func main() {
	// One statement at a time: one scheduler thread, as lockstep spec and
	// the tester run (a second one only adds wake-ups).
	runtime.GOMAXPROCS(1)
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: plain-pgconn DSN < SPEC")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "plain-pgconn:", err)
		os.Exit(1)
	}
}

func run(dsn string, in io.Reader, stdout io.Writer) error {
	src, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading the spec: %w", err)
	}
	spec, err := scenario.Parse("stdin", src)
	if err != nil {
		return err
	}
	ctx := context.Background()
	conns := make([]*pgconn.PgConn, len(spec.Sessions)+1) // 0: setup and teardown
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close(ctx)
			}
		}
	}()
	for i := range conns {
		if conns[i], err = pgconn.Connect(ctx, dsn); err != nil {
			return fmt.Errorf("connecting: %w", err)
		}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	fmt.Fprintf(out, "Parsed test spec with %d sessions\n", len(spec.Sessions))
	for perm := range spec.RunPermutations() {
		names := make([]string, len(perm.Steps))
		for i, ps := range perm.Steps {
			names[i] = ps.Step.Name
		}
		fmt.Fprintf(out, "\nstarting permutation: %s\n", strings.Join(names, " "))
		for _, sql := range spec.Setup {
			if err := exec(ctx, out, conns[0], sql); err != nil {
				return fmt.Errorf("setup: %w", err)
			}
		}
		for i, s := range spec.Sessions {
			if s.Setup != "" {
				if err := exec(ctx, out, conns[i+1], s.Setup); err != nil {
					return fmt.Errorf("setup of session %s: %w", s.Name, err)
				}
			}
		}
		for _, ps := range perm.Steps {
			out.WriteString("step " + ps.Step.Name + ": " + ps.Step.SQL + "\n")
			if err := exec(ctx, out, conns[sessionOf(spec, ps.Step)], ps.Step.SQL); err != nil {
				return fmt.Errorf("step %s: %w", ps.Step.Name, err)
			}
		}
		for i, s := range spec.Sessions {
			if s.Teardown != "" {
				if err := exec(ctx, out, conns[i+1], s.Teardown); err != nil {
					return fmt.Errorf("teardown of session %s: %w", s.Name, err)
				}
			}
		}
		if spec.Teardown != "" {
			if err := exec(ctx, out, conns[0], spec.Teardown); err != nil {
				return fmt.Errorf("teardown: %w", err)
			}
		}
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// sessionOf is the connection of a step's session (1 for the first).
func sessionOf(spec *scenario.Spec, st *scenario.Step) int {
	for i, s := range spec.Sessions {
		if s == st.Session {
			return i + 1
		}
	}
	return 0
}

// exec runs sql and prints its result sets, and a server's error as the
// tester prints one (severity and message); anything else is returned.
func exec(ctx context.Context, out io.Writer, c *pgconn.PgConn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results, err := c.Exec(ctx, sql).ReadAll()
	for _, r := range results {
		if len(r.FieldDescriptions) == 0 {
			continue
		}
		cols := make([]string, len(r.FieldDescriptions))
		for i, f := range r.FieldDescriptions {
			cols[i] = f.Name
		}
		rows := make([][]string, len(r.Rows))
		nulls := make([][]bool, len(r.Rows))
		for i, row := range r.Rows {
			rows[i], nulls[i] = make([]string, len(row)), make([]bool, len(row))
			for j, v := range row {
				rows[i][j], nulls[i][j] = string(v), v == nil
			}
		}
		isolation.WriteResultSet(out, cols, rows, nulls)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		fmt.Fprintf(out, "%s:  %s\n", pgErr.Severity, pgErr.Message)
		return nil
	}
	return err
}
