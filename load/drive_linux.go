package load

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"

	"lockstep/db"
	"lockstep/ledger"
)

// The bench drives all its connections from one goroutine, as pgbench drives
// its clients from a thread: it writes each statement to the socket itself,
// waits on every socket at once with epoll(7), and hands each answer to the
// transfer's ledger.Flight, which decides what to send next, whether to roll
// back and whether to retry (the same decisions Runner.Transfer makes).
//
// Written by hand, not with pgconn, for speed: a goroutine per connection
// parked on Go's network poller makes the runtime wake threads on every
// round trip, and on a two-core machine that CPU is the server's (README,
// the strategy benchmark, has the numbers). pgconn opens and authenticates
// the connections and hands them over (Hijack); the run's simple-protocol
// round trips, cancel requests and the final Terminate are done here.
// Connections pgconn has wrapped in TLS cannot be driven this way and run
// with one goroutine each instead (see takeSockets).
//
// The runtime itself is kept quiet during a run: the sockets are off its
// network poller (takeSockets), and DataRows are decoded without
// pgproto3's allocations (decodeRow), so the collector runs less often (18
// collections in a 5-second run instead of 32, GODEBUG=gctrace=1). These
// took the client's CPU per transfer from about 105 µs to 85 µs and its
// context switches from 3.2 to 1.8, pgbench's own figure (perf stat -e
// task-clock,context-switches over 5-second runs).
//
// Each driver also holds its thread, its processor and its core for the
// run: its system calls are raw (rawEpollWait) and its thread pinned
// (pinThread), so that its backends, woken by it, come to run on its core
// (cross-core wake-ups at 2 workers: 6,898 in 2 s before, about 2,000
// after, pgbench's about 1,400).

// driven is one connection of a bench run.
type driven struct {
	sock    *socket
	flight  *ledger.Flight
	start   time.Time // when the transfer in flight started, for its latency
	wake    time.Time // when a transfer in backoff may start again; zero otherwise
	busy    bool      // a statement has been sent and its answer not read
	ending  bool      // the run is over: only ROLLBACK is sent from now on
	done    bool
	watched uint32 // the events d is in the epoll set for
	wbuf    []byte // the last message written
	out     []byte // what is still to write of it
	in      []byte // what has been read and not yet parsed
	// The statements prepared on the connection (by text: their names);
	// those the messages in flight prepare, in order, and how many of them
	// the server has said it prepared (ParseComplete).
	names   map[string]string
	parsing []prepare
	parsed  int
	args    []string
	sent    int      // statements the messages in flight run
	results []result // what those that have ended returned, in order
	row     []any    // the first row of the statement running
}

// prepare is a statement a message in flight prepares.
type prepare struct{ text, name string }

// result is what one statement returned: its first row, or its error.
type result struct {
	row []any
	err error
}

// bench is what one driven run shares among its connections.
type bench struct {
	strategy *ledger.Strategy
	schema   string
	// pipeline sends the statements that may go ahead (ledger.Flight.Ahead)
	// with the one due, in one write with one Sync.
	pipeline bool
	accounts int
	rnd      *rand.Rand
	stopping bool // the deadline has passed or ctx has ended
	// windDown bounds the stop: the cancels, the ROLLBACKs (db.Cleanup).
	windDown  context.Context
	total     Tally
	latencies []time.Duration
	cancels   sync.WaitGroup
}

