package serve

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/bubbletea"
	"github.com/shopspring/decimal"
	gossh "golang.org/x/crypto/ssh"

	"lockstep/lazyre"
	"lockstep/ledger"
	"lockstep/scenario"
	"lockstep/sim"
	"lockstep/tui"
)

// A session's life: checked (no command, a terminal, a name serve takes),
// given a screen — the teacher's, or a student's interface over their own
// role — and ended by the student (q), a disconnect (the keep-alive finds
// a client gone), --idle, a second login with the same name, or the end of
// the class. However it ends, the student's sessions roll back before the
// session closes, and the student is told why in one line.

// stateKey keeps, in a session's context, the screen the Bubble Tea
// middleware runs.
type stateKey struct{}

var nameRE = lazyre.New(`^[A-Za-z_][A-Za-z0-9_]{0,39}$`)

// checkName says whether an SSH user name is a student's name serve takes.
func checkName(user string) (string, error) {
	if !nameRE.MatchString(user) {
		return "", fmt.Errorf("%q is not a name lockstep takes: use letters, digits and _ (not starting with a digit), at most 40, e.g. ssh … ada_lovelace@host", user)
	}
	return strings.ToLower(user), nil
}

// errDisconnected is why a screen ends when its client is gone.
var errDisconnected = errors.New("the connection closed")

// errIdle is why a screen ends after --idle without a key.
type errIdle struct{ idle time.Duration }

func (e errIdle) Error() string {
	return fmt.Sprintf("no key for %s, so serve disconnected you; your transactions rolled back; ssh again to carry on", e.idle)
}

// session is serve's middleware, before the Bubble Tea middleware runs the
// screen it chose and after it has ended.
func (s *Server) session(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		s.sessions.Add(1)
		defer s.sessions.Done()
		if cmd := sess.RawCommand(); cmd != "" {
			refuse(sess, fmt.Sprintf("lockstep serve runs no commands (asked: %q): ssh with nothing after the host opens lockstep", cmd))
			return
		}
		if _, _, ok := sess.Pty(); !ok {
			refuse(sess, "lockstep needs a terminal: leave out -T, or add -t (ssh -t …)")
			return
		}
		ctx, cancel := context.WithCancelCause(s.ctx)
		defer cancel(nil)
		stop := context.AfterFunc(sess.Context(), func() { cancel(errDisconnected) })
		defer stop()
		if conn, ok := sess.Context().Value(ssh.ContextKeyConn).(*gossh.ServerConn); ok {
			go keepAlive(ctx, conn, s.opts.KeepAlive)
		}
		if k := sess.PublicKey(); k != nil && keyIn(k, s.teachers) {
			s.teach(ctx, sess, next)
			return
		}
		s.learn(ctx, cancel, sess, next)
	}
}

// teach runs the teacher's screen.
func (s *Server) teach(ctx context.Context, sess ssh.Session, next ssh.Handler) {
	from := sess.RemoteAddr().String()
	s.logf("the teacher (%s) logged in from %s", sess.User(), from)
	theme, noColor := s.clientLook(sess)
	m := tui.NewTeacher(ctx, tui.TeacherOptions{Class: s.class, Theme: theme, NoColor: noColor})
	sess.Context().SetValue(stateKey{}, &screen{ctx: ctx, model: m})
	next(sess)
	s.logf("the teacher (%s) left", sess.User())
	if errors.Is(context.Cause(ctx), ErrClassOver) {
		wish.Println(sess, "lockstep serve: the class is over; every student's transactions rolled back.")
	}
}

// screen is what the Bubble Tea middleware runs for a session.
type screen struct {
	ctx   context.Context
	model tea.Model
}

