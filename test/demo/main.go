// Command demo runs the reference two-worker flow on an emulated node, with the
// real binaries: `make demo`. Needs root. Every step is printed; everything made is
// removed at the end, on failure and on Ctrl-C.
//
//  1. emulate up: two workers with a T62100-CR each, VFs at MTU 9000 (the reference
//     setup), VF k of worker 1 cabled to VF k of worker 2;
//  2. on each worker, chelsio-sriov-dp with the reference ConfigMap, registered with
//     a kubelet stand-in that gives one VF to one pod, as kubelet does;
//  3. each pod gets its VF through libcni (the runtime library of CRI-O, containerd
//     and Multus), with the shipped NAD's config (deployments/network-attachment.yaml)
//     and the allocated PCI address as Multus passes it, and the real whereabouts
//     IPAM: each worker has its own whereabouts configuration (kubeconfig, flat
//     file, log, NODENAME), and the workers share only the cluster's API, a
//     stand-in (internal/kubeapi) that holds the IPPool: the two pods get
//     different addresses, as on two real nodes;
//  4. chelsio-vf bench between the two pods: the reference iperf test, a table and a
//     plot of throughput and CPU against I/O size;
//  5. DEL of both pods, which frees both addresses in the IPPool; the device
//     plugins stopped, emulate down.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubeapi"
	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
)

// The reference ConfigMap's config.json.
const (
	seedConfig = `{"resourceList": [{"resourceName": "chelsio_sriov_netdevice",
  "selectors": {"vendors": ["1425"], "devices": ["680d"], "drivers": ["cxgb4vf"]}}]}`
	resource = "chelsio.com/chelsio_sriov_netdevice"
)

type demo struct {
	bin, name, work string
	nadFile         string
	duration        string
	sizes           string
	cleanup         []func()
	nad             []byte          // spec.config of the shipped NAD
	api             *kubeapi.Server // the cluster's API, which the workers share
}

func main() {
	d := &demo{}
	flag.StringVar(&d.bin, "bin", "bin", "directory of the built binaries (whereabouts in <bin>/cni)")
	flag.StringVar(&d.nadFile, "nad", "deployments/network-attachment.yaml", "the NetworkAttachmentDefinition whose spec.config the pods get")
	flag.StringVar(&d.name, "name", "chelsio-emu-demo", "name of the emulated node")
	flag.StringVar(&d.duration, "duration", "1s", "bench time per I/O size (the reference uses 60s)")
	flag.StringVar(&d.sizes, "sizes", "64,128,256,512,1K,2K,4K,8K,16K,32K,64K,128K,256K,512K", "bench I/O sizes")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := d.run(ctx)
	stop()
	d.undo()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("\ndemo done: everything it made is gone")
}

func step(format string, args ...any) { fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...) }

func (d *demo) onExit(f func()) { d.cleanup = append(d.cleanup, f) }

func (d *demo) undo() {
	if len(d.cleanup) > 0 {
		step("cleanup")
	}
	for i := len(d.cleanup) - 1; i >= 0; i-- {
		d.cleanup[i]()
	}
	d.cleanup = nil
}

func (d *demo) cvf() string { return filepath.Join(d.bin, "chelsio-vf") }

// sh runs a command, its output to the terminal.
func sh(ctx context.Context, name string, args ...string) error {
	c := exec.CommandContext(ctx, name, args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(name), strings.Join(args, " "), err)
	}
	return nil
}

