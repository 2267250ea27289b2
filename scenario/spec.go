// Package scenario is the scenario format — PostgreSQL's isolation-tester
// spec files (src/test/isolation/specs/*.spec in the PostgreSQL sources) — its
// parser and lockstep's built-in library of scenarios. Both the engine (sim),
// which steps a scenario's sessions, and the isolation tester (isolation)
// read scenarios from here. The parser follows the PostgreSQL 14+ scanner
// (specscanner.l), grammar (specparse.y) and the post-parse checks of
// isolationtester.c (check_testspec).
//
// The format, in brief:
//
//	setup { SQL }            zero or more, run in order
//	teardown { SQL }         optional, at most one, after all setups
//	session NAME             one or more sessions, each with
//	  setup { SQL }          an optional setup,
//	  step NAME { SQL }      one or more steps,
//	  teardown { SQL }       and an optional teardown
//	permutation NAME ...     zero or more permutation lines; a step name may
//	                         carry markers: NAME(*), NAME(other),
//	                         NAME(other notices N), comma-separated
//
// Names are identifiers: plain ([A-Za-z_] or a byte >= 0x80, then those, digits
// or '$'; case-sensitive, no case folding) or double-quoted with "" standing
// for one quote. The words setup, teardown, session, step, permutation and
// notices are keywords unless quoted. '#' starts a comment running to the end
// of the line, outside SQL blocks and quoted names.
//
// An SQL block is everything from '{' to the first '}' (braces do not nest and
// nothing inside is interpreted, so a '}' in a string literal ends the block).
// Spaces, tabs, CRs and form feeds directly after '{' and directly before '}'
// are dropped; newlines are kept, so a block written on its own lines keeps a
// leading and a trailing newline, exactly as isolationtester prints it.
package scenario

import (
	"errors"
	"fmt"
	"iter"
	"math/big"
)

// Spec is a parsed isolation-tester spec file.
type Spec struct {
	Setup        []string      // global setup blocks, in order (SQL text, trimmed)
	Teardown     string        // global teardown SQL, "" if none
	Sessions     []*Session    // sessions in file order
	Permutations []Permutation // as listed; empty means "every interleaving"
}

// Session is one session block: its own connection, optional setup and
// teardown, and its steps in order.
type Session struct {
	Name     string
	Setup    string // "" if none
	Teardown string // "" if none
	Steps    []*Step
}

// Step is one named SQL step of a session. Step names are unique across the
// whole spec file.
type Step struct {
	Name    string
	SQL     string   // trimmed as the isolation tester does
	Session *Session // owning session (pointer back)
	Line    int      // line of the "step" keyword
}

// Permutation is one "permutation" line: the steps to run, in order. Steps
// may repeat and need not cover every step.
type Permutation struct {
	Steps []PermutationStep
	Line  int // line of the "permutation" keyword
}

// PermutationStep is one entry of a permutation line: a step and the blocker
// markers written in parentheses after it.
type PermutationStep struct {
	Step     *Step
	Blockers []Blocker // annotations in parentheses
}

// Blocker is one marker of a permutation entry. Exactly one form applies:
// Star for "(*)", otherwise Step is set; with HasNotices the marker is
// "(other notices N)", without it "(other)".
type Blocker struct {
	Star       bool  // step(*): report the step as waiting as soon as it is launched
	Step       *Step // step(other): completes only after `other` completes
	Notices    int   // step(other notices N); 0 if not given
	HasNotices bool  // true if "notices N" was written (N may itself be 0)
}

// Step returns the step with the given name, or nil if there is none.
func (s *Spec) Step(name string) *Step {
	for _, sess := range s.Sessions {
		for _, st := range sess.Steps {
			if st.Name == name {
				return st
			}
		}
	}
	return nil
}

