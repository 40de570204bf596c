package emulate

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
)

func TestUnescapeMountinfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/run/netns/cni-1", "/run/netns/cni-1"},
		{`/var/run/my\040netns/a`, "/var/run/my netns/a"},
		{`/a\134b`, `/a\b`},
		{`/trailing\04`, `/trailing\04`},
	} {
		if got := unescapeMountinfo(tc.in); got != tc.want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// scratch returns a scratch namespace closed at the end of the test.
func scratch(t *testing.T) netns.NsHandle {
	t.Helper()
	h, err := scratchNetns()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestPrivilegedFreeName(t *testing.T) {
	roottest.Require(t)
	a, b := scratch(t), scratch(t)
	// a holds net1, dev0 and dev2, and an alternative name dev1.
	if err := addVethAt(a, b, end{name: "net1"}, end{name: "p0"}); err != nil {
		t.Fatal(err)
	}
	if err := addVethAt(a, b, end{name: "dev0", alt: "dev1"}, end{name: "p1"}); err != nil {
		t.Fatal(err)
	}
	if err := addVethAt(a, b, end{name: "dev2"}, end{name: "p2"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, want string }{
		{"eth1", "eth1"},
		{"net1", "dev3"},
		{"dev1", "dev3"},
		{"", "dev3"},
		{"a-name-far-too-long", "dev3"},
	} {
		got, err := freeName(a, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("freeName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPrivilegedLookEverywhere finds a link by its alternative name in a pod's
// namespace, then checks that looking did not keep the namespace alive: deleting it
// destroys the veth, whose peer in a scratch namespace goes too.
func TestPrivilegedLookEverywhere(t *testing.T) {
	roottest.Require(t)
	pod, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	deletePod := func() {
		if !deleted {
			deleted = true
			_ = roottest.RemoveNetns(pod)
		}
	}
	t.Cleanup(deletePod)
	podNS, err := netns.GetFromPath(pod.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer podNS.Close()
	peers := scratch(t)
	alt := "chelsio-emu-look-test." + filepath.Base(pod.Path())
	if err := addVethAt(podNS, peers, end{name: "net1", mac: "0a:58:c6:33:64:0b", mtu: 1400, alt: alt}, end{name: "peer1"}); err != nil {
		t.Fatal(err)
	}
	podNS.Close()

	found, live, complete := lookEverywhere(map[string]bool{alt: true, "chelsio-emu-look-test.absent": true})
	var st unix.Stat_t
	if err := unix.Stat(pod.Path(), &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]sighting{alt: {netns: filepath.Base(pod.Path()), ino: st.Ino, name: "net1", mac: "0a:58:c6:33:64:0b", mtu: 1400}}
	if diff := cmp.Diff(want, found, cmp.AllowUnexported(sighting{})); diff != "" {
		t.Errorf("lookEverywhere() mismatch (-want +got):\n%s", diff)
	}
	if !complete || !live[st.Ino] {
		t.Errorf("lookEverywhere(): complete=%v, pod namespace reached=%v; want both", complete, live[st.Ino])
	}

	deletePod()
	h, err := netlink.NewHandleAt(peers, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := h.LinkByName("peer1"); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the veth outlived its deleted namespace: something keeps the namespace alive")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
