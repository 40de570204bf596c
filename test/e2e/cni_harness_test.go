package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cni"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// seedNADConfig is spec.config of the reference NetworkAttachmentDefinition
// (sriov-net1), verbatim but for "type" and, since tests move packets, an RFC 5737
// subnet instead of the reference's public 102.100.2.0/24.
const seedNADConfig = `{
    "type": "chelsio-sriov",
    "cniVersion": "0.3.1",
    "name": "sriov-network",
    "ipam": {
      "type": "host-local",
      "subnet": "198.51.100.0/24",
      "routes": [{
        "dst": "0.0.0.0/0"
      }],
      "gateway": "198.51.100.1"
    }
  }`

// cniEnv runs the plugin through libcni, as CRI-O, containerd and Multus do, on an
// emulated node: each worker has a CNI_PATH whose chelsio-sriov runs the real
// plugin inside the worker (`chelsio-vf emulate exec`), next to the real host-local.
type cniEnv struct {
	t        *testing.T
	node     *emuNode
	wrapDirs map[int]string
	cacheDir string
	dataDirs map[int]string // the plugin's dataDir on each worker (each node has its own)
	ipamDir  string         // host-local's dataDir
}

func newCNIEnv(t *testing.T, node *emuNode) *cniEnv {
	t.Helper()
	e := &cniEnv{t: t, node: node, wrapDirs: map[int]string{}, dataDirs: map[int]string{}, cacheDir: t.TempDir(), ipamDir: t.TempDir()}
	plugin := bin(t, "chelsio-sriov")
	for w := 1; w <= 2; w++ {
		d := t.TempDir()
		// NODENAME: the node's name, as a node's runtime has it for IPAM
		// plugins (whereabouts reads it).
		script := fmt.Sprintf("#!/bin/sh\nNODENAME=%s exec %s emulate exec --name %s --run-dir %s --worker %d -- %s \"$@\"\n",
			node.netns(w), node.cvf, node.name, node.runDir, w, plugin)
		if err := os.WriteFile(filepath.Join(d, "chelsio-sriov"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		e.wrapDirs[w] = d
		e.dataDirs[w] = t.TempDir()
	}
	return e
}

// conf returns the seed's NAD config with the worker's state dirs, Multus'
// deviceID and pciBusID, and the given keys merged in (nil values delete a key).
func (e *cniEnv) conf(worker int, deviceID string, over map[string]any) []byte {
	e.t.Helper()
	return e.confOf([]byte(seedNADConfig), worker, deviceID, over)
}

// confOf is conf with another NAD config than the seed's; host-local's dataDir
// is set only when its IPAM is host-local.
func (e *cniEnv) confOf(nad []byte, worker int, deviceID string, over map[string]any) []byte {
	e.t.Helper()
	var m map[string]any
	if err := json.Unmarshal(nad, &m); err != nil {
		e.t.Fatal(err)
	}
	if ipam, _ := m["ipam"].(map[string]any); ipam["type"] == "host-local" {
		ipam["dataDir"] = e.ipamDir
	}
	m["dataDir"] = e.dataDirs[worker]
	if deviceID != "" {
		m["deviceID"], m["pciBusID"] = deviceID, deviceID
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// newPlugin is cni.New for the plugin run in process on sysfs root, with the
// temporary directory allowed for dataDir and logFile as TestMain allows it to
// the binary.
func newPlugin(root sysfs.Root) *cni.Plugin {
	p := cni.New(root, io.Discard)
	p.LogDirs = append(p.LogDirs, os.TempDir())
	p.DataDirs = append(p.DataDirs, os.TempDir())
	return p
}

func (e *cniEnv) cni(worker int) *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir([]string{e.wrapDirs[worker], binDir}, e.cacheDir, nil)
}

func (e *cniEnv) rt(containerID string, pod ns.NetNS) *libcni.RuntimeConf {
	path := ""
	if pod != nil {
		path = pod.Path()
	}
	return &libcni.RuntimeConf{
		ContainerID: containerID, NetNS: path, IfName: "net1",
		Args: [][2]string{{"IgnoreUnknown", "true"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", containerID}},
	}
}

func (e *cniEnv) plugin(conf []byte) *libcni.PluginConfig {
	e.t.Helper()
	pc, err := libcni.NetworkPluginConfFromBytes(conf)
	if err != nil {
		e.t.Fatal(err)
	}
	return pc
}

func ctx30(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (e *cniEnv) add(worker int, containerID string, pod ns.NetNS, conf []byte) (types.Result, error) {
	return e.cni(worker).AddNetwork(ctx30(e.t), e.plugin(conf), e.rt(containerID, pod))
}

func (e *cniEnv) del(worker int, containerID string, pod ns.NetNS, conf []byte) error {
	return e.cni(worker).DelNetwork(ctx30(e.t), e.plugin(conf), e.rt(containerID, pod))
}

func (e *cniEnv) check(worker int, containerID string, pod ns.NetNS, conf []byte) error {
	return e.cni(worker).CheckNetwork(ctx30(e.t), e.plugin(conf), e.rt(containerID, pod))
}

// leases lists host-local's allocations (one file per IP) of the test's network.
func (e *cniEnv) leases() []string {
	entries, _ := os.ReadDir(filepath.Join(e.ipamDir, "sriov-network"))
	var out []string
	for _, en := range entries {
		if strings.Count(en.Name(), ".") == 3 {
			out = append(out, en.Name())
		}
	}
	return out
}

// newPod makes a pod network namespace that the test owns and removes.
func newPod(t *testing.T) ns.NetNS {
	t.Helper()
	pod, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = roottest.RemoveNetns(pod)
	})
	return pod
}

// hostLink is a VF netdev's state in its worker's namespace.
type hostLink struct {
	Name string
	MTU  int
	MAC  string
}

// workerLink reads the VF's netdev in the worker namespace through sysfs (the
// emulated tree) and netlink.
func (e *cniEnv) workerLink(w int, addr string) (hostLink, bool) {
	e.t.Helper()
	nd, ok := netdevOf(e.node.list(w), addr)
	if !ok || nd == "" {
		return hostLink{}, false
	}
	var hl hostLink
	wn, err := ns.GetNS(filepath.Join("/run/netns", e.node.netns(w)))
	if err != nil {
		e.t.Fatal(err)
	}
	defer wn.Close()
	err = wn.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(nd)
		if err != nil {
			return err
		}
		hl = hostLink{Name: l.Attrs().Name, MTU: l.Attrs().MTU, MAC: l.Attrs().HardwareAddr.String()}
		return nil
	})
	if err != nil {
		return hostLink{}, false
	}
	return hl, true
}

// waitWorkerLink waits until the VF's netdev is back in the worker's sysfs (the
// emulated tree follows netlink events, a few milliseconds late).
func (e *cniEnv) waitWorkerLink(w int, addr string) hostLink {
	e.t.Helper()
	var hl hostLink
	eventually(e.t, "VF "+addr+" back in worker "+string(rune('0'+w)), 5*time.Second, func() (bool, string) {
		var ok bool
		hl, ok = e.workerLink(w, addr)
		return ok, "not in the worker's sysfs"
	})
	return hl
}

// podLink reads the pod's interface.
func podLink(t *testing.T, pod ns.NetNS, name string) (netlink.Link, []netlink.Addr, error) {
	t.Helper()
	var l netlink.Link
	var addrs []netlink.Addr
	err := pod.Do(func(ns.NetNS) error {
		var err error
		if l, err = netlink.LinkByName(name); err != nil {
			return err
		}
		addrs, err = netlink.AddrList(l, netlink.FAMILY_V4)
		return err
	})
	return l, addrs, err
}

// vfHome is a VF netdev in its worker namespace: name, MTU, MAC and admin state.
type vfHome struct {
	Name string
	MTU  int
	MAC  string
	Up   bool
}

// listTry is emuNode.list for test t that returns the failure instead of ending the
// test: a list can catch the watcher halfway through rewriting a netdev's attribute
// files (an empty dev_port), so callers retry.
func (n *emuNode) listTry(t *testing.T, w int) ([]listed, error) {
	t.Helper()
	out, errb, err := run(t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", strconv.Itoa(w), "--", n.cvf, "list", "--json")
	if err != nil {
		return nil, fmt.Errorf("list: %w: %s", err, strings.TrimSpace(errb))
	}
	var l []listed
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("list --json: %w", err)
	}
	return l, nil
}

// homeTry reads the VF's netdev in worker w (sysfs of the emulated tree, then
// netlink); found is false when the tree lists no netdev for the VF.
func (e *cniEnv) homeTry(t *testing.T, w int, addr string) (vfHome, bool, error) {
	t.Helper()
	l, err := e.node.listTry(t, w)
	if err != nil {
		return vfHome{}, false, err
	}
	nd, ok := netdevOf(l, addr)
	if !ok {
		return vfHome{}, false, fmt.Errorf("VF %s is not listed by worker %d", addr, w)
	}
	if nd == "" {
		return vfHome{}, false, nil
	}
	wn, err := ns.GetNS(filepath.Join("/run/netns", e.node.netns(w)))
	if err != nil {
		return vfHome{}, false, err
	}
	defer wn.Close()
	h, err := linkIn(t, wn, nd)
	if err != nil {
		// Listed under a name netlink no longer knows: caught mid-rename.
		return vfHome{}, false, err
	}
	return h, true, nil
}

// linkIn reads a link of namespace n by name.
func linkIn(t *testing.T, n ns.NetNS, name string) (vfHome, error) {
	t.Helper()
	var h vfHome
	err := n.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		a := l.Attrs()
		h = vfHome{Name: a.Name, MTU: a.MTU, MAC: a.HardwareAddr.String(), Up: a.Flags&net.FlagUp != 0}
		return nil
	})
	return h, err
}