func (d *demo) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo needs root (it creates network namespaces): run sudo make demo")
	}
	abs, err := filepath.Abs(d.bin)
	if err != nil {
		return err
	}
	d.bin = abs
	if d.work, err = os.MkdirTemp("", "chelsio-demo-"); err != nil {
		return err
	}
	d.onExit(func() { _ = os.RemoveAll(d.work) })

	step("emulate up: 2 workers, 8 VFs each on PF0, MTU 9000")
	_ = exec.Command(d.cvf(), "emulate", "down", "--name", d.name).Run()
	if err := sh(ctx, d.cvf(), "emulate", "up", "--name", d.name, "--vfs", "8", "--mtu", "9000"); err != nil {
		return err
	}
	d.onExit(func() { _ = sh(context.Background(), d.cvf(), "emulate", "down", "--name", d.name) })
	for w := 1; w <= 2; w++ {
		step("worker %d: chelsio-vf list", w)
		if err := sh(ctx, d.cvf(), "emulate", "exec", "--name", d.name, "--worker", fmt.Sprint(w), "--", d.cvf(), "list"); err != nil {
			return err
		}
	}

	if err := d.startAPI(); err != nil {
		return err
	}
	cfg := filepath.Join(d.work, "config.json")
	if err := os.WriteFile(cfg, []byte(seedConfig), 0o644); err != nil {
		return err
	}
	pods := map[int]ns.NetNS{}
	ips := map[int]string{}
	dels := map[int]func() error{}
	for w := 1; w <= 2; w++ {
		pci, err := d.vfFor(ctx, w, cfg)
		if err != nil {
			return err
		}
		ip, pod, del, err := d.attach(ctx, w, pci)
		if err != nil {
			return err
		}
		pods[w], ips[w], dels[w] = pod, ip, del
	}
	step("the cluster's IPPool: one address per pod, from two workers")
	d.printPools()
	if ips[1] == ips[2] {
		return fmt.Errorf("both pods got %s: the workers' IPAM does not share its leases", ips[1])
	}
	if err := d.bench(ctx, pods, ips); err != nil {
		return err
	}
	step("DEL both pods: whereabouts frees their addresses")
	for w := 1; w <= 2; w++ {
		if err := dels[w](); err != nil {
			return err
		}
	}
	d.printPools()
	for pool, allocs := range d.api.Allocations() {
		if len(allocs) > 0 {
			return fmt.Errorf("IPPool %s still holds %d addresses after DEL", pool, len(allocs))
		}
	}
	return nil
}

// startAPI reads the shipped NAD and starts the cluster's API stand-in.
func (d *demo) startAPI() error {
	nad, err := kubeapi.NADConfig(d.nadFile)
	if err != nil {
		return err
	}
	d.nad = nad
	step("the cluster: a Kubernetes API stand-in, which holds whereabouts' IPPools (the only thing the workers share)")
	d.api = kubeapi.New()
	d.onExit(d.api.Close)
	fmt.Printf("NAD %s: %s\n", d.nadFile, bytes.Join(bytes.Fields(nad), []byte(" ")))
	return nil
}

// printPools prints each IPPool's allocations: offset in the range, pod.
func (d *demo) printPools() {
	pools := d.api.Allocations()
	if len(pools) == 0 {
		fmt.Println("no IPPool")
	}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		allocs := pools[name]
		fmt.Printf("IPPool %s: %d allocations\n", name, len(allocs))
		for _, off := range slices.Sorted(maps.Keys(allocs)) {
			ref, _ := allocs[off].(map[string]any)["podref"].(string)
			fmt.Printf("  offset %s: %s\n", off, ref)
		}
	}
}

// bench runs the reference iperf test from pod 1 to pod 2.
func (d *demo) bench(ctx context.Context, pods map[int]ns.NetNS, ips map[int]string) error {
	step("bench: server in pod 2 (%s), client in pod 1: %s per size", ips[2], d.duration)
	srv := exec.CommandContext(ctx, "nsenter", "--net="+pods[2].Path(), d.cvf(), "bench", "server", "--listen", ips[2]+":5201")
	srv.Stdout = io.Discard
	errPipe, err := srv.StderrPipe()
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errPipe)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(os.Stderr, sc.Text())
			if !seen && strings.Contains(sc.Text(), "listening on") {
				seen = true
				close(listening)
			}
		}
	}()
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		return errors.New("the bench server did not start listening")
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { // before the pods go
		_ = srv.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = srv.Process.Kill()
		}
	}()
	if err := os.MkdirAll("bench", 0o755); err != nil {
		return err
	}
	if err := sh(ctx, "nsenter", "--net="+pods[1].Path(), d.cvf(), "bench", "client", "--server", ips[2],
		"--streams", "8", "--window", "512K", "--duration", d.duration, "--sizes", d.sizes,
		"--json", "bench/demo.json", "--plot", "bench/demo.svg"); err != nil {
		return err
	}
	fmt.Println("\nplot: bench/demo.svg, figures: bench/demo.json")
	return nil
}

