package deviceplugin

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// ref names a VF of selectorTree: adapter (0 the T540-CR, 1 the T62100-CR), PF, VF index.
type ref struct{ a, pf, vf int }

// selectorTree builds two adapters and discovers their VFs:
//   - 0: a 4-port T540-CR at 0000:81:00, mgmtpf1,<pf>, 2 VFs on each PF (PFn → port n);
//     VF 3/1 on vfio-pci.
//   - 1: a 2-port T62100-CR at 0000:83:00, mgmtpf2,<pf>, 3 VFs on PF0 and 1 on each
//     other PF (PF0/PF2 → port 0, PF1/PF3 → port 1); VF 0/2 on vfio-pci, VF 1/0 unbound.
func selectorTree(t *testing.T) (*sysfstree.Tree, []*vf.VF) {
	t.Helper()
	tree, vfs := discovered(t,
		sysfstree.Adapter{
			Model: "T540-CR", Bus: 0x81, MgmtIndex: 1, VFs: [4]int{2, 2, 2, 2},
			Drivers: map[sysfstree.VFRef]string{{PF: 3, VF: 1}: vf.DriverVFIO},
		},
		sysfstree.Adapter{
			Model: "T62100-CR", Bus: 0x83, MgmtIndex: 2, VFs: [4]int{3, 1, 1, 1},
			Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 2}: vf.DriverVFIO, {PF: 1, VF: 0}: ""},
		},
	)
	if len(vfs) != 14 {
		t.Fatalf("Discover found %d VFs, want 14", len(vfs))
	}
	return tree, vfs
}

