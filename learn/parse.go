package learn

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"lockstep/lazyre"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
)

// Limits on what a lesson may hold: a course's lesson is 5–10 minutes.
const (
	maxParts    = 10
	maxActions  = 200
	maxOptions  = 5
	maxText     = 2000 // characters of one narration, question or explanation
	maxSQL      = 4000
	maxBenchSec = 10
)

// ParseError is a lesson file's first mistake, with where it is.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// parser reads a lesson line by line.
type parser struct {
	file string
	l    *Lesson
	line int
	// text is the field an indented line continues: the intro, a
	// narration, a question, an explanation, the exercise.
	text *string
	part *Part
	act  *Action
}

func (p *parser) fail(format string, args ...any) error {
	return &ParseError{File: p.file, Line: p.line, Msg: fmt.Sprintf(format, args...)}
}

var optionRE = lazyre.New(`^([0-9]+)[.)]\s*(.*)$`)

// Parse reads a lesson file and checks it: its strategies and scenarios
// exist, every session a claim names is one of its run's, every question
// has two to five options it can judge.
func Parse(file string, src []byte) (*Lesson, error) {
	if !utf8.Valid(src) {
		return nil, &ParseError{File: file, Msg: "not UTF-8 text"}
	}
	p := &parser{file: file, l: &Lesson{}}
	for i, raw := range strings.Split(string(src), "\n") {
		p.line = i + 1
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.ContainsRune(line, 0) {
			return nil, p.fail("a NUL byte")
		}
		var err error
		if line[0] == ' ' || line[0] == '\t' {
			err = p.indented(trimmed)
		} else {
			err = p.directive(trimmed)
		}
		if err != nil {
			return nil, err
		}
	}
	p.line = 0
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.l, nil
}

// directive reads a line that starts at the left margin.
func (p *parser) directive(line string) error {
	head, tail, hasColon := strings.Cut(line, ":")
	head, tail = strings.TrimSpace(head), strings.TrimSpace(tail)
	fields := strings.Fields(head)
	if len(fields) == 0 {
		return p.fail("%q: a line at the margin starts with lesson:, run:, step, … (see the format in README's Learn)", cut(line, 40))
	}
	verb := strings.ToLower(fields[0])
	if p.l.Title == "" && verb != "lesson" {
		return p.fail("a lesson starts with \"lesson: TITLE\"")
	}
	p.text, p.act = nil, nil
	switch verb {
	case "lesson", "minutes", "about", "intro", "run", "exercise":
		if !hasColon || len(fields) != 1 {
			return p.fail("write %q, then a colon, then its value", verb)
		}
	}
	switch verb {
	case "lesson":
		if p.l.Title != "" {
			return p.fail("a second \"lesson:\" line: one lesson a file")
		}
		if tail == "" {
			return p.fail("lesson: the title is missing")
		}
		p.l.Title = tail
		return p.check(tail)
	case "minutes":
		n, err := strconv.Atoi(tail)
		if err != nil || n < 1 || n > 60 {
			return p.fail("minutes: %q: a whole number of minutes from 1 to 60", tail)
		}
		p.l.Minutes = n
	case "about":
		p.l.About = tail
		return p.check(tail)
	case "intro":
		p.l.Intro = tail
		p.text = &p.l.Intro
	case "run":
		if len(p.l.Parts) == maxParts {
			return p.fail("more than %d parts: split the lesson", maxParts)
		}
		run, err := parseRun(tail)
		if err != nil {
			return p.fail("%v", err)
		}
		p.part = &Part{Run: run, Line: p.line}
		p.l.Parts = append(p.l.Parts, p.part)
	case "exercise":
		if p.l.Exercise != nil {
			return p.fail("a second exercise: a lesson ends with one")
		}
		if _, ok := Exercises[tail]; !ok {
			return p.fail("exercise %q: the exercises are %s", tail, strings.Join(ExerciseNames(), ", "))
		}
		p.l.Exercise = &ExerciseRef{Name: tail, Line: p.line}
		p.text = &p.l.Exercise.Text
	case "step", "commit", "rollback", "retry", "sql", "look", "bench":
		return p.action(verb, fields[1:], tail, hasColon)
	default:
		return p.fail("%q: a line at the margin is lesson:, minutes:, about:, intro:, run:, exercise:, or an action "+
			"(step, commit, rollback, retry, sql, look, bench); indent what belongs to the line above", fields[0])
	}
	return nil
}

