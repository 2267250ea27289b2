package db

import "syscall"

// childAttr runs a server program as cred (nil: as lockstep) in a process
// group of its own — a Ctrl-C at the terminal reaches lockstep only, which
// rolls its sessions back before stopping the server — and has the kernel
// send it parentDeath if lockstep dies, even by kill -9.
func childAttr(cred *runAs, parentDeath syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred.credential(), Pdeathsig: parentDeath, Setpgid: true}
}

// guardServer: on Linux the parent-death signal (childAttr) is the guard.
func guardServer(int) (func(), error) { return func() {}, nil }
