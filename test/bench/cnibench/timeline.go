package main

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

// timelines sums up the plugin's own step timings (the "timings" line it logs at
// level debug) over many operations: for each stretch of an operation, from exec
// to exit, its median and p95 over the operations, and the waits and CPU times
// the line gives.
type timelines struct {
	order []string                   // the stretches, in the order first seen
	vals  map[string][]time.Duration // per stretch, one value per operation
	ops   int
}

func newTimelines() *timelines { return &timelines{vals: map[string][]time.Duration{}} }

// stretches names, in the order of the summary, what happens up to each mark of
// the plugin's timeline, and the rows that are not stretches of the operation.
var stretches = [][2]string{
	{"process start", "exec → main (runtime, package init)"},
	{"begin", "main: environment, stdin"},
	{"config", "NetConf, state dir checks, log"},
	{"locked", "state dir, VF lock (with its wait)"},
	{"preflight", "VF, owner, namespaces, links"},
	{"state", "state file (adding)"},
	{"move", "move into the pod, with rename"},
	{"mtu", "MTU"},
	{"mac", "MAC"},
	{"up", "up"},
	{"ipam", "waiting for IPAM after the move"},
	{"addresses", "addresses and routes"},
	{"attached", "state file (attached)"},
	{"del-link", "down, host MTU and MAC, in the pod"},
	{"del-move", "move home, with rename"},
	{"del-pf", "PF-side settings restored"},
	{"del-state", "waiting for IPAM; state removed"},
	{"end", "log, close"},
	{"exit", "exit, as the caller sees it"},
	{"total", "total, exec → exit"},
	{"wait_lock", "of which: waiting for the VF lock"},
	{"wait_ipam", "IPAM plugin, exec → exit (alongside)"},
	{"wait_ipam_wait", "of which: waiting for IPAM"},
	{"cpu", "CPU time of chelsio-sriov"},
	{"children_cpu", "CPU time of the IPAM plugin"},
}

// notMarks are the keys of the timings line that are not the end of a step.
var notMarks = map[string]bool{"time": true, "level": true, "msg": true, "plugin": true, "verb": true, "container": true, "ifname": true, "vf": true, "start_unix_us": true, "cpu_us": true, "children_cpu_us": true}

// add takes the timings line out of one operation's stderr.
func (t *timelines) add(r run) {
	var line string
	for l := range strings.Lines(r.stderr) {
		if strings.Contains(l, " msg=timings ") {
			line = l
		}
	}
	if line == "" {
		return
	}
	type mark struct {
		name string
		at   time.Duration
	}
	var marks []mark
	var start time.Time
	var other []mark // waits and CPU times, recorded after the stretches
	for f := range strings.FieldsSeq(line) {
		k, v, ok := strings.Cut(f, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			continue
		}
		us := time.Duration(n) * time.Microsecond
		switch {
		case k == "start_unix_us":
			start = time.UnixMicro(n)
		case k == "cpu_us" || k == "children_cpu_us" || strings.HasPrefix(k, "wait_"):
			other = append(other, mark{strings.TrimSuffix(k, "_us"), us})
		case !notMarks[k] && k != "del-ipam": // IPAM DEL ends on its own goroutine
			marks = append(marks, mark{k, us})
		}
	}
	if start.IsZero() || len(marks) == 0 {
		return
	}
	slices.SortStableFunc(marks, func(a, b mark) int { return int(a.at - b.at) })
	began := start.Sub(r.t0)
	t.record("process start", began)
	prev := time.Duration(0)
	for _, m := range marks {
		t.record(m.name, m.at-prev)
		prev = m.at
	}
	t.record("exit", r.d-began-prev)
	t.record("total", r.d)
	for _, m := range other {
		t.record(m.name, m.at)
	}
	t.ops++
}

func (t *timelines) record(k string, d time.Duration) {
	if _, ok := t.vals[k]; !ok {
		t.order = append(t.order, k)
	}
	t.vals[k] = append(t.vals[k], d)
}

// print writes the summary: each stretch's median and p95 over the operations,
// and the CPU the operations used against what the machine had during the
// makespan.
func (t *timelines) print(title string, span time.Duration) {
	if t.ops == 0 {
		return
	}
	fmt.Printf("\n  where the time goes, %s (%d operations; the plugin's own step timings)\n", title, t.ops)
	fmt.Printf("    %-44s %9s %9s %9s\n", "", "p50 ms", "p95 ms", "sum ms")
	rows := slices.Clone(stretches)
	for _, k := range t.order {
		if !slices.ContainsFunc(rows, func(r [2]string) bool { return r[0] == k }) {
			rows = append(rows, [2]string{k, k}) // a step this table does not know yet
		}
	}
	for _, r := range rows {
		k, desc := r[0], r[1]
		v := t.vals[k]
		if len(v) == 0 {
			continue
		}
		fmt.Printf("    %-44s %9.2f %9.2f %9.1f\n", desc, benchutil.PercentileMS(v, 50), benchutil.PercentileMS(v, 95), benchutil.MS(sum(v)))
	}
	cpu := sum(t.vals["cpu"]) + sum(t.vals["children_cpu"])
	fmt.Printf("    CPU of all of them: %.0f ms, %.0f%% of the %d CPUs during the makespan (%.0f ms)\n",
		benchutil.MS(cpu), 100*float64(cpu)/float64(span)/float64(runtime.NumCPU()), runtime.NumCPU(), benchutil.MS(span))
}

// save records each stretch's median under prefix.
func (t *timelines) save(res map[string]float64, prefix string) {
	for _, k := range t.order {
		res[prefix+"step_"+strings.ReplaceAll(strings.ReplaceAll(k, " ", "_"), "-", "_")+"_p50_ms"] = benchutil.PercentileMS(t.vals[k], 50)
	}
}

func sum(d []time.Duration) time.Duration {
	var s time.Duration
	for _, x := range d {
		s += x
	}
	return s
}
