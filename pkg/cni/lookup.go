package cni

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/chelsio-k8s/chelsio-sriov/pkg/cnistore"
	"github.com/chelsio-k8s/chelsio-sriov/pkg/vf"
)

// lookupVF finds the VF of the NetConf and refuses what cannot be attached.
func (p *Plugin) lookupVF(c *NetConf) (*vf.VF, error) {
	if c.VF.IsZero() {
		return nil, configError("no VF given: set \"deviceID\" (or \"pciBusID\", or runtimeConfig.deviceID through the deviceID capability); with Multus, annotate the NetworkAttachmentDefinition with k8s.v1.cni.cncf.io/resourceName")
	}
	v, err := vf.LookupVF(p.Root, c.VF, vf.Options{})
	switch {
	case errors.Is(err, vf.ErrNotChelsioVF):
		return nil, configError("deviceID %s: %v: give the PCI address of a Chelsio VF (chelsio-vf list shows them)", c.VF, err)
	case isNotExist(err):
		return nil, configError("deviceID %s: no such PCI device in %s: the VF is gone or the address is wrong (chelsio-vf list shows the VFs)", c.VF, p.Root.Path("bus/pci/devices"))
	case err != nil:
		return nil, withCode(CodeIOFailure, fmt.Errorf("deviceID %s: %w", c.VF, err))
	}
	switch v.Driver {
	case vf.DriverCxgb4VF, vf.DriverVFIO:
	case "":
		return nil, configError("deviceID %s: the VF is bound to no driver; bind it to cxgb4vf (kernel netdev) or vfio-pci (DPDK)", c.VF)
	default:
		return nil, configError("deviceID %s: the VF is bound to %s; chelsio-sriov takes cxgb4vf (kernel netdev) or vfio-pci (DPDK) VFs", c.VF, v.Driver)
	}
	if c.HasPFSettings() && v.MgmtNetdev == "" {
		return nil, configError("deviceID %s: VF-level settings (vlan, mac, max_tx_rate, link_state) go through the PF's management netdev, and %s has none: remove those keys, or use a kernel whose cxgb4 has one (Linux 4.9 or later) and leave it in the host namespace", c.VF, p.Root.Path("bus/pci/devices", v.PF.String(), "net"))
	}
	if c.MaxTxRate != nil && *c.MaxTxRate > 0 {
		if err := p.checkRate(v, *c.MaxTxRate); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// checkRate refuses what cxgb4 refuses for max_tx_rate: port link down, or a rate
// above the port's speed. Where sysfs does not show the port, cxgb4 decides.
func (p *Plugin) checkRate(v *vf.VF, rate int) error {
	l, err := vf.PortLinkOf(p.Root, v)
	if err != nil || l == nil {
		return nil // no port netdev to judge by: let cxgb4 decide
	}
	if l.Down {
		return configError("\"max_tx_rate\" %d: cxgb4 needs the port's link up, and port %d (%s) is down", rate, v.Port, l.Netdev)
	}
	if l.SpeedMbps > 0 && rate > l.SpeedMbps {
		return configError("\"max_tx_rate\" %d is above the speed of port %d (%s): %d Mbps", rate, v.Port, l.Netdev, l.SpeedMbps)
	}
	return nil
}

// checkOwner refuses a VF that another live attachment holds. A VF whose previous
// pod is gone without a DEL is taken over: first given back as that attachment
// found it, so that this ADD records the VF's true original state.
func (p *Plugin) checkOwner(inv *invocation, v *vf.VF, args *skel.CmdArgs) (bool, error) {
	o, err := inv.store.Owner(v.Addr.String())
	if isNotExist(err) {
		return false, nil
	}
	if cnistore.IsCorrupt(err) {
		// Truncated by a power loss (the state is not synced): it names no one.
		inv.log.Warn("VF owner record unreadable; taking the VF as free", "vf", v.Addr.String(), "err", err)
		if err := inv.store.DropCorruptOwner(v.Addr.String()); err != nil {
			return false, withCode(CodeIOFailure, err)
		}
		return false, nil
	}
	if err != nil {
		return false, withCode(CodeIOFailure, err)
	}
	if o.ContainerID == args.ContainerID && o.IfName == args.IfName {
		if a, err := inv.store.LoadAttachment(args.ContainerID, args.IfName); err == nil && a.Phase == cnistore.PhaseAttached {
			return false, configError("container %s already has %s attached as %s; DEL it first", args.ContainerID, v.Addr, args.IfName)
		}
		return false, nil // a failed or interrupted ADD of this attachment: start over
	}
	if alive(o.Netns) {
		return false, withCode(CodeVFBusy, fmt.Errorf("deviceID %s is attached to container %s as %s (netns %s); refusing to take it", v.Addr, o.ContainerID, o.IfName, o.Netns))
	}
	inv.log.Warn("taking over a VF whose previous pod is gone", "previous", o.ContainerID, "netns", o.Netns)
	old, err := inv.store.LoadAttachment(o.ContainerID, o.IfName)
	if err != nil {
		return false, nil // no record of what it was: take it as it is
	}
	prev := &skel.CmdArgs{ContainerID: old.ContainerID, IfName: old.IfName, Netns: old.Netns}
	if err := p.restoreVF(inv, prev, v.Addr, old); err != nil {
		if errors.Is(err, errVFMissing) {
			return false, withCode(CodeTryAgainLater, fmt.Errorf("deviceID %s: its netdev has not come back from container %s's namespace yet; try again", v.Addr, o.ContainerID))
		}
		return false, fmt.Errorf("give %s back from container %s first: %w", v.Addr, o.ContainerID, err)
	}
	// The old attachment's state stays for its own DEL (or GC), which frees its lease
	// and, seeing the VF is ours now, leaves the VF alone.
	return true, nil
}

// alive reports whether a netns path still names a network namespace.
func alive(path string) bool {
	if path == "" {
		return false
	}
	if _, err := os.Stat(path); err != nil {
		return false
	}
	n, err := ns.GetNS(path)
	if err != nil {
		return false
	}
	_ = n.Close()
	return true
}
