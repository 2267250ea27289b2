package isolation_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/isolation"
	"lockstep/scenario"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// TestExpectedOutputs runs every testdata spec that has an expected output
// beside it (NAME.out) on the real server and compares byte for byte: its
// standard output and error together, as pg_isolation_regress records them,
// and its standard error alone against NAME.stderr where the tester wrote
// there. The specs are lockstep's own; every expected file was written by
// PostgreSQL's isolationtester 15 (scripts/isolation-expected), so each pins
// one rule of the tester: empty results, notices of a waiting step,
// LISTEN/NOTIFY, a parallel leader's wait, a block by a prepared
// transaction, unused steps, session names, a terminated backend, deadlocks
// hard and soft, every interleaving, libpq's words for an error and a
// notice, a failed setup or teardown, a transaction left open.
func TestExpectedOutputs(t *testing.T) {
	outs, _ := filepath.Glob("testdata/*.out")
	if len(outs) < 3 {
		t.Fatalf("only %d expected outputs", len(outs))
	}
	for _, out := range outs {
		name := strings.TrimSuffix(filepath.Base(out), ".out")
		t.Run(name, func(t *testing.T) {
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			wantErr, err := os.ReadFile(strings.TrimSuffix(out, ".out") + ".stderr")
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
			var s *scenario.Spec
			if builtin, ok := strings.CutPrefix(name, "builtin-"); ok {
				s, err = scenario.LoadBuiltin(builtin, "")
			} else {
				var src []byte
				if src, err = os.ReadFile(filepath.Join("testdata", name+".spec")); err == nil {
					s, err = scenario.Parse(name+".spec", src)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, gotErr bytes.Buffer
			d := dbtest.DB(t)
			if strings.Contains(name, "prepared") {
				d = dbtest.TwoPhase(t)
			}
			r := &isolation.Runner{DB: d, Out: &got, Err: io.MultiWriter(&got, &gotErr), RunID: db.RunID("spec-" + name),
				StuckAfter: 2 * time.Second, // the command line's default
				AppName:    "isolation/" + name,
				// Each spec's tables go in a schema of its own, dropped at
				// the end: a failed setup leaves them, as the tester does.
				Schema: dbtest.SchemaOn(t, d).Schema()}
			err = r.Run(db.WithEndTime(context.Background()), s, 0)
			if err != nil && !errors.Is(err, isolation.ErrStuck) && !errors.Is(err, isolation.ErrSetupFailed) {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("output differs from %s:\n--- want\n%s\n--- got\n%s", out, want, got.String())
			}
			if wantErr != nil && !bytes.Equal(gotErr.Bytes(), wantErr) {
				t.Errorf("standard error differs from the tester's:\n--- want\n%s\n--- got\n%s", wantErr, gotErr.String())
			}
		})
	}
}

// TestBuiltinOutcomes runs every built-in scenario that takes an isolation
// level at each level and checks the outcome its header states: whether the
// anomaly shows in the data (its last step, "anomaly", says so), and whether
// PostgreSQL prevented it by a wait or a serialization failure.
func TestBuiltinOutcomes(t *testing.T) {
	checked := 0
	for _, b := range scenario.Builtins() {
		if b.Summary == "" {
			t.Errorf("%s has no summary", b.Name)
		}
		if !b.TakesIsolation() {
			continue
		}
		for _, level := range scenario.IsolationLevels() {
			want, ok := b.Outcomes[level]
			if !ok {
				t.Errorf("%s states no outcome at %s", b.Name, level)
				continue
			}
			t.Run(b.Name+"/"+level, func(t *testing.T) {
				s, err := scenario.LoadBuiltin(b.Name, level)
				if err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				r := &isolation.Runner{DB: dbtest.DB(t), Out: &out, RunID: "builtin", StuckAfter: time.Second}
				if err := r.Run(db.WithEndTime(context.Background()), s, 0); err != nil {
					t.Fatal(err)
				}
				text := out.String()
				i := strings.LastIndex(text, "step anomaly:")
				if i < 0 {
					t.Fatalf("no anomaly step in:\n%s", text)
				}
				sawAnomaly := strings.Contains(text[i:], "\nt      \n") || strings.Contains(text[i:], "\nt\n")
				if got := strings.HasPrefix(want, "anomaly"); got != sawAnomaly {
					t.Errorf("stated %q, but the anomaly showed: %v\n%s", want, sawAnomaly, text)
				}
				if strings.Contains(want, "serialization failure") != strings.Contains(text, "ERROR:  could not serialize access") {
					t.Errorf("stated %q:\n%s", want, text)
				}
				if strings.Contains(want, "waits") && !strings.Contains(text, "<waiting ...>") {
					t.Errorf("stated %q, but nothing waited:\n%s", want, text)
				}
			})
			checked++
		}
	}
	if checked < 18 {
		t.Errorf("only %d scenario × level outcomes checked", checked)
	}
}

// TestTeardownWaitsForOpenTransaction: a session left inside a transaction
// that holds a lock the teardown needs. The isolation tester waits for ever
// there; lockstep, once the server says the teardown waits for that session
// (after --stuck-after), says so, rolls the session back, and goes on.
func TestTeardownWaitsForOpenTransaction(t *testing.T) {
	src := `setup { CREATE TABLE ls_kept (i int); }
teardown { DROP TABLE ls_kept; }
session s1
step s1_begin { BEGIN; }
step s1_read { SELECT count(*) AS n FROM ls_kept; }
permutation s1_begin s1_read
permutation s1_read
`
	s, err := scenario.Parse("kept.spec", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.DB(t)
	var out bytes.Buffer
	r := &isolation.Runner{DB: d, Out: &out, RunID: "spec-kept", StuckAfter: 500 * time.Millisecond, Schema: dbtest.SchemaOn(t, d).Schema()}
	if err := r.Run(db.WithEndTime(context.Background()), s, 0); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	want := `Parsed test spec with 1 sessions

starting permutation: s1_begin s1_read
step s1_begin: BEGIN;
step s1_read: SELECT count(*) AS n FROM ls_kept;
n
-
0
(1 row)

lockstep: the teardown waits for session s1, which the permutation left inside a transaction that nothing will end: rolling it back

starting permutation: s1_read
step s1_read: SELECT count(*) AS n FROM ls_kept;
n
-
0
(1 row)

`
	if out.String() != want {
		t.Errorf("--- want\n%s--- got\n%s", want, out.String())
	}
}

// A --schema the run created is dropped when the spec's teardown leaves it
// empty, and kept, with what is in it, when the spec leaves a table there.
func TestCreatedSchemaDroppedWhenEmpty(t *testing.T) {
	d := dbtest.DB(t)
	ctx := db.WithEndTime(context.Background()) // a command's, as spec gives its run
	exists := func(schema string) bool {
		conn, err := d.Connect(ctx, db.AppName("test"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	for _, leave := range []bool{false, true} {
		teardown := "teardown { DROP TABLE ls_gone; }\n"
		if leave {
			teardown = ""
		}
		src := "setup { CREATE TABLE ls_gone (i int); }\n" + teardown + `session s1
step s1_read { SELECT count(*) AS n FROM ls_gone; }
`
		s, err := scenario.Parse("gone.spec", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		schema := dbtest.SchemaOn(t, d).Schema()
		var out bytes.Buffer
		r := &isolation.Runner{DB: d, Out: &out, Schema: schema}
		if err := r.Run(ctx, s, 0); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if got := exists(schema); got != leave {
			t.Errorf("spec leaving its table %v: schema %s exists after the run: %v", leave, schema, got)
		}
	}
}

// writes keeps each Write apart.
type writes struct{ calls []string }

func (w *writes) Write(b []byte) (int, error) {
	w.calls = append(w.calls, string(b))
	return len(b), nil
}

// The output is written a permutation at a time, but a step seen waiting
// is written at once: a reader of a run that waits sees what waits while
// it waits, not when the permutation ends.
func TestWaitingStepWrittenAtOnce(t *testing.T) {
	s, err := scenario.Parse("flush.spec", []byte(`
setup { CREATE TABLE ls_flush (id int PRIMARY KEY); INSERT INTO ls_flush VALUES (1); }
teardown { DROP TABLE ls_flush; }
session a
step a1 { BEGIN; UPDATE ls_flush SET id = 1; }
step a2 { COMMIT; }
session b
step b1 { UPDATE ls_flush SET id = 1; }
permutation a1 b1 a2
permutation a1 a2 b1
`))
	if err != nil {
		t.Fatal(err)
	}
	d := dbtest.DB(t)
	var w writes
	r := &isolation.Runner{DB: d, Out: &w, RunID: db.RunID("spec-flush"), Schema: dbtest.SchemaOn(t, d).Schema()}
	if err := r.Run(db.WithEndTime(context.Background()), s, 0); err != nil {
		t.Fatal(err)
	}
	waiting, completed := -1, -1
	for i, c := range w.calls {
		if strings.Contains(c, "step b1: UPDATE ls_flush SET id = 1; <waiting ...>") && waiting < 0 {
			waiting = i
		}
		if strings.Contains(c, "step b1: <... completed>") {
			completed = i
		}
	}
	if waiting < 0 || completed < 0 || waiting >= completed || !strings.HasSuffix(w.calls[waiting], "\n") {
		t.Fatalf("the waiting step was not written before its completion: writes %q", w.calls)
	}
}

// What came before a slow step is written while it runs: a reader of a
// spec whose step takes seconds sees the steps before it, as with the
// tester, not only when the permutation ends.
func TestSlowStepWritesWhatCameBefore(t *testing.T) {
	s, err := scenario.Parse("slow.spec", []byte(`
session a
step fast { SELECT 1 AS fast; }
step slow { SELECT pg_sleep(0.5); }
permutation fast slow
`))
	if err != nil {
		t.Fatal(err)
	}
	var w writes
	r := &isolation.Runner{DB: dbtest.DB(t), Out: &w, RunID: db.RunID("spec-slow")}
	if err := r.Run(db.WithEndTime(context.Background()), s, 0); err != nil {
		t.Fatal(err)
	}
	fast, slow := -1, -1
	for i, c := range w.calls {
		if strings.Contains(c, "step fast:") {
			fast = i
		}
		if strings.Contains(c, "step slow:") {
			slow = i
		}
	}
	if fast < 0 || slow < 0 || fast >= slow {
		t.Fatalf("the fast step was not written before the slow one ended: writes %q", w.calls)
	}
}
