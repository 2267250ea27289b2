package serve

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"lockstep/tui"
)

// TestDisconnectRollsBack cuts a student off twice, holding a transaction
// each time: once as a client that quits (its TCP connection closes), once
// as a network that goes silent (a laptop closed: nothing arrives, nothing
// is refused). Each time the student's backends are gone — the transaction
// rolled back — within the keep-alive time; and a login again with the
// same name resumes the run they were on, from its first step, with what
// they finished kept.
func TestDisconnectRollsBack(t *testing.T) {
	const keepAlive = 200 * time.Millisecond
	ts := startServe(t, func(o *Options) { o.KeepAlive = keepAlive })
	name := uniq("dan")
	conn := adminConn(t)

	// 1. The client hangs up.
	c := ts.student(name, 100, 30)
	c.waitFor("▶ BEGIN")
	ts.step(c, name, "1", 1)
	ts.step(c, name, "1", 2) // INSERT: T1 holds row and table locks
	if n := backends(t, conn, roleName(name)); n < 4 {
		t.Fatalf("%d backends before the hang-up", n)
	}
	_ = c.conn.Close()
	took := waitBackends(t, conn, roleName(name), keepAlive*(keepAliveMisses+1)+3*time.Second)
	t.Logf("hung up: the backends were gone %s later", took)
	ts.waitRun(name, "not connected", func(s tui.ClassStudent) bool { return !s.Connected })

	// 2. The network goes silent.
	p := newProxy(t, ts.Addr())
	gc, err := dial(t, p.ln.Addr().String(), name, codeAuth(ts.Code()))
	if err != nil {
		t.Fatal(err)
	}
	c = open(t, gc, 100, 30)
	c.waitFor("▶ BEGIN")
	ts.step(c, name, "1", 1)
	ts.step(c, name, "1", 2)
	start := time.Now()
	p.silence.Store(true)
	took = waitBackends(t, conn, roleName(name), keepAlive*(keepAliveMisses+1)+3*time.Second)
	t.Logf("silent: the backends were gone %s later (keep-alive %s × %d)", time.Since(start), keepAlive, keepAliveMisses)
	if took < keepAlive {
		t.Errorf("the backends went %s after the network went silent: before any keep-alive could tell", took)
	}
	ts.waitRun(name, "not connected", func(s tui.ClassStudent) bool { return !s.Connected })

	// 3. Back, with the run they were on and what they finished.
	ts.class.mu.Lock()
	ts.class.students[name].finished = []string{"naive"}
	ts.class.mu.Unlock()
	c = ts.student(name, 100, 30)
	c.waitFor("▶ BEGIN", "for-update")
	st := ts.waitRun(name, "resumed", func(s tui.ClassStudent) bool { return s.Connected && s.Run.Settled })
	if st.Run.Done != 0 || len(st.Finished) != 1 {
		t.Errorf("resumed at %d statements with %v finished; want the run's start, naive kept", st.Run.Done, st.Finished)
	}
}

// TestLoginAgain logs a student in a second time while the first screen
// lives: the first ends, saying why, and its sessions roll back before
// the second screen's run starts.
func TestLoginAgain(t *testing.T) {
	ts := startServe(t, nil)
	name := uniq("lee")
	first := ts.student(name, 100, 30)
	first.waitFor("▶ BEGIN")
	ts.step(first, name, "1", 1)
	second := ts.student(name, 100, 30)
	second.waitFor("▶ BEGIN")
	first.waitEnd()
	if out := first.output(); !strings.Contains(out, "logged in again") {
		t.Errorf("the first screen was not told why it ended: %q", out)
	}
	ts.step(second, name, "1", 1)
}

