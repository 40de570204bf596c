package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/syncbuf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// dpWait bounds every wait for the device plugin; the target is 1 s.
const dpWait = 10 * time.Second

// dpProc is a running chelsio-sriov-dp, in its own process group.
type dpProc struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's, once done is closed
}

// startProc starts argv in a new process group with stderr captured. The test's
// cleanup stops the group (SIGTERM, then SIGKILL) and, if the test failed, logs
// stderr.
func startProc(t testing.TB, argv ...string) *dpProc {
	t.Helper()
	return startProcOut(t, nil, argv...)
}

// startProcOut is startProc with the process's stdout going to stdout (nil: none).
func startProcOut(t testing.TB, stdout io.Writer, argv ...string) *dpProc {
	t.Helper()
	p := &dpProc{cmd: exec.Command(argv[0], argv[1:]...), stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd.Stderr, p.cmd.Stdout = p.stderr, stdout
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", filepath.Base(argv[0]), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("chelsio-sriov-dp stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

// stop ends the process group: SIGTERM, and SIGKILL after 10 s. It is idempotent.
func (p *dpProc) stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(10 * time.Second):
	}
	t.Errorf("chelsio-sriov-dp (pid %d) did not stop on SIGTERM within 10s; killing it", pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
}

// waitLog waits until the process's stderr has a line that contains every one of want.
func (p *dpProc) waitLog(t *testing.T, want ...string) {
	t.Helper()
	eventually(t, fmt.Sprintf("chelsio-sriov-dp log line with %q", want), dpWait, func() (bool, string) {
		for line := range strings.SplitSeq(p.stderr.String(), "\n") {
			all := true
			for _, w := range want {
				all = all && strings.Contains(line, w)
			}
			if all {
				return true, ""
			}
		}
		return false, "stderr:\n" + p.stderr.String()
	})
}

// shortTempDir makes a directory for unix sockets, whose paths are limited to 108
// bytes (t.TempDir's can be longer), removed at the end of the test.
func shortTempDir(t testing.TB) string {
	t.Helper()
	return kubelettest.ShortDir(t, "dp-")
}

// startKubelet serves the test kubelet in a fresh short directory.
func startKubelet(t testing.TB) *kubelettest.Kubelet {
	t.Helper()
	return kubelettest.StartTest(t, "dp-")
}

// dpNode is an emulated one-worker node with the test kubelet and chelsio-sriov-dp
// running on worker 1.
type dpNode struct {
	*emuNode
	worker  emulate.Worker
	kubelet *kubelettest.Kubelet
	dp      *dpProc
	infoDir string
	// stateDir is the CNI state directory the plugin reads (a test's CNI plugin
	// writes there); podSocket is the pod-resources socket it asks, served only
	// when a test starts kubelettest.StartPodResources on it.
	stateDir, podSocket string
}

// upDPNode brings up an emulated node (one worker, `emulate up` args added) and
// the test kubelet; startDP then runs the plugin on it.
func upDPNode(t *testing.T, upArgs ...string) *dpNode {
	t.Helper()
	n := upNode(t, append([]string{"--workers", "1"}, upArgs...)...)
	st, err := emulate.Load(n.runDir, n.name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := st.Worker(1)
	if err != nil {
		t.Fatal(err)
	}
	k := startKubelet(t)
	return &dpNode{
		emuNode: n, worker: *w, kubelet: k, infoDir: t.TempDir(),
		stateDir: filepath.Join(t.TempDir(), "chelsio-sriov"), podSocket: filepath.Join(k.Dir, "pod-resources.sock"),
	}
}

// startDP runs the real binary on worker 1 through `chelsio-vf emulate exec`, which
// gives it the worker's network namespace (netlink port events) and its sysfs tree
// ($CHELSIO_SYSFS_ROOT). configFile "" means a path that does not exist.
func (d *dpNode) startDP(t *testing.T, configFile string, args ...string) {
	t.Helper()
	if configFile == "" {
		configFile = filepath.Join(t.TempDir(), "absent", "config.json")
	}
	argv := []string{
		d.cvf, "emulate", "exec", "--name", d.name, "--run-dir", d.runDir, "--worker", "1", "--",
		bin(t, "chelsio-sriov-dp"), "--device-plugin-dir", d.kubelet.Dir, "--metrics-address", "127.0.0.1:0",
		"--config-file", configFile, "--rescan-interval", "200ms", "--device-info-dir", d.infoDir,
		"--cni-state-dir", d.stateDir, "--pod-resources-socket", d.podSocket,
	}
	d.dp = startProc(t, append(argv, args...)...)
}

// wait waits until cond holds at the test kubelet.
func (d *dpNode) wait(t *testing.T, what string, cond func(map[string]*kubelettest.Plugin) bool) {
	t.Helper()
	waitKubelet(t, d.kubelet, what, cond)
}

func waitKubelet(t testing.TB, k *kubelettest.Kubelet, what string, cond func(map[string]*kubelettest.Plugin) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dpWait)
	defer cancel()
	if err := k.Wait(ctx, cond); err != nil {
		var state []string
		for _, name := range []string{"chelsio.com/vf", "chelsio.com/vf-vfio"} {
			if p, ok := k.Snapshot(name); ok {
				state = append(state, fmt.Sprintf("%s: %d lists, %v", name, p.Lists, healthOf(p.Devices)))
			}
		}
		t.Fatalf("%s: %v; kubelet knows %v", what, err, state)
	}
}

// healthOf maps each listed device to its health.
func healthOf(devs []*pluginapi.Device) map[string]string {
	out := map[string]string{}
	for _, d := range devs {
		out[d.ID] = d.Health
	}
	return out
}

// listedHealth is a kubelet condition: resource listed with exactly these devices
// and health.
func listedHealth(resource string, want map[string]string) func(map[string]*kubelettest.Plugin) bool {
	return func(p map[string]*kubelettest.Plugin) bool {
		r := p[resource]
		if r == nil || r.Lists == 0 {
			return false
		}
		got := healthOf(r.Devices)
		if len(got) != len(want) {
			return false
		}
		for id, h := range want {
			if got[id] != h {
				return false
			}
		}
		return true
	}
}

// vfHealth is the health map of the worker's VFs: unhealthy those for which down
// is true.
func (d *dpNode) vfHealth(down func(v emulate.VF) bool) map[string]string {
	out := map[string]string{}
	for _, v := range d.worker.VFs {
		out[v.Addr.String()] = pluginapi.Healthy
		if down != nil && down(v) {
			out[v.Addr.String()] = pluginapi.Unhealthy
		}
	}
	return out
}

func (d *dpNode) vfIDs() []string {
	var ids []string
	for _, v := range d.worker.VFs {
		ids = append(ids, v.Addr.String())
	}
	slices.Sort(ids)
	return ids
}

// writeFileAtomic replaces a file as a ConfigMap update or an editor does: a
// temporary file renamed over it.
func writeFileAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedDPZeroConfig runs the plugin without a config file: chelsio.com/vf
// lists the worker's 8 VFs, healthy and with their NUMA node; chelsio.com/vf-vfio
// is registered, empty.
func TestPrivilegedDPZeroConfig(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	d.startDP(t, "")
	d.wait(t, "chelsio.com/vf lists 8 healthy VFs and chelsio.com/vf-vfio is registered", func(p map[string]*kubelettest.Plugin) bool {
		return listedHealth("chelsio.com/vf", d.vfHealth(nil))(p) && p["chelsio.com/vf-vfio"] != nil && p["chelsio.com/vf-vfio"].Lists > 0
	})
	p, _ := d.kubelet.Snapshot("chelsio.com/vf")
	var want []listing
	for _, id := range d.vfIDs() {
		want = append(want, listing{ID: id, Health: pluginapi.Healthy, NUMA: []int64{0}})
	}
	if diff := cmp.Diff(want, listingOf(d.kubelet, "chelsio.com/vf")); diff != "" {
		t.Errorf("ListAndWatch of chelsio.com/vf mismatch (-want +got):\n%s", diff)
	}
	if !p.Options.GetPreferredAllocationAvailable {
		t.Error("GetDevicePluginOptions does not announce GetPreferredAllocation")
	}
	if v, _ := d.kubelet.Snapshot("chelsio.com/vf-vfio"); len(v.Devices) != 0 {
		t.Errorf("chelsio.com/vf-vfio lists %d devices, want 0", len(v.Devices))
	}
	d.dp.waitLog(t, "no config file: zero-config pools")
}

// TestPrivilegedDPSeedConfig runs the plugin with the seed's ConfigMap and
// --resource-prefix intel.com, as the seed deploys sriov-dp: the resource, Allocate's
// variables and device-info file, and the preferred allocation across ports.
func TestPrivilegedDPSeedConfig(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8", "--spread") // PF0-PF3: ports 0, 1, 0, 1
	cfg := filepath.Join(t.TempDir(), "config.json")
	writeFileAtomic(t, cfg, string(kubelettest.SeedConfig(t)))
	d.startDP(t, cfg, "--resource-prefix", "intel.com")
	const res = "intel.com/chelsio_sriov_netdevice"
	d.wait(t, res+" lists 8 healthy VFs", listedHealth(res, d.vfHealth(nil)))

	car, err := d.kubelet.Allocate(context.Background(), res, "0000:81:01.0", "0000:81:01.1")
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	const env = "PCIDEVICE_INTEL_COM_CHELSIO_SRIOV_NETDEVICE"
	if got := car.Envs[env]; got != "0000:81:01.0,0000:81:01.1" {
		t.Errorf("%s = %q, want 0000:81:01.0,0000:81:01.1 (envs: %v)", env, got, car.Envs)
	}
	var info map[string]map[string]map[string]string
	if err := json.Unmarshal([]byte(car.Envs[env+"_INFO"]), &info); err != nil {
		t.Fatalf("%s_INFO: %v", env, err)
	}
	wantInfo := map[string]map[string]map[string]string{
		"0000:81:01.0": {"generic": {"deviceID": "0000:81:01.0"}},
		"0000:81:01.1": {"generic": {"deviceID": "0000:81:01.1"}},
	}
	if diff := cmp.Diff(wantInfo, info); diff != "" {
		t.Errorf("%s_INFO mismatch (-want +got):\n%s", env, diff)
	}
	if len(car.Devices) != 0 || len(car.CdiDevices) != 0 {
		t.Errorf("cxgb4vf VFs got device specs %v and CDI devices %v, want none", car.Devices, car.CdiDevices)
	}
	b, err := os.ReadFile(filepath.Join(d.infoDir, "intel.com-chelsio_sriov_netdevice-0000:81:01.0-device.json"))
	if err != nil {
		t.Fatalf("device-info file: %v", err)
	}
	var di struct {
		Type, Version string
		PCI           map[string]string
	}
	if err := json.Unmarshal(b, &di); err != nil {
		t.Fatalf("device-info file %s: %v", b, err)
	}
	if di.Type != "pci" || di.PCI["pci-address"] != "0000:81:01.0" || di.PCI["pf-pci-address"] != "0000:81:00.0" {
		t.Errorf("device-info file = %s", b)
	}

	// Two of the 8, no must-include: one per port (spread).
	pref, err := d.kubelet.Preferred(context.Background(), res, d.vfIDs(), nil, 2)
	if err != nil {
		t.Fatalf("GetPreferredAllocation: %v", err)
	}
	if diff := cmp.Diff([]string{"0000:81:01.0", "0000:81:01.1"}, pref); diff != "" {
		t.Errorf("GetPreferredAllocation mismatch (-want +got):\n%s", diff)
	}
	if _, err := d.kubelet.Allocate(context.Background(), res, "0000:99:01.0"); err == nil {
		t.Error("Allocate of an unknown device succeeded")
	}
}

// setLink sets a link of the worker's namespace up or down (ip link set NAME up|down).
func (d *dpNode) setLink(t *testing.T, name string, up bool) {
	t.Helper()
	w := d.workerNS(1)
	if err := w.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if up {
			return netlink.LinkSetUp(l)
		}
		return netlink.LinkSetDown(l)
	}); err != nil {
		t.Fatalf("set %s up=%v in %s: %v", name, up, d.netns(1), err)
	}
}

