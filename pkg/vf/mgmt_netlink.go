package vf

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NetlinkMgmt is the Mgmt of a real node: rtnetlink requests to the cxgb4 management
// netdev, which lives in the host network namespace. The zero value is ready to use.
type NetlinkMgmt struct {
	// Handle, when set, carries the requests (netlink.NewHandleAt for another
	// namespace); nil uses the netlink package functions in the calling thread's
	// namespace.
	Handle *netlink.Handle
}

// linkOps is the part of netlink that NetlinkMgmt uses; *netlink.Handle has it.
type linkOps interface {
	LinkByName(name string) (netlink.Link, error)
	LinkSetVfHardwareAddr(link netlink.Link, vf int, hwaddr net.HardwareAddr) error
	LinkSetVfVlan(link netlink.Link, vf, vlan int) error
	LinkSetVfRate(link netlink.Link, vf, minRate, maxRate int) error
	LinkSetVfState(link netlink.Link, vf int, state uint32) error
}

// pkgOps forwards to the netlink package functions (the current namespace).
type pkgOps struct{}

func (pkgOps) LinkByName(name string) (netlink.Link, error) { return netlink.LinkByName(name) }

func (pkgOps) LinkSetVfHardwareAddr(l netlink.Link, vf int, mac net.HardwareAddr) error {
	return netlink.LinkSetVfHardwareAddr(l, vf, mac)
}

func (pkgOps) LinkSetVfVlan(l netlink.Link, vf, vlan int) error {
	return netlink.LinkSetVfVlan(l, vf, vlan)
}

func (pkgOps) LinkSetVfRate(l netlink.Link, vf, minRate, maxRate int) error {
	return netlink.LinkSetVfRate(l, vf, minRate, maxRate)
}

func (pkgOps) LinkSetVfState(l netlink.Link, vf int, state uint32) error {
	return netlink.LinkSetVfState(l, vf, state)
}

func (m NetlinkMgmt) ops() linkOps {
	if m.Handle != nil {
		return m.Handle
	}
	return pkgOps{}
}

// link looks the management netdev up; a missing one is ENODEV, as for ip(8).
func (m NetlinkMgmt) link(op, mgmt string, vf int) (netlink.Link, error) {
	if vf < 0 {
		// The kernel takes the index as a u32; refuse before it wraps around.
		return nil, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: unix.EINVAL}
	}
	l, err := m.ops().LinkByName(mgmt)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			err = unix.ENODEV // netlink drops the kernel's errno here
		}
		return nil, &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	return l, nil
}

// VFConfig returns the settings of VF vf from the VF list that the kernel attaches
// to the management netdev. A VF the list does not hold (vf ≥ sriov_numvfs) is an
// error that wraps ENOENT.
// Equivalent to: `ip link show <mgmt>`, line "vf <vf>".
func (m NetlinkMgmt) VFConfig(mgmt string, vf int) (VFConfig, error) {
	l, err := m.link(OpVFConfig, mgmt, vf)
	if err != nil {
		return VFConfig{}, err
	}
	vfs := l.Attrs().Vfs
	for _, vi := range vfs {
		if vi.ID == vf {
			return vfConfigOf(vi), nil
		}
	}
	return VFConfig{}, &VFError{Op: OpVFConfig, Mgmt: mgmt, VF: vf, Err: fmt.Errorf("the netdev lists %d VFs, not this one: %w", len(vfs), unix.ENOENT)}
}

