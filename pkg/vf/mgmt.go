package vf

import (
	"fmt"
	"net"
	"strconv"
	"syscall"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/sysfs"
)

// LinkState is the firmware's per-VF link state, as `ip link set <mgmt> vf N state`
// names it.
type LinkState string

// VF link states (IFLA_VF_LINK_STATE_AUTO, _ENABLE, _DISABLE).
const (
	LinkStateAuto    LinkState = "auto"    // the VF's carrier follows its physical port
	LinkStateEnable  LinkState = "enable"  // carrier always on
	LinkStateDisable LinkState = "disable" // carrier always off
)

// ParseLinkState parses "auto", "enable" or "disable". The error wraps
// syscall.EINVAL, the errno cxgb4 returns for any other state.
func ParseLinkState(s string) (LinkState, error) {
	if ls := LinkState(s); ls.valid() {
		return ls, nil
	}
	return "", fmt.Errorf("%w: VF link state %q is not auto, enable or disable", syscall.EINVAL, s)
}

func (s LinkState) valid() bool {
	return s == LinkStateAuto || s == LinkStateEnable || s == LinkStateDisable
}

// VFConfig is what cxgb4's get_vf_config reports for one VF of a PF (`ip link show
// <mgmt>`, the "vf N" lines).
type VFConfig struct { //nolint:revive // vf.Config would not say whose config it is
	// MAC is the address the PF stored for the VF, lower-case; "" when none is set
	// (the kernel reports 00:00:00:00:00:00).
	MAC       string
	VLAN      int       // 0 when none
	MaxTxRate int       // Mbps; 0 = unlimited
	LinkState LinkState // auto, enable or disable
}

// Mgmt changes VF settings through a PF's cxgb4 management netdev ("mgmtpf1,0", the
// PF's MgmtNetdev). vf is the VF's index on that PF (VF.VFIndex, the N of virtfnN);
// cxgb4 wants it below the PF's sriov_numvfs. Errors are *VFError values that keep
// the kernel's errno, so errors.Is(err, unix.EOPNOTSUPP) and the like work.
type Mgmt interface {
	// VFConfig returns the settings of VF vf.
	// Equivalent to: `ip link show <mgmt>`, line "vf <vf>".
	VFConfig(mgmt string, vf int) (VFConfig, error)
	// SetVFMAC stores the MAC that cxgb4vf gives the VF at its next probe.
	// Equivalent to: `ip link set <mgmt> vf <vf> mac <mac>`.
	SetVFMAC(mgmt string, vf int, mac net.HardwareAddr) error
	// SetVFVLAN sets the VF's 802.1Q VLAN (qos 0); 0 clears it.
	// Equivalent to: `ip link set <mgmt> vf <vf> vlan <vlan>`.
	SetVFVLAN(mgmt string, vf, vlan int) error
	// SetVFRate caps the VF's transmit rate in Mbps; 0 removes the cap.
	// Equivalent to: `ip link set <mgmt> vf <vf> max_tx_rate <maxMbps>`.
	SetVFRate(mgmt string, vf, maxMbps int) error
	// SetVFLinkState sets the VF's link state.
	// Equivalent to: `ip link set <mgmt> vf <vf> state auto|enable|disable`.
	SetVFLinkState(mgmt string, vf int, s LinkState) error
}

// Operations named by VFError.Op.
const (
	OpVFConfig     = "get-vf-config"
	OpSetMAC       = "set-mac"
	OpSetVLAN      = "set-vlan"
	OpSetRate      = "set-rate"
	OpSetLinkState = "set-state"
)

// VFError records a VF operation on a management netdev that failed, and why; it is
// modelled on os.PathError: "set-vlan mgmtpf1,0 vf 3: operation not supported".
type VFError struct { //nolint:revive // like os.PathError: vf.Error would not say what failed
	Op   string // OpVFConfig, OpSetMAC, OpSetVLAN, OpSetRate or OpSetLinkState
	Mgmt string // the management netdev, "mgmtpf1,0"
	VF   int    // the VF index on the PF
	Err  error  // the cause; wraps the kernel's errno when there is one
}

func (e *VFError) Error() string {
	return e.Op + " " + e.Mgmt + " vf " + strconv.Itoa(e.VF) + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *VFError) Unwrap() error { return e.Err }

// NewMgmt returns the Mgmt for a sysfs root: EmulatedMgmt when the root is an
// emulated tree (see Emulated), else NetlinkMgmt in the current network namespace.
func NewMgmt(root sysfs.Root) Mgmt {
	if Emulated(root) {
		return &EmulatedMgmt{Root: root}
	}
	return NetlinkMgmt{}
}

// ValidateMAC reports whether cxgb4 accepts mac as a VF MAC: 6 bytes, unicast, not
// all-zero (the kernel's is_valid_ether_addr). The error wraps syscall.EINVAL, the
// errno cxgb4 returns.
func ValidateMAC(mac net.HardwareAddr) error {
	switch {
	case len(mac) != 6:
		return fmt.Errorf("%w: VF MAC %q is not a 6-byte Ethernet address", syscall.EINVAL, mac.String())
	case mac[0]&1 != 0:
		return fmt.Errorf("%w: VF MAC %s is a multicast address", syscall.EINVAL, mac)
	case isZeroMAC(mac):
		return fmt.Errorf("%w: VF MAC %s is all-zero", syscall.EINVAL, mac)
	}
	return nil
}

// MaxVLAN is the highest VLAN ID that cxgb4 accepts for a VF.
const MaxVLAN = 4095

// ValidateVLAN reports whether cxgb4 accepts vlan as a VF VLAN: 0 (none) to 4095.
// The error wraps syscall.EINVAL, the errno cxgb4 returns. Callers may be stricter:
// 4095 is reserved by 802.1Q, and cxgb4 takes it only because it does not check.
func ValidateVLAN(vlan int) error {
	if vlan < 0 || vlan > MaxVLAN {
		return fmt.Errorf("%w: VF VLAN %d is outside 0-%d", syscall.EINVAL, vlan, MaxVLAN)
	}
	return nil
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}
