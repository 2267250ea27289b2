package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/tui"
)

// class is the class serve holds: every student who logged in, connected
// or not, the run the class is on, and each student's screen as they last
// saw it. It is the teacher's screen's tui.Classroom.
type class struct {
	mu       sync.Mutex
	students map[string]*student
	order    []string
	current  string // the run a new student starts, and the last pushed
	runs     []tui.ClassRun
	describe string
	changed  chan struct{}
	watched  map[string]int
	clock    func() time.Time
}

// student is one student of the class.
type student struct {
	name  string
	login *login
	// conn is the connection now on the student's screen, nil when none.
	conn *connection
	// since is when they connected, or left.
	since    time.Time
	from     string
	run      tui.Summary
	next     string // the run their next login starts
	finished []string
	// screen is their screen as last drawn, and its size.
	screen string
	w, h   int
}

// connection is one login of a student: its interface's messages, how to
// end it and why, and when it has rolled back.
type connection struct {
	inbox  chan tea.Msg
	cancel context.CancelCauseFunc
	done   chan struct{}
	seq    int
}

func newClass(current string, runs []tui.ClassRun, describe string) *class {
	return &class{students: map[string]*student{}, current: current, runs: runs, describe: describe,
		changed: make(chan struct{}, 1), watched: map[string]int{}, clock: time.Now}
}

// signal says something changed, without waiting for anyone to look.
func (c *class) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Students is the class, in the order it joined.
func (c *class) Students() []tui.ClassStudent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]tui.ClassStudent, 0, len(c.order))
	for _, name := range c.order {
		s := c.students[name]
		out = append(out, tui.ClassStudent{Name: s.name, Connected: s.conn != nil, Since: s.since, From: s.from,
			Run: s.run, Finished: slices.Clone(s.finished)})
	}
	return out
}

// Screen is a student's screen as last drawn.
func (c *class) Screen(name string) (string, int, int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.students[name]
	if !ok {
		return "", 0, 0, false
	}
	return s.screen, s.w, s.h, true
}

// Watch counts the teachers watching name's screen.
func (c *class) Watch(name string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		c.watched[name]++
	} else if c.watched[name] > 0 {
		c.watched[name]--
	}
}

// Runs are what a push can start.
func (c *class) Runs() []tui.ClassRun { return c.runs }

// Current is the class's run.
func (c *class) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// Push starts run for every student.
func (c *class) Push(run string) (int, error) {
	known := false
	for _, r := range c.runs {
		known = known || r.Name == run
	}
	if !known {
		return 0, fmt.Errorf("%s is not a run the students' roles can start", run)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = run
	n := 0
	for _, s := range c.students {
		s.next = run
		if s.conn != nil && c.send(s.conn, tui.StartRunMsg{Name: run, Why: "the teacher started " + run + " for the class"}) {
			n++
		}
	}
	c.signal()
	return n, nil
}

// Broadcast shows text to every connected student.
func (c *class) Broadcast(text string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, s := range c.students {
		if s.conn != nil && c.send(s.conn, tui.NoticeMsg{Text: "✉ from the teacher: " + text}) {
			n++
		}
	}
	return n
}

// send hands a message to a connection's interface, unless its inbox is
// full (an interface that stopped reading is on its way out).
func (c *class) send(conn *connection, msg tea.Msg) bool {
	select {
	case conn.inbox <- msg:
		return true
	default:
		return false
	}
}

// Changed is signalled when anything changed.
func (c *class) Changed() <-chan struct{} { return c.changed }

// Describe says how students log in.
func (c *class) Describe() string { return c.describe }

// ErrClassFull is returned when --max-students are connected.
var ErrClassFull = errors.New("the class is full")

// join puts a connection on student name's screen: a new student, one
// who comes back, or one who logged in again while their old connection
// lives (which ends, and rolls back, first). It says what run to start.
func (c *class) join(name, from string, maxStudents int, conn *connection) (*student, string, error) {
	c.mu.Lock()
	s, ok := c.students[name]
	connected := 0
	for _, o := range c.students {
		if o.conn != nil {
			connected++
		}
	}
	if (!ok || s.conn == nil) && connected >= maxStudents {
		c.mu.Unlock()
		return nil, "", fmt.Errorf("%w: %d students are connected, as many as --max-students allows; ask the teacher", ErrClassFull, connected)
	}
	if !ok {
		s = &student{name: name, next: c.current}
		c.students[name] = s
		c.order = append(c.order, name)
	}
	old := s.conn
	s.conn, s.since, s.from = conn, c.clock(), from
	next := s.next
	c.mu.Unlock()
	if old != nil {
		// Logged in again (a laptop that woke up, a second terminal): the
		// old screen ends and its sessions roll back before the new run
		// claims the schema.
		old.cancel(fmt.Errorf("%s logged in again from %s: this screen ended", name, from))
		select {
		case <-old.done:
		case <-time.After(3 * time.Second):
		}
	}
	c.signal()
	return s, next, nil
}

// leave takes a connection off its student's screen, if it is still the
// one there.
func (c *class) leave(s *student, conn *connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.conn == conn {
		s.conn, s.since = nil, c.clock()
		c.signal()
	}
}

// forget removes a student whose login never started a run (refused).
func (c *class) forget(name string, conn *connection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.students[name]
	if !ok || s.conn != conn {
		return
	}
	s.conn = nil
	if s.login == nil {
		delete(c.students, name)
		c.order = slices.DeleteFunc(c.order, func(n string) bool { return n == name })
	}
	c.signal()
}

// setRun records where a student's run stands; a run that reached its
// end counts as finished.
func (c *class) setRun(s *student, sum tui.Summary) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sum.State == tui.RunDone && (s.run.State != tui.RunDone || s.run.Run != sum.Run) && !slices.Contains(s.finished, sum.Run) {
		s.finished = append(s.finished, sum.Run)
	}
	s.run = sum
	if sum.Run != "" && sum.State != tui.RunFailed {
		s.next = sum.Run
	}
	c.signal()
}

