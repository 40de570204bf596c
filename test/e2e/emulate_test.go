package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

// listed is the part of `chelsio-vf list --json` these tests read.
type listed struct {
	PCIAddress string `json:"pciAddress"`
	DeviceID   string `json:"deviceID"`
	Model      string `json:"model"`
	Chip       string `json:"chip"`
	PF         string `json:"pf"`
	VFIndex    int    `json:"vfIndex"`
	Port       int    `json:"port"`
	Driver     string `json:"driver"`
	Netdev     string `json:"netdev"`
	MAC        string `json:"mac"`
	MgmtNetdev string `json:"mgmtNetdev"`
}

// emuNode is an emulated node brought up for one test with a unique name.
type emuNode struct {
	t      *testing.T
	cvf    string
	name   string
	runDir string
}

func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func upNode(t *testing.T, args ...string) *emuNode {
	t.Helper()
	n := &emuNode{t: t, cvf: bin(t, "chelsio-vf"), name: uniqueName("chelsio-emu-t"), runDir: t.TempDir()}
	t.Cleanup(func() {
		if out, errb, err := run(t, n.cvf, "emulate", "down", "--name", n.name, "--run-dir", n.runDir); err != nil {
			t.Errorf("emulate down: %v\n%s%s", err, out, errb)
		}
	})
	mustRun(t, n.cvf, append([]string{"emulate", "up", "--name", n.name, "--run-dir", n.runDir}, args...)...)
	return n
}

func (n *emuNode) netns(w int) string { return n.name + "-w" + string(rune('0'+w)) }

func (n *emuNode) list(w int) []listed {
	n.t.Helper()
	out := mustRun(n.t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", string(rune('0'+w)), "--", n.cvf, "list", "--json")
	var l []listed
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		n.t.Fatalf("list --json: %v\n%s", err, out)
	}
	return l
}

func netdevOf(l []listed, addr string) (string, bool) {
	for _, v := range l {
		if v.PCIAddress == addr {
			return v.Netdev, true
		}
	}
	return "", false
}

func TestPrivilegedEmulateUpListDown(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "8")

	// up twice is refused, and says so.
	_, errb, err := run(t, n.cvf, "emulate", "up", "--name", n.name, "--run-dir", n.runDir)
	if err == nil || !strings.Contains(errb, "already up") {
		t.Fatalf("second up: err=%v stderr=%q, want an 'already up' error", err, errb)
	}

	for w := 1; w <= 2; w++ {
		l := n.list(w)
		if len(l) != 8 {
			t.Fatalf("worker %d: list shows %d VFs, want 8: %+v", w, len(l), l)
		}
		for _, v := range l {
			if v.DeviceID != "680d" || v.Model != "T62100-CR" || v.Chip != "T6" || v.Driver != "cxgb4vf" || v.Netdev == "" || v.MgmtNetdev != "mgmtpf1,0" || v.PF != "0000:81:00.0" {
				t.Errorf("worker %d: unexpected VF %+v", w, v)
			}
		}
		if l[0].PCIAddress != "0000:81:01.0" || l[1].PCIAddress != "0000:81:01.4" {
			t.Errorf("worker %d: VF addresses %s, %s; want 0000:81:01.0, 0000:81:01.4", w, l[0].PCIAddress, l[1].PCIAddress)
		}
	}

	// Programs that read fixed /sys paths see the emulated adapter.
	out := mustRun(t, n.cvf, "emulate", "exec", "--name", n.name, "--run-dir", n.runDir, "--worker", "1", "--",
		"sh", "-c", "cat /sys/bus/pci/devices/0000:81:01.0/vendor /sys/bus/pci/devices/0000:81:01.0/device; ls /sys/bus/pci/devices/0000:81:01.0/net /sys/bus/pci/drivers/cxgb4vf; echo $CHELSIO_SYSFS_ROOT")
	for _, want := range []string{"0x1425", "0x680d", "enp129s1", "0000:81:01.0", filepath.Join(n.runDir, n.name, "w1", "sys")} {
		if !strings.Contains(out, want) {
			t.Errorf("exec output lacks %q:\n%s", want, out)
		}
	}

	mustRun(t, n.cvf, "emulate", "down", "--name", n.name, "--run-dir", n.runDir)
	for w := 1; w <= 2; w++ {
		if _, err := os.Stat(filepath.Join("/run/netns", n.netns(w))); err == nil {
			t.Errorf("netns %s still exists after down", n.netns(w))
		}
	}
	if _, err := os.Stat(filepath.Join(n.runDir, n.name)); err == nil {
		t.Errorf("state dir %s still exists after down", filepath.Join(n.runDir, n.name))
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.name) {
			t.Errorf("down left netns %s", e.Name())
		}
	}
	// A second down is fine.
	mustRun(t, n.cvf, "emulate", "down", "--name", n.name, "--run-dir", n.runDir)
}