// home is homeTry that retries transient failures for up to 3 s and requires the
// VF to be in its worker.
func (e *cniEnv) home(t *testing.T, w int, addr string) vfHome {
	t.Helper()
	var h vfHome
	eventually(t, fmt.Sprintf("VF %s in worker %d", addr, w), 3*time.Second, func() (bool, string) {
		var ok bool
		var err error
		h, ok, err = e.homeTry(t, w, addr)
		switch {
		case err != nil:
			return false, err.Error()
		case !ok:
			return false, "the tree lists no netdev for it"
		}
		return true, ""
	})
	return h
}

// waitHome waits until the VF's netdev is in worker w as want says (name, MTU, MAC;
// and the admin state if checkUp), and fails with the last difference.
func (e *cniEnv) waitHome(t *testing.T, w int, addr string, want vfHome, checkUp bool) vfHome {
	t.Helper()
	var got vfHome
	eventually(t, fmt.Sprintf("VF %s back in worker %d as before", addr, w), 6*time.Second, func() (bool, string) {
		h, ok, err := e.homeTry(t, w, addr)
		switch {
		case err != nil:
			return false, err.Error()
		case !ok:
			return false, "not in the worker's sysfs"
		}
		got = h
		if !checkUp {
			h.Up = want.Up
		}
		if d := cmp.Diff(want, h); d != "" {
			return false, "mismatch (-want +got):\n" + d
		}
		return true, ""
	})
	return got
}