// whereabouts writes worker w's whereabouts configuration, as a node's
// whereabouts install leaves it, in a directory of its own, and returns the
// NAD's config with its IPAM config naming it.
func (d *demo) whereabouts(w int) (map[string]any, error) {
	dir := filepath.Join(d.work, fmt.Sprintf("whereabouts-w%d", w))
	wn, err := d.api.Whereabouts(dir, filepath.Join("/run/netns", d.netns(w)))
	if err != nil {
		return nil, err
	}
	var conf map[string]any
	if err := json.Unmarshal(d.nad, &conf); err != nil {
		return nil, err
	}
	ipam, _ := conf["ipam"].(map[string]any)
	if ipam["type"] != "whereabouts" {
		return nil, fmt.Errorf("%s: the IPAM is %v, the demo runs whereabouts", d.nadFile, ipam["type"])
	}
	ipam["configuration_path"] = wn.FlatFile
	fmt.Printf("worker %d whereabouts: flat file %s, kubeconfig %s, log %s, NODENAME %s\n", w, wn.FlatFile, wn.Kubeconfig, wn.LogFile, d.netns(w))
	return conf, nil
}

// netns is the name of worker w's network namespace, which is also its node name.
func (d *demo) netns(w int) string { return fmt.Sprintf("%s-w%d", d.name, w) }

// stateDir is the CNI plugin's state directory on worker w, which the device
// plugin reads to tell a VF in a pod from a stranded one.
func (d *demo) stateDir(w int) string { return filepath.Join(d.work, fmt.Sprintf("state-w%d", w)) }

// allocate starts the device plugin on worker w against a kubelet stand-in and
// has it allocate one VF, as kubelet does for a pod that requests the resource.
func (d *demo) allocate(ctx context.Context, w int, cfg string) (string, error) {
	step("worker %d: chelsio-sriov-dp with the reference ConfigMap; kubelet allocates one VF", w)
	dir, err := os.MkdirTemp("", "dp-") // unix socket paths are short
	if err != nil {
		return "", err
	}
	d.onExit(func() { _ = os.RemoveAll(dir) })
	k, err := kubelettest.Start(dir)
	if err != nil {
		return "", err
	}
	d.onExit(k.Close)
	dp := exec.Command(d.cvf(), "emulate", "exec", "--name", d.name, "--worker", fmt.Sprint(w), "--",
		filepath.Join(d.bin, "chelsio-sriov-dp"), "--config-file", cfg, "--device-plugin-dir", dir,
		"--metrics-address", "", "--device-info-dir", filepath.Join(d.work, fmt.Sprintf("devinfo-w%d", w)),
		"--cni-state-dir", d.stateDir(w), "--pod-resources-socket", "")
	var logs bytes.Buffer
	dp.Stdout, dp.Stderr = &logs, &logs
	dp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := dp.Start(); err != nil {
		return "", err
	}
	d.onExit(func() {
		_ = syscall.Kill(-dp.Process.Pid, syscall.SIGTERM)
		_ = dp.Wait()
	})
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = k.Wait(wctx, func(p map[string]*kubelettest.Plugin) bool { return p[resource] != nil && len(p[resource].Devices) > 0 })
	if err != nil {
		return "", fmt.Errorf("worker %d: the device plugin did not register %s: %w\n%s", w, resource, err, logs.String())
	}
	snap, _ := k.Snapshot(resource)
	var ids []string
	for _, dev := range snap.Devices {
		ids = append(ids, dev.ID)
	}
	fmt.Printf("kubelet sees %s: %d devices, all %s\n", resource, len(ids), snap.Devices[0].Health)
	pick, err := k.Preferred(ctx, resource, ids, nil, 1)
	if err != nil {
		return "", err
	}
	car, err := k.Allocate(ctx, resource, pick...)
	if err != nil {
		return "", err
	}
	env := deviceplugin.EnvName("chelsio.com", "chelsio_sriov_netdevice")
	fmt.Printf("Allocate: %s=%s\n", env, car.Envs[env])
	return car.Envs[env], nil
}