// TestPrivilegedEmulateVFMoves moves a VF netdev into another namespace and back,
// renamed, as a CNI plugin does, and checks that the worker's sysfs follows; then
// sends traffic across the cable between worker 1 and worker 2.
func TestPrivilegedEmulateVFMoves(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "4", "--mtu", "9000")
	const addr = "0000:81:01.4"
	home, _ := netdevOf(n.list(1), addr)
	if home == "" {
		t.Fatalf("VF %s has no netdev at start", addr)
	}

	pod := newPod(t)
	worker := n.workerNS(1)

	// Move into the pod, renamed net1 (one RTM_NEWLINK, as a CNI plugin does).
	err := worker.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(home)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(pod.Fd()))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Poll the tree, then list once: the tree's writes are not atomic (sysfstree writes
	// a netdev's files one by one), so a list in the middle of one can fail.
	sys := filepath.Join(n.runDir, n.name, "w1", "sys")
	eventually(t, "VF netdev gone from worker sysfs", 5*time.Second, func() (bool, string) {
		names, _ := os.ReadDir(filepath.Join(sys, "bus/pci/devices", addr, "net"))
		return len(names) == 0, fmt.Sprintf("net/ holds %d entries", len(names))
	})
	if nd, ok := netdevOf(n.list(1), addr); !ok || nd != "" {
		t.Errorf("list shows VF %s (listed %v) with netdev %q while it is in the pod", addr, ok, nd)
	}
	if _, err := os.Lstat(filepath.Join(n.runDir, n.name, "w1", "sys", "class", "net", home)); err == nil {
		t.Errorf("class/net/%s still exists while the VF is in the pod", home)
	}

	// Rename in the pod, set MTU and MAC, and move back under the new name.
	mac := "0a:58:c6:33:64:07"
	err = pod.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(home)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, "net1"); err != nil {
			return err
		}
		hw, _ := net.ParseMAC(mac)
		if err := netlink.LinkSetHardwareAddr(l, hw); err != nil {
			return err
		}
		if err := netlink.LinkSetMTU(l, 1500); err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(worker.Fd()))
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "VF back in worker sysfs as net1", 5*time.Second, func() (bool, string) {
		got := n.treeNetdev(1, addr, "net1")
		return got == mac+" 1500", "net1: " + got
	})
	if nd, _ := netdevOf(n.list(1), addr); nd != "net1" {
		t.Errorf("list shows VF %s as %q, want net1", addr, nd)
	}
	// Rename back in the worker.
	err = worker.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("net1")
		if err != nil {
			return err
		}
		return netlink.LinkSetName(l, home)
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "VF renamed back in worker sysfs", 5*time.Second, func() (bool, string) {
		got := n.treeNetdev(1, addr, home)
		return got == mac+" 1500", home + ": " + got
	})
	if nd, _ := netdevOf(n.list(1), addr); nd != home {
		t.Errorf("list shows VF %s as %q, want %s", addr, nd, home)
	}

	// VF k of worker 1 is cabled to VF k of worker 2: a TCP connection crosses it.
	w2 := n.workerNS(2)
	setAddr := func(nsh ns.NetNS, name, cidr string) {
		t.Helper()
		err := nsh.Do(func(ns.NetNS) error {
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			a, err := netlink.ParseAddr(cidr)
			if err != nil {
				return err
			}
			if err := netlink.AddrAdd(l, a); err != nil {
				return err
			}
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	peer, _ := netdevOf(n.list(2), addr)
	setAddr(worker, home, "198.51.100.1/24")
	setAddr(w2, peer, "198.51.100.2/24")
	ln := listenIn(t, w2, "198.51.100.2:0")
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		_, _ = c.Read(buf)
		got <- string(buf)
	}()
	err = worker.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello"))
		return err
	})
	if err != nil {
		t.Fatalf("dial across the cable: %v", err)
	}
	select {
	case s := <-got:
		if s != "hello" {
			t.Fatalf("received %q, want hello", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing received across the cable")
	}
}

// TestPrivilegedEmulateDownRemovesMovedVFs checks that down also removes a VF netdev
// that sits in a pod namespace, and nothing else there.
func TestPrivilegedEmulateDownRemovesMovedVFs(t *testing.T) {
	roottest.Require(t)
	n := upNode(t, "--vfs", "2", "--workers", "1")
	pod := newPod(t)
	worker := n.workerNS(1)
	if err := worker.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("enp129s1")
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(pod.Fd()))
	}); err != nil {
		t.Fatal(err)
	}
	// Something of the pod's own that down must leave alone.
	if err := pod.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "own0"}, PeerName: "own1"})
	}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, n.cvf, "emulate", "down", "--name", n.name, "--run-dir", n.runDir)
	err := pod.Do(func(ns.NetNS) error {
		if _, err := netlink.LinkByName("enp129s1"); err == nil {
			t.Error("the moved VF netdev is still in the pod after down")
		}
		if _, err := netlink.LinkByName("own0"); err != nil {
			t.Errorf("down removed the pod's own link: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPrivilegedEmulateRefundOnNetnsDeletion deletes the namespace of a pod that holds
// a VF netdev and checks that the watcher returns the VF to its worker as the kernel
// returns a physical VF netdev to the host: under its name in the pod, or dev%d when
// that is taken, with the pod's MAC and MTU; and that the VF's cable peer, which dies
// with it as a veth does, comes back too.
func TestPrivilegedEmulateRefundOnNetnsDeletion(t *testing.T) {
	roottest.Require(t)
	const (
		addr  = "0000:81:01.0"
		other = "0000:81:01.4"
		mac   = "0a:58:c6:33:64:09"
		mac2  = "0a:58:cb:00:71:0a"
	)

	t.Run("pod name", func(t *testing.T) {
		n := upNode(t, "--vfs", "2")
		w1, w2 := n.workerNS(1), n.workerNS(2)
		home2, _ := netdevOf(n.list(2), addr)
		pod := newPod(t)
		n.inPod(t, 1, addr, pod, "net1", mac, 1400)

		took := n.deleteAndWait(t, pod, func() (bool, string) {
			got1 := n.treeNetdev(1, addr, "net1")
			got2 := n.treeNetdev(2, addr, home2)
			return got1 == mac+" 1400" && got2 != "", "worker 1 net1: " + got1 + "; worker 2 " + home2 + ": " + got2
		})
		t.Logf("VF back in both workers' trees %v after the pod namespace was deleted", took)
		l1, l2 := n.list(1), n.list(2)
		if nd, _ := netdevOf(l1, addr); nd != "net1" {
			t.Errorf("worker 1: list shows VF %s as %q, want net1", addr, nd)
		}
		if nd, _ := netdevOf(l2, addr); nd != home2 {
			t.Errorf("worker 2: list shows VF %s as %q, want %s (its name before)", addr, nd, home2)
		}
		assertVethPeers(t, w1, "net1", false, w2, home2)
		n.waitLog(t, fmt.Sprintf("worker 1: %s returned to the host as net1 (pod namespace gone)", addr))
	})

	t.Run("name taken", func(t *testing.T) {
		n := upNode(t, "--vfs", "2")
		homeOther, _ := netdevOf(n.list(1), other)
		// Worker 1 already has a net1 when the VF comes back.
		configureLink(t, n.workerNS(1), homeOther, "net1", "", 0)
		pod := newPod(t)
		n.inPod(t, 1, addr, pod, "net1", mac, 1400)

		took := n.deleteAndWait(t, pod, func() (bool, string) {
			got := n.treeNetdev(1, addr, "dev0")
			return got == mac+" 1400", "worker 1 dev0: " + got
		})
		t.Logf("VF back in worker 1's tree %v after the pod namespace was deleted", took)
		l := n.list(1)
		if nd, _ := netdevOf(l, addr); nd != "dev0" {
			t.Errorf("worker 1: list shows VF %s as %q, want dev0 (net1 is taken)", addr, nd)
		}
		if nd, _ := netdevOf(l, other); nd != "net1" {
			t.Errorf("worker 1: list shows VF %s as %q, want net1 (untouched)", other, nd)
		}
	})

	t.Run("both ends in pods", func(t *testing.T) {
		n := upNode(t, "--vfs", "2")
		w1, w2 := n.workerNS(1), n.workerNS(2)
		podA, podB := newPod(t), newPod(t)
		n.inPod(t, 1, addr, podA, "net1", mac, 1400)
		n.inPod(t, 2, addr, podB, "net2", mac2, 1450)

		took := n.deleteAndWait(t, podA, func() (bool, string) {
			got1 := n.treeNetdev(1, addr, "net1")
			got2 := n.treeNetdev(2, addr, "net2")
			return got1 == mac+" 1400" && got2 == mac2+" 1450", "worker 1 net1: " + got1 + "; worker 2 net2: " + got2
		})
		t.Logf("both ends back in their workers' trees %v after one pod namespace was deleted", took)
		if nd, _ := netdevOf(n.list(1), addr); nd != "net1" {
			t.Errorf("worker 1: list shows VF %s as %q, want net1", addr, nd)
		}
		if nd, _ := netdevOf(n.list(2), addr); nd != "net2" {
			t.Errorf("worker 2: list shows VF %s as %q, want net2 (its name in the other pod)", addr, nd)
		}
		// The emulation artifact: the peer left the pod that still exists.
		if err := podB.Do(func(ns.NetNS) error {
			_, err := netlink.LinkByName("net2")
			return err
		}); err == nil {
			t.Error("worker 2's VF is still in its pod; its veth should have died with the peer")
		}
		assertVethPeers(t, w1, "net1", false, w2, "net2")
	})
}

// workerNS opens worker w's namespace for the rest of the test.
func (n *emuNode) workerNS(w int) ns.NetNS {
	n.t.Helper()
	h, err := ns.GetNS(filepath.Join("/run/netns", n.netns(w)))
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = h.Close() })
	return h
}

// treeNetdev returns "<address> <mtu>" of netdev name in worker w's tree if it is the
// VF's (bus/pci/devices/<addr>/net/<name>) and complete (its class/net link, which
// the tree adds last, is there), and "" otherwise.
func (n *emuNode) treeNetdev(w int, addr, name string) string {
	sys := filepath.Join(n.runDir, n.name, fmt.Sprintf("w%d", w), "sys")
	if _, err := os.Stat(filepath.Join(sys, "bus/pci/devices", addr, "net", name)); err != nil {
		return ""
	}
	a, err1 := os.ReadFile(filepath.Join(sys, "class/net", name, "address"))
	m, err2 := os.ReadFile(filepath.Join(sys, "class/net", name, "mtu"))
	if err1 != nil || err2 != nil {
		return ""
	}
	return strings.TrimSpace(string(a)) + " " + strings.TrimSpace(string(m))
}

// waitLog waits until the watcher's log has a line containing want.
func (n *emuNode) waitLog(t *testing.T, want string) {
	t.Helper()
	p := filepath.Join(n.runDir, n.name, "watcher.log")
	eventually(t, "watcher log line "+strconv.Quote(want), 5*time.Second, func() (bool, string) {
		b, err := os.ReadFile(p)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(b), want), "log:\n" + string(b)
	})
}

// waitSeen waits until the watcher has seen worker w's VF in the pod with these
// values. The watcher learns them by looking into the pod every 100 ms (it may not
// keep a pod namespace open); a real pod lives longer than that.
func (n *emuNode) waitSeen(t *testing.T, w int, addr string, pod ns.NetNS, name, mac string, mtu int) {
	t.Helper()
	n.waitLog(t, fmt.Sprintf("worker %d: %s is in netns %s as %s (%s, mtu %d)", w, addr, filepath.Base(pod.Path()), name, mac, mtu))
}

// deleteAndWait deletes the pod's namespace, as the container runtime does, waits
// until cond holds, and returns how long that took.
func (n *emuNode) deleteAndWait(t *testing.T, pod ns.NetNS, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	if err := deletePodNS(pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, "refund after the pod namespace was deleted", 5*time.Second, cond)
	return time.Since(start)
}

func deletePodNS(pod ns.NetNS) error {
	return roottest.RemoveNetns(pod)
}

// inPod moves worker w's VF addr into pod, named ifname with mac and mtu, as a
// CNI plugin does, and waits until the watcher has seen it there.
func (n *emuNode) inPod(t *testing.T, w int, addr string, pod ns.NetNS, ifname, mac string, mtu int) {
	t.Helper()
	home, _ := netdevOf(n.list(w), addr)
	moveLinkNS(t, n.workerNS(w), home, pod)
	configureLink(t, pod, home, ifname, mac, mtu)
	n.waitSeen(t, w, addr, pod, ifname, mac, mtu)
}

// moveLinkNS moves the link called name from one namespace into another.
func moveLinkNS(t *testing.T, from ns.NetNS, name string, to ns.NetNS) {
	t.Helper()
	if err := from.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(to.Fd()))
	}); err != nil {
		t.Fatalf("move %s: %v", name, err)
	}
}