// learn runs a student's interface, as their own role.
func (s *Server) learn(ctx context.Context, cancel context.CancelCauseFunc, sess ssh.Session, next ssh.Handler) {
	name, err := checkName(sess.User())
	if err != nil {
		refuse(sess, "lockstep serve: "+err.Error())
		return
	}
	from := sess.RemoteAddr().String()
	conn := &connection{inbox: make(chan tea.Msg, 16), cancel: cancel, done: make(chan struct{})}
	defer close(conn.done)
	st, run, err := s.class.join(name, from, s.opts.MaxStudents, conn)
	if err != nil {
		s.logf("%s from %s refused: %v", name, from, err)
		refuse(sess, "lockstep serve: "+err.Error())
		return
	}
	l, err := s.admit(ctx, name)
	if err != nil {
		s.class.forget(name, conn)
		s.logf("%s from %s refused: %v", name, from, err)
		refuse(sess, "lockstep serve: "+err.Error())
		return
	}
	s.class.mu.Lock()
	st.login = l
	s.class.mu.Unlock()
	s.logf("%s logged in from %s (role %s)", name, from, l.role)
	m := s.studentModel(ctx, sess, st, l, run, conn)
	sess.Context().SetValue(stateKey{}, &screen{ctx: ctx, model: m})
	next(sess)
	// However the screen ended, the sessions roll back before the student
	// is told so, and before a login that replaces this one starts.
	m.inner.Close()
	s.class.leave(st, conn)
	why := context.Cause(ctx)
	switch {
	case why == nil || errors.Is(why, context.Canceled):
		s.logf("%s left (transactions rolled back)", name)
		wish.Println(sess, "lockstep: bye; your transactions rolled back. ssh again to carry on where you were.")
	case errors.Is(why, errDisconnected):
		s.logf("%s disconnected (transactions rolled back)", name)
	default:
		s.logf("%s: %v", name, why)
		wish.Println(sess, "lockstep serve: "+why.Error())
	}
}

// admit checks that the server has room for another student, then makes
// (or finds) their role and schema.
func (s *Server) admit(ctx context.Context, name string) (*login, error) {
	free, used, err := s.admin.room(ctx)
	if err != nil {
		return nil, err
	}
	if free < 1 {
		return nil, fmt.Errorf("the server has no room for another student: %d of its %d connections are in use (%d kept for superusers), and a student needs %d; ask the teacher to raise max_connections",
			used, s.admin.maxConns, s.admin.reserved, connsPerStudent)
	}
	return s.admin.ensure(ctx, name)
}

// refuse ends a session with one line saying why.
func refuse(sess ssh.Session, line string) {
	wish.Println(sess, line)
	_ = sess.Exit(1)
}

// program is the Bubble Tea middleware's program for a session: the
// screen its session chose, over the session's input and output.
func (s *Server) program(sess ssh.Session) *tea.Program {
	sc, ok := sess.Context().Value(stateKey{}).(*screen)
	if !ok {
		return nil
	}
	return tui.NewProgram(sc.ctx, sc.model, bubbletea.MakeOptions(sess)...)
}

// clientLook is the theme and colours a client asks for through its
// environment (LOCKSTEP_THEME, NO_COLOR: ssh's SendEnv or SetEnv), else
// serve's own theme.
func (s *Server) clientLook(sess ssh.Session) (theme string, noColor bool) {
	theme = s.opts.Theme
	for _, kv := range sess.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "LOCKSTEP_THEME":
			if t, err := tui.ParseTheme(v); err == nil {
				theme = t
			}
		case "NO_COLOR":
			noColor = v != ""
		}
	}
	return theme, noColor
}

