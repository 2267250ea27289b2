package locks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"lockstep/lazyre"
)

// The server's deadlock check writes its verdict to its log as it breaks
// a deadlock: "ERROR:  deadlock detected", then a DETAIL naming each
// process of the cycle, the victim (the one that ran the check) first.
// The watch reads that log from disk where lockstep can (a throwaway
// server's), else through SQL where the role may and the server collects
// its log (logging_collector): pg_current_logfile, pg_stat_file and
// pg_read_binary_file, a bounded piece per look.

// logSource reads a server's log as it grows.
type logSource interface {
	// read returns the deadlock reports complete in what was added since
	// the last read, and a note when something stops or skips the reading.
	read(ctx context.Context, conn *pgx.Conn) ([]serverDeadlock, string)
	close()
}

// serverDeadlock is one "deadlock detected" the log reports.
type serverDeadlock struct {
	victim int32   // the process the check rolled back
	pids   []int32 // every process of the cycle, the victim first
	detail string
}

// maxLogRead bounds what one look reads of the log; maxLogBehind is how
// far behind the log's end the reading may fall before it skips ahead.
const (
	maxLogRead   = 1 << 20
	maxLogBehind = 16 << 20
)

// openLog opens the server's log: the file at path, or through SQL. With
// neither, it says why in a note, and in short for the history's verdicts.
func openLog(ctx context.Context, conn *pgx.Conn, path, role string) (logSource, string) {
	if path != "" {
		l, err := openFileLog(path)
		if err != nil {
			return nil, fmt.Sprintf("the server's log cannot be read (%v): deadlocks the server breaks are counted, their victims not named", err)
		}
		return l, ""
	}
	var may bool
	var collector string
	err := conn.QueryRow(ctx, `SELECT has_function_privilege('pg_current_logfile(text)', 'EXECUTE')
		AND has_function_privilege('pg_stat_file(text, boolean)', 'EXECUTE')
		AND has_function_privilege('pg_read_binary_file(text, bigint, bigint, boolean)', 'EXECUTE'),
		current_setting('logging_collector')`).Scan(&may, &collector)
	if err != nil {
		return nil, fmt.Sprintf("victims of deadlocks are not named: the server's log cannot be read (%v)", err)
	}
	if !may {
		return nil, fmt.Sprintf("victims of deadlocks are not named: role %s may not read the server's log; a superuser lets it with: "+
			"GRANT EXECUTE ON FUNCTION pg_current_logfile(text), pg_stat_file(text, boolean), pg_read_binary_file(text, bigint, bigint, boolean) TO %s;",
			role, ident(role))
	}
	if collector != "on" {
		return nil, "victims of deadlocks are not named: the server does not collect its log (logging_collector is off), so SQL cannot read it"
	}
	l := &sqlLog{}
	if _, note := l.read(ctx, conn); note != "" {
		return nil, "victims of deadlocks are not named: " + note
	}
	return l, ""
}

// short is the reason a note gives, for a verdict's "victim unknown: …".
func shortLogNote(note string) string {
	switch {
	case note == "":
		return ""
	case strings.Contains(note, "may not read"):
		return "this role may not read the server's log"
	case strings.Contains(note, "logging_collector"):
		return "the server does not collect its log (logging_collector is off)"
	}
	return "the server's log cannot be read"
}

// fileLog reads a log file on this machine as it grows.
type fileLog struct {
	f *os.File
	r *bufio.Reader
	p logParser
}

// openFileLog opens the log at path, to read what is written from now.
func openFileLog(path string) (*fileLog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return &fileLog{f: f, r: bufio.NewReader(f)}, nil
}

func (l *fileLog) read(context.Context, *pgx.Conn) ([]serverDeadlock, string) {
	var chunk strings.Builder
	for chunk.Len() < maxLogRead {
		line, err := l.r.ReadString('\n')
		chunk.WriteString(line)
		if err != nil {
			break
		}
	}
	return l.p.feed(chunk.String()), ""
}

func (l *fileLog) close() { l.f.Close() }

// sqlLog reads the server's current log file through SQL.
type sqlLog struct {
	file   string
	offset int64
	p      logParser
	opened bool
}

func (l *sqlLog) read(ctx context.Context, conn *pgx.Conn) ([]serverDeadlock, string) {
	var (
		file *string
		size *int64
		data []byte
	)
	err := conn.QueryRow(ctx, `SELECT f, s.size,
		CASE WHEN f = $1 AND s.size > $2 THEN pg_read_binary_file(f, $2, least(s.size - $2, $3), true) END
		FROM pg_current_logfile('stderr') f LEFT JOIN LATERAL pg_stat_file(f, true) s ON true`,
		l.file, l.offset, int64(maxLogRead)).Scan(&file, &size, &data)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege {
			return nil, "the server refused to let this role read its log: " + pgErr.Message
		}
		if ctx.Err() != nil {
			return nil, ""
		}
		return nil, fmt.Sprintf("the server's log could not be read this time (%v)", err)
	}
	if file == nil || size == nil {
		return nil, "the server names no current log file (pg_current_logfile is NULL: it does not log to stderr through its collector)"
	}
	switch {
	case !l.opened:
		// The first read starts at the end: only what happens from now.
		l.file, l.offset, l.opened = *file, *size, true
	case *file != l.file || *size < l.offset:
		// A new file (rotated) or the same one cut: read it from its start.
		l.file, l.offset = *file, 0
		l.p = logParser{}
	case *size-l.offset > maxLogBehind:
		skipped := *size - maxLogRead - l.offset
		l.offset, l.p = *size-maxLogRead, logParser{skipping: true}
		return nil, fmt.Sprintf("the server's log grows faster than the watch reads it: %d MB skipped, victims there not named", skipped>>20)
	default:
		l.offset += int64(len(data))
		return l.p.feed(string(data)), ""
	}
	return nil, ""
}

