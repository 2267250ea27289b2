package scenario

import (
	"flag"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse parses anything as a spec. Parse must return a spec or an error
// at a place in the file, never panic; what it returns must hold what the
// runners rely on — every step in a session of the spec, every permutation
// step a step of the spec — and its permutations must be countable and
// findable. Seeded with the built-in scenarios and lockstep's own specs;
// when fuzzing, with PostgreSQL's isolation suite too if it is there
// (ISOLATION_SUITE, default ../../shared/isolation: test data, never copied
// into the project). A crash found is kept in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, b := range Builtins() {
		f.Add([]byte(b.source))
	}
	own, _ := filepath.Glob("../isolation/testdata/*.spec")
	more, _ := filepath.Glob("testdata/*.spec")
	if fz := flag.Lookup("test.fuzz"); fz != nil && fz.Value.String() != "" {
		suite := os.Getenv("ISOLATION_SUITE")
		if suite == "" {
			suite = "../../shared/isolation"
		}
		theirs, _ := filepath.Glob(filepath.Join(suite, "specs", "*.spec"))
		more = append(more, theirs...)
	}
	for _, p := range append(own, more...) {
		if src, err := os.ReadFile(p); err == nil {
			f.Add(src)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse("fuzz.spec", src)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.spec:") {
				t.Errorf("an error that names no place: %v", err)
			}
			return
		}
		sessions := map[*Session]bool{}
		for _, ss := range s.Sessions {
			sessions[ss] = true
			for _, st := range ss.Steps {
				if st.Session != ss {
					t.Fatalf("step %s is not its session's", st.Name)
				}
			}
		}
		for _, p := range s.Permutations {
			for _, ps := range p.Steps {
				if ps.Step == nil || !sessions[ps.Step.Session] {
					t.Fatalf("a permutation step outside the spec")
				}
				for _, b := range ps.Blockers {
					if b.Step != nil && !sessions[b.Step.Session] {
						t.Fatalf("a blocker outside the spec")
					}
				}
			}
		}
		n := s.CountPermutations()
		if n.Sign() <= 0 {
			return
		}
		if _, err := s.Permutation(1); err != nil {
			t.Fatalf("permutation 1 of %s: %v", n, err)
		}
		if n.Cmp(big.NewInt(1000)) <= 0 {
			last := int(n.Int64())
			if _, err := s.Permutation(last); err != nil {
				t.Fatalf("permutation %d of %s: %v", last, n, err)
			}
			if _, err := s.Permutation(last + 1); err == nil {
				t.Fatalf("permutation %d of %s found", last+1, n)
			}
			seen := 0
			for range s.RunPermutations() {
				if seen++; seen > 50 {
					break
				}
			}
		}
		_, _ = s.SessionOrder(1)
	})
}
