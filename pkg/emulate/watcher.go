package emulate

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// watcherAlive reports whether pid is a running watcher: a live process whose
// command line is chelsio-vf emulate serve, so that a reused PID does not count.
func watcherAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && isZombie(string(st)) {
		return false
	}
	return strings.Contains(string(b), "emulate\x00serve")
}

// watcherPIDFromFile is the PID the watcher wrote at its start; 0 if none.
func watcherPIDFromFile(st *State) int {
	b, err := os.ReadFile(filepath.Join(st.Config.StateDir(), "watcher.pid"))
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscanf(string(b), "%d", &pid); err != nil {
		return 0
	}
	return pid
}

// stopWatcher sends SIGTERM and waits up to 5 s, then SIGKILL. It only signals a
// process whose command line is a chelsio-vf watcher, so a reused PID is left
// alone, before and while it waits.
func stopWatcher(pid int) error {
	if !watcherAlive(pid) {
		return nil // already gone
	}
	p, _ := os.FindProcess(pid)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if !watcherAlive(pid) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return nil
	}
	return nil
}

// isZombie reports whether /proc/<pid>/stat says the process has exited.
func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
