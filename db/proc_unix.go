//go:build unix

package db

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// systemTempDirs are the usual temp dirs, tried after $TMPDIR.
var systemTempDirs = []string{"/tmp", "/var/tmp"}

// throwawayUnsupported says why this system cannot run a throwaway server;
// on Unix it can.
func throwawayUnsupported() error { return nil }

// credential is the identity to start a program as; nil keeps lockstep's.
func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid}
}

// canEnter says why the server's user could not reach dir, or nil when it
// can: it needs search permission on dir and on every directory above it,
// both along the path as given and along the path symlinks lead to. For
// lockstep's own user (r == nil) creating the dir is the test.
func (r *runAs) canEnter(dir string) error {
	if r == nil {
		return nil
	}
	paths := ancestors(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil && real != dir {
		paths = append(paths, ancestors(real)...)
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, errors.Unwrap(err))
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if ok && !r.mayEnter(st.Mode().Perm(), uint32(sys.Uid), uint32(sys.Gid)) {
			return fmt.Errorf("the %s user cannot enter %s (mode %04o, owner %s)", r.name, p, uint32(st.Mode().Perm()), userName(uint32(sys.Uid)))
		}
	}
	return nil
}

// mayEnter applies the Unix permission bits (ACLs aside) for search
// permission on a directory with mode perm, owned by uid:gid.
func (r *runAs) mayEnter(perm fs.FileMode, uid, gid uint32) bool {
	switch {
	case uid == r.uid:
		return perm&0o100 != 0
	case gid == r.gid || slices.Contains(r.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// ancestors is dir and every directory above it, up to the root.
func ancestors(dir string) []string {
	var out []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		out = append(out, d)
		if d == filepath.Dir(d) {
			return out
		}
	}
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// processAlive says whether process pid exists (perhaps another user's).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// quit asks a postmaster for PostgreSQL's immediate shutdown.
func quit(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }

// killGroup kills a program and its process group (childAttr gives it one
// of its own), even a stopped one. A postmaster's backends each lead a
// group of their own: they end when they find the postmaster gone.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}

// watchParent starts a watcher that sends sig to process pid when lockstep
// exits by any means, even kill -9, where there is no parent-death signal.
// The watcher, a shell, reads a pipe whose only writer is lockstep: the
// kernel closes that end when lockstep dies, the read ends, and the signal
// goes. The returned func ends the watcher without a signal.
func watchParent(pid int, sig syscall.Signal) (func(), error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/bin/sh", "-c", `read _; kill -`+strconv.Itoa(int(sig))+` "$1" 2>/dev/null`, "lockstep-watch", strconv.Itoa(pid))
	cmd.Stdin = r
	// A group of its own: a Ctrl-C at the terminal must not end the watcher
	// before lockstep has rolled its sessions back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	r.Close() // the watcher holds the read end now
	if err != nil {
		w.Close()
		return nil, err
	}
	return func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		w.Close()
	}, nil
}

// holdUntilGuarded: on Unix a program needs no holding before its guard
// starts (the parent-death signal is set at fork, the watcher follows).
func holdUntilGuarded(*exec.Cmd) {}

// removeAll deletes a program's dir.
func removeAll(dir string) error { return os.RemoveAll(dir) }
