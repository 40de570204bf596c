package deviceplugin_test

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/internal/vftree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/deviceplugin"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// scanFixture is vftree.TwoAdapters with carrier on every port netdev.
func scanFixture(t *testing.T) *sysfstree.Tree {
	t.Helper()
	tree := vftree.TwoAdapters(t)
	portsUp(t, tree)
	return tree
}

// portsUp gives every port netdev of the tree carrier, as a cabled port has; sysfstree
// builds them without.
func portsUp(tb testing.TB, tree *sysfstree.Tree) {
	tb.Helper()
	for _, a := range tree.Adapters {
		for _, p := range a.Ports {
			setPortAttr(tb, tree, p.Name, "operstate", "up")
			setPortAttr(tb, tree, p.Name, "carrier", "1")
		}
	}
}

func setPortAttr(tb testing.TB, tree *sysfstree.Tree, netdev, attr, value string) {
	tb.Helper()
	if err := tree.SetNetdevAttr(netdev, attr, value); err != nil {
		tb.Fatal(err)
	}
}

func parseConfig(t *testing.T, js []byte, prefix string) *deviceplugin.Config {
	t.Helper()
	cfg, err := deviceplugin.Parse(js, prefix)
	if err != nil {
		t.Fatalf("Parse(%s): %v", js, err)
	}
	return cfg
}

// mustScan scans and fails the test on any error.
func mustScan(t *testing.T, s deviceplugin.Scanner) deviceplugin.DeviceTree {
	t.Helper()
	tree, err := s.Scan()
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if tree == nil {
		t.Fatal("Scan returned a nil tree and no error")
	}
	return tree
}

// pools maps each resource of a scan to its device IDs, in order ([] when none).
func pools(tree deviceplugin.DeviceTree) map[string][]string {
	out := map[string][]string{}
	for name, r := range tree {
		out[name] = append([]string{}, r.IDs()...)
	}
	return out
}

// health maps each device of a resource to "healthy" or its reason.
func health(t *testing.T, tree deviceplugin.DeviceTree, resource string) map[string]string {
	t.Helper()
	r, ok := tree[resource]
	if !ok {
		t.Fatalf("no resource %s in the scan (have %v)", resource, slices.Sorted(func(yield func(string) bool) {
			for n := range tree {
				if !yield(n) {
					return
				}
			}
		}))
	}
	out := map[string]string{}
	for id, d := range r.Devices {
		switch {
		case d.Healthy && d.Reason == "":
			out[id] = "healthy"
		case d.Healthy:
			out[id] = "healthy, yet with a reason: " + d.Reason
		default:
			out[id] = d.Reason
		}
	}
	return out
}

// allHealthy is health's answer for devices that are all healthy.
func allHealthy(ids ...string) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		out[id] = "healthy"
	}
	return out
}

// wantDevice is the Device a scan should give for VF k of PF pf of adapter a of the
// tree, healthy, with its IOMMU group read from the tree.
func wantDevice(t *testing.T, tree *sysfstree.Tree, a, pf, k int) *deviceplugin.Device {
	t.Helper()
	b := tree.Adapters[a]
	bv := b.VFs[pf][k]
	g, err := tree.Root.LinkBase(sysfstree.DevicePath(bv.Addr) + "/iommu_group")
	if err != nil {
		t.Fatal(err)
	}
	group, err := strconv.Atoi(g)
	if err != nil {
		t.Fatal(err)
	}
	return &deviceplugin.Device{
		ID: bv.Addr.String(), Healthy: true, NUMANode: b.Spec.NUMANode, Adapter: b.PFs[pf].Slot(), Port: bv.Port,
		PF: b.PFs[pf].String(), VFIndex: k, Driver: bv.Driver, IOMMUGroup: group, Model: b.Product.Model,
		Chip: string(b.Product.Chip), MgmtNetdev: b.Mgmt[pf], LinkSpeed: b.Product.PortSpeedMbps(),
	}
}

