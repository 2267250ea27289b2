package serve

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/jackc/pgx/v5"
	gossh "golang.org/x/crypto/ssh"

	"lockstep/db"
)

// BenchmarkClass is the class target: 30 simulated students over SSH, on
// this machine, each stepping through the lecture once a second (1 2 1 2 1
// 2 1 2 1 — T1 waits — 2, the deadlock the server breaks, T1's four
// statements to its COMMIT, r to reset, and again): every keypress's
// screen update reaches its client within 200 ms at p99, serve's own CPU
// stays within one core, no step fails, and after they all disconnect and
// serve stops, no role, schema or backend of theirs is left. The anchor,
// measured in the same run before and after the class, is one student
// alone stepping the same lecture on the same serve: the ratio says what
// thirty cost each of them.
//
// serve is the built binary, over a throwaway PostgreSQL of the
// benchmark's own (max_connections 400, deadlock_timeout 200 ms), never
// the shared server.
//
//	go test ./serve -run '^$' -bench Class -benchtime 1x
func BenchmarkClass(b *testing.B) {
	students := 30
	if n, err := strconv.Atoi(os.Getenv("LOCKSTEP_BENCH_STUDENTS")); err == nil && n > 0 {
		students = n
	}
	passes := 2
	for range b.N {
		benchClass(b, students, passes)
	}
}

