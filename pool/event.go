package pool

import (
	"fmt"
	"strings"
	"time"
)

// Phase is where a task is in its work.
type Phase int

// A task's phases, in the order a task goes through them. UpFront takes both
// connections before writing; the other fixes take B's after writing in A.
const (
	PhaseStart      Phase = iota // not started yet
	PhaseWaitTurn                // UpFront: waiting for its turn to take both connections
	PhaseWaitPermit              // Semaphore: waiting for a permit
	PhaseWaitA                   // waiting for a connection for A
	PhaseWriteA                  // BEGIN and the transfer in A
	PhaseBarrier                 // wrote in A, waiting until the others that can get this far have
	PhaseWaitB                   // waiting for a connection for B
	PhaseWriteB                  // BEGIN and the transfer in B
	PhaseCommit                  // COMMIT in B, then in A
	PhaseCommitted               // committed in both and released its connections
	PhaseRolledBack              // the run was ended: rolled back and released its connections
	PhaseFailed                  // an error ended it (TaskState.Err)
)

var phaseText = [...]string{
	PhaseStart:      "not started",
	PhaseWaitTurn:   "waiting for its turn to take both connections",
	PhaseWaitPermit: "waiting for a semaphore permit",
	PhaseWaitA:      "waiting for a connection for A",
	PhaseWriteA:     "writing in A",
	PhaseBarrier:    "wrote in A, waiting for the others to get this far",
	PhaseWaitB:      "waiting for a connection for B",
	PhaseWriteB:     "writing in B",
	PhaseCommit:     "committing in B, then in A",
	PhaseCommitted:  "committed in B and A, released its connections",
	PhaseRolledBack: "rolled back, released its connections",
	PhaseFailed:     "failed",
}

// String describes the phase in a few words.
func (p Phase) String() string {
	if p < 0 || int(p) >= len(phaseText) {
		return fmt.Sprintf("Phase(%d)", int(p))
	}
	return phaseText[p]
}

// Done is true for the phases a task ends in.
func (p Phase) Done() bool { return p >= PhaseCommitted }

// waitsForConn is true while a task is inside a pool's Acquire (or about to
// enter it): the only phases that can be part of an exhaustion.
func (p Phase) waitsForConn() bool { return p == PhaseWaitA || p == PhaseWaitB }

// TaskState is one task's phase and the connections it holds.
type TaskState struct {
	Name   string // T1 … Tn
	Phase  Phase
	HoldsA bool  // holds a connection for database A
	HoldsB bool  // holds a connection for database B
	Err    error // PhaseFailed: what failed
}

// String is one line: "T3: holds A, waiting for a connection for B".
func (s TaskState) String() string {
	var holds string
	switch {
	case s.HoldsA && s.HoldsB:
		holds = "holds A and B, "
	case s.HoldsA:
		holds = "holds A, "
	case s.HoldsB:
		holds = "holds B, "
	case s.Phase.waitsForConn() || s.Phase == PhaseWaitTurn || s.Phase == PhaseWaitPermit:
		holds = "holds nothing, "
	}
	line := s.Name + ": " + holds + s.Phase.String()
	if s.Phase == PhaseFailed && s.Err != nil {
		line += ": " + s.Err.Error()
	}
	return line
}

// PoolState is one pool's own statistics (pgxpool's Stat), and the tasks
// waiting on it.
type PoolState struct {
	// Label is "shared" for the pool serving both databases, or "A" or "B"
	// for a database's own pool.
	Label string
	// InUse (AcquiredConns), Idle, Total, Max and Constructing are
	// pgxpool's counts of connections.
	InUse, Idle, Total, Max, Constructing int32
	// AcquireCount counts acquires that got a connection; EmptyAcquireCount
	// those of them that had to wait for one to be released or made;
	// CanceledAcquireCount acquires that gave up when their context ended.
	AcquireCount, EmptyAcquireCount, CanceledAcquireCount int64
	// NewConns counts connections opened, including those made to replace
	// an idle connection to the other database.
	NewConns int64
	// Waiting is how many tasks are waiting to acquire a connection from
	// this pool. pgxpool keeps no count of waiting acquirers, so this one is
	// derived from the tasks' phases, not read from the pool; none once the
	// run was ended and its acquires cancelled.
	Waiting int
}

