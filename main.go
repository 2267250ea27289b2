// Command lockstep makes PostgreSQL locking visible: it steps real sessions
// through a money transfer one statement at a time and shows their locks.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"lockstep/cli"
)

func main() {
	// Ctrl-C, SIGTERM and SIGHUP cancel the context; every command then rolls
	// back its sessions and stops the throwaway server before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := cli.Execute(ctx, nil, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err))
}
