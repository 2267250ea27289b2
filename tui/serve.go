package tui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/ledger"
	"lockstep/sim"
)

// What lockstep serve needs of the interface, beside running it over an
// SSH session (NewProgram): where a student's run stands, for the
// teacher's class view (Summary), and the messages serve sends a
// student's interface — a run the teacher pushed, a line the teacher
// broadcast. The model is the local one; these only read it or start a
// run the way its own keys do.

// Summary is where a run stands, in a few words.
type Summary struct {
	// Run is the strategy or the built-in scenario, by the name that
	// starts it again (StartRunMsg).
	Run string
	// State is one of the RunState words.
	State RunState
	// Detail says more: who waits for whom, the cycle, the step reached,
	// why the sessions could not start.
	Detail string
	// Done and Of count the script statements sent, of all.
	Done, Of int
	// Settled says no statement is in flight but those the server says
	// wait: what a key did has reached the screen.
	Settled bool
}

// RunState is a run's state, as a word a class view shows with its symbol.
type RunState string

// The states of a run.
const (
	RunStarting RunState = "starting"
	RunStepping RunState = "stepping"
	RunWaiting  RunState = "waiting"
	RunDeadlock RunState = "deadlock"
	RunDone     RunState = "done"
	RunFailed   RunState = "failed"
)

// Summary is where the live run stands.
func (m *Model) Summary() Summary {
	s := Summary{Run: m.runName()}
	switch {
	case m.rp == nil && m.cfg.Scenario != nil:
		s.Run = m.cfg.ScenarioName
	case m.rp == nil && m.cfg.Strategy != nil:
		s.Run = m.cfg.Strategy.Name
	}
	for _, ss := range m.live.sessions {
		s.Of += len(ss.Statements)
		s.Done += min(ss.Next, len(ss.Statements))
	}
	var waiting []string
	done := len(m.live.sessions) > 0
	s.Settled = !m.starting
	for _, ss := range m.live.sessions {
		if ss.State == sim.Waiting {
			w := ss.Name + " waits"
			if len(ss.BlockedBy) > 0 {
				w += " for " + strings.Join(ss.BlockedBy, ", ")
			}
			waiting = append(waiting, w)
		}
		done = done && ss.Done()
		s.Settled = s.Settled && ss.State != sim.Running
	}
	switch {
	case m.fatal != "":
		s.State, s.Detail = RunFailed, m.fatal
	case m.starting:
		s.State = RunStarting
	case m.live.cycle != nil:
		s.State, s.Detail = RunDeadlock, m.live.cycle.String()+" stands: the server will break it"
	case m.live.broken != nil:
		cycle := "a deadlock" // the polls did not see it stand
		if c := m.live.broken.cycle; c != nil {
			cycle = c.String()
		}
		s.State, s.Detail = RunDeadlock, "the server broke "+cycle+": "+victimWords(m.live.broken.victim, m.live.sessions)
	case len(waiting) > 0:
		s.State, s.Detail = RunWaiting, strings.Join(waiting, "; ")
	case done:
		s.State, s.Detail = RunDone, scriptsOver(m.live.sessions)
	default:
		s.State, s.Detail = RunStepping, fmt.Sprintf("%d of %d statements run", s.Done, s.Of)
	}
	return s
}

// StartRunMsg starts a built-in scenario, or the transfers under a
// strategy, from its first step, as a new run; Why is the log's line
// (e.g. "the teacher started fk-deadlock").
type StartRunMsg struct {
	Name, Why string
}

// NoticeMsg shows a line from outside the run — a teacher's broadcast —
// in the footer for a while, and in the log.
type NoticeMsg struct {
	Text string
}

// noticeFor is how long a notice stays in the footer; the log keeps it.
const noticeFor = time.Minute

// startRun starts what msg names, or says why it cannot.
func (m *Model) startRun(msg StartRunMsg) tea.Cmd {
	if m.rp != nil {
		return nil
	}
	m.mode, m.helpOpen, m.ask, m.zoomed = modeNormal, false, nil, false
	why := msg.Why
	if why == "" {
		why = msg.Name + ": a new run"
	}
	if s, err := ledger.Lookup(msg.Name); err == nil {
		return m.startStrategy(s, why)
	}
	cmd, err := m.startScenario(msg.Name, why)
	if err != nil {
		m.status = fmt.Sprintf("could not start %s: %v", msg.Name, err)
	}
	return cmd
}

// notice shows a line from outside the run.
func (m *Model) notice(text string) {
	m.noticeText, m.noticeUntil = text, m.clock().Add(noticeFor)
	m.logLine(logEntry{at: m.clock(), text: text})
}

// footerStatus is the footer's status: the last key's, else a notice
// still showing.
func (m *Model) footerStatus() string {
	if m.status == "" && m.noticeText != "" && m.clock().Before(m.noticeUntil) {
		return m.noticeText
	}
	return m.status
}

// scriptsOver says, once no session has a script statement left, how each
// one ended: "every session has finished" only when no transaction is left
// open — a scenario's session whose statement failed keeps its aborted
// transaction open until a ROLLBACK, and a script may end inside one.
func scriptsOver(sessions []sim.SessionInfo) string {
	var open, failed []string
	for _, ss := range sessions {
		code := ""
		if ss.LastErr != nil {
			code = ss.LastErr.SQLState
		}
		switch {
		case ss.State == sim.Aborted && code != "":
			open = append(open, fmt.Sprintf("%s's transaction is aborted (%s) and still open, until a ROLLBACK", ss.Name, code))
		case ss.State == sim.Aborted:
			open = append(open, ss.Name+"'s transaction is aborted and still open, until a ROLLBACK")
		case ss.State == sim.InTransaction:
			open = append(open, ss.Name+"'s transaction is still open")
		case code != "":
			// Its transaction rolled back after the error, which "finished"
			// alone would hide.
			failed = append(failed, ss.Name+" ("+code+")")
		}
	}
	words := "every session has finished"
	if len(open) > 0 {
		words = "every session's script is over; " + strings.Join(open, "; ")
	}
	if len(failed) > 0 {
		words += "; rolled back after an error: " + strings.Join(failed, ", ")
	}
	return words
}

// victimWords says what became of a deadlock's victim: the engine rolls a
// transfer back, while a scenario's session stays in its aborted
// transaction until a ROLLBACK.
func victimWords(victim string, sessions []sim.SessionInfo) string {
	for _, ss := range sessions {
		if ss.Name == victim && ss.State == sim.Aborted {
			return victim + " was the victim: its transaction is aborted, open until a ROLLBACK"
		}
	}
	return victim + " rolled back"
}
