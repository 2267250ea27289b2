package learn

import (
	"strings"
	"testing"
)

// FuzzParse feeds the lesson parser what a teacher's pull request might
// hold, seeded with the built-in lessons: it must return a lesson or an
// error that says where, never panic; and a lesson it returns is whole.
func FuzzParse(f *testing.F) {
	for _, src := range BuiltinSources() {
		f.Add(src)
	}
	f.Add([]byte("lesson: x\nrun: strategy naive\nstep T1\n  ask: q\n  1. T1 goes on\n  2. deadlock, victim T2\n"))
	f.Add([]byte("lesson: x\nrun: scenario coupled\nstep T1@A: a\nbench ordered, table-lock, workers 2\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		l, err := Parse("fuzz.lesson", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.lesson") {
				t.Fatalf("an error that does not name the file: %v", err)
			}
			return
		}
		if l.Title == "" || len(l.Parts) == 0 {
			t.Fatalf("a lesson without a title or a run: %+v", l)
		}
		for _, p := range l.Parts {
			if len(p.Actions) == 0 {
				t.Fatal("a part without actions")
			}
			for _, a := range p.Actions {
				if q := a.Question; q != nil {
					if len(q.Options) < 2 || len(q.Options) > maxOptions || q.Expect > len(q.Options) {
						t.Fatalf("a question of %d options expecting %d", len(q.Options), q.Expect)
					}
					for _, o := range q.Options {
						// A claim reads back as itself.
						c, err := ParseClaim(o.Claim.String())
						if err != nil || c.String() != o.Claim.String() {
							t.Fatalf("claim %q reads back as %q (%v)", o.Claim, c, err)
						}
					}
				}
			}
		}
	})
}

// FuzzParseAnswer feeds the answer parser a student's file: statements,
// comments, quotes, \gset, anything. It must not panic, and what it keeps
// renders once every variable has a value.
func FuzzParseAnswer(f *testing.F) {
	for _, e := range Exercises {
		f.Add([]byte(e.Start))
		f.Add([]byte(e.Correct))
	}
	f.Add([]byte("SELECT $x$;$x$, ':a', \":b\" /* ; /* */ */ -- ;\n, 1::int, :'c' \\gset p_\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		a, err := ParseAnswer("fuzz.sql", src)
		if err != nil {
			return
		}
		if len(a.Statements) == 0 || len(a.Statements) > MaxStatements {
			t.Fatalf("%d statements", len(a.Statements))
		}
		for _, s := range a.Statements {
			if strings.TrimSpace(s.SQL) == "" {
				t.Fatal("an empty statement")
			}
			vars := map[string]string{}
			_, _ = Render(s.SQL, vars)
		}
	})
}
