// Command cnibench measures the chelsio-sriov CNI plugin on an emulated worker:
//
//   - K sequential ADD+DEL cycles, no IPAM, next to the floor program (the same
//     netlink work in one small process), interleaved A B A B;
//   - K sequential ADD+DEL cycles with the same host-local IPAM, next to the
//     reference host-device plugin of containernetworking/plugins on the same VF
//     and the same pod namespace, interleaved A B A B;
//   - for each N of -n, N ADDs at once on N VFs into N namespaces, then the N DELs,
//     by four kinds in turn, -rounds times: the floor (all N at once), the floor
//     with the same host-local IPAM, chelsio-sriov with host-local and without
//     IPAM: each kind's makespan, our makespans over the floors', and from the
//     plugin's own step timings where each operation's time goes (wave.go,
//     timeline.go).
//
// It prints medians, p95 and ratios and writes them as JSON. Run it inside an
// emulated worker:
//
//	chelsio-vf emulate exec --worker 1 -- cnibench -plugin bin/chelsio-sriov -floor bin/floor \
//	    -hostdevice bin/cni/host-device -ipam bin/cni/host-local
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

func main() {
	k := flag.Int("k", 50, "ADD+DEL cycles of each")
	plugin := flag.String("plugin", "bin/chelsio-sriov", "the chelsio-sriov binary")
	floor := flag.String("floor", "bin/floor", "the floor binary")
	hostDevice := flag.String("hostdevice", "", "the reference host-device binary (empty: skip that comparison)")
	ipam := flag.String("ipam", "", "the host-local IPAM binary (needed with -hostdevice)")
	addr := flag.String("vf", "0000:81:01.0", "VF of the sequential runs")
	ns := flag.String("n", "16,64", "concurrency levels, comma-separated (empty: skip)")
	tag := flag.String("tag", strconv.Itoa(os.Getpid()), "part of the names of everything it creates (netns chelsio-bench-<tag>-*, directories chelsio-*-bench-<tag>-*)")
	jsonOut := flag.String("json", "", "also write the figures to this file")
	plotOut := flag.String("plot", "", "also draw the figures into this .svg or .png file")
	rounds := flag.Int("rounds", 3, "rounds of the waves of N operations at once (each kind's makespan is the median)")
	flag.DurationVar(&settle, "settle", settle, "pause before each measured operation, so that none is charged the kernel's deferred work of the one before")
	flag.Parse()
	b := &bench{k: *k, rounds: max(*rounds, 1), plugin: *plugin, floor: *floor, hostDevice: *hostDevice, ipam: *ipam, tag: *tag, res: map[string]float64{}}
	b.left.RemoveOnSignal()
	err := b.run(*addr, *ns)
	b.left.Remove()
	if err == nil {
		err = benchutil.WriteJSON(*jsonOut, b.res)
	}
	if err == nil && *plotOut != "" {
		if err = b.plotFile(*plotOut); err == nil {
			fmt.Printf("plot written to %s\n", *plotOut)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cnibench:", err)
		os.Exit(1)
	}
}

type bench struct {
	k, rounds                       int
	plugin, floor, hostDevice, ipam string
	ipamConf                        map[string]any // host-local's, on a directory of its own
	tag                             string
	res                             map[string]float64
	left                            benchutil.Leftovers // the namespaces and directories made
	dataDir                         string              // the plugin's state directory
	series                          []series            // for the plot
	waves                           []wave              // for the plot
}

type sample struct{ add, del []time.Duration }

// newNetns creates a named namespace and returns its path; the calling thread
// stays in its namespace.
func (b *bench) newNetns(name string) (string, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	host, err := netns.Get()
	if err != nil {
		return "", err
	}
	defer host.Close()
	pod, err := netns.NewNamed(name)
	if err != nil {
		return "", err
	}
	pod.Close()
	b.left.Add(func() { _ = netns.DeleteNamed(name) })
	if err := netns.Set(host); err != nil {
		return "", err
	}
	return filepath.Join("/run/netns", name), nil
}

// cni execs a CNI plugin once and times it.
func cni(plugin, cmd, containerID, podPath, cniPath string, conf []byte) (time.Duration, error) {
	d, out, err := timedRun(cniCmd(plugin, cmd, containerID, podPath, cniPath, conf))
	if err != nil {
		return d, fmt.Errorf("%s %s: %w: %s", filepath.Base(plugin), cmd, err, strings.TrimSpace(out))
	}
	return d, nil
}

// timedRun runs c and times it; its output is stdout and stderr together.
func timedRun(c *exec.Cmd) (time.Duration, string, error) {
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	t0 := time.Now()
	err := c.Run()
	return time.Since(t0), out.String(), err
}

// settle is the pause before each measured operation. The kernel finishes some
// work after a call returns (host-device creates and destroys a namespace per call,
// and namespaces are torn down asynchronously): without the pause, each operation
// would be charged part of the one before it, of the other plugin.
var settle = 100 * time.Millisecond

type op func() (time.Duration, error)

type side struct {
	smp      *sample
	add, del op
}

// interleave runs k cycles of ADD+DEL of each side, A B A B.
func interleave(what string, k int, sides ...side) error {
	fmt.Fprintf(os.Stderr, "%d ADD+DEL cycles, %s, interleaved\n", k, what)
	for i := range k {
		for _, s := range sides {
			time.Sleep(settle)
			d, err := s.add()
			if err != nil {
				return err
			}
			s.smp.add = append(s.smp.add, d)
			time.Sleep(settle)
			d, err = s.del()
			if err != nil {
				return err
			}
			s.smp.del = append(s.smp.del, d)
		}
		if (i+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "  %d/%d\n", i+1, k)
		}
	}
	return nil
}

