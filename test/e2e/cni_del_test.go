package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// The DEL matrix. Each case ADDs (or not) through libcni and the real binary on an
// emulated node with MTU 1500 VFs, asking for MTU 9000 and a MAC so that a missed
// restoration shows, then DELs; afterwards the VF must be back in its worker with
// the name, MTU and MAC it had before the ADD, its PF-side settings (a VLAN and the
// MAC are set through the PF) as before, its lease freed and no state left.

const (
	delVF  = "0000:81:01.0"
	delMAC = "0a:58:c6:33:64:21"
)

// delConf is the seed NAD at cniVersion 1.0.0 (libcni passes prevResult to DEL)
// with mtu 9000, a MAC and VLAN 100.
func delConf(e *cniEnv, addr, mac string) []byte {
	return e.conf(1, addr, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": mac, "vlan": 100})
}

// delEnv brings up a node with 2 VFs per PF and returns its CNI environment, and
// the DEL matrix's VF as it is before any ADD: its netdev and PF-side settings.
func delEnv(t *testing.T) (*cniEnv, vfHome, vf.VFConfig) {
	t.Helper()
	e := newCNIEnv(t, upNode(t, "--vfs", "2"))
	return e, e.home(t, 1, delVF), e.pfConfig(t, 1, delVF)
}

// addOK runs ADD through libcni and checks that the pod got net1 as asked.
func addOK(t *testing.T, e *cniEnv, containerID string, pod ns.NetNS, conf []byte, mtu int, mac string) podIface {
	t.Helper()
	if _, err := e.add(1, containerID, pod, conf); err != nil {
		t.Fatalf("ADD %s: %v", containerID, err)
	}
	pi, ok := podIfaceOf(t, pod, "net1")
	if !ok {
		t.Fatalf("ADD %s: the pod has no net1", containerID)
	}
	if pi.MTU != mtu || pi.MAC != mac || !pi.Up || len(pi.Addrs) != 1 {
		t.Fatalf("ADD %s: net1 = %+v, want MTU %d, MAC %s, up, one address", containerID, pi, mtu, mac)
	}
	return pi
}

// delReleased runs DEL of containerID through libcni on worker 1, which must
// succeed and free addr (assertReleased).
func delReleased(t *testing.T, e *cniEnv, containerID string, pod ns.NetNS, conf []byte, addr string, before vfHome, beforePF vf.VFConfig) {
	t.Helper()
	if err := e.del(1, containerID, pod, conf); err != nil {
		t.Fatalf("DEL of %s: %v", containerID, err)
	}
	assertReleased(t, e, addr, before, &beforePF)
}

// assertReleased checks what every DEL must leave: the VF in worker 1 as before
// the ADD (name, MTU, MAC; PF-side settings unless beforePF is nil), no lease, no
// state file.
func assertReleased(t *testing.T, e *cniEnv, addr string, before vfHome, beforePF *vf.VFConfig) {
	t.Helper()
	if beforePF != nil {
		if diff := cmp.Diff(*beforePF, e.pfConfig(t, 1, addr)); diff != "" {
			t.Errorf("PF-side VF settings mismatch (-before ADD +now):\n%s", diff)
		}
	}
	assertFreed(t, e, nil)
	e.waitHome(t, 1, addr, before, false)
}

// serves checks that the VF serves one more pod: ADD with conf (MTU 9000 and mac
// asked for) and DEL work, and leave the VF as before and nothing behind.
func serves(t *testing.T, e *cniEnv, addr string, conf []byte, mac string, before vfHome, beforePF vf.VFConfig) {
	t.Helper()
	pod := newPod(t)
	addOK(t, e, "pod-next", pod, conf, 9000, mac)
	delReleased(t, e, "pod-next", pod, conf, addr, before, beforePF)
	assertFreed(t, e, pod)
}

// assertFreed checks what DEL must leave whatever became of the VF: no lease, no
// state file in worker 1's dataDir, and no net1 in the pod (unless pod is nil).
func assertFreed(t *testing.T, e *cniEnv, pod ns.NetNS) {
	t.Helper()
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left: %v", l)
	}
	if f := e.stateFiles(t, 1); len(f) != 0 {
		t.Errorf("state files left: %v", f)
	}
	if pod != nil {
		if _, ok := podIfaceOf(t, pod, "net1"); ok {
			t.Error("net1 still in the pod")
		}
	}
}

