package vf

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Node is the Chelsio hardware under one sysfs root.
type Node struct {
	Adapters []*Adapter // by PCI slot
}

// VFs returns every VF of every adapter, ordered by PCI address.
func (n *Node) VFs() []*VF {
	var out []*VF
	for _, a := range n.Adapters {
		for _, pf := range a.PFs {
			out = append(out, pf.VFs...)
		}
	}
	slices.SortFunc(out, func(x, y *VF) int { return x.Addr.Compare(y.Addr) })
	return out
}

// VF returns the VF at addr.
func (n *Node) VF(addr PCIAddr) (*VF, bool) {
	for _, a := range n.Adapters {
		for _, pf := range a.PFs {
			for _, v := range pf.VFs {
				if v.Addr == addr {
					return v, true
				}
			}
		}
	}
	return nil, false
}

// Adapter is one Chelsio card: the PCI functions that share a slot.
type Adapter struct {
	Slot    string  // "0000:81:00"
	Product Product // from the first function's device ID
	Known   bool    // Product is in the ID table; else only Chip is set
	PF4     *PF4    // nil if PF4 is absent (cxgb4 not loaded on it, or hidden)
	PFs     []*PF   // PF0-PF3 that are present, by number
	// NumPorts is the number of PF4 port netdevs, or the number the model implies.
	NumPorts int
	// NUMANode from the first function's numa_node; -1 when unknown.
	NUMANode int
}

// Model returns the product name, or "unknown <chip> board 0x<code>".
func (a *Adapter) Model() string {
	if a.Known {
		return a.Product.Model
	}
	return fmt.Sprintf("unknown %s board 0x%02x", a.Product.Chip, a.Product.Code)
}

// PF4 is the NIC function of an adapter: it owns the physical port netdevs.
type PF4 struct {
	Addr   PCIAddr
	Driver string // base of bus/pci/devices/<PF4>/driver
	Ports  []Port // from bus/pci/devices/<PF4>/net/*, by port index
}

// Port is a physical port netdev of PF4.
type Port struct {
	Index  int    // class/net/<if>/dev_port
	Netdev string // entry of bus/pci/devices/<PF4>/net/
	MAC    string // class/net/<if>/address
}

// PF is one of PF0-PF3: the functions that create VFs.
type PF struct {
	Addr     PCIAddr
	Number   int    // 0-3: the PCI function number
	DeviceID uint16 // 0xV0PP
	Driver   string // base of bus/pci/devices/<PF>/driver; "" when unbound
	// SRIOV is false for a PF without the SR-IOV capability, which has no
	// bus/pci/devices/<PF>/sriov_* files: the adapter's firmware config gives it no
	// VFs. TotalVFs and NumVFs are then 0.
	SRIOV    bool
	TotalVFs int // bus/pci/devices/<PF>/sriov_totalvfs
	NumVFs   int // bus/pci/devices/<PF>/sriov_numvfs
	// MgmtNetdev is the single entry of bus/pci/devices/<PF>/net/, the cxgb4
	// management netdev ("mgmtpf1,0"); empty while sriov_numvfs is 0.
	MgmtNetdev string
	NUMANode   int   // bus/pci/devices/<PF>/numa_node; -1 when unknown
	VFs        []*VF // by VF index

	virtfns map[string]int // VF address → N of bus/pci/devices/<PF>/virtfnN
}

// VF is a Chelsio Virtual Function.
type VF struct {
	Addr     PCIAddr
	VendorID uint16 // bus/pci/devices/<VF>/vendor (0x1425)
	DeviceID uint16 // bus/pci/devices/<VF>/device (0xV8PP)
	Chip     Chip
	Model    string // product name, or "" when the board byte is not in the table
	PF       PCIAddr
	PFNumber int // 0-3
	VFIndex  int // the N of the PF's virtfnN link to this VF
	// Port is the physical port: the VF netdev's dev_port, or, without a netdev,
	// derived from the PF number (2-port cards: PF0/PF2 port 0, PF1/PF3 port 1;
	// 4-port cards: PFn port n). PortDerived tells which.
	Port        int
	PortDerived bool
	Driver      string // base of bus/pci/devices/<VF>/driver: cxgb4vf, vfio-pci, or ""
	Netdev      string // entry of bus/pci/devices/<VF>/net/ in this netns, or ""
	MAC         string // class/net/<Netdev>/address, when Netdev is set
	MgmtNetdev  string // the parent PF's management netdev
	NUMANode    int    // bus/pci/devices/<VF>/numa_node; -1 when unknown
	IOMMUGroup  int    // base of bus/pci/devices/<VF>/iommu_group; -1 when none
}

// Drivers a Chelsio VF is bound to.
const (
	DriverCxgb4VF = "cxgb4vf"
	DriverVFIO    = "vfio-pci"
	DriverCxgb4   = "cxgb4"
)

// DriverOr returns driver, the base name of a device's driver link, or unbound when
// driver is "": the device is bound to no driver. Messages pass their own word for
// that ("none", "no driver") so that each keeps reading as a sentence.
func DriverOr(driver, unbound string) string {
	if driver == "" {
		return unbound
	}
	return driver
}

// IsVFIO reports whether the VF is bound to vfio-pci (user-space, DPDK).
func (v *VF) IsVFIO() bool { return v.Driver == DriverVFIO }

// vfJSON is the `chelsio-vf list --json` shape (docs/contracts.md).
type vfJSON struct {
	PCIAddress  string `json:"pciAddress"`
	VendorID    string `json:"vendorID"`
	DeviceID    string `json:"deviceID"`
	Model       string `json:"model"`
	Chip        Chip   `json:"chip"`
	PF          string `json:"pf"`
	PFNumber    int    `json:"pfNumber"`
	VFIndex     int    `json:"vfIndex"`
	Port        int    `json:"port"`
	PortDerived bool   `json:"portDerived"`
	Driver      string `json:"driver"`
	Netdev      string `json:"netdev"`
	MAC         string `json:"mac"`
	MgmtNetdev  string `json:"mgmtNetdev"`
	NUMANode    int    `json:"numaNode"`
	IOMMUGroup  *int   `json:"iommuGroup"`
}

// MarshalJSON writes the documented JSON shape: IDs as 4-digit lower-case hex,
// addresses in sysfs form, iommuGroup null when the VF has none.
func (v *VF) MarshalJSON() ([]byte, error) {
	j := vfJSON{
		PCIAddress: v.Addr.String(), VendorID: fmt.Sprintf("%04x", v.VendorID),
		DeviceID: fmt.Sprintf("%04x", v.DeviceID), Model: v.Model, Chip: v.Chip,
		PF: v.PF.String(), PFNumber: v.PFNumber, VFIndex: v.VFIndex, Port: v.Port,
		PortDerived: v.PortDerived, Driver: v.Driver, Netdev: v.Netdev, MAC: v.MAC,
		MgmtNetdev: v.MgmtNetdev, NUMANode: v.NUMANode,
	}
	if v.IOMMUGroup >= 0 {
		g := v.IOMMUGroup
		j.IOMMUGroup = &g
	}
	return json.Marshal(j)
}
