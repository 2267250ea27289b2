// Package record keeps a run as a file: a header, then one JSON object per
// line for every engine event and every change of the sessions, with its
// time since the start. A lock snapshot is kept only when it differs from
// the one before (the engine polls many times between changes). The
// interface's history is built from the same events, so a replay walks the
// same code path as the live screen's history; the headless views and the
// exports read it too.
//
// The format is versioned: a reader takes every version up to its own and
// refuses a newer one with one line. Version 2 lines are
//
//	{"format":"lockstep-recording","version":2,…}        the header, first
//	{"t":123456789,"event":{…}}                           an engine event (sim.Event)
//	{"t":123456789,"sessions":[…]}                        every session as it stands (sim.SessionInfo)
//	{"t":123456789,"session":{…}}                         one session that changed, by its Index
//	{"t":123456789,"outcome":{…}}                         how a headless run ended (sim.Outcome), last
//	{"t":123456789,"look":{…}}                            one look of lockstep watch (a look that saw what the last one saw is left out)
//	{"t":123456789,"note":"…"}                            a line the run printed (chaos: its progress)
//
// where t is nanoseconds since the header's start. Errors inside an event
// (a lost connection's cause, a failed read of the balances) are kept as
// their text. An event's kind, a session's state and a stall are written by
// name ("Kind":"completed", "State":"in transaction"); version 1 wrote them
// as numbers, which are read still. Each event read must carry what its
// kind promises (sim.Event.Check).
package record

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"lockstep/locks"
	"lockstep/sim"
)

// Format names the file kind in the header.
const Format = "lockstep-recording"

// Version is the newest format version this lockstep writes and reads.
const Version = 2

// Header is the first line: what made the recording, and what the views
// need to show the run without its engine.
type Header struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Lockstep is the version of lockstep that wrote the file.
	Lockstep string    `json:"lockstep"`
	Command  string    `json:"command"` // run, tui, spec
	Started  time.Time `json:"started"`
	// Server describes the database ("PostgreSQL 15.20 at …"); ServerVersion
	// is the server's version alone.
	Server        string `json:"server"`
	ServerVersion string `json:"server_version"`
	Run           Run    `json:"run"`
	// Args are the command's arguments that chose the run (strategy,
	// sessions, scenario, order…), without where the database is: replay
	// --live builds the same run from them on another server.
	Args []string `json:"args"`
}

// Run is the run's set-up as the views show it.
type Run struct {
	Name            string        `json:"name"`
	Summary         string        `json:"summary,omitempty"`
	Expected        string        `json:"expected,omitempty"`
	RunID           string        `json:"run_id"`
	Sessions        int           `json:"sessions"`
	HasLedger       bool          `json:"has_ledger"`
	TwoDatabases    bool          `json:"two_databases,omitempty"`
	Databases       []string      `json:"databases,omitempty"`
	Poll            time.Duration `json:"poll_ns"`
	DeadlockTimeout time.Duration `json:"deadlock_timeout_ns"`
	Notes           []string      `json:"notes,omitempty"`
}

// Line is one line after the header: an event, or the sessions.
type Line struct {
	T        time.Duration
	Event    *sim.Event
	Sessions []sim.SessionInfo
	Outcome  *sim.Outcome
	// Look is a watch's look, its tree built again from its snapshot.
	Look *locks.Look
	Note string
}

// wireLook is a watch's look as written: its snapshot, not its tree
// (BuildTree makes the same tree from it, with the edges the views explain).
type wireLook struct {
	Watched           int                `json:"watched"`
	InTransaction     int                `json:"in_transaction"`
	IdleInTransaction int                `json:"idle_in_transaction"`
	ReadLocks         bool               `json:"read_locks"`
	Took              time.Duration      `json:"took_ns"`
	Snapshot          *locks.Snapshot    `json:"snapshot"`
	New               []locks.WatchEvent `json:"new,omitempty"`
}

// wireLine is a Line as written: the event with its errors as text, and
// the sessions whole or one that changed.
type wireLine struct {
	T        time.Duration     `json:"t"`
	Event    *wireEvent        `json:"event,omitempty"`
	Sessions []sim.SessionInfo `json:"sessions,omitempty"`
	Session  *sim.SessionInfo  `json:"session,omitempty"`
	Outcome  *sim.Outcome      `json:"outcome,omitempty"`
	Look     *wireLook         `json:"look,omitempty"`
	Note     string            `json:"note,omitempty"`
}

