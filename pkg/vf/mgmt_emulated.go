package vf

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// EmulatedMgmt is the Mgmt of an emulated node or a sysfstree tree: it plays the cxgb4
// management netdevs of the tree under Root, refusing what cxgb4 refuses with the
// same errno (docs/hardware.md section 5), and keeps the VF settings on disk in
// <Root>/chelsio-emulated/vfconfig/<mgmt>.json, so that every process that shares
// the tree sees them. Writers serialize on a flock of vfconfig/.lock and replace the
// file atomically; readers take no lock.
//
// It is stricter than cxgb4 in one place: SetVFMAC checks the VF index too (EINVAL).
// Like the kernel's VF list, VFConfig of a VF index ≥ sriov_numvfs wraps ENOENT.
// Settings outlive a sriov_numvfs change, which cxgb4 forgets.
type EmulatedMgmt struct {
	Root sysfs.Root
}

const vfConfigDir = EmulatedMarker + "/vfconfig"

// emulatedVF is one VF's entry of vfconfig/<mgmt>.json; zero fields are defaults.
// It has VFConfig's fields, in VFConfig's order.
type emulatedVF struct {
	MAC       string    `json:"mac,omitempty"` // "" = the VF netdev's address
	VLAN      int       `json:"vlan,omitempty"`
	MaxTxRate int       `json:"maxTxRate,omitempty"`
	LinkState LinkState `json:"linkState,omitempty"` // "" = auto
}

// emulatedPF is the PF behind a management netdev.
type emulatedPF struct {
	addr PCIAddr
	id   uint16 // device ID
}

// vfErr builds a *VFError whose cause wraps errno, with an explanation.
func vfErr(op, mgmt string, vf int, errno unix.Errno, format string, a ...any) *VFError {
	return &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: fmt.Errorf("%w (emulated cxgb4: %s)", errno, fmt.Sprintf(format, a...))}
}

