package tui

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"lockstep/learn"
	"lockstep/sim"
)

// LessonOptions run a lesson in the interface (lockstep learn N): the
// narration above the sessions, each question as a prompt before its
// step, the step run on the real server, the answer marked right or wrong
// with what the server did.
type LessonOptions struct {
	Lesson *learn.Lesson
	// Env is what the lesson's parts run on (its DB is Options.DB).
	Env learn.Env
	// Progress, when set, keeps the student's answers; it is saved after
	// each one.
	Progress *learn.Progress
	// Of is how many lessons the course has (0 for a lesson file).
	Of int
	// Next is the lesson after l, or nil at the course's end.
	Next func(l *learn.Lesson) *learn.Lesson
	// Exercise grades and edits answers; nil leaves the exercise to the
	// command line.
	Exercise *ExerciseHooks
	// Report, when set, is told where the student is after each step —
	// the lesson's number, the step, how many right of how many asked —
	// and must not block (lockstep class shows it to the teacher).
	Report func(lesson, step, steps, right, asked int)
}

// ExerciseHooks are what the interface's exercise keys call.
type ExerciseHooks struct {
	// Answer is the student's answer file for an exercise, made from the
	// exercise's start when missing.
	Answer func(name string) (string, error)
	// Grade grades the answer on the server.
	Grade func(ctx context.Context, name string) (*learn.Grade, error)
}

// lessonLayer is a lesson over the stepping screen: where in the lesson
// the student is, the question asked, the action in flight and what the
// server did, the lesson's own moments for ←.
type lessonLayer struct {
	opts LessonOptions
	l    *learn.Lesson
	flat []learn.At
	pos  int // the next action
	// part is the part whose engine runs (-1 before the first).
	part  int
	ready bool
	// asking: the question of the next action is on screen, waiting for 1–5.
	asking bool
	// judge follows the action in flight; busy covers the time an action
	// runs before it has a judge (a retry, a bench).
	judge   *learn.Judge
	busy    bool
	answer  int
	began   time.Time
	last    *lessonResult
	aliases learn.Aliases
	books   *sim.Balances
	moments []lessonMoment
	// hist is the moment ← shows, -1 when live.
	hist int
	pane *lessonPane
	// grade is the last grade of the exercise, grading says one runs.
	grade   *learn.Grade
	grading bool
	// shown is how long the last action took from its key to its result.
	shown time.Duration
	// title names a part that runs what no strategy names (a student's
	// answer), for the header; "" otherwise.
	title string
}

// lessonResult is what one action did, and the answer given before it.
type lessonResult struct {
	at      learn.At
	obs     *learn.Observation
	verdict *learn.Verdict
}

// lessonMoment is the screen after an action (or at a part's start),
// as the history keeps it.
type lessonMoment struct {
	frame  int
	pos    int // the action after it
	result *lessonResult
}

// sameLineAfter is the action that follows at from the same line of the
// lesson (step T1 T2: one sentence, a statement each), if there is one.
func (ll *lessonLayer) sameLineAfter(at learn.At) (learn.At, bool) {
	for i, f := range ll.flat {
		if f.Part == at.Part && f.Index == at.Index {
			if i+1 < len(ll.flat) {
				n := ll.flat[i+1]
				return n, n.Part == at.Part && n.Action.Line == at.Action.Line && n.Action.Kind == learn.Step
			}
			break
		}
	}
	return learn.At{}, false
}

// questionAhead says whether a question of the running part is still to
// be answered: until then the scenario's summary, which states what the
// server will do, is withheld — it would give the answer away.
func (ll *lessonLayer) questionAhead() bool {
	for _, at := range ll.flat[min(ll.pos, len(ll.flat)):] {
		if at.Part == ll.part && at.Action.Question != nil {
			return true
		}
	}
	return false
}

func newLessonLayer(opts LessonOptions, l *look) *lessonLayer {
	return &lessonLayer{opts: opts, l: opts.Lesson, flat: opts.Lesson.Flat(), part: -1, hist: -1,
		aliases: learn.Aliases{}, answer: -1, pane: &lessonPane{box: box{look: l}}}
}