// drive runs random transfers on conns (whose sockets are fds) until
// deadline or until ctx ends, then cancels the statements in flight and
// rolls back what is open, as Worker.Run does. It returns once no
// connection has a statement in flight or a transaction open.
func drive(ctx context.Context, socks []*socket, s *ledger.Strategy, schema string, accounts int, pipeline bool,
	rnd *rand.Rand, deadline time.Time) (Tally, []time.Duration, error) {
	b := &bench{strategy: s, schema: schema, accounts: accounts, pipeline: pipeline, rnd: rnd}
	defer b.cancels.Wait()
	endWindDown := func() {}
	defer func() { endWindDown() }()
	// ctx ending wakes the wait through a pipe.
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return b.total, nil, fmt.Errorf("creating the bench's wake-up pipe: %w", err)
	}
	defer unix.Close(wake[0])
	defer unix.Close(wake[1])
	defer context.AfterFunc(ctx, func() { _, _ = unix.Write(wake[1], []byte{0}) })()

	// One epoll set watches every connection and the pipe (level-triggered,
	// as poll(2) would, but without handing the kernel the whole list on
	// every wait).
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return b.total, nil, fmt.Errorf("creating the bench's epoll set: %w", err)
	}
	defer unix.Close(ep)
	ds := make([]*driven, len(socks))
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(len(ds))}); err != nil {
		return b.total, nil, fmt.Errorf("watching the bench's wake-up pipe: %w", err)
	}
	now := time.Now()
	for i, sock := range socks {
		ds[i] = &driven{sock: sock, in: make([]byte, 0, 4096)}
		b.begin(ds[i], now)
	}
	events := make([]unix.EpollEvent, len(ds)+1)
	buf := make([]byte, 16<<10)
	for {
		now = time.Now()
		if !b.stopping && (ctx.Err() != nil || !now.Before(deadline)) {
			b.windDown, endWindDown = db.Cleanup(ctx)
			b.stop(ds)
		}
		active, timeout := 0, -1
		if !b.stopping {
			timeout = msUntil(deadline, now, timeout)
		} else {
			end, _ := b.windDown.Deadline()
			if !now.Before(end) || b.windDown.Err() != nil {
				// A server that has stopped answering (or a signal during
				// the wind-down): the sockets close (release), and the
				// server rolls back what they left open when it finds them
				// gone.
				err := errors.New("the server did not answer the run's end in time: its connections are closed unfinished")
				return b.total, b.latencies, errors.Join(ctx.Err(), err)
			}
			// Look again at least every 100 ms: a signal ends the wind-down
			// before its deadline.
			if soon := now.Add(100 * time.Millisecond); soon.Before(end) {
				end = soon
			}
			timeout = msUntil(end, now, timeout)
		}
		for i, d := range ds {
			if !d.done {
				active++
				if !d.wake.IsZero() {
					if now.Before(d.wake) {
						timeout = msUntil(d.wake, now, timeout)
					} else {
						d.wake = time.Time{}
						d.sendNext(b.pipeline)
					}
				}
			}
			if err := d.watch(ep, i); err != nil {
				return b.total, b.latencies, err
			}
		}
		if active == 0 {
			return b.total, b.latencies, nil
		}
		// The driver never yields its processor of its own accord. The
		// runtime's monitor interrupts it after 10 ms (a signal, EINTR here)
		// when it has held it that long, and runs what waits for a
		// processor (the context's goroutine, a cancel request's). Yielding
		// more often costs more: the driver's thread is locked to it, so
		// every yield hands the processor to another thread and back.
		n, err := rawEpollWait(ep, events, timeout)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return b.total, b.latencies, fmt.Errorf("waiting for the server: %w", err)
		}
		for _, e := range events[:max(n, 0)] {
			if int(e.Fd) == len(ds) {
				continue // ctx has ended: seen at the top of the loop
			}
			d := ds[e.Fd]
			if d.done {
				continue
			}
			if e.Events&unix.EPOLLOUT != 0 {
				if err := d.flush(); err != nil {
					return b.total, b.latencies, err
				}
			}
			if e.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
				continue
			}
			n, err := rawRead(d.sock.fd, buf)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n == 0 {
				return b.total, b.latencies, fmt.Errorf("the connection is lost: %w", cmp.Or(err, errors.New("the server closed it")))
			}
			d.in = append(d.in, buf[:n]...)
			txStatus, answered, err := d.parse()
			if err != nil {
				return b.total, b.latencies, err
			}
			if answered {
				b.answer(d, txStatus, time.Now())
			}
		}
	}
}

// watch brings d's entry in the epoll set ep up to date: none once d is
// done, readable otherwise, and writable too while a message is only partly
// written.
func (d *driven) watch(ep, i int) error {
	var want uint32
	if !d.done {
		want = unix.EPOLLIN
		if len(d.out) > 0 {
			want |= unix.EPOLLOUT
		}
	}
	if want == d.watched {
		return nil
	}
	op := unix.EPOLL_CTL_MOD
	switch {
	case d.watched == 0:
		op = unix.EPOLL_CTL_ADD
	case want == 0:
		op = unix.EPOLL_CTL_DEL
	}
	if err := unix.EpollCtl(ep, op, d.sock.fd, &unix.EpollEvent{Events: want, Fd: int32(i)}); err != nil {
		return fmt.Errorf("watching worker %d's connection: %w", i+1, err)
	}
	d.watched = want
	return nil
}

