//go:build unix

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunLeaseLostKillsGroup: when the lease is lost, what the command started in its process group is
// stopped too, even a process that ignores SIGTERM and outlives the command.
func TestRunLeaseLostKillsGroup(t *testing.T) {
	c := newCLI(t, backends(t)[0])
	pidFile := filepath.Join(t.TempDir(), "pid")
	cmd := c.command("run", "--key", "group", "--ttl", "2s", "--", "sh", "-c",
		`sh -c 'trap "" TERM; exec sleep 60' & echo $! > `+pidFile+`; echo started; sleep 60`)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	var pid int
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(pidFile); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatalf("the command did not start its background process; stderr %s", errs.String())
	}
	if res := c.run("release", "group", "--force"); res.code != 0 {
		t.Fatalf("release --force: %d %s", res.code, res.stderr)
	}
	if code := exitCode(t, cmd.Wait()); code != exitLeaseLost {
		t.Fatalf("run exit %d, want %d; stderr %s", code, exitLeaseLost, errs.String())
	}
	// The background sleep ignored SIGTERM; distrlock must have SIGKILLed it by the time it exits.
	if alive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("process %d of the command's group outlived the lost lease", pid)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting for its new parent to reap it.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err) // no /proc (not Linux): kill -0 has answered
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}