// configureLink renames a link of the namespace and sets its MAC and MTU ("" and 0 keep
// them).
func configureLink(t *testing.T, nsh ns.NetNS, name, newName, mac string, mtu int) {
	t.Helper()
	if err := nsh.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if err := netlink.LinkSetName(l, newName); err != nil {
			return err
		}
		if mac != "" {
			hw, err := net.ParseMAC(mac)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetHardwareAddr(l, hw); err != nil {
				return err
			}
		}
		if mtu != 0 {
			return netlink.LinkSetMTU(l, mtu)
		}
		return nil
	}); err != nil {
		t.Fatalf("set %s: %v", name, err)
	}
}

// assertVethPeers checks that link a of namespace na is a veth whose peer is link b of
// namespace nb, that a is up or down as wantUp says, and that it has its
// alternative name.
func assertVethPeers(t *testing.T, na ns.NetNS, a string, wantUp bool, nb ns.NetNS, b string) {
	t.Helper()
	var peerIndex int
	if err := na.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(a)
		if err != nil {
			return err
		}
		if up := l.Attrs().Flags&net.FlagUp != 0; up != wantUp {
			t.Errorf("%s: up=%v, want %v", a, up, wantUp)
		}
		if len(l.Attrs().AltNames) == 0 {
			t.Errorf("%s has no alternative name", a)
		}
		v, ok := l.(*netlink.Veth)
		if !ok {
			return fmt.Errorf("%s is a %s, not a veth", a, l.Type())
		}
		peerIndex, err = netlink.VethPeerIndex(v)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := nb.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(b)
		if err != nil {
			return err
		}
		if l.Attrs().Index != peerIndex {
			t.Errorf("%s's veth peer has index %d; %s has %d", a, peerIndex, b, l.Attrs().Index)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
