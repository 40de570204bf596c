package cni

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// processStart is when this package was initialised: in the plugin's process,
// just before main runs, after the Go runtime and every package below this one.
var processStart = time.Now()

// timeline is one invocation's step timings, which the log gives at level debug
// (logLevel "debug") as one line, "timings", when the invocation ends: when each
// step ended, in microseconds since processStart (and processStart itself, in
// microseconds since the epoch, so that whoever started the process can tell how
// long its start took), the time spent waiting on each lock, file and child
// process, and the CPU time of the process and of its children (the IPAM plugin).
// It is what `make bench` sums up over many invocations at once. Safe for
// concurrent use: IPAM runs on a goroutine of its own.
type timeline struct {
	mu    sync.Mutex
	marks []slog.Attr
	waits map[string]time.Duration
	order []string // of waits, as first seen
}

// mark records the end of step now.
func (t *timeline) mark(step string) {
	at := time.Since(processStart).Microseconds()
	t.mu.Lock()
	t.marks = append(t.marks, slog.Int64(step, at))
	t.mu.Unlock()
}

// waited adds the time since t0 to what the invocation waited for what.
func (t *timeline) waited(what string, t0 time.Time) {
	d := time.Since(t0)
	t.mu.Lock()
	if t.waits == nil {
		t.waits = map[string]time.Duration{}
	}
	if _, ok := t.waits[what]; !ok {
		t.order = append(t.order, what)
	}
	t.waits[what] += d
	t.mu.Unlock()
}

// log writes the timings line at level debug.
func (t *timeline) log(l *slog.Logger) {
	if !l.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	attrs := []any{slog.Int64("start_unix_us", processStart.UnixMicro())}
	for _, m := range t.marks {
		attrs = append(attrs, m)
	}
	for _, w := range t.order {
		attrs = append(attrs, slog.Int64("wait_"+w+"_us", t.waits[w].Microseconds()))
	}
	attrs = append(attrs, slog.Int64("end", time.Since(processStart).Microseconds()))
	var self, children unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &self) == nil && unix.Getrusage(unix.RUSAGE_CHILDREN, &children) == nil {
		attrs = append(attrs, slog.Int64("cpu_us", cpuMicros(&self)), slog.Int64("children_cpu_us", cpuMicros(&children)))
	}
	l.Debug("timings", attrs...)
}

// cpuMicros is the user and system time of r in microseconds.
func cpuMicros(r *unix.Rusage) int64 {
	return r.Utime.Sec*1e6 + r.Utime.Usec + r.Stime.Sec*1e6 + r.Stime.Usec
}