// wireEvent is sim.Event with its error values as text.
type wireEvent struct {
	sim.Event
	Cause    string `json:"Cause,omitempty"`
	BooksErr string `json:"BooksErr,omitempty"`
	// SameSnapshot stands for a snapshot the line before already carried
	// (a wait reported by the poll just written).
	SameSnapshot bool `json:"same_snapshot,omitempty"`
}

func toWire(ev sim.Event) *wireEvent {
	w := &wireEvent{Event: ev}
	if ev.Cause != nil {
		w.Cause = ev.Cause.Error()
		w.Event.Cause = nil
	}
	if ev.Books != nil && ev.Books.Err != nil {
		b := *ev.Books
		w.BooksErr, b.Err = b.Err.Error(), nil
		w.Event.Books = &b
	}
	return w
}

func (w *wireEvent) event() sim.Event {
	ev := w.Event
	if w.Cause != "" {
		ev.Cause = errors.New(w.Cause)
	}
	if w.BooksErr != "" && ev.Books != nil {
		ev.Books.Err = errors.New(w.BooksErr)
	}
	return ev
}

// Writer appends a run to a file as it happens. Its methods may be called
// from several goroutines.
type Writer struct {
	mu    sync.Mutex
	f     io.Closer    // nil when the caller owns the output
	gz    *gzip.Writer // when the file is compressed
	bw    *bufio.Writer
	start time.Time
	// lastSnap and lastSessions are the last snapshot and each session
	// written, encoded, to skip repeats.
	lastSnap []byte
	// lastPoll is when the last poll written began, lastEvent the time of
	// the last other event: a poll that found the same again is written
	// while an event came after the last poll written began (its time
	// settles that event's moment).
	lastPoll, lastEvent time.Time
	lastFull            []byte // the last snapshot written, whole
	lastLook            []byte
	lastSessions        [][]byte
	events, skipped     int
	bytes               int64
	err                 error
}

// Create starts a recording at path with its header.
func Create(path string, h Header) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("creating the recording: %w", err)
	}
	var out io.Writer = f
	var gz *gzip.Writer
	if strings.HasSuffix(path, ".gz") {
		// Compressed: a recording is mostly repeated field names and SQL.
		gz = gzip.NewWriter(f)
		out = gz
	}
	w, err := NewWriter(out, h)
	if err != nil {
		f.Close()
		return nil, err
	}
	w.f, w.gz = f, gz
	return w, nil
}

// NewWriter starts a recording on out with its header; Close flushes it
// and leaves out open.
func NewWriter(out io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = Format, Version
	if h.Started.IsZero() {
		h.Started = time.Now()
	}
	// Times are wall-clock times: a line's t is what its event's time says,
	// so a recording read back writes the same numbers.
	h.Started = h.Started.Round(0)
	w := &Writer{bw: bufio.NewWriter(out), start: h.Started}
	if err := w.write(h); err != nil {
		return nil, err
	}
	return w, nil
}

// Write writes the recording again, line for line as a Writer wrote it.
func (r *Recording) Write(out io.Writer) error {
	w, err := NewWriter(out, r.Header)
	if err != nil {
		return err
	}
	return r.writeTo(w)
}

// WriteFile writes the recording to path as Create would (compressed
// when path ends in .gz).
func (r *Recording) WriteFile(path string) error {
	w, err := Create(path, r.Header)
	if err != nil {
		return err
	}
	return r.writeTo(w)
}

func (r *Recording) writeTo(w *Writer) error {
	var err error
	for _, l := range r.Lines {
		at := r.Header.Started.Add(l.T)
		switch {
		case l.Event != nil:
			err = w.Event(*l.Event)
		case l.Sessions != nil:
			err = w.Sessions(at, l.Sessions)
		case l.Outcome != nil:
			err = w.Outcome(at, *l.Outcome)
		case l.Look != nil:
			err = w.Look(l.Look)
		case l.Note != "":
			err = w.Note(at, l.Note)
		}
		if err != nil {
			return err
		}
	}
	_, err = w.Close()
	return err
}

func (w *Writer) write(v any) error {
	if w.err != nil {
		return w.err
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.err = fmt.Errorf("writing the recording: %w", err)
		return w.err
	}
	b = append(b, '\n')
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("writing the recording: %w", err)
		return w.err
	}
	w.bytes += int64(len(b))
	// A line is on disk once written: a run cut short keeps what it had.
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("writing the recording: %w", err)
	}
	if w.gz != nil && w.err == nil {
		if err := w.gz.Flush(); err != nil {
			w.err = fmt.Errorf("writing the recording: %w", err)
		}
	}
	return w.err
}

