package learn

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"lockstep/lazyre"
)

// An answer is the SQL a student writes for an exercise: statements ended
// by ';' — or, as in psql, by \gset, which keeps the row's values as
// variables for the statements after it (SELECT balance AS b … \gset, then
// :b). :from, :to, :amount (the transfer) and :worker (the job queue) are
// set by lockstep; :'name' is the value as a quoted literal.

// Statement is one statement of an answer.
type Statement struct {
	SQL string // with its :variables
	// Gset keeps the statement's one row as variables named after its
	// columns, Prefix before each name.
	Gset   bool
	Prefix string
	Line   int
}

// Answer is a student's statements for one session.
type Answer struct {
	Statements []Statement
}

// MaxStatements bounds an answer: every interleaving of two sessions' is
// run, and they grow as (2n)!/(n!)².
const MaxStatements = 12

var varRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]*`)

// ParseAnswer reads an answer: statements, comments, \gset.
func ParseAnswer(file string, src []byte) (*Answer, error) {
	if !utf8.Valid(src) {
		return nil, fmt.Errorf("%s: not UTF-8 text", file)
	}
	if len(src) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", file, MaxFileSize)
	}
	s := string(src)
	a := &Answer{}
	var cur strings.Builder
	line, start := 1, 0
	meaningful := false
	flush := func(gset bool, prefix string) error {
		sql := strings.TrimSpace(cur.String())
		cur.Reset()
		if sql == "" {
			meaningful = false
		}
		if !meaningful {
			if gset {
				return fmt.Errorf("%s:%d: \\gset with no statement before it", file, line)
			}
			return nil
		}
		meaningful = false
		if len(a.Statements) == MaxStatements {
			return fmt.Errorf("%s:%d: more than %d statements: every interleaving of two sessions' statements is run, and at 12 each that is 2.7 million", file, line, MaxStatements)
		}
		a.Statements = append(a.Statements, Statement{SQL: sql, Gset: gset, Prefix: prefix, Line: start})
		return nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		if !meaningful && c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ';' &&
			!strings.HasPrefix(s[i:], "--") && !strings.HasPrefix(s[i:], "/*") && c != '\\' {
			meaningful, start = true, line
		}
		switch {
		case c == '\n':
			line++
			cur.WriteByte(c)
			i++
		case c == ';':
			i++
			if err := flush(false, ""); err != nil {
				return nil, err
			}
		case strings.HasPrefix(s[i:], "--"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			i += end
		case strings.HasPrefix(s[i:], "/*"):
			depth, j := 0, i
			for j < len(s) {
				switch {
				case strings.HasPrefix(s[j:], "/*"):
					depth++
					j += 2
				case strings.HasPrefix(s[j:], "*/"):
					depth--
					j += 2
				default:
					if s[j] == '\n' {
						line++
					}
					j++
				}
				if depth == 0 {
					break
				}
			}
			if depth != 0 {
				return nil, fmt.Errorf("%s:%d: a /* comment that never ends", file, line)
			}
			cur.WriteByte(' ')
			i = j
		case c == '\'' || c == '"':
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], c)
				if k < 0 {
					return nil, fmt.Errorf("%s:%d: a quoted %s that never ends", file, line, map[byte]string{'\'': "string", '"': "name"}[c])
				}
				j += k + 1
				if j < len(s) && s[j] == c { // a doubled quote stands for one
					j++
					continue
				}
				break
			}
			line += strings.Count(s[i:j], "\n")
			cur.WriteString(s[i:j])
			i = j
		case c == '$':
			if tag := dollarTag(s[i:]); tag != "" {
				end := strings.Index(s[i+len(tag):], tag)
				if end < 0 {
					return nil, fmt.Errorf("%s:%d: a %s-quoted string that never ends", file, line, tag)
				}
				j := i + len(tag) + end + len(tag)
				line += strings.Count(s[i:j], "\n")
				cur.WriteString(s[i:j])
				i = j
				continue
			}
			cur.WriteByte(c)
			i++
		case c == '\\':
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				end = len(s) - i
			}
			cmd := strings.Fields(s[i+1 : i+end])
			if len(cmd) == 0 || cmd[0] != "gset" || len(cmd) > 2 {
				return nil, fmt.Errorf("%s:%d: %q: the only backslash command an answer may use is \\gset [prefix]", file, line, strings.TrimSpace(s[i:i+end]))
			}
			prefix := ""
			if len(cmd) == 2 {
				if !varRE.MatchString(cmd[1]) || varRE.FindString(cmd[1]) != cmd[1] {
					return nil, fmt.Errorf("%s:%d: \\gset %s: a prefix is letters, digits and _", file, line, cmd[1])
				}
				prefix = cmd[1]
			}
			i += end
			if err := flush(true, prefix); err != nil {
				return nil, err
			}
		default:
			cur.WriteByte(c)
			i++
		}
	}
	if err := flush(false, ""); err != nil {
		return nil, err
	}
	if len(a.Statements) == 0 {
		return nil, fmt.Errorf("%s: no statement: write the SQL each session runs, each statement ended by ';'", file)
	}
	return a, nil
}

// dollarTag is the $tag$ that starts s, or "".
func dollarTag(s string) string {
	if len(s) < 2 {
		return ""
	}
	j := 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || j > 1 && s[j] >= '0' && s[j] <= '9') {
		j++
	}
	if j < len(s) && s[j] == '$' {
		return s[:j+1]
	}
	return ""
}

// Render puts the variables' values into a statement, as psql would:
// :name as it is, :'name' as a literal; not inside quotes or comments,
// and not in a :: cast. A variable that has no value is an error that
// names it.
func Render(sql string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(sql) {
				k := strings.IndexByte(sql[j:], c)
				if k < 0 {
					j = len(sql)
					break
				}
				j += k + 1
				if j < len(sql) && sql[j] == c {
					j++
					continue
				}
				break
			}
			b.WriteString(sql[i:j])
			i = j
		case c == '$':
			if tag := dollarTag(sql[i:]); tag != "" {
				end := strings.Index(sql[i+len(tag):], tag)
				j := len(sql)
				if end >= 0 {
					j = i + len(tag) + end + len(tag)
				}
				b.WriteString(sql[i:j])
				i = j
				continue
			}
			b.WriteByte(c)
			i++
		case c == ':' && i+1 < len(sql) && sql[i+1] == ':':
			b.WriteString("::")
			i += 2
		case c == ':' && i+1 < len(sql) && sql[i+1] == '\'':
			end := strings.IndexByte(sql[i+2:], '\'')
			name := ""
			if end >= 0 {
				name = sql[i+2 : i+2+end]
			}
			if end < 0 || varRE.FindString(name) != name || name == "" {
				b.WriteByte(c)
				i++
				continue
			}
			v, ok := vars[name]
			if !ok {
				return "", fmt.Errorf("the statement uses :'%s', which has no value (%s)", name, known(vars))
			}
			b.WriteString("'" + strings.ReplaceAll(v, "'", "''") + "'")
			i += 2 + end + 1
		case c == ':' && i+1 < len(sql) && varRE.MatchString(sql[i+1:]) && (i == 0 || sql[i-1] != ':'):
			name := varRE.FindString(sql[i+1:])
			v, ok := vars[name]
			if !ok {
				return "", fmt.Errorf("the statement uses :%s, which has no value (%s)", name, known(vars))
			}
			b.WriteString(v)
			i += 1 + len(name)
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// known says which variables have values, for an error.
func known(vars map[string]string) string {
	var names []string
	for _, k := range sortedKeys(vars) {
		names = append(names, ":"+k)
	}
	if len(names) == 0 {
		return "none has"
	}
	return "these have: " + strings.Join(names, ", ") + "; \\gset after a SELECT sets one for each column"
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
