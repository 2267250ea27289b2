// Package lazyre is a regular expression compiled on its first use rather
// than when the program starts: every lockstep process (a spec run, a
// hundred of them in a suite) compiled all of the program's package-level
// expressions before main, about a tenth of a short spec's CPU, for the
// few it uses. A pattern is a constant; a bad one panics at its first use
// (the tests that use it find it), as regexp.MustCompile would.
package lazyre

import (
	"regexp"
	"sync"
)

// Regexp is a regexp.Regexp compiled on first use, with the methods
// lockstep calls.
type Regexp struct {
	src  string
	once sync.Once
	re   *regexp.Regexp
}

// New is the expression src, compiled when first used.
func New(src string) *Regexp { return &Regexp{src: src} }

// Regexp is the compiled expression.
func (r *Regexp) Regexp() *regexp.Regexp {
	r.once.Do(func() { r.re = regexp.MustCompile(r.src) })
	return r.re
}

// String is the expression's source text.
func (r *Regexp) String() string { return r.src }

func (r *Regexp) MatchString(s string) bool { return r.Regexp().MatchString(s) }

func (r *Regexp) FindString(s string) string { return r.Regexp().FindString(s) }

func (r *Regexp) FindStringSubmatch(s string) []string { return r.Regexp().FindStringSubmatch(s) }

func (r *Regexp) FindAllStringSubmatch(s string, n int) [][]string {
	return r.Regexp().FindAllStringSubmatch(s, n)
}

func (r *Regexp) FindAllStringSubmatchIndex(s string, n int) [][]int {
	return r.Regexp().FindAllStringSubmatchIndex(s, n)
}

func (r *Regexp) ReplaceAllString(src, repl string) string {
	return r.Regexp().ReplaceAllString(src, repl)
}

func (r *Regexp) ReplaceAllStringFunc(src string, repl func(string) string) string {
	return r.Regexp().ReplaceAllStringFunc(src, repl)
}
