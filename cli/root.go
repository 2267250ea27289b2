// Package cli is lockstep's command line: flags → a config → the engine →
// a view (the interface, a transcript, the isolation tester's output), for
// the root command and each subcommand; and how errors become exit codes.
// It names the flags in what it reports; the packages below name the
// settings.
package cli

import (
	"context"
	"errors"
	"fmt"
	"github.com/jackc/pgerrcode"
	"io"
	"os"
	"strings"
	"time"

	"charm.land/fang/v2"
	"github.com/spf13/cobra"

	"lockstep/db"
	"lockstep/ledger"
)

// Version is lockstep's version, shown by --version.
const Version = "0.1.0"

// Exit codes.
const (
	ExitOK       = 0
	ExitFailure  = 1 // the run failed, or (chaos) the books are broken
	ExitBadInput = 2 // bad flags, bad DSN, no server: the user must change something
)

// ExitError carries an exit code with the error to print.
type ExitError struct {
	Code int
	Err  error
	// Said marks an error already reported in full on the way (the
	// isolation tester's own words for a failed setup): nothing more is
	// printed.
	Said bool
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// badInput marks err as the user's to fix: exit code 2.
func badInput(err error) error {
	if err == nil {
		return nil
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: ExitBadInput, Err: err}
}

// ExitCode maps an error returned by Execute to the process's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	if refusal(err) {
		return ExitBadInput
	}
	return ExitFailure
}

// refusal says whether err is lockstep refusing to touch what is not its
// own — a schema it did not make, another role's, a live run's, one that
// objects it did not make depend on — from whichever command: the user
// must choose another schema, or change what is in the way.
func refusal(err error) bool {
	for _, kind := range []error{ledger.ErrUnmarkedSchema, ledger.ErrSchemaNotYours, ledger.ErrSchemaInUse, ledger.ErrNotLocksteps} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// app is what every command shares: the ledger and the global flags.
type app struct {
	ledger          *ledger.Ledger
	dsn             string
	dsn2            string
	schema          string
	deadlockTimeout time.Duration
	// keepCheck keeps the connection that checks the server for the run to
	// take (db.Options.KeepCheck).
	keepCheck bool
	// quietIO reads and writes the sockets without waking the scheduler's
	// monitor thread (db.Options.QuietIO).
	quietIO        bool
	theme          string
	recordTo       string    // the interface's --record
	maxConnections int       // the throwaway server's max_connections; 0 is db's default (serve needs more)
	stderr         io.Writer // for progress lines, such as a first start's template
	fetchPostgres  string    // --fetch-postgres: the version to fetch and start
	offline        bool      // --offline: never fetch PostgreSQL
	// untilSignal marks a command that runs until a signal ends it (db):
	// its signal is no interruption.
	untilSignal bool
}

// Execute builds the root command and runs it with args (os.Args[1:] when nil).
func Execute(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a := &app{ledger: ledger.New(), stderr: stderr}
	root := a.rootCommand()
	if args != nil {
		root.SetArgs(args)
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := fang.Execute(ctx, root,
		fang.WithVersion(Version),
		fang.WithoutManpage(),
		fang.WithErrorHandler(func(w io.Writer, _ fang.Styles, err error) {
			// One line: what is wrong and how to fix it. No usage dump.
			if endedBySignal(ctx, err) {
				fmt.Fprintln(w, interrupted)
				return
			}
			if ee := (*ExitError)(nil); errors.As(err, &ee) && ee.Said {
				return
			}
			fmt.Fprintf(w, "lockstep: %v\n", err)
		}),
	)
	if ctx.Err() != nil && !a.untilSignal && (err == nil || endedBySignal(ctx, err)) {
		// A signal ended the command — one that ends by itself otherwise (a
		// watch, the interface), or one it cut short, whatever it was
		// doing (connecting, say): it cleaned up before returning, and
		// exits 1.
		if err == nil {
			fmt.Fprintln(stderr, interrupted)
		}
		return &ExitError{Code: ExitFailure, Err: context.Cause(ctx), Said: true}
	}
	return err
}

// endedBySignal says whether err is the signal's doing: ctx ended, and err
// is its cancellation — or the server's 57014 for the query pgx cancelled
// with it, when the server's answer came before pgx saw ctx end.
func endedBySignal(ctx context.Context, err error) bool {
	return ctx.Err() != nil && (errors.Is(err, context.Canceled) || db.SQLState(err) == pgerrcode.QueryCanceled)
}

// interrupted is what a command ended by a signal says, once it has
// cleaned up.
const interrupted = "lockstep: interrupted; open transactions rolled back, connections closed"

func (a *app) rootCommand() *cobra.Command {
	var (
		tuiFlags runFlags
		scenario scenarioFlags
		poolF    poolFlags
	)
	root := &cobra.Command{
		Use:   "lockstep",
		Short: "Step real PostgreSQL sessions through a money transfer and watch their locks",
		Long: "lockstep steps two or more real PostgreSQL sessions through a money transfer one statement at a time\n" +
			"and shows which locks each holds, who waits for whom and why, and how deadlocks form and are broken.\n\n" +
			"With no --dsn, DATABASE_URL or PG* variables it starts a private throwaway PostgreSQL from the\n" +
			"server binaries on this machine — or, with none, from PostgreSQL fetched once into its cache — and\n" +
			"deletes it on exit.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput(fmt.Errorf("unknown command %q; see lockstep --help", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runTUI(cmd, &tuiFlags, &scenario, &poolF)
		},
	}
	tuiFlags.register(root, "for-update")
	root.Flags().StringVar(&a.recordTo, "record", "", "write the run to this file as it happens (lockstep replay FILE plays it back)")
	root.Flags().StringVar(&a.theme, "theme", os.Getenv("LOCKSTEP_THEME"), "default, or projector: high contrast on a black screen, for a classroom (also LOCKSTEP_THEME)")
	scenario.register(root)
	poolF.register(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return badInput(fmt.Errorf("%w; see --help", err))
	})
	pf := root.PersistentFlags()
	pf.StringVar(&a.dsn, "dsn", "", "PostgreSQL connection string (default: DATABASE_URL, then PG* variables, else a throwaway server)")
	pf.StringVar(&a.dsn2, "dsn2", "", "the second database of a two-database scenario such as coupled (default: database "+db.SecondName+" beside the first, created if missing)")
	pf.StringVar(&a.schema, "schema", "", "schema the ledger lives in (default: lockstep on the throwaway server, lockstep_<your login> on a server you name, so a class can share one)")
	pf.DurationVar(&a.deadlockTimeout, "deadlock-timeout", time.Second, "deadlock_timeout of the throwaway server")
	pf.StringVar(&a.fetchPostgres, "fetch-postgres", os.Getenv("LOCKSTEP_FETCH_POSTGRES"), "start the throwaway server from this PostgreSQL version (17, or 17.5.0), fetched once into lockstep's cache (also LOCKSTEP_FETCH_POSTGRES; default: the installed server, fetched only when there is none)")
	pf.BoolVar(&a.offline, "offline", false, "never fetch PostgreSQL: use the installed server binaries or those fetched before")
	root.AddCommand(a.dbCommand(), a.resetCommand(), a.strategiesCommand(), a.runCommand(), a.chaosCommand(), a.benchCommand(), a.workerCommand(), a.specCommand(), a.scenariosCommand(), a.cleanCommand(), a.classCommand(), a.watchCommand(), a.replayCommand(), a.exportCommand(), a.serveCommand(), a.learnCommand())
	root.InitDefaultCompletionCmd()
	usageErrors(root)
	return root
}

