package main

import "syscall"

// killWithParent asks Linux to SIGKILL the command when distrlock's thread that started it exits, which
// for a Go program without locked threads means when distrlock exits.
func killWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