func (l *sqlLog) close() {}

// logParser finds the deadlock reports in a log's text, fed in pieces
// cut anywhere: line by line, so that what it finds does not depend on
// where the pieces were cut (FuzzLogTail).
type logParser struct {
	partial string
	// skipping drops the first line fed, which may start mid-way.
	skipping bool
	// cur is a report being read: its ERROR line seen, its DETAIL maybe.
	cur      *serverDeadlock
	detail   []string
	inDetail bool
}

const (
	// maxLogLine and maxDetailLines bound what a report or a line holds.
	maxLogLine     = 64 << 10
	maxDetailLines = 200
)

// logMessage finds a message's level in a line of any log_line_prefix:
// "… ERROR:  deadlock detected". The level is followed by two spaces.
var logMessage = lazyre.New(`(?:^|\s)(ERROR|DETAIL|HINT|CONTEXT|STATEMENT|LOG|WARNING|FATAL|PANIC|NOTICE|INFO|DEBUG\d?):  (.*)$`)

// logPid is the pid a default log_line_prefix ('%m [%p] ') puts first.
var logPid = lazyre.New(`\[(\d+)\]`)

// processLine finds the processes a DETAIL names.
var processLine = lazyre.New(`(?i)process (\d+)`)

// feed adds text to what was read and returns the deadlock reports now
// complete: the ERROR line and the DETAIL that follows it (with its
// tab-indented lines), ended by the next line of another message. A
// report still being written waits for more.
func (p *logParser) feed(text string) []serverDeadlock {
	lines := strings.Split(p.partial+text, "\n")
	p.partial = lines[len(lines)-1]
	if len(p.partial) > maxLogLine {
		p.partial = p.partial[:maxLogLine]
	}
	lines = lines[:len(lines)-1]
	if p.skipping && len(lines) > 0 {
		lines, p.skipping = lines[1:], false
	}
	var out []serverDeadlock
	for _, l := range lines {
		if len(l) > maxLogLine {
			l = l[:maxLogLine]
		}
		if r, ok := p.line(l); ok {
			out = append(out, r)
		}
	}
	return out
}

// line reads one line: it may go on the report being read, end it, or
// begin one.
func (p *logParser) line(l string) (serverDeadlock, bool) {
	if p.cur != nil {
		if strings.HasPrefix(l, "\t") {
			if p.inDetail && len(p.detail) < maxDetailLines {
				p.detail = append(p.detail, strings.TrimSpace(l))
			}
			return serverDeadlock{}, false
		}
		if m := logMessage.FindStringSubmatch(l); m != nil && m[1] == "DETAIL" && !p.inDetail {
			p.inDetail, p.detail = true, append(p.detail, m[2])
			return serverDeadlock{}, false
		}
		r := p.finish()
		p.begin(l)
		return r, true
	}
	p.begin(l)
	return serverDeadlock{}, false
}

// begin starts a report if the line is a deadlock's ERROR.
func (p *logParser) begin(l string) {
	m := logMessage.FindStringSubmatch(l)
	if m == nil || m[1] != "ERROR" || m[2] != "deadlock detected" {
		return
	}
	p.cur, p.detail, p.inDetail = &serverDeadlock{}, nil, false
	if pm := logPid.FindStringSubmatch(strings.TrimSuffix(l, m[0])); pm != nil {
		if pid, err := strconv.ParseInt(pm[1], 10, 32); err == nil {
			p.cur.victim = int32(pid)
		}
	}
}

// finish is the report read: its DETAIL, the processes it names, and the
// victim — the prefix's pid where the prefix has one, else the first
// process the DETAIL names (the check starts its search at itself).
func (p *logParser) finish() serverDeadlock {
	r := *p.cur
	p.cur = nil
	r.detail = strings.Join(p.detail, "\n")
	for _, pm := range processLine.FindAllStringSubmatch(r.detail, -1) {
		if pid, err := strconv.ParseInt(pm[1], 10, 32); err == nil && !containsPid(r.pids, int32(pid)) {
			r.pids = append(r.pids, int32(pid))
		}
	}
	if r.victim == 0 && len(r.pids) > 0 {
		r.victim = r.pids[0]
	}
	return r
}

func containsPid(pids []int32, pid int32) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}
