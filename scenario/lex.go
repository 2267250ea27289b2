package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// tokKind is the kind of a token of the spec language, as specscanner.l
// scans it.
type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tSQL
	tInt
	tSetup
	tTeardown
	tSession
	tStep
	tPermutation
	tNotices
	tLParen
	tRParen
	tComma
	tStar
)

var keywords = map[string]tokKind{
	"notices":     tNotices,
	"permutation": tPermutation,
	"session":     tSession,
	"setup":       tSetup,
	"step":        tStep,
	"teardown":    tTeardown,
}

// punct maps the single-character tokens to their kinds.
var punct = map[byte]tokKind{'(': tLParen, ')': tRParen, ',': tComma, '*': tStar}

type pos struct{ line, col int }

type token struct {
	kind tokKind
	text string // identifier value, SQL text or integer digits
	pos
}

// describe names a token for "found ..." in error messages.
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of file"
	case tIdent:
		return fmt.Sprintf("identifier %q", t.text)
	case tSQL:
		return "SQL block"
	case tInt:
		return "integer " + t.text
	case tLParen:
		return `"("`
	case tRParen:
		return `")"`
	case tComma:
		return `","`
	case tStar:
		return `"*"`
	}
	for w, k := range keywords {
		if k == t.kind {
			return strconv.Quote(w)
		}
	}
	return "token"
}

type lexer struct {
	src       []byte
	off       int
	line      int
	lineStart int // offset of the first byte of the current line
}

func (lx *lexer) here() pos { return pos{lx.line, lx.off - lx.lineStart + 1} }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c >= 0x80
}
func isIdentCont(c byte) bool { return isIdentStart(c) || isDigit(c) || c == '$' }

// next returns the next token; the error, if any, is a *ParseError without File.
func (lx *lexer) next() (token, *ParseError) {
	for lx.off < len(lx.src) {
		c := lx.src[lx.off]
		switch {
		case c == '\n':
			lx.off++
			lx.line++
			lx.lineStart = lx.off
		case isSpace(c):
			lx.off++
		case c == '#': // comment: up to, not including, '\n' or '\r'
			for lx.off < len(lx.src) && lx.src[lx.off] != '\n' && lx.src[lx.off] != '\r' {
				lx.off++
			}
		case c == '"':
			return lx.quoted()
		case c == '{':
			return lx.sqlBlock()
		case isDigit(c):
			at := lx.here()
			start := lx.off
			for lx.off < len(lx.src) && isDigit(lx.src[lx.off]) {
				lx.off++
			}
			return token{tInt, string(lx.src[start:lx.off]), at}, nil
		case isIdentStart(c):
			at := lx.here()
			start := lx.off
			for lx.off < len(lx.src) && isIdentCont(lx.src[lx.off]) {
				lx.off++
			}
			word := string(lx.src[start:lx.off])
			if k, ok := keywords[word]; ok {
				return token{k, word, at}, nil
			}
			return token{tIdent, word, at}, nil
		case c == '(' || c == ')' || c == ',' || c == '*':
			at := lx.here()
			lx.off++
			return token{punct[c], string(c), at}, nil
		default:
			return token{}, &ParseError{Line: lx.line, Col: lx.off - lx.lineStart + 1,
				Msg: fmt.Sprintf("unexpected character %q", string(c))}
		}
	}
	return token{tEOF, "", lx.here()}, nil
}

// quoted scans a double-quoted identifier; "" stands for one quote.
func (lx *lexer) quoted() (token, *ParseError) {
	at := lx.here()
	lx.off++
	var b strings.Builder
	for {
		if lx.off >= len(lx.src) {
			return token{}, &ParseError{Line: at.line, Col: at.col, Msg: "unterminated quoted identifier"}
		}
		c := lx.src[lx.off]
		switch {
		case c == '\n':
			return token{}, &ParseError{Line: at.line, Col: at.col, Msg: "unexpected newline in quoted identifier"}
		case c == '"' && lx.off+1 < len(lx.src) && lx.src[lx.off+1] == '"':
			b.WriteByte('"')
			lx.off += 2
		case c == '"':
			lx.off++
			return token{tIdent, b.String(), at}, nil
		default:
			b.WriteByte(c)
			lx.off++
		}
	}
}

// sqlBlock scans "{ ... }" the way specscanner.l does: the block ends at the
// first '}', and only [ \t\r\f] next to the braces is dropped.
func (lx *lexer) sqlBlock() (token, *ParseError) {
	at := lx.here()
	lx.off++
	for lx.off < len(lx.src) && isSpace(lx.src[lx.off]) {
		lx.off++
	}
	start := lx.off
	end := start
	for end < len(lx.src) && lx.src[end] != '}' {
		end++
	}
	if end >= len(lx.src) {
		return token{}, &ParseError{Line: at.line, Col: at.col, Msg: `unterminated SQL block (no closing "}")`}
	}
	body := lx.src[start:end]
	for i, c := range body {
		if c == '\n' {
			lx.line++
			lx.lineStart = start + i + 1
		}
	}
	lx.off = end + 1
	return token{tSQL, strings.TrimRight(string(body), " \t\r\f"), at}, nil
}

// ---- parser ----