// TestPrivilegedCNIDelRepeated: a second and a third DEL succeed and change nothing.
func TestPrivilegedCNIDelRepeated(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	conf := delConf(e, delVF, delMAC)
	pod := newPod(t)
	addOK(t, e, "pod-rep", pod, conf, 9000, delMAC)

	delReleased(t, e, "pod-rep", pod, conf, delVF, before, beforePF)
	after := e.homes(t, 1)
	for i := 2; i <= 3; i++ {
		if err := e.del(1, "pod-rep", pod, conf); err != nil {
			t.Fatalf("DEL #%d: %v", i, err)
		}
		assertReleased(t, e, delVF, before, &beforePF)
		if diff := cmp.Diff(after, e.homes(t, 1)); diff != "" {
			t.Errorf("DEL #%d changed the worker's VFs (-after the first DEL +now):\n%s", i, diff)
		}
	}
	if _, ok := podIfaceOf(t, pod, "net1"); ok {
		t.Error("net1 still in the pod")
	}
}

// TestPrivilegedCNIDelNetnsGone: the runtime destroys the pod's namespace before DEL;
// the emulator brings the VF back into its worker as the kernel does (named net1,
// with the pod's MTU and MAC); DEL with the same, now dangling, CNI_NETNS restores
// its name, MTU and MAC and frees the lease. Once with DEL racing the VF's return,
// once after it is back.
func TestPrivilegedCNIDelNetnsGone(t *testing.T) {
	roottest.Require(t)
	for _, waitRefund := range []bool{false, true} {
		name := "DEL while the VF returns"
		if waitRefund {
			name = "DEL after the VF returned"
		}
		t.Run(name, func(t *testing.T) {
			e, before, beforePF := delEnv(t)
			conf := delConf(e, delVF, delMAC)
			pod := newPod(t)
			addOK(t, e, "pod-gone", pod, conf, 9000, delMAC)
			e.node.waitSeen(t, 1, delVF, pod, "net1", delMAC, 9000)
			if err := deletePodNS(pod); err != nil {
				t.Fatal(err)
			}
			if waitRefund {
				e.waitHome(t, 1, delVF, vfHome{Name: "net1", MTU: 9000, MAC: delMAC}, false)
			}
			start := time.Now()
			if err := e.del(1, "pod-gone", pod, conf); err != nil {
				t.Fatalf("DEL after the netns is gone: %v", err)
			}
			t.Logf("DEL took %v", time.Since(start))
			assertReleased(t, e, delVF, before, &beforePF)
		})
	}
}

