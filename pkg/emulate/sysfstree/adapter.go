package sysfstree

import (
	"fmt"
	"strconv"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// VF routing-ID layout of the default firmware: VFs start at offset 8 from their PF
// and PF0-PF3 interleave with stride 4 (docs/hardware.md section 3).
const (
	sriovOffset = 8
	sriovStride = 4
)

func (a Adapter) product() (vf.Product, bool) {
	if a.DeviceID != 0 {
		p, _, ok := vf.LookupID(a.DeviceID)
		if !ok {
			c, _ := vf.ChipOf(a.DeviceID)
			return vf.Product{Chip: c, Code: uint8(a.DeviceID)}, true
		}
		return p, true
	}
	m := a.Model
	if m == "" {
		m = "T62100-CR"
	}
	return vf.LookupModel(m)
}

// rid returns the address of routing ID base+off, carrying into the bus number.
func rid(base vf.PCIAddr, off int) vf.PCIAddr {
	r := int(base.Bus)<<8 | int(base.Device)<<3 | int(base.Function)
	r += off
	return vf.PCIAddr{Domain: base.Domain, Bus: uint8(r >> 8), Device: uint8(r >> 3 & 0x1f), Function: uint8(r & 7)}
}

// VFAddr is where the kernel puts VF k of PF p of an adapter at slot base (function 0).
func VFAddr(base vf.PCIAddr, p, k int) vf.PCIAddr {
	return rid(base, p+sriovOffset+k*sriovStride)
}

// NetdevName returns the name udev's predictable scheme gives a function's netdev:
// enp<bus>s<slot>[f<fn>][d<dev_port>].
func NetdevName(addr vf.PCIAddr, devPort int) string {
	n := fmt.Sprintf("enp%ds%d", addr.Bus, addr.Device)
	if addr.Function > 0 {
		n += "f" + strconv.Itoa(int(addr.Function))
	}
	if devPort > 0 {
		n += "d" + strconv.Itoa(devPort)
	}
	return n
}

// VFMAC is the default MAC of VF k of PF p: the adapter's base MAC made locally
// administered, with pf × totalvfs + k in the low bytes.
func VFMAC(macBase uint32, p, k, total int) string {
	n := p*total + k
	return fmt.Sprintf("02:07:43:%02x:%02x:%02x", byte(macBase>>16), byte(macBase>>8)^byte(n>>8), byte(n))
}

// AddAdapter builds one adapter: PF0-PF3, PF4 with its port netdevs, the VFs with
// their netdevs and, on each PF with VFs, the management netdev.
func (t *Tree) AddAdapter(a Adapter) (*BuiltAdapter, error) {
	p, ok := a.product()
	if !ok {
		return nil, fmt.Errorf("sysfstree: unknown model %q", a.Model)
	}
	idx := len(t.Adapters)
	if a.Bus == 0 {
		a.Bus = uint8(0x81 + 2*idx)
	}
	if a.TotalVFs == 0 {
		a.TotalVFs = 16
	}
	if a.Ports == 0 {
		a.Ports = p.Ports()
	}
	if a.MgmtIndex == 0 {
		a.MgmtIndex = idx + 1
	}
	if a.Vendor == 0 {
		a.Vendor = vf.VendorID
	}
	if a.MACBase == 0 {
		a.MACBase = uint32(a.Bus)<<16 | uint32(idx)<<8
	}
	base := vf.PCIAddr{Domain: a.Domain, Bus: a.Bus}
	b := &BuiltAdapter{Spec: a, Product: p, PF4: rid(base, 4)}
	b.rootPort = defaultRootPort(base)
	t.Adapters = append(t.Adapters, b)

	mk := func(addr vf.PCIAddr, dev uint16, driver string) error {
		return t.AddFunction(Function{Addr: addr, Vendor: a.Vendor, Device: dev, Driver: driver, NUMANode: a.NUMANode, IOMMU: true, RootPort: b.rootPort})
	}
	for pf := range 4 {
		b.PFs[pf] = rid(base, pf)
		if err := mk(b.PFs[pf], p.PF03ID(), vf.DriverCxgb4); err != nil {
			return nil, err
		}
		dir := b.rootPort + "/" + b.PFs[pf].String()
		for k, v := range map[string]string{
			"sriov_totalvfs": strconv.Itoa(a.TotalVFs), "sriov_numvfs": "0",
			"sriov_offset": strconv.Itoa(sriovOffset + 0), "sriov_stride": strconv.Itoa(sriovStride),
			"sriov_drivers_autoprobe": "1", "sriov_vf_device": fmt.Sprintf("%04x", p.VFID()),
		} {
			if err := t.WriteFile(dir+"/"+k, v); err != nil {
				return nil, err
			}
		}
	}
	if !a.NoPF4 {
		if err := mk(b.PF4, p.PF4ID(), vf.DriverCxgb4); err != nil {
			return nil, err
		}
		for port := range a.Ports {
			n := Netdev{Name: NetdevName(b.PF4, port), MAC: fmt.Sprintf("00:07:43:%02x:%02x:%02x", byte(a.MACBase>>16), byte(a.MACBase>>8), byte(a.MACBase)+byte(port)), MTU: 1500, DevPort: port, Type: 1}
			if err := t.writeNetdev(b.rootPort+"/"+b.PF4.String(), n); err != nil {
				return nil, err
			}
			b.Ports = append(b.Ports, n)
		}
	}
	for pf := range 4 {
		if err := t.SetNumVFs(b, pf, a.VFs[pf]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// SetNumVFs creates or removes VFs of one PF as the kernel does on a write to
// sriov_numvfs: 0 → N creates the management netdev, then the VFs; N → 0 removes
// both. Changing between two non-zero counts goes through 0, as cxgb4 requires.
func (t *Tree) SetNumVFs(b *BuiltAdapter, pf, n int) error {
	a := b.Spec
	if n < 0 || n > a.TotalVFs {
		return fmt.Errorf("sysfstree: %d VFs on PF%d: want 0..%d", n, pf, a.TotalVFs)
	}
	pfAddr := b.PFs[pf]
	pfDir := b.rootPort + "/" + pfAddr.String()
	// The count first: once the old VFs are seen gone, a writer may already have
	// written the next count, which must not be overwritten by this one.
	if err := t.WriteFile(pfDir+"/sriov_numvfs", strconv.Itoa(n)); err != nil {
		return err
	}
	if len(b.VFs[pf]) > 0 {
		for _, v := range b.VFs[pf] {
			if err := t.RemoveFunction(v.Addr); err != nil {
				return err
			}
		}
		for k := range b.VFs[pf] {
			if err := removeAll(t.Root.Path(pfDir + "/virtfn" + strconv.Itoa(k))); err != nil {
				return err
			}
		}
		b.VFs[pf] = nil
		if b.Mgmt[pf] != "" {
			if err := t.RemoveNetdev(pfAddr, b.Mgmt[pf]); err != nil {
				return err
			}
			b.Mgmt[pf] = ""
		}
	}
	if n == 0 {
		return nil
	}
	b.Mgmt[pf] = fmt.Sprintf("mgmtpf%d,%d", a.MgmtIndex, pf)
	if err := t.writeNetdev(pfDir, Netdev{Name: b.Mgmt[pf], MTU: 0, Type: 65534}); err != nil {
		return err
	}
	base := vf.PCIAddr{Domain: a.Domain, Bus: a.Bus}
	for k := range n {
		addr := VFAddr(base, pf, k)
		driver := vf.DriverCxgb4VF
		if d, ok := a.Drivers[VFRef{pf, k}]; ok {
			driver = d
		}
		bv := BuiltVF{Addr: addr, Driver: driver, Port: vf.PortOfPF(pf, a.Ports)}
		if err := t.AddFunction(Function{Addr: addr, Vendor: a.Vendor, Device: b.Product.VFID(), Driver: driver, NUMANode: a.NUMANode, IOMMU: true, RootPort: b.rootPort}); err != nil {
			return err
		}
		dir := b.rootPort + "/" + addr.String()
		if err := t.link(pfDir, dir+"/physfn"); err != nil {
			return err
		}
		if err := t.link(dir, pfDir+"/virtfn"+strconv.Itoa(k)); err != nil {
			return err
		}
		if driver == vf.DriverCxgb4VF {
			bv.Netdev = Netdev{Name: NetdevName(addr, bv.Port), MAC: VFMAC(a.MACBase, pf, k, a.TotalVFs), MTU: 1500, DevPort: bv.Port, Type: 1}
			if err := t.writeNetdev(dir, bv.Netdev); err != nil {
				return err
			}
		}
		b.VFs[pf] = append(b.VFs[pf], bv)
	}
	return nil
}