func TestChelsioScannerSeedConfig(t *testing.T) {
	tree := scanFixture(t)
	// Exactly the cxgb4vf VFs of the T6 (device 680d): not the vfio one, not the T5's.
	wantIDs := []string{"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4"}
	tests := []struct {
		name, prefix, resource string
	}{
		{"--resource-prefix intel.com, as the seed deploys it", "intel.com", "intel.com/chelsio_sriov_netdevice"},
		{"default prefix", "", "chelsio.com/chelsio_sriov_netdevice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := deviceplugin.NewChelsioScanner(tree.Root, parseConfig(t, deviceplugin.SeedConfig(t), tt.prefix), nil)
			got := mustScan(t, s)
			if diff := cmp.Diff(map[string][]string{tt.resource: wantIDs}, pools(got)); diff != "" {
				t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
			}
			prefix, name, _ := strings.Cut(tt.resource, "/")
			want := &deviceplugin.Resource{Prefix: prefix, Name: name, Devices: map[string]*deviceplugin.Device{}}
			for _, r := range [][2]int{{0, 0}, {0, 1}} { // PF0 VF0-1
				d := wantDevice(t, tree, 0, r[0], r[1])
				want.Devices[d.ID] = d
			}
			for pf := 1; pf <= 3; pf++ { // VF0 of PF1-PF3
				d := wantDevice(t, tree, 0, pf, 0)
				want.Devices[d.ID] = d
			}
			if diff := cmp.Diff(want, got[tt.resource]); diff != "" {
				t.Errorf("Scan() resource %s mismatch (-want +got):\n%s", tt.resource, diff)
			}
		})
	}
}

