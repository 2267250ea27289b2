package isolation

import (
	"fmt"
	"io"
	"strings"

	"github.com/mattn/go-runewidth"

	"lockstep/sim"
)

// WriteResultSet prints rows as the isolation tester does, through libpq's
// PQprint with a header, alignment and "|" between fields: widths in bytes,
// a column right-aligned when every non-empty value looks numeric (its
// header too), every cell padded (so text leaves trailing blanks), a dashed
// rule joined by "+", then "(N rows)" and a blank line. nulls[i][j] marks a
// NULL, printed as an empty cell; nulls, and any of its rows, may be nil.
func WriteResultSet(w io.Writer, columns []string, rows [][]string, nulls [][]bool) {
	if len(columns) == 0 {
		return
	}
	width := make([]int, len(columns))
	numeric := make([]bool, len(columns))
	for j, c := range columns {
		width[j] = len(c)
		numeric[j] = true
	}
	isNull := func(i, j int) bool { return i < len(nulls) && j < len(nulls[i]) && nulls[i][j] }
	for i, r := range rows {
		for j, v := range r {
			if isNull(i, j) {
				continue
			}
			width[j] = max(width[j], len(v))
			if v != "" && !looksNumeric(v) {
				numeric[j] = false
			}
		}
	}
	line := func(cells []string, null func(j int) bool) string {
		var b strings.Builder
		for j, c := range cells {
			if j > 0 {
				b.WriteByte('|')
			}
			if null(j) {
				c = ""
			}
			// Padded by bytes, as PQprint counts them (fmt would count runes).
			pad := strings.Repeat(" ", width[j]-len(c))
			if numeric[j] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		return b.String()
	}
	fmt.Fprintln(w, line(columns, func(int) bool { return false }))
	rule := make([]string, len(columns))
	for j := range rule {
		rule[j] = strings.Repeat("-", width[j])
	}
	fmt.Fprintln(w, strings.Join(rule, "+"))
	for i, r := range rows {
		fmt.Fprintln(w, line(r, func(j int) bool { return isNull(i, j) }))
	}
	if len(rows) == 1 {
		fmt.Fprint(w, "(1 row)\n\n")
	} else {
		fmt.Fprintf(w, "(%d rows)\n\n", len(rows))
	}
}

// looksNumeric is PQprint's test: only digits, '.', 'e', 'E', '-' and
// blanks, not starting with an exponent mark, ending in a digit.
func looksNumeric(v string) bool {
	if v[0] == 'e' || v[0] == 'E' {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '-' || c == ' ') {
			return false
		}
	}
	last := v[len(v)-1]
	return last >= '0' && last <= '9'
}

// libpqText words a server message as libpq does — PQerrorMessage for an
// error, the text a notice processor is given for a notice — at its default
// verbosity and context visibility: severity and primary message; a LINE
// with a cursor under the position in query, the statement the message is
// about (or in the function's own statement); DETAIL, HINT and QUERY; and,
// for an error only, CONTEXT. (libpq: pqBuildErrorMessage3.)
func libpqText(m *sim.ServerMessage, query string, isError bool) string {
	var b strings.Builder
	if m.Severity != "" {
		b.WriteString(m.Severity + ":  ")
	}
	b.WriteString(m.Message)
	cursorIn, pos := "", 0
	switch {
	case m.Position > 0 && query != "":
		cursorIn, pos = query, int(m.Position)
	case m.Position != 0:
		fmt.Fprintf(&b, " at character %d", m.Position)
	case m.InternalPosition > 0 && m.InternalQuery != "":
		cursorIn, pos = m.InternalQuery, int(m.InternalPosition)
	case m.InternalPosition != 0:
		fmt.Fprintf(&b, " at character %d", m.InternalPosition)
	}
	b.WriteByte('\n')
	if cursorIn != "" {
		writeCursor(&b, cursorIn, pos)
	}
	for _, f := range []struct{ label, text string }{
		{"DETAIL", m.Detail}, {"HINT", m.Hint}, {"QUERY", m.InternalQuery}} {
		if f.text != "" {
			b.WriteString(f.label + ":  " + f.text + "\n")
		}
	}
	if isError && m.Context != "" {
		b.WriteString("CONTEXT:  " + m.Context + "\n")
	}
	return b.String()
}

// The cursor's line is at most this many screen columns, kept this far
// from its end where it can be. (libpq: reportErrorPosition.)
const (
	cursorDisplay  = 60
	cursorMinRight = 10
)

// writeCursor writes libpq's "LINE n: …" with a "^" under the character at
// pos (counted from 1) of query: only the line it is on, cut to 60 screen
// columns around it with "..." marking a cut, tabs shown as blanks and a
// wide character taking two columns. A position past the end writes nothing.
func writeCursor(b *strings.Builder, query string, pos int) {
	loc := pos - 1
	if loc < 0 {
		return
	}
	chars := []rune(strings.ReplaceAll(query, "\t", " "))
	// col[i] is the screen column where character i starts; col[len] is
	// where the query ends.
	col := make([]int, len(chars)+1)
	line, begin, end := 1, 0, -1
	for i, c := range chars {
		if c == '\r' || c == '\n' {
			if i >= loc {
				end = i
				break
			}
			if c == '\r' || i == 0 || chars[i-1] != '\r' {
				line++
			}
			begin = i + 1
		}
		col[i+1] = col[i] + screenWidth(c)
	}
	if end < 0 {
		end = len(chars)
	}
	if loc > end {
		return
	}
	cutLeft, cutRight := false, false
	if col[end]-col[begin] > cursorDisplay {
		if col[begin]+cursorDisplay >= col[loc]+cursorMinRight {
			for col[end]-col[begin] > cursorDisplay {
				end--
			}
			cutRight = true
		} else {
			for col[loc]+cursorMinRight < col[end] {
				end--
				cutRight = true
			}
			for col[end]-col[begin] > cursorDisplay {
				begin++
				cutLeft = true
			}
		}
	}
	prefix := fmt.Sprintf("LINE %d: ", line)
	if cutLeft {
		prefix += "..."
	}
	b.WriteString(prefix + string(chars[begin:end]))
	if cutRight {
		b.WriteString("...")
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat(" ", len(prefix)+col[loc]-col[begin]) + "^\n")
}

// screenWidth is how many columns libpq counts for a character: two for an
// East Asian wide one, else one (controls and combining marks too).
func screenWidth(c rune) int {
	return max(1, cursorWidth.RuneWidth(c))
}

// cursorWidth measures without East Asian ambiguous widths, whatever the
// locale: libpq counts them as one column.
var cursorWidth = &runewidth.Condition{EastAsianWidth: false}
