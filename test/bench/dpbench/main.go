// Command dpbench measures the chelsio-sriov device plugin against the kubelet
// stand-in (package kubelettest):
//
//   - exec → first ListAndWatch with 256 devices, on a sysfstree tree of four
//     T62100-CR with 16 VFs on each PF, and the process's RSS then (-starts runs);
//   - Allocate of one VF, p50/p99 (-allocs calls);
//   - kubelet restart → registered again with 256 devices (-restarts runs);
//   - with -emu NAME, on worker 1 of that emulated node (run as root): the binary
//     run through `chelsio-vf emulate exec`, a port netdev set down in the worker's
//     namespace → the first Unhealthy device seen at the kubelet (-linkdowns runs);
//     and a VF count change (sriov_numvfs written) → the kubelet's new device list,
//     with the plugin's uevents on and off (-changes runs each; numvfs.go).
//
// It prints the figures and writes them as JSON:
//
//	dpbench -dp bin/chelsio-sriov-dp -cvf bin/chelsio-vf -emu chelsio-emu-bench -json bench/dp.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/test/bench/benchutil"
)

const resource = "chelsio.com/vf"

func main() {
	dp := flag.String("dp", "bin/chelsio-sriov-dp", "the chelsio-sriov-dp binary")
	cvf := flag.String("cvf", "bin/chelsio-vf", "the chelsio-vf binary (for emulate exec)")
	emu := flag.String("emu", "", "name of a running emulated node for the link-down run (empty: not measured)")
	starts := flag.Int("starts", 5, "starts to time")
	allocs := flag.Int("allocs", 200, "Allocate calls to time")
	restarts := flag.Int("restarts", 5, "kubelet restarts to time")
	linkdowns := flag.Int("linkdowns", 3, "port link-down events to time")
	changes := flag.Int("changes", 10, "VF count changes to time, with uevents and with rescans only")
	jsonOut := flag.String("json", "", "also write the figures to this file")
	flag.Parse()
	b := &bench{dp: *dp, res: map[string]float64{}}
	b.left.RemoveOnSignal()
	err := b.run(*starts, *allocs, *restarts)
	if err == nil && *emu != "" {
		err = b.linkDown(*cvf, *emu, *linkdowns)
	}
	if err == nil && *emu != "" && *changes > 0 {
		err = b.numVFs(*cvf, *emu, *changes)
	}
	b.left.Remove()
	if err == nil {
		err = benchutil.WriteJSON(*jsonOut, b.res)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dpbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	dp   string
	res  map[string]float64
	left benchutil.Leftovers // the processes, stand-ins and directories made
}

func (b *bench) tempDir() (string, error) {
	// Short: unix socket paths are limited to 108 bytes.
	return b.left.TempDir("", "dpb-")
}

func (b *bench) kubelet() (*kubelettest.Kubelet, error) {
	dir, err := b.tempDir()
	if err != nil {
		return nil, err
	}
	k, err := kubelettest.Start(dir)
	if err == nil {
		b.left.Add(k.Close)
	}
	return k, err
}

// start runs argv in its own process group.
func (b *bench) start(argv ...string) (*exec.Cmd, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return nil, err
	}
	b.left.Add(func() { stop(c) })
	return c, nil
}