// setScreen keeps a student's screen as drawn; a teacher watching it is
// told.
func (c *class) setScreen(s *student, content string, w, h int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s.screen, s.w, s.h = content, w, h
	if c.watched[s.name] > 0 {
		c.signal()
	}
}

// connections are the live connections, for a shutdown.
func (c *class) connections() []*connection {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*connection
	for _, s := range c.students {
		if s.conn != nil {
			out = append(out, s.conn)
		}
	}
	return out
}

// pushable lists the runs a student's role can start: every strategy's
// transfers, then the built-in scenarios that need nothing a student may
// not have — a second database, a pooler, a foreign server, and, unless
// the role may set it, deadlock_timeout. skipped says why each other one
// is left out.
func pushable(setsDeadlockTimeout bool) (runs []tui.ClassRun, skipped []string) {
	for _, s := range ledger.Strategies() {
		runs = append(runs, tui.ClassRun{Name: s.Name, Summary: "transfers: " + s.Summary})
	}
	for _, b := range scenario.Builtins() {
		if why := unpushable(b.Name, setsDeadlockTimeout); why != "" {
			skipped = append(skipped, b.Name+" ("+why+")")
			continue
		}
		runs = append(runs, tui.ClassRun{Name: b.Name, Summary: b.Summary})
	}
	return runs, skipped
}

// unpushable says why a built-in scenario cannot run as a student, or "".
func unpushable(name string, setsDeadlockTimeout bool) string {
	sc, err := scenario.LoadBuiltin(name, "")
	if err != nil {
		return err.Error()
	}
	for _, s := range sc.Sessions {
		if strings.Contains(s.Name, "@") {
			return "it needs a second database"
		}
	}
	if scenario.NeedsPooler(name) {
		return "it runs through PgBouncer"
	}
	text := strings.ToLower(strings.Join(sc.Setup, "\n") + sc.Teardown)
	for _, s := range sc.Sessions {
		text += strings.ToLower(s.Setup + s.Teardown)
		for _, st := range s.Steps {
			text += strings.ToLower(st.SQL)
		}
	}
	switch {
	case strings.Contains(text, "create extension") || strings.Contains(text, "create server"):
		return "it needs an extension or a foreign server"
	case !setsDeadlockTimeout && strings.Contains(text, "deadlock_timeout"):
		return "it sets deadlock_timeout, which the students' roles may not"
	}
	return ""
}