// TestPrivilegedDPPortLinkDown sets a physical port's link down in the worker's
// namespace: every VF of that port, and only those, becomes Unhealthy at the kubelet;
// up again, they recover.
func TestPrivilegedDPPortLinkDown(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8", "--spread") // 4 VFs on each port
	if len(d.worker.Ports) == 0 {
		t.Fatal("the emulated worker has no port netdevs")
	}
	port0 := d.worker.Ports[0].Netdev
	d.startDP(t, "")
	d.wait(t, "8 healthy VFs", listedHealth("chelsio.com/vf", d.vfHealth(nil)))

	onPort0 := func(v emulate.VF) bool { return v.Port == 0 }
	if n := len(slices.DeleteFunc(slices.Clone(d.worker.VFs), func(v emulate.VF) bool { return !onPort0(v) })); n != 4 {
		t.Fatalf("%d VFs on port 0, want 4 (--spread)", n)
	}
	t0 := time.Now()
	d.setLink(t, port0, false)
	d.wait(t, "the VFs of port 0 unhealthy, the others healthy", listedHealth("chelsio.com/vf", d.vfHealth(onPort0)))
	t.Logf("port %s down: kubelet saw its VFs unhealthy after %v", port0, time.Since(t0))
	d.dp.waitLog(t, "device unhealthy", fmt.Sprintf("port 0 (%s) link down", port0))

	t0 = time.Now()
	d.setLink(t, port0, true)
	d.wait(t, "every VF healthy again", listedHealth("chelsio.com/vf", d.vfHealth(nil)))
	t.Logf("port %s up: kubelet saw its VFs healthy after %v", port0, time.Since(t0))
	d.dp.waitLog(t, "device healthy again")
}

