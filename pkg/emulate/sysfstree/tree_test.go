package sysfstree_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// section7 is the adapter of docs/hardware.md section 7.
var section7 = sysfstree.Adapter{
	Model: "T62100-CR", NUMANode: 1, VFs: [4]int{4, 2, 0, 0},
	Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO, {PF: 0, VF: 2}: ""},
}

func build(t *testing.T, opts sysfstree.Options, adapters ...sysfstree.Adapter) *sysfstree.Tree {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), opts, adapters...)
	if err != nil {
		t.Fatalf("Build() error: %v", err)
	}
	return tree
}

func addr(s string) vf.PCIAddr { return vf.MustParsePCIAddr(s) }

// realRoot is the tree's root with symbolic links resolved, for prefix checks.
func realRoot(t *testing.T, tree *sysfstree.Tree) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(string(tree.Root))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// resolve follows a root-relative path and returns the result relative to the root;
// it fails the test when the path leaves the root.
func resolve(t *testing.T, tree *sysfstree.Tree, rel string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(tree.Root.Path(rel))
	if err != nil {
		t.Fatalf("resolve %s: %v", rel, err)
	}
	r, err := filepath.Rel(realRoot(t, tree), p)
	if err != nil || r == ".." || strings.HasPrefix(r, "../") {
		t.Fatalf("%s resolves to %s, outside the root", rel, p)
	}
	return r
}

func lexists(tree *sysfstree.Tree, rel string) bool {
	_, err := os.Lstat(tree.Root.Path(rel))
	return err == nil
}