// Interleavings yields every interleaving of the sessions' steps that
// keeps each session's own step order, one at a time, in the order
// isolationtester's run_all_permutations_recurse enumerates them: depth
// first, at each position trying the sessions in file order. It ignores
// s.Permutations; the isolation tester runs these only when s.Permutations
// is empty. There are (n1+...+nk)!/(n1!...nk!) of them, which grows fast:
// see CountPermutations. The slice yielded is reused for the next one.
func (s *Spec) Interleavings() iter.Seq[[]*Step] {
	return func(yield func([]*Step) bool) {
		total := 0
		for _, sess := range s.Sessions {
			total += len(sess.Steps)
		}
		piles := make([]int, len(s.Sessions))
		cur := make([]*Step, 0, total)
		var rec func() bool
		rec = func() bool {
			if len(cur) == total {
				return yield(cur)
			}
			for i, sess := range s.Sessions {
				if piles[i] < len(sess.Steps) {
					cur = append(cur, sess.Steps[piles[i]])
					piles[i]++
					more := rec()
					piles[i]--
					cur = cur[:len(cur)-1]
					if !more {
						return false
					}
				}
			}
			return true
		}
		rec()
	}
}

// RunPermutations yields the permutations a run plays, one at a time: the
// listed ones, or every interleaving when none is listed.
func (s *Spec) RunPermutations() iter.Seq[Permutation] {
	return func(yield func(Permutation) bool) {
		if len(s.Permutations) > 0 {
			for _, p := range s.Permutations {
				if !yield(p) {
					return
				}
			}
			return
		}
		for steps := range s.Interleavings() {
			if !yield(asPermutation(steps)) {
				return
			}
		}
	}
}

func asPermutation(steps []*Step) Permutation {
	p := Permutation{Steps: make([]PermutationStep, len(steps))}
	for i, st := range steps {
		p.Steps[i] = PermutationStep{Step: st}
	}
	return p
}

// CountPermutations is how many permutations a run plays: the listed ones,
// or the multinomial count of interleavings, which may be astronomical.
func (s *Spec) CountPermutations() *big.Int {
	if len(s.Permutations) > 0 {
		return big.NewInt(int64(len(s.Permutations)))
	}
	piles := make([]int, len(s.Sessions))
	for i, sess := range s.Sessions {
		piles[i] = len(sess.Steps)
	}
	return multinomial(piles)
}

// multinomial is (n1+...+nk)! / (n1!...nk!) for the piles n.
func multinomial(piles []int) *big.Int {
	out, total := big.NewInt(1), 0
	for _, n := range piles {
		for i := 1; i <= n; i++ {
			total++
			out.Mul(out, big.NewInt(int64(total)))
			out.Div(out, big.NewInt(int64(i)))
		}
	}
	return out
}

// Permutation returns permutation k (counting from 1) of RunPermutations
// without building the ones before it: an interleaving is found by
// counting, at each position, the interleavings that begin with each
// session's next step.
func (s *Spec) Permutation(k int) (Permutation, error) {
	n := s.CountPermutations()
	if k < 1 || big.NewInt(int64(k)).Cmp(n) > 0 {
		return Permutation{}, fmt.Errorf("the spec has %s permutations, counted from 1", n)
	}
	if len(s.Permutations) > 0 {
		return s.Permutations[k-1], nil
	}
	left := make([]int, len(s.Sessions))
	for i, sess := range s.Sessions {
		left[i] = len(sess.Steps)
	}
	rank := big.NewInt(int64(k - 1))
	var steps []*Step
	for {
		chose := false
		for i, sess := range s.Sessions {
			if left[i] == 0 {
				continue
			}
			left[i]--
			count := multinomial(left)
			if rank.Cmp(count) < 0 {
				steps = append(steps, sess.Steps[len(sess.Steps)-left[i]-1])
				chose = true
				break
			}
			rank.Sub(rank, count)
			left[i]++
		}
		if !chose {
			return asPermutation(steps), nil
		}
	}
}

// SessionOrder is permutation k (counting from 1) as the sessions to step,
// by index: stepping each session's steps in its own order, a permutation is
// just the order the sessions take turns in. A spec without permutation
// lines has no stored order (nil).
func (s *Spec) SessionOrder(k int) ([]int, error) {
	if len(s.Permutations) == 0 {
		if k > 1 {
			return nil, errors.New("the spec lists no permutations")
		}
		return nil, nil
	}
	if k < 1 || k > len(s.Permutations) {
		return nil, fmt.Errorf("the spec has %d permutations", len(s.Permutations))
	}
	index := map[*Session]int{}
	for i, ss := range s.Sessions {
		index[ss] = i
	}
	var order []int
	for _, ps := range s.Permutations[k-1].Steps {
		order = append(order, index[ps.Step.Session])
	}
	return order, nil
}