// at is the next action, if any is left.
func (ll *lessonLayer) at() (learn.At, bool) {
	if ll.pos >= len(ll.flat) {
		return learn.At{}, false
	}
	return ll.flat[ll.pos], true
}

// progress is the lesson's progress, or nil when none is kept.
func (ll *lessonLayer) progress() *learn.LessonProgress {
	if ll.opts.Progress == nil {
		return nil
	}
	return ll.opts.Progress.Lesson(ll.l)
}

// lessonRun is the engine's set-up for a part of the lesson.
func (m *Model) lessonRun(part int) (sim.Config, string, error) {
	env := m.lesson.opts.Env
	env.DB = m.opts.DB
	cfg, summary, err := env.Config(m.lesson.l.Parts[part])
	if err != nil {
		return cfg, "", err
	}
	if cfg.TwoDatabases() && env.Second != nil {
		if cfg.DB2, err = env.Second(m.ctx); err != nil {
			return cfg, "", err
		}
	}
	return cfg, summary, nil
}

// startPart starts the engine of a part of the lesson.
func (m *Model) startPart(part int) tea.Cmd {
	ll := m.lesson
	cfg, summary, err := m.lessonRun(part)
	if err != nil {
		m.status = fmt.Sprintf("part %d of the lesson cannot start: %v", part+1, err)
		return nil
	}
	ll.part, ll.ready, ll.asking = part, false, false
	m.opts.ScenarioSummary = summary
	ll.title = ""
	if ll.l.Parts[part].Make != nil {
		ll.title = "your answer"
	}
	m.cfg = cfg
	return m.startEngine(cfg)
}

// lessonReady takes a part's engine in: the first action's question, if
// it has one, is asked at once.
func (m *Model) lessonReady() {
	ll := m.lesson
	ll.ready = true
	ll.books = nil
	ll.moments = append(ll.moments, lessonMoment{frame: len(m.hist.frames) - 1, pos: ll.pos})
	m.askNext()
	m.reportLesson()
}

// reportLesson tells Report where the student is.
func (m *Model) reportLesson() {
	ll := m.lesson
	if ll.opts.Report == nil {
		return
	}
	right, asked := 0, 0
	if lp := ll.progress(); lp != nil {
		right, asked = lp.Score()
	}
	ll.opts.Report(ll.l.Number, ll.pos, len(ll.flat), right, asked)
}

// askNext puts the next action's question on screen, if it has one and
// its part runs; the footer's answer keys say how many options it has.
func (m *Model) askNext() {
	ll := m.lesson
	at, ok := ll.at()
	ll.asking = ok && ll.ready && at.Part == ll.part && at.Action.Question != nil
	ll.answer = -1
	if ll.asking {
		n := len(at.Action.Question.Options)
		for _, a := range m.lessonKeys {
			if a.Help().Desc == "answer" {
				a.SetHelp(fmt.Sprintf("1–%d", n), "answer")
			}
		}
	}
}

// lessonEvent feeds an engine event to the action in flight.
func (m *Model) lessonEvent(ev sim.Event) {
	ll := m.lesson
	if ev.Kind == sim.BooksRead && ev.Books != nil && ev.Books.Err == nil {
		ll.books = ev.Books
	}
	if ll.judge == nil || m.eng == nil {
		return
	}
	ll.judge.Feed(ev, m.eng.Sessions())
	if ll.judge.WantsPoll() {
		m.eng.PollNow()
	}
	if ll.judge.Done() {
		m.lessonSettled(ll.judge.Observation())
	}
}

// lessonTick ends an action that does not settle in time.
func (m *Model) lessonTick(now time.Time) {
	ll := m.lesson
	if ll != nil && ll.judge != nil && ll.judge.Expired(now) {
		m.lessonSettled(ll.judge.Observation())
	}
}