func benchClass(b *testing.B, students, passes int) {
	ctx := context.Background()
	srv, err := db.StartServer(ctx, db.ServerOptions{DeadlockTimeout: 200 * time.Millisecond, MaxConnections: 400})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	url := srv.URL("postgres")
	bin := lockstepBin(b)
	cmd := exec.Command(bin, "serve", "--dsn", url, "--listen", "127.0.0.1:0", "--code", "bench-code",
		"--max-students", fmt.Sprint(students+1), "--host-key", filepath.Join(b.TempDir(), "key"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-exited:
		b.Fatalf("serve exited: %v\n%s", err, log.String())
	}

	// A: one student alone.
	anchor := newLatencies()
	runStudents(b, addr, "alone_a", 1, 1, anchor)
	// B: the class, its CPU measured.
	class := newLatencies()
	cpu0, wall0 := cpuTicks(b, cmd.Process.Pid), time.Now()
	pg0, me0 := serverTicks(b, srv.Pid()), cpuTicks(b, os.Getpid())
	runStudents(b, addr, "class", students, passes, class)
	cpu1, wall1 := cpuTicks(b, cmd.Process.Pid), time.Now()
	pg1, me1 := serverTicks(b, srv.Pid()), cpuTicks(b, os.Getpid())
	// A again.
	runStudents(b, addr, "alone_b", 1, 1, anchor)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	// Everyone has hung up: their sessions rolled back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'lockstep\\_s\\_%'").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			b.Errorf("%d backends of the students left 5 s after they hung up", n)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	stop := time.Now()
	if err := <-exited; err != nil {
		b.Errorf("serve exited with %v:\n%s", err, log.String())
	}
	stopped := time.Since(stop)
	var roles, schemas, backends int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lockstep\_s\_%'),
		(SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'lockstep\_s\_%'),
		(SELECT count(*) FROM pg_stat_activity WHERE usename LIKE 'lockstep\_s\_%')`).Scan(&roles, &schemas, &backends); err != nil {
		b.Fatal(err)
	}

	p99, p50, n, failed := class.stats()
	a99, a50, an, afailed := anchor.stats()
	cores := float64(cpu1-cpu0) / ticksPerSecond / wall1.Sub(wall0).Seconds()
	b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p99)/float64(a99), "p99/anchor")
	b.ReportMetric(cores, "serve-cores")
	b.ReportMetric(float64(failed), "failed-steps")
	b.Logf("%d students × %d passes: %d keys, p50 %s, p99 %s (target ≤ 200ms), %d failed; serve's CPU %.2f cores (target ≤ 1) over %s",
		students, passes, n, p50, p99, failed, cores, wall1.Sub(wall0).Round(time.Second))
	secs := wall1.Sub(wall0).Seconds()
	b.Logf("meanwhile PostgreSQL took %.2f cores and the %d clients (this process) %.2f; the machine's load average was %s",
		float64(pg1-pg0)/ticksPerSecond/secs, students, float64(me1-me0)/ticksPerSecond/secs, loadAverage())
	b.Logf("anchor, one student alone (before and after): %d keys, p50 %s, p99 %s, %d failed; the class's p99 is %.2f× the anchor's, its p50 %.2f×",
		an, a50, a99, afailed, float64(p99)/float64(a99), float64(p50)/float64(a50))
	b.Logf("each key's median/worst in ms: %s", class.perKey())
	r99, r50, rn, _ := resets.stats()
	b.Logf("resets (r, not timed against the target): %d, p50 %s, p99 %s", rn, r50, r99)
	b.Logf("after: %d roles, %d schemas, %d backends of the students left; serve stopped %s after SIGTERM", roles, schemas, backends, stopped.Round(time.Millisecond))
	if failed+afailed > 0 || roles+schemas+backends > 0 {
		b.Errorf("failed steps %d (anchor %d); left: %d roles, %d schemas, %d backends", failed, afailed, roles, schemas, backends)
	}
}

// ticksPerSecond is the kernel's USER_HZ, which /proc counts CPU time in.
const ticksPerSecond = 100

// cpuTicks is a process's user and system CPU time, in ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command's closing parenthesis; utime and stime
	// are the 14th and 15th of the line, the 12th and 13th after it.
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	f := strings.Fields(rest)
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// serverTicks is the CPU time of a PostgreSQL server: the postmaster's,
// its children's that have exited, and those of the children still
// running.
func serverTicks(b *testing.B, postmaster int) int64 {
	total := procTicks(b, postmaster, true)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == postmaster {
			total += procTicks(b, pid, false)
		}
	}
	return total
}

// procTicks is a process's user and system CPU time, in ticks, and its
// exited children's when children.
func procTicks(b *testing.B, pid int, children bool) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	fields := []int{11, 12} // utime, stime
	if children {
		fields = append(fields, 13, 14) // cutime, cstime
	}
	var total int64
	for _, i := range fields {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		total += v
	}
	return total
}

// loadAverage is the machine's load average over the last minute.
func loadAverage() string {
	raw, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// latencies collects how long each key took to show.
type latencies struct {
	mu     sync.Mutex
	d      []time.Duration
	byKey  map[int][]time.Duration
	failed int
}

func newLatencies() *latencies { return &latencies{} }

func (l *latencies) add(d time.Duration) { l.addKey(-1, d) }

// addKey adds the time key i of the lecture took.
func (l *latencies) addKey(i int, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.d = append(l.d, d)
	if l.byKey == nil {
		l.byKey = map[int][]time.Duration{}
	}
	l.byKey[i] = append(l.byKey[i], d)
}

// perKey is each key's median and worst, in the lecture's order.
func (l *latencies) perKey() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for i, k := range lectureKeys {
		d := slices.Clone(l.byKey[i])
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		parts = append(parts, fmt.Sprintf("%d:%s%s %d/%d", i+1, k.key, strings.SplitN(k.word, "|", 2)[0], d[len(d)/2].Milliseconds(), d[len(d)-1].Milliseconds()))
	}
	return strings.Join(parts, " ")
}

func (l *latencies) fail() {
	l.mu.Lock()
	l.failed++
	l.mu.Unlock()
}

func (l *latencies) stats() (p99, p50 time.Duration, n, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.d)
	slices.Sort(d)
	if len(d) == 0 {
		return 0, 0, 0, l.failed
	}
	return d[min(len(d)-1, len(d)*99/100)], d[len(d)/2], len(d), l.failed
}

// lectureKeys is a pass through the lecture: each key, the session whose
// log line shows its effect, and that line's mark and first word. "" is a
// reset, waited for but not timed.
var lectureKeys = []struct{ key, session, mark, word string }{
	{"1", "T1", "✓", "BEGIN"}, {"2", "T2", "✓", "BEGIN"},
	{"1", "T1", "✓", "INSERT"}, {"2", "T2", "✓", "INSERT"},
	{"1", "T1", "✓", "INSERT"}, {"2", "T2", "✓", "INSERT"},
	{"1", "T1", "✓", "INSERT"}, {"2", "T2", "✓", "INSERT"},
	{"1", "T1", "⏳", "waits"}, // T1 waits for T2
	// The deadlock: the server breaks it within 200 ms, T2 its victim —
	// sooner, at times, than a poll saw T2 wait, and the lines of the break
	// can come in one frame: any line of T2's is the key's.
	{"2", "T2", "⏳|✗|↺", "waits|deadlock|ROLLBACK"},
	{"1", "T1", "✓", "UPDATE"}, {"1", "T1", "✓", "SELECT"}, {"1", "T1", "✓", "UPDATE"}, {"1", "T1", "✓", "COMMIT"},
	{"r", "", "", ""},
}

// afterBreak is the key after the deadlock's: before it, a student sees the
// server break the deadlock and T1's SELECT go on (a student who pressed 1
// sooner would be told T1 is busy).
const afterBreak = 10

// oneOf says whether s is one of the |-separated alternatives.
func oneOf(s, alternatives string) bool { return slices.Contains(strings.Split(alternatives, "|"), s) }

// resets times the resets (r), which are not keys of the target.
var resets = newLatencies()

var logLineRE = regexp.MustCompile(`(\d\d):(\d\d):(\d\d)\.(\d{3}) (T\d) +(✓|⏳|✗|↺) (\S+)`)

// logLine is a screen whose log shows a line of session's, with one of
// marks and one of words, written since.
func logLine(session, marks, words string, since time.Time) func(string) bool {
	since = since.Add(-time.Millisecond).Truncate(time.Millisecond)
	return func(s string) bool {
		for _, m := range logLineRE.FindAllStringSubmatch(s, -1) {
			if m[5] != session || !oneOf(m[6], marks) || !oneOf(m[7], words) {
				continue
			}
			h, _ := strconv.Atoi(m[1])
			mi, _ := strconv.Atoi(m[2])
			sec, _ := strconv.Atoi(m[3])
			ms, _ := strconv.Atoi(m[4])
			y, mo, d := since.Date()
			at := time.Date(y, mo, d, h, mi, sec, ms*int(time.Millisecond), time.Local)
			if !at.Before(since) {
				return true
			}
		}
		return false
	}
}

// runStudents logs n students in, steps each through the lecture passes
// times at one key a second (their beats spread over the second), and
// hangs them up.
func runStudents(b *testing.B, addr, prefix string, n, passes int, lat *latencies) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * time.Second / time.Duration(n))
			benchStudent(b, addr, fmt.Sprintf("%s_%d_%d", prefix, os.Getpid()%10000, i), passes, lat)
		}()
	}
	wg.Wait()
}

// benchStudent is one simulated student: an SSH client at 120×40 whose
// terminal emulator tells when each key's effect is on the screen.
func benchStudent(b *testing.B, addr, name string, passes int, lat *latencies) {
	conn, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{User: name, Auth: []gossh.AuthMethod{codeAuth("bench-code")},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
	if err != nil {
		b.Errorf("%s: %v", name, err)
		lat.fail()
		return
	}
	defer conn.Close()
	sess, err := conn.NewSession()
	if err != nil {
		b.Error(err)
		return
	}
	stdin, _ := sess.StdinPipe()
	stdout, _ := sess.StdoutPipe()
	if err := sess.RequestPty("xterm-256color", 40, 120, gossh.TerminalModes{}); err != nil {
		b.Error(err)
		return
	}
	if err := sess.Shell(); err != nil {
		b.Error(err)
		return
	}
	emu := vt.NewEmulator(120, 40)
	answer(emu, stdin)
	defer func() {
		if pw, ok := emu.InputPipe().(interface{ Close() error }); ok {
			_ = pw.Close()
		}
	}()
	// wants are checked against the screen after every chunk that arrives.
	type wantT struct {
		ok   func(string) bool
		done chan struct{}
	}
	var mu sync.Mutex
	var wants []*wantT
	go func() {
		buf := make([]byte, 64*1024)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				mu.Lock()
				_, _ = emu.Write(buf[:n])
				if len(wants) > 0 {
					screen := emu.String()
					wants = slices.DeleteFunc(wants, func(w *wantT) bool {
						if w.ok(screen) {
							close(w.done)
							return true
						}
						return false
					})
				}
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	expect := func(ok func(string) bool) chan struct{} {
		w := &wantT{ok: ok, done: make(chan struct{})}
		mu.Lock()
		if ok(emu.String()) {
			close(w.done)
		} else {
			wants = append(wants, w)
		}
		mu.Unlock()
		return w.done
	}
	ready := func(s string) bool {
		return strings.Count(s, "○ idle · pid") == 2 && strings.Count(s, "▶ BEGIN") == 2
	}
	select {
	case <-expect(ready):
	case <-time.After(30 * time.Second):
		b.Errorf("%s: the interface never became ready", name)
		lat.fail()
		return
	}
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	var pressed time.Time
	for range passes {
		for i, k := range lectureKeys {
			<-beat.C
			if i == afterBreak {
				select {
				case <-expect(logLine("T1", "✓", "SELECT", pressed)):
				case <-time.After(10 * time.Second):
					b.Errorf("%s: T1's SELECT never went on after the deadlock", name)
					lat.fail()
					return
				}
			}
			var done chan struct{}
			var ended chan struct{}
			if k.key == "r" {
				// The key's own update is the status saying the reset is
				// under way (or, when it was quicker than a frame, its end);
				// its end is the screen ready again (after a pass it is not).
				done = expect(func(s string) bool { return strings.Contains(s, "resetting…") || ready(s) })
				ended = expect(ready)
			} else {
				done = expect(logLine(k.session, k.mark, k.word, time.Now()))
			}
			start := time.Now()
			pressed = start
			if _, err := stdin.Write([]byte(k.key)); err != nil {
				b.Errorf("%s: %v", name, err)
				lat.fail()
				return
			}
			limit := 5 * time.Second
			if k.key == "r" {
				limit = 60 * time.Second
			}
			select {
			case <-done:
				lat.addKey(i, time.Since(start))
				if ended != nil {
					select {
					case <-ended:
						resets.add(time.Since(start))
					case <-time.After(limit):
						b.Errorf("%s: the reset did not end in %s", name, limit)
						lat.fail()
						return
					}
				}
			case <-time.After(limit):
				mu.Lock()
				wants = nil
				screen := emu.String()
				mu.Unlock()
				b.Errorf("%s: key %s (%s %s %s) never showed its effect; the screen:\n%s", name, k.key, k.session, k.mark, k.word, screen)
				lat.fail()
				return
			}
		}
	}
}
