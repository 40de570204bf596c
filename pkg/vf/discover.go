package vf

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

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
// *DeviceError values (those of classifying the functions, then those of reading
// the VFs, each in address order); the returned Node is complete for all others.
// Only a missing bus/pci/devices returns a nil Node. It reads several functions at
// once (readers).
func Discover(root sysfs.Root, opts Options) (*Node, error) {
	names, err := root.ReadDir(devicesDir)
	if err != nil {
		return nil, fmt.Errorf("list PCI devices: %w", err)
	}
	s := &discovery{
		root: root, opts: opts,
		devIDs: map[PCIAddr]uint16{}, numa: map[PCIAddr]int{}, vfDirs: map[PCIAddr]*sysfs.Dir{},
		adapters: map[string]*Adapter{}, pfByAddr: map[PCIAddr]*PF{},
	}
	defer s.closeVFDirs()
	funcs := make([]funcRead, len(names))
	inParallel(len(names), func(i int) { funcs[i] = s.readFunc(names[i]) })
	for i, f := range funcs {
		s.add(names[i], f)
	}
	s.assemble()
	s.readVFs()
	return s.node(), errors.Join(s.errs...)
}

// discovery is one Discover: the PCI functions read so far, and the adapters built
// from them.
type discovery struct {
	root sysfs.Root
	opts Options
	errs []error // *DeviceError values

	pfs     []*PF
	pf4s    []*PF4
	vfAddrs []PCIAddr
	devIDs  map[PCIAddr]uint16
	numa    map[PCIAddr]int
	vfDirs  map[PCIAddr]*sysfs.Dir // open from readFunc to readVFs

	adapters map[string]*Adapter // by slot
	pfByAddr map[PCIAddr]*PF
}

func (s *discovery) fail(addr string, err error) {
	s.errs = append(s.errs, &DeviceError{Addr: addr, Err: err})
}

func (s *discovery) closeVFDirs() {
	for _, d := range s.vfDirs {
		_ = d.Close()
	}
}

// readers is how many PCI functions Discover reads at once: each is a few system
// calls on sysfs, which the kernel serves on every CPU at once.
const readers = 4

// inParallel calls read(i) for each i in [0, n), readers at a time.
func inParallel(n int, read func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(readers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				read(i)
			}
		})
	}
	wg.Wait()
}

// funcRead is what readFunc found of one PCI function: at most one of pf, pf4 and
// vf, or nothing (not a Chelsio function we serve, or vanished), and its error.
type funcRead struct {
	addr PCIAddr
	id   uint16
	numa int
	pf   *PF
	pf4  *PF4
	vf   *sysfs.Dir // a VF's directory, open for readVFs, which needs its parent PF read first
	err  error
}

// readFunc reads the PCI function name when it is a Chelsio PF, and opens a VF's
// directory. It only reads s: Discover runs several at once.
func (s *discovery) readFunc(name string) funcRead {
	d, err := openFunc(s.root, name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) { // it vanished since the listing
			return funcRead{}
		}
		return funcRead{err: err}
	}
	f, err := s.classify(d, name)
	f.err = err
	if f.vf == nil {
		_ = d.Close()
	}
	return f
}

// add records what readFunc found of the function name.
func (s *discovery) add(name string, f funcRead) {
	if f.err != nil {
		s.fail(name, f.err)
	}
	switch {
	case f.pf != nil:
		s.pfs = append(s.pfs, f.pf)
		s.devIDs[f.addr], s.numa[f.addr] = f.id, f.numa
	case f.pf4 != nil:
		s.pf4s = append(s.pf4s, f.pf4)
		s.devIDs[f.addr], s.numa[f.addr] = f.id, f.numa
	case f.vf != nil:
		s.vfAddrs = append(s.vfAddrs, f.addr)
		s.devIDs[f.addr] = f.id
		s.vfDirs[f.addr] = f.vf
	}
}

// classify classifies one PCI function and reads it when it is a Chelsio PF; a VF's
// directory d is returned in vf, open for readVF.
func (s *discovery) classify(d *sysfs.Dir, name string) (funcRead, error) {
	vendor, err := d.ReadHex("vendor", 16)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return funcRead{}, nil // not a PCI function we can identify; not ours to judge
		}
		return funcRead{}, err
	}
	if vendor != VendorID {
		return funcRead{}, nil
	}
	addr, err := ParsePCIAddr(name)
	if err != nil {
		return funcRead{}, err
	}
	dev, err := d.ReadHex("device", 16)
	if err != nil {
		return funcRead{}, err
	}
	f := funcRead{addr: addr, id: uint16(dev)}
	if _, ok := ChipOf(f.id); !ok {
		return funcRead{}, nil
	}
	switch KindOf(f.id) {
	case FuncPF03:
		if f.pf, err = readPF(d, addr, f.id); err != nil {
			return funcRead{}, err
		}
		f.numa = f.pf.NUMANode
	case FuncPF4:
		if f.pf4, f.numa, err = readPF4(d, addr); err != nil {
			return funcRead{}, err
		}
	case FuncVF:
		if IsVFID(f.id, s.opts.AllowT7) {
			f.vf = d
		}
	}
	return f, nil
}

