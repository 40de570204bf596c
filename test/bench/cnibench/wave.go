package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

// run is one timed operation of a wave: when it was started, how long it took,
// what it wrote to stderr.
type run struct {
	t0     time.Time
	d      time.Duration
	stderr string
	err    error
}

// execTimed runs c, times it, and keeps its stderr apart from its stdout.
func execTimed(c *exec.Cmd) run {
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	r := run{t0: time.Now()}
	r.err = c.Run()
	r.d = time.Since(r.t0)
	r.stderr = stderr.String()
	if r.err != nil {
		r.err = fmt.Errorf("%s %s: %w: %s", filepath.Base(c.Path), strings.Join(c.Args[1:], " "), r.err, strings.TrimSpace(stdout.String()+" "+r.stderr))
	}
	return r
}

// kind is one way of doing the N operations of a wave: the floor, with or
// without IPAM, or chelsio-sriov, with or without IPAM.
type kind struct {
	name   string
	key    string                                 // in the JSON keys: c<N>_<cmd>_<key>makespan_ms
	op     func(i int, cmd string, id string) run // operation i of the wave
	timing bool                                   // the plugin's timings line is on its stderr
}

// kinds returns the four kinds of wave on vfs and pods: the floor without IPAM
// and with host-local, chelsio-sriov with host-local and without IPAM.
func (b *bench) kinds(vfs []*vf.VF, pods []string) []kind {
	ipamConf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "ipam": b.ipamConf})
	fl := func(withIPAM bool) func(int, string, string) run {
		return func(i int, cmd, id string) run {
			args := []string{strings.ToLower(cmd), vfs[i].Netdev, pods[i], "net1"}
			if withIPAM {
				args = append([]string{"-ipam", b.ipam, "-conf", string(ipamConf), "-id", id}, args...)
			}
			return execTimed(exec.Command(b.floor, args...))
		}
	}
	ours := func(withIPAM bool) func(int, string, string) run {
		confs := make([][]byte, len(vfs))
		path := filepath.Dir(b.plugin)
		for i, v := range vfs {
			m := map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "chelsio-sriov", "deviceID": v.Addr.String(), "dataDir": b.dataDir, "logLevel": "debug"}
			if withIPAM {
				m["ipam"] = b.ipamConf
			}
			confs[i], _ = json.Marshal(m)
		}
		if withIPAM {
			path += string(os.PathListSeparator) + filepath.Dir(b.ipam)
		}
		return func(i int, cmd, id string) run {
			return execTimed(cniCmd(b.plugin, cmd, id, pods[i], path, confs[i]))
		}
	}
	ks := []kind{{name: "floor, no IPAM", key: "floor_", op: fl(false)}}
	if b.ipam != "" {
		ks = append(ks, kind{name: "floor, host-local", key: "floor_ipam_", op: fl(true)},
			kind{name: "chelsio-sriov, host-local", key: "ipam_", op: ours(true), timing: true})
	}
	return append(ks, kind{name: "chelsio-sriov, no IPAM", key: "", op: ours(false), timing: true})
}

// cniCmd is the command of one CNI call.
func cniCmd(plugin, cmd, containerID, podPath, cniPath string, conf []byte) *exec.Cmd {
	c := exec.Command(plugin)
	c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID="+containerID, "CNI_NETNS="+podPath, "CNI_IFNAME=net1", "CNI_PATH="+cniPath)
	c.Stdin = bytes.NewReader(conf)
	return c
}

// startAll starts n operations of k at once and waits for them all.
func startAll(k kind, n int, cmd string) (time.Duration, []run) {
	runs := make([]run, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			runs[i] = k.op(i, cmd, fmt.Sprintf("bench-c%d", i))
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0), runs
}

// waveStats is what the rounds of one kind of wave, ADD or DEL, measured.
type waveStats struct {
	spans    []time.Duration // makespan of each round
	durs     []time.Duration // every operation's, all rounds
	fails    int
	firstErr error
	tl       *timelines
}

