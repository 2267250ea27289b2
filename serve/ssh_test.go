package serve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// needProgram skips when a program is missing here, and fails under CI,
// whose .ci/run installs it.
func needProgram(t *testing.T, program, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing under CI: .ci/run installs the %s package", program, pkg)
	}
	t.Skipf("skipped: %s not found (apt package %s)", program, pkg)
	return ""
}

// tmuxTerm is a terminal of tmux's, on a tmux server of the test's own.
type tmuxTerm struct {
	t      *testing.T
	socket string
	name   string
}

func newTmux(t *testing.T, name string, w, h int, command string) *tmuxTerm {
	t.Helper()
	tm := &tmuxTerm{t: t, socket: fmt.Sprintf("lockstep-serve-test-%d", os.Getpid()), name: name}
	if out, err := exec.Command("tmux", "-L", tm.socket, "new-session", "-d", "-s", name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h),
		command+"; sleep 60").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.socket, "kill-session", "-t", name).Run() })
	return tm
}

func (tm *tmuxTerm) screen() string {
	out, _ := exec.Command("tmux", "-L", tm.socket, "capture-pane", "-p", "-t", tm.name).Output()
	return string(out)
}

func (tm *tmuxTerm) keys(keys ...string) {
	tm.t.Helper()
	if out, err := exec.Command("tmux", append([]string{"-L", tm.socket, "send-keys", "-t", tm.name}, keys...)...).CombinedOutput(); err != nil {
		tm.t.Fatalf("tmux send-keys: %v: %s", err, out)
	}
}

func (tm *tmuxTerm) resize(w, h int) {
	tm.t.Helper()
	if out, err := exec.Command("tmux", "-L", tm.socket, "resize-window", "-t", tm.name, "-x", fmt.Sprint(w), "-y", fmt.Sprint(h)).CombinedOutput(); err != nil {
		tm.t.Fatalf("tmux resize-window: %v: %s", err, out)
	}
}

func (tm *tmuxTerm) waitFor(subs ...string) string {
	tm.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := tm.screen()
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(s, sub)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s never showed %q; it shows:\n%s", tm.name, subs, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRealSSH logs in through OpenSSH's own client, in tmux: a student
// types the class code at ssh's prompt, gets the interface, steps a
// session, follows a resize from 100×30 to 80×24; the teacher logs in with
// a key (ssh -i) and sees the student in the class view.
func TestRealSSH(t *testing.T) {
	ssh := needProgram(t, "ssh", "openssh-client")
	keygen := needProgram(t, "ssh-keygen", "openssh-client")
	needProgram(t, "tmux", "tmux")
	dir := t.TempDir()
	key := filepath.Join(dir, "teacher")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	ts := startServe(t, func(o *Options) { o.TeacherKeys = key + ".pub" })
	_, port, _ := strings.Cut(ts.Addr(), ":")
	common := fmt.Sprintf("%s -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p %s", ssh, port)
	name := uniq("kit")
	st := newTmux(t, "student", 100, 30, fmt.Sprintf("%s -o PubkeyAuthentication=no %s@127.0.0.1", common, name))
	st.waitFor("Class code:")
	st.keys(ts.Code(), "Enter")
	st.waitFor("lockstep  for-update", "▶ BEGIN", "you are "+name)
	st.keys("1")
	st.waitFor("● in transaction")
	st.resize(80, 24)
	st.waitFor("[Locks]", "v switches")

	tc := newTmux(t, "teacher", 120, 40, fmt.Sprintf("%s -i %s teacher@127.0.0.1", common, key))
	tc.waitFor("Students (1,", name, "● ")
	tc.keys("Enter")
	tc.waitFor("watching "+name, "their screen is 80×24")

	st.keys("q")
	st.waitFor("quit and roll back?")
	st.keys("y")
	st.waitFor("your transactions rolled back")
	tc.keys("Escape")
	tc.waitFor("○ left")
	tc.keys("q")
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(tc.screen(), "Students (1,") {
		if time.Now().After(deadline) {
			t.Fatalf("q did not end the teacher's ssh:\n%s", tc.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
