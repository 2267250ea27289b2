//go:build windows

package db

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// systemTempDirs: on Windows, %TMP% / %TEMP% (os.TempDir) is the temp dir.
var systemTempDirs []string

// throwawayUnsupported: Windows runs the throwaway server over TCP on
// 127.0.0.1 (tcp.go), from installed or fetched binaries.
func throwawayUnsupported() error { return nil }

// childAttr runs a server program in a process group of its own, so that a
// Ctrl-C in the console reaches lockstep only, which rolls its sessions back
// before stopping the server. (As lockstep's user: there is no root here.)
func childAttr(*runAs, syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// canEnter: the server runs as lockstep's own user here.
func (r *runAs) canEnter(string) error { return nil }

// processAlive says whether process pid exists and has not exited.
func processAlive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED) // another user's
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == 259 // STILL_ACTIVE
}

// quit stops a postmaster at once: without Unix signals there is no
// immediate shutdown to ask for, so it is terminated, and its backends,
// which watch it, exit with it (guardServer's job has ended them already).
func quit(p *os.Process) error { return p.Kill() }

// killGroup kills a program at once (the job object the server runs in
// ends its children with it).
func killGroup(p *os.Process) { _ = p.Kill() }

// holdUntilGuarded starts a guarded program suspended: guardServer puts it
// in its job before it runs, so that every process it starts is in the job
// too, and then lets it run.
func holdUntilGuarded(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.CreationFlags |= windows.CREATE_SUSPENDED
}

// guardServer puts process pid, started suspended, in a job object that
// Windows ends, with every process in it, when its last handle closes —
// lockstep's, when lockstep exits by any means, even killed. Then it lets
// the process run. The returned func ends the job and so the process and
// everything it started.
func guardServer(pid int) (func(), error) {
	job, err := windows.CreateJobObject(nil, nil)
	if err != nil {
		resume(pid)
		return nil, fmt.Errorf("creating a job object: %w", err)
	}
	info := windows.JOBOBJECT_EXTENDED_LIMIT_INFORMATION{
		BasicLimitInformation: windows.JOBOBJECT_BASIC_LIMIT_INFORMATION{LimitFlags: windows.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE},
	}
	if _, err := windows.SetInformationJobObject(job, windows.JobObjectExtendedLimitInformation,
		uintptr(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info))); err != nil {
		windows.CloseHandle(job)
		resume(pid)
		return nil, fmt.Errorf("setting up a job object: %w", err)
	}
	proc, err := windows.OpenProcess(windows.PROCESS_SET_QUOTA|windows.PROCESS_TERMINATE, false, uint32(pid))
	if err == nil {
		err = windows.AssignProcessToJobObject(job, proc)
		windows.CloseHandle(proc)
	}
	if err != nil {
		windows.CloseHandle(job)
		resume(pid)
		return nil, fmt.Errorf("putting the server in a job object: %w", err)
	}
	if err := resume(pid); err != nil {
		windows.CloseHandle(job)
		return nil, err
	}
	return func() { windows.CloseHandle(job) }, nil
}

// resume lets every thread of process pid, started suspended, run.
func resume(pid int) error {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPTHREAD, 0)
	if err != nil {
		return fmt.Errorf("listing the server's threads: %w", err)
	}
	defer windows.CloseHandle(snap)
	var te windows.ThreadEntry32
	te.Size = uint32(unsafe.Sizeof(te))
	resumed := 0
	for err = windows.Thread32First(snap, &te); err == nil; err = windows.Thread32Next(snap, &te) {
		if te.OwnerProcessID != uint32(pid) {
			continue
		}
		th, err := windows.OpenThread(windows.THREAD_SUSPEND_RESUME, false, te.ThreadID)
		if err != nil {
			return fmt.Errorf("opening the server's thread: %w", err)
		}
		_, err = windows.ResumeThread(th)
		windows.CloseHandle(th)
		if err != nil {
			return fmt.Errorf("resuming the server: %w", err)
		}
		resumed++
	}
	if resumed == 0 {
		return errors.New("resuming the server: it has no thread")
	}
	return nil
}

// removeAll deletes a program's dir. A process that has just ended may
// hold its files open a moment longer, and Windows deletes no open file:
// it tries again for two seconds.
func removeAll(dir string) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