// concurrent runs, for each of b.rounds rounds, the n ADDs at once of each kind
// of wave and then its n DELs, on n VFs each into its own namespace; the kinds
// take turns in a different order each round, so that each ratio compares waves
// run close together.
func (b *bench) concurrent(node *vf.Node, n int, tag string) error {
	var vfs []*vf.VF
	for _, v := range node.VFs() {
		if v.Netdev != "" {
			vfs = append(vfs, v)
		}
	}
	if len(vfs) < n {
		return fmt.Errorf("%d-way: only %d VFs with a netdev here", n, len(vfs))
	}
	vfs = vfs[:n]
	pods := make([]string, n)
	for i := range vfs {
		p, err := b.newNetns(fmt.Sprintf("chelsio-bench-%s-c%d-%d", tag, n, i))
		if err != nil {
			return err
		}
		pods[i] = p
	}
	ks := b.kinds(vfs, pods)
	stats := map[string]*waveStats{}
	for _, k := range ks {
		for _, cmd := range []string{"ADD", "DEL"} {
			stats[k.key+cmd] = &waveStats{tl: newTimelines()}
		}
	}
	fmt.Fprintf(os.Stderr, "%d ADDs at once on %d VFs, then %d DELs: %d rounds of %d kinds\n", n, n, n, b.rounds, len(ks))
	for r := range b.rounds {
		for j := range ks {
			k := ks[(j+r)%len(ks)]
			for _, cmd := range []string{"ADD", "DEL"} {
				if cmd == "ADD" {
					waitHome(vfs)
				}
				time.Sleep(settle)
				span, runs := startAll(k, n, cmd)
				stats[k.key+cmd].add(k, span, runs)
				if cmd == "DEL" {
					retryFailed(k, runs)
				}
				if k.key == "" && r == 0 {
					durs := make([]time.Duration, n)
					for i, x := range runs {
						durs[i] = x.d
					}
					b.waves = append(b.waves, wave{n, cmd, durs})
				}
			}
		}
	}
	b.putWaves(n, ks, stats)
	return nil
}

// add records one round.
func (s *waveStats) add(k kind, span time.Duration, runs []run) {
	s.spans = append(s.spans, span)
	for _, r := range runs {
		s.durs = append(s.durs, r.d)
		if r.err != nil {
			s.fails++
			if s.firstErr == nil {
				s.firstErr = r.err
			}
			continue
		}
		if k.timing {
			s.tl.add(r)
		}
	}
}

