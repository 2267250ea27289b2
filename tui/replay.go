package tui

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	tea "charm.land/bubbletea/v2"

	"lockstep/db"
	"lockstep/record"
	"lockstep/sim"
)

// ReplayOptions set up a replay.
type ReplayOptions struct {
	Theme    string
	Volatile Volatile
	// At is where the replay opens: "" or "start", "end", "deadlock" (the
	// first), or an event's number counting from 1.
	At string
}

// replay is what a model replaying a recording knows of the recorded run;
// the recording's events built the history, as a live run's do, and the
// history's timeline plays it.
type replay struct {
	run record.Run
}

// RunModel shows a model made by NewReplay or NewWatchReplay until the user quits.
func RunModel(ctx context.Context, m tea.Model, progOpts ...tea.ProgramOption) error {
	return runProgram(ctx, m, progOpts)
}

// NewReplay is the interface over a recording: every event goes through
// the live screen's code into its history, which the replay's keys walk.
func NewReplay(ctx context.Context, rec *record.Recording, opts ReplayOptions) (*Model, error) {
	h := rec.Header
	clock := h.Started
	m := New(ctx, Options{Server: h.Server, ScenarioSummary: h.Run.Summary, ScenarioExpected: h.Run.Expected,
		Theme: opts.Theme, Volatile: opts.Volatile, Clock: func() time.Time { return clock }})
	m.rp = &replay{run: h.Run}
	m.explain.replay = true
	m.cfg.Sessions, m.cfg.Poll = h.Run.Sessions, h.Run.Poll
	m.starting = false
	m.runID, m.deadlock = db.RunID(h.Run.RunID), h.Run.DeadlockTimeout
	m.explain.deadlock = m.deadlock
	m.resetView()
	m.hist.limit = math.MaxInt
	for _, n := range h.Run.Notes {
		m.logLine(logEntry{at: clock, text: n, bad: true})
	}
	ready := false
	var outcome *sim.Outcome
	for _, l := range rec.Lines {
		clock = h.Started.Add(l.T)
		if l.Outcome != nil {
			outcome = l.Outcome
		}
		if l.Sessions != nil {
			m.live.sessions = l.Sessions
			if !ready {
				ready = true
				m.logLine(logEntry{at: clock, text: fmt.Sprintf("ready: %s, %d sessions (recorded by lockstep %s)", h.Run.Name, len(l.Sessions), h.Lockstep)})
				m.hist.push(m.live.copy())
			}
			continue
		}
		if l.Event != nil {
			m.handleEvents([]sim.Event{*l.Event})
		}
	}
	if len(m.hist.frames) == 0 {
		return nil, fmt.Errorf("the recording holds no moment to show: it ends before its sessions started")
	}
	if h.Run.HasLedger {
		m.hist.unrecorded(outcome)
	}
	m.mode = modeHistory
	m.tl.Go(0)
	if err := m.replayOpen(opts.At); err != nil {
		return nil, err
	}
	return m, nil
}

// replayOpen moves to where the replay opens.
func (m *Model) replayOpen(at string) error {
	switch at {
	case "", "start":
		m.tl.Go(0)
	case "end", "last":
		m.tl.Go(m.tl.last())
	case "deadlock":
		m.tl.Go(0)
		if !isDeadlockFrame(m.hist.frames, 0) && !m.tl.Jump(m.frameIs(isDeadlockFrame), +1) {
			return fmt.Errorf("--at deadlock: the recording has no deadlock")
		}
	default:
		n, err := strconv.Atoi(at)
		if err != nil || n < 1 || n > m.tl.n() {
			return fmt.Errorf("--at %q: give start, end, deadlock or a moment from 1 to %d", at, m.tl.n())
		}
		m.tl.Go(n - 1)
	}
	return nil
}