// stop ends a process group: SIGTERM, SIGKILL after 10 s. Idempotent.
func stop(c *exec.Cmd) {
	if c.ProcessState != nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// servedBy is the plugin's --served-by-dir, in dir, which the benchmark removes:
// under the node's default each temporary tree would leave its locks behind.
func servedBy(dir string) string { return filepath.Join(dir, "served-by") }

func wait(k *kubelettest.Kubelet, what string, cond func(p *kubelettest.Plugin) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.Wait(ctx, func(pl map[string]*kubelettest.Plugin) bool { p := pl[resource]; return p != nil && cond(p) }); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func all(n int) func(p *kubelettest.Plugin) bool {
	return func(p *kubelettest.Plugin) bool { return len(p.Devices) == n }
}

func (b *bench) run(starts, allocs, restarts int) error {
	treeDir, err := b.tempDir()
	if err != nil {
		return err
	}
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree, err := sysfstree.Build(treeDir, sysfstree.Options{}, a, a, a, a)
	if err != nil {
		return err
	}
	for _, ad := range tree.Adapters {
		for _, p := range ad.Ports {
			if err := tree.SetNetdevAttr(p.Name, "carrier", "1"); err != nil {
				return err
			}
		}
	}
	infoDir, err := b.tempDir()
	if err != nil {
		return err
	}
	absent := filepath.Join(infoDir, "absent", "config.json")
	fmt.Fprintf(os.Stderr, "device plugin: %d starts with 256 VFs, %d Allocates, %d kubelet restarts\n", starts, allocs, restarts)
	var startD []time.Duration
	var rss, hwm []float64
	var last *exec.Cmd
	var k *kubelettest.Kubelet
	for i := range max(starts, 1) {
		if last != nil {
			stop(last)
		}
		if k, err = b.kubelet(); err != nil {
			return err
		}
		t0 := time.Now()
		if last, err = b.start(b.dp, "--sysfs-root", string(tree.Root), "--config-file", absent, "--device-plugin-dir", k.Dir,
			"--metrics-address", "", "--device-info-dir", infoDir, "--served-by-dir", servedBy(infoDir), "--cni-state-dir", "", "--pod-resources-socket", ""); err != nil {
			return err
		}
		if err := wait(k, "start: 256 devices listed", all(256)); err != nil {
			return err
		}
		startD = append(startD, time.Since(t0))
		r, h, err := procMemMiB(last.Process.Pid)
		if err != nil {
			return err
		}
		rss, hwm = append(rss, r), append(hwm, h)
		if i < starts-1 {
			stop(last)
			k.Close()
		}
	}
	b.res["dp_start_median_ms"] = benchutil.PercentileMS(startD, 50)
	b.res["dp_start_max_ms"] = benchutil.PercentileMS(startD, 100)
	slices.Sort(rss)
	slices.Sort(hwm)
	b.res["dp_rss_mib"] = rss[len(rss)/2]
	b.res["dp_hwm_mib"] = hwm[len(hwm)/2]

	snap, _ := k.Snapshot(resource)
	ids := make([]string, 0, len(snap.Devices))
	for _, d := range snap.Devices {
		ids = append(ids, d.ID)
	}
	slices.Sort(ids)
	var allocD []time.Duration
	for i := range allocs {
		t0 := time.Now()
		if _, err := k.Allocate(context.Background(), resource, ids[i%len(ids)]); err != nil {
			return fmt.Errorf("allocate %s: %w", ids[i%len(ids)], err)
		}
		allocD = append(allocD, time.Since(t0))
	}
	if allocs > 0 {
		b.res["dp_allocate_p50_ms"] = benchutil.PercentileMS(allocD, 50)
		b.res["dp_allocate_p99_ms"] = benchutil.PercentileMS(allocD, 99)
	}

	var reg []time.Duration
	for range restarts {
		t0 := time.Now()
		// Restart drops every plugin: the resource is back when it registered again.
		if err := k.Restart(); err != nil {
			return err
		}
		if err := wait(k, "re-registered with 256 devices", all(256)); err != nil {
			return err
		}
		reg = append(reg, time.Since(t0))
	}
	if restarts > 0 {
		b.res["dp_reregister_median_ms"] = benchutil.PercentileMS(reg, 50)
		b.res["dp_reregister_max_ms"] = benchutil.PercentileMS(reg, 100)
	}
	fmt.Printf("\nDevice plugin, 256 VFs\n")
	fmt.Printf("  exec -> first ListAndWatch: median %.1f ms, slowest %.1f ms of %d\n", b.res["dp_start_median_ms"], b.res["dp_start_max_ms"], len(startD))
	fmt.Printf("  RSS after start %.1f MiB (peak %.1f MiB)\n", b.res["dp_rss_mib"], b.res["dp_hwm_mib"])
	if allocs > 0 {
		fmt.Printf("  Allocate of one VF: p50 %.2f ms, p99 %.2f ms (%d calls)\n", b.res["dp_allocate_p50_ms"], b.res["dp_allocate_p99_ms"], allocs)
	}
	if restarts > 0 {
		fmt.Printf("  kubelet restart -> registered again: median %.1f ms, slowest %.1f ms of %d\n", b.res["dp_reregister_median_ms"], b.res["dp_reregister_max_ms"], restarts)
	}
	stop(last)
	return nil
}

// linkDown runs the binary on worker 1 of the emulated node, sets a port netdev
// down in the worker's namespace, and times until the kubelet sees an Unhealthy
// device; then sets it up and waits for all healthy again.
func (b *bench) linkDown(cvf, name string, runs int) error {
	w, err := worker1(name)
	if err != nil {
		return err
	}
	if len(w.Ports) == 0 {
		return errors.New("the emulated worker has no port netdevs")
	}
	k, err := b.kubelet()
	if err != nil {
		return err
	}
	infoDir, err := b.tempDir()
	if err != nil {
		return err
	}
	p, err := b.start(cvf, "emulate", "exec", "--name", name, "--worker", "1", "--", b.dp,
		"--device-plugin-dir", k.Dir, "--metrics-address", "", "--config-file", filepath.Join(infoDir, "absent", "config.json"),
		"--device-info-dir", infoDir, "--served-by-dir", servedBy(infoDir), "--cni-state-dir", "", "--pod-resources-socket", "")
	if err != nil {
		return err
	}
	defer stop(p)
	nvf := len(w.VFs)
	healthy := func(p *kubelettest.Plugin) bool {
		if len(p.Devices) != nvf {
			return false
		}
		for _, d := range p.Devices {
			if d.Health != pluginapi.Healthy {
				return false
			}
		}
		return true
	}
	unhealthy := func(p *kubelettest.Plugin) bool {
		return slices.ContainsFunc(p.Devices, func(d *pluginapi.Device) bool { return d.Health == pluginapi.Unhealthy })
	}
	if err := wait(k, fmt.Sprintf("emulated worker: %d healthy VFs", nvf), healthy); err != nil {
		return err
	}
	h, err := netns.GetFromName(w.Netns)
	if err != nil {
		return err
	}
	nl, err := netlink.NewHandleAt(h)
	h.Close() // the handle keeps its own socket in the namespace
	if err != nil {
		return err
	}
	defer nl.Close()
	port, err := nl.LinkByName(w.Ports[0].Netdev)
	if err != nil {
		return err
	}
	var down, up []time.Duration
	for range runs {
		t0 := time.Now()
		if err := nl.LinkSetDown(port); err != nil {
			return err
		}
		werr := wait(k, "Unhealthy after port link down", unhealthy)
		down = append(down, time.Since(t0))
		t1 := time.Now()
		if err := nl.LinkSetUp(port); err != nil {
			return err
		}
		if werr != nil {
			return werr
		}
		if err := wait(k, "healthy after port link up", healthy); err != nil {
			return err
		}
		up = append(up, time.Since(t1))
	}
	b.res["dp_health_median_ms"] = benchutil.PercentileMS(down, 50)
	b.res["dp_health_max_ms"] = benchutil.PercentileMS(down, 100)
	b.res["dp_recover_median_ms"] = benchutil.PercentileMS(up, 50)
	fmt.Printf("  port link down -> Unhealthy at kubelet (emulated node, %d VFs): median %.1f ms, slowest %.1f ms of %d; up -> healthy %.1f ms\n",
		nvf, b.res["dp_health_median_ms"], b.res["dp_health_max_ms"], runs, b.res["dp_recover_median_ms"])
	return nil
}

// worker1 is worker 1 of the running emulated node name.
func worker1(name string) (*emulate.Worker, error) {
	st, err := emulate.Load("", name)
	if err != nil {
		return nil, err
	}
	return st.Worker(1)
}

// procMemMiB reads VmRSS and VmHWM of a process, in MiB.
func procMemMiB(pid int) (rss, hwm float64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	get := func(key string) float64 {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				if f := strings.Fields(v); len(f) == 2 {
					n, _ := strconv.ParseFloat(f[0], 64)
					return n / 1024
				}
			}
		}
		return 0
	}
	return get("VmRSS"), get("VmHWM"), nil
}