// usageErrors makes a wrong number of arguments, to any command, bad input
// (exit code 2) in one line that says what the command takes.
func usageErrors(c *cobra.Command) {
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			var ee *ExitError
			switch {
			case err == nil || errors.As(err, &ee):
				return err
			case strings.HasPrefix(err.Error(), "unknown command"):
				return badInput(fmt.Errorf("%s takes no arguments, got %q; see %s --help", cmd.CommandPath(), args[0], cmd.CommandPath()))
			}
			return badInput(fmt.Errorf("usage: %s %s (%w); see %s --help", cmd.CommandPath(), strings.TrimSpace(cmd.Use[len(cmd.Name()):]), err, cmd.CommandPath()))
		}
	}
	for _, sub := range c.Commands() {
		usageErrors(sub)
	}
}

// open gets the database the flags and environment name. Every failure here
// is the user's to fix (bad DSN, no server, wrong password): exit code 2.
func (a *app) open(ctx context.Context) (*db.Database, error) {
	return a.openWith(ctx, nil)
}

// openWith is open with the environment read through lookupEnv (nil: the process's).
func (a *app) openWith(ctx context.Context, lookupEnv func(string) (string, bool)) (*db.Database, error) {
	if a.deadlockTimeout <= 0 {
		return nil, badInput(fmt.Errorf("--deadlock-timeout %s: must be positive", a.deadlockTimeout))
	}
	if a.fetchPostgres != "" {
		if err := db.ValidateFetchVersion(a.fetchPostgres); err != nil {
			return nil, badInput(err)
		}
	}
	d, err := db.Open(ctx, db.Options{
		DSN:    a.dsn,
		Schema: a.schema,
		Server: db.ServerOptions{DeadlockTimeout: a.deadlockTimeout, MaxConnections: a.maxConnections, Progress: func(msg string) {
			fmt.Fprintf(a.stderr, "lockstep: %s\n", msg)
		}, Fetch: a.fetchOptions()},
		LookupEnv: lookupEnv,
		KeepCheck: a.keepCheck,
		QuietIO:   a.quietIO,
	})
	if err != nil && errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil, err // a signal, not bad input (a fetch or a start interrupted)
	}
	if err != nil {
		return nil, badInput(err)
	}
	return d, nil
}
