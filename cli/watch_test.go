package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"lockstep/cli"
	"lockstep/dbtest"
)

// A signal ends watch and class within 2 s wherever it falls — mid-look
// too: looks every 10 ms, a wait to look at, the signal after a
// random few.
func TestWatchAndClassEndOnSignal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	app := fmt.Sprintf("clisignal%d_%d", os.Getpid(), schemaSeq.Add(1))
	conn := func(n string) *pgx.Conn {
		cfg, err := pgx.ParseConfig(dbtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.RuntimeParams["application_name"] = app + "_" + n
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := conn("a"), conn("b")
	if _, err := a.Exec(ctx, "BEGIN; SELECT pg_advisory_xact_lock(29, 29)"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := b.Exec(ctx, "SELECT pg_advisory_xact_lock(29, 29)"); done <- err }()
	for try := range 12 {
		args := []string{"watch", "--dsn", dbtest.DSN(t), "--app", app + "_%", "--poll", "10ms", "--json"}
		if try%3 == 2 {
			args = []string{"class", "--dsn", dbtest.DSN(t), "--every", "10ms"}
		}
		cctx, cancel := context.WithCancel(ctx)
		ended := make(chan time.Time, 1)
		var out, errOut bytes.Buffer
		go func() {
			// Ended by a signal, a command says so and exits 1.
			err := cli.Execute(cctx, args, &out, &errOut)
			if code := cli.ExitCode(err); code > 1 || (code == 1 && !strings.Contains(errOut.String(), "interrupted")) {
				t.Errorf("%v: exit %d: %v %s", args[0], code, err, errOut.String())
			}
			ended <- time.Now()
		}()
		time.Sleep(time.Duration(50+try*7) * time.Millisecond)
		cancel()
		signalled := time.Now()
		select {
		case at := <-ended:
			if d := at.Sub(signalled); d > 2*time.Second {
				t.Errorf("%s ended %s after the signal", args[0], d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still running 5 s after the signal", args[0])
		}
	}
	if _, err := a.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
