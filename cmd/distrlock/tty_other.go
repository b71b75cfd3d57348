//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "os/exec"

// foregroundTerminal: on other platforms the command shares distrlock's terminal as it is.
func foregroundTerminal() bool { return false }

func restoreTerminal(*exec.Cmd) {}
