// Command lockstep makes PostgreSQL locking visible: it steps real sessions
// through a money transfer one statement at a time and shows their locks.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/charmbracelet/x/term"

	"lockstep/cli"
	"lockstep/db"
	_ "lockstep/onethread" // `lockstep spec` on one thread from the start
)

func main() {
	// Ctrl-C, SIGTERM and SIGHUP cancel the context; every command then rolls
	// back its sessions and stops the throwaway server before returning,
	// within 2 s (db.Cleanup). A second Ctrl-C or SIGTERM does not wait for
	// that; a SIGHUP is no hurry (a terminal that closes sends its own).
	ctx, cancel := context.WithCancel(context.Background())
	ctx = db.WithEndTime(ctx)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	restore := terminalRestorer()
	go func() {
		<-signals
		cancel()
		for sig := range signals {
			if sig != syscall.SIGHUP {
				exitNow(restore)
			}
		}
	}()
	err := cli.Execute(ctx, nil, os.Stdout, os.Stderr)
	signal.Stop(signals)
	os.Exit(cli.ExitCode(err))
}

// exitNow ends lockstep at once, on a second signal: it kills what it
// started (its throwaway server and pooler, deleting their dirs), gives the
// terminal back as it found it, and exits with 1. The sessions' connections
// close as the process ends; the server rolls back their transactions when
// it finds them gone.
func exitNow(restore func()) {
	db.Abandon()
	restore()
	fmt.Fprintln(os.Stderr, "lockstep: a second signal: ended at once, without waiting for the clean-up")
	os.Exit(cli.ExitFailure)
}

// terminalRestorer saves the terminal's mode, if standard input is one, and
// returns what puts it back: the interface may hold it raw, in the
// alternate screen, with the cursor hidden.
func terminalRestorer() func() {
	fd := os.Stdin.Fd()
	state, err := term.GetState(fd)
	if err != nil {
		return func() {}
	}
	return func() {
		_ = term.Restore(fd, state)
		if term.IsTerminal(os.Stdout.Fd()) {
			// Leave the alternate screen, show the cursor, end mouse and
			// bracketed-paste modes: harmless where they were not on.
			fmt.Fprint(os.Stdout, "\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l")
		}
	}
}