func TestAssignSelectors(t *testing.T) {
	tree, vfs := selectorTree(t)
	// refs turns VF references into their sorted addresses.
	refs := func(rs ...ref) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, tree.Adapters[r.a].VFs[r.pf][r.vf].Addr.String())
		}
		return sorted(out)[0]
	}
	allT5 := []ref{{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {0, 2, 0}, {0, 2, 1}, {0, 3, 0}, {0, 3, 1}}
	boundT6 := []ref{{1, 0, 0}, {1, 0, 1}, {1, 0, 2}, {1, 2, 0}, {1, 3, 0}} // not 1/0: unbound
	allBound := append(append([]ref{}, allT5...), boundT6...)
	// one wraps a selector into a config of one pool.
	one := func(selectors string) string {
		return `{"resourceList": [{"resourceName": "p", "selectors": ` + selectors + `}]}`
	}

	tests := []struct {
		name   string
		config string
		want   [][]string
	}{
		{"AND between keys", one(`{"chips": ["T5"], "pfs": [1]}`), [][]string{refs(ref{0, 1, 0}, ref{0, 1, 1})}},
		{"OR within a key", one(`{"chips": ["T6"], "pfs": [0, 2]}`), [][]string{refs(ref{1, 0, 0}, ref{1, 0, 1}, ref{1, 0, 2}, ref{1, 2, 0})}},
		{
			"list form ORs selectors",
			one(`[{"chips": ["T5"], "pfs": [0]}, {"models": ["T62100-CR"], "ports": [1]}]`),
			[][]string{refs(ref{0, 0, 0}, ref{0, 0, 1}, ref{1, 3, 0})},
		},
		{
			"first pool wins",
			`{"resourceList": [{"resourceName": "pf0", "selectors": {"pfs": [0]}}, {"resourceName": "rest"}]}`,
			[][]string{
				refs(ref{0, 0, 0}, ref{0, 0, 1}, ref{1, 0, 0}, ref{1, 0, 1}, ref{1, 0, 2}),
				refs(ref{0, 1, 0}, ref{0, 1, 1}, ref{0, 2, 0}, ref{0, 2, 1}, ref{0, 3, 0}, ref{0, 3, 1}, ref{1, 2, 0}, ref{1, 3, 0}),
			},
		},
		{
			"a later pool that matches nothing new stays empty",
			`{"resourceList": [{"resourceName": "all"}, {"resourceName": "t5", "selectors": {"chips": ["T5"]}}]}`,
			[][]string{refs(allBound...), {}},
		},
		{
			"rootDevices with ranges",
			one(`{"rootDevices": ["0000:81:00.0#1", "83:00.0#0,2-5"]}`),
			[][]string{refs(ref{0, 0, 1}, ref{1, 0, 0}, ref{1, 0, 2})},
		},
		{"rootDevices without a range", one(`{"rootDevices": ["0000:81:00.3"]}`), [][]string{refs(ref{0, 3, 0}, ref{0, 3, 1})}},
		{
			"pfNames with and without ranges",
			one(`{"pfNames": ["mgmtpf2,0#1-2", "mgmtpf1,3"]}`),
			[][]string{refs(ref{1, 0, 1}, ref{1, 0, 2}, ref{0, 3, 0}, ref{0, 3, 1})},
		},
		{"pfNames of no adapter", one(`{"pfNames": ["mgmtpf3,0"]}`), [][]string{{}}},
		{"models ignore case", one(`{"models": ["t540-CR"]}`), [][]string{refs(allT5...)}},
		{"chips", one(`{"chips": ["t6"]}`), [][]string{refs(boundT6...)}},
		{"ports on the 4-port card", one(`{"ports": [3]}`), [][]string{refs(ref{0, 3, 0}, ref{0, 3, 1})}},
		{"ports on the 2-port card", one(`{"ports": [1], "models": ["T62100-CR"]}`), [][]string{refs(ref{1, 3, 0})}},
		{"ports on both cards", one(`{"ports": [1]}`), [][]string{refs(ref{0, 1, 0}, ref{0, 1, 1}, ref{1, 3, 0})}},
		{"port 0 of the 2-port card is PF0 and PF2", one(`{"ports": [0], "chips": ["T6"]}`), [][]string{refs(ref{1, 0, 0}, ref{1, 0, 1}, ref{1, 0, 2}, ref{1, 2, 0})}},
		{"pfs", one(`{"pfs": [3]}`), [][]string{refs(ref{0, 3, 0}, ref{0, 3, 1}, ref{1, 3, 0})}},
		{"drivers", one(`{"drivers": ["vfio-pci"]}`), [][]string{refs(ref{0, 3, 1}, ref{1, 0, 2})}},
		{"vendors and devices", one(`{"vendors": ["1425"], "devices": ["5803"]}`), [][]string{refs(allT5...)}},
		{"devices in upper case", one(`{"devices": ["680D"]}`), [][]string{refs(boundT6...)}},
		{"pciAddresses in short form", one(`{"pciAddresses": ["81:01.0", "0000:83:01.0"]}`), [][]string{refs(ref{0, 0, 0}, ref{1, 0, 0})}},
		{"an unbound VF even by address", one(`{"pciAddresses": ["83:01.1"]}`), [][]string{{}}},
		{"linkTypes ether takes vfio VFs too", one(`{"linkTypes": ["ether"], "drivers": ["vfio-pci"]}`), [][]string{refs(ref{0, 3, 1}, ref{1, 0, 2})}},
		{"no selectors", `{"resourceList": [{"resourceName": "all"}]}`, [][]string{refs(allBound...)}},
		{"empty selector", one(`{}`), [][]string{refs(allBound...)}},
		{"nothing matches", one(`{"chips": ["T4"]}`), [][]string{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.config), "")
			if err != nil {
				t.Fatalf("Parse() error: %v", err)
			}
			if diff := cmp.Diff(tt.want, addrs(cfg.Assign(vfs))); diff != "" {
				t.Errorf("Assign() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAssignOrderAndRepeats(t *testing.T) {
	_, vfs := selectorTree(t)
	reversed := make([]*vf.VF, 0, 2*len(vfs))
	for i := len(vfs) - 1; i >= 0; i-- {
		reversed = append(reversed, vfs[i], nil, vfs[i])
	}
	cfg := Default("")
	want := addrs(cfg.Assign(vfs))
	if diff := cmp.Diff(want, addrs(cfg.Assign(reversed))); diff != "" {
		t.Errorf("Assign(reversed, repeated) mismatch (-want +got):\n%s", diff)
	}
	if n := len(want[0]) + len(want[1]); n != 13 {
		t.Errorf("zero-config assigned %d VFs, want the 13 bound ones", n)
	}
}

func TestNonChelsioNeverAssigned(t *testing.T) {
	tree, vfs := discovered(t,
		sysfstree.Adapter{Vendor: 0x8086, VFs: [4]int{2}},
		sysfstree.Adapter{VFs: [4]int{1}},
	)
	got := addrs([][]*vf.VF{vfs})
	if diff := cmp.Diff([][]string{{tree.Adapters[1].VFs[0][0].Addr.String()}}, got); diff != "" {
		t.Errorf("Discover() mismatch (-want +got):\n%s", diff)
	}

	// Even handed one, no pool takes it: not a selector-less pool, not the zero-config.
	intel := &vf.VF{Addr: vf.MustParsePCIAddr("0000:05:02.0"), VendorID: 0x8086, DeviceID: 0x154c, Driver: vf.DriverCxgb4VF}
	for _, cfg := range []*Config{Default(""), {Pools: []Pool{{ResourceName: "all", ResourcePrefix: "chelsio.com"}}}} {
		if diff := cmp.Diff(make([][]string, len(cfg.Pools)), nilEmpty(addrs(cfg.Assign([]*vf.VF{intel})))); diff != "" {
			t.Errorf("Assign(non-Chelsio VF) mismatch (-want +got):\n%s", diff)
		}
	}
}

// nilEmpty makes empty groups nil, to compare with make([][]string, n).
func nilEmpty(groups [][]string) [][]string {
	for i, g := range groups {
		if len(g) == 0 {
			groups[i] = nil
		}
	}
	return groups
}

func TestSelectorMatch(t *testing.T) {
	v := &vf.VF{
		Addr: vf.MustParsePCIAddr("0000:81:01.0"), VendorID: vf.VendorID, DeviceID: 0x680d, Chip: vf.T6, Model: "T62100-CR",
		PF: vf.MustParsePCIAddr("0000:81:00.0"), PFNumber: 0, VFIndex: 4, Port: 0, Driver: vf.DriverCxgb4VF, MgmtNetdev: "mgmtpf1,0",
	}
	unknownBoard := *v
	unknownBoard.Model, unknownBoard.DeviceID = "", 0x68ee
	noMgmt := *v
	noMgmt.MgmtNetdev = ""
	pf0 := vf.MustParsePCIAddr("0000:81:00.0")
	testMatch(t, []matchCase[Selector]{
		{"empty selector", Selector{}, v, true},
		{"nil VF", Selector{}, nil, false},
		{"every key matches", Selector{
			Vendors: []uint16{0x1425}, Devices: []uint16{0x680d}, Drivers: []string{"cxgb4vf"}, PCIAddresses: []vf.PCIAddr{v.Addr},
			RootDevices: []RootDevice{{PF: pf0, VFs: VFIndexes{{4, 4}}}}, PFNames: []PFName{{Name: "mgmtpf1,0", VFs: VFIndexes{{0, 7}}}},
			LinkTypes: []string{"ether"}, Models: []string{"t62100-cr"}, Chips: []vf.Chip{vf.T6}, Ports: []int{0}, PFs: []int{0},
		}, v, true},
		{"one key fails", Selector{Drivers: []string{"cxgb4vf"}, Ports: []int{1}}, v, false},
		{"one value of a key matches", Selector{Ports: []int{3, 2, 0}}, v, true},
		{"rootDevice, VF index outside the ranges", Selector{RootDevices: []RootDevice{{PF: pf0, VFs: VFIndexes{{0, 3}, {5, 9}}}}}, v, false},
		{"pfName, VF index outside the ranges", Selector{PFNames: []PFName{{Name: "mgmtpf1,0", VFs: VFIndexes{{5, 5}}}}}, v, false},
		{"pfName of a VF whose PF has no management netdev", Selector{PFNames: []PFName{{Name: ""}}}, &noMgmt, false},
		{"a link type other than Ethernet", Selector{LinkTypes: []string{"infiniband"}}, v, false},
		{"models never match an unknown board", Selector{Models: []string{""}}, &unknownBoard, false},
		{"chips match an unknown board", Selector{Chips: []vf.Chip{vf.T6}}, &unknownBoard, true},
	})
}

// matchCase is a case of a Match method: whether m matches v.
type matchCase[M interface{ Match(*vf.VF) bool }] struct {
	name string
	m    M
	v    *vf.VF
	want bool
}

func testMatch[M interface{ Match(*vf.VF) bool }](t *testing.T, tests []matchCase[M]) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Match(tt.v); got != tt.want {
				t.Errorf("Match() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPoolMatch(t *testing.T) {
	bound := &vf.VF{VendorID: vf.VendorID, DeviceID: 0x680d, Driver: vf.DriverCxgb4VF}
	unbound := &vf.VF{VendorID: vf.VendorID, DeviceID: 0x680d}
	other := &vf.VF{VendorID: 0x8086, DeviceID: 0x154c, Driver: vf.DriverCxgb4VF}
	vfio := Selector{Drivers: []string{vf.DriverVFIO}}
	testMatch(t, []matchCase[Pool]{
		{"no selectors take a bound Chelsio VF", Pool{}, bound, true},
		{"no selectors leave an unbound VF", Pool{}, unbound, false},
		{"no selectors leave a non-Chelsio VF", Pool{}, other, false},
		{"an empty selector leaves a non-Chelsio VF", Pool{Selectors: []Selector{{}}}, other, false},
		{"no selector matches", Pool{Selectors: []Selector{vfio}}, bound, false},
		{"a later selector matches", Pool{Selectors: []Selector{vfio, {Devices: []uint16{0x680d}}}}, bound, true},
		{"nil VF", Pool{}, nil, false},
	})
}

func TestVFIndexesContains(t *testing.T) {
	r := VFIndexes{{0, 0}, {2, 5}}
	tests := []struct {
		name  string
		r     VFIndexes
		index int
		want  bool
	}{
		{"empty is every VF", nil, 200, true},
		{"single index", r, 0, true},
		{"gap", r, 1, false},
		{"range start", r, 2, true},
		{"range end", r, 5, true},
		{"past the end", r, 6, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.Contains(tt.index); got != tt.want {
				t.Errorf("%v.Contains(%d) = %v, want %v", tt.r, tt.index, got, tt.want)
			}
		})
	}
}
