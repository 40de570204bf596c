package cni

import (
	"bytes"
	"errors"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// TestTimingsLine: at level debug the line gives each mark in the order made, in
// microseconds that do not go back, the summed waits, and the CPU times; at level
// info there is no line.
func TestTimingsLine(t *testing.T) {
	tl := &timeline{}
	tl.mark("begin")
	t0 := time.Now()
	time.Sleep(2 * time.Millisecond)
	tl.waited("lock", t0)
	tl.waited("lock", time.Now())
	tl.mark("locked")
	tl.mark(StepMove)

	var info bytes.Buffer
	tl.log(slog.New(slog.NewTextHandler(&info, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if info.Len() != 0 {
		t.Errorf("logged at level info: %q", info.String())
	}

	var debug bytes.Buffer
	tl.log(slog.New(slog.NewTextHandler(&debug, &slog.HandlerOptions{Level: slog.LevelDebug})))
	line := strings.TrimSpace(debug.String())
	if !strings.Contains(line, " msg=timings ") || strings.Count(line, "\n") != 0 {
		t.Fatalf("want one timings line, got %q", line)
	}
	var keys []string
	vals := map[string]int64{}
	for f := range strings.FieldsSeq(line) {
		k, v, _ := strings.Cut(f, "=")
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			keys = append(keys, k)
			vals[k] = n
		}
	}
	want := []string{"start_unix_us", "begin", "locked", StepMove, "wait_lock_us", "end", "cpu_us", "children_cpu_us"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("keys %v, want %v in %q", keys, want, line)
	}
	if vals["start_unix_us"] != processStart.UnixMicro() {
		t.Errorf("start_unix_us %d, want %d", vals["start_unix_us"], processStart.UnixMicro())
	}
	for i := 2; i <= 3; i++ {
		if vals[want[i]] < vals[want[i-1]] {
			t.Errorf("%s at %d µs before %s at %d µs", want[i], vals[want[i]], want[i-1], vals[want[i-1]])
		}
	}
	if vals["end"] < vals[StepMove] {
		t.Errorf("end at %d µs before the last mark at %d µs", vals["end"], vals[StepMove])
	}
	if w := vals["wait_lock_us"]; w < 2000 || w > vals["locked"]-vals["begin"]+1 {
		t.Errorf("wait_lock_us %d: want the 2 ms slept, and no more than between begin and locked (%d µs)", w, vals["locked"]-vals["begin"])
	}
}

// netnsIno is the inode of the network namespace of the calling thread.
func netnsIno(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestPrivilegedOnThreadIn: f runs in the namespace asked for, on the caller's thread, which
// is back in its own namespace afterwards; f's error is returned.
func TestPrivilegedOnThreadIn(t *testing.T) {
	roottest.Require(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	n := testNS(t)
	var want unix.Stat_t
	if err := unix.Fstat(int(n.Fd()), &want); err != nil {
		t.Fatal(err)
	}
	home, tid := netnsIno(t), unix.Gettid()
	var in uint64
	var inTid int
	boom := errors.New("boom")
	err := onThreadIn(n, func() error {
		in, inTid = netnsIno(t), unix.Gettid()
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want f's", err)
	}
	if in != want.Ino {
		t.Errorf("f ran in netns %d, want %d", in, want.Ino)
	}
	if inTid != tid {
		t.Errorf("f ran on thread %d, want the caller's %d", inTid, tid)
	}
	if got := netnsIno(t); got != home {
		t.Errorf("the thread is in netns %d afterwards, want its own %d", got, home)
	}
}