// lessonGo takes the next action: asks its question, or runs it.
func (m *Model) lessonGo() tea.Cmd {
	ll := m.lesson
	at, ok := ll.at()
	if !ok {
		m.status = "the lesson is done: " + m.lessonEndHint()
		return nil
	}
	if at.Part != ll.part {
		return m.startPart(at.Part)
	}
	if at.Action.Question != nil && ll.answer < 0 {
		ll.asking = true
		m.status = fmt.Sprintf("answer first: 1–%d", len(at.Action.Question.Options))
		return nil
	}
	return m.perform(at)
}

// lessonAnswer takes the student's answer to the question on screen and
// runs the action.
func (m *Model) lessonAnswer(n int) tea.Cmd {
	ll := m.lesson
	at, _ := ll.at()
	ll.asking, ll.answer = false, n
	return m.perform(at)
}

// perform runs an action on the engine and starts judging it.
func (m *Model) perform(at learn.At) tea.Cmd {
	ll := m.lesson
	a := at.Action
	ll.began = time.Now()
	sessions := m.eng.Sessions()
	name, idx, err := a.Target(sessions, ll.aliases)
	hasLedger := m.cfg.HasLedger()
	switch {
	case err != nil:
		j := learn.NewJudge(name, idx, sessions, hasLedger, ll.books, ll.began)
		j.Fail(err.Error())
		ll.judge = j
		m.lessonSettled(j.Observation())
		return nil
	case a.Kind == learn.Bench:
		ll.busy = true
		env := ll.opts.Env
		env.DB = m.opts.DB
		ctx, spec, id := m.ctx, a.Bench, m.engID
		m.status = fmt.Sprintf("measuring %s for %d s each…", strings.Join(spec.Strategies, " and "), spec.Seconds)
		return func() tea.Msg {
			res, err := learn.RunBench(ctx, env, spec)
			return lessonDoneMsg{id: id, bench: res, err: err, sessions: sessions}
		}
	case a.Kind == learn.Retry:
		ll.busy = true
		ctx, eng, id := m.ctx, m.eng, m.engID
		return func() tea.Msg {
			return lessonDoneMsg{id: id, retried: true, err: learn.Send(ctx, eng, a, idx), name: name}
		}
	}
	j := learn.NewJudge(name, idx, sessions, hasLedger, ll.books, ll.began)
	j.Aliases(ll.aliases)
	ll.judge = j
	if idx >= 0 {
		m.sessions.Select(idx, len(m.live.sessions))
	}
	if err := learn.Send(m.ctx, m.eng, a, idx); err != nil {
		j.Fail(err.Error())
		m.lessonSettled(j.Observation())
		return nil
	}
	if j.WantsPoll() {
		m.eng.PollNow()
	}
	return nil
}

// lessonDoneMsg is the end of an action that ran off the event loop: a
// retry's rollback and rewind, a bench.
type lessonDoneMsg struct {
	id       int
	retried  bool
	name     string
	bench    map[string]float64
	sessions []sim.SessionInfo
	err      error
}

// lessonDone takes a retry's or a bench's end.
func (m *Model) lessonDone(msg lessonDoneMsg) {
	ll := m.lesson
	if ll == nil || msg.id != m.engID || m.eng == nil {
		return
	}
	ll.busy = false
	m.status = ""
	if msg.retried {
		sessions := m.eng.Sessions()
		m.live.sessions = sessions
		j := learn.NewJudge(msg.name, -1, sessions, m.cfg.HasLedger(), ll.books, time.Now())
		j.Aliases(ll.aliases)
		if msg.err != nil {
			j.Fail(msg.err.Error())
			m.lessonSettled(j.Observation())
			return
		}
		m.logLine(logEntry{at: m.clock(), who: msg.name, text: "↺ the transfer starts again (a retry)"})
		ll.judge = j
		m.eng.PollNow()
		return
	}
	obs := &learn.Observation{Sessions: msg.sessions, Ended: map[string]learn.Ending{}, Bench: msg.bench}
	if msg.err != nil {
		obs.Problem = msg.err.Error()
	}
	m.lessonSettled(obs)
}