// homes reads every VF of worker w (for "nothing else touched").
func (e *cniEnv) homes(t *testing.T, w int) map[string]vfHome {
	t.Helper()
	var l []listed
	eventually(t, fmt.Sprintf("list worker %d", w), 3*time.Second, func() (bool, string) {
		var err error
		l, err = e.node.listTry(t, w)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	out := map[string]vfHome{}
	for _, v := range l {
		if v.Netdev != "" {
			out[v.PCIAddress] = e.home(t, w, v.PCIAddress)
		}
	}
	return out
}

// stateFiles lists what the plugin's dataDir of worker w holds in attachments/ and
// vfs/ (the per-attachment and per-VF state).
func (e *cniEnv) stateFiles(t *testing.T, w int) []string {
	t.Helper()
	var out []string
	for _, d := range []string{"attachments", "vfs"} {
		entries, err := os.ReadDir(filepath.Join(e.dataDirs[w], d))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, en := range entries {
			out = append(out, d+"/"+en.Name())
		}
	}
	return out
}

// filesUnder lists every entry under dir that is not a directory.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// leaseOwners maps each host-local lease of the test's network to the container
// that holds it.
func (e *cniEnv) leaseOwners(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ip := range e.leases() {
		b, err := os.ReadFile(filepath.Join(e.ipamDir, "sriov-network", ip))
		if err != nil {
			t.Fatal(err)
		}
		id, _, _ := strings.Cut(string(b), "\r\n")
		out[ip] = strings.TrimSpace(id)
	}
	return out
}

// confList wraps a plugin config into a network config list of the given version,
// as CRI-O and containerd load it (STATUS and GC work on lists).
func (e *cniEnv) confList(t *testing.T, cniVersion string, conf []byte) *libcni.NetworkConfigList {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(conf, &p); err != nil {
		t.Fatal(err)
	}
	delete(p, "cniVersion")
	delete(p, "name")
	b, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": "sriov-network", "plugins": []any{p}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := libcni.NetworkConfFromBytes(b)
	if err != nil {
		t.Fatalf("conflist: %v\n%s", err, b)
	}
	return l
}

// podIface is what a pod sees of its interface: MTU, MAC, IPv4 addresses, up.
type podIface struct {
	MTU   int
	MAC   string
	Addrs []string
	Up    bool
}

// podIfaceOf reads the pod's interface; ok is false when it has none of that name.
func podIfaceOf(t *testing.T, pod ns.NetNS, name string) (podIface, bool) {
	t.Helper()
	l, addrs, err := podLink(t, pod, name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return podIface{}, false
		}
		t.Fatalf("read %s in the pod: %v", name, err)
	}
	pi := podIface{MTU: l.Attrs().MTU, MAC: l.Attrs().HardwareAddr.String(), Up: l.Attrs().Flags&net.FlagUp != 0}
	for _, a := range addrs {
		pi.Addrs = append(pi.Addrs, a.IPNet.String())
	}
	return pi, true
}

// rawExec runs the plugin of worker w as a runtime would but without libcni's
// checks, and returns its stdout.
func (e *cniEnv) rawExec(t *testing.T, w int, command, containerID, ifName string, pod ns.NetNS, conf []byte) ([]byte, error) {
	t.Helper()
	path := ""
	if pod != nil {
		path = pod.Path()
	}
	args := &invoke.Args{
		Command: command, ContainerID: containerID, NetNS: path, IfName: ifName,
		PluginArgsStr: "IgnoreUnknown=true", Path: e.wrapDirs[w] + string(os.PathListSeparator) + binDir,
	}
	return (&invoke.RawExec{Stderr: io.Discard}).ExecPlugin(ctx30(t), filepath.Join(e.wrapDirs[w], "chelsio-sriov"), conf, args.AsEnv())
}

// setPodLink changes the link called name of a namespace (a pod's, or a worker's) with f.
func setPodLink(t *testing.T, pod ns.NetNS, name string, f func(l netlink.Link) error) {
	t.Helper()
	err := pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		return f(l)
	})
	if err != nil {
		t.Fatalf("change %s in the pod: %v", name, err)
	}
}

// pfConfig reads the PF-side settings of the VF (vlan, MAC, rate, link state) as
// the plugin sees them on worker w.
func (e *cniEnv) pfConfig(t *testing.T, w int, addr string) vf.VFConfig {
	t.Helper()
	root := sysfs.Root(filepath.Join(e.node.runDir, e.node.name, "w"+strconv.Itoa(w), "sys"))
	v, err := vf.LookupVF(root, vf.MustParsePCIAddr(addr), vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := vf.NewMgmt(root).VFConfig(v.MgmtNetdev, v.VFIndex)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// assertNothingHeld checks what a refused ADD leaves: worker 1's VFs as before,
// no net1 in the pod, no lease.
func assertNothingHeld(t *testing.T, e *cniEnv, pod ns.NetNS, before map[string]vfHome) {
	t.Helper()
	if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
		t.Errorf("the worker's VFs changed (-before +after):\n%s", diff)
	}
	if _, ok := podIfaceOf(t, pod, "net1"); ok {
		t.Error("the pod has a net1")
	}
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases: %v", l)
	}
}

// listenIn listens on the TCP address addr in the namespace n, until the test
// ends.
func listenIn(t *testing.T, n ns.NetNS, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := n.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