// waitHome waits, up to 5 s, until sysfs shows each VF's netdev in the host
// namespace, where netlink finds it: an emulated node's tree follows the moves
// a moment later (its watcher), and an ADD that comes first is told to try again.
func waitHome(vfs []*vf.VF) {
	root := sysfs.FromEnv()
	deadline := time.Now().Add(5 * time.Second)
	for _, v := range vfs {
		for time.Now().Before(deadline) {
			cur, err := vf.LookupVF(root, v.Addr, vf.Options{})
			if err == nil && cur.Netdev == v.Netdev {
				if _, err := netlink.LinkByName(v.Netdev); err == nil {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// retryFailed leaves no VF in the namespaces after a DEL wave: each failed DEL
// is retried once, sequentially.
func retryFailed(k kind, runs []run) {
	for i, r := range runs {
		if r.err == nil {
			continue
		}
		if r := k.op(i, "DEL", fmt.Sprintf("bench-c%d", i)); r.err != nil {
			fmt.Fprintf(os.Stderr, "  %s: cleanup DEL %d: %v\n", k.name, i, r.err)
		}
	}
}

// putWaves prints the makespans of every kind and the ratios against the floors,
// with the plugin's timeline, and records them.
func (b *bench) putWaves(n int, ks []kind, stats map[string]*waveStats) {
	fmt.Printf("\n%d operations at once, %d round(s): makespan, median of the rounds (ms)\n", n, b.rounds)
	fmt.Printf("  %-34s %9s %9s %9s %9s\n", "", "ADD", "failed", "DEL", "failed")
	for _, k := range ks {
		fmt.Printf("  %-34s", k.name)
		for _, cmd := range []string{"ADD", "DEL"} {
			s := stats[k.key+cmd]
			p := fmt.Sprintf("c%d_%s_%s", n, strings.ToLower(cmd), k.key)
			b.res[p+"makespan_ms"] = benchutil.PercentileMS(s.spans, 50)
			b.res[p+"median_ms"] = benchutil.PercentileMS(s.durs, 50)
			b.res[p+"p95_ms"] = benchutil.PercentileMS(s.durs, 95)
			b.res[p+"failures"] = float64(s.fails)
			fmt.Printf(" %9.1f %9d", b.res[p+"makespan_ms"], s.fails)
		}
		fmt.Println()
	}
	for _, cmd := range []string{"ADD", "DEL"} {
		for _, r := range b.ratios(n, cmd, stats) {
			fmt.Printf("  %s %s: %.2f\n", cmd, r, b.res[fmt.Sprintf("c%d_%s_%s", n, strings.ToLower(cmd), r.key)])
		}
		single := b.res[strings.ToLower(cmd)+"_median_ms"]
		p := fmt.Sprintf("c%d_%s_", n, strings.ToLower(cmd))
		b.res[p+"ratio"] = b.res[p+"makespan_ms"] / (float64(n) * single)
		fmt.Printf("  %s chelsio-sriov, no IPAM / (N x single %s): %.2f\n", cmd, cmd, b.res[p+"ratio"])
	}
	for _, k := range ks {
		for _, cmd := range []string{"ADD", "DEL"} {
			if s := stats[k.key+cmd]; s.firstErr != nil {
				fmt.Fprintf(os.Stderr, "  %s %s, first failure: %v\n", k.name, cmd, s.firstErr)
			}
		}
	}
	for _, k := range ks {
		if !k.timing || k.key == "" && b.ipam != "" {
			continue // the timeline of the run with IPAM says it all
		}
		for _, cmd := range []string{"ADD", "DEL"} {
			s := stats[k.key+cmd]
			s.tl.print(fmt.Sprintf("%d-way %s, %s", n, cmd, k.name), benchutil.Percentile(s.spans, 50))
			s.tl.save(b.res, fmt.Sprintf("c%d_%s_%s", n, strings.ToLower(cmd), k.key))
		}
	}
}

// ratio is one ratio of makespans between two kinds of wave.
type ratio struct {
	what, key string
}

func (r ratio) String() string { return r.what }

// ratios computes, for each round, our makespan over each floor's, and records
// the median over the rounds.
func (b *bench) ratios(n int, cmd string, stats map[string]*waveStats) []ratio {
	pairs := []struct {
		r        ratio
		num, den string
	}{
		{ratio{"chelsio-sriov, no IPAM / floor, no IPAM", "over_floor"}, "", "floor_"},
		{ratio{"chelsio-sriov, host-local / floor, no IPAM", "ipam_over_floor"}, "ipam_", "floor_"},
		{ratio{"chelsio-sriov, host-local / floor, host-local", "ipam_over_floor_ipam"}, "ipam_", "floor_ipam_"},
		{ratio{"floor, host-local / floor, no IPAM", "floor_ipam_over_floor"}, "floor_ipam_", "floor_"},
	}
	var out []ratio
	for _, p := range pairs {
		num, den := stats[p.num+cmd], stats[p.den+cmd]
		if num == nil || den == nil {
			continue
		}
		var rs []float64
		for i := range min(len(num.spans), len(den.spans)) {
			rs = append(rs, float64(num.spans[i])/float64(den.spans[i]))
		}
		slices.Sort(rs)
		b.res[fmt.Sprintf("c%d_%s_%s", n, strings.ToLower(cmd), p.r.key)] = rs[(len(rs)-1)/2]
		out = append(out, p.r)
	}
	return out
}
