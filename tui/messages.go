package tui

import (
	"lockstep/sim"
)

// engineReadyMsg says engine id is running (after start, strategy switch or new set-up).
type engineReadyMsg struct {
	id  int
	eng *sim.Engine
}

// engineFailedMsg says starting engine id failed.
type engineFailedMsg struct {
	id  int
	err error
}

// eventsMsg carries the events engine id sent since the last one.
type eventsMsg struct {
	id     int
	events []sim.Event
	closed bool // the engine's channel is closed
}

// actionMsg reports the end of a slow action (cancel, reset, a prepared
// transaction ended).
type actionMsg struct {
	id   int
	what string
	err  error
	// logged is a line for the log when the action succeeded.
	logged string
}

// preparedChosenMsg is the prepared transaction C or X is about to end,
// and the statement that ends it (what, as the log words it).
type preparedChosenMsg struct {
	id     int
	p      sim.Prepared
	commit bool
	what   string
}

// autoplayMsg is autoplay's beat; seq drops beats from an earlier autoplay.
type autoplayMsg struct{ seq int }
