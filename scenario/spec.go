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

// AllPermutations returns every interleaving of the sessions' steps that
// keeps each session's own step order, in the order isolationtester's
// run_all_permutations_recurse enumerates them: depth first, at each position
// trying the sessions in file order. It ignores s.Permutations; the isolation
// tester runs these only when s.Permutations is empty. The count is the
// multinomial (n1+...+nk)!/(n1!...nk!), which grows fast.
func (s *Spec) AllPermutations() [][]*Step {
	total := 0
	for _, sess := range s.Sessions {
		total += len(sess.Steps)
	}
	piles := make([]int, len(s.Sessions))
	cur := make([]*Step, 0, total)
	var out [][]*Step
	var rec func()
	rec = func() {
		found := false
		for i, sess := range s.Sessions {
			if piles[i] < len(sess.Steps) {
				cur = append(cur, sess.Steps[piles[i]])
				piles[i]++
				rec()
				piles[i]--
				cur = cur[:len(cur)-1]
				found = true
			}
		}
		if !found {
			out = append(out, append([]*Step(nil), cur...))
		}
	}
	rec()
	return out
}

// RunPermutations are the permutations a run plays: the listed ones, or
// every interleaving when none is listed.
func (s *Spec) RunPermutations() []Permutation {
	if len(s.Permutations) > 0 {
		return s.Permutations
	}
	var perms []Permutation
	for _, steps := range s.AllPermutations() {
		var p Permutation
		for _, st := range steps {
			p.Steps = append(p.Steps, PermutationStep{Step: st})
		}
		perms = append(perms, p)
	}
	return perms
}

// NumPermutations is how many permutations a run plays.
func (s *Spec) NumPermutations() int { return len(s.RunPermutations()) }

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