// attach creates a pod and gives it the VF through libcni, as Multus does, and
// returns its address, its namespace and its DEL.
func (d *demo) attach(ctx context.Context, w int, pci string) (string, ns.NetNS, func() error, error) {
	step("worker %d: pod testpod%d gets %s as net1 through libcni (the shipped NAD, type chelsio-sriov)", w, w, pci)
	conf, err := d.whereabouts(w)
	if err != nil {
		return "", nil, nil, err
	}
	pod, err := testutils.NewNS()
	if err != nil {
		return "", nil, nil, err
	}
	d.onExit(func() {
		_ = roottest.RemoveNetns(pod)
	})
	// CNI_PATH: chelsio-sriov runs inside the worker, and so does the IPAM plugin
	// it runs, whereabouts, built from the module proxy.
	wrap := filepath.Join(d.work, fmt.Sprintf("cni-w%d", w))
	if err := os.MkdirAll(wrap, 0o755); err != nil {
		return "", nil, nil, err
	}
	// The state is in the demo's work directory, which the node's setting allows
	// (a NetConf alone may name only a dataDir under /var/lib). NODENAME is the
	// node's name, as whereabouts reads it.
	script := fmt.Sprintf("#!/bin/sh\nNODENAME=%s %s=%s exec %s emulate exec --name %s --worker %d -- %s \"$@\"\n",
		d.netns(w), cni.EnvDataDirs, d.work, d.cvf(), d.name, w, filepath.Join(d.bin, "chelsio-sriov"))
	if err := os.WriteFile(filepath.Join(wrap, "chelsio-sriov"), []byte(script), 0o755); err != nil {
		return "", nil, nil, err
	}
	conf["deviceID"], conf["pciBusID"] = pci, pci // what Multus adds
	conf["dataDir"] = d.stateDir(w)
	b, _ := json.Marshal(conf)
	pc, err := libcni.NetworkPluginConfFromBytes(b)
	if err != nil {
		return "", nil, nil, err
	}
	runtime := libcni.NewCNIConfigWithCacheDir([]string{wrap, filepath.Join(d.bin, "cni")}, filepath.Join(d.work, "cache"), nil)
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("testpod%d", w), NetNS: pod.Path(), IfName: "net1",
		Args: [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", fmt.Sprintf("testpod%d", w)}},
	}
	r, err := runtime.AddNetwork(ctx, pc, rt)
	if err != nil {
		return "", nil, nil, fmt.Errorf("worker %d: ADD: %w", w, err)
	}
	deleted := false
	del := func() error {
		if deleted {
			return nil
		}
		deleted = true
		fmt.Printf("worker %d: DEL testpod%d\n", w, w)
		if err := runtime.DelNetwork(context.Background(), pc, rt); err != nil {
			return fmt.Errorf("worker %d: DEL: %w", w, err)
		}
		return nil
	}
	d.onExit(func() {
		if err := del(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	})
	res, err := current.NewResultFromResult(r)
	if err != nil || len(res.IPs) == 0 {
		return "", nil, nil, fmt.Errorf("worker %d: ADD result %v: %w", w, r, err)
	}
	fmt.Printf("net1 in testpod%d: %s, MAC %s\n", w, res.IPs[0].Address.String(), res.Interfaces[0].Mac)
	return res.IPs[0].Address.IP.String(), pod, del, nil
}
