//go:build !linux

package vf

import (
	"net"
	"syscall"
)

// NetlinkMgmt is the Mgmt of a real node. cxgb4 exists only on Linux: elsewhere every
// call fails with EOPNOTSUPP.
type NetlinkMgmt struct{}

// VFConfig fails with EOPNOTSUPP outside Linux.
func (NetlinkMgmt) VFConfig(mgmt string, vf int) (VFConfig, error) {
	return VFConfig{}, &VFError{Op: OpVFConfig, Mgmt: mgmt, VF: vf, Err: syscall.EOPNOTSUPP}
}

// SetVFMAC fails with EOPNOTSUPP outside Linux.
func (NetlinkMgmt) SetVFMAC(mgmt string, vf int, _ net.HardwareAddr) error {
	return &VFError{Op: OpSetMAC, Mgmt: mgmt, VF: vf, Err: syscall.EOPNOTSUPP}
}

// SetVFVLAN fails with EOPNOTSUPP outside Linux.
func (NetlinkMgmt) SetVFVLAN(mgmt string, vf, _ int) error {
	return &VFError{Op: OpSetVLAN, Mgmt: mgmt, VF: vf, Err: syscall.EOPNOTSUPP}
}

// SetVFRate fails with EOPNOTSUPP outside Linux.
func (NetlinkMgmt) SetVFRate(mgmt string, vf, _ int) error {
	return &VFError{Op: OpSetRate, Mgmt: mgmt, VF: vf, Err: syscall.EOPNOTSUPP}
}

// SetVFLinkState fails with EOPNOTSUPP outside Linux.
func (NetlinkMgmt) SetVFLinkState(mgmt string, vf int, _ LinkState) error {
	return &VFError{Op: OpSetLinkState, Mgmt: mgmt, VF: vf, Err: syscall.EOPNOTSUPP}
}
