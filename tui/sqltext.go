package tui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"

	"lockstep/lazyre"
)

// A statement is never cut in the middle: WHERE id = N, FOR UPDATE and the
// values read are the lesson. When one does not fit, the parts that carry
// no lesson are shortened first — a RETURNING list, an INSERT's column
// list, a SELECT's column list — and what is left wraps. A brief line (a
// session's row where the rows do not all fit) also gives up an UPDATE's
// SET list.
var (
	returningRE  = lazyre.New(`(?i)(\sRETURNING\s+)[^;]+?(;?)$`)
	insertColsRE = lazyre.New(`(?i)^(INSERT\s+INTO\s+\S+\s*)\([^)]*\)`)
	selectColsRE = lazyre.New(`(?i)^(SELECT\s+)(?:DISTINCT\s+)?(?:[^;()]|\([^()]*\))*?(\s+FROM\s)`)
	setListRE    = lazyre.New(`(?i)^(UPDATE\s+\S+\s+SET\s+).+?(\s+WHERE\s)`)
)

var compactions = []func(string) string{
	func(s string) string { return returningRE.ReplaceAllString(s, "${1}…$2") },
	func(s string) string { return insertColsRE.ReplaceAllString(s, "$1(…)") },
	func(s string) string { return selectColsRE.ReplaceAllString(s, "$1…$2") },
}

var briefCompaction = func(s string) string { return setListRE.ReplaceAllString(s, "$1…$2") }

// compactSQL is sql on one line, shortened by the steps above only as far
// as it must to fit in width cells.
func compactSQL(sql string, width int, brief bool) string {
	s := oneLine(sql)
	steps := compactions
	if brief {
		steps = append(steps[:len(steps):len(steps)], briefCompaction)
	}
	for _, step := range steps {
		if ansi.StringWidth(s) <= width {
			return s
		}
		s = step(s)
	}
	return s
}

// lessonRE matches the phrases a line break must not split: a row lock's
// clause and a WHERE's first condition.
var lessonRE = lazyre.New(`(?i)\bFOR\s+(?:NO\s+KEY\s+UPDATE|KEY\s+SHARE|UPDATE|SHARE)\b(?:\s+(?:SKIP\s+LOCKED|NOWAIT))?|\bWHERE\s+\S+\s*(?:IN\s*\([^)]*\)|(?:=|<>|!=|<=|>=|<|>)\s*\S+)`)

// nbsp joins the words of a phrase that wraps as one.
const nbsp = "\u00a0"

// wrapSQL is sql, after name (a scenario step's "t1r: "), compacted for
// width and wrapped to it: every word is kept, a statement takes as many
// lines as it needs, and "FOR UPDATE" or "WHERE id = 1" never ends one
// line and begins the next.
func wrapSQL(name, sql string, width int, brief bool) []string {
	if width < 8 {
		width = 8
	}
	glued := lessonRE.ReplaceAllStringFunc(compactSQL(sql, width-ansi.StringWidth(name), brief), func(phrase string) string {
		return strings.Join(strings.Fields(phrase), nbsp)
	})
	lines := wrap(name+glued, width)
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, nbsp, " ")
	}
	return lines
}