// TestPrivilegedDPVFRemoved removes a VF from the worker's sysfs tree, as a hot
// unplug does: it leaves the kubelet's list; the others stay, healthy.
func TestPrivilegedDPVFRemoved(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	d.startDP(t, "")
	d.wait(t, "8 healthy VFs", listedHealth("chelsio.com/vf", d.vfHealth(nil)))

	const gone = "0000:81:01.4"
	tree := sysfstree.Tree{Root: sysfs.Root(d.worker.Sysfs), Opts: sysfstree.Options{AbsoluteLinks: true}}
	t0 := time.Now()
	if err := tree.RemoveFunction(vf.MustParsePCIAddr(gone)); err != nil {
		t.Fatal(err)
	}
	want := d.vfHealth(nil)
	delete(want, gone)
	d.wait(t, gone+" gone from the list, the other 7 healthy", listedHealth("chelsio.com/vf", want))
	t.Logf("VF %s removed from sysfs: gone from kubelet's list after %v", gone, time.Since(t0))
	d.dp.waitLog(t, "device removed", gone)
	if _, err := d.kubelet.Allocate(context.Background(), "chelsio.com/vf", gone); err == nil {
		t.Errorf("Allocate of the removed VF %s succeeded", gone)
	}
}

// listing is what kubelet holds of one device: ID, health and NUMA nodes.
type listing struct {
	ID, Health string
	NUMA       []int64
}

// listingOf is the resource's latest ListAndWatch list at the test kubelet.
func listingOf(k *kubelettest.Kubelet, resource string) []listing {
	p, _ := k.Snapshot(resource)
	var out []listing
	for _, dev := range p.Devices {
		l := listing{ID: dev.ID, Health: dev.Health}
		for _, node := range dev.GetTopology().GetNodes() {
			l.NUMA = append(l.NUMA, node.ID)
		}
		out = append(out, l)
	}
	return out
}

// TestPrivilegedDPKubeletRestarts restarts the test kubelet 100 times (every socket
// removed, kubelet.sock created anew): each time both resources register exactly
// once more, and chelsio.com/vf lists the very devices of the first list, health and
// NUMA node included.
func TestPrivilegedDPKubeletRestarts(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	d.startDP(t, "")
	all := d.vfHealth(nil)
	registered := func(p map[string]*kubelettest.Plugin) bool {
		return listedHealth("chelsio.com/vf", all)(p) && p["chelsio.com/vf-vfio"] != nil && p["chelsio.com/vf-vfio"].Lists > 0
	}
	d.wait(t, "both resources registered", registered)
	want := listingOf(d.kubelet, "chelsio.com/vf")
	const restarts = 100
	var worst time.Duration
	for i := range restarts {
		t0 := time.Now()
		if err := d.kubelet.Restart(); err != nil {
			t.Fatal(err)
		}
		d.wait(t, fmt.Sprintf("restart %d: both resources registered again with all devices", i+1), registered)
		worst = max(worst, time.Since(t0))
		for _, res := range []string{"chelsio.com/vf", "chelsio.com/vf-vfio"} {
			if n := d.kubelet.Registrations(res); n != i+2 {
				t.Fatalf("after restart %d: %s registered %d times, want %d", i+1, res, n, i+2)
			}
		}
		if diff := cmp.Diff(want, listingOf(d.kubelet, "chelsio.com/vf")); diff != "" {
			t.Fatalf("after restart %d: ListAndWatch of chelsio.com/vf mismatch (-want +got):\n%s", i+1, diff)
		}
	}
	t.Logf("%d kubelet restarts: slowest re-registration with the full list took %v", restarts, worst)
	if _, err := d.kubelet.Admit(context.Background(), "pod-after-restarts", "app", "chelsio.com/vf", 1); err != nil {
		t.Errorf("Admit after %d restarts: %v", restarts, err)
	}
}

