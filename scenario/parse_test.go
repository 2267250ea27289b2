package scenario

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) *Spec {
	t.Helper()
	src, err := os.ReadFile(specPath(name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(name, src)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return s
}

// permString renders a permutation line with its markers the way they are
// written in a spec.
func permString(p Permutation) string {
	var parts []string
	for _, ps := range p.Steps {
		s := ps.Step.Name
		if len(ps.Blockers) > 0 {
			var bs []string
			for _, b := range ps.Blockers {
				switch {
				case b.Star:
					bs = append(bs, "*")
				case b.HasNotices:
					bs = append(bs, b.Step.Name+" notices "+strconv.Itoa(b.Notices))
				default:
					bs = append(bs, b.Step.Name)
				}
			}
			s += "(" + strings.Join(bs, ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func stepNames(steps []*Step) string {
	var s []string
	for _, st := range steps {
		s = append(s, st.Name)
	}
	return strings.Join(s, " ")
}

func permNames(p Permutation) string {
	var steps []*Step
	for _, ps := range p.Steps {
		steps = append(steps, ps.Step)
	}
	return stepNames(steps)
}

func TestParseRealSpecs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		setup    []string
		teardown string
		sessions []string // "name: step step ..."
		perms    []string
		sql      map[string]string // step name -> SQL
		lines    map[string]int    // step name -> line of "step"
	}{
		{
			file:     "ls-deadlock-tables.spec",
			setup:    []string{"CREATE TABLE ls_left (); CREATE TABLE ls_right ();"},
			teardown: "DROP TABLE ls_left, ls_right;",
			sessions: []string{"patient: pa_left pa_right pa_end", "hasty: ha_right ha_left ha_end"},
			perms:    []string{"pa_left ha_right pa_right ha_left pa_end ha_end"},
			sql: map[string]string{
				"pa_right": "LOCK TABLE ls_right IN SHARE ROW EXCLUSIVE MODE;",
				"ha_end":   "COMMIT;",
			},
			lines: map[string]int{"pa_left": 9, "ha_end": 17},
		},
		{
			file:     "ls-nowait-all.spec",
			setup:    []string{"CREATE TABLE ls_nw (id int PRIMARY KEY); INSERT INTO ls_nw VALUES (7);"},
			teardown: "DROP TABLE ls_nw;",
			sessions: []string{"a: a_take a_done", "b: b_take b_done"},
			perms:    nil,
			sql:      map[string]string{"b_take": "SELECT id FROM ls_nw WHERE id = 7 FOR SHARE NOWAIT;"},
			lines:    map[string]int{"a_take": 8, "b_done": 14},
		},
		{
			file:     "ls-soft-deadlock.spec",
			setup:    []string{"CREATE TABLE ls_q1 (); CREATE TABLE ls_q2 ();"},
			teardown: "DROP TABLE ls_q1, ls_q2;",
			sessions: []string{"r1: r1_q1 r1_q2 r1_end", "r2: r2_q2 r2_q1 r2_end", "w1: w1_q1 w1_end", "w2: w2_q2 w2_end"},
			perms:    []string{"r1_q1 r2_q2 w1_q1 w2_q2 r1_q2 r2_q1 r1_end w1_end r2_end w2_end"},
			sql:      map[string]string{"w1_q1": "LOCK TABLE ls_q1 IN ACCESS EXCLUSIVE MODE;"},
			lines:    map[string]int{"w2_end": 26},
		},
		{
			file:     "features.spec",
			setup:    []string{"CREATE TABLE t (id int PRIMARY KEY, v text);", "\n  INSERT INTO t VALUES (1, 'a');\n"},
			teardown: "DROP TABLE t;",
			sessions: []string{`writer one: w"1 w2`, "r$2: step r_2b"},
			perms: []string{
				`w"1 step(w2, w"1 notices 2) w2 r_2b(*)`,
				`w2 step w"1(*, r_2b) r_2b`,
			},
			sql: map[string]string{
				`w"1`:  "UPDATE t SET v = 'b' WHERE id = 1;",
				"w2":   "\n  SELECT * FROM t;   -- # stays: this is SQL\n",
				"step": "SELECT v FROM t WHERE id = 1 FOR UPDATE;",
				"r_2b": "",
			},
			lines: map[string]int{`w"1`: 11, "w2": 12, "r_2b": 19},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			s := parseFile(t, tc.file)
			if !equalStrings(s.Setup, tc.setup) {
				t.Errorf("Setup = %q, want %q", s.Setup, tc.setup)
			}
			if s.Teardown != tc.teardown {
				t.Errorf("Teardown = %q, want %q", s.Teardown, tc.teardown)
			}
			var sessions []string
			for _, sess := range s.Sessions {
				sessions = append(sessions, sess.Name+": "+stepNames(sess.Steps))
				for _, st := range sess.Steps {
					if st.Session != sess {
						t.Errorf("step %s: Session points to %q, want %q", st.Name, st.Session.Name, sess.Name)
					}
				}
			}
			if !equalStrings(sessions, tc.sessions) {
				t.Errorf("sessions = %q, want %q", sessions, tc.sessions)
			}
			var perms []string
			for _, p := range s.Permutations {
				perms = append(perms, permString(p))
			}
			if !equalStrings(perms, tc.perms) {
				t.Errorf("permutations = %q, want %q", perms, tc.perms)
			}
			for name, want := range tc.sql {
				st := s.Step(name)
				if st == nil {
					t.Errorf("Step(%q) = nil", name)
					continue
				}
				if st.SQL != want {
					t.Errorf("step %q SQL = %q, want %q", name, st.SQL, want)
				}
			}
			for name, want := range tc.lines {
				if st := s.Step(name); st == nil || st.Line != want {
					t.Errorf("step %q Line = %v, want %d", name, st, want)
				}
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSessionSetupTeardown(t *testing.T) {
	t.Parallel()
	s := parseFile(t, "features.spec")
	w, r := s.Sessions[0], s.Sessions[1]
	if w.Setup != "BEGIN;" || w.Teardown != "COMMIT;" {
		t.Errorf("writer one setup/teardown = %q/%q", w.Setup, w.Teardown)
	}
	if r.Setup != "" || r.Teardown != "" {
		t.Errorf("r$2 setup/teardown = %q/%q, want empty", r.Setup, r.Teardown)
	}
	if s.Permutations[0].Line != 21 || s.Permutations[1].Line != 22 {
		t.Errorf("permutation lines = %d, %d; want 21, 22", s.Permutations[0].Line, s.Permutations[1].Line)
	}
	b := s.Permutations[0].Steps[1].Blockers
	if len(b) != 2 || b[0].Step != s.Step("w2") || b[0].HasNotices || b[0].Notices != 0 ||
		b[1].Step != s.Step(`w"1`) || !b[1].HasNotices || b[1].Notices != 2 || b[1].Star {
		t.Errorf("blockers of step = %+v", b)
	}
	if s.Step("nope") != nil {
		t.Error(`Step("nope") != nil`)
	}
}

// TestSQLTrimming checks specscanner.l's rule: the block ends at the first
// '}', and only [ \t\r\f] right after '{' and right before '}' is dropped.
func TestSQLTrimming(t *testing.T) {
	t.Parallel()
	tests := []struct{ block, want string }{
		{"{ SELECT 1; }", "SELECT 1;"},
		{"{\tSELECT 1;\t\f\r }", "SELECT 1;"},
		{"{SELECT 1;}", "SELECT 1;"},
		{"{}", ""},
		{"{   }", ""},
		{"{\n  SELECT 1;\n}", "\n  SELECT 1;\n"},
		{"{\n  SELECT 1;\n  }", "\n  SELECT 1;\n"},
		{"{ \t\n  x \n }", "\n  x \n"},
		{"{ a\r\n}", "a\r\n"},
		{"{ SELECT '{1,2' }", "SELECT '{1,2'"},         // '{' inside is plain text
		{"{ SELECT '#x'; -- y }", "SELECT '#x'; -- y"}, // no comments inside SQL
	}
	for _, tc := range tests {
		t.Run(tc.block, func(t *testing.T) {
			t.Parallel()
			src := "session s\nstep a " + tc.block + "\n"
			s, err := Parse("t.spec", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Step("a").SQL; got != tc.want {
				t.Errorf("SQL = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIdentifiers(t *testing.T) {
	t.Parallel()
	tests := []struct{ written, name string }{
		{"s1", "s1"},
		{"_x$1", "_x$1"},
		{"S1", "S1"}, // no case folding
		{`"a b"`, "a b"},
		{`"a""b"`, `a"b`},
		{`""`, ""},
		{`"setup"`, "setup"},
		{`"#not a comment"`, "#not a comment"},
		{"setupx", "setupx"}, // longer than the keyword: an identifier
		{"Step", "Step"},     // keywords are case-sensitive
		{"größe", "größe"},   // bytes >= 0x80 are identifier characters
	}
	for _, tc := range tests {
		t.Run(tc.written, func(t *testing.T) {
			t.Parallel()
			src := "session s step " + tc.written + " { SELECT 1; } permutation " + tc.written + "\n"
			s, err := Parse("t.spec", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Sessions[0].Steps[0].Name; got != tc.name {
				t.Errorf("name = %q, want %q", got, tc.name)
			}
			if s.Permutations[0].Steps[0].Step != s.Sessions[0].Steps[0] {
				t.Error("permutation does not resolve to the step")
			}
		})
	}
}

// interleavings collects a spec's interleavings as step names.
func interleavings(s *Spec) []string {
	var out []string
	for steps := range s.Interleavings() {
		out = append(out, stepNames(steps))
	}
	return out
}

func TestInterleavings(t *testing.T) {
	t.Parallel()
	// The isolation tester's order: depth first, sessions in file order.
	two, err := Parse("t.spec", []byte("session s1 step s1a {} step s1b {} session s2 step s2a {} step s2b {}"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"s1a s1b s2a s2b",
		"s1a s2a s1b s2b",
		"s1a s2a s2b s1b",
		"s2a s1a s1b s2b",
		"s2a s1a s2b s1b",
		"s2a s2b s1a s1b",
	}
	if got := interleavings(two); !equalStrings(got, want) {
		t.Errorf("Interleavings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	three, err := Parse("t.spec", []byte("session a step a1 {} step a2 {} session b step b1 {} session c step c1 {}"))
	if err != nil {
		t.Fatal(err)
	}
	all := interleavings(three)
	if len(all) != 12 || all[0] != "a1 a2 b1 c1" || all[1] != "a1 a2 c1 b1" || all[11] != "c1 b1 a1 a2" {
		t.Errorf("three sessions: %d permutations, first %q, second %q, last %q", len(all), all[0], all[1], all[len(all)-1])
	}
	// Permutation k finds the k-th without making the others.
	for _, s := range []*Spec{two, three} {
		all := interleavings(s)
		if n := s.CountPermutations(); n.Int64() != int64(len(all)) {
			t.Errorf("CountPermutations = %s; there are %d", n, len(all))
		}
		for k, want := range all {
			p, err := s.Permutation(k + 1)
			if err != nil || permNames(p) != want {
				t.Errorf("Permutation(%d) = %q, %v; want %q", k+1, permNames(p), err, want)
			}
		}
		if _, err := s.Permutation(len(all) + 1); err == nil {
			t.Errorf("Permutation(%d) of %d: no error", len(all)+1, len(all))
		}
	}

	counts := []struct {
		steps []int
		n     string
	}{
		{[]int{3, 3}, "20"},          // 6!/(3!3!)
		{[]int{3, 3, 2, 2}, "25200"}, // 10!/(3!3!2!2!)
		{[]int{40, 40, 40}, "12315686996104586105755778762527877375925475388598463020"}, // 120!/(40!40!40!)
	}
	for _, c := range counts {
		var src strings.Builder
		for i, n := range c.steps {
			fmt.Fprintf(&src, "session s%d\n", i)
			for j := range n {
				fmt.Fprintf(&src, "step s%d_%d { SELECT 1; }\n", i, j)
			}
		}
		s, err := Parse("count.spec", []byte(src.String()))
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CountPermutations().String(); got != c.n {
			t.Errorf("%v steps: %s permutations, want %s", c.steps, got, c.n)
		}
	}
	// The runaway spec yields its first interleavings at once.
	var src strings.Builder
	for i := range 3 {
		fmt.Fprintf(&src, "session s%d\n", i)
		for j := range 40 {
			fmt.Fprintf(&src, "step s%d_%d { SELECT 1; }\n", i, j)
		}
	}
	big, err := Parse("big.spec", []byte(src.String()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range big.Interleavings() {
		if n++; n == 3 {
			break
		}
	}
	if p, err := big.Permutation(1); err != nil || len(p.Steps) != 120 || p.Steps[119].Step.Name != "s2_39" {
		t.Errorf("Permutation(1) of the runaway spec: %d steps, %v", len(p.Steps), err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const two = "session s1 step a {} step b {}\nsession s2 step c {}\n"
	tests := []struct{ name, src, want string }{
		{"empty", "", `e.spec:1:1: expected "setup", "teardown" or "session", found end of file`},
		{"only comments", "# nothing\n\n", `e.spec:3:1: expected "setup", "teardown" or "session", found end of file`},
		{"missing session name", "session { }", `e.spec:1:9: expected session name, found SQL block`},
		{"keyword as session name", "session step", `e.spec:1:9: expected session name, found "step"`},
		{"no steps", "session s\nteardown {}", `e.spec:2:1: expected "setup" or "step", found "teardown"`},
		{"two session setups", "session s setup {} setup {}", `e.spec:1:20: expected "step", found "setup"`},
		{"missing step name", "session s step { x }", `e.spec:1:16: expected step name, found SQL block`},
		{"missing step SQL", "session s step a\nstep b {}", `e.spec:2:1: expected SQL block, found "step"`},
		{"setup without block", "setup session s", `e.spec:1:7: expected SQL block after "setup", found "session"`},
		{"setup after teardown", "teardown {}\nsetup {}", `e.spec:2:1: expected "session", found "setup"`},
		{"two teardowns", "teardown {} teardown {}", `e.spec:1:13: expected "session", found "teardown"`},
		{"global setup after session", "session s step a {}\nsetup {}",
			`e.spec:2:1: expected "step", "teardown", "session", "permutation" or end of file, found "setup"`},
		{"step after session teardown", "session s step a {} teardown {} step b {}",
			`e.spec:1:33: expected "session", "permutation" or end of file, found "step"`},
		{"empty permutation", two + "permutation\n", `e.spec:4:1: expected step name, found end of file`},
		{"session after permutation", two + "permutation a\nsession s3 step d {}",
			`e.spec:4:1: expected step name, "permutation" or end of file, found "session"`},
		{"unterminated sql", "setup { SELECT 1;\n", `e.spec:1:7: unterminated SQL block (no closing "}")`},
		{"brace in string ends block", "session s step a { SELECT '}'; }",
			`e.spec:1:29: unexpected character "'"`},
		{"unterminated quote", "session \"abc", `e.spec:1:9: unterminated quoted identifier`},
		{"newline in quote", "session s\nstep \"a\nb\" {}", `e.spec:2:6: unexpected newline in quoted identifier`},
		{"bad character", "session s\n  step a; {}", `e.spec:2:9: unexpected character ";"`},
		{"digit-led name", "session s step 1a {}", `e.spec:1:16: expected step name, found integer 1`},
		{"unknown step", two + "permutation a\n  zz c", `e.spec:4:3: undefined step "zz" in permutation`},
		{"duplicate step", "session s1 step a {}\nsession s2 step b {} step a {}",
			`e.spec:2:27: duplicate step name "a" (first defined at 1:17)`},
		{"duplicate before unknown", "session s1 step a {} step a {} permutation zz",
			`e.spec:1:27: duplicate step name "a" (first defined at 1:17)`},
		{"unknown blocker", two + "permutation a(zz) c", `e.spec:3:15: undefined blocking step "zz" referenced in permutation step "a"`},
		{"blocker not in permutation", two + "permutation a(c) b",
			`e.spec:3:15: blocking step "c" referenced in permutation step "a" is not part of this permutation`},
		{"blocker in own session", two + "permutation a(*, b) b c",
			`e.spec:3:18: permutation step "a" cannot block on its own session`},
		{"empty blocker list", two + "permutation a() c", `e.spec:3:15: expected "*" or step name, found ")"`},
		{"unclosed blocker list", two + "permutation a(c c", `e.spec:3:17: expected "notices", "," or ")", found identifier "c"`},
		{"star then junk", two + "permutation a(* c", `e.spec:3:17: expected "," or ")", found identifier "c"`},
		{"notices without count", two + "permutation a(c notices) c",
			`e.spec:3:24: expected integer after "notices", found ")"`},
		{"notices keyword as step", "session s step notices {}", `e.spec:1:16: expected step name, found "notices"`},
		{"star outside parens", two + "permutation a * c", `e.spec:3:15: expected step name, "permutation" or end of file, found "*"`},
		{"huge notices", two + "permutation a(c notices 99999999999999999999) c",
			`e.spec:3:25: integer 99999999999999999999 out of range`},
		{"lex error after syntax error is not reached", "session { } \"unterminated",
			`e.spec:1:9: expected session name, found SQL block`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse("e.spec", []byte(tc.src))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got %s\nwant %s", err, tc.want)
			}
			if s != nil {
				t.Error("non-nil Spec with error")
			}
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src string }{
		{"blocker on later step", "session s1 step a {}\nsession s2 step c {}\npermutation a(c) c"},
		{"notices zero", "session s1 step a {}\nsession s2 step c {}\npermutation a(c notices 0) c"},
		{"repeated steps", "session s1 step a {}\nsession s2 step c {}\npermutation a a c a"},
		{"unused steps are fine", "session s1 step a {} step b {}\npermutation a"},
		{"duplicate session names are not checked", "session s step a {}\nsession s step b {}"},
		{"space before marker", "session s1 step a {}\nsession s2 step c {}\npermutation a ( * ) c"},
		{"CRLF and form feed", "session s\r\n\fstep a { x }\r\n# c\r\npermutation a\r\n"},
		{"comment glued to a name", "session s#c\nstep a#c\n{}"},
		{"empty setup", "setup {} session s step a {}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse("v.spec", []byte(tc.src)); err != nil {
				t.Error(err)
			}
		})
	}
}

// specPath finds a test spec: lockstep's own here, PostgreSQL's beside their
// expected outputs in the isolation tester's test data.
func specPath(name string) string {
	if _, err := os.Stat(filepath.Join("testdata", name)); err == nil {
		return filepath.Join("testdata", name)
	}
	return filepath.Join("..", "isolation", "testdata", name)
}

func TestExpected(t *testing.T) {
	for _, c := range []struct{ name, isolation, want string }{
		{"write-skew", "serializable", "at SERIALIZABLE: prevented: one transaction fails with a serialization failure"},
		{"write-skew", "", "at READ COMMITTED: anomaly: both doctors go off call"},
		{"lost-update", "repeatable-read", "at REPEATABLE READ: prevented: the second writer fails with a serialization failure"},
		{"coupled", "", ""},
		{"write-skew", "chaos", ""},
		{"testdata/x.spec", "", ""},
	} {
		if got := Expected(c.name, c.isolation); got != c.want {
			t.Errorf("Expected(%q, %q) = %q, want %q", c.name, c.isolation, got, c.want)
		}
	}
}

// coupled-lock-timeout teaches "T1 gives up, T2 completes" at any pace: T2's
// lock_timeout outlasts a student reading between t2b_move and T1's
// rollback (at 30 s T2 timed out too, by hand, and the databases
// disagreed), and T1's is the short one.
func TestCoupledLockTimeoutHoldsAtHumanPace(t *testing.T) {
	sc, err := LoadBuiltin("coupled-lock-timeout", "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"T1@A": "'1s'", "T1@B": "'1s'", "T2@A": "'5min'", "T2@B": "'5min'"}
	for _, s := range sc.Sessions {
		if w := want[s.Name]; !strings.Contains(s.Setup, "lock_timeout = "+w) {
			t.Errorf("session %s: setup %q, want lock_timeout = %s", s.Name, s.Setup, w)
		}
	}
}
