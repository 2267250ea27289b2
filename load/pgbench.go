package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"lockstep/db"
	"lockstep/lazyre"
	"lockstep/ledger"
)

// pgbenchScript does what the ordered strategy does, in pgbench's language:
// a random transfer, the inserts, then both updates in ascending account id.
// Its variables are cast where the server could not tell their type from a
// parameter ($1 in -$1 is ambiguous), so that it runs with -M prepared too.
const pgbenchScript = `\set from random(1, :accounts)
\set to random(1, :accounts - 1)
\if :to >= :from
\set to :to + 1
\endif
\set cents random(1, 1000)
\set lo least(:from, :to)
\set hi greatest(:from, :to)
BEGIN;
INSERT INTO transfers (from_account_id, to_account_id, amount) VALUES (:from, :to, :cents::int / 100.0) RETURNING id \gset
INSERT INTO entries (transfer_id, account_id, amount) VALUES (:id, :from, -:cents::int / 100.0);
INSERT INTO entries (transfer_id, account_id, amount) VALUES (:id, :to, :cents::int / 100.0);
UPDATE accounts SET balance = balance + (CASE WHEN id = :from THEN -1 ELSE 1 END) * :cents::int / 100.0 WHERE id = :lo RETURNING balance;
UPDATE accounts SET balance = balance + (CASE WHEN id = :from THEN -1 ELSE 1 END) * :cents::int / 100.0 WHERE id = :hi RETURNING balance;
COMMIT;
`

// FindPgbench finds pgbench beside the server binaries or on PATH.
func FindPgbench() (string, error) {
	if b, err := db.FindBinaries(); err == nil {
		if p := filepath.Join(b.Dir, "pgbench"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", errors.New("pgbench not found (it ships with the PostgreSQL server package: apt-get install postgresql, brew install postgresql); run without --vs-pgbench")
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

var tpsRE = lazyre.New(`tps = ([0-9.]+) \((without|excluding)`)

// Pgbench runs pgbench with the ordered strategy's statements on a freshly
// reset ledger, with the same clients, accounts and duration, and returns
// its transfers per second. prepared runs it with -M prepared (each
// statement parsed and planned once per connection), pgbench's fastest
// mode; else with the simple query protocol, its default.
func Pgbench(ctx context.Context, pgbench string, d *db.Database, l *ledger.Ledger, workers, accounts int, duration time.Duration, prepared bool) (float64, error) {
	ctl, err := freshLedger(ctx, d, l, benchRun.AppName("control"), accounts)
	if err != nil {
		return 0, err
	}
	db.CloseConn(ctx, ctl)
	dir, err := os.MkdirTemp("", "lockstep-pgbench")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "ordered.sql")
	if err := os.WriteFile(script, []byte(pgbenchScript), 0o600); err != nil {
		return 0, err
	}
	cfg := d.ConnConfig(benchRun.AppName("pgbench"))
	secs := max(1, int(duration.Round(time.Second).Seconds()))
	mode := "simple"
	if prepared {
		mode = "prepared"
	}
	cmd := exec.CommandContext(ctx, pgbench, "-n", "-M", mode, "-c", strconv.Itoa(workers), "-j", strconv.Itoa(DriverThreads(workers)),
		"-T", strconv.Itoa(secs), "-D", "accounts="+strconv.Itoa(accounts), "-f", script,
		"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User, cfg.Database)
	// The password and the schema travel in the environment, not in argv.
	cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+d.Schema(), "PGAPPNAME=lockstep/bench/pgbench")
	if cfg.Password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+cfg.Password)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %w: %s", err, lastLines(string(out)))
	}
	return pgbenchTPS(string(out))
}

// ErrPgbenchIdle is a pgbench run that ended well but completed no
// transaction in its time (a loaded machine, a short -T): pgbench prints
// no rate then. The caller may leave the round out.
var ErrPgbenchIdle = errors.New("pgbench completed no transaction in its time")

var idleRE = lazyre.New(`(?m)^number of transactions actually processed: 0\b`)

// pgbenchTPS reads the rate from pgbench's report.
func pgbenchTPS(out string) (float64, error) {
	m := tpsRE.FindStringSubmatch(out)
	switch {
	case m == nil && idleRE.MatchString(out):
		return 0, ErrPgbenchIdle
	case m == nil:
		return 0, fmt.Errorf("pgbench printed no tps: %s", lastLines(out))
	}
	return strconv.ParseFloat(m[1], 64)
}

func lastLines(s string) string {
	if len(s) > 400 {
		s = s[len(s)-400:]
	}
	return s
}