// TestPrivilegedDPKilledWhilePodsHoldVFs runs the seed's deployment (its ConfigMap,
// --resource-prefix intel.com): kubelet admits three pods, and the CNI plugin moves
// each pod's VF into it, as Multus has it do. The device plugin is then killed with
// SIGKILL, which leaves its socket behind, and started again. While it is down,
// kubelet admits nothing. Once it is back it advertises the same resource and the
// same 8 device IDs, the 3 VFs in pods included (their netdevs are no longer on the
// node); kubelet's ledger, which the plugin knows nothing of, still gives each pod
// its VF, so a new pod gets only the free ones and a request for a held VF is
// refused by kubelet without reaching the plugin. Asked directly to Allocate a held
// VF twice, the plugin answers twice and keeps serving.
func TestPrivilegedDPKilledWhilePodsHoldVFs(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	cfg := filepath.Join(t.TempDir(), "config.json")
	writeFileAtomic(t, cfg, string(kubelettest.SeedConfig(t)))
	d.startDP(t, cfg, "--resource-prefix", "intel.com")
	const res = "intel.com/chelsio_sriov_netdevice"
	all := d.vfHealth(nil)
	d.wait(t, res+" lists 8 healthy VFs", listedHealth(res, all))
	before := listingOf(d.kubelet, res)
	p, _ := d.kubelet.Snapshot(res)
	sock := filepath.Join(d.kubelet.Dir, p.Endpoint)

	ctx := context.Background()
	e := newCNIEnv(t, d.emuNode)
	e.dataDirs[1] = d.stateDir // made by the plugin, private; the device plugin reads it
	var held []string
	for _, pod := range []string{"pod-a", "pod-b", "pod-c"} {
		a, err := d.kubelet.Admit(ctx, pod, "app", res, 1)
		if err != nil {
			t.Fatalf("admit %s: %v", pod, err)
		}
		id := a.IDs[0]
		if got := a.Response.Envs["PCIDEVICE_INTEL_COM_CHELSIO_SRIOV_NETDEVICE"]; got != id {
			t.Fatalf("%s: PCIDEVICE_INTEL_COM_CHELSIO_SRIOV_NETDEVICE = %q, want %s", pod, got, id)
		}
		netns := newPod(t)
		conf := e.conf(1, id, nil)
		if _, err := e.add(1, pod, netns, conf); err != nil {
			t.Fatalf("%s: ADD of %s: %v", pod, id, err)
		}
		t.Cleanup(func() {
			if err := e.del(1, pod, netns, conf); err != nil {
				t.Errorf("%s: DEL of %s: %v", pod, id, err)
			}
		})
		eventually(t, "the netdev of "+id+" gone from the node", dpWait, func() (bool, string) {
			_, ok := e.workerLink(1, id)
			return !ok, "still in worker 1"
		})
		held = append(held, id)
	}
	ledger := d.kubelet.Assignments()

	// SIGKILL: no cleanup, the socket stays.
	killed := d.dp
	if err := syscall.Kill(-killed.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.done
	if ws, ok := killed.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("chelsio-sriov-dp ended with %v, want killed by SIGKILL", killed.err)
	}
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the killed plugin's socket: %v, want it left behind", err)
	}
	d.wait(t, "kubelet sees the plugin's stream end", func(p map[string]*kubelettest.Plugin) bool { return p[res] != nil && p[res].Ended })
	if _, err := d.kubelet.Admit(ctx, "pod-early", "app", res, 1); err == nil || !strings.Contains(err.Error(), "no healthy devices present") {
		t.Errorf("Admit while the plugin is down: %v, want kubelet's refusal", err)
	}

	d.startDP(t, cfg, "--resource-prefix", "intel.com")
	d.wait(t, res+" registered again with 8 healthy VFs", func(p map[string]*kubelettest.Plugin) bool {
		return p[res] != nil && !p[res].Ended && listedHealth(res, all)(p)
	})
	if n := d.kubelet.Registrations(res); n != 2 {
		t.Errorf("%s registered %d times, want 2", res, n)
	}
	if diff := cmp.Diff(before, listingOf(d.kubelet, res)); diff != "" {
		t.Errorf("ListAndWatch after the restart mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ledger, d.kubelet.Assignments(), cmp.Comparer(func(a, b *pluginapi.ContainerAllocateResponse) bool {
		return cmp.Equal(a.Envs, b.Envs)
	})); diff != "" {
		t.Errorf("kubelet's ledger after the restart mismatch (-want +got):\n%s", diff)
	}
	for _, id := range held {
		if _, err := os.Stat(filepath.Join(d.infoDir, "intel.com-chelsio_sriov_netdevice-"+id+"-device.json")); err != nil {
			t.Errorf("device-info file of %s, in a pod: %v", id, err)
		}
	}

	// The 5 free VFs, and no more; a held one is refused by kubelet.
	free, err := d.kubelet.Admit(ctx, "pod-d", "app", res, 5)
	if err != nil {
		t.Fatalf("Admit of the 5 free VFs: %v", err)
	}
	for _, id := range free.IDs {
		if slices.Contains(held, id) {
			t.Errorf("pod-d got %s, which a pod holds", id)
		}
	}
	if _, err := d.kubelet.Admit(ctx, "pod-e", "app", res, 1); err == nil || !strings.Contains(err.Error(), "Requested: 1, Available: 0") {
		t.Errorf("Admit with every VF held: %v, want kubelet's refusal", err)
	}
	if _, err := d.kubelet.AdmitDevices(ctx, "pod-e", "app", res, held[0]); err == nil || !strings.Contains(err.Error(), `pod "pod-a"`) {
		t.Errorf("AdmitDevices of %s, held by pod-a: %v, want kubelet's refusal naming pod-a", held[0], err)
	}
	wantMetrics(t, "after the admissions", d.metrics(t), `chelsio_sriov_dp_allocated_devices_total{resource="intel.com/chelsio_sriov_netdevice"} 5`)

	// Asked directly, twice, for a VF that a pod holds: the plugin keeps no record
	// of allocations and answers both times, the same.
	r1, err1 := d.kubelet.Allocate(ctx, res, held[0])
	r2, err2 := d.kubelet.Allocate(ctx, res, held[0])
	if err1 != nil || err2 != nil {
		t.Fatalf("Allocate of %s twice: %v, %v", held[0], err1, err2)
	}
	if diff := cmp.Diff(r1.Envs, r2.Envs); diff != "" {
		t.Errorf("the two answers differ (-first +second):\n%s", diff)
	}
	select {
	case <-d.dp.done:
		t.Fatalf("the plugin exited after a VF was allocated twice: %v", d.dp.err)
	default:
	}
	d.wait(t, "the plugin still serves", func(p map[string]*kubelettest.Plugin) bool { return !p[res].Ended && listedHealth(res, all)(p) })
	for i, id := range held {
		pod := []string{"pod-a", "pod-b", "pod-c"}[i]
		if diff := cmp.Diff(ledger[i].IDs, []string{id}); diff != "" {
			t.Errorf("%s's VF mismatch (-want +got):\n%s", pod, diff)
		}
	}
}