// action reads an action's line: its verb, its arguments, and after the
// colon its narration (sql: its SQL).
func (p *parser) action(verb string, args []string, tail string, hasColon bool) error {
	if p.part == nil {
		return p.fail("%s before any \"run:\": say first what the lesson runs", verb)
	}
	if p.l.Exercise != nil {
		return p.fail("%s after the exercise: the exercise ends the lesson", verb)
	}
	if n := p.l.Steps(); n >= maxActions {
		return p.fail("more than %d actions: split the lesson", maxActions)
	}
	add := func(a *Action) {
		a.Line = p.line
		p.part.Actions = append(p.part.Actions, a)
		p.act = a
		p.text = &a.Say
	}
	one := func() (string, error) {
		if len(args) != 1 {
			return "", p.fail("%s names one session: %s T1", verb, verb)
		}
		if !nameRE.MatchString(args[0]) {
			return "", p.fail("%s %q: a session's name, such as T1", verb, args[0])
		}
		return args[0], nil
	}
	switch verb {
	case "step":
		if len(args) == 0 {
			return p.fail("step names the sessions to step: step T1, or step T1 T2 T1")
		}
		for _, s := range args {
			if !nameRE.MatchString(s) {
				return p.fail("step %q: a session's name, such as T1", s)
			}
			add(&Action{Kind: Step, Session: s, Say: tail})
		}
		if len(args) > 1 {
			p.act = nil // a question belongs to one step
		}
	case "commit", "rollback", "retry":
		s, err := one()
		if err != nil {
			return err
		}
		kind := map[string]ActionKind{"commit": Commit, "rollback": Rollback, "retry": Retry}[verb]
		add(&Action{Kind: kind, Session: s, Say: tail})
	case "sql":
		s, err := one()
		if err != nil {
			return err
		}
		if !hasColon || tail == "" {
			return p.fail("sql %s: the SQL follows a colon: sql %s: SELECT …", s, s)
		}
		if len(tail) > maxSQL {
			return p.fail("the SQL is longer than %d characters", maxSQL)
		}
		add(&Action{Kind: SQL, Session: s, SQL: tail})
		p.text = nil
	case "look":
		if len(args) > 0 {
			return p.fail("look takes nothing but its narration: look: …")
		}
		add(&Action{Kind: Look, Say: tail})
	case "bench":
		b, err := parseBench(strings.Join(args, " ") + tail)
		if err != nil {
			return p.fail("%v", err)
		}
		add(&Action{Kind: Bench, Bench: b})
	}
	return p.check(tail)
}