// studentModel is the interface for a student: the lecture's transfers, or
// the run the student was on or the teacher pushed, from its first step.
func (s *Server) studentModel(ctx context.Context, sess ssh.Session, st *student, l *login, run string, conn *connection) *studentScreen {
	transfers := lecture()
	transfers.Ledger = ledger.New()
	cfg, order, summary, expected := transfers, []int(nil), "", ""
	if run != "" && run != transfers.Strategy.Name {
		if strategy, err := ledger.Lookup(run); err == nil {
			cfg.Strategy = strategy
		} else if sc, err := scenario.LoadBuiltin(run, ""); err == nil {
			cfg = sim.Config{Scenario: sc, ScenarioName: run, Sessions: len(sc.Sessions), Poll: transfers.Poll,
				Ledger: transfers.Ledger, Setup: transfers.Setup}
			order, _ = sc.SessionOrder(1)
			expected = scenario.Expected(run, "")
			for _, b := range scenario.Builtins() {
				if b.Name == run {
					summary = b.Summary
				}
			}
		}
	}
	theme, noColor := s.clientLook(sess)
	server := fmt.Sprintf("%s · you are %s, role %s", s.opts.Server, st.name, l.role)
	m := tui.New(ctx, tui.Options{DB: l.db, Config: cfg, Order: order, Server: server, Transfers: transfers,
		ScenarioSummary: summary, ScenarioExpected: expected, Theme: theme, NoColor: noColor})
	return &studentScreen{ctx: ctx, inner: m, class: s.class, st: st, inbox: conn.inbox, idle: s.opts.Idle,
		cancel: conn.cancel, lastKey: time.Now()}
}

// lecture is the run a class starts with: two sessions moving 10.00 from
// account 1 to 2 under for-update, as the lecture does.
func lecture() sim.Config {
	strategy, _ := ledger.Lookup(defaultRun)
	return sim.Config{Strategy: strategy, Sessions: 2, Direction: sim.Same, Amount: decimal.RequireFromString("10.00"),
		Setup: ledger.DefaultSetup(), Poll: sim.DefaultPoll}
}

// studentScreen is a student's interface, as lockstep runs it locally,
// with what serve adds around it: the teacher's pushes and lines, where
// the run stands for the class view, the screen as drawn for a teacher who
// watches, and --idle.
type studentScreen struct {
	ctx     context.Context
	inner   *tui.Model
	class   *class
	st      *student
	inbox   <-chan tea.Msg
	idle    time.Duration
	cancel  context.CancelCauseFunc
	lastKey time.Time
	last    tui.Summary
	w, h    int
}

// inboxMsg is what the class sent the interface.
type inboxMsg struct{ msg tea.Msg }

func (m *studentScreen) Init() tea.Cmd {
	return tea.Batch(m.inner.Init(), m.listen(), m.idleCheck(m.idle))
}

// idleCheckMsg is the time to check --idle.
type idleCheckMsg struct{}

// idleCheck checks --idle after d: the screen's own timer, since the
// interface at rest schedules no tick of its own. It ends with the screen
// (--idle is half an hour by default).
func (m *studentScreen) idleCheck(d time.Duration) tea.Cmd {
	if m.idle <= 0 {
		return nil
	}
	ctx := m.ctx
	return func() tea.Msg {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return idleCheckMsg{}
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *studentScreen) listen() tea.Cmd {
	ch, ctx := m.inbox, m.ctx
	return func() tea.Msg {
		select {
		case msg := <-ch:
			return inboxMsg{msg}
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *studentScreen) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	var cmds []tea.Cmd
	switch msg := msg.(type) {
	case inboxMsg:
		cmds = append(cmds, m.listen())
		_, cmd := m.inner.Update(msg.msg)
		cmds = append(cmds, cmd)
	case tea.KeyPressMsg:
		m.lastKey = time.Now()
		_, cmd := m.inner.Update(msg)
		cmds = append(cmds, cmd)
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		_, cmd := m.inner.Update(msg)
		cmds = append(cmds, cmd)
	case idleCheckMsg:
		// One check in flight: it comes again when the last key would be
		// --idle old.
		if left := m.idle - time.Since(m.lastKey); left > 0 {
			cmds = append(cmds, m.idleCheck(left))
		} else {
			m.cancel(errIdle{m.idle})
		}
	default:
		_, cmd := m.inner.Update(msg)
		cmds = append(cmds, cmd)
	}
	if sum := m.inner.Summary(); sum != m.last {
		m.last = sum
		m.class.setRun(m.st, sum)
	}
	return m, tea.Batch(cmds...)
}

func (m *studentScreen) View() tea.View {
	v := m.inner.View()
	m.class.setScreen(m.st, v.Content, m.w, m.h)
	return v
}
