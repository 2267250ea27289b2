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
// entry = NAME [ "(" blocker { "," blocker } ")" ].
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
			var err error
			if ps.blockers, err = p.parseBlockers(); err != nil {
				return perm, err
			}
		}
		perm.steps = append(perm.steps, ps)
	}
	return perm, nil
}

// parseBlockers: "(" blocker { "," blocker } ")", the "(" current.
func (p *parser) parseBlockers() ([]rawBlocker, error) {
	var out []rawBlocker
	for {
		if err := p.advance(); err != nil { // past "(" or ","
			return nil, err
		}
		b, err := p.parseBlocker()
		if err != nil {
			return nil, err
		}
		out = append(out, b)
		switch {
		case p.tok.kind == tComma:
			continue
		case p.tok.kind == tRParen:
			return out, p.advance()
		case b.name != "" && !b.hasNotices:
			return nil, p.expected(`"notices"`, `","`, `")"`)
		}
		return nil, p.expected(`","`, `")"`)
	}
}

// parseBlocker: "*" | NAME [ notices INTEGER ].
func (p *parser) parseBlocker() (rawBlocker, error) {
	b := rawBlocker{at: p.tok.pos}
	switch p.tok.kind {
	case tStar:
		b.star = true
		return b, p.advance()
	case tIdent:
		b.name = p.tok.text
	default:
		return b, p.expected(`"*"`, "step name")
	}
	if err := p.advance(); err != nil || p.tok.kind != tNotices {
		return b, err
	}
	if err := p.advance(); err != nil {
		return b, err
	}
	if p.tok.kind != tInt {
		return b, p.expected(`integer after "notices"`)
	}
	n, err := strconv.Atoi(p.tok.text)
	if err != nil || n > 1<<31-1 {
		return b, p.errAt(p.tok.pos, "integer %s out of range", p.tok.text)
	}
	b.notices, b.hasNotices = n, true
	return b, p.advance()
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
				b, err := p.resolveBlocker(rp, perm, i, rb, byName)
				if err != nil {
					return nil, err
				}
				perm.Steps[i].Blockers = append(perm.Steps[i].Blockers, b)
			}
		}
		spec.Permutations = append(spec.Permutations, perm)
	}
	return spec, nil
}

// resolveBlocker finds the step a blocker of permutation step i names: a
// step of the same permutation, of another session.
func (p *parser) resolveBlocker(rp rawPerm, perm Permutation, i int, rb rawBlocker, byName map[string]*Step) (Blocker, error) {
	rs := rp.steps[i]
	if rb.star {
		return Blocker{Star: true}, nil
	}
	var other *Step
	for j, os := range rp.steps {
		if os.name == rb.name {
			other = perm.Steps[j].Step
			break
		}
	}
	switch {
	case other == nil && byName[rb.name] != nil:
		return Blocker{}, p.errAt(rb.at, "blocking step %q referenced in permutation step %q is not part of this permutation",
			rb.name, rs.name)
	case other == nil:
		return Blocker{}, p.errAt(rb.at, "undefined blocking step %q referenced in permutation step %q",
			rb.name, rs.name)
	case other.Session == perm.Steps[i].Step.Session:
		return Blocker{}, p.errAt(rb.at, "permutation step %q cannot block on its own session", rs.name)
	}
	return Blocker{Step: other, Notices: rb.notices, HasNotices: rb.hasNotices}, nil
}
