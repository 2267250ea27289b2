package serve

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/jackc/pgx/v5"
	gossh "golang.org/x/crypto/ssh"

	"lockstep/db"
	"lockstep/dbtest"
	"lockstep/tui"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

// A test's class: serve on a port of its own over the test database, a
// teacher's key, and students logging in through a Go SSH client whose
// output a terminal emulator draws, so that tests read the screen the
// student would.

type testServe struct {
	*Server
	t       *testing.T
	teacher gossh.Signer
	keyed   gossh.Signer // a key of --authorized-keys
	dir     string
}

var nameSeq atomic.Int64

// uniq is a student name no other test, nor another test binary on the
// same server, uses: roles are the server's, not the database's.
func uniq(name string) string {
	return fmt.Sprintf("%s_%d_%d", name, os.Getpid()%100000, nameSeq.Add(1))
}

func newSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func writeKeys(t testing.TB, path string, keys ...gossh.PublicKey) {
	t.Helper()
	var b []byte
	for _, k := range keys {
		b = append(b, gossh.MarshalAuthorizedKey(k)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// logTo writes serve's log lines to the test's log.
type logTo struct{ t testing.TB }

func (l logTo) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServe starts a class over the test database; change adjusts its
// options first.
func startServe(t *testing.T, change func(*Options)) *testServe {
	t.Helper()
	dir := t.TempDir()
	ts := &testServe{t: t, teacher: newSigner(t), keyed: newSigner(t), dir: dir}
	writeKeys(t, filepath.Join(dir, "teacher.pub"), ts.teacher.PublicKey())
	opts := Options{DB: dbtest.DB(t), Listen: "127.0.0.1:0", HostKey: filepath.Join(dir, "host_key"), Code: "test-code",
		TeacherKeys: filepath.Join(dir, "teacher.pub"), Server: "the test PostgreSQL", Log: logTo{t}, FailDelay: 50 * time.Millisecond,
		MaxStudents: 3}
	if change != nil {
		change(&opts)
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ts
}

// client is an SSH client with a terminal: what it was sent is drawn by a
// terminal emulator, whose answers to the program's queries go back.
type client struct {
	t     testing.TB
	conn  *gossh.Client
	sess  *gossh.Session
	stdin io.WriteCloser

	mu     sync.Mutex
	emu    *vt.Emulator
	stderr strings.Builder
	raw    strings.Builder // what arrived before the screen (one-line refusals)
	ended  chan struct{}
}

// dial logs in as user with auth; nil and the error when refused.
func dial(t testing.TB, addr, user string, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	t.Helper()
	return gossh.Dial("tcp", addr, &gossh.ClientConfig{User: user, Auth: auth,
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
}

// codeAuth answers the keyboard-interactive question with code.
func codeAuth(code string) gossh.AuthMethod {
	return gossh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
		answers := make([]string, len(questions))
		for i := range answers {
			answers[i] = code
		}
		return answers, nil
	})
}

// student logs name in with the class code, in a w×h terminal.
func (ts *testServe) student(name string, w, h int, env ...string) *client {
	ts.t.Helper()
	conn, err := dial(ts.t, ts.Addr(), name, codeAuth(ts.Code()))
	if err != nil {
		ts.t.Fatalf("%s logging in: %v", name, err)
	}
	return open(ts.t, conn, w, h, env...)
}

// teacherClient logs the teacher in with the teacher's key.
func (ts *testServe) teacherClient(w, h int) *client {
	ts.t.Helper()
	conn, err := dial(ts.t, ts.Addr(), "teacher", gossh.PublicKeys(ts.teacher))
	if err != nil {
		ts.t.Fatalf("the teacher logging in: %v", err)
	}
	return open(ts.t, conn, w, h)
}

// open asks for a terminal and a shell on conn.
func open(t testing.TB, conn *gossh.Client, w, h int, env ...string) *client {
	t.Helper()
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if err := sess.Setenv(k, v); err != nil {
			t.Fatal(err)
		}
	}
	c := &client{t: t, conn: conn, sess: sess, emu: vt.NewEmulator(w, h), ended: make(chan struct{})}
	if c.stdin, err = sess.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sess.Stderr = &lockedWriter{c: c, w: &c.stderr}
	if err := sess.RequestPty("xterm-256color", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.ended)
		buf := make([]byte, 32*1024)
		for {
			n, err := stdout.Read(buf)
			if n > 0 {
				c.mu.Lock()
				c.raw.Write(buf[:n])
				_, _ = c.emu.Write(buf[:n])
				c.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	answer(c.emu, c.stdin)
	t.Cleanup(c.close)
	return c
}

// answer sends the terminal's answers to the program's questions (its
// colours, its modes) back as a terminal would. The emulator writes them
// into a pipe while it draws: they are read at once and sent from a
// goroutine of their own, so that drawing never waits on the connection
// (which may wait on the server, which may wait on the drawing).
func answer(emu *vt.Emulator, stdin io.Writer) {
	answers := make(chan []byte, 4096)
	go func() {
		defer close(answers)
		buf := make([]byte, 1024)
		for {
			n, err := emu.Read(buf)
			if n > 0 {
				answers <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		for a := range answers {
			_, _ = stdin.Write(a)
		}
	}()
}

type lockedWriter struct {
	c *client
	w *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	return l.w.Write(p)
}

// close hangs up, as a client that quits does.
func (c *client) close() {
	_ = c.conn.Close()
	select {
	case <-c.ended:
	case <-time.After(5 * time.Second):
	}
	// The emulator's own Close races its Read (an unguarded flag): closing
	// the pipe it reads from ends the reader just the same.
	if pw, ok := c.emu.InputPipe().(*io.PipeWriter); ok {
		_ = pw.Close()
	}
}

// screen is what the terminal shows.
func (c *client) screen() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.emu.String()
}

// output is everything the client was sent, escapes and all.
func (c *client) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.raw.String() + c.stderr.String()
}

// waitFor waits until the screen shows every one of subs.
func (c *client) waitFor(subs ...string) string {
	c.t.Helper()
	return c.waitUntil(strings.Join(subs, " and "), func(s string) bool {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				return false
			}
		}
		return true
	})
}

// waitUntil waits until the screen passes ok.
func (c *client) waitUntil(what string, ok func(string) bool) string {
	c.t.Helper()
	deadline := time.Now().Add(40 * time.Second)
	for {
		s := c.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the screen never showed %s; it shows:\n%s", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEnd waits for the server to end the session.
func (c *client) waitEnd() {
	c.t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.sess.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("the session did not end; the screen shows:\n%s", c.screen())
	}
	<-c.ended
}

var keyBytes = map[string]string{
	"enter": "\r", "esc": "\x1b", "up": "\x1b[A", "down": "\x1b[B", "right": "\x1b[C", "left": "\x1b[D",
	"tab": "\t", "ctrl+c": "\x03", "space": " ", "backspace": "\x7f",
}

// press sends keys, each as a terminal sends it; a lone escape is given
// time to stand alone.
func (c *client) press(keys ...string) {
	c.t.Helper()
	for _, k := range keys {
		b, ok := keyBytes[k]
		if !ok {
			b = k
		}
		if _, err := c.stdin.Write([]byte(b)); err != nil {
			c.t.Fatalf("pressing %s: %v", k, err)
		}
		if k == "esc" {
			time.Sleep(150 * time.Millisecond)
		}
	}
}

// typeLine types text and enter.
func (c *client) typeLine(text string) {
	c.t.Helper()
	c.press(text, "enter")
}

// run is where a student's run stands, as the class view knows it.
func (ts *testServe) run(name string) (tui.ClassStudent, bool) {
	for _, s := range ts.class.Students() {
		if s.Name == name {
			return s, true
		}
	}
	return tui.ClassStudent{}, false
}

// waitRun waits until student name's run passes ok.
func (ts *testServe) waitRun(name, what string, ok func(tui.ClassStudent) bool) tui.ClassStudent {
	ts.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, found := ts.run(name)
		if found && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("%s's run never got to %s: %+v", name, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// step presses key, the done-th statement of the run, and waits until it
// has settled: it ended, or the server says it waits.
func (ts *testServe) step(c *client, name, key string, done int) tui.ClassStudent {
	ts.t.Helper()
	c.press(key)
	return ts.waitRun(name, fmt.Sprintf("%d statements, settled", done), func(s tui.ClassStudent) bool {
		waits := s.Run.State == tui.RunWaiting || s.Run.State == tui.RunDeadlock
		return s.Run.Settled && (s.Run.Done >= done || waits && s.Run.Done >= done-1)
	})
}

// admin is a connection to the test database as its own (super)user.
func adminConn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := dbtest.DB(t).Connect(context.Background(), db.AppName("test-admin"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// backends counts role's backends.
func backends(t testing.TB, conn *pgx.Conn, role string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitBackends waits until role has no backend left, within d.
func waitBackends(t testing.TB, conn *pgx.Conn, role string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for backends(t, conn, role) > 0 {
		if time.Since(start) > d {
			t.Fatalf("role %s still has %d backends after %s", role, backends(t, conn, role), d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// dialRaw is a TCP connection to serve through a proxy the test can
// silence, as a network that is gone is silent.
type proxy struct {
	ln      net.Listener
	silence atomic.Bool
	conns   sync.WaitGroup
}

func newProxy(t testing.TB, to string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32*1024)
				for {
					n, err := src.Read(buf)
					if err != nil {
						return
					}
					if p.silence.Load() {
						continue // the network is gone: nothing arrives, nothing is refused
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			go pipe(up, c)
			go pipe(c, up)
			t.Cleanup(func() { c.Close(); up.Close() })
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}
