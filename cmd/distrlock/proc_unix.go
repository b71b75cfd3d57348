//go:build unix

package main

import (
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// forwardedSignals are passed on to the command's process group.
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

// ownProcessGroup puts the command in a process group of its own, so that signals reach it (and its
// children) once, through distrlock, and a lost lease stops all of them. When distrlock runs in the
// foreground of the terminal on its stdin, the command's group takes the foreground, so that it can read
// the terminal (a background group that reads it is stopped) and gets the terminal's Ctrl-C itself. Where
// the platform can, the command is also killed when distrlock dies without cleaning up (kill -9):
// otherwise it would go on working after the lease expired, beside the next holder.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if foregroundTerminal() {
		// Ctty is the child's descriptor: its stdin, the terminal.
		cmd.SysProcAttr.Foreground, cmd.SysProcAttr.Ctty = true, 0
		// Ctrl-Z would stop the command while distrlock, which the shell does not see stopped, kept its
		// lock and the terminal: the command inherits SIGTSTP ignored instead.
		signal.Ignore(syscall.SIGTSTP)
	}
	killWithParent(cmd.SysProcAttr)
}

func signalGroup(cmd *exec.Cmd, sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok {
		_ = syscall.Kill(-cmd.Process.Pid, s)
	}
}

func terminateGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }

func killGroup(cmd *exec.Cmd) { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }

func signaled(ee *exec.ExitError) (int, bool) {
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return int(ws.Signal()), true
	}
	return 0, false
}
