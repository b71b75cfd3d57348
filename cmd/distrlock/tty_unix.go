//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"unsafe"
)

// foregroundTerminal reports whether stdin is a terminal whose foreground process group is distrlock's.
func foregroundTerminal() bool {
	pgrp, ok := terminalGroup()
	return ok && pgrp == syscall.Getpgrp()
}

func terminalGroup() (int, bool) {
	var pgrp int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, os.Stdin.Fd(), uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp)))
	return int(pgrp), errno == 0
}

// restoreTerminal gives the terminal's foreground back to distrlock's process group after cmd, which
// ownProcessGroup put there, has ended (if nothing else has taken it since). A background group that sets
// the foreground gets SIGTTOU, hence the Ignore.
func restoreTerminal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.Foreground {
		return
	}
	if pgrp, ok := terminalGroup(); !ok || pgrp != cmd.Process.Pid {
		return
	}
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	own := int32(syscall.Getpgrp())
	_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, os.Stdin.Fd(), uintptr(syscall.TIOCSPGRP), uintptr(unsafe.Pointer(&own)))
}