// begin starts a new random transfer on d.
func (b *bench) begin(d *driven, now time.Time) {
	d.flight = ledger.NewFlight(b.strategy, RandomTransfer(b.rnd, b.accounts), b.schema, ledger.RetryPolicy{})
	d.start = now
	d.sendNext(b.pipeline)
}

// stop ends the run: the statements in flight are cancelled (the requests
// go out on connections of their own) and their transactions rolled back,
// and a transfer waiting out a retry's backoff is dropped. An autocommit
// transfer is not cancelled but finished: its earlier statements have
// committed, and stopping it halfway would break the books the bench checks.
func (b *bench) stop(ds []*driven) {
	b.stopping = true
	for _, d := range ds {
		switch {
		case d.busy && !b.strategy.Transactional:
		case d.busy:
			b.cancels.Go(func() { _ = d.sock.cancel(b.windDown) })
		case !d.done:
			// In backoff: no transaction is open. Its deadlocks and
			// serialization failures happened and count.
			b.settle(d)
			d.done = true
		}
	}
}

// answer takes the end of d's statement (ReadyForQuery with txStatus) and
// sends d's next one.
func (b *bench) answer(d *driven, txStatus byte, now time.Time) {
	if d.ending {
		// A ROLLBACK after the run ended; a late cancel request may have
		// interrupted it.
		if txStatus == 'I' {
			d.done = true
		} else {
			d.send("ROLLBACK")
		}
		return
	}
	// The statements of the batch, in order, until one ends the attempt
	// or the transfer; the server skipped what followed an error, and a
	// ROLLBACK undoes what went ahead of one the flight found wrong.
	var step ledger.Step
	for i, r := range d.results {
		status := txStatus
		if i < len(d.results)-1 {
			status = 'T' // inside the transaction: only its statements go ahead
		}
		step = d.flight.Answer(r.row, r.err, status)
		if step != ledger.Send || d.flight.Statement() < 0 {
			break
		}
	}
	if step == ledger.Over {
		b.settle(d)
		switch _, err := d.flight.Result(); {
		case err == nil:
			b.total.Committed++
			b.latencies = append(b.latencies, now.Sub(d.start))
		case !b.stopping:
			b.total.Failed++ // what the stop cancelled did not fail
		}
	}
	switch {
	case b.stopping && (step != ledger.Send || b.strategy.Transactional):
		if step != ledger.Over {
			b.settle(d) // the transfer is dropped unfinished
		}
		if txStatus == 'I' {
			d.done = true
		} else {
			d.ending = true
			d.send("ROLLBACK")
		}
	case step == ledger.Over:
		b.begin(d, now)
	case step == ledger.Backoff:
		d.wake = now.Add(d.flight.Wait())
	default:
		d.sendNext(b.pipeline)
	}
}

// settle adds what d's transfer met (deadlocks, serialization failures,
// retries) to the run's tally, once, when it ends or is dropped.
func (b *bench) settle(d *driven) {
	res, _ := d.flight.Result()
	b.total.count(res)
}

// msUntil is the wait's timeout in milliseconds until t (rounded up), or
// timeout if that is sooner; -1 is no timeout.
func msUntil(t, now time.Time, timeout int) int {
	ms := max(0, int((t.Sub(now)+time.Millisecond-1)/time.Millisecond))
	if timeout < 0 || ms < timeout {
		return ms
	}
	return timeout
}

// sendNext sends the flight's next statement in its parameterised form
// (ledger.Flight.Param), prepared once per connection as pgbench -M
// prepared does: the first time, Parse names it and Bind and Execute follow
// in the same write; later, Bind and Execute only; then Sync. The server
// then parses and plans each kind of statement once per connection, not on
// every use. With b.pipeline, the statements that may go ahead of its
// answer (ledger.Flight.Ahead) follow it before the Sync. A statement that
// cannot take that form yet goes alone, as text.
func (d *driven) sendNext(pipeline bool) {
	text, args, ok := d.flight.Param(d.args[:0])
	if !ok {
		d.args = args
		d.send(d.flight.SQL())
		return
	}
	d.parsing = d.parsing[:0]
	m := d.appendRun(d.wbuf[:0], text, args)
	n := 1
	for pipeline {
		if text, args, ok = d.flight.Ahead(n, args[:0]); !ok {
			break
		}
		m = d.appendRun(m, text, args)
		n++
	}
	d.args = args
	d.write(append(m, 'S', 0, 0, 0, 4), n)
}

