package load

import "syscall"

// workerAttr puts a chaos worker in a process group of its own — a Ctrl-C
// reaches the supervisor, which ends the workers itself — and has the
// kernel kill it if the supervisor dies.
func workerAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