// logLines returns the lines of the process's stderr that contain every one of want.
func (p *dpProc) logLines(want ...string) []string {
	var out []string
	for line := range strings.SplitSeq(p.stderr.String(), "\n") {
		all := true
		for _, w := range want {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// waitLogCount waits until the process has logged n lines that contain every one
// of want, and returns them.
func (p *dpProc) waitLogCount(t *testing.T, n int, want ...string) []string {
	t.Helper()
	var lines []string
	eventually(t, fmt.Sprintf("%d chelsio-sriov-dp log lines with %q", n, want), dpWait, func() (bool, string) {
		lines = p.logLines(want...)
		return len(lines) >= n, fmt.Sprintf("%d such lines; stderr:\n%s", len(lines), p.stderr.String())
	})
	return lines
}

// metrics reads /metrics of the running plugin, which listens in worker 1's
// namespace on the address it logged.
func (d *dpNode) metrics(t *testing.T) string {
	t.Helper()
	d.dp.waitLog(t, `msg="metrics and health"`)
	m := metricsAddrRE.FindStringSubmatch(d.dp.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.dp.stderr.String())
	}
	code, body := httpGetIn(t, d.workerNS(1), m[1], "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", code, body)
	}
	return body
}

// wantMetrics fails the test for each of want (a whole line: series and value)
// that /metrics lacks.
func wantMetrics(t *testing.T, when, body string, want ...string) {
	t.Helper()
	lines := strings.Split(body, "\n")
	for _, w := range want {
		if !slices.Contains(lines, w) {
			t.Errorf("%s: /metrics lacks the line %q", when, w)
		}
	}
}

// configMapVolume writes a config file as kubelet updates a ConfigMap volume: the
// data goes into a new timestamped directory, a ..data symlink is swapped to it by
// rename, and the old directory is removed; config.json is a symlink to
// ..data/config.json, made once.
type configMapVolume struct {
	dir string
	n   int
	cur string // the timestamped directory ..data points to
}

func (v *configMapVolume) write(t *testing.T, content string) {
	t.Helper()
	v.n++
	ts := filepath.Join(v.dir, fmt.Sprintf("..2026_01_01_00_00_%02d.%09d", v.n%60, v.n))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "config.json"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.cur == "" {
		if err := os.Symlink("..data/config.json", filepath.Join(v.dir, "config.json")); err != nil {
			t.Fatal(err)
		}
	} else if err := os.RemoveAll(v.cur); err != nil {
		t.Fatal(err)
	}
	v.cur = ts
}

// TestPrivilegedDPConfigReload replaces the config file under the running plugin
// with garbage of several kinds, then with a good config, both as a file replaced
// by rename and as a ConfigMap volume. Each garbage is refused with one log line
// that names the file and what is wrong; the running config keeps serving (its
// devices listed, pods admitted, nothing registered again) and /metrics says the
// change was refused. The good config is then applied.
func TestPrivilegedDPConfigReload(t *testing.T) {
	roottest.Require(t)
	pool := func(name string) string {
		return `{"resourceList": [{"resourceName": "` + name + `", "selectors": {"drivers": ["cxgb4vf"]}}]}`
	}
	garbage := []struct{ name, content, problem string }{
		{"YAML", "resourceList: [this is not JSON", "not valid JSON: line 1, column 1"},
		{"binary", "\x00\x01\xfe\xff{\n\n", "not valid JSON"},
		{"unknown key", `{"resourceList": [{"resourceName": "a", "selector": {"drivers": ["cxgb4vf"]}}]}`, `unknown key \"selector\" (did you mean \"selectors\"?)`},
		{"bad value", `{"resourceList": [{"resourceName": "a", "selectors": {"pfs": [7]}}]}`, "pfs"},
		{"empty", "", "the config is empty"},
		{"no pool", `{"resourceList": []}`, `\"resourceList\" is empty`},
	}
	for _, configMap := range []bool{false, true} {
		name := "file replaced by rename"
		if configMap {
			name = "ConfigMap volume"
		}
		t.Run(name, func(t *testing.T) {
			d := upDPNode(t, "--vfs", "8")
			dir := t.TempDir()
			cfg := filepath.Join(dir, "config.json")
			vol := &configMapVolume{dir: dir}
			write := func(content string) {
				if configMap {
					vol.write(t, content)
				} else {
					writeFileAtomic(t, cfg, content)
				}
			}
			write(pool("a"))
			d.startDP(t, cfg)
			all := d.vfHealth(nil)
			d.wait(t, "chelsio.com/a lists 8 VFs", listedHealth("chelsio.com/a", all))
			d.dp.waitLog(t, "config loaded", cfg)
			wantMetrics(t, "at start", d.metrics(t),
				`chelsio_sriov_dp_config_last_reload_successful 1`,
				`chelsio_sriov_dp_config_reloads_total{result="refused"} 0`)

			const refused = `level=ERROR msg="config change refused; keeping the running config"`
			ctx := context.Background()
			for i, g := range garbage {
				write(g.content)
				lines := d.dp.waitLogCount(t, i+1, refused)
				if line := lines[len(lines)-1]; !strings.Contains(line, cfg) || !strings.Contains(line, g.problem) {
					t.Errorf("%s: the refusal does not name the file %s and the problem %q:\n%s", g.name, cfg, g.problem, line)
				}
				d.wait(t, g.name+": chelsio.com/a still lists its 8 VFs", listedHealth("chelsio.com/a", all))
				if _, err := d.kubelet.Admit(ctx, fmt.Sprintf("pod-%d", i), "app", "chelsio.com/a", 1); err != nil {
					t.Errorf("%s: a pod asking for chelsio.com/a: %v", g.name, err)
				}
				if n := d.kubelet.Registrations("chelsio.com/a"); n != 1 {
					t.Errorf("%s: chelsio.com/a registered %d times, want 1", g.name, n)
				}
			}
			bad := len(garbage)
			if !configMap {
				if err := os.Remove(cfg); err != nil {
					t.Fatal(err)
				}
				bad++
				lines := d.dp.waitLogCount(t, bad, refused)
				if line := lines[len(lines)-1]; !strings.Contains(line, cfg) || !regexp.MustCompile(`gone|removed`).MatchString(line) {
					t.Errorf("file removed: the refusal does not name the file %s and say it is gone:\n%s", cfg, line)
				}
				d.wait(t, "file removed: chelsio.com/a still lists its 8 VFs", listedHealth("chelsio.com/a", all))

				// What cannot be read to the end, put in place by rename: refused at once,
				// and the plugin goes on answering kubelet (a kubelet restart).
				for _, sp := range []struct {
					name, problem string
					make          func(path string) error
				}{
					{"named pipe", "is not a regular file but a named pipe", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
					{"link to /dev/zero", "is not a regular file but a character device", func(p string) error { return os.Symlink("/dev/zero", p) }},
				} {
					tmp := filepath.Join(dir, ".tmp-special")
					if err := sp.make(tmp); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(tmp, cfg); err != nil {
						t.Fatal(err)
					}
					bad++
					lines := d.dp.waitLogCount(t, bad, refused)
					if line := lines[len(lines)-1]; !strings.Contains(line, cfg) || !strings.Contains(line, sp.problem) {
						t.Errorf("%s: the refusal does not name the file %s and the problem %q:\n%s", sp.name, cfg, sp.problem, line)
					}
					regs := d.kubelet.Registrations("chelsio.com/a")
					if err := d.kubelet.Restart(); err != nil {
						t.Fatal(err)
					}
					d.wait(t, sp.name+": chelsio.com/a registered again after a kubelet restart", listedHealth("chelsio.com/a", all))
					if n := d.kubelet.Registrations("chelsio.com/a"); n != regs+1 {
						t.Errorf("%s: chelsio.com/a registered %d times after a kubelet restart, want %d", sp.name, n, regs+1)
					}
				}
			}
			wantMetrics(t, "after the garbage", d.metrics(t),
				`chelsio_sriov_dp_config_last_reload_successful 0`,
				fmt.Sprintf(`chelsio_sriov_dp_config_reloads_total{result="refused"} %d`, bad),
				`chelsio_sriov_dp_config_reloads_total{result="applied"} 0`,
				fmt.Sprintf(`chelsio_sriov_dp_registrations_total{resource="chelsio.com/a"} %d`, d.kubelet.Registrations("chelsio.com/a")))

			write(pool("b"))
			d.wait(t, "chelsio.com/b lists 8 VFs", listedHealth("chelsio.com/b", all))
			d.dp.waitLog(t, "config reloaded", cfg)
			d.dp.waitLog(t, "resource no longer configured; stopping it", "chelsio.com/a")
			eventually(t, "chelsio.com/a no longer served", dpWait, func() (bool, string) {
				_, err := d.kubelet.Allocate(ctx, "chelsio.com/a", "0000:81:01.0")
				return err != nil, "Allocate on chelsio.com/a still succeeds"
			})
			// Events come in order: by now every write has been handled, once.
			if n := len(d.dp.logLines(refused)); n != bad {
				t.Errorf("%d refusals logged for %d bad files:\n%s", n, bad, strings.Join(d.dp.logLines(refused), "\n"))
			}
			wantMetrics(t, "after the good config", d.metrics(t),
				`chelsio_sriov_dp_config_last_reload_successful 1`,
				fmt.Sprintf(`chelsio_sriov_dp_config_reloads_total{result="refused"} %d`, bad),
				`chelsio_sriov_dp_config_reloads_total{result="applied"} 1`)
		})
	}
}

// TestDPInvalidConfigExits starts the binary with invalid configs: it exits 1 at
// once with one line that names the key. It needs no emulated node (nor root): the
// binary reads a sysfstree tree through --sysfs-root.
func TestDPInvalidConfigExits(t *testing.T) {
	dp := bin(t, "chelsio-sriov-dp")
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, config, prefix string
		want                 []string // in the one line
	}{
		{
			"unknown selector key", `{"resourceList": [{"resourceName": "x", "selectors": {"vendor": ["1425"]}}]}`, "",
			[]string{`resourceList[0] (x)`, `unknown key "vendor"`, `did you mean "vendors"`},
		},
		{
			"unknown pool key", `{"resourceList": [{"resourceName": "x", "resourcePrefx": "intel.com"}]}`, "",
			[]string{`unknown key "resourcePrefx"`, `"resourcePrefix"`},
		},
		{
			"bad value", `{"resourceList": [{"resourceName": "x", "selectors": {"pfs": [7]}}]}`, "",
			[]string{"pfs", "7"},
		},
		{
			"bad resource name", `{"resourceList": [{"resourceName": "has space"}]}`, "",
			[]string{`resourceName "has space"`},
		},
		{
			"key that cannot apply to Chelsio", `{"resourceList": [{"resourceName": "x", "selectors": {"isRdma": true}}]}`, "",
			[]string{"isRdma"},
		},
		{"empty resourceList", `{"resourceList": []}`, "", []string{`"resourceList" is empty`}},
		{"not JSON", `{"resourceList": [`, "", []string{"not valid JSON"}},
		{"bad --resource-prefix, no config file", "", "Intel.COM", []string{"--resource-prefix", `"Intel.COM"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := shortTempDir(t)
			cfg := filepath.Join(t.TempDir(), "config.json")
			if tt.config != "" {
				if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{"--config-file", cfg, "--sysfs-root", string(tree.Root), "--device-plugin-dir", dir, "--metrics-address", "", "--device-info-dir", ""}
			if tt.prefix != "" {
				args = append(args, "--resource-prefix", tt.prefix)
			}
			stdout, stderr, err := run(t, dp, args...)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1\nstderr:\n%s", err, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			line := strings.TrimSuffix(stderr, "\n")
			if line == "" || strings.Contains(line, "\n") {
				t.Fatalf("stderr is not one line:\n%s", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("error line lacks %q:\n%s", w, line)
				}
			}
			if tt.config != "" {
				if n := strings.Count(line, cfg); n != 1 {
					t.Errorf("error line names the config file %d times, want once:\n%s", n, line)
				}
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("the device-plugin dir holds %d entries after a refused start, want none", len(entries))
			}
		})
	}
}

// TestDPStaleSocketEvent has the plugin handle the event of its socket being renamed
// away while the socket is back at its path, as happens when it lags behind a
// kubelet that restarts twice in a row: it must keep serving that socket, not
// restart it. (A restart unlinks the live socket, since a listener's Close removes its
// path, which makes another such event, and so on without end: thousands of
// restarts and registrations a second.) It needs no emulated node (nor root).
func TestDPStaleSocketEvent(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2}})
	if err != nil {
		t.Fatal(err)
	}
	portsCarrier(t, tree)
	k := startKubelet(t)
	p := startProc(t, bin(t, "chelsio-sriov-dp"), "--sysfs-root", string(tree.Root), "--config-file", filepath.Join(t.TempDir(), "absent.json"),
		"--device-plugin-dir", k.Dir, "--metrics-address", "", "--device-info-dir", "")
	both := func(p map[string]*kubelettest.Plugin) bool {
		return p["chelsio.com/vf"] != nil && len(p["chelsio.com/vf"].Devices) == 2 && p["chelsio.com/vf-vfio"] != nil && p["chelsio.com/vf-vfio"].Lists > 0
	}
	waitKubelet(t, k, "both resources listed", both)
	vfSock, _ := k.Snapshot("chelsio.com/vf")
	sock := filepath.Join(k.Dir, vfSock.Endpoint)

	// Frozen, the plugin sees the rename only once the socket is back.
	pid := p.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "chelsio-sriov-dp stopped", dpWait, func() (bool, string) { return allThreadsStopped(pid) })
	renameErr := errors.Join(os.Rename(sock, sock+".away"), os.Rename(sock+".away", sock))
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if renameErr != nil {
		t.Fatal(renameErr)
	}
	// A real removal of the other socket: once it is registered again, the plugin has
	// handled the rename (events come in order).
	vfio, _ := k.Snapshot("chelsio.com/vf-vfio")
	if err := os.Remove(filepath.Join(k.Dir, vfio.Endpoint)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "chelsio.com/vf-vfio registered again", dpWait, func() (bool, string) {
		n := k.Registrations("chelsio.com/vf-vfio")
		return n >= 2, fmt.Sprintf("%d registrations", n)
	})
	waitKubelet(t, k, "both resources listed after the removal", both)
	if n := k.Registrations("chelsio.com/vf"); n != 1 {
		t.Errorf("chelsio.com/vf registered %d times, want 1: a stale event restarted its live socket", n)
	}
	if n := strings.Count(p.stderr.String(), "socket removed"); n != 1 {
		t.Errorf("the plugin logged %d socket removals, want 1 (vf-vfio's)", n)
	}
	if _, err := k.Allocate(context.Background(), "chelsio.com/vf", tree.Adapters[0].VFs[0][0].Addr.String()); err != nil {
		t.Errorf("Allocate on chelsio.com/vf: %v", err)
	}
}

// allThreadsStopped reports whether every thread of the process is stopped (state T
// in /proc/<pid>/task/<tid>/stat), and the states it found.
func allThreadsStopped(pid int) (bool, string) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false, err.Error()
	}
	var states []string
	stopped := true
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false, err.Error()
		}
		// pid (comm) state ...: comm may hold spaces, so look after the last ')'.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) == 0 {
			return false, "no state in " + string(b)
		}
		states = append(states, f[0])
		stopped = stopped && (f[0] == "T" || f[0] == "t")
	}
	return stopped, "thread states " + strings.Join(states, " ")
}

// portsCarrier gives every port netdev of a sysfstree tree carrier, as a cabled port
// has; sysfstree builds them without, which makes every VF unhealthy.
func portsCarrier(tb testing.TB, tree *sysfstree.Tree) {
	tb.Helper()
	for _, a := range tree.Adapters {
		for _, p := range a.Ports {
			if err := tree.SetNetdevAttr(p.Name, "carrier", "1"); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

var metricsAddrRE = regexp.MustCompile(`msg="metrics and health" address=(\S+)`)

// httpGetIn does GET path on addr from inside a network namespace: the connection
// is made there (on the locked thread of Do), the request is sent over it after.
func httpGetIn(t *testing.T, nsh ns.NetNS, addr, path string) (int, string) {
	t.Helper()
	var conn net.Conn
	if err := nsh.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		conn = c
		return err
	}); err != nil {
		t.Fatalf("connect to %s in %s: %v", addr, nsh.Path(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(body)
}

// TestPrivilegedDPMetrics reads /metrics, /healthz and /livez on the metrics address, in the
// worker's network namespace where the plugin runs.
func TestPrivilegedDPMetrics(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "8")
	d.startDP(t, "")
	d.wait(t, "8 healthy VFs", listedHealth("chelsio.com/vf", d.vfHealth(nil)))
	d.dp.waitLog(t, `msg="metrics and health"`)
	m := metricsAddrRE.FindStringSubmatch(d.dp.stderr.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", d.dp.stderr.String())
	}
	addr := m[1]
	w := d.workerNS(1)
	eventually(t, "/healthz 200", dpWait, func() (bool, string) {
		code, body := httpGetIn(t, w, addr, "/healthz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body)
	})
	if code, body := httpGetIn(t, w, addr, "/livez"); code != http.StatusOK {
		t.Errorf("/livez: %d %s", code, body)
	}
	if _, err := d.kubelet.Allocate(context.Background(), "chelsio.com/vf", "0000:81:01.0"); err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	code, body := httpGetIn(t, w, addr, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d\n%s", code, body)
	}
	for _, want := range []string{
		`chelsio_sriov_dp_devices{health="healthy",resource="chelsio.com/vf"} 8`,
		`chelsio_sriov_dp_devices{health="unhealthy",resource="chelsio.com/vf"} 0`,
		`chelsio_sriov_dp_devices{health="healthy",resource="chelsio.com/vf-vfio"} 0`,
		`chelsio_sriov_dp_registrations_total{resource="chelsio.com/vf"} 1`,
		`chelsio_sriov_dp_allocated_devices_total{resource="chelsio.com/vf"} 1`,
		`chelsio_sriov_dp_list_updates_total{resource="chelsio.com/vf"}`,
		`chelsio_sriov_dp_scan_duration_seconds_count`,
		`chelsio_sriov_dp_scan_errors_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

// BenchmarkPrivilegedDPStartRSS execs the built binary (as `make build` builds it)
// against a sysfstree tree of 256 VFs (four T62100-CR, 16 VFs on each PF) with the
// zero-config, and reports the time from exec to the test kubelet's first
// ListAndWatch of chelsio.com/vf with 256 devices (ms/start) and the process's
// VmRSS then (MiB/rss) and its peak VmHWM (MiB/hwm). Targets: 50 ms, 25 MiB.
func BenchmarkPrivilegedDPStartRSS(b *testing.B) {
	roottest.Require(b)
	binDir := b.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", binDir+"/", "github.com/chelsio-k8s/chelsio-sriov/cmd/chelsio-sriov-dp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build chelsio-sriov-dp: %v\n%s", err, out)
	}
	dp := filepath.Join(binDir, "chelsio-sriov-dp")
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree, err := sysfstree.Build(b.TempDir(), sysfstree.Options{}, a, a, a, a)
	if err != nil {
		b.Fatal(err)
	}
	portsCarrier(b, tree)
	absent := filepath.Join(b.TempDir(), "absent.json")
	infoDir := b.TempDir()
	var start time.Duration
	var rss, hwm float64
	b.ResetTimer()
	for range b.N {
		k, err := kubelettest.Start(shortTempDir(b))
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		p := startProc(b, dp, "--sysfs-root", string(tree.Root), "--config-file", absent, "--device-plugin-dir", k.Dir,
			"--metrics-address", "127.0.0.1:0", "--device-info-dir", infoDir)
		waitKubelet(b, k, "chelsio.com/vf lists 256 devices", func(pl map[string]*kubelettest.Plugin) bool {
			v := pl["chelsio.com/vf"]
			return v != nil && len(v.Devices) == 256
		})
		start += time.Since(t0)
		r, h := procMemMiB(b, p.cmd.Process.Pid)
		rss += r
		hwm += h
		p.stop(b)
		k.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(start.Microseconds())/1000/float64(b.N), "ms/start")
	b.ReportMetric(rss/float64(b.N), "MiB/rss")
	b.ReportMetric(hwm/float64(b.N), "MiB/hwm")
}

// procMemMiB reads VmRSS and VmHWM of a process from /proc/<pid>/status, in MiB.
func procMemMiB(tb testing.TB, pid int) (rss, hwm float64) {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	kib := func(key string) float64 {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, key+":"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == "kB" {
					n, err := strconv.ParseFloat(f[0], 64)
					if err == nil {
						return n
					}
				}
			}
		}
		tb.Fatalf("/proc/%d/status has no %s", pid, key)
		return 0
	}
	return kib("VmRSS") / 1024, kib("VmHWM") / 1024
}

// TestPrivilegedDPVFsGoAndComeBack writes sriov_numvfs on the emulated node, which
// removes and creates VFs as the kernel does: the VFs leave kubelet's list and come
// back, healthy, with no restart of the plugin.
func TestPrivilegedDPVFsGoAndComeBack(t *testing.T) {
	roottest.Require(t)
	d := upDPNode(t, "--vfs", "4")
	d.startDP(t, "")
	all := d.vfHealth(nil)
	d.wait(t, "4 healthy VFs", listedHealth("chelsio.com/vf", all))
	numvfs := filepath.Join(d.worker.Sysfs, "bus/pci/devices/0000:81:00.0/sriov_numvfs")
	writeFileAtomic(t, numvfs, "0\n")
	d.wait(t, "no VF listed", listedHealth("chelsio.com/vf", map[string]string{}))
	d.dp.waitLog(t, "device removed")
	// The kernel answers the write when it is done; the emulator a moment later.
	d.waitLog(t, "VFs and mgmt netdev removed")
	writeFileAtomic(t, numvfs, "4\n")
	d.wait(t, "the 4 VFs back, healthy", listedHealth("chelsio.com/vf", all))
	d.dp.waitLog(t, "device added")
}
