package lazyre

import (
	"regexp"
	"testing"
)

// TestCompiledOnFirstUse: New compiles nothing; the first use compiles the
// expression once, and every method answers as regexp's own.
func TestCompiledOnFirstUse(t *testing.T) {
	r := New(`(?i)process (\d+)`)
	if r.re != nil {
		t.Fatal("New compiled the expression")
	}
	want := regexp.MustCompile(r.String())
	s := "Process 12 waits for ShareLock; blocked by process 34."
	if got, w := r.FindAllStringSubmatch(s, -1), want.FindAllStringSubmatch(s, -1); len(got) != 2 || got[1][1] != w[1][1] {
		t.Fatalf("FindAllStringSubmatch: %q; want %q", got, w)
	}
	first := r.re
	if !r.MatchString(s) || r.re != first {
		t.Fatal("the expression was compiled again, or does not match")
	}
	if got := r.ReplaceAllString(s, "P$1"); got != want.ReplaceAllString(s, "P$1") {
		t.Fatalf("ReplaceAllString: %q", got)
	}
	if got := r.FindStringSubmatch(s); len(got) != 2 || got[1] != "12" {
		t.Fatalf("FindStringSubmatch: %q", got)
	}
	if got := r.FindString(s); got != "Process 12" {
		t.Fatalf("FindString: %q", got)
	}
	if got := r.FindAllStringSubmatchIndex(s, -1); len(got) != 2 {
		t.Fatalf("FindAllStringSubmatchIndex: %v", got)
	}
	if got := r.ReplaceAllStringFunc(s, func(string) string { return "x" }); got != want.ReplaceAllStringFunc(s, func(string) string { return "x" }) {
		t.Fatalf("ReplaceAllStringFunc: %q", got)
	}
}