// String is one line: "pool shared: 4/4 in use, 0 idle, 4 waiting acquirers".
func (p PoolState) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pool %s: %d/%d in use, %d idle", p.Label, p.InUse, p.Max, p.Idle)
	if p.Constructing > 0 {
		fmt.Fprintf(&b, ", %d connecting", p.Constructing)
	}
	fmt.Fprintf(&b, ", %d waiting %s", p.Waiting, plural(p.Waiting, "acquirer", "acquirers"))
	return b.String()
}

// Counters is the pool's cumulative counts in one line: "8 acquires (4 had
// to wait), 4 cancelled, 8 connections opened".
func (p PoolState) Counters() string {
	return fmt.Sprintf("pool %s: %d acquires (%d had to wait), %d cancelled, %d %s opened",
		p.Label, p.AcquireCount, p.EmptyAcquireCount, p.CanceledAcquireCount, p.NewConns, plural(int(p.NewConns), "connection", "connections"))
}

// Kind is what an Event reports.
type Kind int

// The kinds of Event.
const (
	KindPhase     Kind = iota // a task changed phase (Event.Task)
	KindPool                  // the pools' statistics changed (seen on the re-check ticker)
	KindExhausted             // the pool is exhausted; the run is being ended
	KindTaskDone              // a task ended: committed, or rolled back when the run was ended
	KindTaskError             // a task failed (Event.Err)
	KindFinished              // the run is over: Pools is the final state
)

var kindNames = [...]string{"phase", "pool", "exhausted", "task done", "task error", "finished"}

// String names the kind.
func (k Kind) String() string {
	if k < 0 || int(k) >= len(kindNames) {
		return fmt.Sprintf("Kind(%d)", int(k))
	}
	return kindNames[k]
}

// Event is something that happened in a run, with the state of every pool
// and every task at that moment.
type Event struct {
	Time  time.Time
	Kind  Kind
	Task  string      // the task the event is about: T1 … Tn; empty for pool, exhausted and finished events
	Pools []PoolState // every pool, from its own statistics
	Tasks []TaskState // every task's phase
	Err   error       // KindTaskError: what failed
}

// State is the named task's state in the event, or false.
func (e Event) State(task string) (TaskState, bool) {
	for _, s := range e.Tasks {
		if s.Name == task {
			return s, true
		}
	}
	return TaskState{}, false
}

// String is one readable line for a transcript.
func (e Event) String() string {
	pools := make([]string, len(e.Pools))
	for i, p := range e.Pools {
		pools[i] = p.String()
	}
	ps := strings.Join(pools, "; ")
	switch e.Kind {
	case KindPhase, KindTaskDone, KindTaskError:
		s, _ := e.State(e.Task)
		if s.Name == "" {
			s.Name = e.Task
		}
		if e.Kind == KindTaskError && s.Err == nil && e.Err != nil {
			s.Phase, s.Err = PhaseFailed, e.Err
		}
		return s.String() + " · " + ps
	case KindExhausted:
		return ps + " — exhausted: " + exhaustionCause(e.Tasks) + "; no connection will ever come free"
	case KindFinished:
		committed := 0
		for _, s := range e.Tasks {
			if s.Phase == PhaseCommitted {
				committed++
			}
		}
		counters := make([]string, len(e.Pools))
		for i, p := range e.Pools {
			counters[i] = p.Counters()
		}
		return fmt.Sprintf("finished: %d of %d tasks committed · %s", committed, len(e.Tasks), strings.Join(counters, "; "))
	}
	return ps
}

// exhaustionCause says who holds what while waiting, for an exhausted event.
func exhaustionCause(tasks []TaskState) string {
	var holdAWaitB, waitFirst, other int
	for _, s := range tasks {
		switch {
		case s.Phase.Done():
		case s.Phase == PhaseWaitB && s.HoldsA && !s.HoldsB:
			holdAWaitB++
		case s.Phase.waitsForConn() && !s.HoldsA && !s.HoldsB:
			waitFirst++
		default:
			other++
		}
	}
	switch {
	case holdAWaitB > 0 && waitFirst == 0 && other == 0:
		return "every task holds a connection for A and waits for one for B"
	case holdAWaitB > 0 && other == 0:
		return fmt.Sprintf("%d %s a connection for A and wait for one for B, %d more wait for their first",
			holdAWaitB, plural(holdAWaitB, "task holds", "tasks hold"), waitFirst)
	}
	return "every unfinished task waits for a connection that only another waiting task could give back"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