// TestPrivilegedCNIDelStateLost: the plugin's state files are lost after ADD; DEL
// still frees the lease (IPAM DEL from the network config). Without the ifindex
// that ADD recorded, only the kernel's word tells which of the pod's links is the
// VF: on a kernel that names a netdev's device (played in process), DEL finds the
// VF in the pod and returns it to the worker, under the pod's name (or dev<N> if
// taken) since its original name is unknown. An emulated VF (a veth) has no device
// the kernel names, so the binary leaves it in the pod rather than trust a name the
// pod can set; it comes home when the pod's namespace goes, as the kernel returns
// a real VF. Either way the VF serves the next pod.
func TestPrivilegedCNIDelStateLost(t *testing.T) {
	roottest.Require(t)
	node := upNode(t, "--vfs", "2")
	for _, kernelNames := range []bool{true, false} {
		name := "binary, no device named"
		if kernelNames {
			name = "in process, kernel names the device"
		}
		t.Run(name, func(t *testing.T) {
			e := newCNIEnv(t, node)
			markVFs(t, e)
			del := func(containerID string, pod ns.NetNS, conf []byte) error { return e.del(1, containerID, pod, conf) }
			if kernelNames {
				p, _ := e.inProcess(1)
				p.KernelDevice = aliasDevice
				del = func(containerID string, pod ns.NetNS, conf []byte) error {
					return p.Del(e.args(containerID, pod, conf))
				}
			}
			// No VLAN: without state the plugin cannot know the PF-side settings to restore.
			conf := e.conf(1, delVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": delMAC})
			pod := newPod(t)
			addOK(t, e, "pod-lost", pod, conf, 9000, delMAC)
			for _, d := range []string{"attachments", "vfs"} {
				matches, _ := filepath.Glob(filepath.Join(e.dataDirs[1], d, "*"))
				if len(matches) == 0 {
					t.Fatalf("no state in %s after ADD", d)
				}
				for _, m := range matches {
					if err := os.Remove(m); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := del("pod-lost", pod, conf); err != nil {
				t.Fatalf("DEL without state: %v", err)
			}
			if !kernelNames {
				if _, ok := podIfaceOf(t, pod, "net1"); !ok {
					t.Fatal("DEL took a link out of the pod by a name the pod could have set")
				}
				if err := roottest.RemoveNetns(pod); err != nil {
					t.Fatal(err)
				}
				pod = nil
			}
			assertFreed(t, e, pod)
			got := e.home(t, 1, delVF)
			if !regexp.MustCompile(`^(net1|dev[0-9]+)$`).MatchString(got.Name) {
				t.Errorf("VF back in the worker as %q, want net1 or dev<N>", got.Name)
			}
			// And the VF serves the next pod.
			serves(t, e, delVF, delConf(e, delVF, "0a:58:c6:33:64:22"), "0a:58:c6:33:64:22", got, e.pfConfig(t, 1, delVF))
		})
	}
}

// TestPrivilegedCNIDelEmptyNetns: DEL with an empty CNI_NETNS (the runtime no longer
// knows the namespace) while the pod still exists: the plugin cannot reach the VF,
// succeeds and frees the lease (README: "DEL with an empty CNI_NETNS ... succeeds");
// a later DEL with the right CNI_NETNS gives the VF back as it was.
func TestPrivilegedCNIDelEmptyNetns(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	conf := delConf(e, delVF, delMAC)
	pod := newPod(t)
	addOK(t, e, "pod-empty", pod, conf, 9000, delMAC)

	start := time.Now()
	if err := e.del(1, "pod-empty", nil, conf); err != nil {
		t.Fatalf("DEL with empty CNI_NETNS: %v", err)
	}
	t.Logf("DEL with empty CNI_NETNS took %v", time.Since(start))
	if l := e.leases(); len(l) != 0 {
		t.Errorf("leases left after DEL with empty CNI_NETNS: %v", l)
	}
	if _, ok := podIfaceOf(t, pod, "net1"); !ok {
		t.Log("net1 left the pod although CNI_NETNS was empty")
	}
	delReleased(t, e, "pod-empty", pod, conf, delVF, before, beforePF)
	if _, ok := podIfaceOf(t, pod, "net1"); ok {
		t.Error("net1 still in the pod after the second DEL")
	}
}

// TestPrivilegedCNIDelNeverAdded: DEL of an attachment that never existed succeeds
// and touches nothing: no VF (name, MTU, MAC, admin state), no lease, no state.
func TestPrivilegedCNIDelNeverAdded(t *testing.T) {
	roottest.Require(t)
	tests := []struct {
		name     string
		deviceID string
		upVF     bool // bring the VF up in its worker first: a DEL must not set it down
	}{
		{"no deviceID", "", false},
		{"deviceID", delVF, false},
		{"deviceID, VF up in the host", delVF, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			node := upNode(t, "--vfs", "2")
			e := newCNIEnv(t, node)
			if tt.upVF {
				h := e.home(t, 1, delVF)
				setPodLink(t, node.workerNS(1), h.Name, netlink.LinkSetUp)
				e.waitHome(t, 1, delVF, vfHome{Name: h.Name, MTU: h.MTU, MAC: h.MAC, Up: true}, true)
			}
			before, beforePF := e.homes(t, 1), e.pfConfig(t, 1, delVF)
			conf := delConf(e, tt.deviceID, delMAC)
			pod := newPod(t)
			if err := e.del(1, "pod-never", pod, conf); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			// homes reads netlink under the names the tree lists: a change shows at once.
			if diff := cmp.Diff(before, e.homes(t, 1)); diff != "" {
				t.Errorf("DEL of an attachment that never existed changed the worker's VFs (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(beforePF, e.pfConfig(t, 1, delVF)); diff != "" {
				t.Errorf("DEL of an attachment that never existed changed the PF-side settings (-before +after):\n%s", diff)
			}
			if l := e.leases(); len(l) != 0 {
				t.Errorf("leases: %v", l)
			}
			if f := e.stateFiles(t, 1); len(f) != 0 {
				t.Errorf("state files: %v", f)
			}
			if tt.deviceID == "" {
				if f := filesUnder(t, e.dataDirs[1]); len(f) != 0 {
					t.Errorf("files in dataDir: %v", f)
				}
			}
		})
	}
}

// TestPrivilegedCNIDelAfterTakeover: pod A's namespace is destroyed without a DEL;
// its VF is given to pod B, either by GC releasing A first or by B's ADD taking
// over the VF of a gone owner. A's late DEL must then leave B's VF alone (net1 in
// B with its MTU, MAC, address) while freeing A's lease; B's DEL gives the VF back
// as it was before A.
func TestPrivilegedCNIDelAfterTakeover(t *testing.T) {
	roottest.Require(t)
	const macA, macB = "0a:58:c6:33:64:31", "0a:58:c6:33:64:32"
	for _, viaGC := range []bool{true, false} {
		name := "ADD takes over"
		if viaGC {
			name = "GC releases first"
		}
		t.Run(name, func(t *testing.T) {
			e, before, beforePF := delEnv(t)
			confA := delConf(e, delVF, macA)
			confB := e.conf(1, delVF, map[string]any{"cniVersion": "1.0.0", "mtu": 4000, "mac": macB, "vlan": 200})
			podA, podB := newPod(t), newPod(t)
			addOK(t, e, "pod-a", podA, confA, 9000, macA)
			e.node.waitSeen(t, 1, delVF, podA, "net1", macA, 9000)
			if err := deletePodNS(podA); err != nil {
				t.Fatal(err)
			}
			e.waitHome(t, 1, delVF, vfHome{Name: "net1", MTU: 9000, MAC: macA}, false)

			if viaGC {
				// A runtime whose result cache lost A (else libcni DELs A itself):
				// only the plugin's GC can release it.
				gc := libcni.NewCNIConfigWithCacheDir([]string{e.wrapDirs[1], binDir}, t.TempDir(), nil)
				list := e.confList(t, "1.1.0", e.conf(1, "", nil))
				if err := gc.GCNetworkList(ctx30(t), list, &libcni.GCArgs{ValidAttachments: []types.GCAttachment{}}); err != nil {
					t.Fatalf("GC: %v", err)
				}
				assertReleased(t, e, delVF, before, &beforePF)
			}

			pb := addOK(t, e, "pod-b", podB, confB, 4000, macB)
			leasesB := e.leaseOwners(t)
			if err := e.del(1, "pod-a", podA, confA); err != nil {
				t.Fatalf("A's DEL: %v", err)
			}
			got, ok := podIfaceOf(t, podB, "net1")
			if !ok {
				t.Fatal("A's DEL took net1 out of pod B")
			}
			if diff := cmp.Diff(pb, got); diff != "" {
				t.Errorf("A's DEL changed B's net1 (-before +after):\n%s", diff)
			}
			owners := e.leaseOwners(t)
			for ip, id := range owners {
				if id != "pod-b" {
					t.Errorf("lease %s of %s left after A's DEL", ip, id)
				}
			}
			if len(owners) != 1 {
				t.Errorf("leases after A's DEL: %v, want B's only (before: %v)", owners, leasesB)
			}

			delReleased(t, e, "pod-b", podB, confB, delVF, before, beforePF)
		})
	}
}

// TestPrivilegedCNIDelVFVanished: the VF disappears from sysfs while its pod holds
// it (a PF reset, sriov_numvfs lowered by hand). DEL succeeds and frees the lease
// and the state; a netdev still in the pod goes back to the worker as it was.
func TestPrivilegedCNIDelVFVanished(t *testing.T) {
	roottest.Require(t)
	for _, netdevToo := range []bool{false, true} {
		name := "sysfs entry gone, netdev still in the pod"
		if netdevToo {
			name = "VF and its netdev gone"
		}
		t.Run(name, func(t *testing.T) {
			node := upNode(t, "--vfs", "2")
			e := newCNIEnv(t, node)
			before := e.home(t, 1, delVF)
			conf := e.conf(1, delVF, map[string]any{"cniVersion": "1.0.0", "mtu": 9000, "mac": delMAC})
			pod := newPod(t)
			addOK(t, e, "pod-vanish", pod, conf, 9000, delMAC)
			if netdevToo {
				setPodLink(t, pod, "net1", netlink.LinkDel)
			}
			link := filepath.Join(node.runDir, node.name, "w1", "sys", "bus", "pci", "devices", delVF)
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			if err := e.del(1, "pod-vanish", pod, conf); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			assertFreed(t, e, pod)
			if netdevToo {
				return
			}
			// The tree no longer lists the VF: read its netdev by name.
			got, err := linkIn(t, e.node.workerNS(1), before.Name)
			if err != nil {
				t.Fatalf("VF netdev not back in the worker: %v", err)
			}
			got.Up = before.Up
			if diff := cmp.Diff(before, got); diff != "" {
				t.Errorf("VF netdev after DEL mismatch (-before +after):\n%s", diff)
			}
		})
	}
}

// TestPrivilegedCNIDelIPAMMissing: DEL finds no IPAM plugin in CNI_PATH (it was
// uninstalled). DEL succeeds and gives the VF back, and since the lease cannot be
// freed now it is recorded: the VF serves the next pod meanwhile, and a later DEL
// of the attachment, or a GC that no longer lists it, frees the lease once the
// plugin is back.
func TestPrivilegedCNIDelIPAMMissing(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	conf := delConf(e, delVF, delMAC)
	noIPAM := libcni.NewCNIConfigWithCacheDir([]string{e.wrapDirs[1]}, e.cacheDir, nil)
	pending := func(id string) string {
		return filepath.Join(e.dataDirs[1], "attachments", id+"_net1.json")
	}
	for _, id := range []string{"pod-noipam1", "pod-noipam2"} {
		pod := newPod(t)
		addOK(t, e, id, pod, conf, 9000, delMAC)
		if err := noIPAM.DelNetwork(ctx30(t), e.plugin(conf), e.rt(id, pod)); err != nil {
			t.Fatalf("DEL %s without the IPAM plugin: %v", id, err)
		}
		e.waitHome(t, 1, delVF, before, false)
		if diff := cmp.Diff(beforePF, e.pfConfig(t, 1, delVF)); diff != "" {
			t.Errorf("PF-side VF settings mismatch (-before ADD +now):\n%s", diff)
		}
		if _, err := os.Stat(pending(id)); err != nil {
			t.Errorf("%s: no record of the lease DEL could not free: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(e.dataDirs[1], "vfs", delVF+".json")); !os.IsNotExist(err) {
			t.Errorf("%s: the VF is still recorded as taken: %v", id, err)
		}
	}
	if owners := mapValues(e.leaseOwners(t)); len(owners) != 2 {
		t.Fatalf("lease owners %v, want the two pods whose DEL had no IPAM plugin", owners)
	}

	// A DEL with the plugin back frees the first lease.
	if err := e.del(1, "pod-noipam1", nil, conf); err != nil {
		t.Fatalf("DEL with the IPAM plugin back: %v", err)
	}
	if owners := mapValues(e.leaseOwners(t)); !slices.Equal(owners, []string{"pod-noipam2"}) {
		t.Errorf("lease owners after the second DEL: %v, want only pod-noipam2's", owners)
	}
	if _, err := os.Stat(pending("pod-noipam1")); !os.IsNotExist(err) {
		t.Errorf("the record of the freed lease is still there: %v", err)
	}
	// A GC that no longer lists the second frees it.
	list := e.confList(t, "1.1.0", e.conf(1, "", nil))
	if err := e.cni(1).GCNetworkList(ctx30(t), list, &libcni.GCArgs{}); err != nil {
		t.Fatalf("GC: %v", err)
	}
	assertReleased(t, e, delVF, before, &beforePF)
}

// TestPrivilegedCNICorruptOwnerRecord: the VF's owner record is empty (written
// just before a power loss: the state is not synced). DEL still gives the VF back
// and frees everything; an ADD that meets such a record takes the VF as free.
func TestPrivilegedCNICorruptOwnerRecord(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	conf := delConf(e, delVF, delMAC)
	owner := filepath.Join(e.dataDirs[1], "vfs", delVF+".json")
	pod := newPod(t)
	addOK(t, e, "pod-corrupt", pod, conf, 9000, delMAC)
	if err := os.Truncate(owner, 0); err != nil {
		t.Fatal(err)
	}
	delReleased(t, e, "pod-corrupt", pod, conf, delVF, before, beforePF)

	if err := os.WriteFile(owner, []byte(`{"containerID":`), 0o600); err != nil {
		t.Fatal(err)
	}
	serves(t, e, delVF, conf, delMAC, before, beforePF)
}

// TestPrivilegedCNIDelStateOfOlderRules: the config ADD recorded breaks a rule
// that came later (here a logFile ending in '/'), and the runtime sends DEL that
// same config. DEL frees what the state records all the same.
func TestPrivilegedCNIDelStateOfOlderRules(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	conf := delConf(e, delVF, delMAC)
	pod := newPod(t)
	addOK(t, e, "pod-old", pod, conf, 9000, delMAC)
	// Rewrite the state's config as an older version would have accepted it.
	statePath := filepath.Join(e.dataDirs[1], "attachments", "pod-old_net1.json")
	var st map[string]any
	if err := json.Unmarshal([]byte(readFile(t, statePath)), &st); err != nil {
		t.Fatal(err)
	}
	var nc map[string]any
	b, _ := json.Marshal(st["netconf"])
	if err := json.Unmarshal(b, &nc); err != nil {
		t.Fatal(err)
	}
	nc["logFile"] = t.TempDir() + "/"
	old, _ := json.Marshal(nc)
	st["netconf"] = json.RawMessage(old)
	b, _ = json.Marshal(st)
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rawExec(t, 1, "ADD", "pod-probe", "net1", newPod(t), old); err == nil {
		t.Fatal("the rewritten config is accepted: the test proves nothing")
	}
	if _, err := e.rawExec(t, 1, "DEL", "pod-old", "net1", pod, old); err != nil {
		t.Fatalf("DEL with the config ADD recorded: %v", err)
	}
	assertReleased(t, e, delVF, before, &beforePF)
	if _, ok := podIfaceOf(t, pod, "net1"); ok {
		t.Error("net1 still in the pod")
	}
}

// TestPrivilegedCNIDelIPAMAfterLinkDown: an interface-free IPAM plugin's DEL
// starts only once the VF's link is down in the pod, so that no packet leaves the
// pod with an address that IPAM may already have given to another. The plugin,
// in process, is slowed (300 ms) while it finds the VF in the pod, before it takes
// the link down; an IPAM plugin (named host-local) records the link as its DEL
// finds it: down, or already gone home, never up.
func TestPrivilegedCNIDelIPAMAfterLinkDown(t *testing.T) {
	roottest.Require(t)
	e, before, beforePF := delEnv(t)
	ipamDir, record := t.TempDir(), filepath.Join(t.TempDir(), "seen")
	script := fmt.Sprintf(`#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.11/24"}]}' ;;
DEL) nsenter --net="$CNI_NETNS" ip -o link show dev "$CNI_IFNAME" >%[1]s 2>&1 || : ;;
esac
`, record)
	if err := os.WriteFile(filepath.Join(ipamDir, "host-local"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	p, _ := e.inProcess(1)
	conf := e.conf(1, delVF, map[string]any{"cniVersion": "1.0.0", "ipam": map[string]any{"type": "host-local"}})
	pod := newPod(t)
	args := e.args("ipam-late", pod, conf)
	args.Path = ipamDir + ":" + binDir
	if _, err := p.Add(args); err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if pi, ok := podIfaceOf(t, pod, "net1"); !ok || !pi.Up {
		t.Fatalf("net1 after ADD: present %v, up %v; want it up", ok, pi.Up)
	}
	p.KernelDevice = func(ns.NetNS, netlink.Link) string {
		time.Sleep(300 * time.Millisecond)
		return "" // a veth: no device named, as the kernel says
	}
	if err := p.Del(args); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	seen, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("IPAM DEL did not run: %v", err)
	}
	// What ip says of net1 in the pod: its line, or that it is gone (home already);
	// anything else (no nsenter, no ip) proves nothing.
	switch {
	case regexp.MustCompile(`^\d+: net1[@:]`).Match(seen):
		if regexp.MustCompile(`[<,]UP[,>]`).Match(seen) {
			t.Errorf("IPAM DEL ran while net1 was still up in the pod: %s", seen)
		}
	case !strings.Contains(string(seen), `"net1" does not exist`):
		t.Fatalf("IPAM DEL could not look at the pod's net1: %s", seen)
	}
	t.Logf("IPAM DEL found: %s", strings.TrimSpace(string(seen)))
	// The emulated PF reads the VF's MAC off its netdev once it is home.
	e.waitHome(t, 1, delVF, before, false)
	assertReleased(t, e, delVF, before, &beforePF)
}
