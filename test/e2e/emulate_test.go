package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/roottest"
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

	pod, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pod.Close()
		_ = testutils.UnmountNS(pod)
	})
	worker, err := ns.GetNS(filepath.Join("/run/netns", n.netns(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()

	// Move into the pod, renamed net1 (one RTM_NEWLINK, as a CNI plugin does).
	err = worker.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(home)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(pod.Fd()))
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "VF netdev gone from worker sysfs", 5*time.Second, func() (bool, string) {
		nd, ok := netdevOf(n.list(1), addr)
		return ok && nd == "", "netdev=" + nd
	})
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
	sys := filepath.Join(n.runDir, n.name, "w1", "sys")
	eventually(t, "VF back in worker sysfs as net1", 5*time.Second, func() (bool, string) {
		nd, _ := netdevOf(n.list(1), addr)
		got, _ := os.ReadFile(filepath.Join(sys, "class/net/net1/address"))
		return nd == "net1" && strings.TrimSpace(string(got)) == mac, "netdev=" + nd + " address=" + string(got)
	})
	if b, _ := os.ReadFile(filepath.Join(sys, "bus/pci/devices", addr, "net/net1/mtu")); strings.TrimSpace(string(b)) != "1500" {
		t.Errorf("mtu in sysfs = %q, want 1500", b)
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
		nd, _ := netdevOf(n.list(1), addr)
		return nd == home, "netdev=" + nd
	})

	// VF k of worker 1 is cabled to VF k of worker 2: a TCP connection crosses it.
	w2, err := ns.GetNS(filepath.Join("/run/netns", n.netns(2)))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
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
	var ln net.Listener
	if err := w2.Do(func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", "198.51.100.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
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
	pod, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pod.Close()
		_ = testutils.UnmountNS(pod)
	})
	worker, err := ns.GetNS(filepath.Join("/run/netns", n.netns(1)))
	if err != nil {
		t.Fatal(err)
	}
	defer worker.Close()
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
	err = pod.Do(func(ns.NetNS) error {
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
