package isolation

import (
	"errors"
	"fmt"
	"io"
	"strings"

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
			if numeric[j] {
				fmt.Fprintf(&b, "%*s", width[j], c)
			} else {
				fmt.Fprintf(&b, "%-*s", width[j], c)
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

// libpqMessage is an error as libpq's PQerrorMessage words it: severity and
// primary message, then the DETAIL line.
func libpqMessage(err error) string {
	var m *sim.ServerMessage
	if errors.As(err, &m) {
		return serverText(m, false)
	}
	if m := sim.ServerError(err); m != nil {
		return serverText(m, false)
	}
	return err.Error() + "\n"
}

// serverText words a server message as libpq prints it, with its DETAIL
// and, for a notice, its HINT.
func serverText(m *sim.ServerMessage, hint bool) string {
	s := m.Severity + ":  " + m.Message + "\n"
	if m.Detail != "" {
		s += "DETAIL:  " + m.Detail + "\n"
	}
	if hint && m.Hint != "" {
		s += "HINT:  " + m.Hint + "\n"
	}
	return s
}
