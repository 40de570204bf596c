package vf

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// Options tune discovery.
type Options struct {
	// AllowT7 admits T7 VFs, whose IDs no upstream driver binds (unconfirmed).
	AllowT7 bool
}

// DeviceError reports a Chelsio PCI function whose sysfs entries are missing or
// malformed. Discovery goes on without that function.
type DeviceError struct {
	Addr string // the PCI address as listed under bus/pci/devices
	Err  error  // names the file
}

func (e *DeviceError) Error() string { return "chelsio device " + e.Addr + ": " + e.Err.Error() }
func (e *DeviceError) Unwrap() error { return e.Err }

const devicesDir = "bus/pci/devices"

func devPath(addr string, elem ...string) string {
	return devicesDir + "/" + addr + "/" + strings.Join(elem, "/")
}

// Discover reads every Chelsio adapter, PF and VF under root. Functions with broken
// sysfs entries are left out and reported, joined, in the error, which lists
// *DeviceError values; the returned Node is complete for all others. Only a missing
// bus/pci/devices returns a nil Node.
func Discover(root sysfs.Root, opts Options) (*Node, error) {
	names, err := root.ReadDir(devicesDir)
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	var (
		errs    []error
		pfs     []*PF
		pf4s    []*PF4
		vfAddrs []PCIAddr
		devIDs  = map[PCIAddr]uint16{}
		numa    = map[PCIAddr]int{}
	)
	fail := func(addr string, err error) { errs = append(errs, &DeviceError{Addr: addr, Err: err}) }
	for _, name := range names {
		vendor, err := root.ReadHex(devPath(name, "vendor"), 16)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // not a PCI function we can identify; not ours to judge
			}
			fail(name, err)
			continue
		}
		if vendor != VendorID {
			continue
		}
		addr, err := ParsePCIAddr(name)
		if err != nil {
			fail(name, err)
			continue
		}
		dev, err := root.ReadHex(devPath(name, "device"), 16)
		if err != nil {
			fail(name, err)
			continue
		}
		id := uint16(dev)
		if _, ok := ChipOf(id); !ok {
			continue
		}
		switch KindOf(id) {
		case FuncPF03:
			pf, err := readPF(root, addr, id)
			if err != nil {
				fail(name, err)
				continue
			}
			pfs = append(pfs, pf)
			devIDs[addr], numa[addr] = id, pf.NUMANode
		case FuncPF4:
			pf4, n, err := readPF4(root, addr)
			if err != nil {
				fail(name, err)
				continue
			}
			pf4s = append(pf4s, pf4)
			devIDs[addr], numa[addr] = id, n
		case FuncVF:
			if IsVFID(id, opts.AllowT7) {
				vfAddrs = append(vfAddrs, addr)
				devIDs[addr] = id
			}
		}
	}

	adapters := map[string]*Adapter{}
	adapter := func(addr PCIAddr) *Adapter {
		a, ok := adapters[addr.Slot()]
		if !ok {
			id := devIDs[addr]
			p, _, known := LookupID(id)
			if !known {
				c, _ := ChipOf(id)
				p = Product{Chip: c, Code: uint8(id)}
			}
			a = &Adapter{Slot: addr.Slot(), Product: p, Known: known, NUMANode: numa[addr]}
			adapters[addr.Slot()] = a
		}
		return a
	}
	for _, p4 := range pf4s {
		a := adapter(p4.Addr)
		a.PF4 = p4
	}
	pfByAddr := map[PCIAddr]*PF{}
	for _, pf := range pfs {
		a := adapter(pf.Addr)
		a.PFs = append(a.PFs, pf)
		pfByAddr[pf.Addr] = pf
	}
	for _, a := range adapters {
		a.NumPorts = a.Product.Ports()
		if a.PF4 != nil && len(a.PF4.Ports) > 0 {
			a.NumPorts = len(a.PF4.Ports)
		}
		slices.SortFunc(a.PFs, func(x, y *PF) int { return x.Number - y.Number })
	}

	for _, addr := range vfAddrs {
		v, err := readVF(root, addr, devIDs[addr], pfByAddr, adapters)
		if err != nil {
			fail(addr.String(), err)
			continue
		}
		pf := pfByAddr[v.PF]
		pf.VFs = append(pf.VFs, v)
	}

	n := &Node{}
	for _, a := range adapters {
		for _, pf := range a.PFs {
			slices.SortFunc(pf.VFs, func(x, y *VF) int { return x.VFIndex - y.VFIndex })
		}
		n.Adapters = append(n.Adapters, a)
	}
	slices.SortFunc(n.Adapters, func(x, y *Adapter) int { return strings.Compare(x.Slot, y.Slot) })
	return n, errors.Join(errs...)
}

// readNUMA reads numa_node: -1 when the kernel has no NUMA (no file) or does not know.
func readNUMA(root sysfs.Root, addr string) (int, error) {
	n, err := root.ReadInt(devPath(addr, "numa_node"))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	if n < -1 {
		return 0, &sysfs.ParseError{Path: root.Path(devPath(addr, "numa_node")), Value: strconv.Itoa(n), Want: "a NUMA node (-1 or more)"}
	}
	return n, nil
}