// pf resolves the management netdev to its PF and checks the VF index: ENODEV for
// no such netdev, EOPNOTSUPP for a netdev without VF operations (anything but the
// management netdev of a Chelsio PF0-3), and for a VF index outside the PF's
// sriov_numvfs notFound (EINVAL for the setters, ENOENT for VFConfig).
func (m EmulatedMgmt) pf(op, mgmt string, vf int, notFound unix.Errno) (emulatedPF, error) {
	// The kernel's dev_valid_name: no netdev can have such a name.
	if mgmt == "" || mgmt == "." || mgmt == ".." || len(mgmt) > 15 || strings.ContainsAny(mgmt, "/: \t\n\x00") {
		return emulatedPF{}, vfErr(op, mgmt, vf, unix.ENODEV, "invalid netdev name")
	}
	cls := "class/net/" + mgmt
	if _, err := os.Lstat(m.Root.Path(cls)); errors.Is(err, fs.ErrNotExist) {
		return emulatedPF{}, vfErr(op, mgmt, vf, unix.ENODEV, "no %s", m.Root.Path(cls))
	} else if err != nil {
		return emulatedPF{}, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	notMgmt := func(why string) (emulatedPF, error) {
		return emulatedPF{}, vfErr(op, mgmt, vf, unix.EOPNOTSUPP, "not the management netdev of a Chelsio PF0-3: %s", why)
	}
	// The kernel's link ends in the PF's address; a tree's may be "../..": resolve it.
	dev, err := filepath.EvalSymlinks(m.Root.Path(cls, "device"))
	if errors.Is(err, fs.ErrNotExist) {
		return notMgmt("no device link")
	} else if err != nil {
		return emulatedPF{}, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	base := filepath.Base(dev)
	addr, err := ParsePCIAddr(base)
	if err != nil {
		return notMgmt("device " + base + " is not a PCI function")
	}
	a := addr.String()
	vendor, err := m.Root.ReadHex(devPath(a, "vendor"), 16)
	if err != nil {
		return emulatedPF{}, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	id, err := m.Root.ReadHex(devPath(a, "device"), 16)
	if err != nil {
		return emulatedPF{}, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	if _, ok := ChipOf(uint16(id)); vendor != VendorID || !ok || KindOf(uint16(id)) != FuncPF03 || addr.Function > 3 {
		return notMgmt(fmt.Sprintf("device %s is %04x:%04x", a, vendor, id))
	}
	n, err := m.Root.ReadInt(devPath(a, "sriov_numvfs"))
	if err != nil {
		return emulatedPF{}, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	if vf < 0 || vf >= n {
		return emulatedPF{}, vfErr(op, mgmt, vf, notFound, "VF index %d is not below sriov_numvfs %d of PF %s", vf, n, a)
	}
	return emulatedPF{addr: addr, id: uint16(id)}, nil
}

// VFConfig returns the stored settings of VF vf; the MAC defaults to the VF netdev's
// address (none without a netdev), the link state to auto.
// Equivalent to: `ip link show <mgmt>`, line "vf <vf>".
func (m EmulatedMgmt) VFConfig(mgmt string, vf int) (VFConfig, error) {
	pf, err := m.pf(OpVFConfig, mgmt, vf, unix.ENOENT)
	if err != nil {
		return VFConfig{}, err
	}
	cfgs, err := m.load(mgmt)
	if err != nil {
		return VFConfig{}, &VFError{Op: OpVFConfig, Mgmt: mgmt, VF: vf, Err: err}
	}
	c := VFConfig(cfgs[vf])
	if c.LinkState == "" {
		c.LinkState = LinkStateAuto
	}
	if c.MAC == "" {
		if c.MAC, err = m.vfNetdevMAC(pf.addr, vf); err != nil {
			return VFConfig{}, &VFError{Op: OpVFConfig, Mgmt: mgmt, VF: vf, Err: err}
		}
	}
	return c, nil
}

// vfNetdevMAC reads the address of VF vf's netdev: "" when it has none here.
func (m EmulatedMgmt) vfNetdevMAC(pf PCIAddr, vf int) (string, error) {
	va, err := m.Root.LinkBase(devPath(pf.String(), "virtfn"+strconv.Itoa(vf)))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	d, err := openFunc(m.Root, va)
	if err != nil {
		return "", err
	}
	defer d.Close()
	names, err := readNet(d)
	if err != nil || len(names) == 0 {
		return "", err
	}
	mac, err := m.Root.ReadString(devPath(va, "net", names[0], "address"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if hw, err := net.ParseMAC(mac); err == nil && !isZeroMAC(hw) {
		return hw.String(), nil
	}
	return "", nil
}

// SetVFMAC stores mac for VF vf. Invalid, multicast and all-zero addresses are
// EINVAL, as is a VF index ≥ sriov_numvfs (which cxgb4 does not check).
// Equivalent to: `ip link set <mgmt> vf <vf> mac <mac>`.
func (m EmulatedMgmt) SetVFMAC(mgmt string, vf int, mac net.HardwareAddr) error {
	if _, err := m.pf(OpSetMAC, mgmt, vf, unix.EINVAL); err != nil {
		return err
	}
	if err := ValidateMAC(mac); err != nil {
		return &VFError{Op: OpSetMAC, Mgmt: mgmt, VF: vf, Err: err}
	}
	return m.update(OpSetMAC, mgmt, vf, func(c *emulatedVF) { c.MAC = mac.String() })
}

// SetVFVLAN stores vlan (802.1Q, qos 0) for VF vf; 0 clears it, above 4095 is EINVAL.
// Equivalent to: `ip link set <mgmt> vf <vf> vlan <vlan>`.
func (m EmulatedMgmt) SetVFVLAN(mgmt string, vf, vlan int) error {
	if _, err := m.pf(OpSetVLAN, mgmt, vf, unix.EINVAL); err != nil {
		return err
	}
	if err := ValidateVLAN(vlan); err != nil {
		return &VFError{Op: OpSetVLAN, Mgmt: mgmt, VF: vf, Err: err}
	}
	return m.update(OpSetVLAN, mgmt, vf, func(c *emulatedVF) { c.VLAN = vlan })
}

// SetVFRate stores a transmit cap for VF vf; 0 removes it. A cap needs the link of
// the PF's port (PortOfPF over the PF4 port netdevs) up, carrier 1 (operstate up
// when carrier does not read), and at most the port's speed: its speed file, or
// Product.PortSpeedMbps; else EINVAL.
// Equivalent to: `ip link set <mgmt> vf <vf> max_tx_rate <maxMbps>`.
func (m EmulatedMgmt) SetVFRate(mgmt string, vf, maxMbps int) error {
	pf, err := m.pf(OpSetRate, mgmt, vf, unix.EINVAL)
	if err != nil {
		return err
	}
	if maxMbps < 0 {
		return vfErr(OpSetRate, mgmt, vf, unix.EINVAL, "negative rate %d", maxMbps)
	}
	if maxMbps > 0 {
		if err := m.checkRate(mgmt, vf, pf, maxMbps); err != nil {
			return err
		}
	}
	return m.update(OpSetRate, mgmt, vf, func(c *emulatedVF) { c.MaxTxRate = maxMbps })
}

func (m EmulatedMgmt) checkRate(mgmt string, vf int, pf emulatedPF, maxMbps int) error {
	pf4 := pf.addr
	pf4.Function = 4
	var ports []Port
	if dev, err := m.Root.ReadHex(devPath(pf4.String(), "device"), 16); err == nil && KindOf(uint16(dev)) == FuncPF4 {
		d, err := openFunc(m.Root, pf4.String())
		if err != nil {
			return &VFError{Op: OpSetRate, Mgmt: mgmt, VF: vf, Err: err}
		}
		p4, _, err := readPF4(d, pf4)
		_ = d.Close()
		if err != nil {
			return &VFError{Op: OpSetRate, Mgmt: mgmt, VF: vf, Err: err}
		}
		ports = p4.Ports
	}
	idx := PortOfPF(int(pf.addr.Function), len(ports))
	var port *Port
	for i := range ports {
		if ports[i].Index == idx {
			port = &ports[i]
		}
	}
	if port == nil {
		return vfErr(OpSetRate, mgmt, vf, unix.EINVAL, "no link parameters: PF4 %s has no netdev for port %d", pf4, idx)
	}
	dir := devPath(pf4.String(), "net", port.Netdev)
	up := false
	if c, err := m.Root.ReadString(dir + "/carrier"); err == nil {
		up = c == "1"
	} else if o, err := m.Root.ReadString(dir + "/operstate"); err == nil {
		up = o == "up"
	}
	if !up {
		return vfErr(OpSetRate, mgmt, vf, unix.EINVAL, "link down on port %d (%s)", idx, port.Netdev)
	}
	speed, err := m.Root.ReadInt(dir + "/speed")
	if err != nil || speed <= 0 {
		p, _, known := LookupID(pf.id)
		if !known {
			c, _ := ChipOf(pf.id)
			p = Product{Chip: c, Code: uint8(pf.id)}
		}
		speed = p.PortSpeedMbps()
	}
	if maxMbps > speed {
		return vfErr(OpSetRate, mgmt, vf, unix.EINVAL, "%d Mbps is above the speed of port %d (%s), %d Mbps", maxMbps, idx, port.Netdev, speed)
	}
	return nil
}

// SetVFLinkState stores s for VF vf; anything but auto, enable and disable is EINVAL.
// Equivalent to: `ip link set <mgmt> vf <vf> state auto|enable|disable`.
func (m EmulatedMgmt) SetVFLinkState(mgmt string, vf int, s LinkState) error {
	if _, err := m.pf(OpSetLinkState, mgmt, vf, unix.EINVAL); err != nil {
		return err
	}
	if _, err := ParseLinkState(string(s)); err != nil {
		return &VFError{Op: OpSetLinkState, Mgmt: mgmt, VF: vf, Err: err}
	}
	return m.update(OpSetLinkState, mgmt, vf, func(c *emulatedVF) { c.LinkState = s })
}

func (m EmulatedMgmt) configPath(mgmt string) string {
	return m.Root.Path(vfConfigDir, mgmt+".json")
}

// load reads vfconfig/<mgmt>.json; none is an empty map.
func (m EmulatedMgmt) load(mgmt string) (map[int]emulatedVF, error) {
	p := m.configPath(mgmt)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return map[int]emulatedVF{}, nil
	} else if err != nil {
		return nil, err
	}
	cfgs := map[int]emulatedVF{}
	if err := json.Unmarshal(data, &cfgs); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return cfgs, nil
}

// update changes one VF's entry under the flock: read, change, write a temporary
// file and rename it over the old one.
func (m EmulatedMgmt) update(op, mgmt string, vf int, change func(*emulatedVF)) error {
	if err := m.write(mgmt, vf, change); err != nil {
		return &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	return nil
}

func (m EmulatedMgmt) write(mgmt string, vf int, change func(*emulatedVF)) (retErr error) {
	dir := m.Root.Path(vfConfigDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return err
	}
	defer func() { retErr = errors.Join(retErr, unlock()) }()

	cfgs, err := m.load(mgmt)
	if err != nil {
		return err
	}
	c := cfgs[vf]
	change(&c)
	if c == (emulatedVF{}) {
		delete(cfgs, vf)
	} else {
		cfgs[vf] = c
	}
	data, err := json.MarshalIndent(cfgs, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+mgmt+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			if err := os.Remove(tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), m.configPath(mgmt))
}

// lockFile takes an exclusive flock on path (created if needed) and returns its
// release. flock locks belong to the open file, so goroutines of one process
// exclude each other as other processes do.
func lockFile(path string) (func() error, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
	}
	return f.Close, nil // closing the file releases the lock
}
