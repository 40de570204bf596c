package cni

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// emulatedRoot returns a sysfs root that vf.Emulated takes for an emulated tree.
func emulatedRoot(t *testing.T) sysfs.Root {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, vf.EmulatedMarker), 0o755); err != nil {
		t.Fatal(err)
	}
	return sysfs.Root(dir)
}

// testNS makes a network namespace that the test removes.
func testNS(t *testing.T) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = roottest.RemoveNetns(n) })
	return n
}

// vethIn creates a veth pair in n, names one end name with the alternative names
// alts, and returns that end.
func vethIn(t *testing.T, n ns.NetNS, name, peer string, alts ...string) netlink.Link {
	t.Helper()
	var l netlink.Link
	err := n.Do(func(ns.NetNS) error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
			return err
		}
		var err error
		if l, err = netlink.LinkByName(name); err != nil {
			return err
		}
		for _, a := range alts {
			if err := netlink.LinkAddAltName(l, a); err != nil {
				return err
			}
		}
		l, err = netlink.LinkByName(name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestEmulatedOnlyOffSysfs(t *testing.T) {
	if !vf.Emulated(emulatedRoot(t)) {
		t.Error("a tree with the marker directory is not taken for emulated")
	}
	if vf.Emulated(sysfs.Root(t.TempDir())) {
		t.Error("a tree without the marker directory is taken for emulated")
	}
	if vf.Emulated(sysfs.Root("/sys")) {
		t.Error("the kernel's sysfs is taken for emulated")
	}
}

// TestPrivilegedPodLinkIdentity: which link of a pod is the VF, on a node whose
// kernel reports no device under a veth (an emulated VF) and on one played with a
// parent device. A pod-planted alternative name of the emulator's form is never
// enough, and is not even looked at on the kernel's sysfs.
func TestPrivilegedPodLinkIdentity(t *testing.T) {
	roottest.Require(t)
	const addr = "0000:81:01.0"
	a := vf.MustParsePCIAddr(addr)
	pod := testNS(t)
	l := vethIn(t, pod, "net1", "peer1", "x-w9.0000.81.01.0")
	idx := l.Attrs().Index
	none := func(ns.NetNS, netlink.Link) string { return "" }
	says := func(dev string) KernelDevice { return func(ns.NetNS, netlink.Link) string { return dev } }
	tests := []struct {
		name string
		root sysfs.Root
		dev  KernelDevice
		idx  int
		want bool
	}{
		{"real sysfs, altname alone", "/sys", none, 0, false},
		{"real sysfs, another ifindex", "/sys", none, idx + 1, false},
		{"real sysfs, the recorded ifindex", "/sys", none, idx, true},
		{"real sysfs, this kernel", "/sys", nil, idx, true},
		{"emulated, altname alone", emulatedRoot(t), none, 0, false},
		{"emulated, altname and ifindex", emulatedRoot(t), none, idx, true},
		{"emulated, altname and another ifindex", emulatedRoot(t), none, idx + 1, false},
		{"kernel names the VF", "/sys", says(addr), 0, true},
		{"kernel names another device", emulatedRoot(t), says("0000:81:01.4"), idx, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Plugin{Root: tt.root, KernelDevice: tt.dev}
			if got := p.podLinkIsVF(pod, l, a, tt.idx); got != tt.want {
				t.Errorf("podLinkIsVF = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("emulated, altname of another VF", func(t *testing.T) {
		p := &Plugin{Root: emulatedRoot(t), KernelDevice: none}
		if p.podLinkIsVF(pod, l, vf.MustParsePCIAddr("0000:81:01.4"), idx) {
			t.Error("a link whose alternative name names another VF is taken for the VF")
		}
	})
}

// TestPrivilegedMoveInUndoesRefusedName: when the kernel moves the VF into the pod
// but refuses its name there, moveIn moves it back under its host name and says
// so with code 4 (the name is CNI_IFNAME's).
func TestPrivilegedMoveInUndoesRefusedName(t *testing.T) {
	roottest.Require(t)
	host, pod := testNS(t), testNS(t)
	const addr = "0000:81:01.0"
	l := vethIn(t, host, "eth7", "eth7peer", "node-w1.0000.81.01.0")
	for _, name := range []string{"all", "default"} {
		t.Run(name, func(t *testing.T) {
			p := &Plugin{Root: emulatedRoot(t), KernelDevice: func(ns.NetNS, netlink.Link) string { return "" }}
			podH, err := handleIn(pod)
			if err != nil {
				t.Fatal(err)
			}
			defer podH.Close()
			a := &cnistore.Attachment{HostName: "eth7"}
			err = p.moveIn(host, pod, podH, l.Attrs().Index, vf.MustParsePCIAddr(addr), a, name)
			var ce *codedError
			if !errors.As(err, &ce) || ce.code != types.ErrInvalidEnvironmentVariables {
				t.Fatalf("moveIn as %q: %v, want code 4", name, err)
			}
			t.Log(err)
			err = host.Do(func(ns.NetNS) error {
				_, err := netlink.LinkByName("eth7")
				return err
			})
			if err != nil {
				t.Errorf("eth7 is not back in the host: %v", err)
			}
			links, err := podH.LinkList()
			if err != nil {
				t.Fatal(err)
			}
			for _, pl := range links {
				if pl.Attrs().Name != "lo" {
					t.Errorf("the pod has %s", pl.Attrs().Name)
				}
			}
		})
	}
}