// sendPrepared runs text with args alone, preparing it first if the
// connection has not yet.
func (d *driven) sendPrepared(text string, args []string) {
	d.parsing = d.parsing[:0]
	d.write(append(d.appendRun(d.wbuf[:0], text, args), 'S', 0, 0, 0, 4), 1)
}

// appendRun appends the messages running text with args: Parse first if
// the connection has not prepared it (nor a message before in m), then
// Bind and Execute.
func (d *driven) appendRun(m []byte, text string, args []string) []byte {
	name, prepared := d.names[text]
	for _, p := range d.parsing {
		if !prepared && p.text == text {
			name, prepared = p.name, true
		}
	}
	if !prepared {
		// The name is free: a Parse the server refused prepared nothing.
		name = "lockstep_" + strconv.Itoa(len(d.names)+len(d.parsing)+1)
		m = appendParse(m, name, text)
		d.parsing = append(d.parsing, prepare{text, name})
	}
	m = appendBind(m, name, args)
	// Execute the unnamed portal, every row.
	return append(m, 'E', 0, 0, 0, 9, 0, 0, 0, 0, 0)
}

// appendParse appends a Parse message preparing text as name, its
// parameters' types left to the server (the text casts each).
func appendParse(m []byte, name, text string) []byte {
	start := len(m)
	m = append(m, 'P', 0, 0, 0, 0)
	m = append(m, name...)
	m = append(m, 0)
	m = append(m, text...)
	m = append(m, 0, 0, 0) // the NUL ending text; no parameter types
	binary.BigEndian.PutUint32(m[start+1:], uint32(len(m)-start-1))
	return m
}

// appendBind appends a Bind message binding args (in text format) to the
// prepared statement name, in the unnamed portal, results in text format.
func appendBind(m []byte, name string, args []string) []byte {
	start := len(m)
	m = append(m, 'B', 0, 0, 0, 0, 0) // its length; the unnamed portal
	m = append(m, name...)
	m = append(m, 0, 0, 0) // the NUL ending name; no format codes: all text
	m = binary.BigEndian.AppendUint16(m, uint16(len(args)))
	for _, a := range args {
		m = binary.BigEndian.AppendUint32(m, uint32(len(a)))
		m = append(m, a...)
	}
	m = append(m, 0, 0) // no result format codes: all text
	binary.BigEndian.PutUint32(m[start+1:], uint32(len(m)-start-1))
	return m
}

// send writes a simple-protocol Query message with sql.
func (d *driven) send(sql string) {
	// A Query message: 'Q', its length (itself included), the text, a NUL.
	m := append(d.wbuf[:0], 'Q', 0, 0, 0, 0)
	m = append(m, sql...)
	m = append(m, 0)
	binary.BigEndian.PutUint32(m[1:], uint32(len(m)-1))
	d.parsing = d.parsing[:0]
	d.write(m, 1)
}

// write sends m, the messages running n statements, and makes ready for
// their answers.
func (d *driven) write(m []byte, n int) {
	d.wbuf, d.out = m, m
	d.busy, d.sent, d.results, d.row = true, n, d.results[:0], nil
	_ = d.flush() // an error shows again in the wait, as EPOLLERR or EPOLLHUP
}

func (d *driven) flush() error {
	for len(d.out) > 0 {
		n, err := rawWrite(d.sock.fd, d.out)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("the connection is lost: %w", err)
		}
		d.out = d.out[n:]
	}
	return nil
}