func (b *bench) put(prefix string, s sample) {
	b.res[prefix+"add_median_ms"], b.res[prefix+"add_p95_ms"] = benchutil.PercentileMS(s.add, 50), benchutil.PercentileMS(s.add, 95)
	b.res[prefix+"del_median_ms"], b.res[prefix+"del_p95_ms"] = benchutil.PercentileMS(s.del, 50), benchutil.PercentileMS(s.del, 95)
}

func (b *bench) row(name, prefix string) {
	r := b.res
	fmt.Printf("  %-22s %8.2f %8.2f %8.2f %8.2f\n", name, r[prefix+"add_median_ms"], r[prefix+"add_p95_ms"], r[prefix+"del_median_ms"], r[prefix+"del_p95_ms"])
}

func (b *bench) run(addr, levels string) error {
	root := sysfs.FromEnv()
	node, err := vf.Discover(root, vf.Options{})
	if err != nil {
		return err
	}
	v, ok := node.VF(vf.MustParsePCIAddr(addr))
	if !ok {
		return fmt.Errorf("no VF %s here", addr)
	}
	if v.Netdev == "" {
		return fmt.Errorf("VF %s has no netdev here: run inside an emulated worker", addr)
	}
	tag := b.tag
	podPath, err := b.newNetns("chelsio-bench-" + tag + "-pod")
	if err != nil {
		return err
	}
	// The plugin's default dataDir is under /var/lib/cni: measure on that filesystem.
	if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
		return err
	}
	if b.dataDir, err = b.left.TempDir("/var/lib/cni", "chelsio-sriov-bench-"+tag+"-"); err != nil {
		return err
	}
	cniPath := filepath.Dir(b.plugin)
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "chelsio-sriov", "deviceID": addr, "dataDir": b.dataDir})

	// 1a. ours vs the floor, no IPAM.
	var ours, base sample
	var moves []time.Duration // the namespace move alone, inside the floor
	fl := func(verb string) op {
		return func() (time.Duration, error) {
			d, out, err := timedRun(exec.Command(b.floor, verb, v.Netdev, podPath, "net1"))
			if err != nil {
				return d, fmt.Errorf("floor %s: %w: %s", verb, err, out)
			}
			if us, ok := strings.CutPrefix(strings.TrimSpace(out), "move_us="); ok {
				if n, err := strconv.Atoi(us); err == nil {
					moves = append(moves, time.Duration(n)*time.Microsecond)
				}
			}
			return d, nil
		}
	}
	oursOp := func(cmd string, conf []byte, cniPath string) op {
		return func() (time.Duration, error) { return cni(b.plugin, cmd, "bench", podPath, cniPath, conf) }
	}
	if err := interleave("chelsio-sriov and the floor, no IPAM", b.k,
		side{&ours, oursOp("ADD", conf, cniPath), oursOp("DEL", conf, cniPath)},
		side{&base, fl("add"), fl("del")}); err != nil {
		return err
	}
	b.put("", ours)
	b.put("floor_", base)
	b.series = append(b.series, series{"chelsio-sriov, no IPAM", ours}, series{"floor, no IPAM", base})
	b.res["add_over_floor"] = b.res["add_median_ms"] / b.res["floor_add_median_ms"]
	b.res["del_over_floor"] = b.res["del_median_ms"] / b.res["floor_del_median_ms"]
	b.res["k"] = float64(b.k)
	if len(moves) > 0 {
		b.res["floor_move_median_ms"] = benchutil.PercentileMS(moves, 50)
	}

	if b.ipam != "" {
		// host-local's default store is /var/lib/cni/networks: measure on that filesystem.
		ipamDir, err := b.left.TempDir("/var/lib/cni", "chelsio-ipam-bench-"+tag+"-")
		if err != nil {
			return err
		}
		b.ipamConf = map[string]any{"type": "host-local", "subnet": "203.0.113.0/24", "dataDir": ipamDir}
	}
	// 1b. ours vs host-device, the same host-local IPAM.
	if b.hostDevice != "" && b.ipam != "" {
		ipam := b.ipamConf
		path := strings.Join([]string{filepath.Dir(b.plugin), filepath.Dir(b.ipam), filepath.Dir(b.hostDevice)}, string(os.PathListSeparator))
		oursConf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "chelsio-sriov", "deviceID": addr, "dataDir": b.dataDir, "ipam": ipam})
		hdConf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "host-device", "device": v.Netdev, "ipam": ipam})
		hd := func(cmd string) op {
			return func() (time.Duration, error) { return cni(b.hostDevice, cmd, "bench", podPath, path, hdConf) }
		}
		// The floor runs alongside as the bound of any plugin that moves the netdev
		// once: with IPAM overlapping the move, no such plugin can be faster.
		var oursIP, hdIP, floorHD sample
		if err := interleave("chelsio-sriov, host-device (host-local IPAM) and the floor", b.k,
			side{&oursIP, oursOp("ADD", oursConf, path), oursOp("DEL", oursConf, path)},
			side{&hdIP, hd("ADD"), hd("DEL")},
			side{&floorHD, fl("add"), fl("del")}); err != nil {
			return err
		}
		b.put("ipam_", oursIP)
		b.put("hostdevice_", hdIP)
		b.put("floor_hd_", floorHD)
		b.series = append(b.series, series{"chelsio-sriov, host-local", oursIP}, series{"host-device, host-local", hdIP}, series{"floor, alongside", floorHD})
		b.res["add_over_hostdevice"] = b.res["ipam_add_median_ms"] / b.res["hostdevice_add_median_ms"]
		b.res["del_over_hostdevice"] = b.res["ipam_del_median_ms"] / b.res["hostdevice_del_median_ms"]
		b.res["floor_add_over_hostdevice"] = b.res["floor_hd_add_median_ms"] / b.res["hostdevice_add_median_ms"]
		b.res["floor_del_over_hostdevice"] = b.res["floor_hd_del_median_ms"] / b.res["hostdevice_del_median_ms"]
	}

	fmt.Printf("\nCNI ADD/DEL, %d sequential cycles each, interleaved (median / p95, ms)\n", b.k)
	fmt.Printf("  %-22s %8s %8s %8s %8s\n", "", "ADD p50", "ADD p95", "DEL p50", "DEL p95")
	b.row("chelsio-sriov, no IPAM", "")
	b.row("floor", "floor_")
	if b.hostDevice != "" {
		b.row("chelsio-sriov, IPAM", "ipam_")
		b.row("host-device, IPAM", "hostdevice_")
		b.row("floor, alongside", "floor_hd_")
	}
	fmt.Printf("  ADD/floor %.2f, DEL/floor %.2f", b.res["add_over_floor"], b.res["del_over_floor"])
	if b.hostDevice != "" {
		fmt.Printf(", ADD/host-device %.2f, DEL/host-device %.2f (the floor: %.2f, %.2f)", b.res["add_over_hostdevice"], b.res["del_over_hostdevice"], b.res["floor_add_over_hostdevice"], b.res["floor_del_over_hostdevice"])
	}
	fmt.Println()
	if m, ok := b.res["floor_move_median_ms"]; ok {
		fmt.Printf("  the namespace move alone (RTM_NEWLINK with IFLA_NET_NS_FD, timed inside the floor): median %.2f ms\n", m)
	}

	// 2. concurrency.
	for f := range strings.SplitSeq(levels, ",") {
		if strings.TrimSpace(f) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -n level %q", f)
		}
		if err := b.concurrent(node, n, tag); err != nil {
			return err
		}
	}
	return nil
}
