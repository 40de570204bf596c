package emulate

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/roottest"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/uevent"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// ueventWorker is a workerWatch over a tree of one T62100-CR with 2 VFs on PF0, the
// second on vfio-pci (no netdev).
func ueventWorker(t *testing.T) *workerWatch {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{
		VFs: [4]int{2}, Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO},
	})
	if err != nil {
		t.Fatal(err)
	}
	wt := &watch{logf: t.Logf}
	return &workerWatch{wt: wt, w: &Worker{Index: 1}, tree: tree, adapter: tree.Adapters[0]}
}

// short is a uevent as "ACTION SUBSYSTEM DEVPATH KEY=VALUE…" of the keys that say
// which device it is.
func short(m *uevent.Message) string {
	s := m.Action + " " + m.Subsystem() + " " + m.DevPath
	for _, k := range []string{"PCI_ID", "PCI_SLOT_NAME", "DRIVER", "INTERFACE"} {
		if v, ok := m.Env[k]; ok {
			s += " " + k + "=" + v
		}
	}
	return s
}

func TestVFUevents(t *testing.T) {
	ww := ueventWorker(t)
	const vf0, vf1 = "/devices/pci0000:80/0000:80:03.0/0000:81:01.0", "/devices/pci0000:80/0000:80:03.0/0000:81:01.4"
	nd := ww.adapter.VFs[0][0].Netdev.Name
	var got []string
	for _, m := range ww.vfUevents(0, true) {
		got = append(got, short(m))
	}
	want := []string{
		"add pci " + vf0 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.0",
		"add net " + vf0 + "/net/" + nd + " INTERFACE=" + nd,
		"bind pci " + vf0 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.0 DRIVER=cxgb4vf",
		"add pci " + vf1 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.4",
		"bind pci " + vf1 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.4 DRIVER=vfio-pci",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("creation uevents (-want +got):\n%s", diff)
	}
	got = nil
	for _, m := range ww.vfUevents(0, false) {
		got = append(got, short(m))
	}
	want = []string{
		"remove net " + vf0 + "/net/" + nd + " INTERFACE=" + nd,
		"unbind pci " + vf0 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.0",
		"remove pci " + vf0 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.0",
		"unbind pci " + vf1 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.4",
		"remove pci " + vf1 + " PCI_ID=1425:680D PCI_SLOT_NAME=0000:81:01.4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removal uevents (-want +got):\n%s", diff)
	}
	// Every DEVPATH is a directory of the tree, as the kernel's is one of /sys.
	for _, m := range ww.vfUevents(0, true) {
		if !ww.tree.Root.Exists(m.DevPath[1:]) {
			t.Errorf("DEVPATH %s is not in the tree", m.DevPath)
		}
	}
}

// TestPrivilegedSendVFUevents sends the creation uevents in a scratch namespace: a
// listener there reads each, from a user process, numbered in order.
func TestPrivilegedSendVFUevents(t *testing.T) {
	roottest.Require(t)
	ns := roottest.ScratchNetns(t)
	l, err := uevent.ListenAt(ns, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ww := ueventWorker(t)
	if ww.uev, err = uevent.DialAt(ns); err != nil {
		t.Fatal(err)
	}
	defer ww.closeUevents()
	sent := ww.vfUevents(0, true)
	ww.sendUevents(sent)
	buf := make([]byte, uevent.MaxSize)
	for i, s := range sent {
		n, sender, err := l.Receive(buf)
		if err != nil {
			t.Fatal(err)
		}
		m, err := uevent.Parse(buf[:n])
		if err != nil {
			t.Fatalf("uevent %d: %v", i, err)
		}
		if sender == 0 || m.Seq() != uint64(i+1) || short(m) != short(s) {
			t.Errorf("uevent %d: %s, SEQNUM %d, sender %d; want %s, SEQNUM %d, a user process", i, short(m), m.Seq(), sender, short(s), i+1)
		}
	}
}
