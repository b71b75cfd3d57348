//go:build unix && !linux

package main

import "syscall"

// killWithParent does nothing where the kernel cannot tie a child's life to its parent's: there a
// distrlock killed with SIGKILL leaves its command running.
func killWithParent(*syscall.SysProcAttr) {}