// readDriver returns the base of the driver link, "" when unbound.
func readDriver(root sysfs.Root, addr string) (string, error) {
	d, err := root.LinkBase(devPath(addr, "driver"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return d, err
}

// readNet lists the netdevs of a function in this netns; none when net/ is absent.
func readNet(root sysfs.Root, addr string) ([]string, error) {
	names, err := root.ReadDir(devPath(addr, "net"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

func readPF(root sysfs.Root, addr PCIAddr, id uint16) (*PF, error) {
	a := addr.String()
	pf := &PF{Addr: addr, Number: int(addr.Function), DeviceID: id}
	if addr.Function > 3 {
		return nil, fmt.Errorf("PF0-3 device ID 0x%04x on function %d", id, addr.Function)
	}
	var err error
	if pf.Driver, err = readDriver(root, a); err != nil {
		return nil, err
	}
	if pf.NUMANode, err = readNUMA(root, a); err != nil {
		return nil, err
	}
	if pf.TotalVFs, err = root.ReadInt(devPath(a, "sriov_totalvfs")); err != nil {
		return nil, err
	}
	if pf.NumVFs, err = root.ReadInt(devPath(a, "sriov_numvfs")); err != nil {
		return nil, err
	}
	net, err := readNet(root, a)
	if err != nil {
		return nil, err
	}
	if len(net) > 0 {
		pf.MgmtNetdev = net[0]
	}
	return pf, nil
}

func readPF4(root sysfs.Root, addr PCIAddr) (*PF4, int, error) {
	a := addr.String()
	p := &PF4{Addr: addr}
	var err error
	if p.Driver, err = readDriver(root, a); err != nil {
		return nil, 0, err
	}
	numa, err := readNUMA(root, a)
	if err != nil {
		return nil, 0, err
	}
	net, err := readNet(root, a)
	if err != nil {
		return nil, 0, err
	}
	for i, name := range net {
		port := Port{Index: i, Netdev: name}
		if dp, err := root.ReadInt(devPath(a, "net", name, "dev_port")); err == nil {
			port.Index = dp
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, err
		}
		if mac, err := root.ReadString(devPath(a, "net", name, "address")); err == nil {
			port.MAC = mac
		}
		p.Ports = append(p.Ports, port)
	}
	slices.SortFunc(p.Ports, func(x, y Port) int { return x.Index - y.Index })
	return p, numa, nil
}

// virtfnIndex finds N such that <PF>/virtfnN links to the VF.
func virtfnIndex(root sysfs.Root, pf, vf string) (int, error) {
	names, err := root.ReadDir(devicesDir + "/" + pf)
	if err != nil {
		return 0, err
	}
	for _, n := range names {
		num, ok := strings.CutPrefix(n, "virtfn")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if b, err := root.LinkBase(devPath(pf, n)); err == nil && b == vf {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("no %s entry links to this VF", root.Path(devPath(pf, "virtfn*")))
}

// PortOfPF is the firmware's default VF-to-port rule: the VFs of PFn use port
// n mod ports (2-port cards: PF0/PF2 → 0, PF1/PF3 → 1; 4-port cards: PFn → n).
func PortOfPF(pfNumber, ports int) int {
	if ports <= 0 {
		return 0
	}
	return pfNumber % ports
}

func readVF(root sysfs.Root, addr PCIAddr, id uint16, pfs map[PCIAddr]*PF, adapters map[string]*Adapter) (*VF, error) {
	a := addr.String()
	chip, _ := ChipOf(id)
	v := &VF{Addr: addr, VendorID: VendorID, DeviceID: id, Chip: chip, IOMMUGroup: -1}
	if p, _, ok := LookupID(id); ok {
		v.Model = p.Model
	}
	physfn, err := root.LinkBase(devPath(a, "physfn"))
	if err != nil {
		return nil, err
	}
	pfAddr, err := ParsePCIAddr(physfn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", root.Path(devPath(a, "physfn")), err)
	}
	pf, ok := pfs[pfAddr]
	if !ok {
		return nil, fmt.Errorf("parent %s (%s) is not a usable Chelsio PF0-3", physfn, root.Path(devPath(a, "physfn")))
	}
	if pf.DeviceID>>12 != id>>12 || uint8(pf.DeviceID) != uint8(id) {
		return nil, fmt.Errorf("device 0x%04x does not belong to its parent PF's device 0x%04x", id, pf.DeviceID)
	}
	v.PF, v.PFNumber, v.MgmtNetdev = pfAddr, pf.Number, pf.MgmtNetdev
	if v.VFIndex, err = virtfnIndex(root, physfn, a); err != nil {
		return nil, err
	}
	if v.Driver, err = readDriver(root, a); err != nil {
		return nil, err
	}
	if v.NUMANode, err = readNUMA(root, a); err != nil {
		return nil, err
	}
	if g, err := root.LinkBase(devPath(a, "iommu_group")); err == nil {
		if v.IOMMUGroup, err = strconv.Atoi(g); err != nil || v.IOMMUGroup < 0 {
			return nil, &sysfs.ParseError{Path: root.Path(devPath(a, "iommu_group")), Value: g, Want: "a link to an IOMMU group number"}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	net, err := readNet(root, a)
	if err != nil {
		return nil, err
	}
	v.PortDerived = true
	v.Port = PortOfPF(pf.Number, adapters[pfAddr.Slot()].NumPorts)
	if len(net) > 0 {
		v.Netdev = net[0]
		dp, err := root.ReadInt(devPath(a, "net", v.Netdev, "dev_port"))
		switch {
		case err == nil:
			v.Port, v.PortDerived = dp, false
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
		if v.MAC, err = root.ReadString(devPath(a, "net", v.Netdev, "address")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return v, nil
}
