package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/kubelettest"
	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// setup runs `chelsio-vf setup` on worker w of the node.
func (n *emuNode) setup(w int, args ...string) (string, string, error) {
	n.t.Helper()
	// No kubelet of the host's: a test that wants one passes its stand-in's socket,
	// which, given later, wins.
	return run(n.t, n.cvf, append([]string{"emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", strconv.Itoa(w), "--", n.cvf, "setup", "--pod-resources-socket="}, args...)...)
}

// treeFile is a file of worker w's sysfs tree.
func (n *emuNode) treeFile(w int, rel string) string {
	return filepath.Join(n.runDir, n.name, "w"+strconv.Itoa(w), "sys", rel)
}

// onPF0 returns the VFs of PF0 that list shows on worker w.
func (n *emuNode) onPF0(w int) []listed {
	var out []listed
	for _, v := range n.list(w) {
		if v.PF == "0000:81:00.0" {
			out = append(out, v)
		}
	}
	return out
}

func (n *emuNode) mtuOf(w int, netdev string) int {
	b, err := os.ReadFile(n.treeFile(w, "class/net/"+netdev+"/mtu"))
	if err != nil {
		return -1
	}
	m, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return m
}

func TestPrivilegedSetupEmulatedNode(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "8")

	wantVFs := func(count, mtu int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d VFs on PF0 at mtu %d", count, mtu), 10*time.Second, func() (bool, string) {
			l := n.onPF0(1)
			if len(l) != count {
				return false, fmt.Sprintf("%d VFs: %+v", len(l), l)
			}
			for _, v := range l {
				if v.Netdev == "" || v.Driver != "cxgb4vf" || (count > 0 && v.MgmtNetdev != "mgmtpf1,0") {
					return false, fmt.Sprintf("VF %+v", v)
				}
				if mtu != 0 && n.mtuOf(1, v.Netdev) != mtu {
					return false, fmt.Sprintf("%s at mtu %d", v.Netdev, n.mtuOf(1, v.Netdev))
				}
			}
			return true, ""
		})
	}

	// 8 -> 4 goes through 0.
	out, errb, err := n.setup(1, "--pf", "0", "--vfs", "4", "--mtu", "9000")
	if err != nil {
		t.Fatalf("setup --vfs 4: %v\n%s%s", err, out, errb)
	}
	if !strings.Contains(out, `write "0"`) || !strings.Contains(out, `write "4"`) {
		t.Errorf("setup 8 -> 4 did not write 0 then 4:\n%s", out)
	}
	wantVFs(4, 9000)
	// The emulated tree follows the netlink change a few milliseconds later.
	eventually(t, "port enp129s0f4 at mtu 9000", 5*time.Second, func() (bool, string) {
		m := n.mtuOf(1, "enp129s0f4")
		return m == 9000, fmt.Sprintf("mtu %d", m)
	})
	// Idempotent.
	out = mustRun(t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", "1", "--", n.cvf, "setup", "--pf", "0", "--vfs", "4", "--mtu", "9000")
	if !strings.Contains(out, "already 4 VFs") || strings.Contains(out, "write ") {
		t.Errorf("second setup --vfs 4 is not a no-op:\n%s", out)
	}
	// Binding is real-only: on the emulated node only its dry run is checked.
	out = mustRun(t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", "1", "--", n.cvf, "setup", "--pf", "0", "--vfs", "4", "--driver", "vfio-pci", "--dry-run")
	if !strings.Contains(out, `would write "vfio-pci" to /sys/bus/pci/devices/0000:81:01.0/driver_override`) &&
		!strings.Contains(out, `/bus/pci/devices/0000:81:01.0/driver_override`) {
		t.Errorf("dry run to vfio-pci lacks the driver_override write:\n%s", out)
	}

	// -> 0 -> 8.
	if out, errb, err := n.setup(1, "--vfs", "0"); err != nil {
		t.Fatalf("setup --vfs 0: %v\n%s%s", err, out, errb)
	}
	wantVFs(0, 0)
	if out, errb, err := n.setup(1, "--vfs", "8", "--mtu", "9000"); err != nil {
		t.Fatalf("setup --vfs 8: %v\n%s%s", err, out, errb)
	}
	wantVFs(8, 9000)
	// Worker 2 still has its 8 VFs.
	if l := n.onPF0(2); len(l) != 8 {
		t.Errorf("worker 2: %d VFs on PF0, want 8", len(l))
	}

	// A bad PF.
	if _, errb, err := n.setup(1, "--pf", "4", "--vfs", "2"); err == nil || !strings.Contains(errb, "PF4 has no SR-IOV") {
		t.Errorf("setup --pf 4: err=%v stderr=%q, want 'PF4 has no SR-IOV'", err, errb)
	}

	// PF4 down: remove its port netdev entries from the tree.
	ports, _ := filepath.Glob(n.treeFile(1, "devices/*/*/0000:81:00.4/net"))
	for _, p := range ports {
		if err := os.Rename(p, p+".off"); err != nil {
			t.Fatal(err)
		}
	}
	if len(ports) != 1 {
		t.Fatalf("PF4 net dirs: %v", ports)
	}
	_, errb, err = n.setup(1, "--vfs", "2")
	if err == nil || !strings.Contains(errb, "PF4 0000:81:00.4 is not up: load cxgb4 and bring its ports up first") {
		t.Errorf("setup with PF4 down: err=%v stderr=%q", err, errb)
	}
	if l := n.onPF0(1); len(l) != 8 {
		t.Errorf("setup with PF4 down changed the VFs: %d on PF0", len(l))
	}
	// The emulated kernel refuses too: the write does not take.
	numvfs := n.treeFile(1, "bus/pci/devices/0000:81:00.0/sriov_numvfs")
	if err := os.WriteFile(numvfs, []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "refused write reverts", 5*time.Second, func() (bool, string) {
		b, _ := os.ReadFile(numvfs)
		return strings.TrimSpace(string(b)) == "8", string(b)
	})
	n.waitLog(t, "EOPNOTSUPP")
	for _, p := range ports {
		if err := os.Rename(p+".off", p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPrivilegedEmulateNumVFsRefused(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "8")
	numvfs := n.treeFile(1, "bus/pci/devices/0000:81:00.0/sriov_numvfs")
	for _, tc := range []struct{ write, log string }{
		{"20", "ERANGE"},
		{"4", "EBUSY"},
	} {
		if err := os.WriteFile(numvfs, []byte(tc.write), 0o644); err != nil {
			t.Fatal(err)
		}
		eventually(t, "write of "+tc.write+" reverts", 5*time.Second, func() (bool, string) {
			b, _ := os.ReadFile(numvfs)
			return strings.TrimSpace(string(b)) == "8", string(b)
		})
		n.waitLog(t, tc.log)
		if l := n.onPF0(1); len(l) != 8 {
			t.Errorf("after the refused write of %s: %d VFs on PF0, want 8", tc.write, len(l))
		}
	}
}

// TestPrivilegedSetupAsksKubelet: a VF that only kubelet knows is held (a DPDK
// pod's, with no CNI attachment) keeps `chelsio-vf setup --vfs 1` from removing
// it, naming the pod; once kubelet lists it no more, setup proceeds.
func TestPrivilegedSetupAsksKubelet(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	kubelet, err := kubelettest.StartPodResources(filepath.Join(t.TempDir(), "pod-resources.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer kubelet.Close()
	const addr = "0000:81:01.4"
	kubelet.Set(kubelettest.PodDevices{Namespace: "dpdk", Name: "l3fwd-0", Containers: map[string]map[string][]string{
		"fwd": {"chelsio.com/vf_vfio": {addr}},
	}})
	state := t.TempDir() // no CNI attachment anywhere
	out, errb, err := node.setup(1, "--pf", "0", "--vfs", "1", "--cni-state-dir", state, "--pod-resources-socket", kubelet.Socket)
	if err == nil {
		t.Fatalf("setup --vfs 1 with kubelet's pod holding %s succeeded:\n%s", addr, out)
	}
	for _, w := range []string{addr + ": pod dpdk/l3fwd-0 (kubelet)", "drain", "--force"} {
		if !strings.Contains(errb, w) {
			t.Errorf("setup's refusal does not name %q:\n%s", w, errb)
		}
	}
	if got := len(node.onPF0(1)); got != 2 {
		t.Errorf("%d VFs on PF0 after the refusal, want 2", got)
	}
	kubelet.Set()
	if out, errb, err := node.setup(1, "--pf", "0", "--vfs", "1", "--cni-state-dir", state, "--pod-resources-socket", kubelet.Socket); err != nil {
		t.Fatalf("setup --vfs 1 once kubelet lists no pod: %v\n%s%s", err, out, errb)
	}
	if got := len(node.onPF0(1)); got != 1 {
		t.Errorf("%d VFs on PF0, want 1", got)
	}
}

// TestPrivilegedSetupKeepsPodsVFs: on the emulated node, with a pod holding a VF
// through the real CNI plugin, `chelsio-vf setup --vfs 1` (which would remove every
// VF of the PF, as cxgb4 goes through 0) is refused naming the pod, and the pod
// keeps its VF; `setup --mtu 9000` alone changes no VF count.
func TestPrivilegedSetupKeepsPodsVFs(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	e := newCNIEnv(t, node)
	const addr = "0000:81:01.0"
	conf := e.conf(1, addr, map[string]any{"cniVersion": "1.0.0"})
	pod := newPod(t)
	if _, err := e.add(1, "pod-held", pod, conf); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	before := len(node.list(1))
	out, errb, err := node.setup(1, "--pf", "0", "--vfs", "1", "--cni-state-dir", e.dataDirs[1])
	if err == nil {
		t.Fatalf("setup --vfs 1 with a pod holding %s succeeded:\n%s", addr, out)
	}
	for _, w := range []string{addr, "pod default/pod-held", "drain", "--force"} {
		if !strings.Contains(errb, w) {
			t.Errorf("setup's refusal does not name %q:\n%s", w, errb)
		}
	}
	if _, ok := podIfaceOf(t, pod, "net1"); !ok {
		t.Error("the pod lost its VF")
	}
	if got := len(node.list(1)); got != before {
		t.Errorf("%d VFs after the refusal, want %d", got, before)
	}
	if out, errb, err := node.setup(1, "--mtu", "9000", "--cni-state-dir", e.dataDirs[1]); err != nil {
		t.Fatalf("setup --mtu 9000: %v\n%s%s", err, out, errb)
	}
	if got := len(node.list(1)); got != before {
		t.Errorf("%d VFs after setup --mtu 9000, want %d", got, before)
	}
	if _, ok := podIfaceOf(t, pod, "net1"); !ok {
		t.Error("the pod lost its VF to setup --mtu 9000")
	}
	if err := e.del(1, "pod-held", pod, conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
}
