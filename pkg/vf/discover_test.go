package vf_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/emulate/sysfstree"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// vfView is the part of a VF that the discovery tests compare; the IOMMU group is
// checked on its own, because group numbers are the builder's choice.
type vfView struct {
	Addr        string
	DeviceID    uint16
	Chip        vf.Chip
	Model       string
	PF          string
	PFNumber    int
	VFIndex     int
	Port        int
	PortDerived bool
	Driver      string
	Netdev      string
	MAC         string
	MgmtNetdev  string
	NUMANode    int
}

func viewVFs(vs []*vf.VF) []vfView {
	out := []vfView{}
	for _, v := range vs {
		if v.VendorID != vf.VendorID {
			panic(fmt.Sprintf("VF %s has vendor %#04x", v.Addr, v.VendorID))
		}
		out = append(out, vfView{
			Addr: v.Addr.String(), DeviceID: v.DeviceID, Chip: v.Chip, Model: v.Model,
			PF: v.PF.String(), PFNumber: v.PFNumber, VFIndex: v.VFIndex, Port: v.Port,
			PortDerived: v.PortDerived, Driver: v.Driver, Netdev: v.Netdev, MAC: v.MAC,
			MgmtNetdev: v.MgmtNetdev, NUMANode: v.NUMANode,
		})
	}
	return out
}

type pfView struct {
	Addr       string
	Number     int
	DeviceID   uint16
	Driver     string
	SRIOV      bool
	TotalVFs   int
	NumVFs     int
	MgmtNetdev string
	NUMANode   int
	VFs        []string // addresses, by VF index
}

type adapterView struct {
	Slot     string
	Model    string // Adapter.Model()
	Chip     vf.Chip
	Known    bool
	NumPorts int
	NUMANode int
	PF4      string // "" when absent
	PF4Ports []vf.Port
	PFs      []pfView
}

func viewAdapters(as []*vf.Adapter) []adapterView {
	out := []adapterView{}
	for _, a := range as {
		av := adapterView{Slot: a.Slot, Model: a.Model(), Chip: a.Product.Chip, Known: a.Known, NumPorts: a.NumPorts, NUMANode: a.NUMANode}
		if a.PF4 != nil {
			av.PF4, av.PF4Ports = a.PF4.Addr.String(), a.PF4.Ports
		}
		for _, pf := range a.PFs {
			pv := pfView{Addr: pf.Addr.String(), Number: pf.Number, DeviceID: pf.DeviceID, Driver: pf.Driver, SRIOV: pf.SRIOV, TotalVFs: pf.TotalVFs, NumVFs: pf.NumVFs, MgmtNetdev: pf.MgmtNetdev, NUMANode: pf.NUMANode}
			for _, v := range pf.VFs {
				pv.VFs = append(pv.VFs, v.Addr.String())
			}
			av.PFs = append(av.PFs, pv)
		}
		out = append(out, av)
	}
	return out
}

// wantPFs is PF0-PF3 of an adapter at slot ("0000:81:00") on cxgb4 with 16 VFs each
// possible; vfs lists the VF addresses of each PF by index, mgmt the <adap> of its
// management netdev.
func wantPFs(slot string, id uint16, numa, mgmt int, vfs [4][]string) []pfView {
	var out []pfView
	for n := range 4 {
		pv := pfView{Addr: fmt.Sprintf("%s.%d", slot, n), Number: n, DeviceID: id, Driver: "cxgb4", SRIOV: true, TotalVFs: 16, NumVFs: len(vfs[n]), NUMANode: numa, VFs: vfs[n]}
		if len(vfs[n]) > 0 {
			pv.MgmtNetdev = fmt.Sprintf("mgmtpf%d,%d", mgmt, n)
		}
		out = append(out, pv)
	}
	return out
}

// ports is the PF4 port netdevs the builder gives a card on bus with the MAC base.
func ports(bus uint8, macMid byte, n int) []vf.Port {
	var out []vf.Port
	for i := range n {
		name := fmt.Sprintf("enp%ds0f4", bus)
		if i > 0 {
			name += fmt.Sprintf("d%d", i)
		}
		out = append(out, vf.Port{Index: i, Netdev: name, MAC: fmt.Sprintf("00:07:43:%02x:%02x:%02x", bus, macMid, i)})
	}
	return out
}

func build(t testing.TB, opts sysfstree.Options, adapters ...sysfstree.Adapter) *sysfstree.Tree {
	t.Helper()
	tree, err := sysfstree.Build(t.TempDir(), opts, adapters...)
	if err != nil {
		t.Fatalf("sysfstree.Build() error: %v", err)
	}
	return tree
}

// checkIOMMU checks that every VF has its own, valid IOMMU group, or none where
// noGroup says so.
func checkIOMMU(t *testing.T, vs []*vf.VF, noGroup map[string]bool) {
	t.Helper()
	seen := map[int]string{}
	for _, v := range vs {
		if noGroup[v.Addr.String()] {
			if v.IOMMUGroup != -1 {
				t.Errorf("VF %s IOMMUGroup = %d, want -1", v.Addr, v.IOMMUGroup)
			}
			continue
		}
		if v.IOMMUGroup < 0 {
			t.Errorf("VF %s IOMMUGroup = %d, want a group", v.Addr, v.IOMMUGroup)
			continue
		}
		if other, dup := seen[v.IOMMUGroup]; dup {
			t.Errorf("VFs %s and %s share IOMMU group %d", other, v.Addr, v.IOMMUGroup)
		}
		seen[v.IOMMUGroup] = v.Addr.String()
	}
}

