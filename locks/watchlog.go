package locks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
		f, err := os.Open(path)
		if err == nil {
			if _, err = f.Seek(0, io.SeekEnd); err == nil {
				return &fileLog{f: f, r: bufio.NewReader(f)}, ""
			}
			f.Close()
		}
		return nil, fmt.Sprintf("the server's log cannot be read (%v): deadlocks the server breaks are counted, their victims not named", err)
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

// logParser finds the deadlock reports in a log's text, fed in pieces.
type logParser struct {
	partial string
	pending []string
	// skipping drops the first line fed, which may start mid-way.
	skipping bool
}

// logMessage finds a message's level in a line of any log_line_prefix:
// "… ERROR:  deadlock detected". The level is followed by two spaces.
var logMessage = regexp.MustCompile(`(?:^|\s)(ERROR|DETAIL|HINT|CONTEXT|STATEMENT|LOG|WARNING|FATAL|PANIC|NOTICE|INFO|DEBUG\d?):  (.*)$`)

// logPid is the pid a default log_line_prefix ('%m [%p] ') puts first.
var logPid = regexp.MustCompile(`\[(\d+)\]`)

// processLine finds the processes a DETAIL names.
var processLine = regexp.MustCompile(`(?i)process (\d+)`)

// feed adds text to what was read and returns the deadlock reports now
// complete in it: the ERROR line and the DETAIL that follows it (with its
// tab-indented lines). A report still being written waits for more.
func (p *logParser) feed(text string) []serverDeadlock {
	lines := strings.Split(p.partial+text, "\n")
	p.partial = lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	if p.skipping && len(lines) > 0 {
		lines, p.skipping = lines[1:], false
	}
	p.pending = append(p.pending, lines...)
	var out []serverDeadlock
	keep := 0
	for i := 0; i < len(p.pending); i++ {
		m := logMessage.FindStringSubmatch(p.pending[i])
		if m == nil || m[1] != "ERROR" || m[2] != "deadlock detected" {
			keep = i + 1
			continue
		}
		// The report ends at the first line of another message after its DETAIL.
		var detail []string
		end := -1
		for j := i + 1; j < len(p.pending); j++ {
			l := p.pending[j]
			if strings.HasPrefix(l, "\t") {
				if len(detail) > 0 {
					detail = append(detail, strings.TrimSpace(l))
				}
				continue
			}
			if dm := logMessage.FindStringSubmatch(l); dm != nil && dm[1] == "DETAIL" && len(detail) == 0 {
				detail = append(detail, dm[2])
				continue
			}
			end = j
			break
		}
		if end < 0 {
			break // wait for the rest
		}
		r := serverDeadlock{detail: strings.Join(detail, "\n")}
		for _, pm := range processLine.FindAllStringSubmatch(r.detail, -1) {
			if pid, err := strconv.ParseInt(pm[1], 10, 32); err == nil && !containsPid(r.pids, int32(pid)) {
				r.pids = append(r.pids, int32(pid))
			}
		}
		// The victim: the prefix's pid where it has one, else the first
		// process the DETAIL names (the check starts its search at itself).
		if pm := logPid.FindStringSubmatch(strings.TrimSuffix(p.pending[i], m[0])); pm != nil {
			if pid, err := strconv.ParseInt(pm[1], 10, 32); err == nil {
				r.victim = int32(pid)
			}
		}
		if r.victim == 0 && len(r.pids) > 0 {
			r.victim = r.pids[0]
		}
		out = append(out, r)
		keep, i = end, end-1
	}
	p.pending = p.pending[keep:]
	// A line that never ends a report is not kept for ever.
	if len(p.pending) > 1000 {
		p.pending = p.pending[len(p.pending)-1000:]
	}
	return out
}

func containsPid(pids []int32, pid int32) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}
