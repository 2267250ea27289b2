package isolation_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/isolation"
	"lockstep/scenario"
)

// TestQuietIOOverAUnixSocket plays specs with waits, notices and
// notifications as lockstep spec does — its sockets read and written raw,
// a Unix socket waited on for reading only (db.Options.QuietIO) — and
// compares with the tester's output. Under -race it also checks that the
// player asking how much a session's socket holds (Engine.Unread) while
// the session's worker runs its statement is no data race.
func TestQuietIOOverAUnixSocket(t *testing.T) {
	ctx := db.WithEndTime(context.Background()) // a command's, as spec gives its run
	dsn := dbtest.UnixDSN(t, dbtest.DSN(t))
	d, err := db.Open(ctx, db.Options{DSN: dsn, QuietIO: true, LookupEnv: func(string) (string, bool) { return "", false }})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, name := range []string{"ls-notice-wait", "ls-plain-wait", "ls-soft-deadlock", "ls-notify"} {
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(filepath.Join("testdata", name+".out"))
			if err != nil {
				t.Fatal(err)
			}
			src, err := os.ReadFile(filepath.Join("testdata", name+".spec"))
			if err != nil {
				t.Fatal(err)
			}
			s, err := scenario.Parse(name+".spec", src)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			r := &isolation.Runner{DB: d, Out: &got, RunID: db.RunID("quiet-" + name), StuckAfter: 2 * time.Second,
				AppName: "isolation/" + name, Schema: dbtest.SchemaOn(t, d).Schema()}
			if err := r.Run(ctx, s, 0); err != nil && !errors.Is(err, isolation.ErrStuck) {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("output differs from testdata/%s.out:\n--- want\n%s\n--- got\n%s", name, want, got.String())
			}
		})
	}
}