func TestDiscover(t *testing.T) {
	const (
		t62100 = 0x680d
		t520   = 0x5801
		t540   = 0x5803
		t580lp = 0x5810
		t6225  = 0x6801
	)
	vfio, unbound := vf.DriverVFIO, ""
	// docs/hardware.md section 7.
	section7 := []sysfstree.Adapter{{
		Model: "T62100-CR", NUMANode: 1, VFs: [4]int{4, 2, 0, 0},
		Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vfio, {PF: 0, VF: 2}: unbound},
	}}
	section7VFs := []vfView{
		{Addr: "0000:81:01.0", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0", NUMANode: 1},
		{Addr: "0000:81:01.1", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 0, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f1d1", MAC: "02:07:43:81:00:10", MgmtNetdev: "mgmtpf1,1", NUMANode: 1},
		{Addr: "0000:81:01.4", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 1, Port: 0, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,0", NUMANode: 1},
		{Addr: "0000:81:01.5", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 1, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f5d1", MAC: "02:07:43:81:00:11", MgmtNetdev: "mgmtpf1,1", NUMANode: 1},
		{Addr: "0000:81:02.0", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 2, Port: 0, PortDerived: true, Driver: "", MgmtNetdev: "mgmtpf1,0", NUMANode: 1},
		{Addr: "0000:81:02.4", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 3, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s2f4", MAC: "02:07:43:81:00:03", MgmtNetdev: "mgmtpf1,0", NUMANode: 1},
	}
	tests := []struct {
		name         string
		treeOpts     sysfstree.Options
		adapters     []sysfstree.Adapter
		opts         vf.Options
		want         []vfView
		wantAdapters []adapterView // nil: not compared
	}{
		{
			name:     "T62100-CR section 7",
			adapters: section7,
			want:     section7VFs,
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "T62100-CR", Chip: vf.T6, Known: true, NumPorts: 2, NUMANode: 1,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2),
				PFs: wantPFs("0000:81:00", 0x600d, 1, 1, [4][]string{
					{"0000:81:01.0", "0000:81:01.4", "0000:81:02.0", "0000:81:02.4"},
					{"0000:81:01.1", "0000:81:01.5"},
				}),
			}},
		},
		{
			name:     "T62100-CR section 7 with absolute links",
			treeOpts: sysfstree.Options{AbsoluteLinks: true},
			adapters: section7,
			want:     section7VFs,
		},
		{
			name:     "T520-CR",
			adapters: []sysfstree.Adapter{{Model: "T520-CR", VFs: [4]int{1, 1, 0, 0}}},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: t520, Chip: vf.T5, Model: "T520-cr", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0"},
				{Addr: "0000:81:01.1", DeviceID: t520, Chip: vf.T5, Model: "T520-cr", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 0, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f1d1", MAC: "02:07:43:81:00:10", MgmtNetdev: "mgmtpf1,1"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "T520-cr", Chip: vf.T5, Known: true, NumPorts: 2,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2),
				PFs: wantPFs("0000:81:00", 0x5001, 0, 1, [4][]string{{"0000:81:01.0"}, {"0000:81:01.1"}}),
			}},
		},
		{
			name:     "T580-LP-CR",
			adapters: []sysfstree.Adapter{{Model: "T580-LP-CR", VFs: [4]int{2, 0, 0, 0}}},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: t580lp, Chip: vf.T5, Model: "T580-LP-cr", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0"},
				{Addr: "0000:81:01.4", DeviceID: t580lp, Chip: vf.T5, Model: "T580-LP-cr", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 1, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1f4", MAC: "02:07:43:81:00:01", MgmtNetdev: "mgmtpf1,0"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "T580-LP-cr", Chip: vf.T5, Known: true, NumPorts: 2,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2),
				PFs: wantPFs("0000:81:00", 0x5010, 0, 1, [4][]string{{"0000:81:01.0", "0000:81:01.4"}}),
			}},
		},
		{
			name:     "T6225-CR",
			adapters: []sysfstree.Adapter{{Model: "T6225-CR", NUMANode: 0, VFs: [4]int{1, 1, 0, 0}}},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0"},
				{Addr: "0000:81:01.1", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 0, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f1d1", MAC: "02:07:43:81:00:10", MgmtNetdev: "mgmtpf1,1"},
			},
		},
		{
			name: "4-port T540-CR, VFs on PF2 and PF3",
			adapters: []sysfstree.Adapter{{
				Model: "T540-CR", VFs: [4]int{0, 0, 2, 2},
				Drivers: map[sysfstree.VFRef]string{{PF: 2, VF: 1}: vfio, {PF: 3, VF: 1}: unbound},
			}},
			want: []vfView{
				{Addr: "0000:81:01.2", DeviceID: t540, Chip: vf.T5, Model: "T540-cr", PF: "0000:81:00.2", PFNumber: 2, VFIndex: 0, Port: 2, Driver: "cxgb4vf", Netdev: "enp129s1f2d2", MAC: "02:07:43:81:00:20", MgmtNetdev: "mgmtpf1,2"},
				{Addr: "0000:81:01.3", DeviceID: t540, Chip: vf.T5, Model: "T540-cr", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 0, Port: 3, Driver: "cxgb4vf", Netdev: "enp129s1f3d3", MAC: "02:07:43:81:00:30", MgmtNetdev: "mgmtpf1,3"},
				{Addr: "0000:81:01.6", DeviceID: t540, Chip: vf.T5, Model: "T540-cr", PF: "0000:81:00.2", PFNumber: 2, VFIndex: 1, Port: 2, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,2"},
				{Addr: "0000:81:01.7", DeviceID: t540, Chip: vf.T5, Model: "T540-cr", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 1, Port: 3, PortDerived: true, Driver: "", MgmtNetdev: "mgmtpf1,3"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "T540-cr", Chip: vf.T5, Known: true, NumPorts: 4,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 4),
				PFs: wantPFs("0000:81:00", 0x5003, 0, 1, [4][]string{nil, nil, {"0000:81:01.2", "0000:81:01.6"}, {"0000:81:01.3", "0000:81:01.7"}}),
			}},
		},
		{
			name: "2-port T6225-CR, VFs on PF2 and PF3",
			adapters: []sysfstree.Adapter{{
				Model: "T6225-CR", VFs: [4]int{0, 0, 2, 2},
				Drivers: map[sysfstree.VFRef]string{{PF: 2, VF: 1}: vfio, {PF: 3, VF: 1}: unbound},
			}},
			want: []vfView{
				{Addr: "0000:81:01.2", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.2", PFNumber: 2, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1f2", MAC: "02:07:43:81:00:20", MgmtNetdev: "mgmtpf1,2"},
				{Addr: "0000:81:01.3", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 0, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f3d1", MAC: "02:07:43:81:00:30", MgmtNetdev: "mgmtpf1,3"},
				{Addr: "0000:81:01.6", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.2", PFNumber: 2, VFIndex: 1, Port: 0, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,2"},
				{Addr: "0000:81:01.7", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 1, Port: 1, PortDerived: true, Driver: "", MgmtNetdev: "mgmtpf1,3"},
			},
		},
		{
			name: "two adapters",
			adapters: []sysfstree.Adapter{
				// Added out of bus order: Node.Adapters is by slot all the same.
				{Model: "T6225-CR", Bus: 0x83, MgmtIndex: 2, NUMANode: 1, VFs: [4]int{1, 0, 0, 0}},
				{Model: "T62100-CR", Bus: 0x81, MgmtIndex: 1, NUMANode: 0, VFs: [4]int{1, 1, 0, 0}},
			},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:01:00", MgmtNetdev: "mgmtpf1,0"},
				{Addr: "0000:81:01.1", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 0, Port: 1, Driver: "cxgb4vf", Netdev: "enp129s1f1d1", MAC: "02:07:43:81:01:10", MgmtNetdev: "mgmtpf1,1"},
				{Addr: "0000:83:01.0", DeviceID: t6225, Chip: vf.T6, Model: "T6225-CR", PF: "0000:83:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp131s1", MAC: "02:07:43:83:00:00", MgmtNetdev: "mgmtpf2,0", NUMANode: 1},
			},
			wantAdapters: []adapterView{
				{
					Slot: "0000:81:00", Model: "T62100-CR", Chip: vf.T6, Known: true, NumPorts: 2,
					PF4: "0000:81:00.4", PF4Ports: ports(0x81, 1, 2),
					PFs: wantPFs("0000:81:00", 0x600d, 0, 1, [4][]string{{"0000:81:01.0"}, {"0000:81:01.1"}}),
				},
				{
					Slot: "0000:83:00", Model: "T6225-CR", Chip: vf.T6, Known: true, NumPorts: 2, NUMANode: 1,
					PF4: "0000:83:00.4", PF4Ports: ports(0x83, 0, 2),
					PFs: wantPFs("0000:83:00", 0x6001, 1, 2, [4][]string{{"0000:83:01.0"}}),
				},
			},
		},
		{
			name:     "VFs on vfio-pci",
			adapters: []sysfstree.Adapter{{VFs: [4]int{0, 2, 0, 0}, Drivers: map[sysfstree.VFRef]string{{PF: 1, VF: 0}: vfio, {PF: 1, VF: 1}: vfio}}},
			want: []vfView{
				{Addr: "0000:81:01.1", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 0, Port: 1, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,1"},
				{Addr: "0000:81:01.5", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.1", PFNumber: 1, VFIndex: 1, Port: 1, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,1"},
			},
		},
		{
			name:     "VF with no driver",
			adapters: []sysfstree.Adapter{{VFs: [4]int{0, 0, 0, 1}, Drivers: map[sysfstree.VFRef]string{{PF: 3, VF: 0}: unbound}}},
			want: []vfView{
				{Addr: "0000:81:01.3", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 0, Port: 1, PortDerived: true, Driver: "", MgmtNetdev: "mgmtpf1,3"},
			},
		},
		{
			name:         "non-Chelsio card only",
			adapters:     []sysfstree.Adapter{{Vendor: 0x8086, DeviceID: 0x680d, VFs: [4]int{2, 2, 0, 0}}},
			want:         []vfView{},
			wantAdapters: []adapterView{},
		},
		{
			name: "non-Chelsio card beside a Chelsio card",
			adapters: []sysfstree.Adapter{
				{Vendor: 0x8086, DeviceID: 0x680d, MgmtIndex: 9, VFs: [4]int{2, 2, 0, 0}},
				{Model: "T62100-CR", MgmtIndex: 1, VFs: [4]int{1, 0, 0, 0}},
			},
			want: []vfView{
				{Addr: "0000:83:01.0", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:83:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp131s1", MAC: "02:07:43:83:01:00", MgmtNetdev: "mgmtpf1,0"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:83:00", Model: "T62100-CR", Chip: vf.T6, Known: true, NumPorts: 2,
				PF4: "0000:83:00.4", PF4Ports: ports(0x83, 1, 2),
				PFs: wantPFs("0000:83:00", 0x600d, 0, 1, [4][]string{{"0000:83:01.0"}}),
			}},
		},
		{
			name:     "unknown Chelsio board",
			adapters: []sysfstree.Adapter{{DeviceID: 0x68ff, VFs: [4]int{1, 0, 0, 0}}},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: 0x68ff, Chip: vf.T6, Model: "", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "unknown T6 board 0xff", Chip: vf.T6, Known: false, NumPorts: 2,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2),
				PFs: wantPFs("0000:81:00", 0x60ff, 0, 1, [4][]string{{"0000:81:01.0"}}),
			}},
		},
		{
			name:     "T7 VFs ignored by default",
			adapters: []sysfstree.Adapter{{Model: "T7250", VFs: [4]int{1, 0, 0, 0}}},
			want:     []vfView{},
		},
		{
			name:     "T7 VFs with AllowT7",
			adapters: []sysfstree.Adapter{{Model: "T7250", VFs: [4]int{1, 0, 0, 0}}},
			opts:     vf.Options{AllowT7: true},
			want: []vfView{
				{Addr: "0000:81:01.0", DeviceID: 0x7801, Chip: vf.T7, Model: "T7250", PF: "0000:81:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp129s1", MAC: "02:07:43:81:00:00", MgmtNetdev: "mgmtpf1,0"},
			},
		},
		{
			name:     "T6 beside T7: only the T6 VFs",
			adapters: []sysfstree.Adapter{{Model: "T7250", VFs: [4]int{1, 0, 0, 0}}, {Model: "T62100-CR", VFs: [4]int{1, 0, 0, 0}}},
			want: []vfView{
				{Addr: "0000:83:01.0", DeviceID: t62100, Chip: vf.T6, Model: "T62100-CR", PF: "0000:83:00.0", PFNumber: 0, VFIndex: 0, Port: 0, Driver: "cxgb4vf", Netdev: "enp131s1", MAC: "02:07:43:83:01:00", MgmtNetdev: "mgmtpf2,0"},
			},
		},
		{
			name:     "no PF4: ports from the model",
			adapters: []sysfstree.Adapter{{Model: "T6425-CR", NoPF4: true, VFs: [4]int{0, 0, 0, 1}, Drivers: map[sysfstree.VFRef]string{{PF: 3, VF: 0}: vfio}}},
			want: []vfView{
				{Addr: "0000:81:01.3", DeviceID: 0x6803, Chip: vf.T6, Model: "T6425-CR", PF: "0000:81:00.3", PFNumber: 3, VFIndex: 0, Port: 3, PortDerived: true, Driver: "vfio-pci", MgmtNetdev: "mgmtpf1,3"},
			},
			wantAdapters: []adapterView{{
				Slot: "0000:81:00", Model: "T6425-CR", Chip: vf.T6, Known: true, NumPorts: 4,
				PFs: wantPFs("0000:81:00", 0x6003, 0, 1, [4][]string{nil, nil, nil, {"0000:81:01.3"}}),
			}},
		},
		{
			name:         "no VFs",
			adapters:     []sysfstree.Adapter{{}},
			want:         []vfView{},
			wantAdapters: []adapterView{{Slot: "0000:81:00", Model: "T62100-CR", Chip: vf.T6, Known: true, NumPorts: 2, PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2), PFs: wantPFs("0000:81:00", 0x600d, 0, 1, [4][]string{})}},
		},
		{
			name:         "empty node",
			want:         []vfView{},
			wantAdapters: []adapterView{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := build(t, tt.treeOpts, tt.adapters...)
			node, err := vf.Discover(tree.Root, tt.opts)
			if err != nil {
				t.Fatalf("Discover() error: %v", err)
			}
			if node == nil {
				t.Fatal("Discover() returned a nil Node and no error")
			}
			vfs := node.VFs()
			if diff := cmp.Diff(tt.want, viewVFs(vfs)); diff != "" {
				t.Errorf("Discover() mismatch (-want +got):\n%s", diff)
			}
			if tt.wantAdapters != nil {
				if diff := cmp.Diff(tt.wantAdapters, viewAdapters(node.Adapters)); diff != "" {
					t.Errorf("Discover() adapters mismatch (-want +got):\n%s", diff)
				}
			}
			checkIOMMU(t, vfs, nil)
			for _, v := range vfs {
				if v.IsVFIO() != (v.Driver == vf.DriverVFIO) {
					t.Errorf("VF %s IsVFIO() = %v with driver %q", v.Addr, v.IsVFIO(), v.Driver)
				}
				if v.IsVFIO() && !tree.Root.Exists(fmt.Sprintf("kernel/iommu_groups/%d", v.IOMMUGroup)) {
					t.Errorf("vfio-pci VF %s: IOMMU group %d is not in the tree", v.Addr, v.IOMMUGroup)
				}
			}
		})
	}
}