// lessonSettled takes what an action did: the question judged, the
// progress saved, the lesson moved on.
func (m *Model) lessonSettled(obs *learn.Observation) {
	ll := m.lesson
	at, ok := ll.at()
	ll.judge, ll.busy = nil, false
	if !ok {
		return
	}
	res := &lessonResult{at: at, obs: obs}
	if q := at.Action.Question; q != nil {
		v := obs.Judge(q, ll.answer)
		res.verdict = &v
		if lp := ll.progress(); lp != nil && v.Decided() && ll.answer >= 0 {
			lp.Answered(learn.QuestionKey(at.Question, q), v.Right)
		}
	}
	ll.aliases.Learn(obs)
	ll.last = res
	ll.pos++
	ll.shown = time.Since(ll.began)
	ll.moments = append(ll.moments, lessonMoment{frame: len(m.hist.frames) - 1, pos: ll.pos, result: res})
	if lp := ll.progress(); lp != nil {
		lp.Reached = max(lp.Reached, ll.pos)
		lp.Title = ll.l.Title
		if ll.pos == len(ll.flat) {
			lp.Done = true
		}
		lp.Updated = time.Now()
		if err := ll.opts.Progress.Save(); err != nil {
			m.status = err.Error()
		}
	}
	m.askNext()
	m.reportLesson()
}

// lessonEndHint says what the student can do at the lesson's end.
func (m *Model) lessonEndHint() string {
	ll := m.lesson
	var next []string
	if ex := ll.l.Exercise; ex != nil && ll.opts.Exercise != nil {
		next = append(next, "e edits your answer to the exercise, g grades it")
	}
	if ll.opts.Next != nil && ll.opts.Next(ll.l) != nil {
		next = append(next, "n starts the next lesson")
	}
	next = append(next, "r takes this one again", "q quits")
	return strings.Join(next, ", ")
}