func read(t *testing.T, tree *sysfstree.Tree, rel string) string {
	t.Helper()
	s, err := tree.Root.ReadString(rel)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eachLinkStyle runs f as a subtest for a tree with relative links, then for one
// with absolute links.
func eachLinkStyle(t *testing.T, f func(t *testing.T, opts sysfstree.Options)) {
	for _, tc := range []struct {
		name     string
		absolute bool
	}{{"relative", false}, {"absolute", true}} {
		t.Run(tc.name, func(t *testing.T) { f(t, sysfstree.Options{AbsoluteLinks: tc.absolute}) })
	}
}

func TestLinks(t *testing.T) {
	eachLinkStyle(t, func(t *testing.T, opts sysfstree.Options) {
		tree := build(t, opts, section7, sysfstree.Adapter{Model: "T540-CR", VFs: [4]int{0, 0, 1, 1}})
		root := realRoot(t, tree)

		// Every link of the tree resolves, inside the root, and is written the
		// way the mode says.
		links := 0
		err := filepath.WalkDir(string(tree.Root), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			links++
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) != opts.AbsoluteLinks {
				t.Errorf("link %s -> %s: absolute = %v, want %v", p, target, filepath.IsAbs(target), opts.AbsoluteLinks)
			}
			res, err := filepath.EvalSymlinks(p)
			if err != nil {
				t.Errorf("link %s -> %s does not resolve: %v", p, target, err)
				return nil
			}
			if !strings.HasPrefix(res, root+string(filepath.Separator)) {
				t.Errorf("link %s -> %s resolves to %s, outside the root %s", p, target, res, root)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if links == 0 {
			t.Fatal("the tree has no links")
		}

		// bus/pci/devices/<bdf> leads to the function's directory under its root port.
		tests := []struct {
			rel, want string
		}{
			{"bus/pci/devices/0000:81:00.0", "devices/pci0000:80/0000:80:03.0/0000:81:00.0"},
			{"bus/pci/devices/0000:81:00.4", "devices/pci0000:80/0000:80:03.0/0000:81:00.4"},
			{"bus/pci/devices/0000:81:01.4", "devices/pci0000:80/0000:80:03.0/0000:81:01.4"},
			{"bus/pci/devices/0000:83:01.3", "devices/pci0000:82/0000:82:03.0/0000:83:01.3"},
			{"bus/pci/devices/0000:81:01.4/physfn", "devices/pci0000:80/0000:80:03.0/0000:81:00.0"},
			{"bus/pci/devices/0000:81:00.1/virtfn1", "devices/pci0000:80/0000:80:03.0/0000:81:01.5"},
			{"bus/pci/devices/0000:81:00.0/driver", "bus/pci/drivers/cxgb4"},
			{"bus/pci/devices/0000:81:01.4/driver", "bus/pci/drivers/vfio-pci"},
			{"bus/pci/drivers/cxgb4vf/0000:81:01.0", "devices/pci0000:80/0000:80:03.0/0000:81:01.0"},
			{"bus/pci/devices/0000:81:01.0/subsystem", "bus/pci"},
			{"class/net/enp129s1", "devices/pci0000:80/0000:80:03.0/0000:81:01.0/net/enp129s1"},
			{"class/net/enp129s1/device", "devices/pci0000:80/0000:80:03.0/0000:81:01.0"},
			{"class/net/enp129s1/device/physfn/net/mgmtpf1,0", "devices/pci0000:80/0000:80:03.0/0000:81:00.0/net/mgmtpf1,0"},
			{"class/net/mgmtpf1,1/device", "devices/pci0000:80/0000:80:03.0/0000:81:00.1"},
			{"class/net/mgmtpf2,3", "devices/pci0000:82/0000:82:03.0/0000:83:00.3/net/mgmtpf2,3"},
			{"class/net/enp129s0f4d1/device", "devices/pci0000:80/0000:80:03.0/0000:81:00.4"},
		}
		for _, tt := range tests {
			if got := resolve(t, tree, tt.rel); got != tt.want {
				t.Errorf("%s resolves to %s, want %s", tt.rel, got, tt.want)
			}
		}
		g, err := tree.Root.LinkBase("bus/pci/devices/0000:81:01.4/iommu_group")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := resolve(t, tree, "kernel/iommu_groups/"+g+"/devices/0000:81:01.4"), "devices/pci0000:80/0000:80:03.0/0000:81:01.4"; got != want {
			t.Errorf("IOMMU group %s device link resolves to %s, want %s", g, got, want)
		}
		dir, err := tree.FunctionDir(addr("0000:83:01.2"))
		if err != nil || dir != "devices/pci0000:82/0000:82:03.0/0000:83:01.2" {
			t.Errorf("FunctionDir(0000:83:01.2) = %q, %v; want devices/pci0000:82/0000:82:03.0/0000:83:01.2", dir, err)
		}
	})
}

func TestSection7Layout(t *testing.T) {
	tree := build(t, sysfstree.Options{}, section7)
	files := map[string]string{
		"bus/pci/devices/0000:81:00.0/vendor":          "0x1425",
		"bus/pci/devices/0000:81:00.0/device":          "0x600d",
		"bus/pci/devices/0000:81:00.0/class":           "0x020000",
		"bus/pci/devices/0000:81:00.0/numa_node":       "1",
		"bus/pci/devices/0000:81:00.0/sriov_totalvfs":  "16",
		"bus/pci/devices/0000:81:00.0/sriov_numvfs":    "4",
		"bus/pci/devices/0000:81:00.0/sriov_vf_device": "680d",
		"bus/pci/devices/0000:81:00.1/sriov_numvfs":    "2",
		"bus/pci/devices/0000:81:00.2/sriov_numvfs":    "0",
		"bus/pci/devices/0000:81:00.4/device":          "0x640d",
		"bus/pci/devices/0000:81:01.0/device":          "0x680d",
		"bus/pci/devices/0000:81:01.0/numa_node":       "1",
		"class/net/enp129s1/dev_port":                  "0",
		"class/net/enp129s1/type":                      "1",
		"class/net/enp129s1f1d1/dev_port":              "1",
		"class/net/enp129s0f4d1/dev_port":              "1",
		"class/net/mgmtpf1,0/type":                     "65534",
		"class/net/mgmtpf1,0/mtu":                      "0",
		"class/net/mgmtpf1,0/address":                  "",
	}
	for rel, want := range files {
		if got := read(t, tree, rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
	dirs := map[string][]string{
		"bus/pci/devices/0000:81:00.0/net": {"mgmtpf1,0"},
		"bus/pci/devices/0000:81:00.1/net": {"mgmtpf1,1"},
		"bus/pci/devices/0000:81:00.4/net": {"enp129s0f4", "enp129s0f4d1"},
		"bus/pci/devices/0000:81:01.0/net": {"enp129s1"},
		"bus/pci/devices/0000:81:01.1/net": {"enp129s1f1d1"},
		"bus/pci/devices/0000:81:01.5/net": {"enp129s1f5d1"},
		"bus/pci/devices/0000:81:02.4/net": {"enp129s2f4"},
	}
	for rel, want := range dirs {
		got, err := tree.Root.ReadDir(rel)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ReadDir(%s) mismatch (-want +got):\n%s", rel, diff)
		}
	}
	absent := []string{
		"bus/pci/devices/0000:81:00.2/net",          // no VFs, no mgmtpf
		"bus/pci/devices/0000:81:00.4/sriov_numvfs", // PF4 has no SR-IOV
		"bus/pci/devices/0000:81:01.4/net",          // vfio-pci
		"bus/pci/devices/0000:81:02.0/net",          // unbound
		"bus/pci/devices/0000:81:02.0/driver",       // unbound
		"bus/pci/devices/0000:81:01.0/sriov_numvfs",
	}
	for _, rel := range absent {
		if lexists(tree, rel) {
			t.Errorf("%s exists, want none", rel)
		}
	}
	var virtfn []string
	for k := range 4 {
		b, err := tree.Root.LinkBase("bus/pci/devices/0000:81:00.0/virtfn" + string(rune('0'+k)))
		if err != nil {
			t.Fatal(err)
		}
		virtfn = append(virtfn, b)
	}
	if diff := cmp.Diff([]string{"0000:81:01.0", "0000:81:01.4", "0000:81:02.0", "0000:81:02.4"}, virtfn); diff != "" {
		t.Errorf("PF0 virtfn0-3 mismatch (-want +got):\n%s", diff)
	}
}

// snapshot lists every entry of the tree: file contents, link targets, directories.
func snapshot(t *testing.T, tree *sysfstree.Tree) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(string(tree.Root), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(string(tree.Root), p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "-> " + target
			return err
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			out[rel] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSetNumVFs(t *testing.T) {
	tree := build(t, sysfstree.Options{}, sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{0, 1, 0, 0}})
	b := tree.Adapters[0]
	before := snapshot(t, tree)

	// 0 → 4 on PF0.
	if err := tree.SetNumVFs(b, 0, 4); err != nil {
		t.Fatalf("SetNumVFs(PF0, 4) error: %v", err)
	}
	pf0 := "bus/pci/devices/0000:81:00.0"
	if got := read(t, tree, pf0+"/sriov_numvfs"); got != "4" {
		t.Errorf("sriov_numvfs = %q, want 4", got)
	}
	want := []string{"0000:81:01.0", "0000:81:01.4", "0000:81:02.0", "0000:81:02.4"}
	var got []string
	for k := range 4 {
		v, err := tree.Root.LinkBase(pf0 + "/virtfn" + string(rune('0'+k)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
		if p, err := tree.Root.LinkBase(sysfstree.DevicePath(addr(v)) + "/physfn"); err != nil || p != "0000:81:00.0" {
			t.Errorf("VF %s physfn = %q, %v; want 0000:81:00.0", v, p, err)
		}
		if d, err := tree.Root.LinkBase(sysfstree.DevicePath(addr(v)) + "/driver"); err != nil || d != vf.DriverCxgb4VF {
			t.Errorf("VF %s driver = %q, %v; want cxgb4vf", v, d, err)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("virtfn links mismatch (-want +got):\n%s", diff)
	}
	if lexists(tree, pf0+"/virtfn4") {
		t.Error("virtfn4 exists after SetNumVFs(PF0, 4)")
	}
	if net, err := tree.Root.ReadDir(pf0 + "/net"); err != nil || !cmp.Equal(net, []string{"mgmtpf1,0"}) {
		t.Errorf("PF0 net/ = %q, %v; want [mgmtpf1,0]", net, err)
	}
	if got := resolve(t, tree, "class/net/mgmtpf1,0/device"); got != "devices/pci0000:80/0000:80:03.0/0000:81:00.0" {
		t.Errorf("class/net/mgmtpf1,0/device resolves to %s, want PF0", got)
	}
	for _, n := range []string{"enp129s1", "enp129s1f4", "enp129s2", "enp129s2f4"} {
		if !tree.Root.Exists("class/net/" + n) {
			t.Errorf("class/net/%s missing", n)
		}
	}
	if b.Mgmt[0] != "mgmtpf1,0" || len(b.VFs[0]) != 4 || b.VFs[0][3].Addr != addr("0000:81:02.4") || b.VFs[0][3].Netdev.Name != "enp129s2f4" {
		t.Errorf("BuiltAdapter after SetNumVFs(PF0, 4): Mgmt %q, VFs %+v", b.Mgmt, b.VFs[0])
	}
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil || len(node.VFs()) != 5 {
		t.Errorf("Discover() after SetNumVFs(PF0, 4): %d VFs, %v; want 5", len(node.VFs()), err)
	}

	// 4 → 2 goes through 0, as cxgb4 requires.
	if err := tree.SetNumVFs(b, 0, 2); err != nil {
		t.Fatalf("SetNumVFs(PF0, 2) error: %v", err)
	}
	if lexists(tree, pf0+"/virtfn2") || lexists(tree, "bus/pci/devices/0000:81:02.0") || !lexists(tree, pf0+"/virtfn1") {
		t.Error("SetNumVFs(PF0, 2) after 4 did not leave exactly virtfn0-1")
	}

	// → 0: the tree is as before.
	if err := tree.SetNumVFs(b, 0, 0); err != nil {
		t.Fatalf("SetNumVFs(PF0, 0) error: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, tree)); diff != "" {
		t.Errorf("tree after SetNumVFs 0 → 4 → 2 → 0 mismatch (-want +got):\n%s", diff)
	}
	if b.Mgmt[0] != "" || len(b.VFs[0]) != 0 {
		t.Errorf("BuiltAdapter after SetNumVFs(PF0, 0): Mgmt %q, %d VFs", b.Mgmt[0], len(b.VFs[0]))
	}

	for _, n := range []int{-1, 17} {
		if err := tree.SetNumVFs(b, 2, n); err == nil {
			t.Errorf("SetNumVFs(PF2, %d) succeeded with 16 total VFs", n)
		}
	}
}

func TestBind(t *testing.T) {
	eachLinkStyle(t, func(t *testing.T, opts sysfstree.Options) {
		tree := build(t, opts, section7)
		v := addr("0000:81:01.0")
		dev := sysfstree.DevicePath(v)
		devDir := "devices/pci0000:80/0000:80:03.0/0000:81:01.0"
		check := func(driver string) {
			t.Helper()
			d, err := tree.Root.LinkBase(dev + "/driver")
			switch {
			case driver == "" && !errors.Is(err, fs.ErrNotExist):
				t.Errorf("driver link after unbind: %q, %v; want none", d, err)
			case driver != "" && (err != nil || d != driver):
				t.Errorf("driver link = %q, %v; want %s", d, err, driver)
			}
			for _, drv := range []string{vf.DriverCxgb4VF, vf.DriverVFIO, "igb_uio"} {
				back := "bus/pci/drivers/" + drv + "/0000:81:01.0"
				if has := lexists(tree, back); has != (drv == driver) {
					t.Errorf("%s exists = %v with driver %q", back, has, driver)
				} else if has {
					if got := resolve(t, tree, back); got != devDir {
						t.Errorf("%s resolves to %s, want %s", back, got, devDir)
					}
				}
			}
		}
		check(vf.DriverCxgb4VF)
		steps := []string{vf.DriverVFIO, "", "", vf.DriverCxgb4VF, "igb_uio", vf.DriverVFIO}
		for _, drv := range steps {
			if err := tree.Bind(v, drv); err != nil {
				t.Fatalf("Bind(%q) error: %v", drv, err)
			}
			check(drv)
		}
		for _, f := range []string{"bind", "unbind", "new_id", "remove_id"} {
			if !tree.Root.Exists("bus/pci/drivers/igb_uio/" + f) {
				t.Errorf("bus/pci/drivers/igb_uio/%s missing after a bind to a new driver", f)
			}
		}
		node, err := vf.Discover(tree.Root, vf.Options{})
		if err != nil {
			t.Fatalf("Discover() error: %v", err)
		}
		if got, ok := node.VF(v); !ok || got.Driver != vf.DriverVFIO {
			t.Errorf("Discover() after Bind(vfio-pci): %+v", got)
		}
		if err := tree.Bind(addr("0000:85:01.0"), vf.DriverVFIO); err == nil {
			t.Error("Bind of a missing function succeeded")
		}
	})
}

func TestNetdevs(t *testing.T) {
	tree := build(t, sysfstree.Options{}, section7)
	v := addr("0000:81:01.0")
	devDir := "devices/pci0000:80/0000:80:03.0/0000:81:01.0"

	if err := tree.RemoveNetdev(v, "enp129s1"); err != nil {
		t.Fatalf("RemoveNetdev() error: %v", err)
	}
	for _, rel := range []string{devDir + "/net", "class/net/enp129s1"} {
		if lexists(tree, rel) {
			t.Errorf("%s exists after RemoveNetdev", rel)
		}
	}
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := node.VF(v); got == nil || got.Netdev != "" || !got.PortDerived {
		t.Errorf("Discover() after RemoveNetdev: %+v, want no netdev, port derived", got)
	}

	n := sysfstree.Netdev{Name: "net1", MAC: "02:00:00:00:00:01", MTU: 9000, DevPort: 1, Type: 1}
	if err := tree.AddNetdev(v, n); err != nil {
		t.Fatalf("AddNetdev() error: %v", err)
	}
	files := map[string]string{"address": "02:00:00:00:00:01", "mtu": "9000", "dev_port": "1", "type": "1", "operstate": "down", "carrier": "0"}
	for f, want := range files {
		if got := read(t, tree, "class/net/net1/"+f); got != want {
			t.Errorf("class/net/net1/%s = %q, want %q", f, got, want)
		}
	}
	if got := resolve(t, tree, "class/net/net1"); got != devDir+"/net/net1" {
		t.Errorf("class/net/net1 resolves to %s", got)
	}
	if got := resolve(t, tree, "class/net/net1/device"); got != devDir {
		t.Errorf("class/net/net1/device resolves to %s", got)
	}
	if err := tree.SetNetdevAttr("net1", "operstate", "up"); err != nil {
		t.Fatalf("SetNetdevAttr() error: %v", err)
	}
	if got := read(t, tree, devDir+"/net/net1/operstate"); got != "up" {
		t.Errorf("operstate after SetNetdevAttr = %q, want up", got)
	}
	if err := tree.SetNetdevAttr("net1", "no_such_attr", "1"); err == nil {
		t.Error("SetNetdevAttr(no_such_attr) succeeded")
	}
	if err := tree.SetNetdevAttr("enp129s1", "mtu", "1500"); err == nil {
		t.Error("SetNetdevAttr of a removed netdev succeeded")
	}
	node, err = vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := node.VF(v); got == nil || got.Netdev != "net1" || got.Port != 1 || got.PortDerived || got.MAC != n.MAC {
		t.Errorf("Discover() after AddNetdev: %+v, want netdev net1 on port 1", got)
	}
	if err := tree.AddNetdev(addr("0000:85:01.0"), n); err == nil {
		t.Error("AddNetdev on a missing function succeeded")
	}
}

func TestBadNetdevNames(t *testing.T) {
	tree := build(t, sysfstree.Options{}, section7)
	v := addr("0000:81:01.0")
	before := snapshot(t, tree)
	for _, name := range []string{"", ".", "..", "a/b", "../enp129s1", "eth:0", "a b", "tab\t", "nl\n", "nul\x00", "sixteen-chars-xx"} {
		t.Run(name, func(t *testing.T) {
			if err := tree.AddNetdev(v, sysfstree.Netdev{Name: name}); err == nil || !strings.Contains(err.Error(), "invalid netdev name") {
				t.Errorf("AddNetdev(%q) error %v, want invalid netdev name", name, err)
			}
			if err := tree.RemoveNetdev(v, name); err == nil || !strings.Contains(err.Error(), "invalid netdev name") {
				t.Errorf("RemoveNetdev(%q) error %v, want invalid netdev name", name, err)
			}
			if err := tree.SetNetdevAttr(name, "mtu", "1500"); err == nil || !strings.Contains(err.Error(), "invalid netdev name") {
				t.Errorf("SetNetdevAttr(%q) error %v, want invalid netdev name", name, err)
			}
		})
	}
	if diff := cmp.Diff(before, snapshot(t, tree)); diff != "" {
		t.Errorf("tree changed by calls with bad names (-want +got):\n%s", diff)
	}
	for _, name := range []string{"mgmtpf9,3", "fifteen-chars-x"} {
		if err := tree.AddNetdev(v, sysfstree.Netdev{Name: name}); err != nil {
			t.Errorf("AddNetdev(%q) error: %v", name, err)
		}
	}
}

func TestRemoveFunction(t *testing.T) {
	tree := build(t, sysfstree.Options{}, section7)
	v := addr("0000:81:01.0")
	g, err := tree.Root.LinkBase(sysfstree.DevicePath(v) + "/iommu_group")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.RemoveFunction(v); err != nil {
		t.Fatalf("RemoveFunction() error: %v", err)
	}
	for _, rel := range []string{
		sysfstree.DevicePath(v), "devices/pci0000:80/0000:80:03.0/0000:81:01.0", "class/net/enp129s1",
		"bus/pci/drivers/cxgb4vf/0000:81:01.0", "kernel/iommu_groups/" + g,
	} {
		if lexists(tree, rel) {
			t.Errorf("%s exists after RemoveFunction", rel)
		}
	}
	if _, err := tree.FunctionDir(v); err == nil {
		t.Error("FunctionDir of a removed function succeeded")
	}
}

func TestAddAdapterErrors(t *testing.T) {
	if _, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{Model: "T999-CR"}); err == nil {
		t.Error("Build() with an unknown model succeeded")
	}
	if _, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{17, 0, 0, 0}}); err == nil {
		t.Error("Build() with 17 of 16 VFs succeeded")
	}
}

func TestAdapterDefaults(t *testing.T) {
	tree := build(t, sysfstree.Options{}, sysfstree.Adapter{}, sysfstree.Adapter{Vendor: 0x8086, DeviceID: 0x6401, TotalVFs: 8, Ports: 3})
	a, b := tree.Adapters[0], tree.Adapters[1]
	if a.Product.Model != "T62100-CR" || a.PF4 != addr("0000:81:00.4") || len(a.Ports) != 2 || a.Spec.MgmtIndex != 1 {
		t.Errorf("zero Adapter built as %s, PF4 %s, %d ports, mgmt %d; want T62100-CR, 0000:81:00.4, 2, 1", a.Product.Model, a.PF4, len(a.Ports), a.Spec.MgmtIndex)
	}
	if b.PFs[3] != addr("0000:83:00.3") || len(b.Ports) != 3 || b.Spec.MgmtIndex != 2 || b.Product.Model != "T6225-CR" {
		t.Errorf("second Adapter: PF3 %s, %d ports, mgmt %d, model %q", b.PFs[3], len(b.Ports), b.Spec.MgmtIndex, b.Product.Model)
	}
	for rel, want := range map[string]string{
		"bus/pci/devices/0000:83:00.0/vendor":         "0x8086",
		"bus/pci/devices/0000:83:00.0/device":         "0x6001",
		"bus/pci/devices/0000:83:00.0/sriov_totalvfs": "8",
	} {
		if got := read(t, tree, rel); got != want {
			t.Errorf("%s = %q, want %q", rel, got, want)
		}
	}
}

func TestVFAddr(t *testing.T) {
	base := addr("0000:81:00.0")
	tests := []struct {
		pf, k int
		want  string
	}{
		{0, 0, "0000:81:01.0"},
		{0, 1, "0000:81:01.4"},
		{0, 2, "0000:81:02.0"},
		{0, 3, "0000:81:02.4"},
		{1, 0, "0000:81:01.1"},
		{1, 1, "0000:81:01.5"},
		{3, 15, "0000:81:08.7"},
		{3, 61, "0000:81:1f.7"},
		{0, 62, "0000:82:00.0"}, // carries into the next bus
	}
	for _, tt := range tests {
		if got := sysfstree.VFAddr(base, tt.pf, tt.k).String(); got != tt.want {
			t.Errorf("VFAddr(%s, PF%d, VF%d) = %s, want %s", base, tt.pf, tt.k, got, tt.want)
		}
	}
}

func TestNetdevName(t *testing.T) {
	tests := []struct {
		addr    string
		devPort int
		want    string
	}{
		{"0000:81:01.0", 0, "enp129s1"},
		{"0000:81:01.1", 1, "enp129s1f1d1"},
		{"0000:81:02.4", 0, "enp129s2f4"},
		{"0000:81:00.4", 0, "enp129s0f4"},
		{"0000:81:00.4", 1, "enp129s0f4d1"},
		{"0000:83:1f.7", 3, "enp131s31f7d3"},
	}
	for _, tt := range tests {
		if got := sysfstree.NetdevName(addr(tt.addr), tt.devPort); got != tt.want {
			t.Errorf("NetdevName(%s, %d) = %q, want %q", tt.addr, tt.devPort, got, tt.want)
		}
	}
}

func TestVFMAC(t *testing.T) {
	tests := []struct {
		base         uint32
		pf, k, total int
		want         string
	}{
		{0x810000, 0, 0, 16, "02:07:43:81:00:00"},
		{0x810000, 1, 0, 16, "02:07:43:81:00:10"},
		{0x810100, 3, 15, 16, "02:07:43:81:01:3f"},
		{0x810100, 3, 200, 248, "02:07:43:81:02:b0"},
	}
	for _, tt := range tests {
		if got := sysfstree.VFMAC(tt.base, tt.pf, tt.k, tt.total); got != tt.want {
			t.Errorf("VFMAC(%#x, %d, %d, %d) = %q, want %q", tt.base, tt.pf, tt.k, tt.total, got, tt.want)
		}
	}
}