func TestChelsioScannerZeroConfig(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	got := mustScan(t, s)
	want := map[string][]string{
		"chelsio.com/vf": {
			"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4",
			"0000:83:01.0", "0000:83:01.1", "0000:83:01.3", // 83:01.2 is unbound
		},
		"chelsio.com/vf-vfio": {"0000:81:01.5"},
	}
	if diff := cmp.Diff(want, pools(got)); diff != "" {
		t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantDevice(t, tree, 0, 1, 1), got["chelsio.com/vf-vfio"].Devices["0000:81:01.5"]); diff != "" {
		t.Errorf("vfio device mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantDevice(t, tree, 1, 3, 0), got["chelsio.com/vf"].Devices["0000:83:01.3"]); diff != "" {
		t.Errorf("T5 device mismatch (-want +got):\n%s", diff)
	}
	for _, r := range got {
		if r.Prefix != "chelsio.com" {
			t.Errorf("resource %s has prefix %q, want chelsio.com", r.FullName(), r.Prefix)
		}
	}
	if cfg := s.Config(); cfg == nil || len(cfg.Pools) != 2 {
		t.Errorf("Config() = %+v, want the two zero-config pools", cfg)
	}
}

func TestChelsioScannerPortCarrier(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil) // Links nil: carrier from sysfs
	if diff := cmp.Diff(allHealthy("0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3"),
		health(t, mustScan(t, s), "chelsio.com/vf")); diff != "" {
		t.Fatalf("health at start mismatch (-want +got):\n%s", diff)
	}

	// Port 0 of the T6 loses its link: its VFs (PF0 and PF2) go unhealthy; port 1's,
	// and port 0 of the other adapter, do not.
	setPortAttr(t, tree, "enp129s0f4", "carrier", "0")
	const down = "port 0 (enp129s0f4) link down"
	got := mustScan(t, s)
	want := allHealthy("0000:81:01.1", "0000:81:01.3", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3")
	want["0000:81:01.0"], want["0000:81:01.4"], want["0000:81:01.2"] = down, down, down
	if diff := cmp.Diff(want, health(t, got, "chelsio.com/vf")); diff != "" {
		t.Errorf("health with port 0 down mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(allHealthy("0000:81:01.5"), health(t, got, "chelsio.com/vf-vfio")); diff != "" {
		t.Errorf("vfio VF of port 1 mismatch (-want +got):\n%s", diff)
	}

	// Port 1 of the T6 as well: the vfio VF too.
	setPortAttr(t, tree, "enp129s0f4d1", "carrier", "0")
	if diff := cmp.Diff(map[string]string{"0000:81:01.5": "port 1 (enp129s0f4d1) link down"}, health(t, mustScan(t, s), "chelsio.com/vf-vfio")); diff != "" {
		t.Errorf("vfio VF with port 1 down mismatch (-want +got):\n%s", diff)
	}

	// Both back.
	setPortAttr(t, tree, "enp129s0f4", "carrier", "1")
	setPortAttr(t, tree, "enp129s0f4d1", "carrier", "1")
	got = mustScan(t, s)
	if diff := cmp.Diff(allHealthy("0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3"),
		health(t, got, "chelsio.com/vf")); diff != "" {
		t.Errorf("health after the link came back mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(allHealthy("0000:81:01.5"), health(t, got, "chelsio.com/vf-vfio")); diff != "" {
		t.Errorf("vfio health after the link came back mismatch (-want +got):\n%s", diff)
	}
}

// fakeLinks is a PortLinks with the netlink view a test sets.
type fakeLinks struct {
	mu sync.Mutex
	up map[string]bool // absent: never seen
}

func (f *fakeLinks) PortUp(netdev string) (up, known bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	up, known = f.up[netdev]
	return up, known
}

func TestChelsioScannerPortLinks(t *testing.T) {
	const down = "port 0 (enp129s0f4) link down"
	port0 := []string{"0000:81:01.0", "0000:81:01.2", "0000:81:01.4"}
	tests := []struct {
		name     string
		carrier  string          // sysfs carrier of enp129s0f4
		links    map[string]bool // the netlink view
		wantDown bool            // port 0's VFs unhealthy
	}{
		{"netlink down overrides sysfs carrier", "1", map[string]bool{"enp129s0f4": false, "enp129s0f4d1": true}, true},
		{"netlink up overrides sysfs no carrier", "0", map[string]bool{"enp129s0f4": true}, false},
		{"port unknown to netlink: sysfs carrier", "0", map[string]bool{"enp129s0f4d1": true}, true},
		{"port unknown to netlink, sysfs carrier up", "1", map[string]bool{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := scanFixture(t)
			setPortAttr(t, tree, "enp129s0f4", "carrier", tt.carrier)
			s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), &fakeLinks{up: tt.links})
			want := allHealthy("0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3")
			if tt.wantDown {
				for _, id := range port0 {
					want[id] = down
				}
			}
			if diff := cmp.Diff(want, health(t, mustScan(t, s), "chelsio.com/vf")); diff != "" {
				t.Errorf("health mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChelsioScannerVFsComeAndGo(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	all := []string{"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3"}
	if diff := cmp.Diff(all, mustScan(t, s)["chelsio.com/vf"].IDs()); diff != "" {
		t.Fatalf("at start mismatch (-want +got):\n%s", diff)
	}
	t6 := tree.Adapters[0]

	// sriov_numvfs of PF0 from 2 to 1: VF 0/1 (81:01.4) goes.
	if err := tree.SetNumVFs(t6, 0, 1); err != nil {
		t.Fatal(err)
	}
	without := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == "0000:81:01.4" })
	got := mustScan(t, s)
	if diff := cmp.Diff(without, got["chelsio.com/vf"].IDs()); diff != "" {
		t.Errorf("after removing a VF mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(allHealthy(without...), health(t, got, "chelsio.com/vf")); diff != "" {
		t.Errorf("the VFs that stay mismatch (-want +got):\n%s", diff)
	}

	// Back to 2, and to 3: each new VF appears, healthy.
	if err := tree.SetNumVFs(t6, 0, 3); err != nil {
		t.Fatal(err)
	}
	got = mustScan(t, s)
	more := slices.Sorted(slices.Values(append(slices.Clone(all), "0000:81:02.0"))) // PF0 VF2
	if diff := cmp.Diff(allHealthy(more...), health(t, got, "chelsio.com/vf")); diff != "" {
		t.Errorf("after adding VFs mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantDevice(t, tree, 0, 0, 2), got["chelsio.com/vf"].Devices["0000:81:02.0"]); diff != "" {
		t.Errorf("new VF mismatch (-want +got):\n%s", diff)
	}

	// Every VF of PF0 gone.
	if err := tree.SetNumVFs(t6, 0, 0); err != nil {
		t.Fatal(err)
	}
	fewer := slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == "0000:81:01.0" || id == "0000:81:01.4" })
	if diff := cmp.Diff(fewer, mustScan(t, s)["chelsio.com/vf"].IDs()); diff != "" {
		t.Errorf("after removing PF0's VFs mismatch (-want +got):\n%s", diff)
	}
}

func TestChelsioScannerDriverChange(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	vfIDs := []string{"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3"}
	mustScan(t, s) // the VFs find their pools
	bind := func(addr, driver string) {
		t.Helper()
		if err := tree.Bind(vf.MustParsePCIAddr(addr), driver); err != nil {
			t.Fatal(err)
		}
	}
	check := func(step string, wantVF, wantVFIO map[string]string) deviceplugin.DeviceTree {
		t.Helper()
		got := mustScan(t, s)
		if diff := cmp.Diff(wantVF, health(t, got, "chelsio.com/vf")); diff != "" {
			t.Errorf("%s: chelsio.com/vf mismatch (-want +got):\n%s", step, diff)
		}
		if diff := cmp.Diff(wantVFIO, health(t, got, "chelsio.com/vf-vfio")); diff != "" {
			t.Errorf("%s: chelsio.com/vf-vfio mismatch (-want +got):\n%s", step, diff)
		}
		return got
	}

	// A cxgb4vf VF rebound to vfio-pci stays in its first pool, unhealthy, and does
	// not appear in vf-vfio while a pod may hold it.
	bind("0000:81:01.0", vf.DriverVFIO)
	want := allHealthy(vfIDs...)
	want["0000:81:01.0"] = "driver changed from cxgb4vf to vfio-pci"
	got := check("cxgb4vf → vfio-pci", want, allHealthy("0000:81:01.5"))
	if d := got["chelsio.com/vf"].Devices["0000:81:01.0"]; d.Driver != vf.DriverVFIO {
		t.Errorf("rebound device's Driver = %q, want %q", d.Driver, vf.DriverVFIO)
	}

	// The other way: the vfio VF rebound to cxgb4vf stays in vf-vfio. And an unbound VF
	// is no driver.
	bind("0000:81:01.5", vf.DriverCxgb4VF)
	bind("0000:83:01.0", "")
	want["0000:83:01.0"] = "driver changed from cxgb4vf to none"
	check("vfio-pci → cxgb4vf; cxgb4vf → none", want, map[string]string{"0000:81:01.5": "driver changed from vfio-pci to cxgb4vf"})

	// Back to their first drivers: healthy again, where they were.
	bind("0000:81:01.0", vf.DriverCxgb4VF)
	bind("0000:81:01.5", vf.DriverVFIO)
	bind("0000:83:01.0", vf.DriverCxgb4VF)
	check("drivers restored", allHealthy(vfIDs...), allHealthy("0000:81:01.5"))

	// SetConfig starts afresh: a VF rebound before it is placed by its driver now.
	bind("0000:81:01.0", vf.DriverVFIO)
	mustScan(t, s)
	s.SetConfig(deviceplugin.Default(""))
	rest := slices.DeleteFunc(slices.Clone(vfIDs), func(id string) bool { return id == "0000:81:01.0" })
	check("after SetConfig", allHealthy(rest...), allHealthy("0000:81:01.0", "0000:81:01.5"))
}

func TestChelsioScannerExcludeTopology(t *testing.T) {
	tree := scanFixture(t)
	cfg := parseConfig(t, []byte(`{"resourceList": [
		{"resourceName": "t6", "excludeTopology": true, "selectors": {"chips": ["T6"]}},
		{"resourceName": "t5", "selectors": {"chips": ["T5"]}}
	]}`), "")
	got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, cfg, nil))
	numa := func(resource string) map[string]int {
		out := map[string]int{}
		for id, d := range got[resource].Devices {
			out[id] = d.NUMANode
		}
		return out
	}
	wantT6 := map[string]int{"0000:81:01.0": -1, "0000:81:01.1": -1, "0000:81:01.2": -1, "0000:81:01.3": -1, "0000:81:01.4": -1, "0000:81:01.5": -1}
	if diff := cmp.Diff(wantT6, numa("chelsio.com/t6")); diff != "" {
		t.Errorf("excludeTopology pool NUMA nodes mismatch (-want +got):\n%s", diff)
	}
	wantT5 := map[string]int{"0000:83:01.0": 1, "0000:83:01.1": 1, "0000:83:01.3": 1}
	if diff := cmp.Diff(wantT5, numa("chelsio.com/t5")); diff != "" {
		t.Errorf("pool with topology NUMA nodes mismatch (-want +got):\n%s", diff)
	}
}

func TestChelsioScannerAdditionalInfo(t *testing.T) {
	tree := scanFixture(t)
	cfg := parseConfig(t, []byte(`{"resourceList": [
		{"resourceName": "t6", "selectors": {"chips": ["T6"], "drivers": ["cxgb4vf"]},
		 "additionalInfo": {"*": {"fabric": "storage", "rack": "r1"}, "81:01.4": {"fabric": "backup"}, "0000:81:01.2": {"lane": "2"}}},
		{"resourceName": "t5", "selectors": {"chips": ["T5"]}}
	]}`), "")
	got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, cfg, nil))
	extra := func(resource string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for id, d := range got[resource].Devices {
			out[id] = d.Extra
		}
		return out
	}
	all := map[string]string{"fabric": "storage", "rack": "r1"}
	wantT6 := map[string]map[string]string{
		"0000:81:01.0": all, "0000:81:01.1": all, "0000:81:01.3": all,
		"0000:81:01.4": {"fabric": "backup", "rack": "r1"},
		"0000:81:01.2": {"fabric": "storage", "rack": "r1", "lane": "2"},
	}
	if diff := cmp.Diff(wantT6, extra("chelsio.com/t6")); diff != "" {
		t.Errorf("Extra mismatch (-want +got):\n%s", diff)
	}
	wantT5 := map[string]map[string]string{"0000:83:01.0": nil, "0000:83:01.1": nil, "0000:83:01.3": nil}
	if diff := cmp.Diff(wantT5, extra("chelsio.com/t5")); diff != "" {
		t.Errorf("Extra of a pool without additionalInfo mismatch (-want +got):\n%s", diff)
	}
	// Each device has its own map.
	got["chelsio.com/t6"].Devices["0000:81:01.0"].Extra["fabric"] = "changed"
	if f := got["chelsio.com/t6"].Devices["0000:81:01.1"].Extra["fabric"]; f != "storage" {
		t.Errorf("devices share their Extra map: 81:01.1's fabric became %q", f)
	}
	if f := cfg.Pools[0].AdditionalInfo["*"]["fabric"]; f != "storage" {
		t.Errorf("a device's Extra is the config's map: its fabric became %q", f)
	}
}