// adapter returns the adapter in addr's slot, made on first use from the function's
// device ID.
func (s *discovery) adapter(addr PCIAddr) *Adapter {
	a, ok := s.adapters[addr.Slot()]
	if !ok {
		id := s.devIDs[addr]
		p, _, known := LookupID(id)
		if !known {
			c, _ := ChipOf(id)
			p = Product{Chip: c, Code: uint8(id)}
		}
		a = &Adapter{Slot: addr.Slot(), Product: p, Known: known, NUMANode: s.numa[addr]}
		s.adapters[addr.Slot()] = a
	}
	return a
}

// assemble puts each PF4 and PF0-3 on its adapter and counts the adapter's ports.
func (s *discovery) assemble() {
	for _, p4 := range s.pf4s {
		a := s.adapter(p4.Addr)
		a.PF4 = p4
	}
	for _, pf := range s.pfs {
		a := s.adapter(pf.Addr)
		a.PFs = append(a.PFs, pf)
		s.pfByAddr[pf.Addr] = pf
	}
	for _, a := range s.adapters {
		a.NumPorts = a.Product.Ports()
		if a.PF4 != nil && len(a.PF4.Ports) > 0 {
			a.NumPorts = len(a.PF4.Ports)
		}
		slices.SortFunc(a.PFs, func(x, y *PF) int { return x.Number - y.Number })
	}
}

// readVFs reads each VF, several at once, and puts it on its parent PF.
func (s *discovery) readVFs() {
	parent := func(pfAddr PCIAddr) (*PF, int, error) {
		pf, ok := s.pfByAddr[pfAddr]
		if !ok {
			return nil, 0, nil
		}
		return pf, s.adapters[pfAddr.Slot()].NumPorts, nil
	}
	vfs := make([]*VF, len(s.vfAddrs))
	errs := make([]error, len(s.vfAddrs))
	inParallel(len(s.vfAddrs), func(i int) {
		addr := s.vfAddrs[i]
		vfs[i], errs[i] = readVF(s.root, s.vfDirs[addr], addr, s.devIDs[addr], parent)
	})
	for i, v := range vfs {
		if errs[i] != nil {
			s.fail(s.vfAddrs[i].String(), errs[i])
			continue
		}
		pf := s.pfByAddr[v.PF]
		pf.VFs = append(pf.VFs, v)
	}
}

// node returns the adapters in slot order, each PF's VFs in VF-index order.
func (s *discovery) node() *Node {
	n := &Node{}
	for _, a := range s.adapters {
		for _, pf := range a.PFs {
			slices.SortFunc(pf.VFs, func(x, y *VF) int { return x.VFIndex - y.VFIndex })
		}
		n.Adapters = append(n.Adapters, a)
	}
	slices.SortFunc(n.Adapters, func(x, y *Adapter) int { return strings.Compare(x.Slot, y.Slot) })
	return n
}

// openFunc opens the directory of a PCI function: reads through it resolve the
// bus/pci/devices link once.
func openFunc(root sysfs.Root, addr string) (*sysfs.Dir, error) {
	return root.OpenDir(devicesDir + "/" + addr)
}

// readNUMA reads numa_node: -1 when the kernel has no NUMA (no file) or does not know.
func readNUMA(d *sysfs.Dir) (int, error) {
	n, err := d.ReadInt("numa_node")
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	if n < -1 {
		return 0, &sysfs.ParseError{Path: d.Path("numa_node"), Value: strconv.Itoa(n), Want: "a NUMA node (-1 or more)"}
	}
	return n, nil
}

// readDriver returns the base of the driver link, "" when unbound.
func readDriver(d *sysfs.Dir) (string, error) {
	drv, err := d.LinkBase("driver")
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return drv, err
}

// readNet lists the netdevs of a function in this netns; none when net/ is absent.
func readNet(d *sysfs.Dir) ([]string, error) {
	names, err := d.ReadDir("net")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return names, err
}

func readPF(d *sysfs.Dir, addr PCIAddr, id uint16) (*PF, error) {
	pf := &PF{Addr: addr, Number: int(addr.Function), DeviceID: id}
	if addr.Function > 3 {
		return nil, fmt.Errorf("PF0-3 device ID 0x%04x on function %d", id, addr.Function)
	}
	var err error
	if pf.Driver, err = readDriver(d); err != nil {
		return nil, err
	}
	if pf.NUMANode, err = readNUMA(d); err != nil {
		return nil, err
	}
	if pf.virtfns, err = readVirtfns(d); err != nil {
		return nil, err
	}
	if err := readSRIOV(d, pf); err != nil {
		return nil, err
	}
	net, err := readNet(d)
	if err != nil {
		return nil, err
	}
	if len(net) > 0 {
		pf.MgmtNetdev = net[0]
	}
	return pf, nil
}