// parse reads the messages that have arrived, keeping the first row and the
// error of the statement, until ReadyForQuery ends its answer.
func (d *driven) parse() (txStatus byte, answered bool, err error) {
	off := 0
	defer func() { d.in = append(d.in[:0], d.in[off:]...) }()
	for len(d.in)-off >= 5 {
		typ := d.in[off]
		n := int(binary.BigEndian.Uint32(d.in[off+1:]))
		if n < 4 {
			return 0, false, fmt.Errorf("the server sent a malformed message (%q, length %d)", typ, n)
		}
		if len(d.in)-off < 1+n {
			break
		}
		body := d.in[off+5 : off+1+n]
		off += 1 + n
		switch typ {
		case 'D':
			if d.row == nil {
				if d.row, err = decodeRow(body); err != nil {
					return 0, false, err
				}
			}
		case 'E':
			var er pgproto3.ErrorResponse
			if err := er.Decode(body); err != nil {
				return 0, false, err
			}
			// The statement running failed; the server skips what
			// follows, up to the Sync.
			if n := len(d.results); n == 0 || d.results[n-1].err == nil {
				d.results = append(d.results, result{d.row, pgconn.ErrorResponseToPgError(&er)})
			}
		case 'C':
			// CommandComplete: the statement running has ended.
			d.results = append(d.results, result{d.row, nil})
			d.row = nil
		case '1':
			// ParseComplete: the statement is prepared, whatever becomes of
			// its Bind and Execute. A Parse that failed sent an
			// ErrorResponse instead, and the server skipped to the Sync.
			if d.parsed < len(d.parsing) {
				if d.names == nil {
					d.names = map[string]string{}
				}
				p := d.parsing[d.parsed]
				d.names[p.text] = p.name
				d.parsed++
			}
		case 'Z':
			if len(body) != 1 {
				return 0, false, errors.New("the server sent a malformed ReadyForQuery")
			}
			// Every statement sent has ended, or one failed and the
			// server skipped the rest.
			n := len(d.results)
			if n == 0 || n > d.sent || n < d.sent && d.results[n-1].err == nil {
				return 0, false, fmt.Errorf("the server answered %d of the %d statements sent", n, d.sent)
			}
			d.busy, d.parsing, d.parsed = false, d.parsing[:0], 0
			return body[0], true, nil
		}
		// Everything else (RowDescription, BindComplete, notices,
		// parameter changes) says nothing the transfer needs.
	}
	return 0, false, nil
}

// driveOnCore is drive on a thread pinned to the k-th core, given back
// as it was before it returns.
func driveOnCore(ctx context.Context, k int, socks []*socket, s *ledger.Strategy, schema string, accounts int, pipeline bool,
	rnd *rand.Rand, deadline time.Time) (Tally, []time.Duration, error) {
	unpin := pinThread(k)
	defer unpin()
	return drive(ctx, socks, s, schema, accounts, pipeline, rnd, deadline)
}

// driver readies conns to be driven from one goroutine (drive): run
// drives them from start, and release gives their sockets back. run is nil,
// and conns are as they were, when their sockets cannot be taken
// (takeSockets).
func driver(ctx context.Context, cfg BenchConfig, conns []*pgx.Conn) (run func(start time.Time) (Tally, []time.Duration, error), release func(), err error) {
	socks, err := takeSockets(ctx, conns)
	if err != nil || socks == nil {
		return nil, func() {}, err
	}
	release = func() {
		for _, s := range socks {
			s.close()
		}
	}
	run = func(start time.Time) (Tally, []time.Duration, error) {
		// One driver per thread the runtime runs (DriverThreads), each with
		// its share of the connections, on a core of its own: one thread
		// cannot keep up with two client threads of pgbench, and two that
		// the scheduler moves about keep their backends on the other core,
		// waking each other across cores on every round trip (README).
		parts := DriverThreads(len(socks))
		type result struct {
			tally Tally
			lat   []time.Duration
			err   error
		}
		results := make([]result, parts)
		var wg sync.WaitGroup
		for p := range parts {
			var mine []*socket
			for i := p; i < len(socks); i += parts {
				mine = append(mine, socks[i])
			}
			wg.Go(func() {
				rnd := rand.New(rand.NewPCG(uint64(len(conns))*uint64(p+1), uint64(start.UnixNano())))
				t, lat, err := driveOnCore(ctx, p, mine, cfg.Strategy, cfg.DB.Schema(), cfg.Accounts, cfg.Pipeline, rnd, start.Add(cfg.Duration))
				results[p] = result{t, lat, err}
			})
		}
		wg.Wait()
		var total Tally
		var lat []time.Duration
		var errs []error
		for _, r := range results {
			total.add(r.tally)
			lat = append(lat, r.lat...)
			errs = append(errs, r.err)
		}
		return total, lat, errors.Join(errs...)
	}
	return run, release, nil
}