// Event records one engine event. A poll that found what the last one
// found is not written.
func (w *Writer) Event(ev sim.Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	wire := toWire(ev)
	if ev.Snapshot != nil {
		full, _ := json.Marshal(ev.Snapshot)
		switch {
		case ev.Kind != sim.Polled && bytes.Equal(full, w.lastFull):
			wire.Snapshot, wire.SameSnapshot = nil, true
		case ev.Kind == sim.Polled:
			s := *ev.Snapshot
			s.Taken = time.Time{}
			b, _ := json.Marshal(s)
			if bytes.Equal(b, w.lastSnap) && !w.lastPoll.Before(w.lastEvent) {
				w.skipped++
				return nil
			}
			w.lastPoll = ev.Snapshot.Taken
			if bytes.Equal(b, w.lastSnap) {
				// What the last poll found, found again after an event: the
				// moment that event made is shown by this poll (a replay
				// gives a moment the first poll begun after it), so its
				// time is kept, not its snapshot.
				wire.Snapshot, wire.SameSnapshot = nil, true
				w.events++
				return w.write(wireLine{T: ev.Time.Round(0).Sub(w.start), Event: wire})
			}
			w.lastSnap, w.lastFull = b, full
		default:
			w.lastFull = full
		}
	}
	if ev.Kind != sim.Polled && ev.Time.After(w.lastEvent) {
		w.lastEvent = ev.Time
	}
	w.events++
	return w.write(wireLine{T: ev.Time.Round(0).Sub(w.start), Event: wire})
}