// lessonTable is a lesson's keys: its own, then the screen's keys for
// looking closer; the keys that step the sessions by hand say why not.
func (m *Model) lessonTable() actions {
	ll := func() *lessonLayer { return m.lesson }
	const lesson, look = "The lesson", "Look closer"
	notAsking := func() string {
		if ll().asking {
			return ""
		}
		return "no question is asked now: space goes on"
	}
	table := actions{
		{Binding: key.NewBinding(key.WithKeys("space", "enter", "right"), key.WithHelp("space", "next")),
			long:  "take the lesson's next step (→ and enter too): its question first, then the statement on the server",
			group: lesson, bar: 1,
			why: func() string {
				switch l := ll(); {
				case m.eng == nil || m.starting || !l.ready:
					return "the sessions are starting…"
				case l.judge != nil || l.busy:
					return "the server is still settling the last step"
				case l.asking:
					if at, ok := l.at(); ok {
						return fmt.Sprintf("answer first: 1–%d", len(at.Action.Question.Options))
					}
				case l.pos >= len(l.flat):
					return "the lesson is done: " + m.lessonEndHint()
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return m.lessonGo() }},
		{Binding: key.NewBinding(key.WithKeys("1", "2", "3", "4", "5"), key.WithHelp("1–5", "answer")),
			long:  "answer the question with option N; then the step runs on the server and the answer is marked",
			group: lesson, bar: 1, why: notAsking,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				at, _ := ll().at()
				n := int(msg.String()[0] - '1')
				if n >= len(at.Action.Question.Options) {
					m.status = fmt.Sprintf("the question has %d options: 1–%d answer", len(at.Action.Question.Options), len(at.Action.Question.Options))
					return nil
				}
				return m.lessonAnswer(n)
			}},
		{Binding: key.NewBinding(key.WithKeys("left"), key.WithHelp("←", "back")),
			long:  "go back through the lesson's steps, each screen as it was (→ forward, esc back to now)",
			group: lesson, bar: 2,
			why: func() string {
				if len(ll().moments) < 2 {
					return "no earlier step yet"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { m.lessonBack(len(m.lesson.moments) - 2); return nil }},
		{Binding: key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "restart")),
			long:  "take the lesson again from its start (a new run)",
			group: lesson, bar: 6,
			why: func() string {
				if ll().grading {
					return "the exercise is being graded"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return m.restartLesson(m.lesson.l) }},
		{Binding: key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "next lesson")),
			long:  "start the next lesson of the course",
			group: lesson, bar: 3,
			why: func() string {
				l := ll()
				switch {
				case l.opts.Next == nil || l.opts.Next(l.l) == nil:
					return "this is the course's last lesson"
				case l.pos < len(l.flat):
					return "finish this lesson first (or quit and run lockstep learn N)"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return m.restartLesson(m.lesson.opts.Next(m.lesson.l)) }},
		{Binding: key.NewBinding(key.WithKeys("e"), key.WithHelp("e", "edit answer")),
			long:  "edit your answer to the lesson's exercise in $EDITOR",
			group: lesson, bar: 2, why: m.exerciseWhy,
			run: func(tea.KeyPressMsg) tea.Cmd { return m.editAnswer() }},
		{Binding: key.NewBinding(key.WithKeys("g"), key.WithHelp("g", "grade")),
			long:  "grade your answer on the server: every interleaving of two sessions, then a chaos run",
			group: lesson, bar: 2,
			why: func() string {
				if why := m.exerciseWhy(); why != "" {
					return why
				}
				if ll().grading {
					return "grading already: every interleaving runs on the server"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return m.gradeAnswer() }},
		{Binding: key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "play it")),
			long:  "play the interleaving your answer failed in, step by step, as a lesson",
			group: lesson, bar: 2,
			why: func() string {
				if g := ll().grade; g == nil || g.Counterexample == nil {
					return "p plays the interleaving a graded answer failed in; none has failed"
				}
				return ""
			},
			run: func(tea.KeyPressMsg) tea.Cmd {
				g := m.lesson.grade
				return m.restartLesson(g.Lesson())
			}},
	}
	byHand := func(k, help string) *action {
		return &action{Binding: key.NewBinding(key.WithKeys(k), key.WithHelp(k, help)), group: "Stepping by hand (not in a lesson)",
			why: func() string {
				return "in a lesson the lesson steps the sessions (space); quit and run lockstep without learn to step them yourself"
			},
			run: func(tea.KeyPressMsg) tea.Cmd { return nil }}
	}
	table = append(table, byHand("c", "commit"), byHand("x", "rollback"), byHand("k", "cancel"), byHand("a", "autoplay"),
		byHand("m", "strategy"), byHand("s", "set-up"), byHand("f", "next fix"))
	// The screen's keys for looking closer, as in free stepping.
	for _, a := range m.table {
		if a.group != look || key.Matches(tea.KeyPressMsg{Code: 'h', Text: "h"}, a.Binding) {
			continue // h is the run's own history; ← is the lesson's
		}
		table = append(table, a)
	}
	return table
}

// exerciseWhy says why the exercise keys cannot act now, or "".
func (m *Model) exerciseWhy() string {
	ll := m.lesson
	switch {
	case ll.l.Exercise == nil:
		return "this lesson has no exercise (lessons 6 and 10 have)"
	case ll.opts.Exercise == nil:
		return "grade it with lockstep learn --check " + ll.l.Exercise.Name
	case ll.pos < len(ll.flat):
		return "the exercise comes at the lesson's end"
	}
	return ""
}

// restartLesson starts lesson l from its start, on a new run.
func (m *Model) restartLesson(l *learn.Lesson) tea.Cmd {
	opts := m.lesson.opts
	opts.Lesson = l
	grade := m.lesson.grade
	m.lesson = newLessonLayer(opts, m.look)
	if l.Exercise == nil || grade == nil || grade.Exercise != l.Exercise.Name {
		grade = nil
	}
	m.lesson.grade = grade
	m.hist = history{}
	m.mode = modeNormal
	m.logLine(logEntry{at: m.clock(), text: "lesson: " + l.Title})
	return m.startPart(0)
}

