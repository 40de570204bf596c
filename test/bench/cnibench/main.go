// Command cnibench measures K sequential ADD+DEL cycles of the chelsio-sriov CNI
// plugin next to the floor program (the same netlink work in one small process),
// interleaved A B A B so that both see the same machine, and prints medians, p95
// and the ratios ours/floor. Run it inside an emulated worker:
//
//	chelsio-vf emulate exec --worker 1 -- cnibench -plugin bin/chelsio-sriov -floor bin/floor
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
	"slices"
	"time"

	"github.com/vishvananda/netns"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

func main() {
	k := flag.Int("k", 50, "ADD+DEL cycles of each")
	plugin := flag.String("plugin", "bin/chelsio-sriov", "the chelsio-sriov binary")
	floor := flag.String("floor", "bin/floor", "the floor binary")
	addr := flag.String("vf", "0000:81:01.0", "VF to attach")
	jsonOut := flag.String("json", "", "also write the figures to this file")
	flag.Parse()
	if err := run(*k, *plugin, *floor, *addr, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "cnibench:", err)
		os.Exit(1)
	}
}

type sample struct{ add, del []time.Duration }

func run(k int, plugin, floor, addr, jsonOut string) error {
	root := sysfs.FromEnv()
	v, err := vf.LookupVF(root, vf.MustParsePCIAddr(addr), vf.Options{})
	if err != nil {
		return err
	}
	if v.Netdev == "" {
		return fmt.Errorf("VF %s has no netdev here: run inside an emulated worker", addr)
	}
	podName := fmt.Sprintf("chelsio-bench-pod-%d", os.Getpid())
	runtime.LockOSThread()
	host, err := netns.Get()
	if err != nil {
		return err
	}
	pod, err := netns.NewNamed(podName)
	if err != nil {
		return err
	}
	pod.Close()
	if err := netns.Set(host); err != nil {
		return err
	}
	defer func() { _ = netns.DeleteNamed(podName) }()
	podPath := filepath.Join("/run/netns", podName)
	// The plugin's default dataDir is under /var/lib/cni: measure on that filesystem.
	if err := os.MkdirAll("/var/lib/cni", 0o755); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("/var/lib/cni", "chelsio-sriov-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "chelsio-sriov", "deviceID": addr, "dataDir": dataDir})

	cni := func(cmd string) (time.Duration, error) {
		c := exec.Command(plugin)
		c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID=bench", "CNI_NETNS="+podPath, "CNI_IFNAME=net1", "CNI_PATH="+filepath.Dir(plugin))
		c.Stdin = bytes.NewReader(conf)
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		t0 := time.Now()
		err := c.Run()
		d := time.Since(t0)
		if err != nil {
			return d, fmt.Errorf("%s %s: %w: %s", filepath.Base(plugin), cmd, err, out.String())
		}
		return d, nil
	}
	fl := func(verb string) (time.Duration, error) {
		c := exec.Command(floor, verb, v.Netdev, podPath, "net1")
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		t0 := time.Now()
		err := c.Run()
		d := time.Since(t0)
		if err != nil {
			return d, fmt.Errorf("floor %s: %w: %s", verb, err, out.String())
		}
		return d, nil
	}
	var ours, base sample
	fmt.Fprintf(os.Stderr, "%d ADD+DEL cycles of chelsio-sriov and of the floor, interleaved\n", k)
	for i := range k {
		for _, s := range []struct {
			smp *sample
			add func() (time.Duration, error)
			del func() (time.Duration, error)
		}{
			{&ours, func() (time.Duration, error) { return cni("ADD") }, func() (time.Duration, error) { return cni("DEL") }},
			{&base, func() (time.Duration, error) { return fl("add") }, func() (time.Duration, error) { return fl("del") }},
		} {
			d, err := s.add()
			if err != nil {
				return err
			}
			s.smp.add = append(s.smp.add, d)
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
	res := map[string]float64{
		"add_median_ms": ms(pct(ours.add, 50)), "add_p95_ms": ms(pct(ours.add, 95)),
		"del_median_ms": ms(pct(ours.del, 50)), "del_p95_ms": ms(pct(ours.del, 95)),
		"floor_add_median_ms": ms(pct(base.add, 50)), "floor_add_p95_ms": ms(pct(base.add, 95)),
		"floor_del_median_ms": ms(pct(base.del, 50)), "floor_del_p95_ms": ms(pct(base.del, 95)),
	}
	res["add_over_floor"] = res["add_median_ms"] / res["floor_add_median_ms"]
	res["del_over_floor"] = res["del_median_ms"] / res["floor_del_median_ms"]
	fmt.Printf("\nCNI ADD/DEL, %d sequential cycles, no IPAM (median / p95, ms)\n", k)
	fmt.Printf("  %-14s %8s %8s %8s %8s\n", "", "ADD p50", "ADD p95", "DEL p50", "DEL p95")
	fmt.Printf("  %-14s %8.2f %8.2f %8.2f %8.2f\n", "chelsio-sriov", res["add_median_ms"], res["add_p95_ms"], res["del_median_ms"], res["del_p95_ms"])
	fmt.Printf("  %-14s %8.2f %8.2f %8.2f %8.2f\n", "floor", res["floor_add_median_ms"], res["floor_add_p95_ms"], res["floor_del_median_ms"], res["floor_del_p95_ms"])
	fmt.Printf("  ratio ADD/floor %.2f (target <= 1.3), DEL/floor %.2f\n", res["add_over_floor"], res["del_over_floor"])
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