// Sessions records the sessions as they stand: those that changed since
// the last call, or all of them when their number did.
func (w *Writer) Sessions(at time.Time, ss []sim.SessionInfo) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	at = at.Round(0)
	enc := make([][]byte, len(ss))
	for i := range ss {
		enc[i], _ = json.Marshal(ss[i])
	}
	if len(enc) != len(w.lastSessions) {
		w.lastSessions = enc
		return w.write(wireLine{T: at.Sub(w.start), Sessions: ss})
	}
	for i := range ss {
		if !bytes.Equal(enc[i], w.lastSessions[i]) {
			w.lastSessions[i] = enc[i]
			s := ss[i]
			s.Index = i
			if err := w.write(wireLine{T: at.Sub(w.start), Session: &s}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Tap is what a view hands each engine event to while it records a run:
// the event, then — unless it was a poll — the sessions that changed, as
// sessions reports them. Every view records through it: the interface,
// run and spec write the same recording of the same run.
func (w *Writer) Tap(sessions func() []sim.SessionInfo) func(sim.Event) {
	first := true
	return func(ev sim.Event) {
		if first {
			first = false
			_ = w.Sessions(ev.Time, sessions())
		}
		_ = w.Event(ev)
		if ev.Kind != sim.Polled {
			_ = w.Sessions(ev.Time, sessions())
		}
	}
}

// Outcome records how the run ended: the balances, the books, the counts.
func (w *Writer) Outcome(at time.Time, o sim.Outcome) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(wireLine{T: at.Round(0).Sub(w.start), Outcome: &o})
}

// Look records one look of a watch, unless it saw what the last one saw.
func (w *Writer) Look(l *locks.Look) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	wl := &wireLook{Watched: l.Watched, InTransaction: l.InTransaction, IdleInTransaction: l.IdleInTransaction,
		ReadLocks: l.ReadLocks, Took: l.Took, Snapshot: l.Snapshot, New: l.New}
	same := *wl
	snap := *l.Snapshot
	snap.Taken, same.Took, same.Snapshot = time.Time{}, 0, &snap
	b, _ := json.Marshal(same)
	if bytes.Equal(b, w.lastLook) {
		w.skipped++
		return nil
	}
	w.lastLook = b
	w.events++
	return w.write(wireLine{T: l.Taken.Round(0).Sub(w.start), Look: wl})
}

// Note records a line the run printed.
func (w *Writer) Note(at time.Time, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(wireLine{T: at.Round(0).Sub(w.start), Note: text})
}

// Stats are what a recording cost: events written, polls skipped as
// unchanged, bytes.
type Stats struct {
	Events, Skipped int
	Bytes           int64
}

// Close ends the recording and says what it holds.
func (w *Writer) Close() (Stats, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Stats{Events: w.events, Skipped: w.skipped, Bytes: w.bytes}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	if w.gz != nil {
		if err := w.gz.Close(); err != nil && w.err == nil {
			w.err = fmt.Errorf("closing the recording: %w", err)
		}
		st.Bytes = -1 // unknown until the file is closed
	}
	if f, ok := w.f.(*os.File); ok && w.gz != nil {
		if fi, err := f.Stat(); err == nil {
			st.Bytes = fi.Size()
		}
	}
	if w.f != nil {
		if err := w.f.Close(); err != nil && w.err == nil {
			w.err = fmt.Errorf("closing the recording: %w", err)
		}
	}
	return st, w.err
}

// Recording is a recording read back.
type Recording struct {
	Header Header
	Lines  []Line
}

// ErrNotRecording, ErrTruncated and ErrFuture are what Read refuses.
var (
	ErrNotRecording = errors.New("not a lockstep recording")
	ErrTruncated    = errors.New("the recording is truncated")
	ErrFuture       = errors.New("the recording is from a newer lockstep")
)

// Limits on what Read takes. A recording holds about 2 KB an event (the
// lecture: 78 KB); a line holds one lock snapshot, which at 50,000 locks is
// some 12 MB. Beyond these a file is refused, not read into memory: an
// endless one (/dev/zero), or a small compressed one that unpacks to
// gigabytes, among them.
const (
	MaxSize int64 = 512 << 20
	MaxLine       = 64 << 20
)

// ErrTooLarge is what Read says of a file beyond its limits.
var ErrTooLarge = errors.New("the recording is too large")

// Open reads the recording at path.
func Open(path string) (*Recording, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the recording: %w", err)
	}
	defer f.Close()
	rec, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// Read reads a recording: its header, then every line, each checked: a
// line that is no recording line, or an event that lacks what its kind
// promises, is refused with its number. A compressed one (gzip, as Create
// writes a FILE.gz) is read as well. A file beyond MaxSize (once unpacked),
// or with a line beyond MaxLine, is refused.
func Read(r io.Reader) (*Recording, error) {
	return read(r, MaxSize, MaxLine)
}

func read(r io.Reader, maxSize int64, maxLine int) (*Recording, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%w: a compressed file that does not open: %v", ErrNotRecording, err)
		}
		defer gz.Close()
		br = bufio.NewReader(gz)
	}
	lr := &lineReader{r: br, left: maxSize, max: maxLine}
	first, err := lr.next()
	switch {
	case errors.Is(err, errLineTooLong) || errors.Is(err, errFileTooLarge):
		return nil, fmt.Errorf("%w: its first line is no lockstep header (record one with --record FILE)", ErrNotRecording)
	// A damaged or cut compressed file fails here, not as "empty".
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, fmt.Errorf("%w: the compressed file ends before its first line does (it was cut short)", ErrTruncated)
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: the compressed file is damaged (%v)", ErrNotRecording, err)
	case len(first) == 0:
		return nil, fmt.Errorf("%w: the file is empty", ErrNotRecording)
	}
	var h Header
	if json.Unmarshal(first, &h) != nil || h.Format != Format {
		return nil, fmt.Errorf("%w: its first line is no lockstep header (record one with --record FILE)", ErrNotRecording)
	}
	if h.Version > Version || h.Version < 1 {
		return nil, fmt.Errorf("%w: format version %d, written by lockstep %s; this lockstep reads versions 1 to %d: upgrade lockstep to replay it",
			ErrFuture, h.Version, h.Lockstep, Version)
	}
	if h.Run.Sessions < 0 || h.Run.Sessions > maxSessions {
		return nil, fmt.Errorf("%w: its header says %d sessions", ErrNotRecording, h.Run.Sessions)
	}
	rec := &Recording{Header: h}
	var sessions []sim.SessionInfo
	var snap *locks.Snapshot
	for n := 2; ; n++ {
		line, err := lr.next()
		switch {
		case len(line) == 0 && errors.Is(err, io.EOF):
			return rec, nil
		case errors.Is(err, errLineTooLong):
			return nil, fmt.Errorf("%w: line %d is longer than %d MB", ErrTooLarge, n, lr.max>>20)
		case errors.Is(err, errFileTooLarge):
			return nil, fmt.Errorf("%w: it is longer than %d MB (unpacked), at line %d", ErrTooLarge, maxSize>>20, n)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: the compressed file ends at line %d (the run that wrote it was cut short)", ErrTruncated, n)
		case err != nil && !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("reading line %d: %w", n, err)
		case !bytes.HasSuffix(line, []byte("\n")):
			return nil, fmt.Errorf("%w: line %d ends mid-way (the run that wrote it was cut short); its %d complete lines are before it",
				ErrTruncated, n, n-1)
		}
		l, err := readLine(line, h, &sessions, &snap)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d %v", ErrNotRecording, n, err)
		}
		rec.Lines = append(rec.Lines, l)
	}
}