// lessonBack shows lesson moment i, as ← moves through them.
func (m *Model) lessonBack(i int) {
	ll := m.lesson
	if i < 0 || i >= len(ll.moments) {
		return
	}
	if i == len(ll.moments)-1 {
		m.lessonLive()
		return
	}
	ll.hist = i
	m.mode = modeHistory
	m.tl.Go(max(0, ll.moments[i].frame))
	m.sel.Clear()
}

// lessonLive returns from the lesson's history to now.
func (m *Model) lessonLive() {
	m.lesson.hist = -1
	m.mode = modeNormal
	m.tl.Pause()
	m.sel.Clear()
}

// lessonHistTable is the keys while ← shows a lesson's earlier step.
func (m *Model) lessonHistTable() actions {
	const moving, look = "Move through the lesson", "Look closer"
	table := actions{
		{Binding: key.NewBinding(key.WithKeys("left"), key.WithHelp("←/→", "step")),
			long:  "the lesson's step before / after this one",
			group: moving, bar: 1,
			run: func(tea.KeyPressMsg) tea.Cmd { m.lessonBack(max(0, m.lesson.hist-1)); return nil }},
		{Binding: key.NewBinding(key.WithKeys("right")),
			group: moving,
			run:   func(tea.KeyPressMsg) tea.Cmd { m.lessonBack(m.lesson.hist + 1); return nil }},
		{Binding: key.NewBinding(key.WithKeys("home"), key.WithHelp("home", "first")),
			long:  "the lesson's first step",
			group: moving, bar: 3,
			run: func(tea.KeyPressMsg) tea.Cmd { m.lessonBack(0); return nil }},
		{Binding: key.NewBinding(key.WithKeys("esc", "end", "space"), key.WithHelp("esc", "now")),
			long:  "back to where the lesson is now",
			group: moving, bar: 1,
			run: func(msg tea.KeyPressMsg) tea.Cmd {
				if m.zoomed && msg.String() == "esc" {
					m.zoomed = false
					return nil
				}
				m.lessonLive()
				return nil
			}},
	}
	for _, a := range m.histTable {
		if a.group == look && !key.Matches(tea.KeyPressMsg{Code: tea.KeyEscape}, a.Binding) {
			table = append(table, a)
		}
	}
	return table
}

// editAnswer opens the student's answer in $EDITOR (vi when unset).
func (m *Model) editAnswer() tea.Cmd {
	hooks, name := m.lesson.opts.Exercise, m.lesson.l.Exercise.Name
	path, err := hooks.Answer(name)
	if err != nil {
		m.status = err.Error()
		return nil
	}
	editor := os.Getenv("VISUAL")
	if editor == "" {
		editor = os.Getenv("EDITOR")
	}
	if editor == "" {
		editor = "vi"
	}
	f := strings.Fields(editor)
	cmd := exec.Command(f[0], append(f[1:], path)...)
	return tea.ExecProcess(cmd, func(err error) tea.Msg { return editedMsg{path: path, err: err} })
}

// editedMsg says the editor has returned.
type editedMsg struct {
	path string
	err  error
}

// gradeAnswer grades the student's answer off the event loop.
func (m *Model) gradeAnswer() tea.Cmd {
	ll := m.lesson
	ll.grading = true
	m.status = "grading your answer: every interleaving of two sessions, then a chaos run…"
	ctx, hooks, name := m.ctx, ll.opts.Exercise, ll.l.Exercise.Name
	return func() tea.Msg {
		g, err := hooks.Grade(ctx, name)
		return gradedMsg{grade: g, err: err}
	}
}

// gradedMsg is a grade's end.
type gradedMsg struct {
	grade *learn.Grade
	err   error
}