func TestChelsioScannerBrokenVF(t *testing.T) {
	tree := scanFixture(t)
	s := deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil)
	mustScan(t, s)
	broken := vf.MustParsePCIAddr("0000:81:01.4")
	dir, err := tree.FunctionDir(broken)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(tree.Root.Path(dir + "/physfn")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Scan()
	if err == nil {
		t.Fatal("Scan() of a tree with a broken VF: no error")
	}
	var de *vf.DeviceError
	if !errors.As(err, &de) || de.Addr != broken.String() || !strings.Contains(err.Error(), "physfn") {
		t.Errorf("Scan() error = %v, want a *vf.DeviceError for %s naming physfn", err, broken)
	}
	if got == nil {
		t.Fatal("Scan() of a tree with a broken VF: nil tree, want the other VFs")
	}
	want := map[string][]string{
		"chelsio.com/vf":      {"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:83:01.0", "0000:83:01.1", "0000:83:01.3"},
		"chelsio.com/vf-vfio": {"0000:81:01.5"},
	}
	if diff := cmp.Diff(want, pools(got)); diff != "" {
		t.Errorf("partial Scan() mismatch (-want +got):\n%s", diff)
	}
}

func TestChelsioScannerEmptyPools(t *testing.T) {
	t.Run("configured pools that match nothing", func(t *testing.T) {
		tree := scanFixture(t)
		cfg := parseConfig(t, []byte(`{"resourceList": [
			{"resourceName": "t6", "selectors": {"chips": ["T6"], "drivers": ["cxgb4vf"]}},
			{"resourceName": "t4", "selectors": {"chips": ["T4"]}},
			{"resourceName": "elsewhere", "resourcePrefix": "example.com", "selectors": {"pciAddresses": ["0000:99:01.0"]}}
		]}`), "")
		got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, cfg, nil))
		want := map[string][]string{
			"chelsio.com/t6":        {"0000:81:01.0", "0000:81:01.1", "0000:81:01.2", "0000:81:01.3", "0000:81:01.4"},
			"chelsio.com/t4":        {},
			"example.com/elsewhere": {},
		}
		if diff := cmp.Diff(want, pools(got)); diff != "" {
			t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("zero-config on a node without adapters", func(t *testing.T) {
		tree, err := sysfstree.NewTree(t.TempDir(), sysfstree.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default("intel.com"), nil))
		want := map[string][]string{"intel.com/vf": {}, "intel.com/vf-vfio": {}}
		if diff := cmp.Diff(want, pools(got)); diff != "" {
			t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
		}
	})
	t.Run("zero-config, adapter without VFs", func(t *testing.T) {
		tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{})
		if err != nil {
			t.Fatal(err)
		}
		got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil))
		want := map[string][]string{"chelsio.com/vf": {}, "chelsio.com/vf-vfio": {}}
		if diff := cmp.Diff(want, pools(got)); diff != "" {
			t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestChelsioScannerNoSysfs(t *testing.T) {
	s := deviceplugin.NewChelsioScanner("/nonexistent/sysfs", deviceplugin.Default(""), nil)
	tree, err := s.Scan()
	if err == nil || tree != nil {
		t.Errorf("Scan() of a root without bus/pci/devices = %v, %v; want nil and an error", tree, err)
	}
}

// TestChelsioScannerPFWithoutSRIOV: a PF0-3 without SR-IOV (no sriov_* files: the
// firmware config gives it no VFs) simply adds no device. The scan is whole, not
// partial: no error, so no warning and no scan error counted.
func TestChelsioScannerPFWithoutSRIOV(t *testing.T) {
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{2, 1, 0, 0}})
	if err != nil {
		t.Fatal(err)
	}
	portsUp(t, tree)
	for _, f := range []string{"sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_drivers_autoprobe", "sriov_vf_device"} {
		if err := os.Remove(tree.Root.Path(sysfstree.DevicePath(tree.Adapters[0].PFs[2]), f)); err != nil {
			t.Fatal(err)
		}
	}
	got := mustScan(t, deviceplugin.NewChelsioScanner(tree.Root, deviceplugin.Default(""), nil))
	want := map[string][]string{"chelsio.com/vf": {"0000:81:01.0", "0000:81:01.1", "0000:81:01.4"}, "chelsio.com/vf-vfio": {}}
	if diff := cmp.Diff(want, pools(got)); diff != "" {
		t.Errorf("Scan() pools mismatch (-want +got):\n%s", diff)
	}
}
