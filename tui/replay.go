package tui

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/jackc/pgerrcode"

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

// replay is a model's replay of a recording: the recording's events built
// the history, as a live run's do, and the keys move through it.
type replay struct {
	run     record.Run
	keys    replayKeys
	playing bool
	speed   int // index into replaySpeeds
	seq     int // the beat in flight; older beats are dropped
}

var replaySpeeds = []float64{0.25, 0.5, 1, 2, 4, 8}

type replayKeys struct {
	Play, Back, First, Wait, Deadlock, Error, Speed, Up, Log, Quit key.Binding
}

func newReplayKeys() replayKeys {
	return replayKeys{
		Play:     key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "play/pause")),
		Back:     key.NewBinding(key.WithKeys("left", "right"), key.WithHelp("←/→", "step back/forward")),
		First:    key.NewBinding(key.WithKeys("home", "end"), key.WithHelp("home/end", "first/last")),
		Wait:     key.NewBinding(key.WithKeys("w", "W"), key.WithHelp("w/W", "next/previous wait")),
		Deadlock: key.NewBinding(key.WithKeys("d", "D"), key.WithHelp("d/D", "deadlock")),
		Error:    key.NewBinding(key.WithKeys("e", "E"), key.WithHelp("e/E", "error")),
		Speed:    key.NewBinding(key.WithKeys("+", "-"), key.WithHelp("+/-", "speed")),
		Up:       key.NewBinding(key.WithKeys("up", "down"), key.WithHelp("↑/↓", "select lock or wait")),
		Log:      key.NewBinding(key.WithKeys("L", "pgup", "pgdown"), key.WithHelp("L", "log")),
		Quit:     key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
	}
}

func (k replayKeys) ShortHelp() []key.Binding {
	return []key.Binding{k.Play, k.Back, k.Wait, k.Deadlock, k.Error, k.Speed, k.First, k.Quit}
}
func (k replayKeys) FullHelp() [][]key.Binding { return [][]key.Binding{k.ShortHelp()} }

type replayTickMsg struct{ seq int }

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
	m.rp = &replay{run: h.Run, keys: newReplayKeys(), speed: 2}
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
	for _, l := range rec.Lines {
		clock = h.Started.Add(l.T)
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
	m.mode, m.histPos = modeHistory, 0
	if err := m.replayOpen(opts.At); err != nil {
		return nil, err
	}
	return m, nil
}

// replayOpen moves to where the replay opens.
func (m *Model) replayOpen(at string) error {
	last := len(m.hist.frames) - 1
	switch at {
	case "", "start":
		m.histPos = 0
	case "end", "last":
		m.histPos = last
	case "deadlock":
		m.histPos = 0
		if !m.replayJump(isDeadlockFrame, +1) {
			return fmt.Errorf("--at deadlock: the recording has no deadlock")
		}
	default:
		n, err := strconv.Atoi(at)
		if err != nil || n < 1 || n > last+1 {
			return fmt.Errorf("--at %q: give start, end, deadlock or a moment from 1 to %d", at, last+1)
		}
		m.histPos = n - 1
	}
	return nil
}

func isWaitFrame(f *frame) bool { return f.kind == sim.WaitingForLock }
func isDeadlockFrame(f *frame) bool {
	return f.kind == sim.DeadlockFormed || (f.kind == sim.Error && f.code == pgerrcode.DeadlockDetected)
}
func isErrorFrame(f *frame) bool { return f.kind == sim.Error || f.kind == sim.ConnectionLost }

// replayJump moves to the next (dir +1) or previous (-1) moment that
// matches; it says whether there was one.
func (m *Model) replayJump(match func(*frame) bool, dir int) bool {
	for i := m.histPos + dir; i >= 0 && i < len(m.hist.frames); i += dir {
		if match(&m.hist.frames[i]) {
			m.histPos = i
			m.sel.Clear()
			return true
		}
	}
	return false
}

func (m *Model) replayKey(msg tea.KeyPressMsg) tea.Cmd {
	r, k := m.rp, m.rp.keys
	last := len(m.hist.frames) - 1
	m.status = ""
	jump := func(what string, match func(*frame) bool) {
		dir := +1
		if s := msg.String(); s == "W" || s == "D" || s == "E" {
			dir = -1
		}
		if !m.replayJump(match, dir) {
			m.status = fmt.Sprintf("no %s %s this moment", what, map[int]string{1: "after", -1: "before"}[dir])
		}
	}
	switch s := msg.String(); {
	case key.Matches(msg, k.Quit):
		return tea.Quit
	case key.Matches(msg, k.Play):
		r.playing = !r.playing
		if r.playing {
			if m.histPos == last {
				m.histPos = 0
			}
			return m.replayBeat()
		}
	case s == "left":
		m.histPos = max(0, m.histPos-1)
	case s == "right":
		m.histPos = min(last, m.histPos+1)
	case s == "home":
		m.histPos = 0
	case s == "end":
		m.histPos = last
	case key.Matches(msg, k.Wait):
		jump("wait", isWaitFrame)
	case key.Matches(msg, k.Deadlock):
		jump("deadlock", isDeadlockFrame)
	case key.Matches(msg, k.Error):
		jump("error", isErrorFrame)
	case s == "+":
		r.speed = min(len(replaySpeeds)-1, r.speed+1)
	case s == "-":
		r.speed = max(0, r.speed-1)
	case s == "up":
		m.sel.Move(-1)
	case s == "down":
		m.sel.Move(+1)
	case s == "L":
		m.logFull = !m.logFull
	case key.Matches(msg, m.keys.ScrollLog):
		return m.log.Update(msg)
	}
	return nil
}

// replayBeat waits, at the replay's speed, as long as the run did between
// the moment shown and the next.
func (m *Model) replayBeat() tea.Cmd {
	r := m.rp
	r.seq++
	if m.histPos+1 >= len(m.hist.frames) {
		r.playing = false
		m.status = "the end of the recording (space plays it again)"
		return nil
	}
	gap := m.hist.frames[m.histPos+1].at.Sub(m.hist.frames[m.histPos].at)
	gap = time.Duration(float64(gap) / replaySpeeds[r.speed])
	gap = min(max(gap, 40*time.Millisecond), 3*time.Second)
	seq := r.seq
	return tea.Tick(gap, func(time.Time) tea.Msg { return replayTickMsg{seq} })
}

// replayTick shows the next moment while the replay plays.
func (m *Model) replayTick(msg replayTickMsg) tea.Cmd {
	if m.rp == nil || !m.rp.playing || msg.seq != m.rp.seq {
		return nil
	}
	m.histPos = min(len(m.hist.frames)-1, m.histPos+1)
	return m.replayBeat()
}

// banner is the replay's mark in the header: where it is, and how it plays.
func (r *replay) banner(m *Model) string {
	state := "⏸"
	if r.playing {
		state = "▶"
	}
	return m.look.st.banner.Render(fmt.Sprintf(" REPLAY %d/%d %s ×%g ", m.histPos+1, len(m.hist.frames), state, replaySpeeds[r.speed]))
}