// TestRefusals: a wrong code is refused after the delay; a name that is
// not a plain identifier, a command, a missing terminal, port forwarding
// and a subsystem each get one line or a refusal; a key that is not
// authorized gets nothing; a key of --authorized-keys logs in with no code.
func TestRefusals(t *testing.T) {
	const delay = 400 * time.Millisecond
	ts := startServe(t, func(o *Options) { o.FailDelay = delay })
	writeKeys(t, filepath.Join(ts.dir, "students"), ts.keyed.PublicKey())

	start := time.Now()
	var told []string
	wrong := gossh.KeyboardInteractive(func(_, instruction string, questions []string, _ []bool) ([]string, error) {
		if len(questions) == 0 {
			told = append(told, instruction)
		}
		answers := make([]string, len(questions))
		for i := range answers {
			answers[i] = "wrong-code"
		}
		return answers, nil
	})
	if _, err := dial(t, ts.Addr(), uniq("mal"), wrong); err == nil {
		t.Fatal("a wrong code logged in")
	}
	if len(told) == 0 || !strings.Contains(told[0], "class code is wrong") {
		t.Errorf("a wrong code was refused without a word: %q", told)
	}
	if took := time.Since(start); took < delay {
		t.Errorf("a wrong code was refused after %s, before the delay of %s", took, delay)
	}
	if _, err := dial(t, ts.Addr(), uniq("mal"), gossh.PublicKeys(newSigner(t))); err == nil {
		t.Fatal("a key nobody authorized logged in")
	}
	if _, err := dial(t, ts.Addr(), uniq("mal"), gossh.Password(ts.Code())); err == nil {
		t.Fatal("password authentication is not offered, yet a password logged in")
	}

	oneLine := func(user string, run func(*gossh.Session) error, want string) {
		t.Helper()
		conn, err := dial(t, ts.Addr(), user, codeAuth(ts.Code()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		sess, err := conn.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		sess.Stdout, sess.Stderr = &out, &out
		err = run(sess)
		var exit *gossh.ExitError
		if !errors.As(err, &exit) || exit.ExitStatus() != 1 {
			t.Errorf("%s: %v, want exit status 1", want, err)
		}
		got := strings.TrimSpace(out.String())
		if !strings.Contains(got, want) || strings.Count(got, "\n") > 0 {
			t.Errorf("want one line with %q, got %q", want, got)
		}
	}
	shell := func(sess *gossh.Session) error {
		if err := sess.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
			return err
		}
		return sess.Run("")
	}
	oneLine("Ada Lovelace", shell, "is not a name lockstep takes")
	oneLine("9lives", shell, "is not a name lockstep takes")
	oneLine(strings.Repeat("a", 41), shell, "is not a name lockstep takes")
	oneLine(uniq("cmd"), func(s *gossh.Session) error { return s.Run("cat /etc/passwd") }, "lockstep serve runs no commands")
	oneLine(uniq("tty"), func(s *gossh.Session) error {
		if err := s.Shell(); err != nil {
			return err
		}
		return s.Wait()
	}, "lockstep needs a terminal")

	// A role of that name that this serve did not make: not taken over.
	taken := uniq("taken")
	admin := adminConn(t)
	if _, err := admin.Exec(context.Background(), "CREATE ROLE "+roleName(taken)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE "+roleName(taken)) })
	oneLine(taken, shell, "the name is taken on the server: role "+roleName(taken)+" exists and this serve did not make it")

	conn, err := dial(t, ts.Addr(), uniq("fwd"), codeAuth(ts.Code()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if c, err := conn.Dial("tcp", "127.0.0.1:22"); err == nil {
		c.Close()
		t.Error("local port forwarding was allowed")
	}
	if l, err := conn.Listen("tcp", "127.0.0.1:0"); err == nil {
		l.Close()
		t.Error("remote port forwarding was allowed")
	}
	sess, err := conn.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestSubsystem("sftp"); err == nil {
		t.Error("the sftp subsystem was allowed")
	}
	sess.Close()

	// --authorized-keys: no code needed.
	ts2 := startServe(t, func(o *Options) { o.AuthorizedKeys = filepath.Join(ts.dir, "students"); o.Code = "" })
	if ts2.Code() != "" {
		t.Errorf("with --authorized-keys and no --code, serve made a code: %q", ts2.Code())
	}
	kc, err := dial(t, ts2.Addr(), uniq("key"), gossh.PublicKeys(ts.keyed))
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, kc, 100, 30)
	c.waitFor("▶ BEGIN")
}

// TestLimits: --max-students refuses the next student in one line, and so
// does a login the server's max_connections has no room for; --idle ends
// a screen nobody types in, and the student is told.
func TestLimits(t *testing.T) {
	ts := startServe(t, func(o *Options) { o.MaxStudents = 1 })
	a := uniq("one")
	ca := ts.student(a, 100, 30)
	ca.waitFor("▶ BEGIN")
	conn, err := dial(t, ts.Addr(), uniq("two"), codeAuth(ts.Code()))
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, conn, 100, 30)
	c.waitEnd()
	if out := c.output(); !strings.Contains(out, "the class is full") {
		t.Errorf("a student past --max-students: %q", out)
	}
	// Idle: a second without a key — on a serve of its own, so that a
	// loaded machine drawing the first screen late cannot end the student
	// who holds the class's one place.
	tsIdle := startServe(t, func(o *Options) { o.Idle = time.Second })
	ci := tsIdle.student(uniq("idle"), 100, 30)
	ci.waitEnd()
	if out := ci.output(); !strings.Contains(out, "no key for 1s") {
		t.Errorf("an idle student was not told: %q", out)
	}

	// No room on the server: a student would need more connections than
	// are free.
	saved := connsPerStudent
	t.Cleanup(func() { connsPerStudent = saved })
	ts3 := startServe(t, nil)
	connsPerStudent = ts3.admin.maxConns
	conn, err = dial(t, ts3.Addr(), uniq("full"), codeAuth(ts3.Code()))
	if err != nil {
		t.Fatal(err)
	}
	c = open(t, conn, 100, 30)
	c.waitEnd()
	if out := c.output(); !strings.Contains(out, "the server has no room for another student") {
		t.Errorf("a student past max_connections: %q", out)
	}
}

// TestHostKeyKept: the host key is made once and kept; a restart shows
// the same fingerprint.
func TestHostKeyKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "serve", "host_key")
	a := startServe(t, func(o *Options) { o.HostKey = path })
	b := startServe(t, func(o *Options) { o.HostKey = path })
	if a.Fingerprint() != b.Fingerprint() || !strings.HasPrefix(a.Fingerprint(), "SHA256:") {
		t.Errorf("fingerprints %s, %s", a.Fingerprint(), b.Fingerprint())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the host key: %v, mode %v", err, st.Mode())
	}
}