// vfConfigOf maps netlink's VfInfo. cxgb4 never fills spoofchk, trust or
// rss_query_en: netlink reports them as Spoofchk true and Trust/RssQuery
// 0xffffffff, which mean "not reported", so they are not read.
func vfConfigOf(vi netlink.VfInfo) VFConfig {
	c := VFConfig{VLAN: vi.Vlan, MaxTxRate: int(vi.MaxTxRate)}
	if c.MaxTxRate == 0 {
		c.MaxTxRate = vi.TxRate // kernels without IFLA_VF_RATE
	}
	if len(vi.Mac) > 0 && !isZeroMAC(vi.Mac) {
		c.MAC = vi.Mac.String()
	}
	switch vi.LinkState {
	case unix.IFLA_VF_LINK_STATE_AUTO:
		c.LinkState = LinkStateAuto
	case unix.IFLA_VF_LINK_STATE_ENABLE:
		c.LinkState = LinkStateEnable
	case unix.IFLA_VF_LINK_STATE_DISABLE:
		c.LinkState = LinkStateDisable
	default:
		c.LinkState = LinkState(strconv.FormatUint(uint64(vi.LinkState), 10))
	}
	return c
}

// SetVFMAC stores the MAC that cxgb4vf gives the VF at its next probe. cxgb4 does
// not check vf against sriov_numvfs here: callers must.
// Equivalent to: `ip link set <mgmt> vf <vf> mac <mac>`.
func (m NetlinkMgmt) SetVFMAC(mgmt string, vf int, mac net.HardwareAddr) error {
	return m.set(OpSetMAC, mgmt, vf, func(ops linkOps, l netlink.Link) error {
		return ops.LinkSetVfHardwareAddr(l, vf, mac)
	})
}

// SetVFVLAN sets the VF's 802.1Q VLAN with qos 0; 0 clears it.
// Equivalent to: `ip link set <mgmt> vf <vf> vlan <vlan>`.
func (m NetlinkMgmt) SetVFVLAN(mgmt string, vf, vlan int) error {
	return m.set(OpSetVLAN, mgmt, vf, func(ops linkOps, l netlink.Link) error {
		return ops.LinkSetVfVlan(l, vf, vlan)
	})
}

// SetVFRate caps the VF's transmit rate in Mbps (min_tx_rate 0, the only value
// cxgb4 takes); 0 removes the cap. cxgb4 refuses a cap while the port's link is
// down or above its speed (EINVAL).
// Equivalent to: `ip link set <mgmt> vf <vf> max_tx_rate <maxMbps>`.
func (m NetlinkMgmt) SetVFRate(mgmt string, vf, maxMbps int) error {
	return m.set(OpSetRate, mgmt, vf, func(ops linkOps, l netlink.Link) error {
		return ops.LinkSetVfRate(l, vf, 0, maxMbps)
	})
}

// SetVFLinkState sets the VF's link state (Linux ≥ 5.4 cxgb4; older kernels
// return EOPNOTSUPP).
// Equivalent to: `ip link set <mgmt> vf <vf> state auto|enable|disable`.
func (m NetlinkMgmt) SetVFLinkState(mgmt string, vf int, s LinkState) error {
	var state uint32
	switch s {
	case LinkStateAuto:
		state = unix.IFLA_VF_LINK_STATE_AUTO
	case LinkStateEnable:
		state = unix.IFLA_VF_LINK_STATE_ENABLE
	case LinkStateDisable:
		state = unix.IFLA_VF_LINK_STATE_DISABLE
	default:
		_, err := ParseLinkState(string(s))
		return &VFError{Op: OpSetLinkState, Mgmt: mgmt, VF: vf, Err: err}
	}
	return m.set(OpSetLinkState, mgmt, vf, func(ops linkOps, l netlink.Link) error {
		return ops.LinkSetVfState(l, vf, state)
	})
}

// set finds the management netdev and runs one VF setting on it; a failure of
// either is a *VFError for op.
func (m NetlinkMgmt) set(op, mgmt string, vf int, call func(ops linkOps, l netlink.Link) error) error {
	l, err := m.link(op, mgmt, vf)
	if err != nil {
		return err
	}
	if err := call(m.ops(), l); err != nil {
		return &VFError{Op: op, Mgmt: mgmt, VF: vf, Err: err}
	}
	return nil
}