// indented reads a line that belongs to the one above.
func (p *parser) indented(line string) error {
	key, val, hasColon := strings.Cut(line, ":")
	key = strings.ToLower(strings.TrimSpace(key))
	val = strings.TrimSpace(val)
	q := (*Question)(nil)
	if p.act != nil {
		q = p.act.Question
	}
	if hasColon {
		switch key {
		case "say", "ask", "expect", "why":
			if p.act == nil {
				return p.fail("%s: belongs under an action of its own (a step line naming one session, commit, look, …)", key)
			}
		}
		switch key {
		case "say":
			if p.act.Say != "" {
				p.act.Say += " "
			}
			p.act.Say += val
			p.text = &p.act.Say
			return p.check(p.act.Say)
		case "ask":
			if q != nil {
				return p.fail("a second question for one action: ask it before another action (look: asks about the screen now)")
			}
			if val == "" {
				return p.fail("ask: the question is missing")
			}
			p.act.Question = &Question{Text: val, Line: p.line}
			p.text = &p.act.Question.Text
			return p.check(val)
		case "expect":
			if q == nil {
				return p.fail("expect: before any ask:")
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxOptions {
				return p.fail("expect: %q: the number of an option, 1 to %d", val, maxOptions)
			}
			q.Expect = n
			p.text = nil
			return nil
		case "why":
			if q == nil {
				return p.fail("why: explains a question's answer; ask: first")
			}
			q.Why = val
			p.text = &q.Why
			return p.check(val)
		}
	}
	if m := optionRE.FindStringSubmatch(line); m != nil && q != nil {
		n, _ := strconv.Atoi(m[1])
		if n != len(q.Options)+1 {
			return p.fail("option %d: the options are numbered 1, 2, … in order (the next is %d)", n, len(q.Options)+1)
		}
		if n > maxOptions {
			return p.fail("option %d: at most %d options (keys 1–%d answer)", n, maxOptions, maxOptions)
		}
		c, err := ParseClaim(m[2])
		if err != nil {
			return p.fail("option %d: %v", n, err)
		}
		q.Options = append(q.Options, Option{Text: strings.TrimSpace(m[2]), Claim: c})
		p.text = nil
		return nil
	}
	if p.text == nil {
		return p.fail("%q: an indented line continues the text above it, and there is none to continue here", cut(line, 40))
	}
	if *p.text != "" {
		*p.text += " "
	}
	*p.text += line
	return p.check(*p.text)
}

// check bounds a text field.
func (p *parser) check(text string) error {
	if len(text) > maxText {
		return p.fail("a text longer than %d characters: a narration is a sentence or two", maxText)
	}
	return nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// finish checks the whole lesson once it is read.
func (p *parser) finish() error {
	l := p.l
	if l.Title == "" {
		return p.fail("empty: a lesson starts with \"lesson: TITLE\"")
	}
	if len(l.Parts) == 0 {
		return p.fail("no \"run:\" line: a lesson runs a strategy or a scenario")
	}
	if l.Minutes == 0 {
		l.Minutes = 5
	}
	for _, part := range l.Parts {
		p.line = part.Line
		if len(part.Actions) == 0 {
			return p.fail("a part with no action: step a session, or remove the run: line")
		}
		names, labels, err := part.Run.sessionNames()
		if err != nil {
			return p.fail("%v", err)
		}
		known := func(s string) bool {
			_, ok := resolveName(s, names, labels)
			return ok
		}
		for _, a := range part.Actions {
			p.line = a.Line
			if a.Session != "" && !isAlias(a.Session) && !known(a.Session) {
				return p.fail("%s %s: this part's sessions are %s", a.Kind, a.Session, strings.Join(names, ", "))
			}
			q := a.Question
			if q == nil {
				continue
			}
			p.line = q.Line
			if len(q.Options) < 2 {
				return p.fail("a question needs two to %d options, numbered 1., 2., …", maxOptions)
			}
			if q.Expect > len(q.Options) {
				return p.fail("expect: %d, but the question has %d options", q.Expect, len(q.Options))
			}
			seen := map[string]bool{}
			for i, o := range q.Options {
				key := o.Claim.String()
				if seen[key] {
					return p.fail("option %d says what an earlier option says (%s)", i+1, key)
				}
				seen[key] = true
				for _, s := range o.Claim.Sessions() {
					if !known(s) && !isAlias(s) {
						return p.fail("option %d names %s: this part's sessions are %s", i+1, s, strings.Join(names, ", "))
					}
				}
				switch o.Claim.Kind {
				case Faster, Same:
					if a.Kind != Bench {
						return p.fail("option %d compares a bench's strategies: ask it before a bench action", i+1)
					}
					for _, s := range append([]string{o.Claim.Strategy}, o.Claim.Others...) {
						if o.Claim.Kind == Faster && !slices.Contains(a.Bench.Strategies, s) {
							return p.fail("option %d: %s is not one of the bench's strategies (%s)", i+1, s, strings.Join(a.Bench.Strategies, ", "))
						}
					}
				case Balance, BooksKept, BooksBroken:
					if part.Run.Scenario != "" && !strings.HasPrefix(part.Run.Scenario, "coupled") {
						return p.fail("option %d is about the ledger's books; scenario %s has tables of its own", i+1, part.Run.Scenario)
					}
				default:
					if a.Kind == Bench {
						return p.fail("option %d: a bench's question compares its strategies (A moves more than B, about the same)", i+1)
					}
				}
			}
		}
	}
	return nil
}

// isAlias says whether a lesson names a session by its part in the last
// failure: the victim (the session the server failed with a deadlock or a
// serialization failure) or the survivor (the other one).
func isAlias(s string) bool { return s == Victim || s == Survivor }

// resolveName finds the session a lesson names: by the engine's name (T1,
// T1@A), or a scenario's own (w1), exactly or whatever the case.
func resolveName(s string, names, labels []string) (string, bool) {
	for i := range names {
		if names[i] == s || (i < len(labels) && labels[i] == s) {
			return names[i], true
		}
	}
	for i := range names {
		if strings.EqualFold(names[i], s) || (i < len(labels) && strings.EqualFold(labels[i], s)) {
			return names[i], true
		}
	}
	return "", false
}

// parseRun reads what a part runs: "strategy naive, sessions 2, direction
// opposite" or "scenario job-queue, fix skip-locked".
func parseRun(s string) (Run, error) {
	var r Run
	items := strings.Split(s, ",")
	first := strings.Fields(items[0])
	if len(first) != 2 {
		return r, fmt.Errorf("run: %q: write run: strategy NAME or run: scenario NAME, then options after commas", strings.TrimSpace(items[0]))
	}
	switch strings.ToLower(first[0]) {
	case "strategy":
		if _, err := ledger.Lookup(first[1]); err != nil {
			return r, err
		}
		r.Strategy = first[1]
	case "scenario":
		r.Scenario = first[1]
	default:
		return r, fmt.Errorf("run: %q: a lesson runs a strategy or a scenario", first[0])
	}
	for _, item := range items[1:] {
		f := strings.Fields(item)
		if len(f) < 2 {
			return r, fmt.Errorf("run: %q: an option is a name and a value, such as \"sessions 3\"", strings.TrimSpace(item))
		}
		val := strings.Join(f[1:], " ")
		switch strings.ToLower(f[0]) {
		case "sessions":
			n, err := strconv.Atoi(val)
			if err != nil || sim.CheckSessions(n) != nil {
				return r, fmt.Errorf("run: sessions %q: %d to %d", val, sim.MinSessions, sim.MaxSessions)
			}
			r.Sessions = n
		case "direction":
			if _, err := sim.ParseDirection(val); err != nil {
				return r, err
			}
			r.Direction = val
		case "accounts":
			n, err := strconv.Atoi(val)
			if err != nil || n < 2 || n > 1000 {
				return r, fmt.Errorf("run: accounts %q: 2 to 1000", val)
			}
			r.Accounts = n
		case "amount":
			if !decimalRE.MatchString(val) || strings.HasPrefix(val, "-") || strings.Trim(val, "0.") == "" {
				return r, fmt.Errorf("run: amount %q: a positive amount such as 10.00", val)
			}
			r.Amount = val
		case "fix":
			r.Fix = val
		case "isolation":
			level, err := scenario.ParseIsolation(val)
			if err != nil {
				return r, err
			}
			r.Isolation = level
		case "transfers":
			ts, err := parseTransfers(f[1:])
			if err != nil {
				return r, err
			}
			r.Transfers = ts
		default:
			return r, fmt.Errorf("run: %q: the options are sessions, direction, accounts, amount, transfers, fix, isolation", f[0])
		}
	}
	if r.Strategy != "" && (r.Fix != "" || r.Isolation != "") {
		return r, fmt.Errorf("run: fix and isolation are a scenario's; a strategy has its own")
	}
	if r.Scenario != "" && (r.Sessions != 0 || r.Direction != "" || len(r.Transfers) > 0 || r.Amount != "") {
		return r, fmt.Errorf("run: a scenario has its own sessions; sessions, direction, transfers and amount are a strategy's")
	}
	if r.Scenario != "" {
		if _, err := r.Spec(); err != nil {
			return r, err
		}
	}
	if len(r.Transfers) > 0 {
		if r.Sessions == 0 {
			r.Sessions = len(r.Transfers)
		}
		if r.Sessions != len(r.Transfers) {
			return r, fmt.Errorf("run: %d transfers for %d sessions", len(r.Transfers), r.Sessions)
		}
		for i, t := range r.Transfers {
			if t.Session != fmt.Sprintf("T%d", i+1) {
				return r, fmt.Errorf("run: transfers: name them T1, T2, … in order (%s is number %d)", t.Session, i+1)
			}
			if int(max(t.From, t.To)) > r.accounts() {
				return r, fmt.Errorf("run: transfer %s %d->%d: the ledger has %d accounts (add accounts N)", t.Session, t.From, t.To, r.accounts())
			}
		}
	}
	if r.Strategy != "" && r.Direction == "ring" && r.accounts() < max(r.Sessions, 2) {
		return r, fmt.Errorf("run: a ring of %d sessions needs accounts %d", r.Sessions, r.Sessions)
	}
	return r, nil
}

func (r Run) accounts() int {
	if r.Accounts == 0 {
		return 2
	}
	return r.Accounts
}

// parseTransfers reads "T1 1->2 T2 2->1".
func parseTransfers(f []string) ([]TransferSpec, error) {
	if len(f)%2 != 0 {
		return nil, fmt.Errorf("run: transfers: a session and its transfer, in pairs: transfers T1 1->2 T2 3->4")
	}
	var out []TransferSpec
	for i := 0; i < len(f); i += 2 {
		from, to, ok := strings.Cut(f[i+1], "->")
		a, err1 := strconv.ParseInt(from, 10, 64)
		b, err2 := strconv.ParseInt(to, 10, 64)
		if !ok || err1 != nil || err2 != nil || a < 1 || b < 1 || a == b {
			return nil, fmt.Errorf("run: transfers: %q: FROM->TO, two different accounts, such as 1->2", f[i+1])
		}
		out = append(out, TransferSpec{Session: f[i], From: a, To: b})
	}
	return out, nil
}

// parseBench reads "ordered, table-lock, workers 4, accounts 100, seconds 1".
func parseBench(s string) (*BenchSpec, error) {
	b := &BenchSpec{Workers: 4, Accounts: 100, Seconds: 1}
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		switch {
		case len(f) == 1:
			if _, err := ledger.Lookup(f[0]); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
			b.Strategies = append(b.Strategies, f[0])
		case len(f) == 2:
			n, err := strconv.Atoi(f[1])
			switch strings.ToLower(f[0]) {
			case "workers":
				if err != nil || n < 1 || n > 16 {
					return nil, fmt.Errorf("bench: workers %q: 1 to 16", f[1])
				}
				b.Workers = n
			case "accounts":
				if err != nil || n < 2 || n > 10000 {
					return nil, fmt.Errorf("bench: accounts %q: 2 to 10000", f[1])
				}
				b.Accounts = n
			case "seconds":
				if err != nil || n < 1 || n > maxBenchSec {
					return nil, fmt.Errorf("bench: seconds %q: 1 to %d", f[1], maxBenchSec)
				}
				b.Seconds = n
			default:
				return nil, fmt.Errorf("bench: %q: the options are workers, accounts, seconds", f[0])
			}
		default:
			return nil, fmt.Errorf("bench: %q: strategies, then workers N, accounts N, seconds N, separated by commas", strings.TrimSpace(item))
		}
	}
	if len(b.Strategies) != 2 {
		return nil, fmt.Errorf("bench: compare two strategies: bench ordered, table-lock, workers 4")
	}
	return b, nil
}

// Spec is the scenario a part runs, with its fix and isolation level.
func (r Run) Spec() (*scenario.Spec, error) {
	name, err := r.ScenarioName()
	if err != nil {
		return nil, err
	}
	return scenario.LoadBuiltin(name, r.Isolation)
}

// ScenarioName is the built-in scenario a part runs, its fix applied.
func (r Run) ScenarioName() (string, error) {
	if r.Fix == "" {
		return r.Scenario, nil
	}
	return scenario.WithFix(r.Scenario, r.Fix)
}

// sessionNames are the part's sessions as the engine names them, and the
// scenario's own names for them.
func (r Run) sessionNames() (names, labels []string, err error) {
	if r.Strategy != "" {
		n := max(r.Sessions, sim.MinSessions)
		for i := range n {
			names = append(names, fmt.Sprintf("T%d", i+1))
		}
		return names, nil, nil
	}
	sc, err := r.Spec()
	if err != nil {
		return nil, nil, err
	}
	cfg := sim.Config{Scenario: sc, Sessions: len(sc.Sessions)}
	two := cfg.TwoDatabases()
	for i, s := range sc.Sessions {
		if two {
			names = append(names, s.Name)
		} else {
			names = append(names, fmt.Sprintf("T%d", i+1))
		}
		labels = append(labels, s.Name)
	}
	return names, labels, nil
}
