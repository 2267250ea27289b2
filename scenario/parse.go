package scenario

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseError is a syntax or reference error with its position.
// Line and Col are 1-based; Col counts bytes, a tab counting as one.
type ParseError struct {
	File      string
	Line, Col int
	Msg       string
}

// Error returns "FILE:LINE:COLUMN: message".
func (e *ParseError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Parse reads a spec from src; file names the source in errors.
// Errors are *ParseError values.
func Parse(file string, src []byte) (*Spec, error) {
	p := &parser{file: file, lx: lexer{src: src, line: 1}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	raw, err := p.parseSpec()
	if err != nil {
		return nil, err
	}
	return p.resolve(raw)
}

// ---- lexer ----

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

type parser struct {
	file string
	lx   lexer
	tok  token
}

func (p *parser) advance() error {
	t, err := p.lx.next()
	if err != nil {
		err.File = p.file
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) errAt(at pos, format string, args ...any) error {
	return &ParseError{File: p.file, Line: at.line, Col: at.col, Msg: fmt.Sprintf(format, args...)}
}

// expected reports that the current token is none of the alternatives.
func (p *parser) expected(alts ...string) error {
	var what string
	switch len(alts) {
	case 1:
		what = alts[0]
	default:
		what = strings.Join(alts[:len(alts)-1], ", ") + " or " + alts[len(alts)-1]
	}
	return p.errAt(p.tok.pos, "expected %s, found %s", what, p.tok.describe())
}

// Raw parse results, resolved to the public types by resolve.
type rawSpec struct {
	spec     *Spec
	stepPos  map[*Step]pos // position of each step's name
	perms    []rawPerm
	allSteps []*Step // file order
}

type rawPerm struct {
	line  int
	steps []rawPStep
}

type rawPStep struct {
	name     string
	at       pos
	blockers []rawBlocker
}

type rawBlocker struct {
	star       bool
	name       string
	at         pos
	notices    int
	hasNotices bool
}

// parseSpec: setup* [teardown] session+ permutation* EOF.
func (p *parser) parseSpec() (*rawSpec, error) {
	raw := &rawSpec{spec: &Spec{}, stepPos: map[*Step]pos{}}
	for p.tok.kind == tSetup {
		sql, err := p.parseBlock()
		if err != nil {
			return nil, err
		}
		raw.spec.Setup = append(raw.spec.Setup, sql)
	}
	haveTeardown := false
	if p.tok.kind == tTeardown {
		sql, err := p.parseBlock()
		if err != nil {
			return nil, err
		}
		raw.spec.Teardown = sql
		haveTeardown = true
	}
	if p.tok.kind != tSession {
		if haveTeardown {
			return nil, p.expected(`"session"`)
		}
		return nil, p.expected(`"setup"`, `"teardown"`, `"session"`)
	}
	// After a session, what may follow depends on how it ended.
	var follow []string
	for p.tok.kind == tSession {
		sess, endedWithTeardown, err := p.parseSession(raw)
		if err != nil {
			return nil, err
		}
		raw.spec.Sessions = append(raw.spec.Sessions, sess)
		if endedWithTeardown {
			follow = []string{`"session"`, `"permutation"`, "end of file"}
		} else {
			follow = []string{`"step"`, `"teardown"`, `"session"`, `"permutation"`, "end of file"}
		}
	}
	for p.tok.kind == tPermutation {
		perm, err := p.parsePermutation()
		if err != nil {
			return nil, err
		}
		raw.perms = append(raw.perms, perm)
		follow = []string{"step name", `"permutation"`, "end of file"}
	}
	if p.tok.kind != tEOF {
		return nil, p.expected(follow...)
	}
	return raw, nil
}

// parseBlock parses "setup { SQL }" or "teardown { SQL }" at the keyword.
func (p *parser) parseBlock() (string, error) {
	kw := p.tok.text
	if err := p.advance(); err != nil {
		return "", err
	}
	if p.tok.kind != tSQL {
		return "", p.expected(fmt.Sprintf("SQL block after %q", kw))
	}
	sql := p.tok.text
	return sql, p.advance()
}

// parseSession: session NAME [setup SQL] step+ [teardown SQL].
func (p *parser) parseSession(raw *rawSpec) (*Session, bool, error) {
	if err := p.advance(); err != nil {
		return nil, false, err
	}
	if p.tok.kind != tIdent {
		return nil, false, p.expected("session name")
	}
	sess := &Session{Name: p.tok.text}
	if err := p.advance(); err != nil {
		return nil, false, err
	}
	if p.tok.kind == tSetup {
		sql, err := p.parseBlock()
		if err != nil {
			return nil, false, err
		}
		sess.Setup = sql
		if p.tok.kind != tStep {
			return nil, false, p.expected(`"step"`)
		}
	} else if p.tok.kind != tStep {
		return nil, false, p.expected(`"setup"`, `"step"`)
	}
	for p.tok.kind == tStep {
		line := p.tok.line
		if err := p.advance(); err != nil {
			return nil, false, err
		}
		if p.tok.kind != tIdent {
			return nil, false, p.expected("step name")
		}
		st := &Step{Name: p.tok.text, Session: sess, Line: line}
		raw.stepPos[st] = p.tok.pos
		if err := p.advance(); err != nil {
			return nil, false, err
		}
		if p.tok.kind != tSQL {
			return nil, false, p.expected("SQL block")
		}
		st.SQL = p.tok.text
		if err := p.advance(); err != nil {
			return nil, false, err
		}
		sess.Steps = append(sess.Steps, st)
		raw.allSteps = append(raw.allSteps, st)
	}
	if p.tok.kind == tTeardown {
		sql, err := p.parseBlock()
		if err != nil {
			return nil, false, err
		}
		sess.Teardown = sql
		return sess, true, nil
	}
	return sess, false, nil
}

// parsePermutation: permutation entry+, where
// entry = NAME [ "(" blocker { "," blocker } ")" ] and
// blocker = "*" | NAME [ notices INTEGER ].
func (p *parser) parsePermutation() (rawPerm, error) {
	perm := rawPerm{line: p.tok.line}
	if err := p.advance(); err != nil {
		return perm, err
	}
	if p.tok.kind != tIdent {
		return perm, p.expected("step name")
	}
	for p.tok.kind == tIdent {
		ps := rawPStep{name: p.tok.text, at: p.tok.pos}
		if err := p.advance(); err != nil {
			return perm, err
		}
		if p.tok.kind == tLParen {
			if err := p.advance(); err != nil {
				return perm, err
			}
			for {
				b := rawBlocker{at: p.tok.pos}
				switch p.tok.kind {
				case tStar:
					b.star = true
					if err := p.advance(); err != nil {
						return perm, err
					}
				case tIdent:
					b.name = p.tok.text
					if err := p.advance(); err != nil {
						return perm, err
					}
					if p.tok.kind == tNotices {
						if err := p.advance(); err != nil {
							return perm, err
						}
						if p.tok.kind != tInt {
							return perm, p.expected(`integer after "notices"`)
						}
						n, err := strconv.Atoi(p.tok.text)
						if err != nil || n > 1<<31-1 {
							return perm, p.errAt(p.tok.pos, "integer %s out of range", p.tok.text)
						}
						b.notices, b.hasNotices = n, true
						if err := p.advance(); err != nil {
							return perm, err
						}
					}
				default:
					return perm, p.expected(`"*"`, "step name")
				}
				ps.blockers = append(ps.blockers, b)
				if p.tok.kind == tComma {
					if err := p.advance(); err != nil {
						return perm, err
					}
					continue
				}
				if p.tok.kind == tRParen {
					if err := p.advance(); err != nil {
						return perm, err
					}
					break
				}
				if b.name != "" && !b.hasNotices {
					return perm, p.expected(`"notices"`, `","`, `")"`)
				}
				return perm, p.expected(`","`, `")"`)
			}
		}
		perm.steps = append(perm.steps, ps)
	}
	return perm, nil
}

// resolve performs isolationtester's check_testspec: unique step names, then
// for each permutation, known step names and blockers that name a step of the
// same permutation belonging to another session.
func (p *parser) resolve(raw *rawSpec) (*Spec, error) {
	byName := map[string]*Step{}
	for _, st := range raw.allSteps {
		if first, dup := byName[st.Name]; dup {
			fp := raw.stepPos[first]
			return nil, p.errAt(raw.stepPos[st], "duplicate step name %q (first defined at %d:%d)",
				st.Name, fp.line, fp.col)
		}
		byName[st.Name] = st
	}
	spec := raw.spec
	for _, rp := range raw.perms {
		perm := Permutation{Line: rp.line, Steps: make([]PermutationStep, len(rp.steps))}
		for i, rs := range rp.steps {
			st := byName[rs.name]
			if st == nil {
				return nil, p.errAt(rs.at, "undefined step %q in permutation", rs.name)
			}
			perm.Steps[i].Step = st
		}
		// Blockers may name any step of this permutation, earlier or later.
		for i, rs := range rp.steps {
			for _, rb := range rs.blockers {
				if rb.star {
					perm.Steps[i].Blockers = append(perm.Steps[i].Blockers, Blocker{Star: true})
					continue
				}
				var other *Step
				for j, os := range rp.steps {
					if os.name == rb.name {
						other = perm.Steps[j].Step
						break
					}
				}
				if other == nil {
					if byName[rb.name] != nil {
						return nil, p.errAt(rb.at, "blocking step %q referenced in permutation step %q is not part of this permutation",
							rb.name, rs.name)
					}
					return nil, p.errAt(rb.at, "undefined blocking step %q referenced in permutation step %q",
						rb.name, rs.name)
				}
				if other.Session == perm.Steps[i].Step.Session {
					return nil, p.errAt(rb.at, "permutation step %q cannot block on its own session", rs.name)
				}
				perm.Steps[i].Blockers = append(perm.Steps[i].Blockers,
					Blocker{Step: other, Notices: rb.notices, HasNotices: rb.hasNotices})
			}
		}
		spec.Permutations = append(spec.Permutations, perm)
	}
	return spec, nil
}