// TestDiscoverT7Adapter records what a T7 card without AllowT7 looks like: the
// adapter and its PFs are listed (their IDs are Chelsio's), its VFs are not.
func TestDiscoverT7Adapter(t *testing.T) {
	tree := build(t, sysfstree.Options{}, sysfstree.Adapter{Model: "T7250", VFs: [4]int{1, 0, 0, 0}})
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatalf("Discover() error: %v", err)
	}
	if len(node.Adapters) != 1 || node.Adapters[0].Product.Chip != vf.T7 {
		t.Fatalf("Discover() adapters = %+v, want one T7 adapter", viewAdapters(node.Adapters))
	}
	for _, pf := range node.Adapters[0].PFs {
		if len(pf.VFs) != 0 {
			t.Errorf("PF%d has VFs %v without AllowT7", pf.Number, viewVFs(pf.VFs))
		}
	}
}

// TestDiscoverPFWithoutSRIOV: a PF0-3 to which the adapter's firmware config gives
// no VFs has no SR-IOV capability, so the kernel shows none of its sriov_* files.
// It is a PF with no VFs, not a broken device: no error, and the other PFs' VFs as
// usual.
func TestDiscoverPFWithoutSRIOV(t *testing.T) {
	tests := []struct {
		name   string
		remove []string // files of PF2
	}{
		{"no sriov_* files", []string{"sriov_totalvfs", "sriov_numvfs", "sriov_offset", "sriov_stride", "sriov_drivers_autoprobe", "sriov_vf_device"}},
		{"no sriov_totalvfs", []string{"sriov_totalvfs"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := build(t, sysfstree.Options{}, sysfstree.Adapter{Model: "T62100-CR", VFs: [4]int{2, 1, 0, 0}})
			for _, f := range tt.remove {
				remove(t, tree, sysfstree.DevicePath(tree.Adapters[0].PFs[2])+"/"+f)
			}
			node, err := vf.Discover(tree.Root, vf.Options{})
			if err != nil {
				t.Fatalf("Discover() error: %v", err)
			}
			pfs := wantPFs("0000:81:00", 0x600d, 0, 1, [4][]string{{"0000:81:01.0", "0000:81:01.4"}, {"0000:81:01.1"}})
			pfs[2].SRIOV, pfs[2].TotalVFs = false, 0
			want := []adapterView{{
				Slot: "0000:81:00", Model: "T62100-CR", Chip: vf.T6, Known: true, NumPorts: 2,
				PF4: "0000:81:00.4", PF4Ports: ports(0x81, 0, 2), PFs: pfs,
			}}
			if diff := cmp.Diff(want, viewAdapters(node.Adapters)); diff != "" {
				t.Errorf("Discover() adapters mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// deviceErrors flattens the errors.Join tree of Discover's error.
func deviceErrors(err error) []*vf.DeviceError {
	var out []*vf.DeviceError
	var walk func(error)
	walk = func(err error) {
		if de, ok := err.(*vf.DeviceError); ok { //nolint:errorlint // walking the tree itself
			out = append(out, de)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // walking the tree itself
			for _, e := range j.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

func TestDiscoverBrokenFiles(t *testing.T) {
	// docs/hardware.md section 7, and a second card.
	adapters := []sysfstree.Adapter{
		{
			Model: "T62100-CR", NUMANode: 1, VFs: [4]int{4, 2, 0, 0},
			Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO, {PF: 0, VF: 2}: ""},
		},
		{Model: "T520-CR", VFs: [4]int{1, 0, 0, 1}},
	}
	all := []string{"0000:81:01.0", "0000:81:01.1", "0000:81:01.4", "0000:81:01.5", "0000:81:02.0", "0000:81:02.4", "0000:83:01.0", "0000:83:01.3"}
	dev := func(addr string, elem ...string) string {
		return sysfstree.DevicePath(vf.MustParsePCIAddr(addr)) + "/" + strings.Join(elem, "/")
	}
	type wantErr struct {
		addr string // DeviceError.Addr
		path string // relative to the root; the message holds the full path
	}
	type brokenCase struct {
		name     string
		breakIt  func(t *testing.T, tree *sysfstree.Tree)
		dropped  []string // VFs left out
		wantErrs []wantErr
		check    func(t *testing.T, n *vf.Node)
	}
	// vfFile is the common case: one file of the VF addr broken by how, the VF
	// left out, and one error naming it and the file.
	vfFile := func(name, addr, file string, how func(t *testing.T, tree *sysfstree.Tree, rel string)) brokenCase {
		rel := dev(addr, file)
		return brokenCase{
			name:     name,
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { how(t, tree, rel) },
			dropped:  []string{addr},
			wantErrs: []wantErr{{addr, rel}},
		}
	}
	written := func(content string) func(t *testing.T, tree *sysfstree.Tree, rel string) {
		return func(t *testing.T, tree *sysfstree.Tree, rel string) { write(t, tree, rel, content) }
	}
	relinked := func(target string) func(t *testing.T, tree *sysfstree.Tree, rel string) {
		return func(t *testing.T, tree *sysfstree.Tree, rel string) { relink(t, tree, rel, target) }
	}
	tests := []brokenCase{
		vfFile("VF physfn missing", "0000:81:01.0", "physfn", remove),
		vfFile("VF physfn not a PCI address", "0000:81:01.5", "physfn", relinked("../not-a-device")),
		vfFile("VF physfn to PF4", "0000:81:01.5", "physfn", relinked("../0000:81:00.4")),
		vfFile("VF device empty", "0000:81:01.4", "device", written("")),
		{
			name:    "VF device of another board",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { write(t, tree, dev("0000:81:02.4", "device"), "0x6801\n") },
			dropped: []string{"0000:81:02.4"},
			// The mismatch is between two files; the message names the VF.
			wantErrs: []wantErr{{"0000:81:02.4", ""}},
		},
		vfFile("VF vendor garbage", "0000:83:01.3", "vendor", written("0xzz\n")),
		{
			// A function without a vendor file is nobody's to judge: skipped silently.
			name:    "VF vendor missing",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:83:01.3", "vendor")) },
			dropped: []string{"0000:83:01.3"},
		},
		vfFile("VF numa_node garbage", "0000:81:01.5", "numa_node", written("garbage\n")),
		vfFile("VF numa_node below -1", "0000:81:01.5", "numa_node", written("-2\n")),
		{
			name:    "VF numa_node absent",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:81:01.0", "numa_node")) },
			check: func(t *testing.T, n *vf.Node) {
				v, ok := n.VF(vf.MustParsePCIAddr("0000:81:01.0"))
				if !ok || v.NUMANode != -1 {
					t.Errorf("VF 0000:81:01.0 without numa_node: %+v, want NUMANode -1", v)
				}
			},
		},
		vfFile("VF iommu_group not a number", "0000:81:01.4", "iommu_group", relinked("../../../../kernel/iommu_groups/x")),
		{
			name:    "VF iommu_group absent",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:81:01.4", "iommu_group")) },
			check: func(t *testing.T, n *vf.Node) {
				checkIOMMU(t, n.VFs(), map[string]bool{"0000:81:01.4": true})
			},
		},
		{
			name: "VF netdev dev_port garbage",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) {
				write(t, tree, "class/net/enp129s1f1d1/dev_port", "garbage\n")
			},
			dropped:  []string{"0000:81:01.1"},
			wantErrs: []wantErr{{"0000:81:01.1", dev("0000:81:01.1", "net", "enp129s1f1d1", "dev_port")}},
		},
		{
			name:    "VF netdev dev_port absent: port derived",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, "class/net/enp129s1f1d1/dev_port") },
			check: func(t *testing.T, n *vf.Node) {
				v, ok := n.VF(vf.MustParsePCIAddr("0000:81:01.1"))
				if !ok || v.Port != 1 || !v.PortDerived || v.Netdev != "enp129s1f1d1" {
					t.Errorf("VF 0000:81:01.1 without dev_port: %+v, want port 1 derived, netdev kept", v)
				}
			},
		},
		{
			name:     "PF sriov_numvfs missing",
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:81:00.1", "sriov_numvfs")) },
			dropped:  []string{"0000:81:01.1", "0000:81:01.5"}, // the VFs of that PF
			wantErrs: []wantErr{{"0000:81:00.1", dev("0000:81:00.1", "sriov_numvfs")}, {"0000:81:01.1", dev("0000:81:01.1", "physfn")}, {"0000:81:01.5", dev("0000:81:01.5", "physfn")}},
		},
		{
			// Only a PF without SR-IOV lacks the file, and such a PF has no VFs.
			name:     "PF sriov_totalvfs missing while it has VFs",
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:81:00.1", "sriov_totalvfs")) },
			dropped:  []string{"0000:81:01.1", "0000:81:01.5"}, // the VFs of that PF
			wantErrs: []wantErr{{"0000:81:00.1", dev("0000:81:00.1", "sriov_totalvfs")}, {"0000:81:01.1", dev("0000:81:01.1", "physfn")}, {"0000:81:01.5", dev("0000:81:01.5", "physfn")}},
		},
		{
			name:     "PF sriov_totalvfs garbage",
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { write(t, tree, dev("0000:83:00.3", "sriov_totalvfs"), "x\n") },
			dropped:  []string{"0000:83:01.3"},
			wantErrs: []wantErr{{"0000:83:00.3", dev("0000:83:00.3", "sriov_totalvfs")}, {"0000:83:01.3", dev("0000:83:01.3", "physfn")}},
		},
		{
			name:     "PF virtfn link to one VF missing",
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { remove(t, tree, dev("0000:81:00.0", "virtfn2")) },
			dropped:  []string{"0000:81:02.0"},
			wantErrs: []wantErr{{"0000:81:02.0", dev("0000:81:00.0", "virtfn")}},
		},
		{
			name: "PF4 dev_port garbage: ports from the model",
			breakIt: func(t *testing.T, tree *sysfstree.Tree) {
				write(t, tree, "class/net/enp129s0f4d1/dev_port", "garbage\n")
			},
			wantErrs: []wantErr{{"0000:81:00.4", dev("0000:81:00.4", "net", "enp129s0f4d1", "dev_port")}},
			check: func(t *testing.T, n *vf.Node) {
				if a := n.Adapters[0]; a.PF4 != nil || a.NumPorts != 2 {
					t.Errorf("adapter with a broken PF4: PF4 %+v, NumPorts %d; want nil, 2", a.PF4, a.NumPorts)
				}
			},
		},
		{
			name:     "bus/pci/devices entry not a PCI address",
			breakIt:  func(t *testing.T, tree *sysfstree.Tree) { write(t, tree, "bus/pci/devices/bogus/vendor", "0x1425\n") },
			wantErrs: []wantErr{{"bogus", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := build(t, sysfstree.Options{}, adapters...)
			tt.breakIt(t, tree)
			node, err := vf.Discover(tree.Root, vf.Options{})
			if node == nil {
				t.Fatalf("Discover() = nil, %v; want a Node", err)
			}
			var want []string
			for _, a := range all {
				if !contains(tt.dropped, a) {
					want = append(want, a)
				}
			}
			var got []string
			for _, v := range node.VFs() {
				got = append(got, v.Addr.String())
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Discover() VFs mismatch (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, node)
			}
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Errorf("Discover() error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Discover() error = nil, want one")
			}
			var de *vf.DeviceError
			if !errors.As(err, &de) {
				t.Fatalf("Discover() error %v does not errors.As to *vf.DeviceError", err)
			}
			des := deviceErrors(err)
			if len(des) != len(tt.wantErrs) {
				t.Errorf("Discover() returned %d device errors, want %d: %v", len(des), len(tt.wantErrs), err)
			}
			for _, w := range tt.wantErrs {
				var found *vf.DeviceError
				for _, de := range des {
					if de.Addr == w.addr {
						found = de
					}
				}
				if found == nil {
					t.Errorf("Discover() error has no *DeviceError for %s: %v", w.addr, err)
					continue
				}
				msg := found.Error()
				if !strings.Contains(msg, w.addr) {
					t.Errorf("DeviceError %q does not name the device %s", msg, w.addr)
				}
				if w.path != "" && !strings.Contains(msg, tree.Root.Path(w.path)) {
					t.Errorf("DeviceError %q does not name the file %s", msg, tree.Root.Path(w.path))
				}
				if found.Unwrap() == nil {
					t.Errorf("DeviceError for %s has no cause", w.addr)
				}
			}
		})
	}
}

func remove(t *testing.T, tree *sysfstree.Tree, rel string) {
	t.Helper()
	if err := os.Remove(tree.Root.Path(rel)); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, tree *sysfstree.Tree, rel, content string) {
	t.Helper()
	if err := os.MkdirAll(tree.Root.Path(rel, ".."), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tree.Root.Path(rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func relink(t *testing.T, tree *sysfstree.Tree, rel, target string) {
	t.Helper()
	remove(t, tree, rel)
	if err := os.Symlink(target, tree.Root.Path(rel)); err != nil {
		t.Fatal(err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestDiscoverNoDevicesDir(t *testing.T) {
	tests := []struct {
		name string
		root func(t *testing.T) sysfs.Root
	}{
		{"empty root", func(t *testing.T) sysfs.Root { return sysfs.Root(t.TempDir()) }},
		{"missing root", func(t *testing.T) sysfs.Root { return sysfs.Root(t.TempDir() + "/nowhere") }},
		{"bus/pci/devices removed", func(t *testing.T) sysfs.Root {
			tree := build(t, sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{1, 0, 0, 0}})
			if err := os.RemoveAll(tree.Root.Path("bus/pci/devices")); err != nil {
				t.Fatal(err)
			}
			return tree.Root
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := tt.root(t)
			node, err := vf.Discover(root, vf.Options{})
			if node != nil || err == nil {
				t.Fatalf("Discover() = %v, %v; want nil and an error", node, err)
			}
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), root.Path("bus/pci/devices")) {
				t.Errorf("Discover() error %q, want fs.ErrNotExist naming %s", err, root.Path("bus/pci/devices"))
			}
		})
	}
}

func TestNodeVFAndVFs(t *testing.T) {
	tree := build(t, sysfstree.Options{},
		sysfstree.Adapter{Model: "T6225-CR", Bus: 0x83, MgmtIndex: 2, VFs: [4]int{2, 1, 0, 0}},
		sysfstree.Adapter{Model: "T62100-CR", Bus: 0x81, MgmtIndex: 1, VFs: [4]int{3, 0, 0, 2}},
	)
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatalf("Discover() error: %v", err)
	}
	var got []string
	for _, v := range node.VFs() {
		got = append(got, v.Addr.String())
	}
	want := []string{"0000:81:01.0", "0000:81:01.3", "0000:81:01.4", "0000:81:01.7", "0000:81:02.0", "0000:83:01.0", "0000:83:01.1", "0000:83:01.4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Node.VFs() mismatch (-want +got):\n%s", diff)
	}

	var slots []string
	for _, a := range node.Adapters {
		slots = append(slots, a.Slot)
		for _, pf := range a.PFs {
			for i, v := range pf.VFs {
				if v.VFIndex != i {
					t.Errorf("PF %s: VFs[%d] has VFIndex %d, want PF.VFs by index", pf.Addr, i, v.VFIndex)
				}
				got, ok := node.VF(v.Addr)
				if !ok || got != v {
					t.Errorf("Node.VF(%s) = %p, %v; want %p, true", v.Addr, got, ok, v)
				}
			}
		}
	}
	if diff := cmp.Diff([]string{"0000:81:00", "0000:83:00"}, slots); diff != "" {
		t.Errorf("Node.Adapters slots mismatch (-want +got):\n%s", diff)
	}
	for _, addr := range []string{"0000:81:00.0", "0000:81:00.4", "0000:81:01.1", "0000:85:01.0"} {
		if v, ok := node.VF(vf.MustParsePCIAddr(addr)); ok || v != nil {
			t.Errorf("Node.VF(%s) = %v, %v; want nil, false", addr, v, ok)
		}
	}
	if vs := (&vf.Node{}).VFs(); len(vs) != 0 {
		t.Errorf("empty Node.VFs() = %v, want none", vs)
	}
}

func TestPortOfPF(t *testing.T) {
	tests := []struct {
		pf, ports, want int
	}{
		{0, 2, 0},
		{1, 2, 1},
		{2, 2, 0},
		{3, 2, 1},
		{0, 4, 0},
		{1, 4, 1},
		{2, 4, 2},
		{3, 4, 3},
		{0, 1, 0},
		{3, 1, 0},
		{2, 0, 0},
		{2, -1, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("PF%d of %d ports", tt.pf, tt.ports), func(t *testing.T) {
			if got := vf.PortOfPF(tt.pf, tt.ports); got != tt.want {
				t.Errorf("PortOfPF(%d, %d) = %d, want %d", tt.pf, tt.ports, got, tt.want)
			}
		})
	}
}

func TestAdapterModel(t *testing.T) {
	p, _ := vf.LookupModel("T62100-CR")
	tests := []struct {
		name string
		a    vf.Adapter
		want string
	}{
		{"known", vf.Adapter{Product: p, Known: true}, "T62100-CR"},
		{"unknown", vf.Adapter{Product: vf.Product{Chip: vf.T5, Code: 0x0f}}, "unknown T5 board 0x0f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Model(); got != tt.want {
				t.Errorf("Model() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDeviceError(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: "/sys/bus/pci/devices/0000:81:01.0/physfn", Err: fs.ErrNotExist}
	err := error(&vf.DeviceError{Addr: "0000:81:01.0", Err: cause})
	if want := "chelsio device 0000:81:01.0: open /sys/bus/pci/devices/0000:81:01.0/physfn: file does not exist"; err.Error() != want {
		t.Errorf("Error() mismatch (-want +got):\n%s", cmp.Diff(want, err.Error()))
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is(DeviceError, fs.ErrNotExist) = false")
	}
}

func TestVFMarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		v    *vf.VF
		want map[string]any
	}{
		{
			name: "cxgb4vf",
			v: &vf.VF{
				Addr: vf.MustParsePCIAddr("0000:81:01.1"), VendorID: 0x1425, DeviceID: 0x680d, Chip: vf.T6, Model: "T62100-CR",
				PF: vf.MustParsePCIAddr("0000:81:00.1"), PFNumber: 1, VFIndex: 0, Port: 1, Driver: "cxgb4vf",
				Netdev: "enp129s1f1d1", MAC: "02:07:43:81:00:10", MgmtNetdev: "mgmtpf1,1", NUMANode: 1, IOMMUGroup: 61,
			},
			want: map[string]any{
				"pciAddress": "0000:81:01.1", "vendorID": "1425", "deviceID": "680d", "model": "T62100-CR", "chip": "T6",
				"pf": "0000:81:00.1", "pfNumber": 1.0, "vfIndex": 0.0, "port": 1.0, "portDerived": false, "driver": "cxgb4vf",
				"netdev": "enp129s1f1d1", "mac": "02:07:43:81:00:10", "mgmtNetdev": "mgmtpf1,1", "numaNode": 1.0, "iommuGroup": 61.0,
			},
		},
		{
			name: "unbound, no IOMMU group, unknown board",
			v: &vf.VF{
				Addr: vf.MustParsePCIAddr("0000:05:02.4"), VendorID: 0x1425, DeviceID: 0x48ff, Chip: vf.T4,
				PF: vf.MustParsePCIAddr("0000:05:00.3"), PFNumber: 3, VFIndex: 7, Port: 3, PortDerived: true,
				MgmtNetdev: "mgmtpf2,3", NUMANode: -1, IOMMUGroup: -1,
			},
			want: map[string]any{
				"pciAddress": "0000:05:02.4", "vendorID": "1425", "deviceID": "48ff", "model": "", "chip": "T4",
				"pf": "0000:05:00.3", "pfNumber": 3.0, "vfIndex": 7.0, "port": 3.0, "portDerived": true, "driver": "",
				"netdev": "", "mac": "", "mgmtNetdev": "mgmtpf2,3", "numaNode": -1.0, "iommuGroup": nil,
			},
		},
		{
			name: "IOMMU group 0 is a group",
			v:    &vf.VF{VendorID: 0x1425, DeviceID: 0x0801, IOMMUGroup: 0},
			want: map[string]any{
				"pciAddress": "0000:00:00.0", "vendorID": "1425", "deviceID": "0801", "model": "", "chip": "",
				"pf": "0000:00:00.0", "pfNumber": 0.0, "vfIndex": 0.0, "port": 0.0, "portDerived": false, "driver": "",
				"netdev": "", "mac": "", "mgmtNetdev": "", "numaNode": 0.0, "iommuGroup": 0.0,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatalf("json.Marshal() error: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("json.Unmarshal(%s) error: %v", b, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("MarshalJSON() mismatch (-want +got):\n%s", diff)
			}
		})
	}

	// From a discovered tree: a vfio-pci VF whose iommu_group link is gone, in a list.
	tree := build(t, sysfstree.Options{}, sysfstree.Adapter{VFs: [4]int{2, 0, 0, 0}, Drivers: map[sysfstree.VFRef]string{{PF: 0, VF: 1}: vf.DriverVFIO}})
	remove(t, tree, sysfstree.DevicePath(vf.MustParsePCIAddr("0000:81:01.4"))+"/iommu_group")
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatalf("Discover() error: %v", err)
	}
	b, err := json.Marshal(node.VFs())
	if err != nil {
		t.Fatalf("json.Marshal() error: %v", err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("json.Marshal(Node.VFs()) = %s, want 2 VFs", b)
	}
	if g, ok := got[0]["iommuGroup"].(float64); !ok || g < 0 {
		t.Errorf("VF 0000:81:01.0 iommuGroup = %v, want a group number", got[0]["iommuGroup"])
	}
	want := map[string]any{
		"pciAddress": "0000:81:01.4", "vendorID": "1425", "deviceID": "680d", "model": "T62100-CR", "chip": "T6",
		"pf": "0000:81:00.0", "pfNumber": 0.0, "vfIndex": 1.0, "port": 0.0, "portDerived": true, "driver": "vfio-pci",
		"netdev": "", "mac": "", "mgmtNetdev": "mgmtpf1,0", "numaNode": 0.0, "iommuGroup": nil,
	}
	if diff := cmp.Diff(want, got[1]); diff != "" {
		t.Errorf("MarshalJSON() mismatch (-want +got):\n%s", diff)
	}
}

// Discover reads functions several at a time; what it returns must not depend on
// which finishes first: a node of 256 VFs with a broken vendor file on some (read
// while classifying) and a broken numa_node on others (read with the VF) gives the
// same error, its device errors in address order (those of classifying first), and
// the same VFs, every time.
func TestDiscoverErrorsInOrder(t *testing.T) {
	a := sysfstree.Adapter{Model: "T62100-CR", TotalVFs: 16, VFs: [4]int{16, 16, 16, 16}}
	tree, err := sysfstree.Build(t.TempDir(), sysfstree.Options{}, a, a, a, a)
	if err != nil {
		t.Fatal(err)
	}
	node, err := vf.Discover(tree.Root, vf.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var vendor, numa []string
	for i, v := range node.VFs() {
		switch i % 7 {
		case 2:
			write(t, tree, sysfstree.DevicePath(v.Addr)+"/vendor", "0xzz\n")
			vendor = append(vendor, v.Addr.String())
		case 5:
			write(t, tree, sysfstree.DevicePath(v.Addr)+"/numa_node", "garbage\n")
			numa = append(numa, v.Addr.String())
		}
	}
	slices.Sort(vendor)
	slices.Sort(numa)
	broken := slices.Concat(vendor, numa)
	var first string
	var firstVFs []string
	for run := range 5 {
		node, err := vf.Discover(tree.Root, vf.Options{})
		if node == nil || err == nil {
			t.Fatalf("Discover() = %v, %v; want a node and an error", node, err)
		}
		var addrs, vfs []string
		for _, de := range deviceErrors(err) {
			addrs = append(addrs, de.Addr)
		}
		for _, v := range node.VFs() {
			vfs = append(vfs, v.Addr.String())
		}
		if diff := cmp.Diff(broken, addrs); diff != "" {
			t.Fatalf("run %d: device errors (-want +got):\n%s", run, diff)
		}
		if run == 0 {
			first, firstVFs = err.Error(), vfs
			if len(vfs) != 256-len(broken) {
				t.Fatalf("Discover() found %d VFs, want %d", len(vfs), 256-len(broken))
			}
			continue
		}
		if err.Error() != first || !slices.Equal(vfs, firstVFs) {
			t.Fatalf("run %d: Discover() differs from the first run:\n%v\nVFs %v\nfirst:\n%s\nVFs %v", run, err, vfs, first, firstVFs)
		}
	}
}
