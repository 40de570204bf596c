package vf

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// ErrNotChelsioVF reports a PCI function that is not a VF this package handles: not
// Chelsio's, not a VF, or a T7 VF without Options.AllowT7.
var ErrNotChelsioVF = errors.New("not a Chelsio VF")

// LookupVF reads the one VF at addr, with its PF and the PF's adapter, without
// listing bus/pci/devices: the fast path of the CNI plugin. It returns what Discover
// returns for that VF. A function that is not a Chelsio VF is an error that wraps
// ErrNotChelsioVF and names the vendor:device found; a missing one wraps
// fs.ErrNotExist. Both name the address.
func LookupVF(root sysfs.Root, addr PCIAddr, opts Options) (*VF, error) {
	a := addr.String()
	fail := func(err error) (*VF, error) { return nil, fmt.Errorf("lookup VF %s: %w", a, err) }
	vendor, err := root.ReadHex(devPath(a, "vendor"), 16)
	if err != nil {
		return fail(err) // fs.ErrNotExist when there is no such function
	}
	dev, err := root.ReadHex(devPath(a, "device"), 16)
	if err != nil {
		return fail(err)
	}
	id := uint16(dev)
	if vendor != VendorID || !IsVFID(id, opts.AllowT7) {
		why := ""
		if c, _ := ChipOf(id); vendor == VendorID && KindOf(id) == FuncVF && c == T7 {
			why = " (T7 VFs need AllowT7)"
		}
		return fail(fmt.Errorf("device %04x:%04x%s: %w", vendor, id, why, ErrNotChelsioVF))
	}
	d, err := openFunc(root, a)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	v, err := readVF(root, d, addr, id, func(pfAddr PCIAddr) (*PF, int, error) {
		return lookupParent(root, pfAddr)
	})
	if err != nil {
		return fail(err)
	}
	return v, nil
}

// lookupParent reads the PF at pfAddr as Discover does, and its adapter's port
// count: the netdevs of PF4 (function 4 of the slot), or what the model implies when
// PF4 is absent or unreadable (Discover leaves such a PF4 out too). A function that is
// not a Chelsio PF0-3 is a nil PF.
func lookupParent(root sysfs.Root, pfAddr PCIAddr) (*PF, int, error) {
	p := pfAddr.String()
	pfID, ok, err := chelsioFunc(root, p, FuncPF03)
	if err != nil {
		return nil, 0, fmt.Errorf("parent PF %s: %w", p, err)
	}
	if !ok {
		return nil, 0, nil
	}
	d, err := openFunc(root, p)
	if err != nil {
		return nil, 0, fmt.Errorf("parent PF %s: %w", p, err)
	}
	defer d.Close()
	pf, err := readPF(d, pfAddr, pfID)
	if err != nil {
		return nil, 0, fmt.Errorf("parent PF %s: %w", p, err)
	}
	// Discover names the adapter's product after PF4 when it has one.
	prodID := pfID
	pf4Addr := pfAddr
	pf4Addr.Function = 4
	var pf4 *PF4
	if id, ok, err := chelsioFunc(root, pf4Addr.String(), FuncPF4); err == nil && ok {
		if d4, err := openFunc(root, pf4Addr.String()); err == nil {
			if p4, _, err := readPF4(d4, pf4Addr); err == nil { // else left out, as Discover does
				pf4, prodID = p4, id
			}
			_ = d4.Close()
		}
	}
	prod, _, known := LookupID(prodID)
	if !known {
		c, _ := ChipOf(prodID)
		prod = Product{Chip: c, Code: uint8(prodID)}
	}
	ports := prod.Ports()
	if pf4 != nil && len(pf4.Ports) > 0 {
		ports = len(pf4.Ports)
	}
	return pf, ports, nil
}

// chelsioFunc reads the device ID of the function at addr and reports whether it is
// a Chelsio function of kind k. A function without a vendor file is not one.
func chelsioFunc(root sysfs.Root, addr string, k FuncKind) (uint16, bool, error) {
	vendor, err := root.ReadHex(devPath(addr, "vendor"), 16)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	if vendor != VendorID {
		return 0, false, nil
	}
	dev, err := root.ReadHex(devPath(addr, "device"), 16)
	if err != nil {
		return 0, false, err
	}
	id := uint16(dev)
	if _, ok := ChipOf(id); !ok || KindOf(id) != k {
		return 0, false, nil
	}
	return id, true, nil
}