// maxSessions bounds the sessions a recording may say it has: the engine
// runs at most sim.MaxSessions, on at most two databases.
const maxSessions = 2 * sim.MaxSessions

// readLine reads one line after the header, given the sessions and the
// snapshot the lines before left, which it updates.
func readLine(line []byte, h Header, sessions *[]sim.SessionInfo, snap **locks.Snapshot) (Line, error) {
	var wl wireLine
	if err := json.Unmarshal(line, &wl); err != nil {
		return Line{}, fmt.Errorf("is not a recording line: %v", strings.TrimSpace(err.Error()))
	}
	l := Line{T: wl.T, Outcome: wl.Outcome, Note: wl.Note}
	if lk := wl.Look; lk != nil {
		if lk.Snapshot == nil {
			return Line{}, errors.New("is a look without its snapshot")
		}
		l.Look = &locks.Look{Taken: lk.Snapshot.Taken, Took: lk.Took, Snapshot: lk.Snapshot, Tree: locks.BuildTree(lk.Snapshot),
			Watched: lk.Watched, InTransaction: lk.InTransaction, IdleInTransaction: lk.IdleInTransaction,
			ReadLocks: lk.ReadLocks, New: lk.New}
	}
	switch {
	case wl.Sessions != nil:
		if len(wl.Sessions) > maxSessions {
			return Line{}, fmt.Errorf("has %d sessions", len(wl.Sessions))
		}
		*sessions = wl.Sessions
		l.Sessions = *sessions
	case wl.Session != nil:
		i := wl.Session.Index
		if i < 0 || i >= len(*sessions) {
			return Line{}, fmt.Errorf("changes session %d of %d", i, len(*sessions))
		}
		*sessions = append([]sim.SessionInfo(nil), *sessions...)
		(*sessions)[i] = *wl.Session
		l.Sessions = *sessions
	}
	if wl.Event != nil {
		ev := wl.Event.event()
		if wl.Event.SameSnapshot && *snap != nil && ev.Kind == sim.Polled {
			// The same locks, found by a later poll: its own time.
			again := **snap
			again.Taken = ev.Time
			ev.Snapshot = &again
		} else if wl.Event.SameSnapshot {
			ev.Snapshot = *snap
		}
		if err := ev.Check(); err != nil {
			return Line{}, fmt.Errorf("holds %v", err)
		}
		if n := max(h.Run.Sessions, len(*sessions)); ev.Index < -1 || ev.Index >= max(n, 1) {
			return Line{}, fmt.Errorf("holds an event of session %d; the run has %d", ev.Index, n)
		}
		if ev.Snapshot != nil {
			*snap = ev.Snapshot
		}
		l.Event = &ev
	}
	return l, nil
}

// lineReader reads lines of at most max bytes, and at most left bytes in
// all.
type lineReader struct {
	r    *bufio.Reader
	left int64
	max  int
}

var (
	errLineTooLong  = errors.New("line too long")
	errFileTooLarge = errors.New("file too large")
)

// next reads the next line with its newline; at the end it returns what is
// left and io.EOF. A line or a file beyond the limits is errLineTooLong or
// errFileTooLarge.
func (lr *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.left -= int64(len(chunk))
		if lr.left < 0 {
			return nil, errFileTooLarge
		}
		if len(line)+len(chunk) > lr.max {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// Events are the recording's events, in order.
func (r *Recording) Events() []sim.Event {
	var out []sim.Event
	for _, l := range r.Lines {
		if l.Event != nil {
			out = append(out, *l.Event)
		}
	}
	return out
}

// Outcome is how the run ended: as recorded by a headless run, else
// counted from the events, with the last balances read.
func (r *Recording) Outcome() sim.Outcome {
	var out sim.Outcome
	for _, l := range r.Lines {
		if l.Outcome != nil {
			return *l.Outcome
		}
		if l.Event == nil {
			continue
		}
		out.Tally.Add(*l.Event)
		if b := l.Event.Books; l.Event.Kind == sim.BooksRead && b != nil && b.Err == nil {
			out.Accounts, out.Books, out.ByDatabase = b.Accounts, b.Books, b.ByDatabase
		}
	}
	return out
}