// readSRIOV reads the VF counts of a PF0-3 whose virtfn links are read. Without
// sriov_totalvfs the PF has no SR-IOV capability (its firmware config gives it no
// VFs): a PF with no VFs, not a broken one. Unless it has VFs all the same: then
// the file is missing, not absent by nature.
func readSRIOV(d *sysfs.Dir, pf *PF) error {
	total, err := d.ReadInt("sriov_totalvfs")
	if errors.Is(err, fs.ErrNotExist) && len(pf.virtfns) == 0 {
		return nil
	}
	if err != nil {
		return err
	}
	pf.SRIOV, pf.TotalVFs = true, total
	pf.NumVFs, err = d.ReadInt("sriov_numvfs")
	return err
}

func readPF4(d *sysfs.Dir, addr PCIAddr) (*PF4, int, error) {
	p := &PF4{Addr: addr}
	var err error
	if p.Driver, err = readDriver(d); err != nil {
		return nil, 0, err
	}
	numa, err := readNUMA(d)
	if err != nil {
		return nil, 0, err
	}
	net, err := readNet(d)
	if err != nil {
		return nil, 0, err
	}
	for i, name := range net {
		port := Port{Index: i, Netdev: name}
		if dp, err := d.ReadInt("net/" + name + "/dev_port"); err == nil {
			port.Index = dp
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, err
		}
		if mac, err := d.ReadString("net/" + name + "/address"); err == nil {
			port.MAC = mac
		}
		p.Ports = append(p.Ports, port)
	}
	slices.SortFunc(p.Ports, func(x, y Port) int { return x.Index - y.Index })
	return p, numa, nil
}

// readVirtfns maps each VF address to the N of the PF's virtfnN link to it. The
// PF's directory is listed once, not once per VF.
func readVirtfns(d *sysfs.Dir) (map[string]int, error) {
	names, err := d.ReadDir("")
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, n := range names {
		num, ok := strings.CutPrefix(n, "virtfn")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if b, err := d.LinkBase(n); err == nil {
			m[b] = idx
		}
	}
	return m, nil
}

// PortOfPF is the firmware's default VF-to-port rule: the VFs of PFn use port
// n mod ports (2-port cards: PF0/PF2 → 0, PF1/PF3 → 1; 4-port cards: PFn → n).
func PortOfPF(pfNumber, ports int) int {
	if ports <= 0 {
		return 0
	}
	return pfNumber % ports
}

// parentFunc returns the PF at pfAddr with its adapter's port count (Adapter.NumPorts),
// or a nil PF when pfAddr is not a usable Chelsio PF0-3.
type parentFunc func(pfAddr PCIAddr) (pf *PF, numPorts int, err error)

// readVF reads one VF whose device ID is id: Discover and LookupVF share it, and
// differ only in how they find the parent PF.
func readVF(root sysfs.Root, d *sysfs.Dir, addr PCIAddr, id uint16, parent parentFunc) (*VF, error) {
	a := addr.String()
	chip, _ := ChipOf(id)
	v := &VF{Addr: addr, VendorID: VendorID, DeviceID: id, Chip: chip, IOMMUGroup: -1}
	if p, _, ok := LookupID(id); ok {
		v.Model = p.Model
	}
	physfn, err := d.LinkBase("physfn")
	if err != nil {
		return nil, err
	}
	pfAddr, err := ParsePCIAddr(physfn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Path("physfn"), err)
	}
	pf, numPorts, err := parent(pfAddr)
	if err != nil {
		return nil, err
	}
	if pf == nil {
		return nil, fmt.Errorf("parent %s (%s) is not a usable Chelsio PF0-3", physfn, d.Path("physfn"))
	}
	if pf.DeviceID>>12 != id>>12 || uint8(pf.DeviceID) != uint8(id) {
		return nil, fmt.Errorf("device 0x%04x does not belong to its parent PF's device 0x%04x", id, pf.DeviceID)
	}
	v.PF, v.PFNumber, v.MgmtNetdev = pfAddr, pf.Number, pf.MgmtNetdev
	idx, ok := pf.virtfns[a]
	if !ok {
		return nil, fmt.Errorf("no %s entry links to this VF", root.Path(devPath(physfn, "virtfn*")))
	}
	v.VFIndex = idx
	if v.Driver, err = readDriver(d); err != nil {
		return nil, err
	}
	if v.NUMANode, err = readNUMA(d); err != nil {
		return nil, err
	}
	if g, err := d.LinkBase("iommu_group"); err == nil {
		if v.IOMMUGroup, err = strconv.Atoi(g); err != nil || v.IOMMUGroup < 0 {
			return nil, &sysfs.ParseError{Path: d.Path("iommu_group"), Value: g, Want: "a link to an IOMMU group number"}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	net, err := readNet(d)
	if err != nil {
		return nil, err
	}
	v.PortDerived = true
	v.Port = PortOfPF(pf.Number, numPorts)
	if len(net) > 0 {
		v.Netdev = net[0]
		dp, err := d.ReadInt("net/" + v.Netdev + "/dev_port")
		switch {
		case err == nil:
			v.Port, v.PortDerived = dp, false
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
		if v.MAC, err = d.ReadString("net/" + v.Netdev + "/address"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return v, nil
}
