package deviceplugin_test

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chelsio-k8s/chelsio-sriov/internal/syncbuf"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// strandedFixture is scanFixture with a scanner of the zero-config pools that reads
// the CNI state in stateDir (made private, as ADD makes it) and reports a VF once
// two scans have found it stranded.
type strandedFixture struct {
	tree  *sysfstree.Tree
	s     *deviceplugin.ChelsioScanner
	store cnistore.Store
	log   *syncbuf.Buffer
}

func newStrandedFixture(t *testing.T) *strandedFixture {
	t.Helper()
	tree := scanFixture(t)
	root := filepath.Join(t.TempDir(), "r")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	f := &strandedFixture{tree: tree, store: cnistore.Store{Dir: filepath.Join(root, "state")}, log: &syncbuf.Buffer{}}
	f.s = deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(deviceplugin.DefaultResourcePrefix), nil)
	f.s.CNIStateDir, f.s.StrandedAfter, f.s.Log = f.store.Dir, time.Nanosecond, slog.New(slog.NewTextHandler(f.log, nil))
	return f
}

// netdevOf is the VF's netdev in the tree.
func (f *strandedFixture) netdevOf(t *testing.T, addr string) sysfstree.Netdev {
	t.Helper()
	dir := f.tree.Root.Path("bus/pci/devices", addr, "net")
	names, err := os.ReadDir(dir)
	if err != nil || len(names) != 1 {
		t.Fatalf("netdev of %s: %v, %d entries", addr, err, len(names))
	}
	n := sysfstree.Netdev{Name: names[0].Name(), Type: 1}
	read := func(attr string) string {
		b, err := os.ReadFile(filepath.Join(dir, n.Name, attr))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	n.MAC = read("address")
	var err1, err2 error
	n.MTU, err1 = strconv.Atoi(read("mtu"))
	n.DevPort, err2 = strconv.Atoi(read("dev_port"))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return n
}

// reason scans twice (a VF is reported once two scans found it stranded) and
// returns the device's health as health() gives it, and whether it is Stranded.
func (f *strandedFixture) reason(t *testing.T, addr string) (string, bool) {
	t.Helper()
	mustScan(t, f.s)
	tree := mustScan(t, f.s)
	for _, r := range tree {
		if d, ok := r.Devices[addr]; ok {
			return health(t, tree, r.FullName())[addr], d.Stranded
		}
	}
	t.Fatalf("%s is in no resource", addr)
	return "", false
}

const reasonStranded = "stranded: its netdev is out of the node's network namespace and no CNI attachment records it"

// TestStrandedVF: a cxgb4vf VF whose netdev leaves the node's sysfs with no CNI
// attachment recording it is Unhealthy; an owner record, or an attachment alone,
// makes it healthy; its netdev home again, it is healthy with nothing recorded.
func TestStrandedVF(t *testing.T) {
	f := newStrandedFixture(t)
	const addr = "0000:81:01.0"
	nd := f.netdevOf(t, addr)
	if got, stranded := f.reason(t, addr); got != "healthy" || stranded {
		t.Fatalf("at home: %q (stranded %v), want healthy", got, stranded)
	}
	if err := f.tree.RemoveNetdev(vf.MustParsePCIAddr(addr), nd.Name); err != nil {
		t.Fatal(err)
	}
	if got, stranded := f.reason(t, addr); got != reasonStranded || !stranded {
		t.Fatalf("away, no state directory: %q (stranded %v), want %q", got, stranded, reasonStranded)
	}
	if !strings.Contains(f.log.String(), "VF stranded") || !strings.Contains(f.log.String(), addr) {
		t.Errorf("no log line of the stranded VF:\n%s", f.log)
	}

	// Recorded as ADD records it (owner record and attachment, phase adding).
	if err := f.store.Ensure(); err != nil {
		t.Fatal(err)
	}
	a := &cnistore.Attachment{ContainerID: "pod-a", IfName: "net1", Netns: "/run/netns/a", VF: addr, Phase: cnistore.PhaseAdding, Created: time.Now()}
	if err := f.store.SaveAttachment(a); err != nil {
		t.Fatal(err)
	}
	if got, stranded := f.reason(t, addr); got != "healthy" || stranded {
		t.Errorf("away, recorded: %q (stranded %v), want healthy", got, stranded)
	}
	if !strings.Contains(f.log.String(), "VF no longer stranded") || !strings.Contains(f.log.String(), "a CNI attachment records it") {
		t.Errorf("no log line of the VF recorded:\n%s", f.log)
	}

	// The owner record released (an IPAM-pending DEL keeps only the attachment):
	// the attachment that names the VF still records it.
	if err := f.store.ReleaseOwner("pod-a", "net1", addr); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reason(t, addr); got != "healthy" {
		t.Errorf("away, recorded by an attachment only: %q, want healthy", got)
	}

	if err := f.store.RemoveAttachment("pod-a", "net1", addr); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reason(t, addr); got != reasonStranded {
		t.Errorf("away, record removed: %q, want %q", got, reasonStranded)
	}
	if err := f.tree.AddNetdev(vf.MustParsePCIAddr(addr), nd); err != nil {
		t.Fatal(err)
	}
	if got, stranded := f.reason(t, addr); got != "healthy" || stranded {
		t.Errorf("home again: %q (stranded %v), want healthy", got, stranded)
	}
	if !strings.Contains(f.log.String(), "its netdev is in the node's network namespace") {
		t.Errorf("no log line of the VF home:\n%s", f.log)
	}
}

// TestStrandedVFNeedsTime: one scan that finds a VF stranded is not enough; the
// default is one second.
func TestStrandedVFNeedsTime(t *testing.T) {
	f := newStrandedFixture(t)
	f.s.StrandedAfter = 0 // the default
	const addr = "0000:81:01.0"
	if err := f.tree.RemoveNetdev(vf.MustParsePCIAddr(addr), f.netdevOf(t, addr).Name); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reason(t, addr); got != "healthy" {
		t.Errorf("two quick scans after the netdev left: %q, want healthy until a second has passed", got)
	}
}

// TestStrandedVFOff: without a CNI state directory, and for a VF on vfio-pci (which
// has no netdev), nothing is stranded.
func TestStrandedVFOff(t *testing.T) {
	f := newStrandedFixture(t)
	const addr = "0000:81:01.0"
	if err := f.tree.RemoveNetdev(vf.MustParsePCIAddr(addr), f.netdevOf(t, addr).Name); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.reason(t, "0000:81:01.5"); got != "healthy" {
		t.Errorf("vfio-pci VF: %q, want healthy", got)
	}
	f.s.CNIStateDir = ""
	if got, stranded := f.reason(t, addr); got != "healthy" || stranded {
		t.Errorf("no CNI state directory: %q (stranded %v), want healthy", got, stranded)
	}
}

// TestStrandedVFStateUnreadable: a state directory that the CNI plugin itself would
// refuse says nothing: no VF is reported stranded, and the log says why, once.
func TestStrandedVFStateUnreadable(t *testing.T) {
	f := newStrandedFixture(t)
	const addr = "0000:81:01.0"
	if err := os.Mkdir(f.store.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(f.store.Dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.store.Dir, "foreign"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.tree.RemoveNetdev(vf.MustParsePCIAddr(addr), f.netdevOf(t, addr).Name); err != nil {
		t.Fatal(err)
	}
	if got, stranded := f.reason(t, addr); got != "healthy" || stranded {
		t.Errorf("unreadable state: %q (stranded %v), want healthy", got, stranded)
	}
	if n := strings.Count(f.log.String(), "cannot read the CNI state"); n != 1 {
		t.Errorf("%d log lines about the unreadable state, want 1:\n%s", n, f.log)
	}
}
